"""The Admin page's refusals and the change log say what was done, in the words of the
action taken: Disable on the station's only admin was refused as "cannot remove", and the
lock-outs an admin lifted after a user's wrong passwords were logged as "names": 1, whose
lock-out it was said nowhere."""
from __future__ import annotations

import pytest


@pytest.fixture
def app_station(sqlite_like_station):
    """(TestClient on an in-process station with product 'cell', its station): no keys, so
    a user made admin is the station's only admin."""
    from fastapi.testclient import TestClient

    from lineguard.server.app import create_app
    st = sqlite_like_station()
    with TestClient(create_app(station=st)) as c:
        yield c, st


def _user(st, name: str, role: str) -> int:
    from lineguard.line.users import create_user
    with st.db.session() as s:
        return create_user(s, name, f"{name}-shift-pw-7", role, by="test").id


def test_disabling_the_only_admin_is_refused_as_a_disable(app_station):
    c, st = app_station
    ana = _user(st, "ana", "admin")
    r = c.post("/api/v1/session", json={"username": "ana", "password": "ana-shift-pw-7"})
    assert r.status_code == 200, r.text
    csrf = {"X-CSRF-Token": r.json()["csrf_token"]}
    # the Admin page's Disable button (DELETE), and the same through a change of the user (PATCH)
    for refused in (c.delete(f"/api/v1/users/{ana}", headers=csrf),
                    c.patch(f"/api/v1/users/{ana}", headers=csrf, json={"disabled": True})):
        assert refused.status_code == 409, refused.text
        message = refused.json()["error"]["message"]
        assert message.startswith("cannot disable user 'ana': "), message
        assert "last active admin" in message, message
    # taking the admin role away is still a removal of an admin, and said so
    r = c.patch(f"/api/v1/users/{ana}", headers=csrf, json={"role": "engineer"})
    assert r.status_code == 409 and r.json()["error"]["message"].startswith("cannot remove the admin role"), r.text


def test_lifting_lock_outs_names_the_users_whose_lock_out_was_lifted(app_station):
    c, st = app_station
    _user(st, "ana", "admin")
    _user(st, "lena", "operator")
    for _ in range(6):       # lena's wrong passwords, at the start of a shift
        assert c.post("/api/v1/session", json={"username": "lena", "password": "wrong-guess"}).status_code in (401, 429)
    for _ in range(5):       # a name that is no user (a password typed into the name field, maybe)
        assert c.post("/api/v1/session", json={"username": "Hunter2-pw", "password": "x" * 9}).status_code in (401, 429)
    r = c.post("/api/v1/session", json={"username": "ana", "password": "ana-shift-pw-7"})
    # an address lock-out needs 20 failures: 11 leave the admin's own sign-in from here open
    assert r.status_code == 200, r.text
    csrf = {"X-CSRF-Token": r.json()["csrf_token"]}
    locked = {(lk["kind"], lk["value"]) for lk in c.get("/api/v1/sign-in-locks").json()["items"]}
    assert ("name", "lena") in locked, locked
    assert c.delete("/api/v1/sign-in-locks", headers=csrf).json() == {"lifted": 2}
    (entry,) = c.get("/api/v1/change-log", params={"action": "sign_in.locks_lifted"}).json()["items"]
    # whose lock-out was lifted, found by the user's name in the log's "changed" filter too
    assert entry["subject"] == "sign-in lock-outs of lena", entry
    assert entry["details"]["users"] == ["lena"] and entry["details"]["names"] == 2, entry
    # the name that is no user is counted, never written down
    assert "Hunter2" not in str(entry), entry
    assert entry["id"] in [e["id"] for e in c.get("/api/v1/change-log", params={"subject": "lena"}).json()["items"]]
