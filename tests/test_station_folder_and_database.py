"""A station's folder, database and schema that cannot be one station are refused (exit 2)
by every command that takes them, before anything is opened or made (walk: keys, users,
change log, backups, old records).

- `serve` on a PostgreSQL station's folder without --db (a plant's env file that lost
  LINEGUARD_DB and kept LINEGUARD_DB_SCHEMA) said "new station: ... made one" and ran a new,
  empty SQLite station in that folder;
- --db-schema (or LINEGUARD_DB_SCHEMA) with no PostgreSQL database was ignored without a
  word: `keys list --db-schema x` listed the SQLite station's keys, `serve --db-schema zz` ran;
- `old-records --delete --archive-to` a folder not there said "deleted 0 parts' records",
  then what to do twice and "what was deleted is in the change log", nothing deleted;
- `old-records` on a station set up with `keys create --new` and never served was refused
  ("no images/ folder"), though it had nothing to look at or delete.
"""
from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "server"))
from fake_inspector import FakeInspector, png_bytes  # noqa: E402

from cli_runner import run_in_process, run_serve_refusal  # noqa: E402


def _sqlite_station(folder: Path) -> None:
    made = run_in_process("keys", "create", "--role", "admin", "--name", "first", "--data", folder, "--new")
    assert made.returncode == 0, made.stderr


@pytest.mark.parametrize("db_backend", ["postgresql"], indirect=True)
@pytest.mark.new_schema
def test_a_postgresql_stations_folder_without_its_database_is_refused_naming_it(db_backend, tmp_path):
    from lineguard.line.data_folders import DB_FILE, ID_FILE
    url, schema = db_backend
    pgst = tmp_path / "pgst"
    made = run_in_process("keys", "create", "--role", "admin", "--name", "first", "--new", "--db", url,
                          "--db-schema", schema, "--data", pgst)
    assert made.returncode == 0, made.stderr
    assert (pgst / ID_FILE).is_file() and (pgst / DB_FILE).is_file()
    # the plant's env file lost LINEGUARD_DB and kept the schema
    r = run_serve_refusal("--data", pgst, env={"LINEGUARD_DB_SCHEMA": schema})
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "is the data folder of a station on PostgreSQL" in r.stderr and "new station" not in r.stdout + r.stderr
    assert f"--db {url} --db-schema {schema}" in r.stderr, r.stderr        # the database to give, by name
    assert not (pgst / "lineguard.db").exists()
    for args in (["keys", "list"], ["users", "list"], ["old-records", "--keep-days", "90"],
                 ["sweep", "--dry-run"], ["parts", "--out", tmp_path / "p.csv"]):
        r = run_in_process(*args, "--data", pgst)
        assert r.returncode == 2 and f"--db {url} --db-schema {schema}" in r.stderr, (args, r.stderr)
        assert not (pgst / "lineguard.db").exists(), args


@pytest.mark.parametrize("db_backend", ["postgresql"], indirect=True)
@pytest.mark.new_schema
def test_old_records_on_a_station_never_served_says_there_is_nothing_to_delete(db_backend, tmp_path):
    """Its images/ folder is made at its first start: a station set up with `keys create
    --new` has none, and no part either. A folder with no images/ whose database holds
    parts is still refused (a wrong --data: every image would look deleted)."""
    url, schema = db_backend
    pgst = tmp_path / "pgst"
    made = run_in_process("keys", "create", "--role", "admin", "--name", "first", "--new", "--db", url,
                          "--db-schema", schema, "--data", pgst)
    assert made.returncode == 0, made.stderr
    where = ["--data", pgst, "--db", url, "--db-schema", schema]
    for args in (["old-records", "--keep-days", "90"], ["old-records", "--keep-days", "90", "--delete"],
                 ["sweep", "--dry-run"]):
        r = run_in_process(*args, *where)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        assert "no part recorded at this station yet" in r.stdout, r.stdout
    assert not (pgst / "images").exists()
    from lineguard.line.db import Database
    from lineguard.line.orm import Inspection
    db = Database(url, schema=schema)
    try:
        with db.session() as s:
            s.add(Inspection(part_id="p1", line="L1", station="S1", product="cell", verdict="OK", score=0.1,
                             threshold=0.5, pixel_threshold=0.5, model_id="m", model_version="1",
                             image_sha256="0" * 64, image_width=8, image_height=8))
    finally:
        db.dispose()
    r = run_in_process("old-records", "--keep-days", "90", *where)
    assert r.returncode == 2 and "no images/ folder" in r.stderr, (r.stdout, r.stderr)


def test_a_folder_with_only_a_postgresql_id_is_refused_without_a_database_named(tmp_path, serve_ports_anywhere):
    """A folder claimed by a lineguard that noted no database beside its id: still refused,
    saying to give --db and --db-schema."""
    from lineguard.line.data_folders import ID_FILE
    folder = tmp_path / "pg-station"
    folder.mkdir()
    (folder / ID_FILE).write_text("05299f24-0000-4000-8000-000000000000\n")
    r = run_serve_refusal("--data", folder)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "is the data folder of a station on PostgreSQL" in r.stderr and "--db postgresql://" in r.stderr
    assert "--db-schema" in r.stderr and not (folder / "lineguard.db").exists()
    # a SQLite station in a folder that also holds an id is that SQLite station: let through
    _sqlite_station(tmp_path / "st")
    (tmp_path / "st" / ID_FILE).write_text("05299f24-0000-4000-8000-000000000000\n")
    assert run_in_process("keys", "list", "--data", tmp_path / "st").returncode == 0


@pytest.mark.parametrize("args", [["keys", "list"], ["users", "list"], ["alarm-rules", "list"],
                                  ["old-records", "--keep-days", "90"], ["sweep", "--dry-run"],
                                  ["backup", "--to", "BK"], ["undo-upgrade"], ["serve"]], ids=" ".join)
def test_a_schema_without_a_postgresql_database_is_refused(args, tmp_path, serve_ports_anywhere):
    st = tmp_path / "st"
    _sqlite_station(st)
    (st / "images").mkdir()
    args = [str(tmp_path / "bk") if a == "BK" else a for a in args]
    run = run_serve_refusal if args == ["serve"] else (lambda *a, **k: run_in_process(*args, *a, **k))
    given = run("--data", st, "--db-schema", "x")
    assert given.returncode == 2, (given.stdout, given.stderr)
    assert "--db-schema x is a PostgreSQL station's schema" in given.stderr and "SQLite" in given.stderr
    from_env = run("--data", st, env={"LINEGUARD_DB_SCHEMA": "zz"})
    assert from_env.returncode == 2 and "LINEGUARD_DB_SCHEMA zz is a PostgreSQL" in from_env.stderr, from_env.stderr
    assert "unset LINEGUARD_DB_SCHEMA" in from_env.stderr
    sqlite_url = run("--data", st, "--db", f"sqlite:///{st / 'lineguard.db'}", "--db-schema", "x")
    assert sqlite_url.returncode == 2 and "is a PostgreSQL station's schema" in sqlite_url.stderr
    assert not (tmp_path / "bk").exists()


def test_old_records_with_an_archive_folder_not_there_says_once_that_nothing_was_deleted(tmp_path):
    from sqlalchemy import update

    from lineguard.line.config import StationConfig
    from lineguard.line.orm import Inspection, utcnow
    from lineguard.line.station import Part, Station
    data = tmp_path / "st"
    st = Station(StationConfig(data_dir=data, min_free_gb=0, store_sweep_h=0), loader=FakeInspector.load)
    try:
        st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
        for i in range(3):
            st.inspect(png_bytes(60 + i, seed=i), Part(f"b{i}", "L1", "S1", "cell"))
        st.maps.flush()
        with st.db.session() as s:
            s.execute(update(Inspection).where(Inspection.part_id != "b2")
                      .values(created_at=utcnow() - dt.timedelta(days=100)))
    finally:
        st.close()
    r = run_in_process("old-records", "--keep-days", "90", "--data", data, "--delete", "--archive-to",
                       tmp_path / "arch")
    assert r.returncode == 1, (r.stdout, r.stderr)
    said = r.stdout + r.stderr
    assert "nothing was deleted" in r.stderr and f"the archive folder {tmp_path / 'arch'} does not exist" in r.stderr
    assert said.count("run this command again") == 1 and "run it again" not in said, said
    assert "what was deleted" not in said and "writable" not in said and "give it room" not in said
    assert not (tmp_path / "arch").exists()
    (tmp_path / "arch").mkdir()
    done = run_in_process("old-records", "--keep-days", "90", "--data", data, "--delete", "--archive-to",
                          tmp_path / "arch")
    assert done.returncode == 0 and "deleted 2 parts' records" in done.stdout, (done.stdout, done.stderr)


def test_python_m_lineguard_server_refuses_the_same_places(tmp_path, monkeypatch, capsys):
    """`python -m lineguard.server` (containers) makes serve's place checks: it ran a schema
    beside a SQLite station, and a --backup-to inside the data folder, without a word."""
    from lineguard.server import __main__ as server_main
    started = []
    monkeypatch.setattr(server_main, "serve", lambda cfg, **kw: started.append(cfg))
    st = tmp_path / "st"
    _sqlite_station(st)
    with pytest.raises(SystemExit) as ended:
        server_main.main(["--data", str(st), "--db-schema", "x"])
    assert ended.value.code == 2 and "--db-schema x is a PostgreSQL station's schema" in capsys.readouterr().err
    with pytest.raises(SystemExit) as ended:
        server_main.main(["--data", str(st), "--backup-to", str(st / "bk")])
    err = capsys.readouterr().err
    assert ended.value.code == 2 and f"--backup-to {st / 'bk'}" in err and "is the station's folder" in err, err
    assert started == []
    server_main.main(["--data", str(st), "--backup-to", str(tmp_path / "bk")])     # a right place starts
    assert [c.backup_to for c in started] == [tmp_path / "bk"]


def test_a_sqlite_database_named_on_the_command_line_is_meant(tmp_path):
    """A plant PC whose environment names a PostgreSQL station (LINEGUARD_DB_SCHEMA set for
    every shell) runs its SQLite station with --db sqlite:///...: the environment's schema is
    set aside with a note (it was refused, "unset LINEGUARD_DB_SCHEMA", which would break the
    other station); a --db-schema typed beside that --db is still refused."""
    from lineguard.line.data_folders import ID_FILE
    st = tmp_path / "st"
    _sqlite_station(st)
    url = f"sqlite:///{st / 'lineguard.db'}"
    kept = run_in_process("keys", "list", "--data", st, "--db", url, env={"LINEGUARD_DB_SCHEMA": "line2"})
    assert kept.returncode == 0 and "first" in kept.stdout, (kept.stdout, kept.stderr)
    assert "LINEGUARD_DB_SCHEMA line2 set aside" in kept.stderr, kept.stderr
    typed = run_in_process("keys", "list", "--data", st, "--db", url, "--db-schema", "line2")
    assert typed.returncode == 2 and "--db names a SQLite database" in typed.stderr, typed.stderr
    # its database elsewhere than the folder (which holds an id from a PostgreSQL past): named, meant
    other = tmp_path / "other"
    other.mkdir()
    (other / ID_FILE).write_text("05299f24-0000-4000-8000-000000000000\n")
    elsewhere = run_in_process("keys", "list", "--data", other, "--db", url)
    assert elsewhere.returncode == 0 and "first" in elsewhere.stdout, (elsewhere.stdout, elsewhere.stderr)
    # without --db the folder is refused, saying how to make it a SQLite station's on purpose
    refused = run_in_process("keys", "list", "--data", other)
    assert refused.returncode == 2 and f"remove {ID_FILE}" in refused.stderr, refused.stderr


def test_a_noted_database_keeps_no_ssl_key_passphrase():
    from lineguard.line.config import without_password
    shown = without_password("postgresql://lg@db/line?sslmode=require&sslpassword=keypass")
    assert "keypass" not in shown and "sslpassword=***" in shown, shown


def test_the_demo_runs_its_commands_without_the_plants_station_settings(monkeypatch):
    """A PC whose environment names a line's database (LINEGUARD_DB) would have had the
    demo's parts, keys and model written into that line's station."""
    from lineguard import demo
    monkeypatch.setenv("LINEGUARD_DB", "postgresql://lg@plant/line")
    monkeypatch.setenv("LINEGUARD_DB_SCHEMA", "line2")
    monkeypatch.setenv("PATH", "/usr/bin")
    env = demo._demo_environment()
    assert not [k for k in env if k.startswith("LINEGUARD_")] and env["PATH"] == "/usr/bin"
