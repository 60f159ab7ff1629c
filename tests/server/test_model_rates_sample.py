"""A version's rates on the random audit sample beside those on every reviewed part, and
how many parts a shadow left uncompared, through the API on SQLite and PostgreSQL.

People review what the model flagged far more than what it passed, so a version's
escapes are hardly ever among the reviewed parts: on magnetic tiles the Models page said
v1 escapes 3.5% where the share of defects it passed was 43%. The audit sample is drawn
before any verdict; its reviews give the rates that count."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
from fastapi.testclient import TestClient

from fake_inspector import FakeInspector

from lineguard.vision.calibration import rate_with_ci

T0 = dt.datetime(2026, 11, 30, 6, 0)


def _station(spc_station):
    st = spc_station()
    v1 = st.add_model(FakeInspector(0.5, "fake-1").to_bytes(), "cell", activate=True)
    v2 = st.add_model(FakeInspector(0.4, "fake-2").to_bytes(), "cell")
    return st, v1, v2


# (verdict of v1, in the audit sample, review label or None, v2's shadow verdict or None, parts)
# Out of the sample people reviewed mostly the flagged parts; the sample's parts of every
# verdict are half reviewed (the audit list and the NG/REVIEW lists worked alike).
PARTS = [
    ("NG", False, "defect", "NG", 30),
    ("NG", False, "good", None, 5),
    ("OK", False, "defect", None, 1),
    ("OK", False, "good", None, 4),
    ("OK", False, None, None, 45),          # passed, never looked at: in no rate
    ("OK", True, "defect", "NG", 4),        # escapes only the sample finds
    ("OK", True, "good", "OK", 6),
    ("OK", True, None, "OK", 10),
    ("NG", True, "defect", "NG", 1),
    ("NG", True, "good", "NG", 1),
    ("NG", True, None, "NG", 2),
    ("REVIEW", True, "defect", "NG", 1),
    ("REVIEW", True, None, "NG", 1),
]


def _add(st, v1, v2):
    """The parts of PARTS, in time order: those v2 did not judge interleaved with those it
    did, and 5 more after the last it judged (still in its queue: not "not compared")."""
    from lineguard.line.orm import Inspection, ShadowResult
    judged = [p[:4] for p in PARTS if p[3] for _ in range(p[4])]
    skipped = [p[:4] for p in PARTS if not p[3] for _ in range(p[4])]
    assert len(judged) == 56 and len(skipped) == 55
    order = []
    for i in range(max(len(judged), len(skipped))):
        order += judged[i:i + 1] + skipped[i:i + 1]
    order += [("OK", False, None, None)] * 5
    with st.db.session() as s:
        for i, (verdict, sample, label, shadow) in enumerate(order):
            rec = Inspection(part_id=f"p{uuid.uuid4().hex[:12]}", line="L1", station="S1", product="cell",
                             verdict=verdict, score=0.3, threshold=0.5, pixel_threshold=0.5, model_id=v1.model_id,
                             model_version="fake-1", registry_version=v1.version, image_sha256=uuid.uuid4().hex,
                             image_width=8, image_height=8, created_at=T0 + dt.timedelta(seconds=i),
                             reviewed=label is not None, review_label=label, audit_sample=sample)
            s.add(rec)
            s.flush()
            if shadow:
                s.add(ShadowResult(inspection_id=rec.id, model_version_id=v2.id, verdict=shadow, score=0.3,
                                   created_at=T0 + dt.timedelta(seconds=i, milliseconds=500)))
        # a test part of the sample, reviewed as the defect it is and passed by a failing
        # station: it says what the part is, not how the line's parts are judged
        s.add(Inspection(part_id="red-rabbit", line="L1", station="S1", product="cell", verdict="OK", score=0.1,
                         threshold=0.5, pixel_threshold=0.5, model_id=v1.model_id, model_version="fake-1",
                         registry_version=v1.version, image_sha256=uuid.uuid4().hex, image_width=8, image_height=8,
                         created_at=T0 + dt.timedelta(seconds=3), reviewed=True, review_label="defect",
                         audit_sample=True, test_part="red rabbit"))


def _rate(k, n):
    return rate_with_ci(k, n)


def _client(st):
    from lineguard.server.app import create_app
    return TestClient(create_app(station=st))


def test_the_models_list_gives_each_version_its_rates_on_the_audit_sample(spc_station):
    st, v1, v2 = _station(spc_station)
    _add(st, v1, v2)
    with _client(st) as c:
        r = c.get("/api/v1/models", params={"product": "cell"})
        assert r.status_code == 200, r.text
        by_version = {m["version"]: m for m in r.json()["items"]}
    one, two = by_version[v1.version], by_version[v2.version]
    # every reviewed part, as before (kept: the page labels them "of the parts people reviewed"):
    # 5 of 37 reviewed defects passed, a rate the flagged parts' reviews drown
    assert one["rates"] == {"n_good": 16, "n_defect": 37, "false_reject_rate": 6 / 16, "escape_rate": 5 / 37}
    # the audit sample alone: 26 parts judged, 13 reviewed; 4 of the 10 OK ones reviewed were
    # defects, and 4 of the sample's 6 defects were passed
    by_verdict = {"NG": {"judged": 4, "reviewed": 2}, "OK": {"judged": 20, "reviewed": 10},
                  "REVIEW": {"judged": 2, "reviewed": 1}}
    assert one["sample_rates"] == {
        "judged": 26, "reviewed": 13, "by_verdict": by_verdict, "by_line_verdict": by_verdict,
        "escape": _rate(4, 10), "defects_passed": _rate(4, 6), "even_review": True,
        "false_reject": _rate(1, 2), "confidence": 0.95}
    assert one["sample_rates"]["defects_passed"]["rate"] == pytest.approx(2 / 3)
    # v2 in shadow judged the same 26 sample parts: it caught the 4 escapes. People picked the
    # parts to review by v1's verdict, half of each: its OK parts were reviewed in a share (6
    # of 16) below its NG ones (7 of 10) only because of what v1 said, and the reviewed half
    # is a fair pick of the sample, so the share of defects it passes is given (it was withheld
    # by v2's own verdicts before)
    s2 = two["sample_rates"]
    assert (s2["judged"], s2["reviewed"], s2["even_review"], s2["defects_passed"]) == (26, 13, True, _rate(0, 6))
    assert s2["by_verdict"] == {"NG": {"judged": 10, "reviewed": 7}, "OK": {"judged": 16, "reviewed": 6}}
    assert s2["by_line_verdict"] == by_verdict
    assert s2["escape"] == _rate(0, 6)      # its OK parts are all ones v1 passed: the plain rate
    # its NG parts, weighted by v1's verdict: 0 good of 4 where v1 passed them (4 of its 10), 1
    # of 2 reviewed where v1 rejected them (4 of 10), 0 of 1 where v1 said REVIEW (2 of 10):
    # 20%, where the plain 1 of 7 (14%) counted v1's NG parts twice over
    fr = s2["false_reject"]
    assert (fr["rate"], fr["k"], fr["n"]) == (pytest.approx(0.2), 1, 7)
    assert fr["weighted_by"] == {"NG": {"judged": 4, "reviewed": 2, "k": 1}, "OK": {"judged": 4, "reviewed": 4, "k": 0},
                                 "REVIEW": {"judged": 2, "reviewed": 1, "k": 0}}
    assert fr["lo"] <= 0.2 <= fr["hi"]


def test_a_version_that_judged_no_sample_part_has_no_sample_rates(spc_station):
    st, v1, v2 = _station(spc_station)
    from lineguard.line.orm import Inspection
    with st.db.session() as s:
        s.add(Inspection(part_id="p1", line="L1", station="S1", product="cell", verdict="NG", score=0.9,
                         threshold=0.5, pixel_threshold=0.5, model_id=v1.model_id, model_version="fake-1",
                         registry_version=v1.version, image_sha256=uuid.uuid4().hex, image_width=8, image_height=8,
                         created_at=T0, reviewed=True, review_label="defect", audit_sample=False))
    with _client(st) as c:
        items = {m["version"]: m for m in c.get("/api/v1/models", params={"product": "cell"}).json()["items"]}
    assert items[v1.version]["rates"]["n_defect"] == 1
    assert "sample_rates" in items[v1.version] and items[v1.version]["sample_rates"] is None
    assert items[v2.version]["sample_rates"] is None


def test_compare_gives_sample_rates_and_the_parts_the_shadow_left_uncompared(spc_station):
    st, v1, v2 = _station(spc_station)
    _add(st, v1, v2)
    with _client(st) as c:
        r = c.get("/api/v1/models/cell/compare", params={"line": "L1", "candidate": v2.version})
        assert r.status_code == 200, r.text
        body = r.json()
    # as before: 56 parts both judged, 26 of them in the sample
    assert body["parts"] == 56
    assert body["reviewed"]["active"] == {"n_good": 7, "n_defect": 36, "false_reject_rate": 1 / 7,
                                          "escape_rate": 4 / 36}
    # the 55 parts v1 judged between the first and the last part v2 judged, that v2 never
    # did (the 5 after its last are still in its queue, not dropped)
    assert body["not_compared"] == 55
    assert body["compared_share"] == pytest.approx(56 / 111)
    active, cand = body["sample"]["active"], body["sample"]["candidate"]
    assert (active["judged"], active["reviewed"]) == (26, 13)
    assert active["escape"] == _rate(4, 10) and active["defects_passed"] == _rate(4, 6)
    # the sample was reviewed evenly across v1's verdicts (what people picked reviews by)
    assert cand["escape"] == _rate(0, 6) and cand["defects_passed"] == _rate(0, 6) and cand["even_review"] is True
    # the versions carry their own sample rates too
    assert body["active"]["sample_rates"]["judged"] == 26
    assert body["candidate"]["sample_rates"]["escape"] == _rate(0, 6)


def test_compare_with_every_part_compared_says_none_were_left(spc_station):
    st, v1, v2 = _station(spc_station)
    from lineguard.line.orm import Inspection, ShadowResult
    with st.db.session() as s:
        for i in range(3):
            rec = Inspection(part_id=f"p{i}", line="L1", station="S1", product="cell", verdict="OK", score=0.3,
                             threshold=0.5, pixel_threshold=0.5, model_id=v1.model_id, model_version="fake-1",
                             registry_version=v1.version, image_sha256=uuid.uuid4().hex, image_width=8,
                             image_height=8, created_at=T0 + dt.timedelta(seconds=i), audit_sample=True)
            s.add(rec)
            s.flush()
            s.add(ShadowResult(inspection_id=rec.id, model_version_id=v2.id, verdict="OK", score=0.3))
    with _client(st) as c:
        body = c.get("/api/v1/models/cell/compare", params={"line": "L1", "candidate": v2.version}).json()
    assert (body["parts"], body["not_compared"], body["compared_share"]) == (3, 0, 1.0)
    # judged, none reviewed: nothing to say yet, and the counts say why
    cand = body["sample"]["candidate"]
    assert (cand["judged"], cand["reviewed"], cand["even_review"], cand["defects_passed"]) == (3, 0, False, None)
    assert cand["escape"]["rate"] is None and cand["escape"]["n"] == 0
