"""Settings an IT person gets wrong are refused at start, in one sentence, not run on.

From an IT walk: `--db-schema hI_walk` made an empty "hI_walk" and ran the station in
hi_walk (PostgreSQL folds an unquoted name to lower case: another station's schema);
`serve --db-schema hI-walk` ended in a traceback; `serve --min-free-gb 500` on a 252 GB
disk started and deleted the oldest NG parts' images at once; and `LINEGUARD_POWER_SAFE=1`
in a unit's env file was "not a lineguard setting".
"""
from __future__ import annotations

import shutil
from collections import namedtuple

import click
import pytest
from click.testing import CliRunner

from lineguard.cli import app
from lineguard.line.config import StationConfig

from conftest import PG_URL, pg_reachable

GIB = 1024 ** 3
_Usage = namedtuple("_Usage", "total used free")


def _run(args, env=None):
    return CliRunner().invoke(app, args, env=env)


def _commands_with(option: str, group: click.Group = app, path: tuple = ()):
    """Every command of the CLI taking ``option`` (by its parameter name), as its words."""
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            yield from _commands_with(option, cmd, (*path, name))
        elif any(p.name == option for p in cmd.params):
            yield (*path, name)


SCHEMA_COMMANDS = list(_commands_with("db_schema"))


def test_the_commands_with_a_schema_are_found():
    # the list the next test walks: the three that start a station and the admin ones
    assert {("serve",), ("watch",), ("camera",), ("keys", "list"), ("users", "add")} <= set(SCHEMA_COMMANDS)


# ---- the schema name --------------------------------------------------------------------

@pytest.mark.parametrize("name", ["hI_walk", "hI-walk", "Line2", "1line", "_Line", "line 3", "a" * 64, "pg_line",
                                  "line-2", ""])
def test_a_schema_name_postgresql_reads_two_ways_or_not_at_all_is_refused(name):
    from lineguard.line.db import Database
    with pytest.raises(ValueError, match="lower-case letters"):
        StationConfig(db_schema=name)
    with pytest.raises(ValueError, match="lower-case letters"):
        Database("postgresql://postgres@127.0.0.1:18449/none", schema=name)     # nothing connects


@pytest.mark.parametrize("name", ["line_2", "hi_walk", "a", "a" * 63, "lg_test_0a1b2c", "public", "_l1"])
def test_a_lower_case_schema_name_is_taken(name):
    assert StationConfig(db_schema=name).db_schema == name


@pytest.mark.parametrize("words", SCHEMA_COMMANDS, ids=[" ".join(w) for w in SCHEMA_COMMANDS])
@pytest.mark.parametrize("name", ["hI-walk", "hI_walk"])
def test_every_command_refuses_the_schema_as_it_reads_the_option(tmp_path, monkeypatch, serve_opens, words, name):
    """One sentence, exit 2, before anything is made: serve's was a traceback (exit 1) and a
    mixed-case name ran on the lower-case schema. (No --db: a PostgreSQL one not answering
    is waited for by serve; the name is refused whatever the database.)"""
    monkeypatch.chdir(tmp_path)
    r = _run([*words, "--db-schema", name])
    assert r.exit_code == 2, (words, r.output)
    assert f"--db-schema {name!r} is not a schema name" in r.stderr, r.output
    assert "lower-case letters (a-z), digits and _, starting with a letter or _, at most 63 characters" in r.stderr
    assert "Traceback" not in r.output and not isinstance(r.exception, ValueError)
    assert list(tmp_path.iterdir()) == [] and not serve_opens     # no station folder made, none opened
    if name == "hI_walk":                                          # what PostgreSQL would have made of it
        assert "'hi_walk'" in r.stderr


@pytest.mark.parametrize("command", [["serve", "--data", "st"],
                                     ["watch", "in", "--line", "L1", "--product", "cell", "--data", "st"],
                                     ["keys", "list"]])
def test_the_variable_is_refused_in_the_same_sentence(tmp_path, monkeypatch, serve_opens, command):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    r = _run(command, env={"LINEGUARD_DB_SCHEMA": "hI_walk"})
    assert r.exit_code == 2, r.output
    assert "LINEGUARD_DB_SCHEMA" in r.stderr and "'hI_walk' is not a schema name" in r.stderr, r.output
    assert "lower-case letters" in r.stderr and "Traceback" not in r.output
    assert not serve_opens                                        # never opened on hi_walk


@pytest.fixture
def pg_case_schemas():
    """The schemas a mixed-case name could make (quoted) or run in (folded), dropped after."""
    if not pg_reachable():
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432")
    import psycopg
    names = ("hIA_case", "hia_case")

    def present() -> set:
        with psycopg.connect(PG_URL) as conn:
            return {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)",
                                               (list(names),))}
    yield present
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def test_a_mixed_case_schema_makes_nothing_in_postgresql(tmp_path, monkeypatch, pg_case_schemas):
    """keys create --new on "hIA_case" made the quoted schema hIA_case, then looked for its
    tables in hia_case (the search_path, unquoted)."""
    monkeypatch.chdir(tmp_path)
    r = _run(["keys", "create", "--role", "admin", "--new", "--db", PG_URL, "--db-schema", "hIA_case"])
    assert r.exit_code == 2 and "'hIA_case' is not a schema name" in r.stderr, r.output
    assert pg_case_schemas() == set()


# ---- the free-space floor ---------------------------------------------------------------

@pytest.fixture
def disk_252(monkeypatch):
    """The walk's data disk: 252 GB, 71.5 GB free."""
    usage = _Usage(252 * GIB, int(180.5 * GIB), int(71.5 * GIB))
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage)
    return usage


@pytest.mark.parametrize("floor", ["500", "252"])
def test_a_floor_at_or_above_the_disk_is_refused(tmp_path, serve_opens, disk_252, floor):
    r = _run(["serve", "--data", str(tmp_path / "st"), "--min-free-gb", floor])
    assert r.exit_code == 2, r.output
    said = r.stderr
    assert f"--min-free-gb {floor} GB" in said and "252.0 GB in all" in said and "71.5 GB free" in said, said
    assert "e.g. 13 GB" in said                                    # a floor that fits the disk
    assert not serve_opens and not (tmp_path / "st").exists()


def test_the_variable_is_refused_by_its_name(tmp_path, serve_opens, disk_252):
    r = _run(["serve", "--data", str(tmp_path / "st")], env={"LINEGUARD_MIN_FREE_GB": "300"})
    assert r.exit_code == 2 and "LINEGUARD_MIN_FREE_GB 300 GB" in r.stderr, r.output
    assert not serve_opens


def test_a_floor_above_the_free_space_is_said_and_the_station_starts(tmp_path, serve_opens, disk_252):
    r = _run(["serve", "--data", str(tmp_path / "st"), "--min-free-gb", "100"])
    assert "stopped before the station opens" in r.output, r.output     # it went on to open
    (cfg,) = serve_opens
    assert cfg.min_free_gb == 100.0
    warned = [line for line in r.stderr.splitlines() if line.startswith("warning: --min-free-gb 100 GB")]
    assert len(warned) == 1, r.stderr
    assert "71.5 GB free" in warned[0] and "oldest OK parts, then of the oldest NG and REVIEW parts" in warned[0]


def test_a_floor_under_the_free_space_is_not_said(tmp_path, serve_opens, disk_252):
    r = _run(["serve", "--data", str(tmp_path / "st"), "--min-free-gb", "20"])
    assert "stopped before the station opens" in r.output and "min-free-gb" not in r.stderr, r.output


def test_watch_here_is_held_to_the_same_floor(tmp_path, disk_252):
    (tmp_path / "in").mkdir()
    r = _run(["watch", str(tmp_path / "in"), "--line", "L1", "--product", "cell", "--data", str(tmp_path / "st"),
              "--min-free-gb", "400"])
    assert r.exit_code == 2 and "--min-free-gb 400 GB is not under the size of the data disk" in r.stderr, r.output


def test_a_new_stations_floor_is_measured_on_the_disk_it_will_be_on(tmp_path):
    """No folder yet: the nearest one above it that exists (the real disk here)."""
    from lineguard.line.config import disk_floor_check
    total = shutil.disk_usage(tmp_path).total / GIB
    with pytest.raises(ValueError, match="not under the size of the data disk"):
        disk_floor_check(total * 2, tmp_path / "new" / "station")
    assert disk_floor_check(0, tmp_path / "new") is None              # 0: never deletes for space


# ---- the environment's variables --------------------------------------------------------

def test_power_safe_comes_from_its_variable(tmp_path, serve_opens):
    r = _run(["serve", "--data", str(tmp_path / "st")], env={"LINEGUARD_POWER_SAFE": "1"})
    assert "stopped before the station opens" in r.output, r.output
    assert "not a lineguard setting" not in r.output
    assert serve_opens[-1].sqlite_synchronous == "FULL"
    r = _run(["serve", "--data", str(tmp_path / "st")], env={"LINEGUARD_POWER_SAFE": "maybe"})
    assert r.exit_code == 2 and "LINEGUARD_POWER_SAFE" in r.stderr and len(serve_opens) == 1, r.output
    assert "[env: LINEGUARD_POWER_SAFE]" in _run(["serve", "--help"]).output.replace("\n", " ").replace("  ", "")
