"""The commands that look after a station (keys, users, alarm rules and causes, parts,
old-records, sweep, backup, restore) find it as `serve` does: --data / --db / --db-schema,
else LINEGUARD_DATA / LINEGUARD_DB / LINEGUARD_DB_SCHEMA, else ./station.

They read their options alone: an admin on a station set up with LINEGUARD_DATA=/srv/line3
who ran `lineguard users add` was refused naming ./station, and with --new made a new,
empty station there without a word. Run in-process from a working folder of the test's
own, so a ./station made by mistake is seen.
"""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from lineguard.cli import app

from conftest import PG_URL, pg_reachable

PASSWORD = "line3-admin-pw\n"


def _run(args: list[str], env: dict | None = None, stdin: str | None = None):
    return CliRunner().invoke(app, args, env=env, input=stdin)


@pytest.fixture
def line3(tmp_path, monkeypatch) -> Path:
    """A station at tmp/srv/line3 (its first key made with --data, as the README says), run
    from tmp/work, where a ./station made by mistake would appear."""
    data = tmp_path / "srv" / "line3"
    r = _run(["keys", "create", "--role", "admin", "--name", "first", "--data", str(data), "--new"])
    assert r.exit_code == 0, r.output
    (data / "images").mkdir()          # as a station that ran has (sweep and old-records look for it)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return data


# every command that opens a station's folder or database, run on the station of LINEGUARD_DATA
EVERY_COMMAND = [
    ["keys", "list"], ["keys", "create", "--role", "operator"], ["users", "list"],
    ["alarm-rules", "list"], ["alarm-causes", "list"], ["parts", "--out", "parts.csv"],
    ["sweep", "--dry-run"], ["old-records", "--keep-days", "30"], ["backup", "--to", "bk"],
]


@pytest.mark.parametrize("args", EVERY_COMMAND, ids=lambda a: " ".join(a[:2]))
def test_every_admin_command_finds_the_station_of_LINEGUARD_DATA(line3, args):
    r = _run(args, env={"LINEGUARD_DATA": str(line3)})
    assert r.exit_code == 0, r.output
    assert f"folder {line3} (LINEGUARD_DATA)" in r.stderr        # said where, on stderr (stdout stays data)
    assert not Path("station").exists()


def test_users_add_goes_to_the_station_of_LINEGUARD_DATA_not_a_new_one_in_station(line3):
    env = {"LINEGUARD_DATA": str(line3)}
    added = _run(["users", "add", "maria", "--role", "engineer", "--password-stdin"], env=env, stdin=PASSWORD)
    assert added.exit_code == 0 and "user maria (engineer) added" in added.stdout, added.output
    assert "maria\tengineer" in _run(["users", "list", "--data", str(line3)]).stdout
    for change in (["users", "role", "maria", "--role", "operator"], ["users", "disable", "maria"],
                   ["users", "enable", "maria"]):
        assert _run(change, env=env).exit_code == 0, change
    assert "maria\toperator" in _run(["users", "list"], env=env).stdout
    assert _run(["keys", "revoke", "1"], env=env).exit_code == 2     # the last admin key, refused there
    assert not Path("station").exists()


def test_an_option_wins_over_its_variable_and_an_empty_variable_is_unset(line3, tmp_path):
    other = tmp_path / "srv" / "line4"
    assert _run(["keys", "create", "--role", "admin", "--name", "line4-first", "--data", str(other),
                 "--new"]).exit_code == 0
    env = {"LINEGUARD_DATA": str(line3)}
    assert "line4-first" in _run(["keys", "list", "--data", str(other)], env=env).stdout   # --data wins
    r = _run(["keys", "list"], env=env)
    assert "first" in r.stdout and "line4-first" not in r.stdout                   # the variable over ./station
    empty = _run(["keys", "list"], env={"LINEGUARD_DATA": " "})                    # unset: ./station, not there
    assert empty.exit_code == 2 and "station/lineguard.db" in empty.stderr
    assert "LINEGUARD_DATA" not in empty.stderr


def test_a_new_station_made_by_the_variable_says_where(tmp_path, monkeypatch):
    """--new with LINEGUARD_DATA makes the station there (not ./station) and says so: the
    variable must not make a station somewhere the admin did not see."""
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "srv" / "line5"
    r = _run(["keys", "create", "--role", "admin", "--new"], env={"LINEGUARD_DATA": str(target)})
    assert r.exit_code == 0, r.output
    assert r.stdout.strip().startswith("lg_") and len(r.stdout.strip().splitlines()) == 1   # stdout: the key alone
    assert (target / "lineguard.db").is_file() and not (tmp_path / "station").exists()
    assert f"folder {target} (LINEGUARD_DATA)" in r.stderr and f"{target}/lineguard.db" in r.stderr
    assert "new station" in r.stderr


def test_LINEGUARD_DB_is_the_database_and_is_warned_about_beside_a_sqlite_station(line3, tmp_path):
    other_db = tmp_path / "elsewhere" / "lineguard.db"
    other_db.parent.mkdir()
    made = _run(["users", "add", "ops", "--role", "admin", "--password-stdin", "--new"],
                env={"LINEGUARD_DB": f"sqlite:///{other_db}"}, stdin=PASSWORD)
    assert made.exit_code == 0 and other_db.is_file(), made.output
    listed = _run(["users", "list", "--data", str(line3)], env={"LINEGUARD_DB": f"sqlite:///{other_db}"})
    assert "ops\tadmin" in listed.stdout                                       # LINEGUARD_DB's users
    assert "(LINEGUARD_DB)" in listed.stderr and "not the SQLite station in" in listed.stderr
    own = _run(["users", "list", "--data", str(line3), "--db", f"sqlite:///{line3 / 'lineguard.db'}"],
               env={"LINEGUARD_DB": f"sqlite:///{other_db}"})
    assert own.exit_code == 0 and "ops" not in own.stdout and "LINEGUARD_DB" not in own.stderr   # --db wins


@pytest.mark.parametrize("args", [["keys", "list"], ["parts", "--out", "p.csv"]], ids=["keys", "parts"])
def test_a_database_of_the_variable_is_said_without_its_password(tmp_path, monkeypatch, args):
    """Nothing listens on the port (this test's range): the command ends in one line naming
    the database, never its password, and no traceback."""
    monkeypatch.chdir(tmp_path)
    r = _run(args, env={"LINEGUARD_DB": "postgresql://line:s3cret@127.0.0.1:47601/plant"})
    assert r.exit_code in (1, 2) and isinstance(r.exception, SystemExit), r.output
    assert "s3cret" not in r.output and "line:***@127.0.0.1:47601/plant" in r.output
    assert "(LINEGUARD_DB)" in r.stderr and "Traceback" not in r.output


@pytest.mark.parametrize("var, value", [("LINEGUARD_DB", "postgres//line:s3cret@host/plant"),
                                        ("LINEGUARD_DB_SCHEMA", "line 3")])
def test_a_bad_value_ends_the_command_naming_its_variable(tmp_path, monkeypatch, var, value):
    monkeypatch.chdir(tmp_path)
    for args in (["users", "list"], ["keys", "create", "--role", "admin", "--new"], ["sweep", "--dry-run"]):
        r = _run(args, env={var: value})
        assert r.exit_code == 2 and var in r.stderr, (args, r.output)
        assert "s3cret" not in r.output
    assert not (tmp_path / "station").exists()


def test_a_misspelt_variable_is_warned_about(line3):
    r = _run(["users", "list"], env={"LINEGUARD_DATADIR": str(line3)})
    assert "LINEGUARD_DATADIR is not a lineguard setting" in r.stderr and "LINEGUARD_DATA?" in r.stderr


def test_restore_goes_into_the_folder_of_LINEGUARD_DATA_but_check_reads_none(line3, tmp_path):
    assert _run(["backup", "--data", str(line3), "--to", str(tmp_path / "bk")]).exit_code == 0
    checked = _run(["restore", "--from", str(tmp_path / "bk"), "--check"], env={"LINEGUARD_DATA": str(line3)})
    assert checked.exit_code == 0 and "checked the backup" in checked.stdout, checked.output
    here = tmp_path / "new-pc" / "line3"
    restored = _run(["restore", "--from", str(tmp_path / "bk")], env={"LINEGUARD_DATA": str(here)})
    assert restored.exit_code == 0 and (here / "lineguard.db").is_file(), restored.output
    assert f"folder {here} (LINEGUARD_DATA)" in restored.stderr
    # the station's own folder is not empty: refused, nothing changed
    refused = _run(["restore", "--from", str(tmp_path / "bk")], env={"LINEGUARD_DATA": str(line3)})
    assert refused.exit_code == 2 and "not empty" in refused.stderr


def test_a_restore_where_LINEGUARD_DB_is_set_says_serve_would_open_that_database(line3, tmp_path):
    """The advice "lineguard serve --data NEW" with LINEGUARD_DB set started a station on
    that database, empty of what was restored, beside the restored folder."""
    assert _run(["backup", "--data", str(line3), "--to", str(tmp_path / "bk")]).exit_code == 0
    here = tmp_path / "new-pc"
    r = _run(["restore", "--from", str(tmp_path / "bk"), "--data", str(here)],
             env={"LINEGUARD_DB": "postgresql://line@127.0.0.1:47601/plant"})
    assert r.exit_code == 0 and (here / "lineguard.db").is_file(), r.output
    assert "warning: LINEGUARD_DB is set here, and serve would open that database" in r.stderr
    assert f"env -u LINEGUARD_DB lineguard serve --data {here}" in r.stderr
    quiet = _run(["restore", "--from", str(tmp_path / "bk"), "--data", str(tmp_path / "other-pc")])
    assert quiet.exit_code == 0 and "LINEGUARD_DB" not in quiet.output


def test_backup_and_undo_upgrade_take_the_schema_and_name_it(tmp_path, monkeypatch):
    """`backup --db-schema` was "No such option" though the README lists it, and
    undo-upgrade on a PostgreSQL station's folder spoke of a copy "beside lineguard.db", a
    file that folder never held."""
    monkeypatch.chdir(tmp_path)
    url = "postgresql://line@127.0.0.1:47601/plant"
    r = _run(["backup", "--data", str(tmp_path / "st"), "--db", url, "--db-schema", "line_3", "--to",
              str(tmp_path / "bk")])
    assert r.exit_code == 2 and "pg_dump -Fc -n line_3 -f station.dump" in r.stderr and "chmod 600" in r.stderr, \
        r.output
    assert not (tmp_path / "bk").exists()
    folder = tmp_path / "pg-station"
    folder.mkdir()
    (folder / ".lineguard-folder").write_text("05299f24-0000-4000-8000-000000000000\n")
    r = _run(["undo-upgrade", "--data", str(folder)])
    assert r.exit_code == 2, r.output
    assert f"{folder} holds no lineguard.db (the folder of a station on PostgreSQL?)" in r.stderr
    assert "beside" not in r.stderr and "pg_dump -Fc" in r.stderr
    r = _run(["undo-upgrade", "--data", str(folder), "--db", url, "--db-schema", "line_3"])
    assert r.exit_code == 2 and "(of schema line_3: -n line_3)" in r.stderr, r.output


def test_db_wait_on_a_sqlite_station_is_said_to_do_nothing(tmp_path, capsys):
    from lineguard.cli.station import _open_when_the_database_answers
    from lineguard.line.config import StationConfig
    cfg = StationConfig(data_dir=tmp_path / "st")
    assert _open_when_the_database_answers(cfg, 5.0, lambda: "opened") == "opened"
    said = capsys.readouterr().err
    assert "--db-wait applies to a database server" in said and "opened at once" in said
    assert _open_when_the_database_answers(cfg, None, lambda: "opened") == "opened"
    assert "--db-wait" not in capsys.readouterr().err


@pytest.mark.parametrize("args", [["keys", "create"], ["keys", "list"], ["keys", "revoke"], ["users", "add"],
                                  ["users", "list"], ["users", "disable"], ["users", "enable"], ["users", "role"],
                                  ["users", "password"], ["alarm-rules", "list"], ["alarm-rules", "set"],
                                  ["alarm-rules", "clear"], ["alarm-causes", "list"], ["alarm-causes", "add"],
                                  ["alarm-causes", "retire"], ["parts"], ["old-records"], ["sweep"], ["backup"],
                                  ["restore"]], ids=" ".join)
def test_help_names_the_variables(args):
    import click
    shown = " ".join(click.unstyle(_run([*args, "--help"]).output).split())     # as wrapped
    assert "[env: LINEGUARD_DATA" in shown
    if args[0] != "restore":
        assert "[env: LINEGUARD_DB]" in shown
    if args[0] != "restore":
        assert "[env: LINEGUARD_DB_SCHEMA]" in shown


@pytest.mark.skipif(not pg_reachable(), reason="PostgreSQL is not reachable at 127.0.0.1:5432")
def test_keys_and_users_on_the_postgresql_schema_of_the_variables(tmp_path, monkeypatch):
    from lineguard.line.db import Database
    monkeypatch.chdir(tmp_path)
    schema = f"lg_test_{uuid.uuid4().hex[:10]}"
    env = {"LINEGUARD_DB": PG_URL, "LINEGUARD_DB_SCHEMA": schema, "LINEGUARD_DATA": str(tmp_path / "line6")}
    try:
        made = _run(["keys", "create", "--role", "admin", "--name", "pg-first", "--new"], env=env)
        assert made.exit_code == 0, made.output
        assert f"schema {schema} (LINEGUARD_DB_SCHEMA)" in made.stderr and "(LINEGUARD_DB)" in made.stderr
        assert "pg-first" in _run(["keys", "list", "--db", PG_URL, "--db-schema", schema]).stdout
        added = _run(["users", "add", "pg-admin", "--role", "admin", "--password-stdin"], env=env, stdin=PASSWORD)
        assert added.exit_code == 0, added.output
        assert "pg-admin" in _run(["users", "list"], env=env).stdout
        assert not (tmp_path / "station").exists()
    finally:
        db = Database(PG_URL, schema=schema)
        db.drop_schema()
        db.dispose()
