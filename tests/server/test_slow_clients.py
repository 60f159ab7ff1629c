"""Slow and stalled clients cannot take the station off the line.

uvicorn timed out only idle kept-alive connections: one that sent half a request's head
and stopped, or a body that stopped, was held for ever, with no key needed. 12,000 of
them took the station's open files, and every part upload and /health was refused until
they closed. These run a real station process with short deadlines (the defaults are
10 s for a head, 30 s for a pause in a body).
"""
from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import httpx
import pytest

from .conftest import HERE, ServerProc, fake_model_bytes, png_bytes, post_part, read_http_head, start_fake_station

SERVE = f"""
import sys
sys.path.insert(0, {str(HERE)!r})
{{before}}
if {{h11}}:     # uvicorn without httptools (a plain install) serves with its h11 protocol
    import uvicorn.protocols.http.auto as auto
    from uvicorn.protocols.http.h11_impl import H11Protocol
    auto.AutoHTTPProtocol = H11Protocol
import lineguard.server.app as app
app.HEADER_TIMEOUT_S = {{head_s}}
app.BODY_STALL_S = {{body_s}}
from fake_inspector import serve_main
serve_main(sys.argv[1:])
"""


def _station(data: Path, head_s: float, body_s: float, before: str = "", h11: bool = False) -> ServerProc:
    return start_fake_station(data, python_args=["-c", SERVE.format(before=before, head_s=head_s, body_s=body_s,
                                                                     h11=h11)])


@pytest.fixture(scope="module", params=["httptools", "h11"])
def quick_station(request, tmp_path_factory):
    """A station whose deadlines are 1 s for a request's head and 2 s for a pause in a body,
    served by each of uvicorn's HTTP protocols."""
    srv = _station(tmp_path_factory.mktemp("slow") / "data", head_s=1, body_s=2, h11=request.param == "h11")
    yield srv
    srv.stop()


def _half_head(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: station\r\n")      # and never the blank line that ends it
    return s


def _until_closed(s: socket.socket) -> bytes:
    """All the server sends until it closes the connection (socket.timeout if it never does)."""
    got = b""
    while chunk := s.recv(65536):
        got += chunk
    return got


def _statuses(got: bytes) -> list[int]:
    """The status of each answer in what a raw client received (answers and bodies run on)."""
    return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", got)]


def _raw_part(key: str, part_id: str, product: str = "cell") -> tuple[bytes, bytes]:
    """A part upload as a raw client sends it: (its head, its body)."""
    boundary = "lineguard-slow-part"
    fields = {"part_id": part_id, "line": "L1", "station": "S1", "product": product}
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                    for k, v in fields.items())
    body += (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="p.png"\r\n'
             f"Content-Type: image/png\r\n\r\n").encode() + png_bytes(60, seed=3) + f"\r\n--{boundary}--\r\n".encode()
    head = (f"POST /api/v1/inspections HTTP/1.1\r\nHost: station\r\nX-API-Key: {key}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    return head, body


def test_a_half_sent_head_is_closed_after_the_deadline_while_parts_and_events_go_on(quick_station):
    srv = quick_station
    with srv.client(srv.keys["operator"]) as c, c.stream("GET", "/api/v1/events") as events:
        assert events.status_code == 200
        slow = [_half_head(srv.port) for _ in range(5)]
        try:
            # the line goes on while they hang
            assert post_part(c, png_bytes(60, seed=1), "during-slow-1").status_code == 201
            assert c.get("/health").status_code == 200
            for s in slow:
                # told why (408), then closed; before, held for as long as the client liked
                assert _until_closed(s).startswith(b"HTTP/1.1 408 ")
        finally:
            for s in slow:
                s.close()
        # the live event stream (open longer than both deadlines) is a request being
        # answered, not a slow client: the next part still reaches it
        assert post_part(c, png_bytes(61, seed=2), "after-slow-1").status_code == 201
        lines = events.iter_lines()
        assert any("after-slow-1" in line for line in lines if line.startswith("data:"))


def test_a_stalled_body_is_cut_and_a_slow_upload_that_keeps_coming_is_not(quick_station):
    srv = quick_station
    # a sign-in (no key needed) that promises 1000 bytes and sends 12
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    try:
        s.sendall(b"POST /api/v1/session HTTP/1.1\r\nHost: station\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n{\"api_key\":\"")
        _until_closed(s)          # closed by the station; before, held for ever
    finally:
        s.close()
    # a part sent in pieces, each pause shorter than the deadline, the whole longer
    head, body = _raw_part(srv.keys["operator"], "slow-upload-1")
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    try:
        s.sendall(head)
        pieces = 8
        step = -(-len(body) // pieces)
        for i in range(pieces):
            s.sendall(body[i * step:(i + 1) * step])
            time.sleep(0.5)
        assert read_http_head(s).startswith(b"HTTP/1.1 201 ")
    finally:
        s.close()


def test_a_flood_of_half_sent_heads_cannot_take_the_open_files(tmp_path):
    # the station's process may hold 256 files; 400 slow connections would take them all,
    # and nothing else would be let in for as long as they hang (a minute here)
    lower = ("import resource\n"
             "resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))")
    srv = _station(tmp_path / "data", head_s=60, body_s=60, before=lower)
    slow: list[socket.socket] = []
    try:
        for _ in range(400):
            try:
                slow.append(_half_head(srv.port))
            except OSError:        # closed by the station as the flood came in
                pass
        with srv.client(srv.keys["operator"]) as c:
            c.timeout = httpx.Timeout(20.0)
            assert c.get("/health").status_code == 200
            assert post_part(c, png_bytes(60, seed=4), "during-flood-1").status_code == 201
    finally:
        for s in slow:
            s.close()
        srv.stop()


def test_a_client_polling_every_few_seconds_on_one_connection_is_always_answered(quick_station):
    """uvicorn closed an idle kept-open connection after 5 s: a dashboard or PLC gateway
    polling every 5 s met the close on its next request ("connection reset", 16 of ~410
    polls in a soak). Idle for longer than that, the connection still answers."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", quick_station.port, timeout=10)
    try:
        conn.request("GET", "/health")
        r = conn.getresponse()
        r.read()
        assert r.status in (200, 503)
        sock = conn.sock
        time.sleep(6)       # idle past uvicorn's 5 s
        conn.request("GET", "/health")
        r = conn.getresponse()
        r.read()
        assert conn.sock is sock        # the same connection, not a new one
    finally:
        conn.close()


def test_a_head_sent_while_a_part_is_inspected_does_not_replace_the_parts_verdict(quick_station):
    """A client that sends its next request before the answer to its part (HTTP
    pipelining) is not a slow client while the part is inspected. Under httptools the
    next head's deadline ran from the connection's start: an inspection longer than the
    deadline was answered 408 instead of its verdict, and the connection closed."""
    srv = quick_station
    with srv.client(srv.keys["engineer"]) as c:
        # a product whose inspection takes twice the 1 s head deadline
        r = c.post("/api/v1/models", files={"file": ("slow.lgm", fake_model_bytes(version="slow-1", delay_s=2.0))},
                   data={"product": "slowcell", "activate": "true"})
        assert r.status_code == 201, r.text
    head, body = _raw_part(srv.keys["operator"], f"pipelined-{srv.port}", product="slowcell")
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    try:
        # the part, then the start of the next request (a head never finished)
        s.sendall(head + body + b"GET /health HTTP/1.1\r\nHost: station\r\n")
        got = _until_closed(s)
    finally:
        s.close()
    assert got.startswith(b"HTTP/1.1 201 "), got[:200]
    # the half-sent head has its deadline from the verdict's answer on: then told and closed
    assert _statuses(got) == [201, 408], got


def test_the_rest_of_a_refused_upload_is_not_taken_for_the_next_requests_head(quick_station):
    """A part over the upload limit is answered 413 before its body is read; a client that
    sends the body anyway may go on with its next request on the same connection. Under
    h11 the read that ended that body was counted as the next request's head: with a few
    KiB of that head it passed 64 KiB, the client got "413 ... 431" and its next request
    was lost with the connection."""
    srv = quick_station
    size = 1_200_000        # over the 1 MiB limit (and its 64 KiB envelope)
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    try:
        s.sendall(b"POST /api/v1/inspections HTTP/1.1\r\nHost: station\r\nX-API-Key: " + srv.keys["operator"].encode()
                  + b"\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % size)
        assert read_http_head(s).startswith(b"HTTP/1.1 413 ")
        tail = 60_000           # the body's last read: under 64 KiB alone, over it with the next head's start
        s.sendall(b"z" * (size - tail))
        time.sleep(0.3)         # read and dropped, so that the tail comes as a read of its own
        s.sendall(b"z" * tail)
        time.sleep(0.2)
        # the next request's head in two pieces, the first with an 8 KiB header (a long cookie)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: station\r\nCookie: " + b"c" * 8000)
        time.sleep(0.2)
        s.sendall(b"\r\nConnection: close\r\n\r\n")
        got = _until_closed(s)
    finally:
        s.close()
    assert _statuses(got) == [200], got[-300:]
