"""A shadow's rates on the audit sample, where people picked what to review by the ACTIVE
version's verdict, through Compare and the Models page on SQLite and PostgreSQL.

People review everything the line flagged and a share of what it passed. Among a shadow's
OK parts the reviewed ones are then rich in parts the active version flagged, the likelier
defects: two equally good versions, and the shadow's escapes read 18% against the active
one's 4.8% (a simulation of 200,000 parts: 2.31% against 0.50%, the true 0.60%). The Models
page and Compare steered people away from a good candidate. Its rates are weighted by the
active version's verdict now: within each of those the reviewed parts are a fair pick.
"""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
from fastapi.testclient import TestClient

from fake_inspector import FakeInspector

from lineguard.line.compare import sample_rates
from lineguard.vision.calibration import rate_with_ci

T0 = dt.datetime(2026, 11, 30, 6, 0)

# The audit sample's parts: (v1's verdict, v2's shadow verdict, reviewed as, parts). v1 is
# active: all it flagged reviewed, a tenth of what it passed. The two are equally good: each
# passes 420 parts of which 20 are defects (4.8%), each rejects 60 of which 20 are good.
#   v1 OK, v2 OK: 400 parts, 10 defects; 40 reviewed, 1 a defect
#   v1 OK, v2 NG:  20 parts, 10 defects;  2 reviewed, 1 a defect
#   v1 NG, v2 OK:  20 parts, 10 defects;  all reviewed
#   v1 NG, v2 NG:  40 parts, 30 defects;  all reviewed
SAMPLE = [
    ("OK", "OK", "defect", 1), ("OK", "OK", "good", 39), ("OK", "OK", None, 360),
    ("OK", "NG", "defect", 1), ("OK", "NG", "good", 1), ("OK", "NG", None, 18),
    ("NG", "OK", "defect", 10), ("NG", "OK", "good", 10),
    ("NG", "NG", "defect", 30), ("NG", "NG", "good", 10),
]


def _station(spc_station):
    st = spc_station()
    v1 = st.add_model(FakeInspector(0.5, "fake-1").to_bytes(), "cell", activate=True)
    v2 = st.add_model(FakeInspector(0.4, "fake-2").to_bytes(), "cell")
    with st.db.session() as s:
        from lineguard.line.orm import Inspection, ShadowResult
        recs = []
        for verdict, shadow, label, n in SAMPLE:
            for _ in range(n):
                rec = Inspection(part_id=f"p{uuid.uuid4().hex[:12]}", line="L1", station="S1", product="cell",
                                 verdict=verdict, score=0.3, threshold=0.5, pixel_threshold=0.5,
                                 model_id=v1.model_id, model_version="fake-1", registry_version=v1.version,
                                 image_sha256=uuid.uuid4().hex, image_width=8, image_height=8,
                                 created_at=T0 + dt.timedelta(seconds=len(recs)), reviewed=label is not None,
                                 review_label=label, audit_sample=True)
                s.add(rec)
                recs.append((rec, shadow))
        s.flush()
        s.add_all([ShadowResult(inspection_id=rec.id, model_version_id=v2.id, verdict=shadow, score=0.3)
                   for rec, shadow in recs])
    return st, v1, v2


def _client(st):
    from lineguard.server.app import create_app
    return TestClient(create_app(station=st))


def _check(one, two):
    # v1: its own verdicts chose the reviews, the plain rates: 2 defects among its 42 OK
    # parts reviewed, 20 good among its 60 NG ones
    assert one["escape"] == rate_with_ci(2, 42) and one["false_reject"] == rate_with_ci(20, 60)
    # v2: 11 defects among its 60 OK parts reviewed (18%), but 20 of those 60 are ones v1
    # rejected, half of them defects, where only a tenth of its 400 others were looked at.
    # Weighted: 400/420 x 1/40 + 20/420 x 10/20 = 20/420, the 4.8% it truly passes
    esc = two["escape"]
    assert esc["rate"] == pytest.approx(20 / 420)
    assert (esc["k"], esc["n"]) == (11, 60)
    assert esc["weighted_by"] == {"NG": {"judged": 20, "reviewed": 20, "k": 10},
                                  "OK": {"judged": 400, "reviewed": 40, "k": 1}}
    assert esc["lo"] <= 20 / 420 <= esc["hi"] and esc["lo"] > 0
    # its false rejects: 20/60 x 1/2 + 40/60 x 10/40 = 1/3 (the plain 11 of 42 read 26%)
    fr = two["false_reject"]
    assert fr["rate"] == pytest.approx(1 / 3) and (fr["k"], fr["n"]) == (11, 42)
    assert fr["lo"] <= 1 / 3 <= fr["hi"]
    # the share of the defects passed stays withheld for both: v1's OK parts were reviewed a
    # tenth, its NG ones all
    assert two["by_line_verdict"] == {"NG": {"judged": 60, "reviewed": 60}, "OK": {"judged": 420, "reviewed": 42}}
    assert (one["even_review"], two["even_review"], two["defects_passed"]) == (False, False, None)


def test_compare_weighs_the_candidate_s_sample_rates_by_the_active_version_s_verdicts(spc_station):
    st, v1, v2 = _station(spc_station)
    with _client(st) as c:
        r = c.get("/api/v1/models/cell/compare", params={"line": "L1", "candidate": v2.version})
        assert r.status_code == 200, r.text
        body = r.json()
    assert body["parts"] == 480
    _check(body["sample"]["active"], body["sample"]["candidate"])


@pytest.mark.one_database
def test_the_models_page_weighs_a_shadow_s_sample_rates_the_same_way(spc_station):
    st, v1, v2 = _station(spc_station)
    with _client(st) as c:
        items = {m["version"]: m for m in c.get("/api/v1/models", params={"product": "cell"}).json()["items"]}
    _check(items[v1.version]["sample_rates"], items[v2.version]["sample_rates"])


def test_a_kind_of_part_nobody_reviewed_leaves_the_rate_unsaid_within_honest_bounds():
    # v2 passed 30 parts v1 rejected and none of them was reviewed: what they are is unknown,
    # so no rate; the bounds hold whatever they are (0 to 1 for that share of its OK parts)
    counts = {(True, "good", "OK", "OK"): 90, (True, "defect", "OK", "OK"): 10, (False, None, "OK", "OK"): 870,
              (False, None, "NG", "OK"): 30}
    esc = sample_rates(counts)["escape"]
    assert esc["rate"] is None and (esc["k"], esc["n"]) == (10, 100)
    assert esc["lo"] > 0 and esc["hi"] >= 30 / 1000 + 0.97 * 0.1
