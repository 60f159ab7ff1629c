"""Every request's head on a connection is held to the station's head limit (64 KiB, 431),
not only a head that begins a read.

A walk found the limit checked only on the first head of a read: a request sent behind
another in one send (pipelined), or with the end of a POST's body, was parsed whatever its
size: a 100 KiB header or URL was a 200 (the app was given it) where the same request sent
first was a 431; under httptools a pipelined 100 KB URL was a plain-text 400 that lost the
answer to the request before it, and under h11 a pipelined head that never ended was h11's
own 400. Now each such head gets the 431 a first head gets, in its turn: the requests
before it are answered first, as on a kept-alive connection. A body (a 166 KB part image)
is not a head, and a 60 KB header behind another request passes as it does first.

These run a real station process under each of uvicorn's HTTP protocols.
"""
from __future__ import annotations

import json
import socket

import pytest

from .conftest import png_bytes
from .test_slow_clients import _station, _statuses

BIG_HEADER = b"X-Filler: " + b"a" * 100_000 + b"\r\n"          # over the 64 KiB head limit
GET = b"GET /health HTTP/1.1\r\nHost: station\r\n\r\n"
LAST = b"Connection: close\r\n\r\n"       # ends a request after which the station closes


@pytest.fixture(scope="module", params=["httptools", "h11"])
def station(request, tmp_path_factory):
    srv = _station(tmp_path_factory.mktemp("heads") / "data", head_s=1, body_s=2, h11=request.param == "h11")
    yield srv
    srv.stop()


def _exchange(port: int, sent: bytes) -> bytes:
    """Everything the station answers to ``sent`` (one send) until it closes the connection;
    it may close before it has read all of an oversize head (a reset then)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    got = b""
    try:
        try:
            s.sendall(sent)
        except OSError:
            pass
        try:
            while chunk := s.recv(65536):
                got += chunk
        except ConnectionResetError:
            pass
    finally:
        s.close()
    return got


def _refused_431(got: bytes) -> None:
    """The last answer in ``got`` is the station's JSON 431, ending the connection."""
    head, body = got[got.rindex(b"HTTP/1.1 "):].split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 431 ") and b"connection: close" in head.lower(), head
    assert json.loads(body)["error"]["code"] == "header_too_large", body


def _part(key: str, part_id: str) -> bytes:
    """A part upload whose body (a 166 KB image) is larger than the head limit."""
    boundary = "lineguard-head-limits"
    fields = {"part_id": part_id, "line": "L1", "station": "S1", "product": "cell"}
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                    for k, v in fields.items())
    body += (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="p.png"\r\n'
             f"Content-Type: image/png\r\n\r\n").encode() + png_bytes(60, size=300, seed=7) + \
        f"\r\n--{boundary}--\r\n".encode()
    assert len(body) > 128 * 1024
    return (f"POST /api/v1/inspections HTTP/1.1\r\nHost: station\r\nX-API-Key: {key}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body


def test_a_pipelined_request_with_a_100_kib_header_gets_431_after_the_answers_before_it(station):
    # a 60 KB header passes behind another request as it does first; 100 KiB does not (before:
    # [200, 200, 200, 200], the app given the 100 KiB header)
    ok = b"GET /health HTTP/1.1\r\nHost: station\r\nX-Filler: " + b"a" * 60_000 + b"\r\n\r\n"
    big = b"GET /health HTTP/1.1\r\nHost: station\r\n" + BIG_HEADER + b"\r\n"
    got = _exchange(station.port, GET + ok + big + b"GET /health HTTP/1.1\r\nHost: station\r\n" + LAST)
    assert _statuses(got) == [200, 200, 431], got[-400:]
    _refused_431(got)


def test_an_oversize_head_sent_with_the_end_of_a_parts_body_gets_431_after_its_verdict(station):
    # the part's 166 KB body is not a head (its verdict comes); the head after it, in the
    # same send, is held to the limit (before: [201, 200])
    sent = _part(station.keys["operator"], f"before-big-head-{station.port}") \
        + b"GET /health HTTP/1.1\r\nHost: station\r\n" + BIG_HEADER + LAST
    got = _exchange(station.port, sent)
    assert _statuses(got) == [201, 431], got[-400:]
    _refused_431(got)


def test_a_pipelined_url_over_the_limit_gets_431_after_the_answer_before_it(station):
    # before: [200, 200] under h11; under httptools a plain-text 400 and no answer to the
    # GET before it
    url = b"/health?filter=" + b"a" * 100_000
    got = _exchange(station.port, GET + b"GET " + url + b" HTTP/1.1\r\nHost: station\r\n" + LAST)
    assert _statuses(got) == [200, 431], got[-400:]
    _refused_431(got)


def test_a_pipelined_head_that_never_ends_gets_431_after_the_answer_before_it(station):
    # 300 KB of one header and never its end: before, under httptools a 431 with no answer to
    # the GET before it; under h11 its own plain-text 400
    got = _exchange(station.port, GET + b"GET /health HTTP/1.1\r\nHost: station\r\nX-Filler: " + b"a" * 300_000)
    assert _statuses(got) == [200, 431], got[-400:]
    _refused_431(got)


def test_an_oversize_head_after_the_rest_of_a_refused_upload_gets_431(station):
    # a part over the upload limit is answered 413 before its body is read; the client sends
    # the body anyway and then a 100 KiB head: h11 parsed that head within the read that
    # ended the body (before: [413, 200])
    size = 1_200_000        # over the fake station's 1 MiB upload limit
    head = (b"POST /api/v1/inspections HTTP/1.1\r\nHost: station\r\nX-API-Key: " + station.keys["operator"].encode()
            + b"\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % size)
    got = _exchange(station.port, head + b"z" * size + b"GET /health HTTP/1.1\r\nHost: station\r\n" + BIG_HEADER + LAST)
    assert _statuses(got) == [413, 431], got[-400:]
    _refused_431(got)


def test_a_chunked_parts_trailers_over_the_limit_are_not_a_head_waiting_its_turn(station):
    # a chunked upload's trailers come as headers after its body: counted as a pipelined head,
    # 100 KB of them stopped the parser mid-request, whose 431 then waited for that very
    # request's answer: no answer, the connection cut when its body "stopped coming" (httptools)
    plain = _part(station.keys["operator"], f"chunked-trailers-{station.port}")
    head, body = plain.split(b"\r\n\r\n", 1)
    head = head.replace(b"Content-Length: %d" % len(body), b"Transfer-Encoding: chunked")
    chunked = b"%x\r\n" % len(body) + body + b"\r\n0\r\n" + b"X-Trailer: " + b"t" * 100_000 + b"\r\n\r\n"
    got = _exchange(station.port, head + b"\r\n\r\n" + chunked + b"GET /health HTTP/1.1\r\nHost: station\r\n" + LAST)
    statuses = _statuses(got)
    # answered at once either way: the part (httptools takes trailers) or h11's own refusal of them
    assert statuses and statuses[0] in (201, 400), got[-400:]
