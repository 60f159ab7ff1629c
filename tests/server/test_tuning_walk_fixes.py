"""Threshold tuning, from a tester's walk of the Tuning page: parts the photo check sent to
REVIEW count as REVIEW (not by their score), a false-reject target that lands under the
review threshold says the band is gone, a threshold saved from a target keeps the target's
promise, and a threshold saved below the good parts is warned of on saving and named when
its activation is refused."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from .conftest import FakeInspector, png_bytes


def _station(db_backend, tmp_path, model: FakeInspector):
    from lineguard.line.auth import create_key
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    db_url, schema = db_backend
    st = Station(StationConfig(data_dir=tmp_path / "data", db_url=db_url, db_schema=schema, open_reads=True),
                 loader=FakeInspector.load)
    mv = st.add_model(model.to_bytes(), "cell", activate=True)
    with st.db.session() as s:
        key = create_key(s, "engineer", name="t-engineer")[1]
    return st, mv, {"X-API-Key": key}


def _plant(st, model_id: str, parts: list[tuple]) -> None:
    """Records of product 'cell' judged by ``model_id`` (threshold 0.5, band from 0.3), straight
    to the database: (score, photo issues or None, review label or None[, audit sample])."""
    from lineguard.line.orm import Inspection
    with st.db.session() as s:
        for i, (score, issues, label, *audit) in enumerate(parts):
            verdict = "REVIEW" if issues else "NG" if score > 0.5 else "REVIEW" if score > 0.3 else "OK"
            s.add(Inspection(part_id=f"W-{i}", line="L1", station="S1", product="cell", source="api",
                             verdict=verdict, score=score, threshold=0.5, review_threshold=0.3,
                             pixel_threshold=0.5, model_id=model_id, model_version="fake-1", registry_version=1,
                             timings_ms={}, image_sha256=f"w{i:05d}", image_width=64, image_height=64,
                             photo_issues=issues, audit_sample=bool(audit and audit[0]),
                             reviewed=label is not None, review_label=label))
        s.commit()


BLURRED = ["blurred: sharpness 0.1, good photos 0.6 and above"]
DARK = ["too dark: brightness 0.050, good photos 0.200 and above"]


@pytest.fixture
def photo_station(db_backend, tmp_path):
    model = FakeInspector(0.5, "v-p", review_threshold=0.3)
    model.calibration = {"threshold": 0.5, "review_threshold": 0.3, "guaranteed_false_reject_rate": 0.01,
                         "guaranteed_not_ok_rate": 0.06, "strategy": "frr"}
    st, mv, eng = _station(db_backend, tmp_path, model)
    _plant(st, mv.model_id, [(0.1, None, None)] * 4 + [(0.4, None, None)] + [(0.7, None, None)] * 2
           # the photo check doubted these: REVIEW whatever the score, high (blurred) or low (dark)
           + [(0.9, BLURRED, "good"), (0.9, BLURRED, None), (0.05, DARK, "defect")])
    from lineguard.server.app import create_app
    with TestClient(create_app(station=st)) as c:
        yield st, c, eng
    st.close()


def test_parts_the_photo_check_sent_to_review_count_as_review_not_by_their_score(photo_station):
    st, c, eng = photo_station
    body = c.get("/api/v1/models/cell/tuning").json()
    # newest first: the dark defect, the two blurred parts
    assert body["photo_review"] == {"good": [0], "defect": [0], "recent": [0, 1, 2]}
    ex = body["expected"]
    # REVIEW: the part in the band and the 3 doubted ones; NG: the 2 at 0.7 (not the blurred 0.9s)
    assert ex["review_load"]["k"] == 4 and ex["review_load"]["n"] == 10
    assert ex["recent_ng"]["k"] == 2
    assert ex["photo_review"] == {"k": 3, "n": 10, "rate": pytest.approx(0.3)}
    # the blurred part reviewed good was held for a look, not scrapped; the dark defect was caught
    assert ex["false_rejects"]["k"] == 0 and ex["good_to_review"]["k"] == 1
    assert ex["escapes"]["k"] == 0 and ex["defects_to_review"]["k"] == 1
    # the promise: the defect left out, 9 parts; NG 2 of them, not OK 1 + 2 + 2 doubted
    pr = body["promise"]
    assert (pr["ng"]["k"], pr["ng"]["n"]) == (2, 9)
    assert pr["not_ok"]["k"] == 5 and pr["photo_review"] == 2 and pr["promised_by"] == "training"


def test_a_what_if_threshold_counts_the_photo_check_s_parts_as_review_too():
    from lineguard.line.tuning import expected_rates
    recent = [0.9, 0.05, 0.4, 0.7]
    doubted = {"recent": [0, 1]}
    r = expected_rates([], [], recent, threshold=0.8, photo_review=doubted)
    # no band: only the photo check's REVIEWs; 0.9 is REVIEW, not NG, at any threshold
    assert r["review_load"]["k"] == 2 and r["recent_ng"]["k"] == 0
    r = expected_rates([], [], recent, threshold=0.35, review_threshold=0.3, photo_review=doubted)
    assert r["review_load"]["k"] == 2 and r["recent_ng"]["k"] == 2 and r["photo_review"]["k"] == 2


def _audited(db_backend, tmp_path, band: bool):
    model = FakeInspector(0.5, "v-t", review_threshold=0.3 if band else None)
    st, mv, eng = _station(db_backend, tmp_path, model)
    # the audit sample's good parts, judged OK: 1% of 300 sets the threshold at the 298th, 0.298
    _plant(st, mv.model_id, [(round(0.001 * (j + 1), 3), None, None, True) for j in range(300)])
    return st, eng


def test_a_target_under_the_review_threshold_says_the_band_is_removed(db_backend, tmp_path):
    st, eng = _audited(db_backend, tmp_path, band=True)
    from lineguard.server.app import create_app
    try:
        with TestClient(create_app(station=st)) as c:
            r = c.get("/api/v1/models/cell/tuning/target", params={"false_reject_rate": 0.01}).json()
            assert r["threshold"] < 0.3 and r["review_threshold"] is None
            assert "review threshold (0.3) is at or above the new NG threshold" in r["band_removed"]
            assert "to keep one, set a review threshold below the NG threshold" in r["band_removed"]
    finally:
        st.close()


def test_a_threshold_saved_from_a_target_keeps_the_target_s_promise(db_backend, tmp_path):
    st, eng = _audited(db_backend, tmp_path, band=False)
    from lineguard.server.app import create_app
    try:
        with TestClient(create_app(station=st)) as c:
            target = c.get("/api/v1/models/cell/tuning/target", params={"false_reject_rate": 0.01}).json()
            # a threshold the target does not set is refused: the promise is never the caller's word
            r = c.post("/api/v1/models/cell/threshold", headers=eng,
                       json={"version": 1, "threshold": 0.2, "false_reject_rate": 0.01})
            assert r.status_code == 422 and "is not the one a 1% false-reject target sets now" in r.text
            r = c.post("/api/v1/models/cell/threshold", headers=eng,
                       json={"version": 1, "threshold": target["threshold"], "false_reject_rate": 0.01,
                             "parts_line": target["parts_line"] or ""})
            assert r.status_code == 201, r.text
            v2 = r.json()
            assert "from a 1% false-reject target" in v2["note"]
            pr = c.get("/api/v1/models/cell/tuning", params={"version": v2["version"]}).json()["promise"]
            assert pr is not None and pr["promised_by"] == "target" and pr["false_reject_target"] == 0.01
            assert pr["ng"]["promised"] == pytest.approx(target["guaranteed_false_reject_rate"])
            # then moved by hand: no promise, as before
            r = c.post("/api/v1/models/cell/threshold", headers=eng,
                       json={"version": v2["version"], "threshold": 0.4})
            assert r.status_code == 201, r.text
            assert "false-reject target" not in r.json()["note"]
            assert c.get("/api/v1/models/cell/tuning", params={"version": r.json()["version"]}).json()["promise"] \
                is None
    finally:
        st.close()


def test_a_threshold_below_every_good_part_is_warned_of_and_its_refusal_names_it(db_backend, tmp_path):
    from lineguard.line.station import Part
    st, mv, eng = _station(db_backend, tmp_path, FakeInspector(0.5, "v-w"))
    for value in (40, 50, 60, 70, 80, 90):       # scores 0.16 to 0.35: OK at 0.5
        assert st.inspect(png_bytes(value, seed=value), Part(f"g{value}", "L1", "S1", "cell")).record.verdict == "OK"
    from lineguard.server.app import create_app
    try:
        with TestClient(create_app(station=st)) as c:
            r = c.post("/api/v1/models/cell/threshold", headers=eng,
                       json={"version": 1, "threshold": 0.05, "expected_active": 1})
            assert r.status_code == 201, r.text
            assert r.json()["warning"].startswith("this threshold judges 6 of the 6 latest good parts of 'cell' NG: "
                                                  "activating v2 will be refused unless forced")
            r = c.post("/api/v1/models/cell/activate", headers=eng, json={"version": 2})
            assert r.status_code == 409 and r.json()["error"]["code"] == "rejects_good_parts"
            said = r.json()["error"]["message"]
            assert said.startswith("v2's threshold (0.05, the active version's 0.5) judges 6 of the 6 latest good")
            assert "A threshold set too low does this" in said and "another product or camera" not in said
            # a threshold that passes them: no warning
            r = c.post("/api/v1/models/cell/threshold", headers=eng, json={"version": 1, "threshold": 0.45})
            assert r.status_code == 201 and r.json()["warning"] is None
    finally:
        st.close()
