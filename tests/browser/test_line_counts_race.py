"""The line view's counters when a counters' read and a part cross: the summary's `now`
is taken before its read, a part is recorded (its created_at set) before it commits, so a
part recorded in between was counted twice (one over) or not at all (one under) until the
next read. Each summary is held here (Playwright's route) while a part is recorded, and
answered with the `now` the race gives it."""
from __future__ import annotations

from .conftest import api, expect, png_bytes, post_part


class HeldSummaries:
    """Holds every counters' read the page makes from now on: the first is answered by the
    test, the others once it is done (a newer answer would paint over the held one)."""

    def __init__(self, page):
        self.page, self.routes, self.holding = page, [], True
        page.route("**/api/v1/lines/summary*", self._hold)

    def _hold(self, route):
        if self.holding:
            self.routes.append(route)
        else:
            route.continue_()

    def first_read(self):
        # the refresh that follows a part (5 s after it), or the half-minute one
        for _ in range(300):
            if self.routes:
                return self.routes[0]
            self.page.wait_for_timeout(50)
        raise AssertionError("the line view did not read its counters again")

    def answer_first(self, response, now: str) -> None:
        body = response.json()
        body["now"] = now
        body["shift"]["label"] = body["shift"]["label"] + " (held read)"    # seen on the page: answered
        self.routes[0].fulfill(response=response, json=body)
        expect(self.page.locator("#shift")).to_contain_text("(held read)")

    def release(self) -> None:
        self.holding = False
        for r in self.routes[1:]:
            r.continue_()
        self.page.unroute("**/api/v1/lines/summary*")


def test_a_part_recorded_after_the_summarys_now_and_read_by_it_is_counted_once(pages, station):
    p = pages(role="operator")
    page = p.open("/app/", "#live.v-ok")
    card = page.locator('section.station-card[data-line="L9"][data-station="S4"]')
    parts = card.locator('[data-counter="parts"]')
    with api(station, "operator") as c:
        first = post_part(c, png_bytes(60, seed=780), "race-0", line="L9", station="S4")
        assert first.status_code == 201, first.text
        expect(parts).to_have_text("1")
        held = HeldSummaries(page)
        route = held.first_read()
        second = post_part(c, png_bytes(60, seed=781), "race-1", line="L9", station="S4")
        assert second.status_code == 201, second.text
        expect(parts).to_have_text("2")                 # its live event
        # read now, after the part was recorded (it counts 2), its `now` taken before it
        answer = route.fetch()
        held.answer_first(answer, now=first.json()["created_at"])
        assert parts.inner_text() == "2"                # was 3 until the next read
        held.release()
        expect(parts).to_have_text("2")


def test_a_part_recorded_before_the_summarys_now_and_committed_after_its_read_is_counted(pages, station):
    p = pages(role="operator")
    page = p.open("/app/", "#live.v-ok")
    card = page.locator('section.station-card[data-line="L9"][data-station="S5"]')
    parts = card.locator('[data-counter="parts"]')
    with api(station, "operator") as c:
        first = post_part(c, png_bytes(60, seed=790), "race-2", line="L9", station="S5")
        assert first.status_code == 201, first.text
        expect(parts).to_have_text("1")
        held = HeldSummaries(page)
        route = held.first_read()
        answer = route.fetch()                          # read before the next part is committed: 1
        second = post_part(c, png_bytes(60, seed=791), "race-3", line="L9", station="S5")
        assert second.status_code == 201, second.text
        expect(parts).to_have_text("2")                 # its live event
        # its `now` taken once the part had its created_at (set before its commit)
        held.answer_first(answer, now=second.json()["created_at"])
        assert parts.inner_text() == "2"                # was 1 until the next read
        held.release()
        expect(parts).to_have_text("2")
