"""The Plant page's reasons in the plant's words (GET /api/v1/plant): a browser walk found
"2 alarm(s) waiting for acknowledgement (drift 1)" and "(ng_run 1)" shown to operators,
the alarm codes the line view says as "Part scores drifting" and "Rejected parts in a
row". The words go in `reasons`; the codes stay in `alarms.by_kind` for a machine."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fastapi.testclient import TestClient

from lineguard.line.auth import create_key
from lineguard.server.app import create_app
from lineguard.server.routers import plant

from .conftest import png_bytes

NG = 220            # the fake model's score is brightness: NG

CODES = ("ng_run", "ng_rate", "no_verdict", "test_part", "drift", "photo")


def _operator(st) -> dict[str, str]:
    with st.db.session() as s:
        return {"X-API-Key": create_key(s, "operator", name="plant-words")[1]}


def _alarm_reason(row: dict) -> str:
    (said,) = [r for r in row["reasons"] if "alarm(s) waiting" in r]
    return said


def test_this_stations_ng_run_is_said_as_rejected_parts_in_a_row(sqlite_like_station):
    st = sqlite_like_station()
    key = _operator(st)
    with TestClient(create_app(station=st)) as c:
        for i in range(5):                        # the default rule: 5 parts in a row not passed
            r = c.post("/api/v1/inspections", headers=key, files={"image": ("p.png", png_bytes(NG, seed=7300 + i),
                       "image/png")}, data={"part_id": f"PW-{i}", "line": "L1", "station": "S1", "product": "cell"})
            assert r.status_code == 201, r.text
        body = c.get("/api/v1/plant", headers=key).json()
    (me,) = body["stations"]
    assert me["alarms"]["by_kind"] == {"ng_run": 1}           # the code, for a machine
    said = _alarm_reason(me)
    assert said.startswith("1 alarm(s) waiting for acknowledgement (rejected parts in a row)"), said
    assert not any(code in r for r in me["reasons"] for code in CODES), me["reasons"]


class _Peer(BaseHTTPRequestHandler):
    """A peer station's /health with alarms of every kind waiting, and one of a kind this
    station does not know (a newer version's)."""

    def do_GET(self):  # noqa: N802 - the standard library's name
        body = json.dumps({"status": "ok", "version": "0.1.0", "database": "sqlite", "faults": {}, "alarms": {
            "active": 7, "past_escalation": 0, "oldest": {"waiting_min": 12},
            "by_kind": {"drift": 2, "ng_rate": 1, "photo": 1, "no_verdict": 1, "test_part": 1, "belt_stop": 1}}
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_peers_alarm_kinds_are_said_in_words_and_kept_as_codes(sqlite_like_station, monkeypatch):
    # the peer answers at once; the words are tested here, not the 2 s a peer is given (the
    # plant view's own test has a silent peer for that): a CI machine under the suite's load
    # once took longer than 2 s to serve this thread's answer, and the row read "down"
    monkeypatch.setattr(plant, "PEER_WAIT_S", 30.0)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Peer)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        st = sqlite_like_station(peers=(f"lineB=http://127.0.0.1:{srv.server_address[1]}",))
        key = _operator(st)
        with TestClient(create_app(station=st)) as c:
            body = c.get("/api/v1/plant", headers=key).json()
    finally:
        srv.shutdown()
        srv.server_close()
    peer = {r["name"]: r for r in body["stations"]}["lineB"]
    assert peer["level"] == "warn", peer.get("problem")
    assert peer["alarms"]["by_kind"] == {
        "drift": 2, "ng_rate": 1, "photo": 1, "no_verdict": 1, "test_part": 1, "belt_stop": 1}
    assert _alarm_reason(peer) == (
        "7 alarm(s) waiting for acknowledgement (part scores drifting ×2, high NG rate, check the camera, "
        "parts rejected without a verdict, test part judged wrong, belt stop), the oldest for 12 min")


def test_every_page_says_each_alarm_kind_as_the_plant_view_does():
    """The alarm words were written three times (the plant view's, the line view's, the
    alarms page's) and had drifted: the alarms page said "rejected without a verdict" for
    what the others called "parts rejected without a verdict". One list in common.js now,
    the same as the plant view's, and a word for every kind the station raises."""
    import re
    from pathlib import Path

    from lineguard.line.alarms import KINDS
    from lineguard.server.routers.plant import ALARM_WORDS
    web = Path(__file__).resolve().parents[2] / "src" / "lineguard" / "server" / "web"
    common = (web / "common.js").read_text()
    block = re.search(r"const ALARM_KIND = Object\.freeze\(\{(.*?)\}\)", common, re.S)
    assert block, "common.js has no ALARM_KIND"
    pages = dict(re.findall(r'(\w+): "([^"]+)"', block.group(1)))
    assert pages == ALARM_WORDS and set(pages) == set(KINDS), (pages, ALARM_WORDS, KINDS)
    for page in web.glob("*.js"):        # no page keeps its own copy
        assert page.name == "common.js" or "const KIND =" not in page.read_text(), page.name
