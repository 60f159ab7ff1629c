"""Run `lineguard VERB ...` inside the test process.

A fresh interpreter per command costs 3-5 s on the CI box (torch and the detectors import
again each time), which made the CLI tests most of the suite's time. In the process the
verb runs exactly as `python -m lineguard` runs it (the same click group, its error
handling and exit codes), in the given folder, with stdout and stderr kept apart.

What a fresh process would do that click's runner does not, added here so an assertion
on it can still fail: an unhandled exception prints its traceback on stderr and exits 1.

Tests that need a real process (a signal, a kill mid-write, a clean interpreter without
an optional package, stdin from a pipe) keep calling the interpreter themselves.
"""
from __future__ import annotations

import os
import subprocess
import traceback
from pathlib import Path

from click.testing import CliRunner


def run_in_process(*args, cwd: Path | None = None, env: dict | None = None, input: str | None = None
                   ) -> subprocess.CompletedProcess:
    from lineguard.cli import app

    argv = [str(a) for a in args]
    # COLUMNS: keeps any help text from wrapping mid-message, as a pipe would not wrap it.
    runner = CliRunner(env={"COLUMNS": "1000", **(env or {})})
    here = os.getcwd()
    os.chdir(cwd or here)
    try:
        result = runner.invoke(app, argv, input=input, prog_name="lineguard", catch_exceptions=True)
    finally:
        os.chdir(here)
    stderr = result.stderr
    code = result.exit_code
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "Traceback (most recent call last):\n" + "".join(
            traceback.format_exception(result.exception))
        code = 1
    return subprocess.CompletedProcess(["lineguard", *argv], code, result.stdout, stderr)


def run_serve_refusal(*args, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """`lineguard serve ARGS` in the test process, for settings serve must refuse before it
    opens its station. Should it take them instead, it stops where the station would open
    (exit 2, "serve took these settings"): never a server left running in the test process."""
    import pytest

    import lineguard.server.app as server_app

    def open_station(*_a, **_k):
        raise server_app.StartupError("serve took these settings and went on to open its station")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(server_app, "open_station", open_station)
        return run_in_process("serve", *args, cwd=cwd, env=env)
