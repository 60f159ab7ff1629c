"""A station with more requests at once than it serves answers 503 busy with Retry-After,
not 500 internal_error.

Found in a soak: every database connection in use (the pool's 8 + 16) and a request
waiting for one past the pool's wait got SQLAlchemy's TimeoutError, answered 500 "the
station failed on this request (see its log)" with a traceback in the log. Overload is no
failure of the station nor of the part: a hot folder set the file aside as failing on it,
a camera gave the frame up after five tries. Here the test holds every connection of the
station's pool itself (its wait shortened from 30 s) and sends requests meanwhile.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

from fastapi.testclient import TestClient
from sqlalchemy.exc import TimeoutError as PoolTimeout

from line.test_sources_overload import PoolHeld

from .conftest import png_bytes, post_part

OK_PHOTO = 30


@contextmanager
def pool_taken(st, wait_s: float = 0.3) -> Iterator[int]:
    """Every connection of the station's database pool held by the test (how many); a
    request asking for one waits ``wait_s`` (the pool's 30 s, shortened) and gets the pool's
    TimeoutError."""
    held = PoolHeld(st, wait_s)
    try:
        yield held.taken
    finally:
        held.free()


def _client(sqlite_like_station) -> tuple[TestClient, object]:
    from lineguard.line.auth import create_key
    from lineguard.server.app import create_app
    st = sqlite_like_station()
    with st.db.session() as s:
        _row, key = create_key(s, "operator", "overload test", by="test")
    # a 500 answered, not raised into the test: the answer is what a client gets
    return TestClient(create_app(station=st), headers={"X-API-Key": key}, raise_server_exceptions=False), st


def _busy(r) -> None:
    assert r.status_code == 503, (r.status_code, r.text)
    err = r.json()["error"]
    assert err["code"] == "busy", err
    assert "the station is busy" in err["message"] and "send the request again" in err["message"], err
    assert r.headers["retry-after"] == "5" and err["retry_after_s"] == 5


def _said(caplog) -> tuple[list[str], list[logging.LogRecord]]:
    """The overload lines of the station's log, and anything it logged as a failure."""
    mine = [r for r in caplog.records if r.name == "lineguard.server"]
    return ([r.getMessage() for r in mine if "overloaded" in r.getMessage()],
            [r for r in mine if r.levelno >= logging.ERROR or r.exc_info])


def test_an_upload_that_finds_every_connection_taken_is_answered_503_busy(sqlite_like_station, caplog):
    """The upload's key is checked before its body is read (the key not known yet: asked of
    the database): no connection comes, so the station says it is busy and closes, the body
    unread. Sent again when connections are free, the part is judged."""
    caplog.set_level(logging.INFO, logger="lineguard")
    c, st = _client(sqlite_like_station)
    with c:
        with pool_taken(st) as held:
            assert held >= 24
            r = post_part(c, png_bytes(OK_PHOTO, seed=9100), "busy-1")
            _busy(r)
            assert r.headers.get("connection") == "close"
        r = post_part(c, png_bytes(OK_PHOTO, seed=9100), "busy-1")
        assert r.status_code == 201, r.text
    said, failures = _said(caplog)
    assert len(said) == 1 and "POST /api/v1/inspections" in said[0] and "503 busy" in said[0], said
    assert not failures, [(x.getMessage(), x.exc_info is not None) for x in failures]


def test_a_part_and_a_read_that_find_every_connection_taken_are_answered_503_once_said(sqlite_like_station,
                                                                                       caplog):
    """The key known already (no database asked for it): the part is judged and its record
    finds no connection; a read finds none either. Each answered 503 busy, the overload said
    once in the log (not a line and a traceback per request), and the part sent again is
    recorded once."""
    caplog.set_level(logging.INFO, logger="lineguard")
    c, st = _client(sqlite_like_station)
    with c:
        assert post_part(c, png_bytes(OK_PHOTO, seed=9200), "warm-1").status_code == 201   # the key cached
        with pool_taken(st):
            _busy(post_part(c, png_bytes(OK_PHOTO, seed=9201), "busy-2"))
            _busy(c.get("/api/v1/inspections", params={"line": "L1"}))
            _busy(post_part(c, png_bytes(OK_PHOTO, seed=9202), "busy-3"))
        assert post_part(c, png_bytes(OK_PHOTO, seed=9201), "busy-2").status_code == 201
        assert post_part(c, png_bytes(OK_PHOTO, seed=9201), "busy-2").status_code == 200    # the same part
    assert [r.part_id for r in st.query(line="L1") if r.part_id == "busy-2"] == ["busy-2"]
    said, failures = _said(caplog)
    assert len(said) == 1, said
    assert not failures, [(x.getMessage(), x.exc_info is not None) for x in failures]


def test_a_part_is_answered_busy_after_one_wait_for_a_connection_not_three(sqlite_like_station, monkeypatch):
    """The active model's and the shadow's look-up before the decode, and the test parts'
    reload, each waited the pool's whole time, caught it and went on, and the part's own
    reads waited as long again: 60-90 s with the 30 s wait, past the hot folder's 60 s, whose
    good file was then taken for one that hangs the station."""
    c, st = _client(sqlite_like_station)
    with c:
        assert post_part(c, png_bytes(OK_PHOTO, seed=9300), "warm-2").status_code == 201
        st.models.ACTIVE_TTL_S = 0.0            # the active model read again for this part
        st.test_parts.reload_s = 0.0            # and the test parts
        with pool_taken(st):
            pool, waits = st.db.engine.pool, []
            wait_once = pool._do_get

            def counted():
                try:
                    return wait_once()
                except PoolTimeout:
                    waits.append(1)
                    raise
            monkeypatch.setattr(pool, "_do_get", counted)
            _busy(post_part(c, png_bytes(OK_PHOTO, seed=9301), "busy-4"))
        assert len(waits) == 1, waits


def test_a_part_stored_before_the_connections_ran_out_is_never_answered_busy(sqlite_like_station, monkeypatch):
    """After the part's commit, the count of its earlier inspections and the shadow's look-up
    found no connection: the answer was 503 "send the request again" for a part already
    stored, its verdict already sent to the outbox and the PLC."""
    from lineguard.line import station as station_mod
    c, st = _client(sqlite_like_station)
    count_earlier, shadow_submit = station_mod.earlier_inspections, st.shadow.submit
    held: list = []

    def take_them(*a):
        held.append(PoolHeld(st, 0.3))

    def then_count(db, rec):
        take_them()
        return count_earlier(db, rec)

    def then_shadow(*a):
        take_them()
        st.shadow._config_until = 0.0           # which shadow runs, read again
        return shadow_submit(*a)
    with c:
        for pid, where, wrapped in (("stored-1", station_mod, ("earlier_inspections", then_count)),
                                    ("stored-2", st.shadow, ("submit", then_shadow))):
            monkeypatch.setattr(where, *wrapped)
            try:
                r = post_part(c, png_bytes(OK_PHOTO, seed=9400 + len(pid) + int(pid[-1])), pid)
            finally:
                monkeypatch.undo()
                while held:
                    held.pop().free()
            assert r.status_code == 201 and r.json()["part_id"] == pid, (pid, r.status_code, r.text)
    assert sorted(r.part_id for r in st.query(line="L1")) == ["stored-1", "stored-2"]


def test_a_stored_part_whose_shadow_look_up_meets_the_database_away_is_answered_201(sqlite_like_station,
                                                                                 monkeypatch):
    """The shadow's look-up after the commit (read again every 2 s) meeting the database
    away answered 500 for a part already stored (review R2)."""
    from sqlalchemy.exc import OperationalError
    c, st = _client(sqlite_like_station)

    def away():
        raise OperationalError("SELECT model_shadows", {}, Exception("server closed the connection unexpectedly"))
    with c:
        assert post_part(c, png_bytes(OK_PHOTO, seed=9500), "warm-3").status_code == 201
        st.shadow._config_until = 0.0
        monkeypatch.setattr(st.shadow, "current", away)
        r = post_part(c, png_bytes(OK_PHOTO, seed=9501), "stored-3")
        monkeypatch.undo()
    assert r.status_code == 201, (r.status_code, r.text)
    assert "stored-3" in [x.part_id for x in st.query(line="L1")]
