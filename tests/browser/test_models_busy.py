"""The Models page while the station works on a change: an activation first tries the
version on the latest good parts and reviewed defects (seconds), and a page that showed
nothing meanwhile, its buttons usable, was taken for one that had not heard the tap. Each
request is held here (Playwright's route) to look at the page while it is on its way."""
from __future__ import annotations

from .conftest import api, expect
from server.conftest import fake_model_bytes


def _row(page, version: int):
    return page.locator(f'#versions tr[data-version="{version}"]')


class Held:
    """The page's requests to one URL, held until the test lets them go."""

    def __init__(self, page, pattern: str):
        self.page, self.pattern, self.routes, self.holding = page, pattern, [], True
        page.route(pattern, self._hold)

    def _hold(self, route):
        if self.holding:
            self.routes.append(route)
        else:
            route.continue_()

    def wait(self):
        for _ in range(200):
            if self.routes:
                return self.routes[0]
            self.page.wait_for_timeout(50)
        raise AssertionError(f"the page sent nothing to {self.pattern}")

    def let_go(self, abort: bool = False) -> None:
        self.holding = False
        for r in self.routes:
            r.abort() if abort else r.continue_()
        self.page.unroute(self.pattern)


def test_activate_rollback_shadow_and_retrain_say_what_they_are_doing(pages, station):
    with api(station, "engineer") as c:
        for version, activate in (("busy-1", "true"), ("busy-2", "false")):
            r = c.post("/api/v1/models", files={"file": (f"{version}.lgm", fake_model_bytes(0.5, version))},
                       data={"product": "busy", "activate": activate})
            assert r.status_code == 201, r.text
    p = pages(role="engineer")
    page = p.open("/app/models?product=busy", "#versions table")
    page.on("dialog", lambda d: d.accept())
    working = page.locator("#model-working")
    expect(working).to_be_hidden()

    held = Held(page, "**/api/v1/models/busy/activate")
    _row(page, 2).locator('button[data-act="activate"]').click()
    held.wait()                                   # the station tries v2 on the latest parts now
    expect(working).to_be_visible()
    expect(working).to_contain_text("Trying v2 on the latest good parts and reviewed defects")
    expect(_row(page, 2).locator('button[data-act="activate"]')).to_be_disabled()
    expect(_row(page, 2).locator('button[data-act="shadow"]')).to_be_disabled()   # one change at a time
    p.shot("models-activating")
    held.let_go()
    expect(_row(page, 2)).to_have_attribute("data-state", "active")
    expect(working).to_be_hidden()
    expect(page.locator("#status")).to_contain_text("activated")

    held = Held(page, "**/api/v1/models/busy/rollback")
    _row(page, 2).locator('button[data-act="rollback"]').click()
    held.wait()
    expect(working).to_contain_text("Rolling back to v1")
    expect(_row(page, 2).locator('button[data-act="rollback"]')).to_be_disabled()
    held.let_go()
    expect(_row(page, 1)).to_have_attribute("data-state", "active")
    expect(working).to_be_hidden()

    held = Held(page, "**/api/v1/models/busy/shadow*")
    _row(page, 2).locator('button[data-act="shadow"]').click()
    held.wait()
    expect(working).to_contain_text("Starting v2 in shadow")
    expect(_row(page, 2).locator('button[data-act="shadow"]')).to_be_disabled()
    held.let_go()
    expect(_row(page, 2)).to_have_attribute("data-state", "shadow")
    expect(working).to_be_hidden()

    # a retrain's request: said at once, and an answer that never came leaves no "starting" behind
    held = Held(page, "**/api/v1/models/busy/train")
    page.locator("#train-form input[name=product]").fill("busy")
    page.locator("#train-form button[type=submit]").click()
    held.wait()
    expect(page.locator("#train-status")).to_have_text("starting the training…")
    expect(page.locator("#train-form button[type=submit]")).to_be_disabled()
    held.let_go(abort=True)
    expect(page.locator("#train-form button[type=submit]")).to_be_enabled()
    expect(page.locator("#train-status")).to_have_text("")
    expect(page.locator("#status")).to_have_class("error")
    # a read answered afterwards (the page's own refresh) leaves a change's warning to be read:
    # it took "this may not have been saved" away at once
    page.evaluate("() => LG.api('/api/v1/models')")
    expect(page.locator("#status")).to_contain_text("this may not have been saved")
    expect(page.locator("#status")).to_have_class("error")
