"""`lineguard service-unit --user ...`: an account the unit can start as.

A walk wrote units for `--user nosuchuser`, and for `--user nobody` run from /root (the
default working folder: where service-unit ran), and got exit 0 without a word; systemd
then failed each at every start (217/USER, 200/CHDIR), started again every 10 s, for ever.
An account this PC does not have is refused now; one that cannot enter the working folder,
or cannot write the data folder, is warned about, saying what to do.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from cli_runner import run_in_process

pytest.importorskip("fastapi")
pwd = pytest.importorskip("pwd")


def _nobody() -> str:
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("this PC has no account nobody")
    if os.getuid() == pwd.getpwnam("nobody").pw_uid:
        pytest.skip("the tests run as nobody")
    return "nobody"


@pytest.fixture
def open_folder():
    """A folder every account can reach (pytest's own tmp folders are their owner's alone)."""
    from lineguard.cli import service
    where = Path(tempfile.mkdtemp(prefix="lg-unit-", dir="/tmp"))     # not a TMPDIR under a closed folder
    where.chmod(0o755)
    blocked, _ = service._blocked_on_the_way(service._account(_nobody()), where)
    if blocked is not None:
        shutil.rmtree(where, ignore_errors=True)
        pytest.skip(f"nobody cannot reach {where} on this PC ({blocked} is closed to it)")
    yield where
    shutil.rmtree(where, ignore_errors=True)


def test_an_account_this_pc_does_not_have_is_refused(tmp_path):
    r = run_in_process("service-unit", "--user", "nosuchuser-lg", "--working-dir", tmp_path, "--",
                       "serve", "--data", tmp_path / "station", cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "no such account" in r.stderr and "217/USER" in r.stderr and "useradd" in r.stderr, r.stderr
    assert r.stdout == ""          # no unit to install


def test_a_working_folder_the_account_cannot_enter_is_warned_about(open_folder):
    user = _nobody()
    private = open_folder / "root-home"
    private.mkdir(mode=0o700)
    data = open_folder / "station"
    data.mkdir(mode=0o777)
    data.chmod(0o777)
    r = run_in_process("service-unit", "--user", user, "--working-dir", private, "--", "serve", "--data", data)
    assert r.returncode == 0, r.stderr
    assert f"{user} cannot enter {private} (drwx------" in r.stderr and "200/CHDIR" in r.stderr, r.stderr
    assert "--working-dir" in r.stderr
    assert "cannot write" not in r.stderr          # its data folder is its to write


@pytest.mark.parametrize("where", ["beyond a closed folder", "not writable", "made in a folder not writable"])
def test_a_data_folder_the_account_cannot_write_is_warned_about(open_folder, where):
    user = _nobody()
    if where == "beyond a closed folder":
        closed = open_folder / "closed"
        closed.mkdir(mode=0o700)
        data = closed / "station"
        says = f"{user} cannot enter {closed}"
    elif where == "not writable":
        data = open_folder / "station"
        data.mkdir(mode=0o755)
        says = f"{user} cannot write its data folder {data} (drwxr-xr-x"
    else:
        data = open_folder / "station"
        says = f"{user} cannot write {open_folder} (drwxr-xr-x"
    r = run_in_process("service-unit", "--user", user, "--working-dir", open_folder, "--", "serve", "--data", data)
    assert r.returncode == 0, r.stderr
    assert says in r.stderr and "chown" in r.stderr, r.stderr
    assert "200/CHDIR" not in r.stderr


def _me() -> str:
    """The account running the tests by its passwd entry (a container's user may have none)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        pytest.skip("the account running the tests has no passwd entry")


def test_the_account_that_owns_its_folders_gets_no_warning(tmp_path):
    (tmp_path / "station").mkdir()
    me = _me()
    r = run_in_process("service-unit", "--user", me, "--working-dir", tmp_path, "--",
                       "serve", "--data", "station", env={"PYTHONPATH": None})
    assert r.returncode == 0, r.stderr
    assert "cannot" not in r.stderr and "no such account" not in r.stderr, r.stderr
    assert f"User={me}" in r.stdout


def test_an_account_given_by_its_number_is_looked_up_by_it(tmp_path):
    """systemd's User= takes a numeric id; it was refused as "no such account"."""
    (tmp_path / "station").mkdir()
    uid = str(pwd.getpwnam(_me()).pw_uid)
    r = run_in_process("service-unit", "--user", uid, "--working-dir", tmp_path, "--",
                       "serve", "--data", "station", env={"PYTHONPATH": None})
    assert r.returncode == 0, r.stderr
    assert "no such account" not in r.stderr and f"User={uid}" in r.stdout, r.stderr
