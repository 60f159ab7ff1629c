"""Browser tests of the operator pages: Playwright driving Debian's headless chromium
against a real station process (fake model). One browser for the session, one station
per module (the browser lives for this package's tests); every page visited is saved as a screenshot under test-artifacts/."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator, Optional

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from server.conftest import fake_model_bytes, post_part, png_bytes, start_fake_station  # noqa: E402,F401

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
VIEWPORT = {"width": 1366, "height": 768}


def _missing(reason: str) -> None:
    # on CI a missing browser is a broken set-up, not a reason to pass without these tests
    if os.environ.get("CI"):
        pytest.fail(reason + "; CI must run the browser tests", pytrace=False)
    pytest.skip(reason)


try:
    from playwright import sync_api
    expect = sync_api.expect
    # 10 s for a page to show what it should, as its actions get (Pages): Playwright's 5 s
    # is short for a poll's answer on a loaded 2-core CI machine; a check that holds returns
    # at once, so only a failing one waits longer
    expect.set_options(timeout=10_000)
except ImportError:   # the browser fixture says so, test by test
    sync_api = expect = None


# Package scope, not session: the sync API keeps an event loop running in this thread
# while it is open, which would break asyncio.run in every test module after this one.
@pytest.fixture(scope="package")
def browser() -> Iterator["sync_api.Browser"]:
    if sync_api is None:
        _missing("playwright is not installed (pip install -e '.[dev]')")
    if not CHROMIUM.exists():
        _missing("Debian's chromium is not installed (`make services` installs it: apt-get install chromium)")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    """A station with the fake model (threshold 0.5 on brightness) for product 'cell', keys per role."""
    folder = tmp_path_factory.mktemp("browser")
    (folder / "archive").mkdir()
    srv = start_fake_station(folder / "data", extra=["--backup-to", str(folder / "backup"), "--keep-records-days",
                                                     "3650", "--archive-records-to", str(folder / "archive")])
    yield srv
    srv.stop()


def has_endpoint(srv, method: str, path: str, **kw) -> bool:
    """Whether this build has an endpoint (the pages are built ahead of some backends)."""
    with srv.client(srv.keys["admin"]) as c:
        r = c.request(method, path, **kw)
    # an unknown path answers "Not Found"; a known route's own 404 says what is missing
    return not (r.status_code == 404 and r.json().get("detail") == "Not Found")


class Pages:
    """Opens signed-in pages (the session cookie set through the API, as the sign-in form does)."""

    def __init__(self, browser, srv, role: str = "admin", viewport: Optional[dict] = None, has_touch: bool = False):
        self.srv = srv
        self.ctx = browser.new_context(viewport=viewport or VIEWPORT, base_url=srv.url, has_touch=has_touch)
        self.ctx.set_default_timeout(10_000)
        self.role = role
        if role:
            r = self.ctx.request.post("/api/v1/session", data={"api_key": srv.keys[role]})
            assert r.status == 200, r.text()
        self.page = self.ctx.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, path: str, ready: str = "#main > :not(p.muted:only-child)", timeout: Optional[float] = None):
        """``path`` opened, once ``ready`` shows (within ``timeout`` ms, the context's 10 s by default)."""
        self.page.goto(path)
        self.page.wait_for_selector(ready, timeout=timeout)
        return self.page

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.ctx.close()


@pytest.fixture
def pages(browser, station):
    opened: list[Pages] = []

    def make(role: str = "admin", viewport: Optional[dict] = None, has_touch: bool = False) -> Pages:
        p = Pages(browser, station, role, viewport, has_touch)
        opened.append(p)
        return p

    yield make
    for p in opened:
        errors = p.errors
        p.close()
        assert not errors, f"JavaScript errors on the page: {errors}"


def seen(page) -> None:
    """The review queue's part photo is on screen: Good and Defect (and G, D) judge it now."""
    expect(page.locator("#btn-good")).to_be_enabled()


def page_answered(page) -> None:
    """A request the page makes now, answered: any it sent before (a review or an
    acknowledgement at a tap it should have refused) has gone out, so a count of its
    requests taken now is complete."""
    assert page.evaluate("() => fetch('/api/v1/session').then((r) => r.ok)")


def clock_still(page) -> None:
    """The page's clock (Date.now) stands still from here, a second past the page's own time,
    its timers still running: a second tap lands in the moment after whatever moved under the
    finger however slowly a loaded machine taps (with real time a slow tap landed after the
    600 ms guard), and a settle from the page's loading is long over."""
    clock_on(page, 1.0)


def clock_on(page, seconds: float) -> None:
    """The page's still clock (clock_still) moved on ``seconds`` and still again: a person's
    moment to look, however fast or slow the machine. (Playwright takes a number in seconds:
    Date.now()'s milliseconds given as they are set the clock some 57,000 years on.)"""
    page.clock.set_fixed_time(page.evaluate("Date.now()") / 1000 + seconds)


def api(srv, role: str = "admin") -> httpx.Client:
    return srv.client(srv.keys[role])
