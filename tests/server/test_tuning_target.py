"""A false-reject target on the Tuning page's API: the NG threshold that holds it on the good
parts of the random audit sample, with how many parts it rests on and its 95% bound, the
escapes on reviewed defects, and a target the parts cannot hold refused as `train --frr` counts
(ceil(1/target) - 1 parts: 199 for 0.5%)."""
from __future__ import annotations

import math
import uuid

import pytest
from fastapi.testclient import TestClient

from .conftest import FakeInspector


def _verdict(score: float, t: float = 0.5, r: float = 0.3) -> str:
    return "NG" if score > t else "REVIEW" if score > r else "OK"


def _add(st, product: str, parts: list[tuple[float, bool, str | None]], line: str = "L1",
         verdict: str | None = None) -> None:
    """Records judged by the product's active model: (score, audit sample, review label or None)."""
    from lineguard.line.orm import Inspection
    mv = st.models.active_for(product, "")
    batch = uuid.uuid4().hex[:8]      # called again for more parts: names of their own
    with st.db.session() as s:
        for i, (score, audit, label) in enumerate(parts):
            s.add(Inspection(part_id=f"{product}-{batch}-{i}", line=line, station="S1", product=product, source="api",
                             verdict=verdict or _verdict(score), score=score, threshold=0.5, review_threshold=0.3,
                             pixel_threshold=0.5, model_id=mv.model_id, model_version="fake-1",
                             registry_version=mv.version, timings_ms={}, image_sha256=f"{batch}{i:05d}",
                             image_width=64, image_height=64, audit_sample=audit, reviewed=label is not None,
                             review_label=label))
        s.commit()


@pytest.fixture
def target_station(db_backend, tmp_path):
    from lineguard.line.auth import create_key
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    db_url, schema = db_backend
    st = Station(StationConfig(data_dir=tmp_path / "data", db_url=db_url, db_schema=schema, open_reads=True),
                 loader=FakeInspector.load)
    st.add_model(FakeInspector(0.5, "v-a", review_threshold=0.3).to_bytes(), "cell", activate=True)
    with st.db.session() as s:
        key = create_key(s, "operator", name="t-operator")[1]
    from lineguard.server.app import create_app
    with TestClient(create_app(station=st), headers={"X-API-Key": key}) as c:
        yield st, c
    st.close()


def test_a_target_sets_the_threshold_on_the_audit_samples_good_parts(target_station):
    from lineguard.vision.calibration import beta_quantile
    st, c = target_station
    # the audit sample: 400 good parts scoring 0.001 .. 0.400; those above the review
    # threshold (REVIEW) were reviewed good, the others judged OK and not reviewed
    audit = [(round(0.001 * (j + 1), 3), True, "good" if 0.001 * (j + 1) > 0.3 else None) for j in range(400)]
    # the model's false alarms reviewed good outside the sample: counted, they set it over defects
    alarms = [(0.6 + 0.005 * j, False, "good") for j in range(50)]
    # reviewed defects: 0.2 passes the review band (0.3), 0.35 and 0.45 go to REVIEW
    defects = [(s, False, "defect") for s in (0.2, 0.35, 0.45, 0.7, 0.8)]
    # audit parts judged NG that nobody reviewed, and one reviewed as a defect (never a good part)
    unsure = [(0.9, True, None), (0.95, True, None), (0.85, True, "defect")]
    _add(st, "cell", audit + alarms + defects + unsure)
    r = c.get("/api/v1/models/cell/tuning/target", params={"false_reject_rate": 0.01})
    assert r.status_code == 200, r.text
    t = r.json()
    # the 400 audit good parts and the 2 unreviewed NG ones counted as good (left out, the
    # threshold fell below them and broke the target): rank ceil(403 * 0.99) = 399 of 402: 0.399
    assert t["good_parts"] == 402 and t["rank"] == 399
    assert t["threshold"] == pytest.approx(0.399)
    assert t["above"] == 3
    assert t["guaranteed_false_reject_rate"] == pytest.approx(4 / 403)
    assert t["false_reject_rate_upper_95"] == pytest.approx(beta_quantile(0.95, 4, 399))
    assert "audit sample" in t["measured_on"]
    assert t["unreviewed_not_ok"] == 2 and t["unreviewed_not_ok_above"] == 2
    # the version's band (0.3) stays below the new threshold: the defect at 0.2 escapes
    assert t["review_threshold"] == pytest.approx(0.3)
    assert (t["escapes"]["k"], t["escapes"]["n"]) == (1, 6)      # the audit defect at 0.85 among them
    assert t["escapes"]["lo"] < 0.2 < t["escapes"]["hi"]
    # a looser target: a threshold under the band (0.3), so no band is left; 0.2 still escapes
    loose = c.get("/api/v1/models/cell/tuning/target", params={"false_reject_rate": 0.3}).json()
    assert loose["threshold"] == pytest.approx(0.283)        # rank ceil(403 * 0.7) = 283
    assert loose["review_threshold"] is None and loose["escapes"]["k"] == 1
    # the slider's parts reviewed good say 51 of 150 above 0.399 (34%), not 0.75%: they are
    # mostly the model's false alarms
    tuning = c.get("/api/v1/models/cell/tuning").json()
    assert sum(s > t["threshold"] for s in tuning["good_scores"]) == 51


@pytest.mark.one_database
def test_a_target_the_parts_cannot_hold_is_refused_as_train_frr_counts(target_station):
    st, c = target_station
    _add(st, "cell", [(round(0.001 * (j + 1), 3), True, None) for j in range(198)])
    url = "/api/v1/models/cell/tuning/target"
    r = c.get(url, params={"false_reject_rate": 0.005})
    assert r.status_code == 422, r.text
    msg = r.json()["error"]["message"]
    assert "a 0.5% false-reject target needs at least 199 good parts; you have 198" in msg
    # the lowest target 198 parts hold, 1/199 rounded up, is accepted as said
    assert "198 parts hold a target of 0.51% or more" in msg
    assert c.get(url, params={"false_reject_rate": 0.0051}).status_code == 200
    _add(st, "cell", [(0.05, True, None)])
    ok = c.get(url, params={"false_reject_rate": 0.005})
    assert ok.status_code == 200, ok.text
    assert ok.json()["good_parts"] == 199 and ok.json()["threshold"] == pytest.approx(0.198)
    assert "needs at least 999 good parts; you have 199" in c.get(
        url, params={"false_reject_rate": 0.001}).json()["error"]["message"]


@pytest.mark.one_database
def test_no_audit_parts_and_targets_that_are_no_share_are_refused_saying_what_to_do(target_station):
    st, c = target_station
    # reviewed good parts a plenty, none in the audit sample: they are the model's false alarms
    _add(st, "cell", [(0.3 + 0.001 * j, False, "good") for j in range(300)])
    url = "/api/v1/models/cell/tuning/target"
    r = c.get(url, params={"false_reject_rate": 0.01})
    assert r.status_code == 422
    msg = r.json()["error"]["message"]
    assert "needs at least 99 good parts; you have 0" in msg and "--audit-sample-rate" in msg
    for bad, said in ((0, "above 0 and below 1"), (-0.01, "above 0 and below 1"), (1.5, "above 0 and below 1"),
                      ("nan", "above 0 and below 1"), (0.5, "a share, not a percentage")):
        r = c.get(url, params={"false_reject_rate": bad})
        assert r.status_code == 422 and said in r.json()["error"]["message"], (bad, r.text)
    assert c.get(url).status_code == 422                                  # no target: said by the API
    assert c.get(url, params={"false_reject_rate": 0.01, "frr": 1}).status_code == 422   # a misspelt name
    assert c.get("/api/v1/models/nope/tuning/target", params={"false_reject_rate": 0.01}).status_code == 404


@pytest.mark.one_database
def test_the_parts_needed_are_those_train_frr_names(target_station):
    """ceil(1/target) - 1 good parts hold a target (calibration_parts_needed), one fewer do not."""
    from lineguard.vision.calibration import conformal_threshold
    st, c = target_station
    have = 0
    for frr in (0.05, 0.03, 0.01):
        needed = conformal_threshold([0.1], frr)[1]["calibration_parts_needed"]
        assert needed == math.ceil(1 / frr) - 1
        _add(st, "cell", [(0.01 + 0.001 * j, True, None) for j in range(have, needed - 1)])
        r = c.get("/api/v1/models/cell/tuning/target", params={"false_reject_rate": frr})
        assert r.status_code == 422 and f"needs at least {needed} good parts; you have {needed - 1}" in r.text
        _add(st, "cell", [(0.2, True, None)])
        r = c.get("/api/v1/models/cell/tuning/target", params={"false_reject_rate": frr})
        assert r.status_code == 200 and r.json()["good_parts"] == needed, r.text
        have = needed
