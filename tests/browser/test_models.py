"""Retrain from confirmed-good parts, shadow, compare, activate, roll back twice: the
model lifecycle driven from the Models page."""
from __future__ import annotations

import re

import pytest

from .conftest import expect, api, has_endpoint, png_bytes, post_part, page_answered
from server.conftest import fake_model_bytes



def _state(page, version: int):
    return page.locator(f'#versions tr[data-version="{version}"]')


def test_retrain_shadow_compare_activate_and_roll_back_twice(pages, station):
    if not has_endpoint(station, "GET", "/api/v1/models/cell/compare"):
        pytest.skip("this build has no shadow/compare API (the lifecycle branch)")
    with api(station, "engineer") as c:
        # a second version activated by hand: v1 -> v2 is the history to walk back
        r = c.post("/api/v1/models", files={"file": ("v2.lgm", fake_model_bytes(0.45, "fake-2"))},
                   data={"product": "cell", "activate": "true"})
        assert r.status_code == 201, r.text
        # parts a person confirmed good: what retraining may learn from
        for k in range(12):
            rec = post_part(c, png_bytes(50 + k, seed=2000 + k), f"conf-{k}").json()
            assert c.post(f"/api/v1/inspections/{rec['id']}/review", json={"label": "good"}).status_code == 200
        # one bad part a person wrongly confirmed good: the retrain names it to look at
        odd = post_part(c, png_bytes(230, seed=2099), "conf-odd").json()["id"]
        assert c.post(f"/api/v1/inspections/{odd}/review", json={"label": "good"}).status_code == 200
    p = pages(role="engineer")
    page = p.open("/app/models?product=cell", "#versions table")
    expect(_state(page, 2)).to_have_attribute("data-state", "active")
    # counts of reviews, not a rate: the rejected parts are reviewed far more than the passed
    expect(_state(page, 2)).to_contain_text(re.compile(r"reviewed good: \d+ \(\d+ judged NG\)"))
    page.select_option("#train-form select[name=source]", "confirmed")
    page.dblclick("#train-form button")         # a double tap starts one training, not two
    expect(page.locator("#train-status")).to_contain_text("done", timeout=30_000)
    with api(station) as c:
        started = c.get("/api/v1/change-log", params={"action": "model.training_started"}).json()["items"]
    assert len(started) == 1
    expect(_state(page, 3)).to_have_attribute("data-state", "inactive")
    expect(_state(page, 3)).to_contain_text("13 images")
    look_at = page.locator("#look-at a")
    expect(look_at).to_have_count(1)
    expect(look_at).to_have_attribute("href", f"/app/parts/{odd}")
    page.reload()                                # after a reload the parts to look at are still one tap away
    expect(page.locator("#jobs .look-at-links a").first).to_have_attribute("href", f"/app/parts/{odd}")
    # the candidate in shadow beside the active version
    _state(page, 3).locator('button[data-act="shadow"]').click()
    expect(_state(page, 3)).to_have_attribute("data-state", "shadow")
    with api(station, "operator") as c:
        for k in range(6):
            post_part(c, png_bytes(40 + 30 * k, seed=2100 + k), f"shadowed-{k}")
    with api(station) as c:   # the shadow runs after each answer; wait until it has judged the parts
        for _ in range(100):
            if c.get("/api/v1/models/cell/compare", params={"candidate": 3}).json()["parts"] >= 6:
                break
            page.wait_for_timeout(100)
    _state(page, 3).locator('button[data-act="compare"]').click()
    expect(page.locator("#compare-view")).to_be_visible()
    expect(page.locator("#compared-parts")).to_have_text("6")
    expect(page.locator("#agreement")).to_have_text(re.compile(r"^\d+\.\d %$"))
    p.shot("models-compare")
    # the model judging the line changes only once the engineer says yes
    sent = []                                      # what the page asked the station to activate
    page.on("request", lambda r: sent.append(r.url) if r.method == "POST" and r.url.endswith("/activate") else None)
    asked = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.click("#activate-candidate")
    expect(page.locator("#activate-candidate")).to_be_visible()
    assert asked and "judges every part from now on" in asked[0]
    # a request the page makes after the no, answered: an activation sent at the no went before
    # it (the station's active version read after a fixed wait missed one it took long to try)
    page_answered(page)
    assert sent == [], sent
    page.on("dialog", lambda d: d.accept())
    page.click("#activate-candidate")
    expect(_state(page, 3)).to_have_attribute("data-state", "active")
    assert len(sent) == 1, sent                    # the yes's, once
    # the compare panel went with the activation: it offered "Activate v3" for the version active now
    expect(page.locator("#compare-view")).to_have_count(0)
    # roll back twice: v3 -> v2 -> v1 (through the history, not forward again)
    expect(_state(page, 3).locator('button[data-act="rollback"]')).to_have_text("Roll back to v2")   # names where to
    _state(page, 3).locator('button[data-act="rollback"]').click()
    expect(_state(page, 2)).to_have_attribute("data-state", "active")
    _state(page, 2).locator('button[data-act="rollback"]').click()
    expect(_state(page, 1)).to_have_attribute("data-state", "active")
    expect(_state(page, 3)).to_have_attribute("data-state", "inactive")
    # nothing before v1: no Roll back offered (it asked, then the station refused)
    expect(_state(page, 1).locator('button[data-act="rollback"]')).to_have_count(0)
    expect(_state(page, 1)).to_contain_text("nothing to roll back to")
    p.shot("models-rolled-back")
    with api(station) as c:
        active = [m["version"] for m in c.get("/api/v1/models", params={"product": "cell"}).json()["items"]
                  if m["active"]]
    assert active == [1]


def test_a_reloaded_models_page_follows_the_training_still_running(pages, station):
    """A training runs for minutes; the engineer who reloads the page (or opens it on
    another PC) sees it going on and its end, not an idle form."""
    from lineguard.line.config import StationConfig
    from lineguard.line.db import Database
    from lineguard.line.orm import Job
    db = Database(StationConfig(data_dir=station.data_dir).database_url)
    try:
        with db.session() as s:      # as the station's job runner writes it mid-fit
            job = Job(kind="train", status="running", progress=0.55,
                      message="training on 40 parts: learning the good parts' features (20 of 40)",
                      params={"product": "cell", "line": "L-jobs"})
            s.add(job)
            s.flush()
            job_id = job.id
        p = pages(role="engineer")
        page = p.open("/app/models?product=cell", "#jobs table")
        expect(page.locator("#train-status")).to_contain_text("running 55 % · training on 40 parts: learning")
        expect(page.locator(f"#jobs tr[data-job='{job_id}']")).to_contain_text("cell / L-jobs")
        p.shot("models-training-running")
        with db.session() as s:
            row = s.get(Job, job_id)
            row.status, row.progress, row.message = "done", 1.0, "version 9 registered"
        expect(page.locator("#train-status")).to_contain_text("done 100 % · version 9 registered", timeout=15_000)
        expect(page.locator(f"#jobs tr[data-job='{job_id}']")).to_have_attribute("data-status", "done")
    finally:
        db.dispose()


def test_comparing_a_version_that_never_ran_in_shadow_says_so_and_offers_the_shadow(pages, station):
    with api(station, "engineer") as c:
        for version, activate in (("fresh-1", "true"), ("fresh-2", "false")):
            r = c.post("/api/v1/models", files={"file": (f"{version}.lgm", fake_model_bytes(0.5, version))},
                       data={"product": "fresh", "activate": activate})
            assert r.status_code == 201, r.text
    p = pages(role="engineer")
    page = p.open("/app/models?product=fresh", "#versions table")
    _state(page, 2).locator('button[data-act="compare"]').click()
    expect(page.locator("#compared-parts")).to_have_text("0")
    expect(page.locator("#not-compared")).to_contain_text("has judged no part beside the active version")
    expect(page.locator("#compare-view")).not_to_contain_text("No disagreements")
    expect(page.locator("#activate-candidate")).to_have_text("Activate v2 untried")
    p.shot("models-compare-untried")
    page.dblclick("#shadow-candidate")                               # a double tap: one shadow run
    expect(_state(page, 2)).to_have_attribute("data-state", "shadow")
    expect(page.locator("#shadow-candidate")).to_have_count(0)       # the compare view again, in shadow now
    expect(page.locator("#not-compared")).to_be_visible()
    page.once("dialog", lambda d: (d.dismiss() if "judged no part" in d.message else d.accept()))
    page.click("#activate-candidate")                                # asked, with why not: nothing changes
    expect(_state(page, 1)).to_have_attribute("data-state", "active")
    with api(station) as c:
        started = c.get("/api/v1/change-log", params={"action": "model.shadow_started",
                                                      "subject": "fresh"}).json()["items"]
    assert len(started) == 1, started


def test_a_version_that_learned_from_far_fewer_parts_than_the_active_one_is_marked(pages, station):
    from lineguard.line.config import StationConfig
    from lineguard.line.db import Database
    from lineguard.line.orm import ModelVersion
    with api(station, "engineer") as c:
        for version, activate in (("few-1", "true"), ("few-2", "false"), ("few-3", "false")):
            assert c.post("/api/v1/models", files={"file": (f"{version}.lgm", fake_model_bytes(0.5, version))},
                          data={"product": "few", "activate": activate}).status_code == 201
    db = Database(StationConfig(data_dir=station.data_dir).database_url)
    try:
        with db.session() as s:
            for mv in s.query(ModelVersion).filter_by(product="few"):
                mv.train_images = {1: 120, 2: 19, 3: 100}[mv.version]
    finally:
        db.dispose()
    p = pages(role="engineer")
    page = p.open("/app/models?product=few", "#versions table")
    expect(_state(page, 2).locator(".state-few")).to_have_text("few parts")
    expect(_state(page, 3).locator(".state-few")).to_have_count(0)
    expect(_state(page, 1).locator(".state-few")).to_have_count(0)
    # a tap in the moment after the page changed is not taken, and the page says why
    page.evaluate("LG.settle(); LG.settling()")
    expect(page.locator("#status")).to_contain_text("just changed")


def test_a_version_that_rejects_the_products_good_parts_is_asked_about_then_forced(pages, station):
    """A washer model uploaded as gasket: the station refuses it, the page says why and asks;
    called off nothing changes, confirmed it is activated and logged as forced."""
    with api(station, "engineer") as c:
        for version, thr, activate in (("gasket-1", 0.5, "true"), ("washer-9", 0.1, "false")):
            assert c.post("/api/v1/models", files={"file": (f"{version}.lgm", fake_model_bytes(thr, version))},
                          data={"product": "gasket", "activate": activate}).status_code == 201
        for k in range(8):
            assert post_part(c, png_bytes(40, seed=3000 + k), f"gasket-{k}", product="gasket").json()["verdict"] == "OK"
    p = pages(role="engineer")
    page = p.open("/app/models?product=gasket", "#versions table")
    asked = []

    def answer(d):
        asked.append(d.message)
        # the first question (activate?) yes; the station's refusal: no the first time, yes the second
        (d.dismiss() if "anyway" in d.message and sum("anyway" in a for a in asked) == 1 else d.accept())
    page.on("dialog", answer)
    _state(page, 2).locator('button[data-act="activate"]').click()
    expect(page.locator("#status")).to_contain_text("nothing changed")
    refusal = next(a for a in asked if "anyway" in a)
    assert "v2 judges 8 of the 8 latest good parts of 'gasket' NG" in refusal and "shadow" in refusal
    assert "v1, active now, judged them 8 OK" in refusal and '"force"' not in refusal
    expect(_state(page, 1)).to_have_attribute("data-state", "active")
    _state(page, 2).locator('button[data-act="activate"]').click()
    expect(_state(page, 2)).to_have_attribute("data-state", "active")
    p.shot("models-forced-activation")
    with api(station) as c:
        log = c.get("/api/v1/change-log", params={"action": "model.activated", "subject": "gasket"}).json()["items"]
    assert log[0]["subject"] == "gasket/* v2" and "forced" in log[0]["details"]
    assert sum("anyway" in a for a in asked) == 2


def test_a_page_showing_an_old_active_version_changes_nothing_and_shows_what_is_active(pages, station):
    with api(station, "engineer") as c:
        for version in ("bolt-1", "bolt-2", "bolt-3"):
            assert c.post("/api/v1/models", files={"file": (f"{version}.lgm", fake_model_bytes(0.5, version))},
                          data={"product": "bolt", "activate": "true" if version == "bolt-1" else "false"}
                          ).status_code == 201
    p = pages(role="engineer")
    page = p.open("/app/models?product=bolt", "#versions table")
    expect(_state(page, 1)).to_have_attribute("data-state", "active")
    with api(station, "engineer") as c:      # another engineer, at the same time, on another PC
        assert c.post("/api/v1/models/bolt/activate", json={"version": 3}).status_code == 200
    page.on("dialog", lambda d: d.accept())
    _state(page, 2).locator('button[data-act="activate"]').click()
    expect(page.locator("#status")).to_contain_text("v3 is active now")
    expect(_state(page, 3)).to_have_attribute("data-state", "active")     # the page shows it now
    expect(_state(page, 2)).to_have_attribute("data-state", "inactive")
    # and a rollback sent from the page undoes v3 once, not what someone else activated after
    _state(page, 3).locator('button[data-act="rollback"]').click()
    expect(_state(page, 1)).to_have_attribute("data-state", "active")
    with api(station) as c:
        rolled = c.get("/api/v1/change-log", params={"action": "model.rolled_back", "subject": "bolt"}).json()["items"]
    assert [e["details"]["undone"] for e in rolled] == [[3]]
