"""Second-opinion review of the day's changes, part B: what the review found, each shown
failing before its fix.

`lineguard serve-ray` is a third way to start the station (beside `serve` and
`python -m lineguard.server`): it opened a backup folder as the station's data folder,
which `serve` and `python -m lineguard.server` refuse (opened, its database is changed and
the next backup into it refuses), and a bad LINEGUARD_* variable ended it in a traceback,
not the one line and exit 2 that serve gives.
"""
from __future__ import annotations

import pytest

from cli_runner import run_in_process

pytest.importorskip("ray")


@pytest.fixture
def no_ray_start(monkeypatch):
    """serve-ray's run_station, recorded instead of started: the checks before it are the test."""
    from lineguard.server import ray_serve
    started: list = []
    monkeypatch.setattr(ray_serve, "run_station", lambda config, **kw: started.append(config))
    return started


def test_serve_ray_refuses_a_backup_folder_as_its_data_folder(tmp_path, no_ray_start):
    from lineguard.line.backup import MARKER
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / MARKER).write_text("")
    r = run_in_process("serve-ray", "--data", backup, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "is a backup made by `lineguard backup`" in r.stderr and "lineguard restore --from" in r.stderr
    assert no_ray_start == []          # refused before Ray or a replica opened it


def test_serve_ray_names_a_bad_lineguard_variable_in_one_line(tmp_path, no_ray_start):
    r = run_in_process("serve-ray", "--data", tmp_path / "station", cwd=tmp_path,
                       env={"LINEGUARD_MAX_BATCH": "many"})
    assert r.returncode == 2, r.stderr
    assert "LINEGUARD_MAX_BATCH" in r.stderr and "Traceback" not in r.stderr
    assert no_ray_start == []


def test_serve_ray_refuses_a_mistyped_db_schema_as_serve_does(tmp_path, no_ray_start):
    """hd_aa for hd_a: the replicas made a new, empty station there and took the line's
    parts into it; serve refuses the slip naming the schema meant."""
    from conftest import PG_URL, pg_reachable
    if not pg_reachable():
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432")
    import uuid

    from lineguard.line.db import Database
    meant = f"lg_rvb_{uuid.uuid4().hex[:8]}x"
    db = Database(PG_URL, schema=meant)
    try:
        db.upgrade()
        r = run_in_process("serve-ray", "--db", PG_URL, "--db-schema", meant + "x", "--data", tmp_path / "station",
                           cwd=tmp_path)
        assert r.returncode == 2, r.stderr
        assert "holds no station" in r.stderr and f"--db-schema {meant}" in r.stderr
        assert no_ray_start == []
    finally:
        db.drop_schema()
        db.dispose()


# A database password with "?" or "#" in it, not percent-encoded: SQLAlchemy reads it whole
# (make_url: password 'pa?ss', host db), so the station connects with it; the printed URL
# (serve's "new station in ... of URL", "cannot use the database URL", keys create) went
# through make_url's hide_password before and showed "***", then through without_password,
# which stopped at the "?" and showed it whole.
DB_WITH_ODD_PASSWORD = ["postgresql://lg:pa?ss@db:5432/line", "postgresql://lg:pa#ss@db/line"]


@pytest.mark.parametrize("url", DB_WITH_ODD_PASSWORD)
def test_a_database_password_with_a_question_mark_or_hash_is_not_printed(url):
    from sqlalchemy.engine import make_url

    from lineguard.cli.station import _database_shown
    from lineguard.line.config import StationConfig, without_password
    from lineguard.server.app import _db_problem
    secret = make_url(url).password
    assert secret in url           # the URL as the station reads it: that is its password
    for shown in (without_password(url), _database_shown(url, "--db"),
                  _db_problem(StationConfig(db_url=url), RuntimeError("refused"))):
        assert secret not in shown and "lg:***@db" in shown, shown


# a port, then an "@" further on (a webhook mailing the shift): no password, so neither
# hidden nor refused in a unit; a user without a password and an "@" in the query likewise
NO_PASSWORD = ["https://hooks.plant:8443/notify?to=ops@plant.example", "http://cam:8080/x?mail=a@b",
               "postgresql://u@h/db?application_name=a:b@c"]


def test_service_unit_refuses_such_a_database_url_on_its_command_line_and_no_other():
    from lineguard.cli.service import _password_in
    from lineguard.line.config import without_password
    assert [url for url in NO_PASSWORD if without_password(url) != url or _password_in(url)] == []
    assert [url for url in DB_WITH_ODD_PASSWORD if not _password_in(url)] == []


def test_reference_remove_with_a_size_given_twice_removes_each_photo_once(tmp_path):
    """`--size 64x64 --size 64X64` (the warning's command typed again, a size pasted twice):
    each photo was picked once per --size, removed the first time, then "not found" the
    second: exit 1 after removing them all, as if it had failed."""
    from click.testing import CliRunner
    from test_camera_change_walk import _folder, _station

    from lineguard.cli.reference import reference_app as app
    data = _station(tmp_path)
    run = CliRunner().invoke
    r = run(app, ["add", "--data", str(data), "--product", "cell", str(_folder(tmp_path / "old", 64, 2, 0))])
    assert r.exit_code == 0, r.output
    r = run(app, ["remove", "--data", str(data), "--product", "cell", "--size", "64x64", "--size", "64X64"])
    assert r.exit_code == 0, r.output
    assert "removed 2 reference photo(s)" in r.output
