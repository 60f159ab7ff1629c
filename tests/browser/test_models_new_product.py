"""The Models page's upload of a product whose name is a slip of one the station knows
("gaskets" beside "gasket"): the station refuses it as a likely typo (409, did_you_mean),
and the page asks whether it IS a new product instead of only showing the refusal (the
form could not send new_product, so such a product could not be uploaded from the page)."""
from __future__ import annotations

from .conftest import api, expect, fake_model_bytes


def test_a_product_name_like_a_known_one_is_asked_about_and_uploaded_when_confirmed(pages, station):
    with api(station, "engineer") as c:
        r = c.post("/api/v1/models", files={"file": ("gasket.lgm", fake_model_bytes(0.5, "gasket"))},
                   data={"product": "gasket", "new_product": "true"})
        assert r.status_code == 201, r.text
    p = pages(role="engineer")
    page = p.open("/app/models?product=gasket", "#versions")
    form = page.locator("#upload-form")
    asked: list[str] = []
    answer = {"accept": False}
    page.on("dialog", lambda d: (asked.append(d.message), d.accept() if answer["accept"] else d.dismiss()))

    def send() -> None:
        form.locator("input[type=file]").set_input_files(
            files=[{"name": "gaskets.lgm", "mimeType": "application/octet-stream",
                    "buffer": fake_model_bytes(0.5, "gaskets")}])
        form.locator("input[name=product]").fill("gaskets")
        form.locator("button[type=submit]").click()

    # every text the status line shows, kept: an "info" line clears itself after 6 s, and a CI
    # run loaded enough to hold the test that long between the click and the check saw ""
    page.evaluate("""() => { window.statusSaid = [];
      new MutationObserver(() => window.statusSaid.push(document.getElementById("status").textContent))
        .observe(document.getElementById("status"), {childList: true, characterData: true, subtree: true}); }""")
    send()                          # called off: nothing uploaded
    page.wait_for_function("() => window.statusSaid.some((t) => t.includes('nothing changed'))")
    assert asked and "did you mean 'gasket'" in asked[0] and "new product 'gaskets'" in asked[0], asked
    with api(station, "engineer") as c:
        assert c.get("/api/v1/models", params={"product": "gaskets"}).json()["items"] == []
    answer["accept"] = True         # it IS a new product: uploaded as one
    send()
    expect(page.locator("#status")).to_contain_text("uploaded: version 1")
    with api(station, "engineer") as c:
        items = c.get("/api/v1/models", params={"product": "gaskets"}).json()["items"]
    assert [v["version"] for v in items] == [1], items
