"""What a walk of the README's start-up and "Run the station at boot" found in `serve`.

- `--db-wait` did not bound the wait on a database server that takes the connection and
  never answers: each try cost two 10 s timeouts (the schema check, then the opening), and
  the wait counted only from the end of the first: `--db-wait 12` ended at 43 s.
- A --db port that is not a number (`db:notaport`, `[::1:5432`) ended serve and `keys list`
  in a traceback, exit 1.
- libpq's key=value words as --db were refused naming SQLAlchemy's parser, with the
  password in clear; service-unit wrote them, password and all, into the unit.
- A refused serve (exit 2, "refused, nothing done") left a new station folder behind: its
  --model was refused only after the database was made, and the next `keys create` took
  that folder as a station without --new.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from cli_runner import run_in_process, run_serve_refusal
from silent_server import silent_server as silent_port
from test_serve_port_taken import _free_port, _the_line

pytest.importorskip("fastapi")
pytest.importorskip("psycopg")

SECRET = "secret8"


@pytest.fixture
def silent_server():
    """A port that takes every connection and never says a word (a database PC hung, a
    firewall dropping packets after the handshake)."""
    with silent_port() as port:
        yield port


# --- 5: --db-wait bounds the wait on a silent server ------------------------------------

def test_db_wait_ends_within_its_seconds_and_one_try_on_a_server_that_never_answers(tmp_path, silent_server):
    db_wait, one_try, slack = 3, 10, 5
    began = time.monotonic()
    r = run_in_process("serve", "--data", tmp_path / "st_silent", "--db",
                       f"postgresql://postgres:{SECRET}@127.0.0.1:{silent_server}/test", "--db-schema", "f3_silent",
                       "--db-wait", db_wait, "--port", _free_port(), cwd=tmp_path)
    took = time.monotonic() - began
    assert r.returncode == 75, r.stdout + r.stderr
    assert took < db_wait + one_try + slack, f"{took:.1f} s:\n{r.stderr}"
    assert f"did not take connections in {db_wait} s" in r.stderr, r.stderr
    assert SECRET not in r.stdout + r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "st_silent").exists()


def test_the_schema_check_says_a_silent_server_instead_of_trying_it_twice(tmp_path, silent_server):
    """One try at opening is one 10 s timeout: the schema check's timed-out connection is
    the try's answer (the opening would wait its own 10 s for the same silence)."""
    from lineguard.cli.station import _schema_without_station
    from lineguard.line.config import StationConfig
    from lineguard.line.db import not_up_yet
    from lineguard.server.app import StartupError
    cfg = StationConfig(data_dir=tmp_path / "st", db_url=f"postgresql://postgres@127.0.0.1:{silent_server}/test"
                        "?connect_timeout=2", db_schema="f3_silent", min_free_gb=0)
    with pytest.raises(StartupError) as said:
        _schema_without_station(cfg, False)
    assert not_up_yet(said.value.__cause__) is not None, said.value
    assert "cannot use the database" in str(said.value)


# --- 6: a --db port that is not a number ------------------------------------------------

@pytest.mark.parametrize("url, where", [
    (f"postgresql://u:{SECRET}@db:notaport/x", "db:notaport"),
    (f"postgresql://u:{SECRET}@[::1:5432/x", "[::1:5432"),
])
def test_a_db_port_that_cannot_be_read_is_one_line_and_exit_2(tmp_path, url, where):
    r = run_serve_refusal("--data", tmp_path / "st_dsn", "--db", url, "--port", _free_port(), cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    line = _the_line(r.stderr)
    assert f"its host and port ({where}) cannot be read" in line and "u:***@" in line, line
    assert SECRET not in r.stdout + r.stderr
    assert not (tmp_path / "st_dsn").exists()
    # the commands that look after a station read --db in the same place
    r = run_in_process("keys", "list", "--data", tmp_path / "st_dsn", "--db", url, cwd=tmp_path)
    assert r.returncode == 2 and f"({where}) cannot be read" in _the_line(r.stderr), r.stderr
    assert SECRET not in r.stdout + r.stderr


def test_a_port_out_of_range_and_another_kind_of_database_are_refused_before_anything_is_made(tmp_path):
    for url, said in ((f"postgresql://u:{SECRET}@db:99999999/x", "port 99999999 is not a TCP port"),
                      ("mysql://u@127.0.0.1/x", "PostgreSQL (postgresql://user@host:5432/db) or SQLite")):
        r = run_serve_refusal("--data", tmp_path / "st_fresh1", "--db", url, "--port", _free_port(), cwd=tmp_path)
        assert r.returncode == 2 and said in _the_line(r.stderr), r.stderr
        assert SECRET not in r.stderr
        assert not (tmp_path / "st_fresh1").exists()


def test_lineguard_db_is_named_when_the_variable_is_at_fault(tmp_path, monkeypatch):
    for var in [v for v in __import__("os").environ if v.startswith("LINEGUARD_")]:
        monkeypatch.delenv(var)
    r = run_serve_refusal("--data", tmp_path / "st", "--port", _free_port(), cwd=tmp_path,
                          env={"LINEGUARD_DB": f"postgresql://u:{SECRET}@db:notaport/x"})
    assert r.returncode == 2, r.stderr
    assert "error: LINEGUARD_DB postgresql://u:***@db:notaport/x" in r.stderr, r.stderr
    assert SECRET not in r.stdout + r.stderr


# --- 7: libpq's key=value words ----------------------------------------------------------

KEY_VALUE = f"host=127.0.0.1 port=5432 user=postgres password={SECRET} dbname=test"


def test_key_value_words_are_refused_with_the_url_to_give_and_the_password_masked(tmp_path):
    r = run_serve_refusal("--data", tmp_path / "st_dsn", "--db", KEY_VALUE, "--db-wait", "0", "--port", _free_port(),
                          cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    line = _the_line(r.stderr)
    assert SECRET not in r.stdout + r.stderr, line
    assert "--db takes a URL (postgresql://user@host:5432/db)" in line, line
    assert "password=***" in line and "give postgresql://postgres:***@127.0.0.1:5432/test" in line, line
    assert "SQLAlchemy" not in line
    assert not (tmp_path / "st_dsn").exists()


def test_a_key_value_password_is_masked_wherever_a_database_is_shown():
    from lineguard.line.config import without_password
    assert without_password(KEY_VALUE) == "host=127.0.0.1 port=5432 user=postgres password=*** dbname=test"
    assert without_password("host=db password='se cret' dbname=plant") == "host=db password=*** dbname=plant"
    assert without_password("/srv/cam1") == "/srv/cam1"


def test_service_unit_refuses_a_key_value_password_as_a_urls(tmp_path):
    r = run_in_process("service-unit", "--user", "nobody", "--", "serve", "--data", tmp_path / "l1", "--db",
                       f"host=db user=u password={SECRET} dbname=plant", cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    line = _the_line(r.stderr)
    assert "--db holds a password" in line and "--env-file" in line and "LINEGUARD_DB=postgresql://" in line, line
    assert SECRET not in r.stdout + r.stderr and "ExecStart" not in r.stdout
    # without a password: no unit that serve refuses at every boot
    r = run_in_process("service-unit", "--user", "nobody", "--", "serve", "--data", tmp_path / "l1", "--db",
                       "host=db user=u dbname=plant", cwd=tmp_path)
    assert r.returncode == 2 and "give postgresql://u@db:5432/plant" in _the_line(r.stderr), r.stderr
    assert "ExecStart" not in r.stdout


# --- 8: a refused serve makes nothing ---------------------------------------------------

def test_an_unusable_model_file_is_refused_before_the_station_is_made(tmp_path):
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "notimg.png").write_bytes(b"hello, not an image and not a model\n")
    r = run_in_process("serve", "--data", tmp_path / "st_port8", "--model", odd / "notimg.png", "--product", "cell",
                       "--port", _free_port(), cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    line = _the_line(r.stderr)
    assert "not a usable lineguard model" in line and "lineguard export" in line, line
    assert not (tmp_path / "st_port8").exists()
    # so no station is there for `keys create` to take without --new
    r = run_in_process("keys", "create", "--data", tmp_path / "st_port8", "--role", "admin", cwd=tmp_path)
    assert r.returncode == 2 and "--new" in r.stderr, r.stdout + r.stderr


def _refused_after_making(made: list):
    """open_station as a start refused once its folder is made (a model whose body does not
    load, say): the folder and a database file made, then StartupError."""
    import lineguard.server.app as server_app

    def open_station(cfg, *_a, **_k):
        Path(cfg.data_dir).mkdir(parents=True, exist_ok=True)
        import sqlite3      # a new station's database: migrated, nothing in it yet
        con = sqlite3.connect(Path(cfg.data_dir) / "lineguard.db")
        con.execute("CREATE TABLE inspections (id INTEGER PRIMARY KEY)")
        con.close()
        (Path(cfg.data_dir) / "images").mkdir(exist_ok=True)
        made.append(cfg.data_dir)
        raise server_app.StartupError("--model m.lgm: not a usable lineguard model (refused after the folder)")
    return open_station


def test_a_start_refused_after_it_made_the_station_folder_removes_it(tmp_path, monkeypatch):
    import lineguard.server.app as server_app
    made: list = []
    monkeypatch.setattr(server_app, "open_station", _refused_after_making(made))
    data = tmp_path / "new" / "st_port8"          # its parent new too: made by this start as well
    r = run_in_process("serve", "--data", data, "--port", _free_port(), "--min-free-gb", "0", cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert made and "refused after the folder" in _the_line(r.stderr)
    assert not data.exists() and not (tmp_path / "new").exists()


def test_a_refused_start_never_removes_a_folder_that_was_there_before(tmp_path, monkeypatch):
    import lineguard.server.app as server_app
    made: list = []
    monkeypatch.setattr(server_app, "open_station", _refused_after_making(made))
    data = tmp_path / "st_before"
    data.mkdir()
    (data / "notes.txt").write_text("the plant's own file")
    r = run_in_process("serve", "--data", data, "--port", _free_port(), "--min-free-gb", "0", cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert made and (data / "notes.txt").read_text() == "the plant's own file"
    assert (data / "lineguard.db").exists()        # inside a folder that was there: not this start's to judge


def test_a_recorded_plc_camera_starts_playing_as_the_links_go_ready(monkeypatch):
    """Walk: `serve --plc-camera FOLDER` played the folder out while the station warmed up
    (11 frames at 5 fps), so every trigger of a line-sim run was answered NO_IMAGE."""
    import socket

    from lineguard.cli.station import _release_plcs_when_up
    order: list = []

    class Link:
        class hs:
            @staticmethod
            def release():
                order.append("links ready")

    class Recorded:
        def start(self):
            order.append("camera plays")
    with socket.socket() as web:            # the station's web server, answering
        web.bind(("127.0.0.1", 0))
        web.listen(1)
        _release_plcs_when_up([Link()], None, {}, "L1", "127.0.0.1", web.getsockname()[1], played=Recorded())
    assert order == ["camera plays", "links ready"]


def test_a_refused_start_keeps_a_folder_another_start_uses_or_a_drive_mounted_over_it(tmp_path):
    """Review: two starts on one new --data at once, the second refused late, removed the
    folder (and the live database) of the first; a drive mounted over the folder since
    would have gone the same way."""
    import sqlite3
    from types import SimpleNamespace

    from lineguard.cli.station import _folder_identity, _remove_what_this_start_made
    made = tmp_path / "new"
    made.mkdir()
    db = made / "lineguard.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE station_runs (id INTEGER PRIMARY KEY, pid INTEGER)")
    con.execute("INSERT INTO station_runs (pid) VALUES (?)", (os.getpid() + 1,))     # another process's run
    con.commit()
    con.close()
    cfg = SimpleNamespace(sqlite_path=db)
    _remove_what_this_start_made(made, cfg, _folder_identity(made))
    assert db.is_file()                                    # kept: another start serves there
    _remove_what_this_start_made(made, cfg, (0, 0))        # not the folder this start made
    assert db.is_file()
    con = sqlite3.connect(db)
    con.execute("DELETE FROM station_runs")
    con.commit()
    con.close()
    _remove_what_this_start_made(made, cfg, _folder_identity(made))
    assert not made.exists()                               # this start's alone: removed
