"""`keys create --new` (and `users add --new`) set up a new PostgreSQL station for its --data
folder, and claim the database for that folder as serve's first start does (walk C, two lines on
one database). It said "new station: made its database ... (data folder fa)" but claimed
nothing: `serve --data fb` on the same database was then accepted and took it, and `serve
--data fa`, the station the engineer had set up, was refused ("records point at ... fb")."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from conftest import PG_URL, pg_reachable
from fake_inspector import FakeInspector

from lineguard.cli import app


@pytest.fixture
def schema(monkeypatch):
    if not pg_reachable():
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432 (run `make services`)")
    import uuid
    from lineguard.line.db import Database
    monkeypatch.delenv("LINEGUARD_LET_GO_OF_FOLDER", raising=False)
    for name in ("LINEGUARD_DATA", "LINEGUARD_DB", "LINEGUARD_DB_SCHEMA"):
        monkeypatch.delenv(name, raising=False)
    name = f"lg_test_{uuid.uuid4().hex[:10]}"
    yield name
    db = Database(PG_URL, schema=name)
    db.drop_schema()
    db.dispose()


def _serve(folder, schema):
    """What `serve --data FOLDER --db PG_URL --db-schema SCHEMA` opens first."""
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    return Station(StationConfig(data_dir=folder, db_url=PG_URL, db_schema=schema), loader=FakeInspector.load)


@pytest.mark.parametrize("verb", [["keys", "create", "--role", "admin", "--name", "first-admin"],
                                  ["users", "add", "ines", "--role", "admin", "--password-stdin"]])
def test_a_new_station_is_claimed_for_the_folder_it_was_set_up_with(tmp_path, schema, verb):
    from lineguard.line.data_folders import OtherDataFolder
    fa, fb = tmp_path / "fa", tmp_path / "fb"
    made = CliRunner().invoke(app, [*verb, "--new", "--data", str(fa), "--db", PG_URL, "--db-schema", schema],
                              input="a long enough password 1\n")
    assert made.exit_code == 0, made.output
    assert "made its database" in made.output and str(fa.resolve()) in made.output
    # another folder's station on the same database is refused, naming the folder set up
    with pytest.raises(OtherDataFolder) as refused:
        _serve(fb, schema)
    assert str(fa.resolve()) in refused.value.message
    # the station set up starts, and so does it again
    _serve(fa, schema).close()
    _serve(fa, schema).close()
    # a command for the other folder is refused too, before it changes anything
    other = CliRunner().invoke(app, ["keys", "create", "--role", "operator", "--data", str(fb), "--db", PG_URL,
                                     "--db-schema", schema, "--new"])
    assert other.exit_code != 0 and str(fa.resolve()) in (other.output + (other.stderr or "")), other.output
