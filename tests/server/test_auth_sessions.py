"""Signing in (issue #9 part 1): sessions from a key or a user, the cookie and its CSRF
token, revocation, the last admin, and reads that need a key or session by default."""
from __future__ import annotations

import datetime as dt

import httpx
import pytest

from .conftest import ServerProc, make_keys, png_bytes, post_part, start_fake_station


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    srv = start_fake_station(tmp_path_factory.mktemp("auth") / "data")
    yield srv
    srv.stop()


def _browser(srv) -> httpx.Client:
    """A client that, like a browser, keeps and sends back the cookies it was given."""
    return srv.client()


def _sign_in(c: httpx.Client, **body) -> httpx.Response:
    return c.post("/api/v1/session", json=body)


def test_sign_in_with_a_key_sets_a_strict_http_only_cookie_that_reads_with(station):
    with _browser(station) as c:
        assert c.get("/api/v1/inspections").status_code == 401
        r = _sign_in(c, api_key=station.keys["operator"])
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["role"] == "operator" and body["name"] == "test-operator" and len(body["csrf_token"]) >= 32
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("lg_session=")
        attrs = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
        assert {"httponly", "path", "samesite"} <= attrs and "secure" not in attrs   # plain http here
        assert "samesite=strict" in cookie.lower() and "path=/" in cookie.lower()
        token = c.cookies["lg_session"]
        assert token not in (station.keys["operator"], body["csrf_token"])
        assert c.get("/api/v1/inspections").status_code == 200
        assert c.get("/api/v1/session").json() == body          # a reloaded page gets its CSRF token again
        # the token is stored hashed: it is nowhere in the database file
        db_bytes = b"".join(p.read_bytes() for p in station.data_dir.glob("lineguard.db*"))
        assert token.encode() not in db_bytes


def test_sign_in_with_a_user_and_a_wrong_password_or_name_says_the_same(station):
    with station.client(station.keys["admin"]) as admin:
        r = admin.post("/api/v1/users", json={"username": "erin", "password": "line-3-reviews", "role": "engineer"})
        assert r.status_code == 201, r.text
        assert "password" not in r.text and r.json()["role"] == "engineer"
        assert admin.post("/api/v1/users", json={"username": "erin", "password": "another-one",
                                                 "role": "operator"}).status_code == 409
        assert admin.post("/api/v1/users", json={"username": "sam", "password": "short",
                                                 "role": "operator"}).status_code == 422
        # a name too long is told the rules for a name, not pydantic's "String should have at most"
        long = admin.post("/api/v1/users", json={"username": "u" * 300, "password": "line-3-reviews",
                                                 "role": "operator"})
        assert long.status_code == 422 and "not a usable user name" in long.json()["error"]["message"], long.text
        assert any(u["username"] == "erin" for u in admin.get("/api/v1/users").json()["items"])
    with station.client(station.keys["operator"]) as op:
        assert op.get("/api/v1/users").status_code == 403
    with _browser(station) as c:
        wrong = _sign_in(c, username="erin", password="not-her-password")
        nobody = _sign_in(c, username="nobody-here", password="not-her-password")
        assert wrong.status_code == nobody.status_code == 401
        assert wrong.json() == nobody.json()          # does not tell whether the name exists
        assert "lg_session" not in c.cookies
        assert _sign_in(c, api_key="lg_deadbeef_notakey").status_code == 401
        ok = _sign_in(c, username="erin", password="line-3-reviews")
        assert ok.status_code == 200 and ok.json()["role"] == "engineer" and ok.json()["name"] == "erin"
        assert c.get("/api/v1/models").status_code == 200
        csrf = {"X-CSRF-Token": ok.json()["csrf_token"]}
        assert c.delete("/api/v1/session").status_code == 403      # signing out needs the token too
        assert c.delete("/api/v1/session", headers=csrf).status_code == 204
        assert c.get("/api/v1/models").status_code == 401
        assert c.get("/api/v1/session").status_code == 401


def test_a_write_with_the_cookie_needs_the_csrf_token(station):
    with _browser(station) as c:
        csrf = _sign_in(c, api_key=station.keys["operator"]).json()["csrf_token"]
        r = post_part(c, png_bytes(40, seed=21), "csrf-none")
        assert r.status_code == 403 and "X-CSRF-Token" in r.json()["error"]["message"]
        c.headers["X-CSRF-Token"] = "0" * 64
        assert post_part(c, png_bytes(40, seed=21), "csrf-wrong").status_code == 403
        c.headers["X-CSRF-Token"] = csrf
        r = post_part(c, png_bytes(40, seed=21), "csrf-ok")
        assert r.status_code == 201, r.text
        # the operator session has the operator's role, no more
        assert c.post("/api/v1/keys", json={"role": "admin"}).status_code == 403


def test_revoking_a_key_or_disabling_a_user_ends_their_sessions_at_once(station):
    with station.client(station.keys["admin"]) as admin:
        new = admin.post("/api/v1/keys", json={"role": "operator", "name": "tablet-3"}).json()
        user = admin.post("/api/v1/users", json={"username": "olga", "password": "olga-reviews-L3",
                                                 "role": "operator"}).json()
        with _browser(station) as by_key, _browser(station) as by_user:
            assert _sign_in(by_key, api_key=new["key"]).status_code == 200
            assert _sign_in(by_user, username="olga", password="olga-reviews-L3").status_code == 200
            assert by_key.get("/api/v1/inspections").status_code == 200     # now cached by the station
            assert by_user.get("/api/v1/inspections").status_code == 200
            assert admin.delete(f"/api/v1/keys/{new['id']}").status_code == 200
            assert by_key.get("/api/v1/inspections").status_code == 401
            assert by_user.get("/api/v1/inspections").status_code == 200
            gone = admin.delete(f"/api/v1/users/{user['id']}")
            assert gone.status_code == 200 and gone.json()["disabled"] is True
            assert by_user.get("/api/v1/inspections").status_code == 401
            assert _sign_in(by_user, username="olga", password="olga-reviews-L3").status_code == 401


def test_repeated_failed_sign_ins_for_a_name_are_refused_for_a_while(station):
    with station.client(station.keys["admin"]) as admin:
        assert admin.post("/api/v1/users", json={"username": "tom", "password": "tom-right-password",
                                                 "role": "operator"}).status_code == 201
        # its own second user: the module's other tests may run in another worker
        assert admin.post("/api/v1/users", json={"username": "tina", "password": "tina-right-password",
                                                 "role": "operator"}).status_code == 201
    with _browser(station) as c:
        for _ in range(5):
            assert _sign_in(c, username="tom", password="guess-guess").status_code == 401
        r = _sign_in(c, username="tom", password="tom-right-password")   # even the right one, for now
        assert r.status_code == 429 and "try again in" in r.json()["error"]["message"]
        # another name from the same address is not locked out by tom's guesser
        assert _sign_in(c, username="tina", password="tina-right-password").status_code == 200


def test_the_last_admin_cannot_be_revoked_or_disabled(tmp_path):
    data = tmp_path / "data"
    from lineguard.line.auth import create_key
    from lineguard.line.config import StationConfig
    from lineguard.line.db import Database
    data.mkdir(parents=True)
    db = Database(StationConfig(data_dir=data).database_url)
    db.upgrade()
    with db.session() as s:
        row, admin_key = create_key(s, "admin", name="only-admin")
        key_id = row.id
    db.dispose()
    srv = ServerProc(data).start()
    try:
        with srv.client(admin_key) as admin:
            r = admin.delete(f"/api/v1/keys/{key_id}")
            assert r.status_code == 409 and "create another admin first" in r.json()["error"]["message"]
            boss = admin.post("/api/v1/users", json={"username": "boss", "password": "boss-of-the-line",
                                                     "role": "admin"}).json()
            assert admin.delete(f"/api/v1/keys/{key_id}").status_code == 200    # the user is an admin now
        with _browser(srv) as c:
            csrf = _sign_in(c, username="boss", password="boss-of-the-line").json()["csrf_token"]
            r = c.delete(f"/api/v1/users/{boss['id']}", headers={"X-CSRF-Token": csrf})
            assert r.status_code == 409 and "last active admin" in r.json()["error"]["message"]
            assert c.get("/api/v1/session").json()["role"] == "admin"
    finally:
        srv.stop()


def test_reads_need_a_key_or_session_by_default_and_open_reads_opens_them(station, tmp_path):
    with station.client() as anon:
        for path in ("/api/v1/inspections", "/api/v1/inspections/1", "/api/v1/inspections/1/image",
                     "/api/v1/models", "/api/v1/jobs/1"):
            r = anon.get(path)
            assert r.status_code == 401, (path, r.text)
            assert "sign in" in r.json()["error"]["message"]
        for path in ("/health", "/metrics", "/docs", "/redoc", "/openapi.json"):
            assert anon.get(path).status_code == 200, path
    # the real entry point (python -m lineguard.server), not the test's fake-model one
    srv = ServerProc(tmp_path / "open", fake=False, extra=["--open-reads"])
    make_keys(srv.data_dir)
    srv.start()
    try:
        with srv.client() as anon:
            assert anon.get("/api/v1/inspections").status_code == 200
            assert anon.get("/api/v1/models").status_code == 200
            assert post_part(anon, png_bytes(40, seed=22), "open-but-no-key").status_code == 401   # writes stay closed
    finally:
        srv.stop()


def test_open_reads_setting_from_the_environment(monkeypatch):
    from lineguard.line.config import StationConfig
    assert StationConfig().open_reads is False
    monkeypatch.setenv("LINEGUARD_OPEN_READS", "1")
    assert StationConfig.from_env().open_reads is True
    monkeypatch.setenv("LINEGUARD_OPEN_READS", "maybe")
    with pytest.raises(ValueError, match="LINEGUARD_OPEN_READS"):
        StationConfig.from_env()


@pytest.fixture
def sign_in_db(tmp_path, db_backend):
    from lineguard.line.db import Database
    url, schema = db_backend
    db = Database(url or f"sqlite:///{tmp_path / 'station.db'}", schema=schema)
    db.upgrade()
    yield db
    db.dispose()


def test_tries_sent_at_once_are_counted_before_they_are_checked(sign_in_db):
    from lineguard.line.sign_ins import SignInThrottle
    t = SignInThrottle(sign_in_db, per_name=5, per_address=20, window_s=300)
    # five guesses in flight together (none answered yet): the sixth must already wait
    assert [t.attempt("tom", "10.0.0.9") for _ in range(5)] == [0.0] * 5
    assert 299 < t.attempt("tom", "10.0.0.9") <= 300
    for i in range(15):
        assert t.attempt(f"name-{i}", "10.0.0.9") == 0.0
    assert t.attempt("someone-else", "10.0.0.9") > 0       # the address's 20 tries are spent
    assert t.attempt("someone-else", "10.0.0.10") == 0.0
    t.succeeded("someone-else", "10.0.0.10")               # a good sign-in does not count against anyone
    assert t.attempt("someone-else", "10.0.0.10") == 0.0


def _csrf(c: httpx.Client, signed_in: httpx.Response) -> httpx.Client:
    c.headers["X-CSRF-Token"] = signed_in.json()["csrf_token"]
    return c


def test_an_admin_changes_a_role_lets_a_user_in_again_and_resets_a_forgotten_password(station):
    with station.client(station.keys["admin"]) as admin:
        uid = admin.post("/api/v1/users", json={"username": "petra", "password": "petra-first-pw",
                                                "role": "operator"}).json()["id"]
        with _browser(station) as petra:
            assert _sign_in(petra, username="petra", password="petra-first-pw").json()["kind"] == "user"
            assert petra.get("/api/v1/change-log").status_code == 403          # an operator
            r = admin.patch(f"/api/v1/users/{uid}", json={"role": "engineer"})
            assert r.status_code == 200 and r.json()["role"] == "engineer", r.text
            assert petra.get("/api/v1/change-log").status_code == 200          # her open session, at once
            assert petra.get("/api/v1/session").json()["role"] == "engineer"
            assert admin.patch(f"/api/v1/users/{uid}", json={"disabled": True}).json()["disabled"] is True
            assert petra.get("/api/v1/change-log").status_code == 401
            back = admin.patch(f"/api/v1/users/{uid}", json={"disabled": False})
            assert back.status_code == 200 and back.json()["disabled"] is False
            assert _sign_in(petra, username="petra", password="petra-first-pw").status_code == 200
            # a forgotten password: the admin sets a new one, every session of hers ends
            assert admin.patch(f"/api/v1/users/{uid}", json={"password": "short"}).status_code == 422
            assert admin.patch(f"/api/v1/users/{uid}", json={"password": "petra-second-pw"}).status_code == 200
            assert petra.get("/api/v1/change-log").status_code == 401
            assert _sign_in(petra, username="petra", password="petra-first-pw").status_code == 401
            assert _sign_in(petra, username="petra", password="petra-second-pw").status_code == 200
        assert admin.patch(f"/api/v1/users/{uid}", json={}).status_code == 422
        assert admin.patch("/api/v1/users/99999", json={"role": "admin"}).status_code == 404
        assert admin.patch(f"/api/v1/users/{uid}", json={"role": "boss"}).status_code == 422
        log = admin.get("/api/v1/change-log", params={"subject": "user petra"}).json()["items"]
        assert [e["action"] for e in reversed(log)] == ["user.added", "user.role_changed", "user.disabled",
                                                         "user.enabled", "user.password_set"]
        assert log[-2]["details"] == {"role": "engineer", "before": "operator"}
        assert "petra-second-pw" not in str(log)
    with station.client(station.keys["engineer"]) as eng:
        assert eng.patch(f"/api/v1/users/{uid}", json={"role": "admin"}).status_code == 403


def test_a_user_changes_their_own_password_and_their_other_sessions_end(station):
    with station.client(station.keys["admin"]) as admin:
        assert admin.post("/api/v1/users", json={"username": "quinn", "password": "quinn-first-pw",
                                                 "role": "operator"}).status_code == 201
    with _browser(station) as here, _browser(station) as tablet, _browser(station) as by_key:
        _csrf(here, _sign_in(here, username="quinn", password="quinn-first-pw"))
        assert _sign_in(tablet, username="quinn", password="quinn-first-pw").status_code == 200
        change = {"current_password": "quinn-first-pw", "new_password": "quinn-second-pw"}
        wrong = here.put("/api/v1/session/password", json={**change, "current_password": "not-it-at-all"})
        assert wrong.status_code == 422 and "current password" in wrong.json()["error"]["message"]
        assert here.put("/api/v1/session/password", json={**change, "new_password": "short"}).status_code == 422
        no_csrf = here.put("/api/v1/session/password", json=change, headers={"X-CSRF-Token": ""})
        assert no_csrf.status_code == 403
        assert here.put("/api/v1/session/password", json=change).status_code == 204
        assert here.get("/api/v1/inspections").status_code == 200        # the session it was changed from stays
        assert tablet.get("/api/v1/inspections").status_code == 401      # the others end
        assert _sign_in(tablet, username="quinn", password="quinn-first-pw").status_code == 401
        assert _sign_in(tablet, username="quinn", password="quinn-second-pw").status_code == 200
        # a key has no password to change
        _csrf(by_key, _sign_in(by_key, api_key=station.keys["operator"]))
        assert by_key.put("/api/v1/session/password", json=change).status_code == 409
    with station.client(station.keys["operator"]) as op:
        assert op.put("/api/v1/session/password", json=change).status_code == 409


@pytest.mark.slow
def test_a_locked_out_address_still_signs_in_with_a_key_and_an_admin_lifts_the_lock(tmp_path):
    srv = start_fake_station(tmp_path / "data")
    try:
        with _browser(srv) as c:
            for i in range(20):     # a shared PC whose users mistyped: the address is locked out
                assert _sign_in(c, username=f"someone-{i}", password="wrong-password").status_code == 401
            assert _sign_in(c, username="anyone", password="wrong-password").status_code == 429
        srv.stop()      # a restart hands the guesser no new tries
        srv.start()
        with _browser(srv) as c:
            assert _sign_in(c, username="anyone", password="wrong-password").status_code == 429
            # a key has nothing to guess: it still signs in from the locked address
            assert _sign_in(c, api_key=srv.keys["operator"]).status_code == 200
        with srv.client(srv.keys["operator"]) as op:
            assert op.get("/api/v1/sign-in-locks").status_code == 403
            assert op.delete("/api/v1/sign-in-locks").status_code == 403
        with srv.client(srv.keys["admin"]) as admin:
            locks = admin.get("/api/v1/sign-in-locks").json()["items"]
            assert [(lk["kind"], lk["value"], lk["failures"]) for lk in locks] == [("address", "127.0.0.1", 20)]
            assert 0 < locks[0]["wait_s"] <= 300
            assert admin.delete("/api/v1/sign-in-locks").json() == {"lifted": 1}
            assert admin.get("/api/v1/sign-in-locks").json()["items"] == []
            entry = admin.get("/api/v1/change-log", params={"action": "sign_in.locks_lifted"}).json()["items"][0]
            assert entry["actor"] == "test-admin (key 3)" and entry["details"] == {"addresses": ["127.0.0.1"], "names": 0}
            assert admin.post("/api/v1/users", json={"username": "rita", "password": "rita-right-pw",
                                                     "role": "operator"}).status_code == 201
        with _browser(srv) as c:
            assert _sign_in(c, username="rita", password="rita-right-pw").status_code == 200
            for _ in range(5):
                assert _sign_in(c, username="rita", password="rita-guess").status_code == 401
            assert _sign_in(c, username="rita", password="rita-right-pw").status_code == 429
        with srv.client(srv.keys["admin"]) as admin:
            # a password reset lifts the name's lock-out too
            uid = next(u["id"] for u in admin.get("/api/v1/users").json()["items"] if u["username"] == "rita")
            assert admin.patch(f"/api/v1/users/{uid}", json={"password": "rita-new-pw-1"}).status_code == 200
        with _browser(srv) as c:
            assert _sign_in(c, username="rita", password="rita-new-pw-1").status_code == 200
    finally:
        srv.stop()


def test_a_right_current_password_with_an_unusable_new_one_is_not_counted_as_a_guess(station):
    with station.client(station.keys["admin"]) as admin:
        assert admin.post("/api/v1/users", json={"username": "uli", "password": "uli-first-pw",
                                                 "role": "admin"}).status_code == 201
    with _browser(station) as c:
        _csrf(c, _sign_in(c, username="uli", password="uli-first-pw"))
        for new in ["short", "uli-first-pw"] * 3:      # six refusals, none a wrong password
            assert c.put("/api/v1/session/password", json={"current_password": "uli-first-pw",
                                                           "new_password": new}).status_code == 422
        ok = c.put("/api/v1/session/password", json={"current_password": "uli-first-pw",
                                                     "new_password": "uli-second-pw"})
        assert ok.status_code == 204, ok.text
        # an admin resetting their own password on the users list stays signed in there
        uid = next(u["id"] for u in c.get("/api/v1/users").json()["items"] if u["username"] == "uli")
        assert c.patch(f"/api/v1/users/{uid}", json={"password": "uli-third-pw"}).status_code == 200
        assert c.get("/api/v1/users").status_code == 200


def test_a_name_locked_out_stays_locked_in_every_case(sign_in_db):
    from lineguard.line.sign_ins import SignInThrottle
    t = SignInThrottle(sign_in_db, per_name=5, per_address=100, window_s=300)
    for typed in ("tom", "Tom", "TOM", "tOm", "toM"):
        assert t.attempt(typed, "10.0.0.9") == 0.0
    assert t.attempt("TOM ", "10.0.0.10") > 0          # five tries in all, not five per spelling


def test_every_server_process_on_one_database_counts_the_same_tries(sign_in_db):
    """Two server processes (or two stations on one plant database): a guesser gets five tries
    per name in all, not five per process, and an admin's lift on one clears the other's."""
    from lineguard.line.sign_ins import SignInThrottle
    here = SignInThrottle(sign_in_db, per_name=5, per_address=100, window_s=300)
    there = SignInThrottle(sign_in_db, per_name=5, per_address=100, window_s=300)
    for t in (here, there, here, there, here):
        assert t.attempt("tom", "10.0.0.9") == 0.0
    assert 280 < there.attempt("tom", "10.0.0.10") <= 300     # the window, less the test's own time (1 s was short on a busy machine)
    assert [(lk["kind"], lk["value"], lk["failures"]) for lk in here.locks()] == [("name", "tom", 5)]
    there.lift()
    assert here.locks() == [] and here.attempt("tom", "10.0.0.9") == 0.0
    # a good sign-in takes back only its own try from the address: the others stand
    for _ in range(3):
        assert there.attempt("ann", "10.0.0.11") == 0.0
    here.succeeded("ann", "10.0.0.11")
    assert [lk for lk in SignInThrottle(sign_in_db, per_name=5, per_address=2).locks()
            if lk["kind"] == "address" and lk["value"] == "10.0.0.11"][0]["failures"] == 2


def test_failures_leave_the_count_when_they_leave_the_window(sign_in_db, monkeypatch):
    from lineguard.line import sign_ins
    t = sign_ins.SignInThrottle(sign_in_db, per_name=2, per_address=100, window_s=60)
    start = dt.datetime(2026, 12, 5, 8, 0)
    clock = {"now": start}
    monkeypatch.setattr(sign_ins.SignInThrottle, "_now", lambda self, s: clock["now"])
    assert t.attempt("eva", "10.0.0.9") == 0.0
    clock["now"] = start + dt.timedelta(seconds=30)
    assert t.attempt("eva", "10.0.0.9") == 0.0
    assert t.attempt("eva", "10.0.0.9") == pytest.approx(30.0)     # until the first leaves the window
    clock["now"] = start + dt.timedelta(seconds=61)
    assert t.attempt("eva", "10.0.0.9") == 0.0


def test_the_count_runs_on_the_databases_clock_not_the_station_pcs(sign_in_db, monkeypatch):
    """Two stations on one database, one PC's clock ten minutes ahead: its clean-out took
    the other's failures away early (a guesser switching stations got three times the tries),
    and a clock set back made a person wait an hour."""
    from lineguard.line import orm, sign_ins
    here = sign_ins.SignInThrottle(sign_in_db, per_name=5, per_address=100, window_s=300)
    for _ in range(5):
        assert here.attempt("tom", "10.0.0.9") == 0.0
    ahead = orm.utcnow() + dt.timedelta(minutes=10)
    monkeypatch.setattr(orm, "utcnow", lambda: ahead)
    monkeypatch.setattr(sign_ins, "utcnow", lambda: ahead, raising=False)
    there = sign_ins.SignInThrottle(sign_in_db, per_name=5, per_address=100, window_s=300)
    assert 290 < there.attempt("tom", "10.0.0.10") <= 300
    assert [lk["failures"] for lk in here.locks() if lk["kind"] == "name"] == [5]



def test_a_user_name_with_an_accent_is_refused_saying_which_letters_are_taken(station):
    with station.client(station.keys["admin"]) as admin:
        r = admin.post("/api/v1/users", json={"username": "jörg", "password": "jorg-first-pw", "role": "operator"})
        assert r.status_code == 422 and "without accents" in r.json()["error"]["message"], r.text
