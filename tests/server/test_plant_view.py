"""The plant view (GET /api/v1/plant, the Plant page): a station told its peers
(serve --peer NAME=URL, LINEGUARD_PEERS) shows each one's /health beside its own.

The walk: three stations, one per line. Station B had ng_run and ng_rate alarms while
A's page and /health said "ok"; station C killed (-9) went unseen until it restarted;
the engineer kept three tabs and three keys. Here a third station (in-process) is given
two real stations (processes) and three wrong peers: a port nobody listens on, a server
answering a body too large, one answering what is not JSON, one answering a JSON of the
wrong shape, and one that never answers. Every row says its own words; the page stands.
"""
from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from lineguard.line.auth import create_key
from lineguard.line.config import StationConfig
from lineguard.line.station import Station
from lineguard.server.app import create_app
from lineguard.server.routers import plant

from .conftest import free_port, png_bytes, post_part, start_fake_station
from .fake_inspector import FakeInspector

NG = 200            # the fake model's score is brightness: NG


class _Wrong(BaseHTTPRequestHandler):
    """What a wrong URL answers at /health, by path: too much, not JSON, JSON of the wrong shape."""

    def do_GET(self):  # noqa: N802 - the standard library's name
        kind = self.path.split("/")[1]
        if kind == "huge":
            body = b'{"status": "ok", "x": "' + b"a" * (2 * 1024 * 1024) + b'"}'
        elif kind == "grafana":      # another service's health check: a status, nothing of a station's
            body = b'{"status": "ok", "service": "grafana"}'
        elif kind == "html":
            body = b"<html><body>camera web page</body></html>"
        elif kind == "moved":
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:1/health")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        else:   # a /health of the wrong types everywhere, its fault text very long
            body = json.dumps({"status": "degraded", "faults": {"disk\x00": "full " * 5000, **{f"f{i}": "x"
                               for i in range(30)}}, "alarms": {"active": "lots", "by_kind": ["ng_run"],
                               "oldest": {"waiting_min": "NaN"}}, "version": 7}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        # the huge one says no length: it is cut while read, not trusted from a header
        if kind != "huge":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass          # the station stopped reading: what is wanted

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def wrong_server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Wrong)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def silent_port():
    """A port that takes connections and never answers (a PC hung, a firewall dropping)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield s.getsockname()[1]
    s.close()


@pytest.fixture(scope="module")
def two_stations(tmp_path_factory):
    a = start_fake_station(tmp_path_factory.mktemp("line-a") / "data")
    try:
        b = start_fake_station(tmp_path_factory.mktemp("line-b") / "data")
    except BaseException:
        a.stop()
        raise
    yield a, b
    a.stop()
    b.stop()


def _plant_station(tmp_path, peers=(), **kw):
    st = Station(StationConfig(data_dir=tmp_path / "c", peers=tuple(peers), **kw), loader=FakeInspector.load)
    with st.db.session() as s:
        key = create_key(s, "operator", name="plant-test")[1]
    return st, key


def _rows(body):
    return {r["name"]: r for r in body["stations"]}


def test_a_station_shows_its_peers_health_alarms_and_a_killed_one_as_down(tmp_path, two_stations, wrong_server,
                                                                         silent_port, monkeypatch):
    # 6 s for each peer, not the station's 2: the silent one still ends in it, and the stations
    # that answer are not read as down on a CI machine under the suite's load (the peer words
    # test's in-process peer once took over 2 s there)
    monkeypatch.setattr(plant, "PEER_WAIT_S", 6.0)
    a, b = two_stations
    with a.client(a.keys["operator"]) as c:          # line A: an NG run, its alarms waiting
        for i in range(6):
            assert post_part(c, png_bytes(NG, seed=9100 + i), f"PV-{i}").status_code == 201
    closed = free_port()                             # nobody listens there
    peers = [f"lineA={a.url}", f"lineB={b.url}", f"closed=http://127.0.0.1:{closed}",
             f"huge={wrong_server}/huge", f"html={wrong_server}/html", f"shape={wrong_server}/shape",
             f"moved={wrong_server}/moved", f"silent=http://127.0.0.1:{silent_port}",
             f"grafana={wrong_server}/grafana", "tls=" + a.url.replace("http://", "https://")]
    st, key = _plant_station(tmp_path, peers)
    try:
        with TestClient(create_app(station=st)) as c:
            assert c.get("/api/v1/plant").status_code == 401           # as the line view: a key or session
            r = c.get("/api/v1/plant", headers={"X-API-Key": key})
            assert r.status_code == 200, r.text
            body = r.json()
            names = [s["name"] for s in body["stations"]]
            assert names == [socket.gethostname(),             # no line nor part yet: its PC's name
                             "lineA", "lineB", "closed", "huge", "html", "shape", "moved", "silent", "grafana", "tls"]
            assert body["peers_configured"] == 10
            rows = _rows(body)
            me = rows[socket.gethostname()]
            assert (me["this_station"], me["reachable"], me["status"], me["level"], me["page"]) == \
                (True, True, "ok", "ok", "/app/")

            la = rows["lineA"]                        # up, its alarms said in words: amber
            assert (la["reachable"], la["status"], la["level"], la["problem"]) == (True, "ok", "warn", None)
            assert la["alarms"]["active"] >= 1 and "ng_run" in la["alarms"]["by_kind"], la
            assert any("alarm(s) waiting" in w and "rejected parts in a row" in w for w in la["reasons"]), la["reasons"]
            assert la["page"] == a.url + "/app/" and la["last_answer_at"] and la["unreachable_since"] is None

            lb = rows["lineB"]
            assert (lb["status"], lb["level"], lb["reasons"], lb["alarms"]["active"]) == ("ok", "ok", [], 0)

            down = rows["closed"]
            assert (down["reachable"], down["status"], down["level"]) == (False, "unreachable", "down")
            assert "cannot connect" in down["problem"] and down["unreachable_since"] and down["last_answer_at"] is None

            for name, said in (("huge", "KiB"), ("html", "not with JSON"), ("moved", "HTTP 302"),
                               ("grafana", "no version and faults")):      # walk: it was shown green
                row = rows[name]
                assert (row["reachable"], row["status"], row["level"]) == (True, "not_a_station", "down"), row
                assert said in row["problem"] and "lineguard station's address" in row["problem"], row

            shape = rows["shape"]                     # wrong types taken defensively, its text cut
            assert (shape["status"], shape["level"], shape["version"]) == ("degraded", "warn", None)
            assert shape["alarms"] == {"active": 0, "by_kind": {}, "past_escalation": 0, "oldest_waiting_min": None}
            assert len(shape["faults"]) == 21 and shape["faults"]["more"].startswith("11 more fault(s)")
            assert all(len(k) <= 80 and len(v) <= 400 and "\x00" not in k for k, v in shape["faults"].items())

            # it answered, only not as a station: said so beside its reachable true
            assert rows["grafana"]["problem"].endswith("; not answered as a station since this station started "
                                                       "looking"), rows["grafana"]
            # https:// for a station serving plain HTTP: the scheme said, not "station stopped"
            assert "TLS handshake failed" in rows["tls"]["problem"] and "http://" in rows["tls"]["problem"]

            silent = rows["silent"]
            assert (silent["reachable"], silent["level"]) == (False, "down") and "no answer within" in \
                silent["problem"], silent

            b.kill9()                                  # line B's station killed: down, since when, last answer kept
            rows = _rows(c.get("/api/v1/plant", headers={"X-API-Key": key}).json())
            lb2 = rows["lineB"]
            assert (lb2["reachable"], lb2["status"], lb2["level"]) == (False, "unreachable", "down")
            assert lb2["last_answer_at"] == lb["last_answer_at"] and lb2["unreachable_since"] >= lb["last_answer_at"]
            assert "last answered" in lb2["problem"]
            assert rows["closed"]["unreachable_since"] == down["unreachable_since"]    # since the first try, kept
    finally:
        st.close()


def test_without_peers_the_plant_view_says_how_to_add_them_and_the_page_is_served(tmp_path):
    st, key = _plant_station(tmp_path)
    try:
        with TestClient(create_app(station=st)) as c:
            body = c.get("/api/v1/plant", headers={"X-API-Key": key}).json()
            assert body["peers_configured"] == 0 and [s["name"] for s in body["stations"]] == [socket.gethostname()]
            assert "--peer NAME=URL" in body["how_to_add"] and "LINEGUARD_PEERS" in body["how_to_add"]
            page = c.get("/app/plant")
            assert page.status_code == 200 and "/app/static/plant.js" in page.text
            assert c.get("/app/static/plant.js").status_code == 200
            assert '"/app/plant"' in c.get("/app/static/common.js").text      # in the menu
    finally:
        st.close()


def test_peers_come_from_serve_peer_and_lineguard_peers_and_a_wrong_one_stops_the_start(
        tmp_path, serve_opens, monkeypatch):
    from lineguard.cli import app
    from lineguard.line.config import peer_list
    for var in ("LINEGUARD_PEERS", "LINEGUARD_DATA", "LINEGUARD_DB"):
        monkeypatch.delenv(var, raising=False)
    data = ["serve", "--data", str(tmp_path / "st")]
    r = CliRunner().invoke(app, [*data, "--peer", "line2=http://10.0.0.12:8000/", "--peer", "line3=https://l3:8443"])
    assert "stopped before the station opens" in r.output, r.output
    assert serve_opens[-1].peers == ("line2=http://10.0.0.12:8000/", "line3=https://l3:8443")
    assert peer_list(serve_opens[-1].peers) == [("line2", "http://10.0.0.12:8000"), ("line3", "https://l3:8443")]
    both = "line2=http://10.0.0.12:8000, line3=http://10.0.0.13:8000"
    r = CliRunner().invoke(app, data, env={"LINEGUARD_PEERS": both})
    assert "stopped before the station opens" in r.output, r.output
    assert peer_list(serve_opens[-1].peers) == [("line2", "http://10.0.0.12:8000"), ("line3", "http://10.0.0.13:8000")]
    for bad, said in (("line2", "NAME=URL"), ("line2=ftp://x", "not a station's address"),
                      ("line2=http://x:8000/app/", "is one of the station's pages"),     # walk: taken, then 404
                      ("line2=http://u:pw@x:8000", "user and password"),
                      ("a=http://x:1,A=http://y:2", "two peers have this name")):
        r = CliRunner().invoke(app, data, env={"LINEGUARD_PEERS": bad})
        assert r.exit_code == 2 and "LINEGUARD_PEERS" in r.output and said in r.output, (bad, r.output)
        r = CliRunner().invoke(app, [*data, *sum((["--peer", p] for p in bad.split(",")), [])])
        assert r.exit_code == 2 and said in r.output, (bad, r.output)
    assert "--peer NAME=URL" in CliRunner().invoke(app, ["serve", "--help"]).output
