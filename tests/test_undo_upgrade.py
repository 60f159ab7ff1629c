"""`lineguard undo-upgrade`: back to the copy of a SQLite station's database taken before its
upgrade (lineguard.db.before-<revision>), safely.

Going back was by hand: stop every process, move lineguard.db with its -wal and -shm into
another folder together (left beside the copy, SQLite replays the upgraded database's log
onto it and the older version refuses it; deleted, the last writes are lost), copy the copy
in place. The command does that in an order that loses nothing, and refuses (nothing moved)
while the station runs, without a copy, with a damaged copy, or on PostgreSQL.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "server"))
from fake_inspector import FakeInspector, png_bytes  # noqa: E402

from cli_runner import run_in_process  # noqa: E402

OLD = "0031"       # an older lineguard's schema (before reference_photos, 0032)
BEFORE_PARTS, AFTER_PARTS = 4, 3


def _revision(path: Path) -> str:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    finally:
        db.close()


def _parts(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT count(*) FROM inspections").fetchone()[0]
    finally:
        db.close()


def _open(folder: Path):
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    return Station(StationConfig(data_dir=folder, min_free_gb=0, store_sweep_h=0), loader=FakeInspector.load)


def _inspect(st, n: int, first: int) -> None:
    from lineguard.line.station import Part
    for i in range(first, first + n):
        st.inspect(png_bytes(60 if i % 2 else 200, seed=i), Part(f"p{i}", "L1", "S1", "cell"))


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory) -> Path:
    """A station folder as a power cut left it just after an upgrade: its database at this
    lineguard's schema with its -wal and -shm beside it, BEFORE_PARTS parts from before the
    upgrade and AFTER_PARTS since, and lineguard.db.before-OLD. Each test copies it."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from lineguard.line import db as db_mod
    live = tmp_path_factory.mktemp("undo") / "live"
    st = _open(live)
    try:
        st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
        _inspect(st, BEFORE_PARTS, 0)
    finally:
        st.close()
    path = live / "lineguard.db"
    db = db_mod.Database(f"sqlite:///{path}")       # taken back to an older lineguard's schema
    try:
        cfg = Config()
        cfg.set_main_option("script_location", str(db_mod._MIGRATIONS))
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, OLD)
    finally:
        db.dispose()
    crashed = live.parent / "crashed"
    st = _open(live)             # this lineguard's start: the copy made, the database upgraded
    try:
        _inspect(st, AFTER_PARTS, BEFORE_PARTS)
        # its last sign of life a minute ago: the crash was not just now (see the sign-of-life test)
        with st.db.session() as s:
            s.execute(text("UPDATE station_runs SET seen_at = :t"),
                      {"t": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(minutes=1)})
        crashed.mkdir()
        # the folder's database files as a power cut leaves them (with serve's lock of its upgrades)
        for f in [*live.glob("lineguard.db*"), live / ".lineguard.db.upgrade-lock"]:
            shutil.copy2(f, crashed / f.name)
    finally:
        st.close()
    assert (crashed / "lineguard.db-wal").stat().st_size > 0 and (crashed / "lineguard.db-shm").is_file()
    assert _revision(crashed / f"lineguard.db.before-{OLD}") == OLD
    return crashed


@pytest.fixture
def station(upgraded, tmp_path) -> Path:
    data = tmp_path / "station"
    shutil.copytree(upgraded, data)
    return data


def _state(data: Path) -> dict:
    """Every file in the folder (and below) with its bytes' hash: what "untouched" means."""
    return {str(p.relative_to(data)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(data.rglob("*")) if p.is_file()}


def test_the_copy_is_put_in_place_and_the_upgraded_database_moved_aside_whole(station):
    from lineguard.line.db import schema_revisions
    head = schema_revisions()[0]
    copy = station / f"lineguard.db.before-{OLD}"
    copy_bytes = copy.read_bytes()
    r = run_in_process("undo-upgrade", "--data", station)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    # the copy in place, at the older schema, whole, with no log of the upgraded one beside it
    assert _revision(station / "lineguard.db") == OLD
    assert _parts(station / "lineguard.db") == BEFORE_PARTS
    assert not (station / "lineguard.db-wal").exists() and not (station / "lineguard.db-shm").exists()
    assert copy.read_bytes() == copy_bytes           # the copy stays: the same can be done again
    # the upgraded database moved, its three files together, the parts since the upgrade in it
    aside = [p for p in station.iterdir() if p.is_dir() and p.name.startswith(f"upgraded-{head}-")]
    assert len(aside) == 1, sorted(p.name for p in station.iterdir())
    assert sorted(p.name for p in aside[0].iterdir()) == ["lineguard.db", "lineguard.db-shm", "lineguard.db-wal"]
    assert _revision(aside[0] / "lineguard.db") == head
    assert _parts(aside[0] / "lineguard.db") == BEFORE_PARTS + AFTER_PARTS
    assert f"{AFTER_PARTS} parts recorded since the upgrade are in the moved database only" in r.stdout, out
    assert "copy that folder aside first to keep them" in r.stdout, out     # their photos: the sweep
    assert str(aside[0]) in r.stdout and "next: install the lineguard version" in r.stdout and OLD in r.stdout, out
    assert not [p for p in station.iterdir() if p.name.endswith(".tmp")]
    # run again: the database is at the copy's schema already, nothing moved
    again = run_in_process("undo-upgrade", "--data", station)
    assert again.returncode == 0 and "nothing was moved" in again.stdout, again.stdout + again.stderr
    assert len([p for p in station.iterdir() if p.name.startswith("upgraded-")]) == 1


@pytest.mark.parametrize("holder", ["a station open on it", "a write in progress"])
def test_refused_while_a_process_has_the_database_open(station, holder):
    from lineguard.line.db import schema_revisions
    st = con = None
    if holder == "a station open on it":
        st = _open(station)          # idle: its pool's connections keep the database open
    else:
        con = sqlite3.connect(station / "lineguard.db", isolation_level=None)
        con.execute("BEGIN IMMEDIATE")
        con.execute("DELETE FROM inspections WHERE 0")
    try:
        before = _state(station)
        r = run_in_process("undo-upgrade", "--data", station)
        out = r.stdout + r.stderr
        assert r.returncode == 2, out
        assert "in use by another process" in r.stderr and "nothing was moved" in r.stderr, out
        assert "serve" in r.stderr and "watch/camera" in r.stderr, out
        if st is None:
            assert _state(station) == before
        else:       # the station itself writes meanwhile (its -shm, a beat): the same files, the same database
            assert sorted(_state(station)) == sorted(before)
            assert _revision(station / "lineguard.db") == schema_revisions()[0]
        assert not [p for p in station.iterdir() if p.name.startswith("upgraded-") or p.name.endswith(".tmp")]
    finally:
        if st is not None:
            st.close()
        if con is not None:
            con.execute("ROLLBACK")
            con.close()


def test_refused_while_a_station_run_gave_a_sign_of_life_just_now(station):
    """A station on another PC (its database on a share, whose locks may not reach here)
    renews its run's last sign of life every 15 s."""
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    con = sqlite3.connect(station / "lineguard.db")
    con.execute("INSERT INTO station_runs (process, pid, started_at, seen_at) VALUES (?, 1, ?, ?)",
                ("serve on line3-pc:/srv/station", str(now - dt.timedelta(minutes=5)), str(now)))
    con.commit()
    con.close()
    before = _state(station)
    r = run_in_process("undo-upgrade", "--data", station)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "serve on line3-pc:/srv/station" in r.stderr and "nothing was moved" in r.stderr, r.stderr
    assert _state(station) == before


def test_without_a_copy_it_is_refused(station):
    (station / f"lineguard.db.before-{OLD}").unlink()
    before = _state(station)
    r = run_in_process("undo-upgrade", "--data", station)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "no copy from before an upgrade" in r.stderr and "lineguard.db.before-<revision>" in r.stderr, r.stderr
    assert _state(station) == before


@pytest.mark.parametrize("damage", ["not a database", "cut short", "another schema"])
def test_a_damaged_copy_is_refused_and_nothing_is_moved(station, damage):
    copy = station / f"lineguard.db.before-{OLD}"
    if damage == "not a database":
        copy.write_bytes(b"no SQLite file, though long enough to be read as one " * 200)
    elif damage == "cut short":
        whole = copy.read_bytes()
        copy.write_bytes(whole[: len(whole) // 2])
    else:       # a database another lineguard left under this name
        con = sqlite3.connect(copy)
        con.execute("UPDATE alembic_version SET version_num = '0030'")
        con.commit()
        con.close()
    before = _state(station)
    r = run_in_process("undo-upgrade", "--data", station)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"the copy {copy}" in r.stderr and "nothing was moved" in r.stderr, r.stderr
    assert _state(station) == before
    assert not [p for p in station.iterdir() if p.name.startswith("upgraded-") or p.name.endswith(".tmp")]


@pytest.mark.parametrize("how", ["--db", "LINEGUARD_DB"])
def test_a_postgresql_station_is_pointed_at_its_dump(tmp_path, how):
    url = "postgresql://lineguard@127.0.0.1:5432/test"
    args, env = (["--db", url], None) if how == "--db" else ([], {"LINEGUARD_DB": url})
    r = run_in_process("undo-upgrade", "--data", tmp_path / "station", *args, env=env)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "PostgreSQL" in r.stderr and "pg_dump" in r.stderr and "pg_restore" in r.stderr, r.stderr


def test_help_says_what_it_checks_and_its_exit_codes():
    r = run_in_process("undo-upgrade", "--help")
    assert r.returncode == 0, r.stdout + r.stderr
    text = " ".join(r.stdout.split())
    assert "exclusive lock" in text and "network share" in text, text
    assert "Exit 0" in text and "2: refused, nothing moved" in text and "3: stopped by the disk" in text, text


@pytest.mark.parametrize("where", ["copying the copy", "moving the -wal", "putting the copy in place"])
def test_a_disk_that_stops_it_leaves_the_database_where_it_was(station, monkeypatch, where):
    import errno
    import os

    from lineguard.line import undo_upgrade as mod
    if where == "copying the copy":
        def full(src, dst, **_k):
            Path(dst).write_bytes(Path(src).read_bytes()[:4096])      # the disk full part-way
            raise OSError(errno.ENOSPC, "No space left on device")
        monkeypatch.setattr(mod.shutil, "copyfile", full)
    elif where == "moving the -wal":
        rename = os.rename

        def fails_on_the_log(src, dst):
            if str(src).endswith("-wal"):
                raise OSError(errno.EIO, "Input/output error")
            return rename(src, dst)
        monkeypatch.setattr(mod.os, "rename", fails_on_the_log)
    else:
        def refused(*_a, **_k):
            raise OSError(errno.EACCES, "Permission denied")
        monkeypatch.setattr(mod, "_place", refused)
    before = _state(station)
    r = run_in_process("undo-upgrade", "--data", station)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "the database was left in place" in r.stderr, r.stderr
    assert _state(station) == before         # the upgraded database back whole, no folder or file left
    assert not [p for p in station.iterdir() if p.name.startswith("upgraded-") or p.name.endswith(".tmp")]
