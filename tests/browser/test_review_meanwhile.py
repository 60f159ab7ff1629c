"""Two people on one part: a review another screen made a moment before is shown, not
overwritten (both pages said "saved", and a confirmed defect became good, learnt as such)."""
from __future__ import annotations

from .conftest import api, expect, png_bytes, post_part, seen


def _ng(station, part_id: str, line: str, seed: int) -> int:
    with api(station, "operator") as c:
        return post_part(c, png_bytes(220, seed=seed), part_id, line=line).json()["id"]


def _reviews(station, part: int) -> list[tuple[str, str]]:
    with api(station, "operator") as c:
        return [(x["label"], x["reviewer"]) for x in c.get(f"/api/v1/inspections/{part}/reviews").json()["items"]]


def _confirm_crack_elsewhere(station, part: int) -> None:
    with api(station, "engineer") as c:
        r = c.post(f"/api/v1/inspections/{part}/review", json={"label": "defect", "defect_type": "crack"})
        assert r.status_code == 200, r.text


def test_the_review_queue_shows_a_review_made_meanwhile_and_asks_before_replacing_it(pages, station):
    part = _ng(station, "meanwhile-q", "LMeanQ", 98700)
    p = pages(role="operator")
    p.page.route("**/api/v1/events*", lambda route: route.abort())   # the other screen's review unheard
    page = p.open("/app/review?queue=todo&line=LMeanQ&poll=600", "#current h2")
    expect(page.locator("#current h2")).to_contain_text("meanwhile-q")
    seen(page)
    _confirm_crack_elsewhere(station, part)
    page.keyboard.press("g")
    expect(page.locator("#ask")).to_contain_text("Reviewed meanwhile as defect (crack) by")
    assert [label for label, _ in _reviews(station, part)] == ["defect"]       # not overwritten
    page.keyboard.press("g")                                                   # knowingly: replaced
    expect(page.locator("#status")).to_contain_text("meanwhile-q: marked good")
    assert [label for label, _ in _reviews(station, part)] == ["defect", "good"]


def test_the_part_page_shows_a_review_made_meanwhile_and_asks_before_replacing_it(pages, station):
    part = _ng(station, "meanwhile-p", "LMeanP", 98710)
    p = pages(role="operator")
    page = p.open(f"/app/parts/{part}", "#part-defect")
    _confirm_crack_elsewhere(station, part)
    page.get_by_role("button", name="False alarm: good").click()
    expect(page.locator("#ask")).to_contain_text("Reviewed meanwhile as defect (crack) by")
    assert [label for label, _ in _reviews(station, part)] == ["defect"]
    page.wait_for_timeout(700)          # a tap right after the question is taken for a double tap
    page.get_by_role("button", name="False alarm: good").click()
    expect(page.locator("#status")).to_contain_text("review saved")
    assert [label for label, _ in _reviews(station, part)] == ["defect", "good"]
