"""A credential is held for as long as it is used, not only at the door.

The live event stream is asked again while it is open: a revoked key, a disabled user, a
sign-out, a new password or a session's expiry ends it within seconds (it had gone on
sending part ids, lots, serials and scores for as long as the page stayed open). A large
upload (a part image, a model file) with no key or a wrong one is refused from its
headers, before its body is read (it had been read, spooled to disk, to the end first).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
import threading
import time
from contextlib import closing
from typing import Callable, Iterator

import httpx
import pytest

from .conftest import fake_model_bytes, png_bytes, post_part, read_http_head, start_fake_station

LAPSE_WITHIN_S = 15.0   # recheck every 2 s, a cached session 5 s more: 15 s is ample, and bounds the test


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    # 32 MiB: the production limit for a part image, so an upload under it is read whole
    srv = start_fake_station(tmp_path_factory.mktemp("held") / "data", extra=["--max-upload-mb", "32"])
    yield srv
    srv.stop()


_seq = iter(range(10_000))


def _new_part(srv, tag: str) -> str:
    n = next(_seq)
    pid = f"{tag}-{n}"
    with srv.client(srv.keys["operator"]) as c:
        r = post_part(c, png_bytes(200, seed=1000 + n), pid, lot="LOT-7", serial=f"SN-{n}")
        assert r.status_code == 201, r.text
    return pid


def _events(lines) -> Iterator[tuple[str, str]]:
    event = None
    for line in lines:
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event is not None:
            yield event, line[6:]
            event = None


def _stream_ends_after(srv, client: httpx.Client, lapse: Callable[[], None]) -> tuple[bool, list[tuple[str, str]]]:
    """Open the live stream with ``client``'s credential, see it carry a part, ``lapse()``
    the credential, and read on while parts keep coming: (whether the stream ended within
    LAPSE_WITHIN_S, the events read after the lapse)."""
    after: list[tuple[str, str]] = []
    stop = threading.Event()

    def keep_inspecting() -> None:
        while not stop.is_set():
            _new_part(srv, "after")
            stop.wait(0.3)

    with client.stream("GET", "/api/v1/events") as s:
        assert s.status_code == 200, s.read()
        events = _events(s.iter_lines())
        before = _new_part(srv, "before")
        for ev, data in events:
            if ev == "inspection" and f'"part_id":"{before}"' in data:
                break
        lapse()
        poster = threading.Thread(target=keep_inspecting, daemon=True)
        poster.start()
        deadline = time.monotonic() + LAPSE_WITHIN_S
        ended = True
        try:
            for ev, data in events:
                after.append((ev, data))
                if time.monotonic() > deadline:
                    ended = False
                    break
        finally:
            stop.set()
            poster.join(10)
    return ended, after


def _assert_ended(ended: bool, after: list[tuple[str, str]], why: str) -> None:
    records = sum(1 for ev, _ in after if ev == "inspection")
    assert ended, f"{why}: the stream went on for {LAPSE_WITHIN_S:g} s and sent {records} more inspection records"
    assert after and after[-1][0] == "ended", after[-3:]
    assert json.loads(after[-1][1])["reason"]


def _browser(srv) -> httpx.Client:
    return srv.client()


def _user(srv, name: str, password: str = "line-3-reviews", role: str = "operator") -> int:
    with srv.client(srv.keys["admin"]) as admin:
        r = admin.post("/api/v1/users", json={"username": name, "password": password, "role": role})
        assert r.status_code == 201, r.text
        return r.json()["id"]


def _signed_in(srv, **body) -> tuple[httpx.Client, str]:
    c = _browser(srv)
    r = c.post("/api/v1/session", json=body)
    assert r.status_code == 200, r.text
    return c, r.json()["csrf_token"]


# -- the live stream ends when its credential does ---------------------------------------

def test_a_revoked_key_ends_its_open_stream(station):
    with station.client(station.keys["admin"]) as admin:
        made = admin.post("/api/v1/keys", json={"role": "operator", "name": "tablet-3"}).json()

    def revoke() -> None:
        with station.client(station.keys["admin"]) as admin:
            assert admin.delete(f"/api/v1/keys/{made['id']}").status_code == 200

    with station.client(made["key"]) as c:
        _assert_ended(*_stream_ends_after(station, c, revoke), "key revoked")
        assert c.get("/api/v1/events").status_code == 401     # and it cannot open another


def test_a_session_from_a_revoked_key_ends_its_open_stream(station):
    with station.client(station.keys["admin"]) as admin:
        made = admin.post("/api/v1/keys", json={"role": "operator", "name": "tablet-4"}).json()
    c, _csrf = _signed_in(station, api_key=made["key"])

    def revoke() -> None:
        with station.client(station.keys["admin"]) as admin:
            assert admin.delete(f"/api/v1/keys/{made['id']}").status_code == 200

    with closing(c):
        _assert_ended(*_stream_ends_after(station, c, revoke), "the session's key revoked")


def test_a_disabled_user_s_open_stream_ends(station):
    uid = _user(station, "dana")
    c, _csrf = _signed_in(station, username="dana", password="line-3-reviews")

    def disable() -> None:
        with station.client(station.keys["admin"]) as admin:
            r = admin.patch(f"/api/v1/users/{uid}", json={"disabled": True})
            assert r.status_code == 200, r.text

    with closing(c):
        _assert_ended(*_stream_ends_after(station, c, disable), "user disabled")


def test_signing_out_ends_the_open_stream(station):
    _user(station, "olaf")
    c, csrf = _signed_in(station, username="olaf", password="line-3-reviews")
    cookie = c.cookies["lg_session"]

    def sign_out() -> None:
        # the page's other tab signs out: same cookie, its own connection
        with httpx.Client(base_url=station.url, cookies={"lg_session": cookie}) as other:
            assert other.delete("/api/v1/session", headers={"X-CSRF-Token": csrf}).status_code == 204

    with closing(c):
        _assert_ended(*_stream_ends_after(station, c, sign_out), "signed out")


def test_a_new_password_ends_the_user_s_other_streams(station):
    _user(station, "pia")
    watching, _ = _signed_in(station, username="pia", password="line-3-reviews")
    changing, csrf = _signed_in(station, username="pia", password="line-3-reviews")

    def change_own() -> None:
        r = changing.put("/api/v1/session/password", headers={"X-CSRF-Token": csrf},
                         json={"current_password": "line-3-reviews", "new_password": "line-4-reviews"})
        assert r.status_code == 204, r.text

    with closing(watching), closing(changing):
        _assert_ended(*_stream_ends_after(station, watching, change_own), "own password changed")
        assert changing.get("/api/v1/session").status_code == 200     # where it was changed stays signed in


def test_a_password_reset_by_an_admin_ends_the_user_s_stream(station):
    uid = _user(station, "rui")
    c, _ = _signed_in(station, username="rui", password="line-3-reviews")

    def reset() -> None:
        with station.client(station.keys["admin"]) as admin:
            assert admin.patch(f"/api/v1/users/{uid}", json={"password": "line-5-reviews"}).status_code == 200

    with closing(c):
        _assert_ended(*_stream_ends_after(station, c, reset), "password reset")


def test_an_expired_session_s_open_stream_ends(station):
    from sqlalchemy import update

    from lineguard.line.config import StationConfig
    from lineguard.line.db import Database
    from lineguard.line.orm import SignInSession
    from lineguard.line.sessions import token_hash

    _user(station, "ines")
    c, _ = _signed_in(station, username="ines", password="line-3-reviews")
    token = c.cookies["lg_session"]

    def expire() -> None:
        # the 12 h pass: the session's expiry, as the database holds it, is now behind us
        db = Database(StationConfig(data_dir=station.data_dir).database_url)
        try:
            with db.session() as s:
                s.execute(update(SignInSession).where(SignInSession.token_hash == token_hash(token))
                          .values(expires_at=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
                                  - dt.timedelta(seconds=1)))
        finally:
            db.dispose()

    with closing(c):
        _assert_ended(*_stream_ends_after(station, c, expire), "session expired")


def test_an_idle_stream_is_asked_again_too_and_ends_saying_why():
    # no parts at all (a night shift's quiet line): the check is not waiting for events
    from lineguard.server.events import EventHub

    async def run():
        hub = EventHub()
        sub = hub.subscribe()
        asked = []

        async def recheck():
            asked.append(time.monotonic())
            return None if len(asked) < 3 else "the API key is unknown or revoked"

        t0 = time.monotonic()
        got = [m async for m in sub.messages(keepalive_s=60, recheck=recheck, recheck_s=0.05)]
        assert time.monotonic() - t0 < 5 and len(asked) == 3
        assert got[0].startswith("retry:")
        assert got[-1] == 'event: ended\ndata: {"reason": "the API key is unknown or revoked"}\n\n'
        hub.unsubscribe(sub)

    asyncio.run(run())


def test_a_stream_whose_key_holds_stays_open_across_rechecks(station):
    # asked again every 2 s: 5 s of parts reach the client, and nothing ends it
    with station.client(station.keys["operator"]) as c, c.stream("GET", "/api/v1/events") as s:
        events = _events(s.iter_lines())
        # 5 s of parts at least, and 5 parts seen however slowly a loaded machine makes them
        seen, t_end, give_up = 0, time.monotonic() + 5, time.monotonic() + 60
        while (time.monotonic() < t_end or seen < 5) and time.monotonic() < give_up:
            pid = _new_part(station, "held")
            for ev, data in events:
                assert ev != "ended", data
                if ev == "inspection" and f'"part_id":"{pid}"' in data:
                    seen += 1
                    break
            time.sleep(0.3)
        assert seen >= 5


# -- a large upload is refused from its headers when its caller cannot send it ----------------

BLOCK = 64 * 1024
BODY_BYTES = 30 * (1 << 20)   # 30 MiB: under the 32 MiB part image limit, so nothing else stops it


def _upload(port: int, path: str, field: str, headers: dict[str, str],
            body_bytes: int = BODY_BYTES) -> tuple[int, dict, dict[str, str], int, int]:
    """POST a multipart form whose one file is ``body_bytes`` sent chunked in 64 KiB blocks
    from a generator, reading the answer while it sends: (status, JSON answer, headers,
    blocks the generator had given when the answer came, blocks in all)."""
    boundary = "lgheld"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"big.bin\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    request = (f"POST {path} HTTP/1.1\r\nHost: x\r\n"
               + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
               + f"Content-Type: multipart/form-data; boundary={boundary}\r\nTransfer-Encoding: chunked\r\n\r\n")
    blocks = body_bytes // BLOCK
    given = 0
    answered = threading.Event()

    def body():
        nonlocal given
        yield head
        block = b"\0" * BLOCK
        for _ in range(blocks):
            if answered.is_set():
                return
            given += 1
            yield block
        yield tail

    sock = socket.create_connection(("127.0.0.1", port), timeout=60)

    def feed() -> None:
        try:
            sock.sendall(request.encode())
            for piece in body():
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass   # the server answered and closed the connection

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        answer = read_http_head(sock)
        at_answer = given
        answered.set()
        head_part, _, rest = answer.partition(b"\r\n\r\n")
        lines = head_part.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        got_headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
        length = int(got_headers.get("content-length", "0"))
        while len(rest) < length:
            got = sock.recv(65536)
            if not got:
                break
            rest += got
    finally:
        answered.set()
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
        feeder.join(30)
    return status, json.loads(rest[:length] or b"null"), got_headers, at_answer, blocks


# the answer must come with at most this much sent: what loopback's socket buffers hold
# while the server reads nothing (old code: the answer came after every block)
READ_AT_MOST = 16 * (1 << 20) // BLOCK


@pytest.mark.parametrize("path,field", [("/api/v1/inspections", "image"), ("/api/v1/models", "file")])
@pytest.mark.parametrize("credential", ["none", "wrong key", "wrong bearer"])
def test_an_upload_without_a_valid_key_is_refused_before_its_body_is_read(station, path, field, credential):
    headers = {"none": {}, "wrong key": {"X-API-Key": "lg_not-a-key-of-this-station"},
               "wrong bearer": {"Authorization": "Bearer lg_not-a-key-of-this-station"}}[credential]
    status, body, got, at_answer, blocks = _upload(station.port, path, field, headers)
    assert status == 401, body
    assert body["error"]["code"] == "unauthorized" and body["detail"] == body["error"]["message"]
    assert got.get("www-authenticate") == "Bearer"
    assert at_answer <= READ_AT_MOST, (f"the 401 came after {at_answer} of {blocks} blocks "
                                       f"({at_answer * BLOCK >> 20} MiB) were sent")


def test_an_upload_with_too_low_a_role_or_no_csrf_token_is_refused_before_its_body_is_read(station):
    # an operator may inspect, not upload models: a 403 from the headers
    status, body, _, at_answer, blocks = _upload(station.port, "/api/v1/models", "file",
                                                 {"X-API-Key": station.keys["operator"]})
    assert status == 403 and body["error"]["code"] == "forbidden", body
    assert "engineer" in body["error"]["message"]
    assert at_answer <= READ_AT_MOST, f"the 403 came after {at_answer} of {blocks} blocks"
    # a signed-in page's upload without its CSRF token: a 403, unread
    c, _csrf = _signed_in(station, api_key=station.keys["operator"])
    with closing(c):
        status, body, _, at_answer, blocks = _upload(station.port, "/api/v1/inspections", "image",
                                                     {"Cookie": f"lg_session={c.cookies['lg_session']}"})
    assert status == 403 and "X-CSRF-Token" in body["error"]["message"], body
    assert at_answer <= READ_AT_MOST, f"the 403 came after {at_answer} of {blocks} blocks"


def test_a_valid_key_or_session_still_uploads(station):
    with station.client(station.keys["operator"]) as c:
        r = post_part(c, png_bytes(200, seed=77), "held-upload-1")
        assert r.status_code == 201, r.text
        # bearer as well as the header
    with httpx.Client(base_url=station.url, headers={"Authorization": f"Bearer {station.keys['operator']}"}) as c:
        assert post_part(c, png_bytes(200, seed=78), "held-upload-2").status_code == 201
    with station.client(station.keys["engineer"]) as c:
        r = c.post("/api/v1/models", files={"file": ("cell.lgm", fake_model_bytes(version="fake-held"))},
                   data={"product": "cell-held"})
        assert r.status_code == 201, r.text
    c, csrf = _signed_in(station, api_key=station.keys["operator"])
    with closing(c):
        r = c.post("/api/v1/inspections", headers={"X-CSRF-Token": csrf},
                   files={"image": ("part.png", png_bytes(200, seed=79), "image/png")},
                   data={"part_id": "held-upload-3", "line": "L1", "station": "S1", "product": "cell"})
        assert r.status_code == 201, r.text
    # a valid key's large upload is read, and meets the station's own limit (not a 401)
    status, body, _, _, _ = _upload(station.port, "/api/v1/inspections", "image",
                                    {"X-API-Key": station.keys["operator"]}, body_bytes=40 * (1 << 20))
    assert status == 413 and body["error"]["code"] == "upload_too_large", body


@pytest.mark.slow
def test_writes_need_a_key_even_with_open_reads(tmp_path):
    srv = start_fake_station(tmp_path / "data", extra=["--open-reads"])
    try:
        # under this station's 1 MiB limit: the answer is the missing key's
        status, body, _, _, _ = _upload(srv.port, "/api/v1/inspections", "image", {}, body_bytes=512 * 1024)
        assert status == 401, body
        with httpx.Client(base_url=srv.url) as anon:
            assert anon.get("/api/v1/inspections").status_code == 200    # reads stay open
            # and an open-reads stream has no credential to lose: it stays open
            with anon.stream("GET", "/api/v1/events") as s:
                assert s.status_code == 200
                pid = _new_part(srv, "open")
                for ev, data in _events(s.iter_lines()):
                    assert ev != "ended"
                    if f'"part_id":"{pid}"' in data:
                        break
    finally:
        srv.stop()
