"""`lineguard users` walk (2): a reset password (or a user let in again) lifts the name's
sign-in lock-out at once, as the API's reset does; a password asked twice whose input ends
first (a script piping two that differ) says so, exit 2, not Ctrl-C's 130."""
from __future__ import annotations

from pathlib import Path

import click
import pytest
from cli_runner import run_in_process

from lineguard.line.config import StationConfig
from lineguard.line.db import Database
from lineguard.line.sign_ins import SignInThrottle


@pytest.fixture
def station(tmp_path) -> str:
    data = str(tmp_path / "st")
    for name, role in [("boss", "admin"), ("tom", "operator")]:
        added = run_in_process("users", "add", name, "--role", role, "--password-stdin", "--data", data, "--new",
                               input=f"{name}-first-pw\n")
        assert added.returncode == 0, added.stderr
    return data


def _locked_out(data: str) -> bool:
    """Whether sign-ins as tom are refused now, after five wrong passwords from the line's PC
    (asked from another address: the check itself is a try, and counts)."""
    database = Database(StationConfig(data_dir=Path(data)).database_url)
    try:
        throttle = SignInThrottle(database)
        return throttle.attempt("tom", "10.0.0.99") > 0
    finally:
        database.dispose()


def _guessed(data: str) -> None:
    database = Database(StationConfig(data_dir=Path(data)).database_url)
    try:
        throttle = SignInThrottle(database)
        for _ in range(5):
            throttle.attempt("Tom", "10.0.0.7")      # any case: one name
    finally:
        database.dispose()


def test_a_password_reset_or_a_user_let_in_again_lifts_the_names_lock_out(station):
    _guessed(station)
    assert _locked_out(station)
    reset = run_in_process("users", "password", "tom", "--password-stdin", "--data", station, input="tom-second-pw\n")
    assert reset.returncode == 0, reset.stderr
    assert not _locked_out(station)
    assert "lock-out" in reset.stdout
    _guessed(station)
    for verb in ("disable", "enable"):
        assert run_in_process("users", verb, "tom", "--data", station).returncode == 0
    assert not _locked_out(station)
    said = run_in_process("users", "password", "--help").stdout
    assert "within a few minutes" not in said and "lifted at once" in said


def test_two_passwords_that_differ_and_then_no_more_input_say_so_with_exit_2(station):
    r = run_in_process("users", "add", "pat", "--role", "operator", "--data", station,
                       input="abcdefgh1\nabcdefgh2\n")
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Ctrl-C" not in r.stderr
    assert "input ended" in r.stderr and "differ" in r.stderr and "--password-stdin" in r.stderr, r.stderr
    assert "pat\t" not in run_in_process("users", "list", "--data", station).stdout
    nothing = run_in_process("users", "password", "tom", "--data", station, input="")
    assert nothing.returncode == 2 and "input ended" in nothing.stderr and "differ" not in nothing.stderr


def test_ctrl_c_at_the_password_prompt_stays_an_interruption(station, monkeypatch):
    def pressed(*_a, **_k):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise click.exceptions.Abort() from None    # as click's prompt turns Ctrl-C into Abort
    monkeypatch.setattr(click, "prompt", pressed)
    r = run_in_process("users", "add", "pat", "--role", "operator", "--data", station)
    assert r.returncode == 130 and "interrupted (Ctrl-C)" in r.stderr, r.stderr
