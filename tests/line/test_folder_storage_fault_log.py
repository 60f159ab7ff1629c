"""A hot folder inspecting here (watch --data) while the station's SQLite is locked by
another program (BEGIN EXCLUSIVE held past the wait): a walk found the watcher's output
holding SQLAlchemy's whole error, the INSERT of the part's 36 columns, a parameters line of
several KB (the part's id among them) and a link to SQLAlchemy's pages, where one line with
the database's own reason was meant."""
from __future__ import annotations

import logging
import sqlite3

from lineguard.line import db as db_mod

from .conftest import png_bytes
from .test_folder_hardening import _settle, _watcher


def _said_cleanly(line: str) -> None:
    # what an operator reads: the database's reason, nothing of the statement nor its values
    assert "database is locked" in line, line
    for raw in ("[SQL", "INSERT", "DELETE", "[parameters", "sqlalche.me", "\n"):
        assert raw not in line, f"a log line holds SQLAlchemy's raw text ({raw!r}): {line[:400]}"


def test_a_locked_database_is_said_in_one_line_without_the_parts_statement(sqlite_station, tmp_path,
                                                                            monkeypatch, caplog):
    # a short lock wait: the part's insert is refused at once, as after the 30 s a line waits
    monkeypatch.setattr(db_mod, "LOCK_WAIT_MS", 200)
    st = sqlite_station()
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "LOCKED-PART-0001.png").write_bytes(png_bytes(40, seed=71))
    w = _watcher(st, inbox)
    holder = sqlite3.connect(st.db.sqlite_file, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")         # a database tool left in a transaction
    try:
        with caplog.at_level(logging.INFO):
            _settle(w)
            # the station's write check (/health) meets the same lock: its INSERT carries 64 KB
            # of bytes as its parameters
            st.faults.clear()
            st._check_writes()
    finally:
        holder.rollback()
        holder.close()
    faults = [r.getMessage() for r in caplog.records if r.name == "lineguard.station"
              and "database" in r.getMessage()]
    assert any(m.startswith("storage fault (database)") for m in faults), faults
    assert any("write check" in m for m in faults), faults
    for line in faults:
        _said_cleanly(line)
        assert "LOCKED-PART-0001" not in line, "the part's id came out of the statement's parameters"
    # nothing was stored: the part waits in the folder for the lock to go
    assert (inbox / "LOCKED-PART-0001.png").exists() and st.query() == []
