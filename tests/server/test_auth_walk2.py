"""Keys, users and sign-in walk (2): a credential revoked by another process on the station's
database stops changing anything at once, a session is never taken past its end, a lift or a
test part sent again with nothing to change writes nothing, and the pages (and /docs) send
the CSRF token of the sign-in the browser holds now, not the one of the page's load."""
from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "src" / "lineguard" / "server" / "web"


@pytest.fixture
def app_station(sqlite_like_station):
    """(TestClient on an in-process station with product 'cell', its station, keys by name)."""
    from fastapi.testclient import TestClient

    from lineguard.line.auth import create_key
    from lineguard.server.app import create_app
    st = sqlite_like_station()
    keys = {}
    with st.db.session() as s:
        for name, role in [("admin", "admin"), ("admin-2", "admin"), ("eng", "engineer"), ("eng-2", "engineer"),
                           ("op", "operator")]:
            row, keys[name] = create_key(s, role, name=name, by="test")
            keys[name + ":id"] = row.id
    with TestClient(create_app(station=st)) as c:
        yield c, st, keys


def _elsewhere(st):
    """The station's database as another process sees it (`lineguard keys revoke`, another
    server process): changes made through it clear nothing in the station's own cache."""
    from lineguard.line.db import Database
    return Database(st.config.database_url)


def _h(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def test_a_key_revoked_by_another_process_changes_nothing_from_then_on(app_station):
    c, st, keys = app_station
    from lineguard.line.auth import revoke_key
    spare = keys["admin-2"]
    assert c.get("/api/v1/inspections", headers=_h(spare)).status_code == 200      # cached by the station now
    other = _elsewhere(st)
    try:
        with other.session() as s:
            assert revoke_key(s, keys["admin-2:id"], by="cli (someone)")
    finally:
        other.dispose()
    # it minted a new admin key right after the revoke (201), its cache entry still good
    r = c.post("/api/v1/keys", headers=_h(spare), json={"role": "admin", "name": "after-revoke"})
    assert r.status_code == 401, r.text
    assert c.get("/api/v1/keys", headers=_h(spare)).status_code == 401                # an admin call reads too
    # what the database said is kept: the reads after it are refused as well
    assert c.get("/api/v1/inspections", headers=_h(spare)).status_code == 401
    names = [k["name"] for k in c.get("/api/v1/keys", headers=_h(keys["admin"])).json()["items"]]
    assert "after-revoke" not in names


def _signed_in(c, st, name: str, role: str = "operator") -> str:
    from lineguard.line.users import create_user
    with st.db.session() as s:
        create_user(s, name, f"{name}-reviews-L3", role, by="test")
    r = c.post("/api/v1/session", json={"username": name, "password": f"{name}-reviews-L3"})
    assert r.status_code == 200, r.text
    return r.json()["csrf_token"]


def test_a_user_disabled_by_another_process_cannot_change_anything_from_then_on(app_station):
    c, st, keys = app_station
    from lineguard.line.users import disable_user, find_user
    csrf = _signed_in(c, st, "maria")
    assert c.get("/api/v1/inspections").status_code == 200           # her session cached by the station
    other = _elsewhere(st)
    try:
        with other.session() as s:
            disable_user(s, find_user(s, "maria").id, by="cli (someone)")
    finally:
        other.dispose()
    r = c.put("/api/v1/session/password", headers={"X-CSRF-Token": csrf},
              json={"current_password": "maria-reviews-L3", "new_password": "maria-second-pw"})
    assert r.status_code == 401, r.text
    assert c.get("/api/v1/inspections").status_code == 401


def test_a_cached_session_is_not_taken_past_its_end(app_station):
    c, st, keys = app_station
    from sqlalchemy import update

    from lineguard.line.orm import SignInSession, utcnow
    _signed_in(c, st, "otto")
    with st.db.session() as s:       # its 12 h nearly run out
        s.execute(update(SignInSession).values(expires_at=utcnow() + dt.timedelta(seconds=1.5)))
    st.key_cache.clear()
    assert c.get("/api/v1/inspections").status_code == 200           # read from the database, cached
    time.sleep(1.7)
    # the cache kept it 5 s (ttl_s) whatever was left of it
    assert c.get("/api/v1/inspections").status_code == 401


def test_lifting_sign_in_locks_when_there_are_none_writes_nothing_in_the_change_log(app_station):
    c, st, keys = app_station
    admin = _h(keys["admin"])
    r = c.delete("/api/v1/sign-in-locks", headers=admin)
    assert r.status_code == 200 and r.json() == {"lifted": 0}
    lifted = {"action": "sign_in.locks_lifted"}
    assert c.get("/api/v1/change-log", headers=admin, params=lifted).json()["items"] == []
    for _ in range(5):
        assert c.post("/api/v1/session", json={"username": "nobody", "password": "guess-guess"}).status_code == 401
    assert c.delete("/api/v1/sign-in-locks", headers=admin).json() == {"lifted": 1}
    entries = c.get("/api/v1/change-log", headers=admin, params=lifted).json()["items"]
    assert [e["details"] for e in entries] == [{"addresses": [], "names": 1}]


def test_a_test_part_registered_again_unchanged_changes_nothing(app_station):
    c, st, keys = app_station
    url = "/api/v1/products/cell/test-parts"
    part = {"name": "RR-01", "expect": "NG"}
    first = c.post(url, headers=_h(keys["eng"]), json=part)
    assert first.status_code == 200, first.text
    again = c.post(url, headers=_h(keys["eng-2"]), json=part)
    assert again.status_code == 200, again.text
    assert again.json()["created_by"] == first.json()["created_by"] == f"eng (key {keys['eng:id']})"
    log = {"action": "test_part.registered", "subject": "cell RR-01"}
    assert len(c.get("/api/v1/change-log", headers=_h(keys["admin"]), params=log).json()["items"]) == 1
    # a change is still a change: logged, and by who made it
    changed = c.post(url, headers=_h(keys["eng-2"]), json={"name": "RR-01", "expect": "OK"})
    assert changed.json()["expect"] == "OK" and changed.json()["created_by"] == f"eng-2 (key {keys['eng-2:id']})"
    entries = c.get("/api/v1/change-log", headers=_h(keys["admin"]), params=log).json()["items"]
    assert [e["details"]["expect"] for e in entries] == ["OK", "NG"]


# -- the pages' CSRF token: common.js api() and /docs' docs-session.js, run by node ---------------

# A browser's page, with a DOM just deep enough for common.js to start, and a fetch that
# answers as the station does: the token of the sign-in the browser holds now, a 403 for a
# change sent with another. Maria signs in again in another tab, then otto does.
_PAGE = r"""
const vm = require("vm"), fs = require("fs");
class Node_ {}
class El extends Node_ {
  constructor() { super(); this.children = []; this.dataset = {}; this.style = {}; }
  get firstChild() { return this.children[0] || null; }
  appendChild(c) { this.children.push(c); return c; }
  removeChild(c) { this.children.splice(this.children.indexOf(c), 1); return c; }
  setAttribute() {} addEventListener() {} querySelector() { return null; } querySelectorAll() { return []; }
}
const byId = {}, listeners = {};
const document = {body: new El(), createElement: () => new El(), createElementNS: () => new El(),
  createTextNode: () => new El(), getElementById: (id) => byId[id] || (byId[id] = new El()),
  addEventListener: (ev, fn) => { listeners[ev] = fn; }, querySelectorAll: () => []};
const station = {token: "first", name: "maria", role: "operator"};
const sent = [];
async function fetch(path, init) {
  const method = (init && init.method) || "GET";
  const csrf = (init && init.headers && init.headers["X-CSRF-Token"]) || null;
  sent.push([method, path, csrf]);
  const json = (status, body) => new Response(JSON.stringify(body), {status});
  if (path === "/api/v1/session") {
    return json(200, {name: station.name, role: station.role, kind: "user", csrf_token: station.token});
  }
  if (csrf !== station.token) {
    return json(403, {error: {code: "forbidden", message: "a signed-in request that changes something must carry "
      + "the X-CSRF-Token header with the csrf_token the sign-in answered"}});
  }
  if (path === "/api/v1/keys") {
    return json(403, {error: {code: "forbidden", message: "a signed-in operator cannot do this; it needs role admin"}});
  }
  return json(200, {done: path});
}
const ctx = {document, fetch, Response, Node: Node_, FormData: class {}, URLSearchParams, setTimeout, clearTimeout,
  location: {pathname: "/app/alarms", search: "", assign: (u) => sent.push(["NAVIGATE", u, null])},
  sessionStorage: {setItem() {}, getItem() { return null; }, removeItem() {}}, window: {addEventListener() {}}};
vm.createContext(ctx);
vm.runInContext(fs.readFileSync(process.argv[2], "utf8") + "\n;globalThis.LG = LG;", ctx);
const LG = ctx.LG;
const outcome = async (p) => { try { return {ok: await p}; } catch (e) { return {status: e.status, error: e.message}; } };
LG.start(async () => {
  const out = {};
  station.token = "second";
  sent.length = 0;
  out.again = {result: await outcome(LG.api("/api/v1/alarms/7/ack", {method: "POST", body: {}})), sent: sent.splice(0)};
  out.role = {result: await outcome(LG.api("/api/v1/keys", {method: "POST", body: {}})), sent: sent.splice(0)};
  station.token = "third"; station.name = "otto";
  out.other = {result: await outcome(LG.api("/api/v1/alarms/8/ack", {method: "POST", body: {}})), sent: sent.splice(0)};
  process.stdout.write(JSON.stringify(out));
});
listeners.DOMContentLoaded();
"""

# /docs: Swagger UI's fetch, wrapped by docs-session.js; the page opened before signing in,
# then a sign-in, then another in another tab
_DOCS = r"""
const vm = require("vm"), fs = require("fs");
const station = {token: null};
const sent = [];
async function fetch(input, init) {
  const method = ((init && init.method) || "GET").toUpperCase();
  const headers = new Headers((init && init.headers) || {});
  const path = new URL(String(input), "http://station:8080").pathname;
  if (path === "/api/v1/session") {
    return station.token === null ? new Response("{}", {status: 401})
      : new Response(JSON.stringify({name: "maria", role: "engineer", kind: "user", csrf_token: station.token}));
  }
  sent.push(headers.get("X-CSRF-Token"));
  return new Response("{}", {status: headers.get("X-CSRF-Token") === station.token ? 200 : 403});
}
const window = {fetch};
const ctx = {window, Request, Headers, URL, Response,
  location: {href: "http://station:8080/docs", origin: "http://station:8080"}};
vm.createContext(ctx);
vm.runInContext(fs.readFileSync(process.argv[2], "utf8"), ctx);
(async () => {
  const statuses = [];
  const post = async () => statuses.push((await window.fetch("/api/v1/alarms/1/ack",
    {method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"})).status);
  await post();
  station.token = "first";
  await post();
  station.token = "second";
  await post();
  process.stdout.write(JSON.stringify({sent, statuses: statuses.slice(1)}));
})();
"""


def _node(tmp_path: Path, script: str, js: str) -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the pages' scripts are run with it here")
    (tmp_path / "harness.js").write_text(script)
    done = subprocess.run([node, str(tmp_path / "harness.js"), str(WEB / js)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_page_sends_a_change_again_with_the_token_of_a_sign_in_made_in_another_tab(tmp_path):
    out = _node(tmp_path, _PAGE, "common.js")
    # maria signed in again: the change is sent once more with the new token, and goes through
    assert out["again"]["result"] == {"ok": {"done": "/api/v1/alarms/7/ack"}}
    assert out["again"]["sent"] == [["POST", "/api/v1/alarms/7/ack", "first"], ["GET", "/api/v1/session", None],
                                    ["POST", "/api/v1/alarms/7/ack", "second"]]
    # a 403 for the role is not a stale token: said as it is, not sent again
    assert out["role"]["result"]["status"] == 403 and "role admin" in out["role"]["result"]["error"]
    assert [m for m, _p, _t in out["role"]["sent"]].count("POST") == 1
    # another person signed in in the other tab: maria's page does not act as otto
    assert out["other"]["result"]["status"] == 403
    assert "signed in as otto" in out["other"]["result"]["error"] and "Reload" in out["other"]["result"]["error"]
    assert [m for m, _p, _t in out["other"]["sent"]] == ["POST", "GET"]


def test_docs_try_it_out_sends_the_token_of_the_sign_in_held_now(tmp_path):
    out = _node(tmp_path, _DOCS, "docs-session.js")
    assert out["sent"][1:] == ["first", "second"] and out["statuses"] == [200, 200]
