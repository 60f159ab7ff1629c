"""What a hostile-input walk found that a NUL or a control character still got through:

- a threshold's note (no rule of its own) with a NUL: a 500 on PostgreSQL, after the tuned
  model file was written, and stored as sent on SQLite; a watcher's heartbeat took NUL in
  its last errors too;
- a watcher's line and station, and a reference photo's line, took a right-to-left
  override (shown turned round in /health's faults and on the pages), a line break, an
  escape; a reference photo's file name was kept and shown with one ("x\\u202egnp.exe").
"""
from __future__ import annotations

import time

from fastapi.testclient import TestClient

from .fake_inspector import png_bytes
from .test_reference_photos import _client, _upload, make_station  # noqa: F401 - the fixture, shared
from .test_tuning import tuned_station  # noqa: F401 - the fixture, shared
from .test_watcher_heartbeat import HEARTBEAT, _beat, _station


def test_a_nul_in_any_body_text_is_a_422_and_no_tuned_model_is_written(tuned_station):  # noqa: F811
    st, c, keys, _ = tuned_station
    eng = {"X-API-Key": keys["engineer"]}
    models = sorted(p.name for p in (st.config.data_dir / "models").rglob("*") if p.is_file())
    r = c.post("/api/v1/models/cell/threshold", headers=eng,
               json={"line": "", "version": 1, "threshold": 0.6, "note": "a\u0000b"})
    assert r.status_code == 422 and "note: holds a NUL character" in r.json()["error"]["message"], r.text
    assert sorted(p.name for p in (st.config.data_dir / "models").rglob("*") if p.is_file()) == models
    assert [v["version"] for v in c.get("/api/v1/models", params={"product": "cell"}).json()["items"]] == [1]


def test_a_heartbeat_with_a_nul_or_an_unprintable_name_is_refused(tmp_path):
    from lineguard.server.app import create_app
    st, key = _station(tmp_path)
    try:
        with TestClient(create_app(station=st), headers={"X-API-Key": key}) as c:
            for over in ({"folder": "/cam/in\u0000"}, {"line": "L9\u202e1L"}, {"station": "S\n1"},
                         {"station": "S\u200b1"}, {"station": "S\u001b[31mRED"}, {"host": "pc\u202e"}):
                r = c.post(HEARTBEAT, json=_beat(**over, sent=time.time()))
                assert r.status_code == 422, (over, r.text)
            assert c.get("/health").json().get("faults", {}) == {}
            assert c.post(HEARTBEAT, json=_beat(sent=time.time())).status_code == 200
            # its last errors are reports: a NUL there is shown escaped, never the heartbeat
            # refused (the station would lose sight of the watcher); a newer watcher's field too
            r = c.post(HEARTBEAT, json=_beat(sent=time.time(), station_error="a\u0000b", newer_field="x\u0000"))
            assert r.status_code == 200, r.text
    finally:
        st.close()


def test_a_reference_photo_line_is_a_part_s_line_and_its_file_name_is_shown_safely(make_station):  # noqa: F811
    st = make_station()
    with _client(st) as c:
        for line in ("L\u202e1", "L\u200b1", "L\u001b1"):
            r = _upload(c, png_bytes(60, seed=1), line=line)
            assert r.status_code == 422 and "a control character or an invisible one" in r.text, (line, r.text)
        r = _upload(c, png_bytes(60, seed=2), name="x\u202egnp.exe", product="cell\u202e")
        assert r.status_code == 422, r.text
        r = _upload(c, png_bytes(60, seed=2), name="x\u202egnp.exe")
        assert r.status_code == 201, r.text
        assert r.json()["filename"] == "x\ufffdgnp.exe"


def test_a_misspelt_or_repeated_form_field_is_refused_not_dropped(make_station):  # noqa: F811
    """Walk: -F seriall=SN-1 -F lto=LOT-7 stored the part with no serial and no lot (201),
    and a second line silently won over the first."""
    st = make_station()
    part = {"part_id": "form-1", "line": "L1", "station": "S1", "product": "cell"}
    image = {"image": ("p.png", png_bytes(60, seed=5), "image/png")}
    with _client(st) as c:
        r = c.post("/api/v1/inspections", files=image, data={**part, "seriall": "SN-1"})
        assert r.status_code == 422, r.text
        assert "seriall: not a field of this form" in r.text and "did you mean 'serial'?" in r.text, r.text
        r = c.post("/api/v1/inspections", files=image, data={**part, "line": ["L1", "L2"]})
        assert r.status_code == 422 and "2 values of line" in r.text, r.text
        r = c.post("/api/v1/reference-photos", files={"photo": ("g.png", png_bytes(60, seed=6), "image/png")},
                   data={"product": "cell", "lines": "L1"})
        assert r.status_code == 422 and "lines: not a field" in r.text, r.text
        r = c.post("/api/v1/models", files={"file": ("m.lgm", b"{}")}, data={"product": "cell", "activte": "true"})
        assert r.status_code == 422 and "activte: not a field" in r.text, r.text
        assert c.get("/api/v1/inspections").json()["items"] == []
        r = c.post("/api/v1/inspections", files=image, data={**part, "serial": "SN-1", "lot": "LOT-7"})
        assert r.status_code == 201 and (r.json()["serial"], r.json()["lot"]) == ("SN-1", "LOT-7"), r.text
