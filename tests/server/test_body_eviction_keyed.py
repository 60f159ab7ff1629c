"""At the connection cap, a request body waited for WITH a credential may be closed once
past its grace (app.BODY_GRACE_S), and not before.

Any header passes for a credential at the protocol (the route checks it later): a made-up
API key on 300 trickled sign-ins kept them out of reach of the cap for as long as their
bytes bought them time, so the station's open files were theirs. Past its grace a keyed
body is a slow client like any other; within it, a camera PC's part upload is not one.

A real station process, a cap of 8 connections; what is counted is connections and
bytes, not seconds: the pauses (past a 1 s grace; for the station to begin its wait) only
have to be long enough.
"""
from __future__ import annotations

import socket
import time

import pytest

from .conftest import HERE, start_fake_station

CAP = 8

SERVE = f"""
import sys
sys.path.insert(0, {str(HERE)!r})
import lineguard.server.app as app
app.MAX_CONNECTIONS = {CAP}
app.BODY_GRACE_S = {{grace}}
app.BODY_STALL_S = 120      # no keyed body here is cut for a pause: only the cap may close it
app.MIN_BODY_RATE = 1       # each byte sent buys a second: nor for its rate
from fake_inspector import serve_main
serve_main(sys.argv[1:])
"""

# a sign-in (no key needed to reach it) with a made-up key: a credential to the protocol
KEYED_SIGN_IN = (b"POST /api/v1/session HTTP/1.1\r\nHost: station\r\nContent-Type: application/json\r\n"
                 b"X-API-Key: lg_made_up_not_checked_yet\r\nTransfer-Encoding: chunked\r\n\r\n")
# 200 bytes of a body that is not over: 200 s of credit at MIN_BODY_RATE 1
FIRST_PIECE = b"c8\r\n{" + b" " * 199 + b"\r\n"


def _station(tmp_path, grace: float):
    return start_fake_station(tmp_path / "data", python_args=["-c", SERVE.format(grace=grace)])


def _keyed_body_waiting(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(KEYED_SIGN_IN + FIRST_PIECE)
    return s


def _flood(port: int, n: int) -> list[socket.socket]:
    """``n`` connections that send nothing (each waits for its head: a slow client's)."""
    out = []
    for _ in range(n):
        try:
            out.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        except OSError:
            pass
    return out


def _closed(s: socket.socket, wait_s: float) -> bool:
    """Whether the station closes ``s`` (EOF or reset) within ``wait_s``, reading whatever it says."""
    s.settimeout(wait_s)
    try:
        while s.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_a_keyed_body_past_its_grace_is_closed_at_the_connection_cap(tmp_path):
    srv = _station(tmp_path, grace=1.0)
    flood: list[socket.socket] = []
    try:
        keyed = _keyed_body_waiting(srv.port)
        time.sleep(1.5)             # past its 1 s grace (its deadline is 200 s off: 200 bytes at 1 B/s)
        keyed.sendall(b"1\r\n \r\n")    # a byte more: the station waits for the next one past the grace
        time.sleep(0.5)             # its wait begun before the others come (the cap closes the oldest first)
        # more connections than the cap, in turn: each one over it closes the slowest waiting,
        # the oldest first; the keyed body is among them from the moment its wait began past
        # the grace, so before the cap has closed them all it must be its turn
        flood = _flood(srv.port, 3 * CAP)
        assert _closed(keyed, 15), ("a body sent with a credential, past its grace, was kept open at the "
                                    f"connection cap ({CAP}) while {len(flood)} connections came in")
    finally:
        for s in flood:
            s.close()
        srv.stop()


def test_a_keyed_body_within_its_grace_is_not_closed_at_the_connection_cap(tmp_path):
    # a camera PC's part upload in its first minute is no slow client: the waiting heads go first
    srv = _station(tmp_path, grace=60.0)
    flood: list[socket.socket] = []
    try:
        keyed = _keyed_body_waiting(srv.port)
        time.sleep(0.5)             # its wait begun before the others come: the oldest, were it one to close
        flood = _flood(srv.port, 3 * CAP)
        # the cap has closed the oldest of them (were the keyed body one to close, it would be
        # gone before it): the station has seen them come, and the body is finished only now
        assert _closed(flood[0], 15), "the connection cap closed none of the waiting connections"
        keyed.settimeout(15)
        # the rest of the body: the station answers it (the made-up key is the route's to refuse)
        keyed.sendall(b"1\r\n}\r\n0\r\n\r\n")
        answer = b""
        try:
            while b"\r\n" not in answer and (chunk := keyed.recv(65536)):
                answer += chunk
        except ConnectionResetError:
            pass
        assert answer.startswith(b"HTTP/1.1 "), ("a body sent with a credential within its grace was closed "
                                                 f"at the connection cap: {answer[:200]!r}")
    finally:
        for s in flood:
            s.close()
        srv.stop()


if __name__ == "__main__":   # pragma: no cover
    pytest.main([__file__, "-q"])
