"""What each process of test_data_folders' race runs: a module of its own, light to import,
because the processes are spawned (a new interpreter each), not forked. A child forked from a
test worker inherited that worker's other threads' locks as they stood (a station left from an
earlier test): one child hung in the ORM while it held the data-folder lock, and every later
test that opened a station waited on it (a CI run stopped there for 10 minutes)."""
from __future__ import annotations


def claim_at_once(url, folder, schema, start, results):
    from lineguard.line.data_folders import claim
    from lineguard.line.db import Database
    db = Database(url, schema=schema)
    db.upgrade()
    start.wait()
    try:
        results.put(claim(db, folder))
    except Exception as exc:  # noqa: BLE001 - reported to the test
        results.put(f"{type(exc).__name__}: {exc}")
    finally:
        db.dispose()
