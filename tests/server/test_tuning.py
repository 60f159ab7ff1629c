"""Threshold tuning: expected rates at a threshold, the tuning data of a version, and
saving new thresholds as a new version of the same model (fake model and a real .lgm)."""
from __future__ import annotations


import pytest
from fastapi.testclient import TestClient

from .conftest import FakeInspector, png_bytes


# -- expected_rates: counted by hand ---------------------------------------------------

def test_expected_rates_counted_by_hand():
    from lineguard.line.tuning import expected_rates
    good = [0.1, 0.2, 0.3, 0.45, 0.55, 0.7]      # reviewed good
    defect = [0.25, 0.4, 0.6, 0.8, 0.9]          # reviewed defect
    recent = [0.1, 0.2, 0.35, 0.42, 0.5, 0.51, 0.9, 0.3, 0.05, 0.6]
    r = expected_rates(good, defect, recent, threshold=0.5, review_threshold=0.35)
    # NG above 0.5: good 0.55, 0.7 -> 2 of 6 false rejects
    assert r["false_rejects"] == {"k": 2, "n": 6, "rate": pytest.approx(2 / 6)}
    # OK at or below 0.35: defect 0.25 -> 1 of 5 escapes; in the band (0.35, 0.5]: 0.4
    assert r["escapes"] == {"k": 1, "n": 5, "rate": pytest.approx(0.2)}
    assert r["defects_to_review"]["k"] == 1 and r["good_to_review"]["k"] == 1      # 0.4 ; 0.45
    # recent in (0.35, 0.5]: 0.42, 0.5 -> review load 2 of 10; above 0.5: 0.51, 0.9, 0.6
    assert r["review_load"] == {"k": 2, "n": 10, "rate": pytest.approx(0.2)}
    assert r["recent_ng"]["k"] == 3
    # no band: escapes are the defects at or below the threshold itself, nobody reviews
    nb = expected_rates(good, defect, recent, threshold=0.5)
    assert nb["escapes"]["k"] == 2 and nb["review_load"]["k"] == 0 and nb["review_threshold"] is None
    # moving the threshold up trades false rejects for escapes
    up = expected_rates(good, defect, recent, threshold=0.65)
    assert up["false_rejects"]["k"] == 1 and up["escapes"]["k"] == 3
    assert expected_rates([], [], [], 0.5)["false_rejects"] == {"k": 0, "n": 0, "rate": None}


def test_expected_rates_refuses_a_band_above_the_threshold():
    from lineguard.line.errors import InvalidRequest
    from lineguard.line.tuning import expected_rates
    with pytest.raises(InvalidRequest, match="must be below threshold"):
        expected_rates([0.1], [0.9], [0.5], threshold=0.5, review_threshold=0.5)


# -- the API on a station with the fake model ------------------------------------------

@pytest.fixture
def tuned_station(db_backend, tmp_path):
    from lineguard.line.auth import create_key
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Part, Station
    db_url, schema = db_backend
    st = Station(StationConfig(data_dir=tmp_path / "data", db_url=db_url, db_schema=schema, open_reads=True),
                 loader=FakeInspector.load)
    st.add_model(FakeInspector(0.5, "v-a", review_threshold=0.3).to_bytes(), "cell", activate=True)
    ids = {}
    # the fake's score is the part's brightness / 255
    for value in (40, 60, 90, 100, 110, 140, 150, 200):
        rec = st.inspect(png_bytes(value, seed=value), Part(f"p{value}", "L1", "S1", "cell")).record
        ids[value] = rec
    for value, label in ((90, "good"), (140, "good"), (150, "defect"), (200, "defect"), (40, "good")):
        st.review(ids[value].id, label, "tester", None)
    with st.db.session() as s:
        keys = {role: create_key(s, role, name=f"t-{role}")[1] for role in ("operator", "engineer")}
    from lineguard.server.app import create_app
    with TestClient(create_app(station=st)) as c:
        yield st, c, keys, ids
    st.close()


def test_tuning_data_lists_the_scores_the_version_judged(tuned_station):
    st, c, keys, ids = tuned_station
    r = c.get("/api/v1/models/cell/tuning", params={"line": ""})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["product"], body["line"], body["version"]) == ("cell", "", 1)
    assert body["threshold"] == 0.5 and body["review_threshold"] == 0.3
    assert sorted(body["good_scores"]) == sorted(ids[v].score for v in (40, 90, 140))
    assert sorted(body["defect_scores"]) == sorted(ids[v].score for v in (150, 200))
    assert len(body["recent_scores"]) == 8
    assert body["expected"]["false_rejects"]["n"] == 3
    assert c.get("/api/v1/models/cell/tuning", params={"version": 9}).status_code == 404
    assert c.get("/api/v1/models/nope/tuning").status_code == 404


def test_saving_thresholds_makes_a_new_version_that_judges_with_them(tuned_station):
    st, c, keys, ids = tuned_station
    eng = {"X-API-Key": keys["engineer"]}
    part_score = ids[140].score      # 0.55: NG at 0.5
    assert ids[140].verdict == "NG"
    r = c.post("/api/v1/models/cell/threshold", headers=eng,
               json={"line": "", "version": 1, "threshold": 0.6, "review_threshold": 0.4, "note": "fewer scrapped"})
    assert r.status_code == 201, r.text
    v2 = r.json()
    assert v2["version"] == 2 and v2["active"] is False
    assert v2["threshold"] == 0.6 and v2["review_threshold"] == 0.4
    assert "0.5 -> 0.6" in v2["note"] and "fewer scrapped" in v2["note"] and v2["uploaded_by"].startswith("t-engineer (key ")
    v1 = st.models.get("cell", "", 1)
    assert v2["model_id"] != v1.model_id            # a new file, a new content hash
    # version 1 still judges until version 2 is activated; then the same part is REVIEW
    assert c.post("/api/v1/models/cell/activate", headers=eng, json={"line": "", "version": 2}).status_code == 200
    from lineguard.line.station import Part
    again = st.inspect(png_bytes(140, seed=141), Part("p140b", "L1", "S1", "cell")).record
    assert again.score == pytest.approx(part_score, abs=0.01)
    assert again.verdict == "REVIEW" and again.threshold == 0.6 and again.review_threshold == 0.4
    # the tuned version scores like its source: its tuning data includes what v1 judged
    t2 = c.get("/api/v1/models/cell/tuning", params={"version": 2}).json()
    assert t2["threshold"] == 0.6 and len(t2["recent_scores"]) == 9 and len(t2["good_scores"]) == 3
    # no review band: null
    r = c.post("/api/v1/models/cell/threshold", headers=eng, json={"version": 2, "threshold": 0.7,
                                                                   "review_threshold": None})
    assert r.status_code == 201 and r.json()["version"] == 3
    t3 = c.get("/api/v1/models/cell/tuning", params={"version": 3}).json()
    assert t3["threshold"] == 0.7 and t3["review_threshold"] is None and len(t3["recent_scores"]) == 9


def test_tuning_data_says_when_recent_parts_break_the_promise(db_backend, tmp_path):
    from lineguard.line.auth import create_key
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Part, Station
    db_url, schema = db_backend
    st = Station(StationConfig(data_dir=tmp_path / "data", db_url=db_url, db_schema=schema, open_reads=True),
                 loader=FakeInspector.load)
    model = FakeInspector(0.5, "v-p", review_threshold=0.3)
    model.calibration = {"threshold": 0.5, "review_threshold": 0.3, "guaranteed_false_reject_rate": 0.01,
                         "guaranteed_not_ok_rate": 0.06}
    st.add_model(model.to_bytes(), "cell", activate=True)
    # the fake's score is brightness / 255: 3 of 8 parts NG (> 0.5), 6 of 8 not OK (> 0.3)
    for value in (40, 60, 90, 100, 110, 140, 150, 200):
        st.inspect(png_bytes(value, seed=value), Part(f"p{value}", "L1", "S1", "cell"))
    from lineguard.server.app import create_app
    try:
        with TestClient(create_app(station=st)) as c:
            pr = c.get("/api/v1/models/cell/tuning").json()["promise"]
            assert (pr["ng"]["k"], pr["ng"]["n"], pr["ng"]["above_promise"]) == (3, 8, True)
            assert (pr["not_ok"]["k"], pr["not_ok"]["promised"], pr["not_ok"]["above_promise"]) == (6, 0.06, True)
            assert pr["reviewed_defects_left_out"] == 0
            with st.db.session() as s:
                key = create_key(s, "engineer", name="t-engineer")[1]
            # a part a person confirms defective is no false reject: it leaves the check
            brightest = c.get("/api/v1/inspections", params={"part_id": "p200"}).json()["items"][0]
            assert c.post(f"/api/v1/inspections/{brightest['id']}/review", headers={"X-API-Key": key},
                          json={"label": "defect"}).status_code == 200
            pr = c.get("/api/v1/models/cell/tuning").json()["promise"]
            assert (pr["ng"]["k"], pr["ng"]["n"], pr["not_ok"]["k"], pr["reviewed_defects_left_out"]) == (2, 7, 5, 1)
            # thresholds moved by hand carry no promise
            r = c.post("/api/v1/models/cell/threshold", headers={"X-API-Key": key}, json={"version": 1, "threshold": 0.7})
            assert r.status_code == 201, r.text
            assert c.get("/api/v1/models/cell/tuning", params={"version": r.json()["version"]}).json()["promise"] is None
    finally:
        st.close()


@pytest.mark.parametrize("body, status, says", [
    ({"version": 1, "threshold": 0.5, "review_threshold": 0.6}, 422, "must be below threshold"),
    ({"version": 1, "threshold": 0.5, "review_threshold": 0.3}, 422, "already has threshold"),
    ({"version": 7, "threshold": 0.6}, 404, "no model version 7"),
    ({"version": 1}, 422, "threshold: Field required"),
    ({"version": 1, "threshold": -5}, 422, "must be above 0"),          # every part NG
    ({"version": 1, "threshold": 0.5, "review_threshold": 0}, 422, "every part would go to REVIEW"),
    ({"version": 1, "threshold": 1e308}, 422, "every part would pass"),
])
@pytest.mark.one_database
def test_bad_threshold_requests_are_refused(tuned_station, body, status, says):
    st, c, keys, _ = tuned_station
    r = c.post("/api/v1/models/cell/threshold", headers={"X-API-Key": keys["engineer"]}, json=body)
    assert r.status_code == status, r.text
    assert says in r.json()["error"]["message"]
    assert [m.version for m in st.models.list("cell")] == [1]     # nothing half-made


@pytest.mark.one_database
def test_saving_thresholds_needs_an_engineer(tuned_station):
    _, c, keys, _ = tuned_station
    body = {"version": 1, "threshold": 0.6}
    assert c.post("/api/v1/models/cell/threshold", json=body).status_code == 401
    assert c.post("/api/v1/models/cell/threshold", headers={"X-API-Key": keys["operator"]},
                  json=body).status_code == 403


# -- a real .lgm bundle ------------------------------------------------------------------

def test_real_bundle_gets_new_thresholds_and_a_valid_hash(fitted_model_path, synth_category, tmp_path):
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Part, Station
    from lineguard.line.tuning import save_thresholds
    from lineguard.vision import bundle
    from lineguard.vision.inspector import Inspector
    st = Station(StationConfig(data_dir=tmp_path / "data"))
    try:
        v1 = st.add_model(fitted_model_path.read_bytes(), "cell", activate=True)
        old = Inspector.load(fitted_model_path)
        part = sorted((synth_category / "test" / "good").iterdir())[0].read_bytes()
        first = st.inspect(part, Part("a", "L1", "S1", "cell")).record
        # a threshold just below this good part's score: the new version must reject it
        new_t = first.score * 0.9
        v2 = save_thresholds(st, "cell", "", 1, new_t, new_t * 0.5, note="test", by="me")
        data = st.models.store.path(v2.file_key).read_bytes()
        manifest, tensors, digest = bundle.loads(data)      # the content hash checks out
        assert digest[:16] == v2.model_id != v1.model_id
        cal = manifest["calibration"]
        assert cal["threshold"] == new_t and cal["review_threshold"] == new_t * 0.5
        assert cal["pixel_threshold"] <= new_t and cal["tuned"]["scored_as"] == v1.model_id
        assert "guaranteed_false_reject_rate" not in cal      # a guarantee of the old threshold
        _, old_tensors, _ = bundle.load(fitted_model_path)
        assert sorted(tensors) == sorted(old_tensors)
        assert all((tensors[k] == old_tensors[k]).all() for k in tensors)    # the same model
        new = Inspector.load(data)
        assert new.threshold == new_t and new.review_threshold == new_t * 0.5
        assert new.calibration["target_false_reject_rate"] == old.calibration["target_false_reject_rate"]
        st.activate_model("cell", "", 2)
        second = st.inspect(part, Part("b", "L1", "S1", "cell")).record
        assert second.score == pytest.approx(first.score, rel=1e-5)
        assert second.verdict == "NG" and second.threshold == pytest.approx(new_t)
    finally:
        st.close()


def test_exported_onnx_gets_new_thresholds_with_its_graph_untouched():
    # an exported model's file: protobuf fields (here a stand-in graph, field 7) and the
    # lineguard manifest entry, sealed with its hash; only the manifest may change
    from lineguard.line.tuning import rewrite_thresholds
    from lineguard.runtime import onnx_file
    graph = onnx_file._length_delimited(7, b"\x01graph bytes that must not move\x02" * 10)
    manifest = {"format": "lineguard-onnx", "format_version": 1,
                "calibration": {"threshold": 0.5, "review_threshold": 0.3, "pixel_threshold": 0.4}}
    data, _ = onnx_file.seal(graph + onnx_file.manifest_entry(manifest))
    new = rewrite_thresholds(data, {**manifest["calibration"], "threshold": 0.7, "review_threshold": 0.6})
    digest = onnx_file.verify(new)                    # sealed again: the hash checks out
    _, m2, d2 = onnx_file.load(new)
    assert d2 == digest != onnx_file.verify(data)
    assert m2["calibration"]["threshold"] == 0.7 and m2["calibration"]["review_threshold"] == 0.6
    assert new.startswith(graph)
    # a file of no known format, from a loader that cannot rewrite itself: refused, saying why
    from lineguard.line.errors import InvalidModel
    with pytest.raises(InvalidModel, match="neither a .lgm bundle nor an exported .onnx"):
        rewrite_thresholds(b'{"some": "json"}', {"threshold": 1.0})


@pytest.mark.one_database
def test_tuning_shows_the_parts_of_the_line_asked_for_and_refuses_an_unknown_line(tuned_station):
    """One model for every line: the line field narrowed nothing (every line's parts), and
    a misspelt line showed them all as if they were its own."""
    from lineguard.line.station import Part
    st, c, keys, ids = tuned_station
    for value in (60, 70, 80):
        st.inspect(png_bytes(value, seed=value + 1), Part(f"l2-{value}", "L2", "S1", "cell"))
    every = c.get("/api/v1/models/cell/tuning").json()
    assert len(every["recent_scores"]) == 11 and every["parts_line"] is None
    for typed in ("L2", "l2 "):
        l2 = c.get("/api/v1/models/cell/tuning", params={"line": typed})
        assert l2.status_code == 200, l2.text
        body = l2.json()
        assert (body["line"], body["parts_line"], body["version"]) == ("", "L2", 1)     # the model every line shares
        assert sorted(body["recent_scores"]) == pytest.approx([60 / 255, 70 / 255, 80 / 255], abs=0.01)
        assert body["good_scores"] == [] and body["expected"]["false_rejects"]["n"] == 0
    assert c.get("/api/v1/models/cell/tuning", params={"line": "L2", "version": 1}).json()["parts_line"] == "L2"
    unknown = c.get("/api/v1/models/cell/tuning", params={"line": "NOSUCHLINE"})
    assert unknown.status_code == 404 and "L1, L2" in unknown.json()["error"]["message"]


@pytest.mark.one_database
def test_a_saved_versions_note_names_the_review_band_only_when_there_is_one(db_backend, tmp_path):
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    from lineguard.line.tuning import save_thresholds
    db_url, schema = db_backend
    st = Station(StationConfig(data_dir=tmp_path / "data", db_url=db_url, db_schema=schema), loader=FakeInspector.load)
    try:
        st.add_model(FakeInspector(0.5, "v-a").to_bytes(), "cell", activate=True)        # no band
        assert save_thresholds(st, "cell", "", 1, 0.6, None).note == "thresholds of v1 tuned: 0.5 -> 0.6"
        assert save_thresholds(st, "cell", "", 1, 0.6, 0.4).note == \
            "thresholds of v1 tuned: 0.5 -> 0.6, review none -> 0.4"
        st.add_model(FakeInspector(0.5, "v-b", review_threshold=0.3).to_bytes(), "cell", activate=True)
        assert save_thresholds(st, "cell", "", 4, 0.5, None).note == \
            "thresholds of v4 tuned: 0.5 -> 0.5, review band removed"
    finally:
        st.close()


@pytest.mark.one_database
def test_a_lines_own_model_opens_before_its_first_part_and_an_old_version_with_a_bad_threshold_opens(tuned_station):
    st, c, keys, ids = tuned_station
    st.add_model(FakeInspector(0.5, "v-l9").to_bytes(), "cell", line="L9", activate=True)
    r = c.get("/api/v1/models/cell/tuning", params={"line": "L9"})
    assert r.status_code == 200 and (r.json()["line"], r.json()["recent_scores"]) == ("L9", []), r.text
    # a version saved before thresholds at or below 0 were refused: it can be opened to put right
    old = st.add_model(FakeInspector(-5.0, "v-neg").to_bytes(), "cell")
    r = c.get("/api/v1/models/cell/tuning", params={"version": old.version})
    assert r.status_code == 200 and r.json()["threshold"] == -5.0, r.text


@pytest.mark.one_database
def test_the_raise_limit_holds_along_a_chain_of_tunings(tuned_station):
    """v1 at 0.5 -> 40 -> 3,900 -> 380,000: each step under 100 times the one before, the
    last passing every part."""
    st, c, keys, _ = tuned_station
    eng = {"X-API-Key": keys["engineer"]}
    r = c.post("/api/v1/models/cell/threshold", headers=eng, json={"version": 1, "threshold": 40})
    assert r.status_code == 201, r.text
    r = c.post("/api/v1/models/cell/threshold", headers=eng, json={"version": r.json()["version"], "threshold": 3900})
    assert r.status_code == 422 and "every part would pass" in r.json()["error"]["message"], r.text


@pytest.mark.one_database
def test_saving_from_a_page_opened_before_a_retrain_was_activated_is_refused(tuned_station):
    """The Tuning page opened on active v1; a retrain activated v2 meanwhile. Saved from
    that page, v3 was "thresholds of v1 tuned", and activating it put v1's model back:
    the save says which version it saw active, and another one active by now is a 409."""
    st, c, keys, _ = tuned_station
    eng = {"X-API-Key": keys["engineer"]}
    seen = c.get("/api/v1/models/cell/tuning").json()
    st.add_model(FakeInspector(0.45, "v-retrained").to_bytes(), "cell", activate=True)     # v2, another model
    body = {"version": seen["version"], "threshold": 0.6, "expected_active": 1}
    r = c.post("/api/v1/models/cell/threshold", headers=eng, json=body)
    assert r.status_code == 409, r.text
    # what the page sends: the version the tuning answer said was active
    assert (seen["version"], seen["active_version"], seen["not_active"]) == (1, 1, None)
    err = r.json()["error"]
    assert err["code"] == "active_changed" and err["active_version"] == 2
    assert "v2 is active now, not v1" in err["message"] and "Reload the Tuning page" in err["message"]
    assert [m.version for m in st.models.list("cell")] == [1, 2]          # nothing saved
    # tuning v1 on purpose, knowing v2 is active: saved, and said wherever the version shows
    old = c.get("/api/v1/models/cell/tuning", params={"version": 1}).json()
    assert old["active_version"] == 2 and "v2 is, another model" in old["not_active"]
    r = c.post("/api/v1/models/cell/threshold", headers=eng, json={**body, "expected_active": 2})
    assert r.status_code == 201, r.text
    v3 = r.json()
    assert (v3["version"], v3["tuned_version"], v3["active_version"]) == (3, 1, 2)
    assert "puts that model back in place of v2's" in v3["not_active"]
    assert "saved while v2 was active, another model" in v3["note"]
    # the active version tuned: nothing to say; one tuned from the same model: only the thresholds differ
    assert c.post("/api/v1/models/cell/activate", headers=eng, json={"version": 3}).status_code == 200
    r = c.post("/api/v1/models/cell/threshold", headers=eng, json={"version": 3, "threshold": 0.7,
                                                                   "expected_active": 3})
    assert r.status_code == 201 and r.json()["not_active"] is None, r.text
    assert "saved while" not in r.json()["note"]
    same = c.get("/api/v1/models/cell/tuning", params={"version": 1}).json()
    assert same["active_version"] == 3 and "the same model with other thresholds" in same["not_active"]
    # no version active (0) when one is: refused the same way
    r = c.post("/api/v1/models/cell/threshold", headers=eng, json={"version": 3, "threshold": 0.8,
                                                                   "expected_active": 0})
    assert r.status_code == 409 and "v3 is active now, not none" in r.json()["error"]["message"]


def test_the_tuning_page_sends_the_version_it_saw_active_and_reloads_on_a_change():
    """The page's part of the check, read from its script (the browser tests drive it)."""
    from pathlib import Path

    import lineguard.server as server
    js = (Path(server.__file__).parent / "web" / "tuning.js").read_text()
    assert "expected_active: t.active_version ?? 0" in js
    assert 'code === "active_changed"' in js and "await load()" in js
    assert 'id: "not-active"' in js and "mv.not_active" in js
