"""`lineguard serve` on a port it cannot listen on.

A second station started on a port another one held said "new station: ... created it",
printed its banner, then uvicorn's raw "ERROR: [Errno 98] ... address already in use" and
exit 3, leaving a new, empty station folder behind (its database migrated, its --model
registered). serve now checks every port it will listen on (--port, --modbus-port,
--opcua-port) before it makes or opens anything, and refuses with one line saying which
port and what to do, exit 3 (the README's "stopped by the machine"). A port taken between
that check and the real bind gets the same line, with the station closed again; so do an
address that is not this PC's and a port below 1024 without the right to it.

The ports are held by a listening socket on a port the system picks, so no fixed port can
clash with another test or a service on the machine.
"""
from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import threading

import pytest

from cli_runner import run_in_process, run_serve_refusal

pytest.importorskip("fastapi")


@pytest.fixture
def held():
    """A port another program listens on (127.0.0.1), as a running station's is."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _the_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"not one line:\n{stderr}"
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def test_a_taken_port_is_refused_in_one_line_before_any_station_is_made(held, tmp_path, fitted_model_path):
    """The walk's command, in a process of its own as an operator runs it: nothing made."""
    data = tmp_path / "station2"
    r = subprocess.run([sys.executable, "-m", "lineguard", "serve", "--data", str(data), "--model",
                        str(fitted_model_path), "--product", "tile", "--port", str(held)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "COLUMNS": "1000"})
    assert r.returncode == 3, r.stdout + r.stderr
    line = _the_line(r.stderr)
    assert f"--port {held}: 127.0.0.1:{held} is taken (address already in use)" in line
    # what to do: another --port, or ask what runs there
    assert "another --port" in line and f"`curl http://127.0.0.1:{held}/health` tells which" in line
    assert r.stdout == ""                      # no "new station", no banner
    assert not data.exists()                   # no folder, so no database migrated, no model registered
    assert "Errno" not in r.stderr and "Traceback" not in r.stderr


def test_a_station_on_every_network_is_asked_for_on_this_pc(held, tmp_path):
    # another program on 127.0.0.1 takes the port for 0.0.0.0 too; curl 0.0.0.0 asks nothing useful
    r = run_serve_refusal("--data", tmp_path / "s", "--host", "0.0.0.0", "--port", held)
    assert r.returncode == 3, r.stderr
    line = _the_line(r.stderr)
    assert f"0.0.0.0:{held} is taken" in line and f"curl http://127.0.0.1:{held}/health" in line
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("option", ["--modbus-port", "--opcua-port"])
def test_a_taken_plc_port_is_refused_before_the_station_opens(held, tmp_path, option):
    cam = tmp_path / "cam"
    cam.mkdir()
    r = run_serve_refusal("--data", tmp_path / "s", "--product", "cell", "--line", "L1", "--port", _free_port(),
                          option, held, "--plc-images", cam)
    assert r.returncode == 3, r.stderr
    line = _the_line(r.stderr)
    assert f"{option} {held}: 127.0.0.1:{held} is taken (address already in use)" in line
    assert f"another {option}" in line
    assert not (tmp_path / "s").exists()


def test_an_address_not_this_pcs_is_refused_in_one_line(tmp_path):
    # 192.0.2.1: TEST-NET-1, kept for documentation, never a PC's address
    r = run_serve_refusal("--data", tmp_path / "s", "--host", "192.0.2.1", "--port", _free_port())
    assert r.returncode == 3, r.stderr
    line = _the_line(r.stderr)
    assert "--host 192.0.2.1 is not an address of this PC" in line and "0.0.0.0" in line
    assert not (tmp_path / "s").exists()


def test_a_port_below_1024_without_the_right_is_refused_in_one_line(tmp_path, monkeypatch):
    # as an unprivileged user binds port 80 (the suite may run as root, which may)
    real_bind = socket.socket.bind

    def bind(sock, address):
        if address[1] == 80:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_bind(sock, address)
    monkeypatch.setattr(socket.socket, "bind", bind)
    r = run_serve_refusal("--data", tmp_path / "s", "--port", "80")
    assert r.returncode == 3, r.stderr
    line = _the_line(r.stderr)
    assert "--port 80: a port below 1024 needs root or the right to listen there" in line
    assert "1024 or above" in line and "CAP_NET_BIND_SERVICE" in line
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("args, said", [
    (["--port", "70000"], "70000 is not a TCP port"),
    (["--port", "{p}", "--modbus-port", "{p}"], "is the web server's --port too"),
])
def test_a_port_that_cannot_be_meant_is_a_mistake_in_the_command(tmp_path, args, said):
    p = str(_free_port())
    cam = tmp_path / "cam"
    cam.mkdir()
    extra = ["--product", "cell", "--line", "L1", "--plc-images", cam] if "--modbus-port" in args else []
    r = run_serve_refusal("--data", tmp_path / "s", *[a.format(p=p) for a in args], *extra)
    assert r.returncode == 2 and said in r.stderr, r.stderr
    assert not (tmp_path / "s").exists()


class _Station:
    """What open_station returns, as far as serve's start-up uses it."""

    def __init__(self):
        self.closed = False
        self.models_loaded = False

    def load_active_models(self):
        self.models_loaded = True

    def close(self):
        self.closed = True


def test_a_port_taken_while_the_station_opens_gets_the_same_line_and_the_station_closed(tmp_path, monkeypatch):
    """Free at the check, taken before the bind (another station started during a long
    migration or --db-wait): the same line and exit code, the station closed again and
    none of its threads started, nothing served."""
    import lineguard.server.app as server_app
    port = _free_port()
    station = _Station()
    taker: list[socket.socket] = []

    def open_station(*_a, **_k):
        sock = socket.socket()
        sock.bind(("127.0.0.1", port))
        sock.listen()
        taker.append(sock)
        return station
    monkeypatch.setattr(server_app, "open_station", open_station)
    monkeypatch.setattr(server_app, "create_app", lambda *a, **k: pytest.fail("the server was started"))
    before = set(threading.enumerate())
    try:
        r = run_in_process("serve", "--data", tmp_path / "s", "--port", port, "--min-free-gb", "0")
    finally:
        for sock in taker:
            sock.close()
    assert r.returncode == 3, r.stdout + r.stderr
    line = _the_line(r.stderr)
    assert f"--port {port}: 127.0.0.1:{port} is taken (address already in use)" in line
    assert station.closed and not station.models_loaded
    assert "lineguard station on" not in r.stdout       # no banner for a station that does not run
    assert not [t for t in threading.enumerate() if t not in before and t.is_alive()]


def test_the_server_taken_between_bind_and_listen_raises_the_line_not_uvicorns(tmp_path):
    """run_server itself: a second program can bind beside a socket that does not listen yet
    and listen first; then, and on a port already taken, one line (uvicorn logged a raw
    "[Errno 98]" and exited the process itself)."""
    from fastapi import FastAPI

    from lineguard.server.app import PortRefused, bind_port, run_server
    ours = bind_port("127.0.0.1", 0)
    port = ours[0].getsockname()[1]
    other = socket.socket()
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    other.bind(("127.0.0.1", port))
    other.listen()
    try:
        with pytest.raises(PortRefused, match=rf"--port {port}: 127.0.0.1:{port} is taken"):
            run_server(FastAPI(), host="127.0.0.1", port=port, sockets=ours)
        assert all(s.fileno() == -1 for s in ours)       # closed, not left bound
        with pytest.raises(PortRefused, match=rf"--port {port}: 127.0.0.1:{port} is taken"):
            run_server(FastAPI(), host="127.0.0.1", port=port)
    finally:
        other.close()


def test_host_every_ipv6_address_still_takes_ipv4_clients():
    """`--host ::` was bound IPv6-only: IPv4 clients (a PLC, a hot folder PC) were refused
    where uvicorn's own bind had taken both."""
    from lineguard.server.app import PortRefused, bind_port
    try:
        socks = bind_port("::", 0)
    except PortRefused as exc:
        pytest.skip(f"no IPv6 on this machine: {exc}")
    try:
        (sock,) = socks
        sock.listen()
        with socket.create_connection(("127.0.0.1", sock.getsockname()[1]), timeout=5):
            pass
    finally:
        for s in socks:
            s.close()


def test_python_m_lineguard_server_on_a_port_taken_says_so_in_one_line(tmp_path):
    """`python -m lineguard.server` (containers, the tests' own stations) ended with a
    traceback of PortRefused once the port check moved out of uvicorn."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "lineguard.server", "--data", str(tmp_path / "st"),
                            "--port", str(port)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, (r.returncode, r.stderr[-2000:])
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert "Traceback" not in r.stderr and lines[-1].startswith("error: --port"), r.stderr[-2000:]
    assert "is taken" in lines[-1], lines[-1]
