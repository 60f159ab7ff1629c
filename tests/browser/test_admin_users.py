"""Keys and users page: an admin changes a user's role, lets a disabled user in again,
resets a forgotten password and lifts sign-in lock-outs; a user changes their own password."""
from __future__ import annotations

from .conftest import api, expect


def _sign_in(srv, username: str, password: str) -> int:
    with srv.client() as c:
        return c.post("/api/v1/session", json={"username": username, "password": password}).status_code


def _user(srv, name: str) -> dict:
    with api(srv) as c:
        return next(u for u in c.get("/api/v1/users").json()["items"] if u["username"] == name)


def test_admin_changes_role_enables_and_resets_a_password(pages, station):
    with api(station) as c:
        assert c.post("/api/v1/users", json={"username": "vera", "password": "vera-first-pw",
                                             "role": "operator"}).status_code == 201
    p = pages(role="admin")
    page = p.open("/app/admin", "#users table")
    row = page.locator("#users tr", has_text="vera")
    page.once("dialog", lambda d: d.accept())
    row.get_by_label("role of vera").select_option("engineer")
    expect(page.locator("#status")).to_contain_text("vera is now engineer")
    assert _user(station, "vera")["role"] == "engineer"
    page.once("dialog", lambda d: d.dismiss())                     # asked first: no, keeps the role
    row.get_by_label("role of vera").select_option("admin")
    expect(row.get_by_label("role of vera")).to_have_value("engineer")
    assert _user(station, "vera")["role"] == "engineer"
    page.once("dialog", lambda d: d.accept())
    row.get_by_role("button", name="Disable").click()
    expect(row).to_contain_text("disabled")
    assert _sign_in(station, "vera", "vera-first-pw") == 401
    row.get_by_role("button", name="Enable").click()
    expect(row).to_contain_text("active")
    assert _sign_in(station, "vera", "vera-first-pw") == 200
    row.get_by_role("button", name="Reset password").click()
    row.get_by_label("new password for vera").fill("vera-second-pw")
    row.get_by_role("button", name="Set").click()
    expect(page.locator("#status")).to_contain_text("password of vera reset")
    assert _sign_in(station, "vera", "vera-first-pw") == 401
    assert _sign_in(station, "vera", "vera-second-pw") == 200
    # a new key is shown once, and hidden when the admin has copied it
    page.fill("#key-form input[name=name]", "tablet-9")
    page.click("#key-form button[type=submit]")
    expect(page.locator("#secret")).to_be_visible()
    page.click("#hide-key")
    expect(page.locator("#secret")).to_have_count(0)
    p.shot("admin-users")


def test_admin_sees_and_lifts_sign_in_lock_outs(pages, station):
    with api(station) as c:     # other tests' wrong passwords counted against this address too
        assert c.delete("/api/v1/sign-in-locks").status_code == 200
    for i in range(20):         # mistyped passwords from one PC: its address is locked out
        assert _sign_in(station, f"nobody-{i}", "wrong-password") == 401
    assert _sign_in(station, "nobody", "wrong-password") == 429
    p = pages(role="admin")      # a key still signs in from the locked address
    page = p.open("/app/admin", "#locks table")
    expect(page.locator("#locks")).to_contain_text("address 127.0.0.1")
    page.click("#lift-locks")
    expect(page.locator("#locks")).to_contain_text("None: no name or address is locked out")
    assert _sign_in(station, "nobody", "wrong-password") == 401


def test_a_user_changes_their_own_password(pages, station):
    with api(station) as c:
        assert c.post("/api/v1/users", json={"username": "wim", "password": "wim-first-pw",
                                             "role": "operator"}).status_code == 201
    p = pages(role=None)
    r = p.ctx.request.post("/api/v1/session", data={"username": "wim", "password": "wim-first-pw"})
    assert r.status == 200, r.text()
    page = p.open("/app/", "#who a")
    page.click("#who a")                        # the user's name leads to their password
    page.wait_for_selector("#password-form")
    page.get_by_label("current password").fill("not-my-password")
    page.get_by_label("new password (8 characters or more)").fill("wim-second-pw")
    page.get_by_label("new password again").fill("wim-second-pw")
    page.click("#password-form button")
    expect(page.locator("#status")).to_contain_text("current password is not right")
    page.get_by_label("current password").fill("wim-first-pw")
    page.click("#password-form button")
    expect(page.locator("#status")).to_contain_text("password changed")
    assert _sign_in(station, "wim", "wim-first-pw") == 401
    assert _sign_in(station, "wim", "wim-second-pw") == 200
    p.shot("account")
    # signed in with a key: nothing to change, and the page says why
    k = pages(role="operator")
    page = k.open("/app/account", "#no-password")
    expect(page.locator("#who a")).to_have_count(0)


def test_the_sign_in_page_says_which_sign_in_failed_and_what_to_do(pages, station):
    p = pages(role=None)
    page = p.open("/app/signin", "#user-form")
    page.fill("#user-form input[name=username]", "nobody-at-all")
    page.fill("#user-form input[name=password]", "wrong-password")
    page.click("#user-form button")
    expect(page.locator("#status")).to_contain_text("the user name or the password is not right")
    expect(page.locator("#status")).not_to_contain_text("for a key")
    expect(page.locator("#main code")).to_have_text("lineguard keys create")      # not `backticks`
    page.fill("#key-form input[name=api_key]", "lg_00000000_not-a-key")
    page.click("#key-form button")
    expect(page.locator("#status")).to_contain_text("the key is not right")


def test_an_admin_refused_demoting_themselves_is_shown_the_stations_words(pages, station):
    """The last admin setting their own role to operator: the station's 409 was wiped by a
    page reload and the role quietly went back to admin, with no word (walk E)."""
    import json
    with api(station) as c:
        assert c.post("/api/v1/users", json={"username": "ursa", "password": "ursa-first-pw",
                                             "role": "admin"}).status_code == 201
    p = pages(role=None)
    assert p.ctx.request.post("/api/v1/session", data={"username": "ursa", "password": "ursa-first-pw"}).status == 200
    page = p.open("/app/admin", "#users table")
    said = "cannot remove the admin role of 'ursa': the last active admin"
    # the station's refusal, as it answers when ursa is its last admin (here keys hold admin too)
    page.route("**/api/v1/users/*", lambda route: route.fulfill(
        status=409, content_type="application/json",
        body=json.dumps({"error": {"code": "conflict", "message": said}}))
        if route.request.method == "PATCH" else route.continue_())
    row = page.locator("#users tr", has_text="ursa")
    page.evaluate("window.notReloaded = true")
    page.once("dialog", lambda d: d.accept())
    with page.expect_response(lambda r: r.request.method == "PATCH"):
        row.get_by_label("role of ursa").select_option("operator")
    page.wait_for_load_state("networkidle")
    # the page stays (a reload wiped the station's words) and says them
    assert page.evaluate("window.notReloaded === true")
    expect(page.locator("#status")).to_contain_text("the last active admin")
    expect(row.get_by_label("role of ursa")).to_have_value("admin")
    assert _user(station, "ursa")["role"] == "admin"
