"""What an IT person's walk found in backups, each kept fixed.

- a first backup that failed (the backup disk full, the station's database unreadable
  half-way) left its marker, its empty (or half-filled) folders, even its manifest in the
  backup folder: a folder that held no backup looked like one, a mount point was no longer
  empty, and with the marker gone by hand the station refused the folder as unmounted;
- `lineguard backup --help` named no exit code (restore's names its own).
"""
from __future__ import annotations

import errno
import re
import sqlite3

import pytest
from click.testing import CliRunner

from lineguard.cli import app
from lineguard.line import backup as backup_module
from lineguard.line.backup import MARKER, backup_station
from lineguard.line.restore import check_backup

from .test_backup import _inspect


def _full_on(monkeypatch, target, name, nth: int = 1):
    """``target.name`` raises ENOSPC from its ``nth`` call on (the backup disk fills up)."""
    real = getattr(target, name)
    calls = []

    def full(*args, **kw):
        calls.append(args)
        if len(calls) >= nth:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kw)
    monkeypatch.setattr(target, name, full)


def _unreadable_half_way(monkeypatch):
    """The station's database fails once the copy has begun (a damaged page read late)."""
    def damaged(*args, **kw):
        raise sqlite3.DatabaseError("database disk image is malformed")
    monkeypatch.setattr(backup_module, "_newest_part", damaged)


def _full_at_the_database(monkeypatch):
    """The database copy, whole, cannot be renamed into place (the last step)."""
    real = backup_module.os.replace

    def replace(src, dst, *args, **kw):
        if str(dst).endswith("lineguard.db"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst, *args, **kw)
    monkeypatch.setattr(backup_module.os, "replace", replace)


FAULTS = {
    "a part image": lambda mp: _full_on(mp, backup_module.shutil, "copyfile", nth=2),
    "the manifest": lambda mp: _full_on(mp, backup_module, "atomic_write_bytes"),
    "the database renamed in": _full_at_the_database,
    "the station's database half-way": _unreadable_half_way,
}


@pytest.mark.parametrize("fault", FAULTS)
def test_a_failed_first_backup_leaves_the_backup_disk_as_it_found_it(sqlite_station, tmp_path, monkeypatch, fault):
    st = sqlite_station(min_free_gb=0)
    _inspect(st, 4)
    disk = tmp_path / "usb"                 # the backup disk's mount point, with what it held
    (disk / "lost+found").mkdir(parents=True)
    (disk / "notes.txt").write_text("line 3 backups\n")
    dest = disk / "lineguard" / "line3"     # neither folder there yet
    with monkeypatch.context() as mp:
        FAULTS[fault](mp)
        with pytest.raises((OSError, sqlite3.Error)):
            backup_station(st.config.data_dir, dest)
    assert sorted(p.name for p in disk.iterdir()) == ["lost+found", "notes.txt"]
    # the disk plugged back in with room: the backup is made, not refused as an unmounted share's
    assert backup_station(st.config.data_dir, dest).parts == 4
    assert (dest / MARKER).exists() and check_backup(dest).whole


@pytest.mark.parametrize("fault", FAULTS)
def test_a_failed_first_backup_into_an_empty_folder_leaves_it_empty(sqlite_station, tmp_path, monkeypatch, fault):
    st = sqlite_station(min_free_gb=0)
    _inspect(st, 3)
    dest = tmp_path / "usb"
    dest.mkdir()
    with monkeypatch.context() as mp:
        FAULTS[fault](mp)
        r = CliRunner().invoke(app, ["backup", "--data", str(st.config.data_dir), "--to", str(dest)])
    assert r.exit_code == 1 and "there is no backup in the folder yet" in r.output, r.output
    assert list(dest.iterdir()) == []
    # a later backup that fails leaves the one before it whole
    backup_station(st.config.data_dir, dest)
    _inspect(st, 2, start=3)
    with monkeypatch.context() as mp:
        FAULTS[fault](mp)
        with pytest.raises((OSError, sqlite3.Error)):
            backup_station(st.config.data_dir, dest)
    report = check_backup(dest)
    assert report.whole and report.parts == 3 and (dest / MARKER).exists()


# ---- lineguard backup's exit codes, in its help -----------------------------------------------

def _help_codes() -> dict[int, str]:
    """The exit codes `lineguard backup --help` names, each with what it says of it."""
    text = " ".join(CliRunner().invoke(app, ["backup", "--help"], terminal_width=400).output.split())
    said = re.search(r"Exit (0: .*?)(?:Options:|$)", text)
    assert said, text
    pieces = re.split(r"(?:^|; )(\d): ", said.group(1).strip())
    return {int(code): words for code, words in zip(pieces[1::2], pieces[2::2])}


def test_backup_help_names_each_exit_code_the_command_returns(sqlite_station, tmp_path, monkeypatch):
    named = _help_codes()
    st = sqlite_station(min_free_gb=0, store_sweep_h=0)
    ids = _inspect(st, 3)
    data = st.config.data_dir

    def run(*args):
        return CliRunner().invoke(app, ["backup", "--data", str(data), *map(str, args)])
    seen: dict[str, int] = {}
    seen["backed up"] = run("--to", tmp_path / "bk").exit_code
    with monkeypatch.context() as mp:             # the backup disk full half-way
        _full_on(mp, backup_module.shutil, "copyfile")
        _inspect(st, 1, start=3)
        seen["disk full"] = run("--to", tmp_path / "bk").exit_code
    key = st.get(ids[0]).image_key               # a station image cut short on its own disk
    with open(st.images.path(key), "r+b") as fh:
        fh.truncate(10)
    seen["station file damaged"] = run("--to", tmp_path / "bk").exit_code
    seen["into the station's folder"] = run("--to", data / "bk").exit_code
    seen["not SQLite"] = run("--to", tmp_path / "bk2", "--db", "postgresql://lg@127.0.0.1:1/none").exit_code
    assert seen == {"backed up": 0, "disk full": 1, "station file damaged": 1, "into the station's folder": 2,
                    "not SQLite": 2}
    assert set(named) == set(seen.values()), named
    assert "backup disk" in named[1] and "damaged" in named[1], named[1]
    assert "refused" in named[2] and "nothing written" in named[2], named[2]
