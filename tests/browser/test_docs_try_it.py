"""/docs "Try it out" with the page's sign-in: a change made from the API docs carries the
session's CSRF token (it got 403 before), and an API key typed there still works alone."""
from __future__ import annotations

from .conftest import api, expect

# Swagger UI lays out the station's whole API (60 paths, a 240 kB document) before its first
# operation shows: 2-3 s alone on 2 cores, over the pages' 10 s with the suite's other browsers
DOCS_READY_MS = 30_000


def test_try_it_out_on_the_docs_page_works_with_the_sign_in(pages, station):
    p = pages(role="admin")
    page = p.open("/docs", "#operations-keys-new_key_api_v1_keys_post", timeout=DOCS_READY_MS)
    op = page.locator("#operations-keys-new_key_api_v1_keys_post")
    op.locator(".opblock-summary").click()
    op.get_by_role("button", name="Try it out").click()
    op.locator("textarea.body-param__text").fill('{"role": "operator", "name": "made-from-docs"}')
    op.get_by_role("button", name="Execute").click()
    expect(op.locator(".live-responses-table tr.response td.response-col_status").first).to_contain_text("201", timeout=15_000)
    p.shot("docs-try-it-out")
    with api(station) as c:
        assert any(k["name"] == "made-from-docs" for k in c.get("/api/v1/keys").json()["items"])
    # the same from a page with no session: no token to add, the station's 401 as before
    status = page.evaluate("""async () => {
        await fetch('/api/v1/session', {method: 'DELETE'});
        const r = await fetch('/api/v1/keys', {method: 'POST', headers: {'content-type': 'application/json'},
                                              body: '{"role": "operator"}'});
        return r.status; }""")
    assert status == 401


def test_try_it_out_fills_the_inspection_form_with_a_real_looking_part(pages, station):
    """It made up part "3" on line "u", station "G", lot "string" from the fields' patterns:
    a part sent so became a line of its own on the line view."""
    p = pages(role="operator")
    page = p.open("/docs", "#operations-inspections-create_inspection_api_v1_inspections_post", timeout=DOCS_READY_MS)
    op = page.locator("#operations-inspections-create_inspection_api_v1_inspections_post")
    op.locator(".opblock-summary").click()
    op.get_by_role("button", name="Try it out").click()
    filled = {name: op.locator(f"tr[data-property-name='{name}'] input[type=text]").first.input_value()
              for name in ("part_id", "line", "station", "product", "lot", "serial")}
    assert filled == {"part_id": "part-000123", "line": "L1", "station": "S1", "product": "cell", "lot": "",
                      "serial": ""}, filled
