"""`python -m lineguard.server --data DIR` refuses a backup folder as its data folder, as
`lineguard serve --data` does, by the same check (line.data_folders.refuse_backup_folder).

It opened the backup as its station: the backup's database was switched to a write-ahead
log (changed), and the next `lineguard backup` into the folder refused ("changed since the
backup made it"). These stop where the station would be opened: `serve` is a stand-in that
fails the test if reached by a folder that should have been refused.
"""
from __future__ import annotations

import pytest

from lineguard.line.backup import backup_station
from lineguard.line.config import StationConfig
from lineguard.server import __main__ as server_main

pytest.importorskip("fastapi")


@pytest.fixture
def backup(tmp_path, monkeypatch):
    """A station's folder and a backup of it (a real one, made by lineguard backup's code)."""
    for var in ("LINEGUARD_DATA", "LINEGUARD_DB", "LINEGUARD_DB_SCHEMA"):
        monkeypatch.delenv(var, raising=False)
    from lineguard.line.station import Station
    data = tmp_path / "line1"
    Station(StationConfig(data_dir=data, min_free_gb=0)).close()
    bk = tmp_path / "usb" / "line1"
    backup_station(data, bk)
    return data, bk


@pytest.fixture
def started(monkeypatch):
    """The settings `serve` was called with; nothing listens."""
    calls: list = []
    monkeypatch.setattr(server_main, "serve", lambda cfg, **kw: calls.append(cfg))
    return calls


def _refused(argv, capsys, bk):
    before = (bk / "lineguard.db").read_bytes()
    with pytest.raises(SystemExit) as exc:
        server_main.main(argv)
    err = " ".join(capsys.readouterr().err.split())
    assert exc.value.code == 2, err
    assert f"{bk} is a backup made by `lineguard backup`" in err and f"lineguard restore --from {bk}" in err, err
    assert (bk / "lineguard.db").read_bytes() == before and not (bk / "lineguard.db-wal").exists()


def test_a_backup_folder_as_data_is_refused_and_the_station_folder_is_not(backup, started, capsys):
    data, bk = backup
    _refused(["--data", str(bk), "--min-free-gb", "0"], capsys, bk)
    assert not started
    # the folder the backup was made of starts
    server_main.main(["--data", str(data), "--min-free-gb", "0"])
    assert [cfg.data_dir for cfg in started] == [data]


def test_a_backup_folder_from_lineguard_data_is_refused(backup, started, capsys, monkeypatch):
    _data, bk = backup
    monkeypatch.setenv("LINEGUARD_DATA", str(bk))
    _refused(["--min-free-gb", "0"], capsys, bk)
    assert not started


def test_a_backups_database_as_db_is_refused(backup, started, capsys, tmp_path):
    """--db naming the backup's SQLite file, the data folder elsewhere: the same check's second half."""
    _data, bk = backup
    _refused(["--data", str(tmp_path / "new"), "--db", f"sqlite:///{bk / 'lineguard.db'}", "--min-free-gb", "0"],
             capsys, bk)
    assert not started
