"""Shared fixtures for the inspection core (layer 1) and the CLI tests.

The CI box has two cores and runs servers beside the tests; several OpenMP threads per
torch op fighting with them is catastrophically slow, so the whole session runs torch
single-threaded. Fitted models are made once per session: tests that need a trained
Inspector share ``fitted_inspector`` (do not mutate it; fit your own to recalibrate).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

try:  # the edge install has no torch; the layer-1 tests then skip themselves
    import torch
except ImportError:  # pragma: no cover - depends on the installed extras
    torch = None
else:
    torch.set_num_threads(1)

from pathlib import Path

import pytest

# Small enough that a PatchCore fit takes about a second on one core, large enough that
# the metrics mean something (10 good + 18 defective test parts, three of each kind).
SYNTH_N_GOOD = 40
SYNTH_N_DEFECT = 18
SYNTH_SIZE = 128


# LINEGUARD_TEST_MIGRATE_ALL=1: every station database migrated afresh (see the fixtures
# below). Read here, at import: the autouse fixture below takes every LINEGUARD_* variable
# out of each test's environment before a fixture made at the first test could read it.
MIGRATE_ALL = bool(os.environ.get("LINEGUARD_TEST_MIGRATE_ALL"))


def pytest_collection_modifyitems(config, items):
    """The tests marked slow (tens of seconds each: the demo end to end, the edge install, a
    station killed mid-stream) run first: collected in file order they came last, and one
    of them running alone on one worker while the other had nothing left was the suite's
    tail. The order among the others is kept (a stable sort; every worker sorts alike).

    The Ray pass of `make test` collects tests/scale alone (collecting the whole suite
    again cost it 8-24 s): a Ray test anywhere else would never run, so it is refused."""
    scale = Path(__file__).resolve().parent / "scale"
    astray = [item.nodeid for item in items if item.get_closest_marker("ray") is not None
              and scale not in Path(str(item.path)).resolve().parents]
    if astray:
        raise pytest.UsageError(f"Ray tests belong under tests/scale (make test's Ray pass runs only those): "
                                f"{', '.join(astray[:5])}")
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def synth_category(tmp_path_factory) -> Path:
    """A synthetic MVTec-layout category: train/good, test/<type>, ground_truth/<type>."""
    from lineguard.vision.synth import write_dataset
    root = tmp_path_factory.mktemp("synth") / "cell"
    write_dataset(root, n_good=SYNTH_N_GOOD, n_defect=SYNTH_N_DEFECT, size=SYNTH_SIZE, seed=0)
    return root


@pytest.fixture(scope="session")
def fitted_inspector(synth_category):
    """PatchCore on the synthetic category's train/good at 128 px. Read-only for tests."""
    pytest.importorskip("torch")
    from lineguard.vision.inspector import Inspector
    return Inspector.fit(synth_category / "train" / "good", detector="patchcore", image_size=SYNTH_SIZE,
                         false_reject_rate=0.1, seed=0, version="test-1")


@pytest.fixture(scope="session")
def fitted_model_path(fitted_inspector, tmp_path_factory) -> Path:
    """``fitted_inspector`` saved as a model file; copy it before changing it."""
    path = tmp_path_factory.mktemp("model") / "cell.lgm"
    fitted_inspector.save(path)
    return path


@pytest.fixture(scope="session")
def exported(fitted_inspector, tmp_path_factory) -> Path:
    """``fitted_inspector`` exported to ONNX (fp32), once a session (six test modules each
    exported it again); copy it before changing it."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from lineguard.runtime.onnx_export import export_onnx
    path = tmp_path_factory.mktemp("exported") / "cell.onnx"
    export_onnx(fitted_inspector, path)
    return path


# -- the station's database: SQLite, or a private schema on the real PostgreSQL ------------

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def pg_reachable() -> bool:
    try:
        import psycopg
        with psycopg.connect(PG_URL, connect_timeout=3):
            return True
    except Exception:  # noqa: BLE001 - any failure means "not here"
        return False


@pytest.fixture(scope="session", autouse=True)
def _new_station_databases_from_one_migration(tmp_path_factory):
    """Each new SQLite station database a test makes is a copy of one
    made by the migrations once per worker, not the 34 migrations run again (0.08-0.2 s of
    CPU each: a fifth of a station test's). The copy is the migrations' own result, so
    nothing a test reads differs; a database with an older schema, a migration to an older
    revision, a PostgreSQL schema and a test that replaces ``Database._migrate`` itself
    (a migration that fails halfway) still run the migrations. LINEGUARD_TEST_MIGRATE_ALL=1
    runs them for every database."""
    if MIGRATE_ALL:
        yield
        return
    try:
        from lineguard.line import db as dbmod
    except ImportError:     # an install without the station's extras: no station databases
        yield
        return
    import sqlite3
    real = dbmod.Database._migrate
    made: dict[str, Path] = {}

    def migrate(self, found, target, revision):
        if self.sqlite_file is None or found is not None or revision != "head" \
                or getattr(self, "_head_template", False) or dbmod.Database._migrate is not migrate:
            return real(self, found, target, revision)
        template = made.get(target)
        if template is None:
            template = tmp_path_factory.mktemp("head-schema") / "lineguard.db"
            db = dbmod.Database(f"sqlite:///{template}")
            db._head_template = True
            try:
                db.upgrade()
            finally:
                db.dispose()
            made[target] = template
        with sqlite3.connect(template) as src, sqlite3.connect(self.sqlite_file) as dst:
            src.backup(dst)
        src.close()
        dst.close()

    dbmod.Database._migrate = migrate
    yield
    dbmod.Database._migrate = real


@pytest.fixture(autouse=True)
def _small_plc_answer_reserve(monkeypatch):
    """Each PLC link keeps 4 MiB of disk for its answers on a full disk (line.signal_spool);
    the suite starts some 130 links in-process, 0.5 GB a run kept with pytest's last three
    runs: 256 KiB here (the reserve's tests work at any size)."""
    try:
        from lineguard.line import signal_spool
    except ImportError:
        return
    monkeypatch.setattr(signal_spool, "RESERVE_BYTES", 256 * 1024)


@pytest.fixture(autouse=True)
def _no_host_fstab(monkeypatch):
    """Backups and the record archive read /etc/fstab (line.mounted): tests read none, so a
    machine whose fstab lists an unmounted folder above the temp folder runs them the same;
    tests/line/test_mounted.py give their own."""
    from lineguard.line import mounted
    monkeypatch.setattr(mounted, "FSTAB", Path("/nonexistent/fstab"))


@pytest.fixture(autouse=True)
def _no_station_settings_from_the_shell(monkeypatch):
    """serve, watch and camera read every LINEGUARD_* variable (line.config): a developer's
    shell with LINEGUARD_DB or LINEGUARD_DATA set would run the tests' stations elsewhere.
    Each test that wants one sets its own."""
    for var in [v for v in os.environ if v.upper().startswith("LINEGUARD_")]:
        monkeypatch.delenv(var)


DATABASES = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc):
    """A test on ``db_backend`` runs on both databases, its PostgreSQL twin left out where
    it is marked ``one_database``: its SQL is the same on both (a request refused before
    any query, a sentence, a permission, a file). The twins were a third of the suite's
    time (454 of 3,028 tests, 2.3 times their SQLite twin's time under load); a twin is
    kept where the databases differ: queries that group, filter by case or time, paging,
    locks and two processes, faults of the server, NUL and long text, migrations."""
    chosen = any("db_backend" in (m.args[0] if isinstance(m.args[0], (list, tuple)) else m.args[0].split(","))
                 for m in metafunc.definition.iter_markers("parametrize"))     # a test that names its own
    if "db_backend" in metafunc.fixturenames and not chosen:
        one = metafunc.definition.get_closest_marker("one_database") is not None
        metafunc.parametrize("db_backend", DATABASES[:1] if one else DATABASES, indirect=True)


@pytest.fixture(scope="session")
def _pg_schema_pool():
    from pg_schemas import SchemaPool
    pool = SchemaPool(PG_URL, reuse=not MIGRATE_ALL)
    yield pool
    pool.close()


@pytest.fixture
def db_backend(request, _pg_schema_pool):
    """(database URL, schema): (None, None) for the station's own SQLite file, or the test
    PostgreSQL with a private schema, so tests never see each other's rows: a new name, or
    one an earlier test of this worker used, emptied, at the head revision (tests/pg_schemas.py).
    Parametrized by pytest_generate_tests above."""
    if request.param == "sqlite":
        yield None, None
        return
    if not pg_reachable():
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432 (run `make services`)")
    schema = _pg_schema_pool.take(new=request.node.get_closest_marker("new_schema") is not None)
    yield PG_URL, schema
    _pg_schema_pool.give_back(schema)


@pytest.fixture
def serve_ports_anywhere(monkeypatch):
    """`serve` in tests that never run its web server: its ports are not checked, and its
    bind takes a free port. Otherwise each bound the default 8000, and a station left
    running there (`lineguard demo`) failed them with "port taken" (tests/test_serve_port_taken.py
    tests the check itself)."""
    import lineguard.cli.station as station_cli
    import lineguard.server.app as server_app
    bind = server_app.bind_port
    monkeypatch.setattr(station_cli, "_check_ports", lambda *a, **kw: None)
    monkeypatch.setattr(server_app, "bind_port", lambda host, port, *a, **kw: bind(host, 0, *a, **kw))


@pytest.fixture
def serve_opens(monkeypatch, serve_ports_anywhere) -> list:
    """The settings `lineguard serve` would open its station with (StationConfig, one per
    start); the station itself is never opened: serve stops there with a StartupError."""
    import lineguard.server.app as server_app
    seen: list = []

    def open_station(cfg, *args, **kw):
        seen.append(cfg)
        raise server_app.StartupError("stopped before the station opens")

    monkeypatch.setattr(server_app, "open_station", open_station)
    return seen
