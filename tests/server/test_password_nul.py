"""A password with a NUL character (U+0000) is refused wherever one is set: the users API,
an admin's reset, a user's own change, `lineguard users add|password` and the library,
on SQLite and PostgreSQL. It was taken (hashed, so neither database ever saw it): a
password read from a PLC or C string with its terminator, which no one can type on the
sign-in page, so its user was locked out. Signing in with one is a plain 401, never a 500:
it signed in before, as scrypt's HMAC pads a password with zero bytes ("secret\x00"
matched "secret")."""
from __future__ import annotations

import pytest
from cli_runner import run_in_process
from fastapi.testclient import TestClient

NUL = "\x00"
GOOD, OTHER = "line-3-reviews", "line-4-reviews"


@pytest.fixture
def api(spc_station):
    """A client of an in-process station with an admin key (sign-ins use their own client)."""
    from lineguard.line.auth import create_key
    from lineguard.server.app import create_app
    st = spc_station()
    with st.db.session() as s:
        admin = create_key(s, "admin", name="test-admin")[1]
    with TestClient(create_app(station=st), raise_server_exceptions=False) as c:
        c.headers["X-API-Key"] = admin
        yield c


def _refused(r) -> None:
    assert r.status_code == 422, f"{r.status_code}: {r.text[:300]}"
    err = r.json()["error"]
    assert err["code"] == "invalid_request" and "U+0000" in err["message"], err


def _users(api) -> dict[str, int]:
    return {u["username"]: u["id"] for u in api.get("/api/v1/users").json()["items"]}


def test_a_password_with_a_nul_is_refused_by_every_api_that_sets_one(api, db_backend):
    _refused(api.post("/api/v1/users", json={"username": "erin", "password": GOOD + NUL, "role": "engineer"}))
    assert "erin" not in _users(api)
    made = api.post("/api/v1/users", json={"username": "erin", "password": GOOD, "role": "engineer"})
    assert made.status_code == 201, made.text
    _refused(api.patch(f"/api/v1/users/{made.json()['id']}", json={"password": NUL + OTHER}))
    key = api.headers.pop("X-API-Key")
    try:
        signed_in = api.post("/api/v1/session", json={"username": "erin", "password": GOOD})   # still hers
        assert signed_in.status_code == 200, signed_in.text
        csrf = {"X-CSRF-Token": signed_in.json()["csrf_token"]}
        _refused(api.put("/api/v1/session/password", headers=csrf,
                         json={"current_password": GOOD, "new_password": OTHER + NUL}))
        api.delete("/api/v1/session", headers=csrf)
        # nothing changed: her password signs in, and one with a NUL is a wrong one, not a 500
        for name, password in (("erin", GOOD + NUL), ("erin", NUL), ("nobody", GOOD + NUL)):
            r = api.post("/api/v1/session", json={"username": name, "password": password})
            assert r.status_code == 401, f"{name!r} {password!r}: {r.status_code} {r.text[:300]}"
        assert api.post("/api/v1/session", json={"username": "erin", "password": GOOD}).status_code == 200
    finally:
        api.cookies.clear()
        api.headers["X-API-Key"] = key


def test_the_library_refuses_a_password_with_a_nul(spc_station, db_backend):
    from lineguard.line.errors import InvalidRequest
    from lineguard.line.users import authenticate, check_new_password, create_user, set_password
    st = spc_station()
    with pytest.raises(InvalidRequest, match="NUL"):
        check_new_password(GOOD + NUL)
    with st.db.session() as s:
        with pytest.raises(InvalidRequest, match="NUL"):
            create_user(s, "kai", GOOD + NUL, "operator")
    with st.db.session() as s:
        uid = create_user(s, "kai", GOOD, "operator").id
    with st.db.session() as s:
        with pytest.raises(InvalidRequest, match="NUL"):
            set_password(s, uid, OTHER + NUL)
    with st.db.session() as s:
        assert authenticate(s, "kai", GOOD) is not None and authenticate(s, "kai", GOOD + NUL) is None


@pytest.mark.new_schema
def test_the_cli_refuses_a_password_with_a_nul_and_touches_nothing(tmp_path, db_backend):
    db_url, schema = db_backend
    where = ["--data", str(tmp_path / "st")] + (["--db", db_url, "--db-schema", schema] if db_url else [])
    added = run_in_process("users", "add", "kai", "--role", "admin", "--password-stdin", *where, "--new",
                           input=GOOD + NUL + "\n")
    assert added.returncode == 2, added.stdout + added.stderr
    assert "NUL" in added.stderr and "without" in added.stderr and "Traceback" not in added.stderr
    # refused before the database was opened: no station was made for it
    assert run_in_process("users", "list", *where).returncode != 0
    made = run_in_process("users", "add", "kai", "--role", "admin", "--password-stdin", *where, "--new",
                          input=GOOD + "\n")
    assert made.returncode == 0, made.stderr
    reset = run_in_process("users", "password", "kai", "--password-stdin", *where, input=NUL + OTHER + "\n")
    assert reset.returncode == 2 and "NUL" in reset.stderr, reset.stdout + reset.stderr
    from lineguard.line.config import StationConfig
    from lineguard.line.db import Database
    from lineguard.line.users import authenticate
    db = Database(StationConfig(data_dir=tmp_path / "st", db_url=db_url).database_url, schema=schema)
    try:
        with db.session() as s:
            assert authenticate(s, "kai", GOOD) is not None     # the reset was refused
    finally:
        db.dispose()
