"""The Tuning page's promise, as train makes it: a walk read "training promised at most
2.4 % of good parts" where train says "on average <= 2.44%". A conformal promise holds on
average over good folders like the training one, not for any one run of recent parts."""
from __future__ import annotations

import json

from .conftest import api, expect, png_bytes, post_part


def _promised(route):
    """The station's tuning answer, with training's promise as a magnetic-tile model makes it."""
    r = route.fetch()
    t = r.json()
    t["promise"] = {"confidence": 0.95, "reviewed_defects_left_out": 0, "promised_by": "training",
                    "ng": {"rate": 0.02, "n": 50, "lo": 0.005, "hi": 0.1, "promised": 0.0244, "above_promise": False},
                    "not_ok": {"rate": 0.06, "n": 50, "lo": 0.01, "hi": 0.16, "promised": 0.0744,
                               "above_promise": False}}
    route.fulfill(response=r, body=json.dumps(t), headers={**r.headers, "content-type": "application/json"})


def test_tuning_says_trainings_promise_on_average_as_train_does(pages, station):
    with api(station, "operator") as c:
        for i in range(3):
            assert post_part(c, png_bytes(90 + 60 * i, seed=56300 + i), f"avg-{i}", line="LAvg").status_code == 201
    p = pages(role="engineer")
    p.page.route("**/api/v1/models/*/tuning*", _promised)
    page = p.open("/app/tuning?product=cell", "#promise")
    ng, not_ok = page.locator("#promise p").nth(0), page.locator("#promise p").nth(1)
    # train's number (2.44%, not 2.4) and its "on average"
    expect(ng).to_contain_text("training promised at most 2.44 % of good parts on average.")
    expect(not_ok).to_contain_text("training promised at most 7.44 % of good parts on average "
                                   "(the review band's share included).")
