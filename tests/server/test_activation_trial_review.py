"""The activation trial counts the good parts a version would not pass, REVIEW included,
and an activation with no shadow comparison says so, on SQLite and PostgreSQL.

1. A grey tile model uploaded with activate=true onto a colour product was activated
   (201): every part then came back REVIEW ("colour photo ...", "too dark"), which sets the
   PLC's NG bit, a line stop. The trial counted only NG, and a doubted photo is REVIEW
   whatever its score. A doubted photo counts now, and so does a REVIEW on the score of a
   part the line passed OK; a review band's usual few, and a REVIEW of a part the line
   itself sent to review, do not.
2. An upload with activate=true, or an activation, of a version that never ran in shadow
   beside the live one answered ``warning: null``: it says so now, with how to shadow.
"""
from __future__ import annotations

import pytest

from lineguard.line.compare import GoodPartsTrial
from lineguard.line.station import Part

from .fake_inspector import FakeInspector, png_bytes
from .test_change_log import _keys, _log
from .test_spc_api import client


def _upload(c, eng, model: FakeInspector, activate: bool = False):
    return c.post("/api/v1/models", files={"file": ("m.lgm", model.to_bytes())},
                  data={"product": "cell", "activate": "true" if activate else "false"}, headers=eng)


def _active(c, eng) -> list[int]:
    return [m["version"] for m in c.get("/api/v1/models", params={"product": "cell"}, headers=eng).json()["items"]
            if m["active"]]


def _parts(st, n: int, value: int = 40, seed: int = 0) -> list:
    """``n`` parts the fake models score ~value/255 (40: 0.157), judged by the live version."""
    return [st.inspect(png_bytes(value, seed=seed + i), Part(f"p-{seed + i}", "L1", "S1", "cell")).record
            for i in range(n)]


@pytest.mark.one_database
def test_a_model_that_doubts_every_photo_is_refused_as_one_of_another_product(spc_station):
    st = spc_station()
    keys = _keys(st)
    eng = {"X-API-Key": keys["engineer"]}
    with client(st) as c:
        assert _upload(c, eng, FakeInspector(0.5, "cell-1"), activate=True).status_code == 201
        assert all(r.verdict == "OK" for r in _parts(st, 11))
        # another product's model: it scores the parts OK, but doubts each photo (too dark for
        # what it learnt): REVIEW whatever the score, the PLC's NG bit on every part
        tile = FakeInspector(0.5, "tile-1", photo_floor=0.6)
        r = _upload(c, eng, tile, activate=True)
        assert r.status_code == 409, r.text
        err = r.json()["error"]
        assert err["code"] == "rejects_good_parts", err
        assert err["message"].startswith("uploaded as version 2, not activated: v2 doubts the photo of 11 of the "
                                         "11 latest good parts of 'cell' (too dark 11)"), err["message"]
        assert "v1, active now, judged them 11 OK" in err["message"] and "another product or camera" in err["message"]
        assert (err["parts_tried"], err["not_passed"], err["photo_doubted"], err["judged_ng"]) == (11, 11, 11, 0)
        assert err["photo_issues"] == {"too dark": 11}
        assert _active(c, eng) == [1]
        # activated by number, the same
        r = c.post("/api/v1/models/cell/activate", json={"version": 2}, headers=eng)
        assert r.status_code == 409 and r.json()["error"]["code"] == "rejects_good_parts", r.text
        r = c.post("/api/v1/models/cell/activate", json={"version": 2, "force": True}, headers=eng)
        assert r.status_code == 200 and r.json()["active"], r.text
        entry = _log(c, keys["engineer"], action="model.activated")[0]
        assert entry["details"]["forced"] == "doubted the photo of 11 of the 11 latest good parts (too dark 11)"


def test_reviews_on_the_score_count_where_the_line_passed_the_part_and_a_review_band_is_not_refused(spc_station):
    st = spc_station()
    keys = _keys(st)
    eng = {"X-API-Key": keys["engineer"]}
    with client(st) as c:
        # v1 has a review band: 0.157 passes, 0.353 goes to review
        assert _upload(c, eng, FakeInspector(0.5, "cell-1", review_threshold=0.3), activate=True).status_code == 201
        passed = _parts(st, 10)
        assert all(r.verdict == "OK" for r in passed)
        for rec in _parts(st, 4, value=90, seed=100):        # sent to review by the line, a person says good
            assert rec.verdict == "REVIEW"
            st.review(rec.id, "good", "ann", None)
        odd = _parts(st, 1, value=70, seed=200)[0]             # 0.275: passed by v1
        assert odd.verdict == "OK"
        # a version sending 1 of the 11 parts the line passed to review (its band), and the 4 the
        # line itself sent to review again: what a review band does, activated
        r = _upload(c, eng, FakeInspector(0.5, "cell-2", review_threshold=0.25), activate=True)
        assert r.status_code == 201 and r.json()["active"], r.text
        # a version whose band takes in nearly all the good parts the line passed: refused
        r = _upload(c, eng, FakeInspector(0.5, "cell-3", review_threshold=0.1), activate=True)
        assert r.status_code == 409, r.text
        err = r.json()["error"]
        assert err["code"] == "rejects_good_parts"
        assert ("v3 sends 11 of the 15 latest good parts of 'cell' to REVIEW on its score, parts the line passed OK"
                in err["message"]), err["message"]
        assert (err["parts_tried"], err["not_passed"], err["sent_to_review"]) == (15, 11, 11)
        assert _active(c, eng) == [2]


def test_what_the_trial_says_of_a_version_that_does_several_things():
    trial = GoodPartsTrial(scored=11)
    for verdict, issues, line in ([("NG", (), "OK")] * 3 + [("REVIEW", ("too dark: brightness 0.1",), "OK")] * 4
                                  + [("REVIEW", (), "OK"), ("REVIEW", (), "REVIEW"), ("OK", (), "OK"),
                                     ("failed", (), "OK"), ("REVIEW", ("colour photo: x", "too dark: y"), "NG")]):
        trial.count(verdict, issues, line)
    assert (trial.rejected, trial.judged_ng, trial.photo_doubted, trial.sent_to_review) == (10, 4, 5, 1)
    assert trial.rejects_good_parts
    assert trial.did() == ("would not pass 10 of the 11 latest good parts: it judges 4 NG, doubts the photo of 5 "
                           "(too dark 5, colour photo 1), sends 1 to REVIEW on its score, parts the line passed OK")


@pytest.mark.one_database
def test_an_activation_without_a_shadow_comparison_says_so(spc_station):
    st = spc_station()
    keys = _keys(st)
    eng = {"X-API-Key": keys["engineer"]}
    with client(st) as c:
        r = _upload(c, eng, FakeInspector(0.5, "cell-1"), activate=True)
        assert r.status_code == 201 and r.json()["warning"] is None, r.text     # the first: nothing to compare
        _parts(st, 6)
        r = _upload(c, eng, FakeInspector(0.6, "cell-2"), activate=True)
        assert r.status_code == 201 and r.json()["active"], r.text
        said = r.json()["warning"]
        assert said and said.startswith("activated without a shadow comparison: cell/* v2 never judged the line's "
                                        "parts in shadow beside cell/* v1"), said
        assert "/api/v1/models/cell/shadow" in said
        # v1 is the version Roll back would go back to: made live by number it is the undo, not told
        r = c.post("/api/v1/models/cell/activate", json={"version": 1}, headers=eng)
        assert r.status_code == 200 and r.json()["warning"] is None, r.text
        # one run in shadow first: activated with no such warning
        assert _upload(c, eng, FakeInspector(0.7, "cell-3")).status_code == 201
        assert c.post("/api/v1/models/cell/shadow", json={"version": 3}, headers=eng).status_code == 200
        _parts(st, 3, seed=50)
        assert st.shadow.wait_idle(60)
        r = c.post("/api/v1/models/cell/activate", json={"version": 3}, headers=eng)
        assert r.status_code == 200, r.text
        assert "without a shadow comparison" not in (r.json()["warning"] or ""), r.json()["warning"]
        # one that never did, activated by number: told
        assert _upload(c, eng, FakeInspector(0.8, "cell-4")).status_code == 201
        r = c.post("/api/v1/models/cell/activate", json={"version": 4}, headers=eng)
        assert r.status_code == 200 and "cell/* v4 never judged" in (r.json()["warning"] or ""), r.text
