"""`lineguard service-unit -- serve ...`: the systemd unit that starts a station at boot.

The README had no word on running the station as a service: a plant engineer wrote a unit by
hand, and a --data path with a space, a % or a $ in it was cut or expanded by systemd (its
command line has quoting, specifiers and variables of its own). The unit's command line is
read back here by a splitter written from systemd's rules (systemd.service, "Command
lines"; systemd.syntax, quoting), and checked with `systemd-analyze verify` where installed.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli_runner import run_in_process

pytest.importorskip("fastapi")


@pytest.fixture(autouse=True)
def _line1_is_an_account_here(monkeypatch):
    """The units here are written for an account line1 this PC need not have (service-unit
    refuses an account it does not have): looked up as the account running the tests. The
    account checks themselves: tests/test_service_unit_user.py."""
    from lineguard.cli import service
    real = service._account
    # the account running the tests as the kernel knows it (a container's user may have no
    # passwd entry to look up by name)
    here = service._Account("line1", os.getuid(), os.getgid(), frozenset(os.getgroups()))
    monkeypatch.setattr(service, "_account", lambda name: here if name == "line1" else real(name))


_C_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "s": " ", "a": "\a", "b": "\b",
              "f": "\f", "v": "\v"}


def _specifiers(word: str, variables: bool) -> str:
    """%% is %, and in an argument $$ is $: any other % or $ would be systemd's to expand."""
    out, i = [], 0
    while i < len(word):
        c = word[i]
        if c == "%" or (c == "$" and variables):
            assert word[i + 1:i + 2] == c, f"{word!r}: a lone {c} at {i} is expanded by systemd"
            i += 2
        else:
            i += 1
        out.append(c)
    return "".join(out)


def systemd_argv(value: str) -> list[str]:
    """ExecStart='s value as the words systemd runs: split at blanks outside quotes, quotes
    removed, C escapes undone, then specifiers and (not in the program's path) variables."""
    words: list[str] = []
    i = 0
    while True:
        while i < len(value) and value[i] in " \t":
            i += 1
        if i >= len(value):
            break
        word, quote = [], None
        while i < len(value) and (quote or value[i] not in " \t"):
            c = value[i]
            if c in "\"'" and quote is None:
                quote = c
            elif c == quote:
                quote = None
            elif c == "\\":
                nxt = value[i + 1]
                if nxt == "x":
                    word.append(chr(int(value[i + 2:i + 4], 16)))
                    i += 2
                else:
                    assert nxt in _C_ESCAPES, f"{value!r}: unknown escape \\{nxt}"
                    word.append(_C_ESCAPES[nxt])
                i += 1
            else:
                word.append(c)
            i += 1
        assert quote is None, f"unbalanced quotes in {value!r}"
        words.append("".join(word))
    return [_specifiers(w, variables=n > 0) for n, w in enumerate(words)]


def _settings(unit: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


AWKWARD = ["/srv/line 1/it's \"the\" 50% $HOME ${USER} back\\slash",
           "tab\there", "two\nlines", " spaces at both ends ", ";", "", "Linie Süd", "100%%", "$$"]


@pytest.mark.parametrize("value", AWKWARD)
def test_the_unit_runs_serve_with_awkward_arguments_exactly_as_given(tmp_path, value):
    work = tmp_path / "plant 50% $x it's"
    # each awkward word as the data folder, which serve takes by any name (several --plc-images
    # without a PLC port were a command line serve refuses at every start, and so is service-unit)
    args = ["serve", "--data", value, "--host", "0.0.0.0", "--port", "8010", "--db-wait", "600"]
    r = run_in_process("service-unit", "--user", "line1", "--working-dir", work, "--description", "line 1", "--",
                       *args)
    assert r.returncode == 0, r.stderr
    s = _settings(r.stdout)
    (exec_start,) = s["ExecStart"]
    assert systemd_argv(exec_start) == [os.path.abspath(sys.executable), "-m", "lineguard", *args]
    assert s["WorkingDirectory"] == [str(work).replace("%", "%%")]
    assert s["User"] == ["line1"]
    assert s["Restart"] == ["on-failure"] and s["KillSignal"] == ["SIGTERM"]
    assert "network-online.target" in s["After"] and "network-online.target" in s["Wants"]
    from lineguard.cli.service import STOP_S
    assert s["TimeoutStopSec"] == [str(STOP_S)] and STOP_S >= 90     # past systemd's default 90 s
    assert "EnvironmentFile" not in s and "AmbientCapabilities" not in s


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_takes_the_unit(tmp_path):
    import getpass
    env_file = tmp_path / "line 1.env"
    env_file.write_text("LINEGUARD_DB=postgresql://line1:pw@dbpc/plant\n")
    env_file.chmod(0o600)
    r = run_in_process("service-unit", "--user", getpass.getuser(), "--working-dir", tmp_path / "a b 50%",
                       "--env-file", env_file, "--",
                       "serve", "--data", "/srv/line 1/it's \"the\" 50% $HOME", "--modbus-port", "502",
                       "--plc-images", "/cam 1")
    assert r.returncode == 0, r.stderr
    unit = tmp_path / "lineguard-L1.service"
    unit.write_text(r.stdout)
    v = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert v.returncode == 0, v.stdout + v.stderr
    s = _settings(r.stdout)
    assert s["EnvironmentFile"] == [str(env_file)] and s["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]


@pytest.mark.parametrize("option, variable", [("--db", "LINEGUARD_DB"), ("--mqtt", "LINEGUARD_MQTT"),
                                              ("--webhook", "LINEGUARD_WEBHOOK")])
def test_a_password_on_the_serve_command_line_is_refused_and_sent_to_an_environment_file(tmp_path, option, variable):
    url = {"--db": "postgresql://line1:pl4nt-pw@dbpc/plant", "--mqtt": "mqtt://line1:pl4nt-pw@broker:1883",
           "--webhook": "https://line1:pl4nt-pw@mes.plant/hook"}[option]
    r = run_in_process("service-unit", "--user", "line1", "--", "serve", "--data", "/srv/line1", option, url,
                       cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"{option} holds a password" in r.stderr and f"{variable}=" in r.stderr and "--env-file" in r.stderr
    assert "pl4nt-pw" not in r.stdout + r.stderr and "[Service]" not in r.stdout


@pytest.mark.parametrize("args, said", [
    (["serve", "--data", "/srv/line1", "--prot", "8000"], "No such option"),
    (["serve", "--port", "eighty"], "'eighty' is not a valid integer"),
    (["serve", "--help"], "asks for its help"),
    (["train", "/srv/in"], "give the serve, watch or camera command line after --"),
    (["watch", "/srv/in", "--product", "cell"], "Missing option '--line'"),
])
def test_a_serve_command_line_serve_would_refuse_is_refused_now_not_at_boot(tmp_path, args, said):
    r = run_in_process("service-unit", "--user", "line1", "--", *args, cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert said in r.stderr and "[Service]" not in r.stdout, r.stderr


def test_what_cannot_be_written_in_a_unit_is_refused_and_a_shell_setting_not_carried_is_named(tmp_path):
    r = run_in_process("service-unit", "--user", "line1", "--working-dir", tmp_path / "ends with a space ", "--",
                       "serve", cwd=tmp_path)
    assert r.returncode == 2 and "cannot be written in a systemd unit" in r.stderr, r.stderr
    r = run_in_process("service-unit", "--user", "line one", "--", "serve", cwd=tmp_path)
    assert r.returncode == 2 and "not an account name" in r.stderr, r.stderr
    r = run_in_process("service-unit", "--user", "line1", "--", "serve", cwd=tmp_path,
                       env={"LINEGUARD_DB_SCHEMA": "line_1"})
    assert r.returncode == 0, r.stderr
    assert "LINEGUARD_DB_SCHEMA" in r.stderr and "--env-file" in r.stderr
    assert _settings(r.stdout)["WorkingDirectory"] == [str(Path(tmp_path)).replace("%", "%%")]
