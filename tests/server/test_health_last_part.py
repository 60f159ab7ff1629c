"""/health's last part, and the plant view's: a station whose line stopped feeding parts
(idle, its camera or PLC silent) said "ok" there like one at work, as /health gave no time
of its last part. It now gives when the newest part was recorded (last_part_at, null with
none yet) and how long ago (last_part_age_s); the plant view carries both in each row,
a peer's type-checked like its other fields. No level of its own: a stop may be planned."""
from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient

from lineguard.line import station as station_mod
from lineguard.line.auth import create_key
from lineguard.line.config import StationConfig
from lineguard.line.orm import iso_utc
from lineguard.line.station import Part, Station
from lineguard.server.app import create_app

from .conftest import png_bytes, post_part, start_fake_station
from .fake_inspector import FakeInspector


def _station(tmp_path, peers=()):
    st = Station(StationConfig(data_dir=tmp_path / "data", peers=tuple(peers)), loader=FakeInspector.load)
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    with st.db.session() as s:
        key = create_key(s, "operator", name="last-part-test")[1]
    return st, key


def _at(iso: str) -> dt.datetime:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _age_agrees(row: dict, asked_from: dt.datetime, asked_until: dt.datetime) -> None:
    """``row``'s last_part_age_s is the time from its last_part_at to the moment it was
    answered, between ``asked_from`` and ``asked_until`` (0.1 s: its rounding)."""
    at = _at(row["last_part_at"])
    lo, hi = (asked_from - at).total_seconds() - 0.1, (asked_until - at).total_seconds() + 0.1
    assert lo <= row["last_part_age_s"] <= hi, (row, lo, hi)


def test_health_gives_no_last_part_before_the_first_then_the_newest_and_its_age(tmp_path, monkeypatch):
    st, key = _station(tmp_path)
    try:
        with TestClient(create_app(station=st)) as c:
            h = c.get("/health").json()
            assert h["status"] == "ok" and h["last_part_at"] is None and h["last_part_age_s"] is None, h
            c.headers["X-API-Key"] = key
            r = post_part(c, png_bytes(40, seed=1), "LP-1")        # through the API, as a line sends it
            assert r.status_code == 201, r.text
            made = r.json()["created_at"]
            h = c.get("/health").json()
            assert h["last_part_at"] == made, (h["last_part_at"], made)
            # counted in UTC on both sides: a local-time slip would be hours
            assert 0 <= h["last_part_age_s"] < 600, h["last_part_age_s"]

            # a part recorded by another process on the same database (a hot-folder watcher of
            # its own): not asked of the database at each /health, seen once it is read again
            watcher = Station(StationConfig(data_dir=tmp_path / "data"), loader=FakeInspector.load)
            try:
                theirs = watcher.inspect(png_bytes(40, seed=5), Part(part_id="LP-watcher", line="L1", station="S1",
                                                                      product="cell"), source="folder").record
            finally:
                watcher.close()
            monkeypatch.setattr(station_mod, "NEWEST_PART_READ_S", 1e9)
            assert c.get("/health").json()["last_part_at"] == made           # kept in memory, not re-read
            monkeypatch.setattr(station_mod, "NEWEST_PART_READ_S", 0.0)
            t0 = _now()
            h = c.get("/health").json()
            assert h["last_part_at"] == iso_utc(theirs.created_at) != made, (h["last_part_at"], made)
            _age_agrees(h, t0, _now())
    finally:
        st.close()


def test_a_station_started_on_a_database_with_parts_gives_its_newest_at_once(tmp_path):
    st, key = _station(tmp_path)
    with TestClient(create_app(station=st), headers={"X-API-Key": key}) as c:
        made = post_part(c, png_bytes(40, seed=2), "LP-2").json()["created_at"]
    st.close()
    again = Station(StationConfig(data_dir=tmp_path / "data"), loader=FakeInspector.load)    # restarted
    try:
        with TestClient(create_app(station=again)) as c:
            assert c.get("/health").json()["last_part_at"] == made
    finally:
        again.close()


class _Peer(BaseHTTPRequestHandler):
    """A /health by path: an older station (no last part), and one whose last part is of wrong types."""

    def do_GET(self):  # noqa: N802 - the standard library's name
        kind = self.path.split("/")[1]
        body = {"status": "ok", "version": "0.1.0", "database": "sqlite", "faults": {}}   # as every station's
        if kind == "wrong":
            body.update(last_part_at=12345, last_part_age_s="300")
        elif kind == "nonsense":
            body.update(last_part_at="yesterday", last_part_age_s=-5)
        elif kind == "offset":
            body.update(last_part_at="2026-12-06T11:00:00+01:00", last_part_age_s=True)
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def odd_peers():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Peer)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_the_plant_view_carries_each_stations_last_part(tmp_path, tmp_path_factory, odd_peers):
    peer = start_fake_station(tmp_path_factory.mktemp("line-a") / "data")
    try:
        with peer.client(peer.keys["operator"]) as c:
            assert post_part(c, png_bytes(40, seed=3), "LP-peer").status_code == 201
            said = c.get("/health").json()
        assert said["last_part_at"], said
        peers = [f"lineA={peer.url}", f"older={odd_peers}/older", f"wrong={odd_peers}/wrong",
                 f"nonsense={odd_peers}/nonsense", f"offset={odd_peers}/offset"]
        st, key = _station(tmp_path, peers)
        try:
            with TestClient(create_app(station=st)) as c:
                t0 = _now()
                rows = {r["name"]: r for r in c.get("/api/v1/plant", headers={"X-API-Key": key}).json()["stations"]}
                t1 = _now()
                (me,) = [r for r in rows.values() if r["this_station"]]
                assert (me["last_part_at"], me["last_part_age_s"]) == (None, None), me
                la = rows["lineA"]
                assert la["last_part_at"] == said["last_part_at"], la
                _age_agrees(la, t0, t1)          # the peer's own age, from its /health asked meanwhile
                assert (la["level"], la["reasons"]) == ("ok", []), la        # a part's age is no reason
                for name in ("older", "wrong", "nonsense"):
                    row = rows[name]
                    assert (row["status"], row["last_part_at"], row["last_part_age_s"]) == ("ok", None, None), row
                offset = rows["offset"]                # another offset: said in UTC; a bool is no age
                assert (offset["last_part_at"], offset["last_part_age_s"]) == ("2026-12-06T10:00:00Z", None)

                c.headers["X-API-Key"] = key
                made = post_part(c, png_bytes(40, seed=4), "LP-own")
                assert made.status_code == 201, made.text
                t0 = _now()
                rows = {r["name"]: r for r in c.get("/api/v1/plant", headers={"X-API-Key": key}).json()["stations"]}
                (me,) = [r for r in rows.values() if r["this_station"]]
                assert me["last_part_at"] == made.json()["created_at"]
                _age_agrees(me, t0, _now())
                schema = c.get("/openapi.json").json()["components"]["schemas"]["PlantStation"]["properties"]
                assert {"last_part_at", "last_part_age_s"} <= set(schema)
        finally:
            st.close()
    finally:
        peer.stop()
