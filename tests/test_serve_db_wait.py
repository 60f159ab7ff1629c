"""`lineguard serve` started before its database server: it waits, then starts.

A station PC is switched on with the line and its PostgreSQL server (another PC) may come
up minutes later. serve ended at once (exit 2, "cannot use the database ... Connection
refused"), and the station stayed down until someone typed the command again. Now it waits
for a server that does not take connections yet (nothing listening, starting up), saying
what it waits for without the password, and starts once it does; a refusal no waiting
mends (a wrong password, no such database, a newer schema) still ends it at once; SIGTERM
during the wait ends it cleanly; --db-wait bounds the wait.

The database server here is a gate on a port of its own: closed, then answering as a
PostgreSQL server that is starting up, then a proxy to the test PostgreSQL.
"""
from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from cli_runner import run_in_process

pytest.importorskip("fastapi")

PG_HOST, PG_PORT = "127.0.0.1", 5432
SECRET = "wait-s3cret"          # trust auth takes any password: it must never be printed


def _pg_here() -> bool:
    try:
        import psycopg
        with psycopg.connect(f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test", connect_timeout=3):
            return True
    except Exception:  # noqa: BLE001 - any failure means "not here"
        return False


needs_pg = pytest.mark.skipif(not _pg_here(), reason="PostgreSQL is not reachable at 127.0.0.1:5432")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gate:
    """A database server's port: ``answer`` None proxies to the test PostgreSQL, else
    every connection gets that (SQLSTATE, message) as a FATAL error, as a server starting
    up answers. ``knocks`` counts the connections taken; ``knocked`` is set at each."""

    def __init__(self, port: int, answer: tuple[str, str] | None):
        self.answer = answer
        self.knocks = 0
        self.knocked = threading.Event()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.knocks += 1
            self.knocked.set()
            threading.Thread(target=self._serve, args=(conn, self.answer), daemon=True).start()

    @staticmethod
    def _read(conn: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise OSError("closed")
            data += chunk
        return data

    def _serve(self, conn: socket.socket, answer) -> None:
        try:
            if answer is None:
                upstream = socket.create_connection((PG_HOST, PG_PORT))
                for a, b in ((conn, upstream), (upstream, conn)):
                    threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()
                return
            while True:      # an SSL or GSS request first: "no", then the start-up message
                size, code = struct.unpack("!II", self._read(conn, 8))
                self._read(conn, size - 8)
                if code not in (80877103, 80877104):
                    break
                conn.sendall(b"N")
            state, message = answer
            fields = b"".join(k + v.encode() + b"\0" for k, v in
                              ((b"S", "FATAL"), (b"V", "FATAL"), (b"C", state), (b"M", message))) + b"\0"
            conn.sendall(b"E" + struct.pack("!I", len(fields) + 4) + fields)
        except OSError:
            pass
        if answer is not None:
            conn.close()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        try:       # wakes the accepting thread: a socket closed under it listened on
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class Served:
    """`lineguard serve` (or ``verb``: watch, camera) in a process of its own (the wait is its
    start-up, signals and all), its stderr read line by line as it comes."""

    def __init__(self, *args: str, cwd: Path, verb: str = "serve"):
        self.lines: list[str] = []
        self.said = threading.Condition()
        self.proc = subprocess.Popen([sys.executable, "-m", "lineguard", verb, *args], cwd=cwd,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, "COLUMNS": "1000"})
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self.said:
                self.lines.append(line.rstrip("\n"))
                self.said.notify_all()
        with self.said:
            self.lines.append(None)          # the end of its output
            self.said.notify_all()

    def wait_for(self, text: str, timeout: float = 120) -> str:
        """The first line holding ``text``; fails if the process ends or is silent first."""
        with self.said:
            self.said.wait_for(lambda: None in self.lines or any(text in ln for ln in self.lines), timeout)
            line = next((ln for ln in self.output() if text in ln), None)
        assert line is not None, (f"serve {'ended' if None in self.lines else f'went on {timeout} s'} without "
                                  f"saying {text!r}:\n" + "\n".join(self.output()))
        return line

    def output(self) -> list[str]:
        return [ln for ln in self.lines if ln is not None]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=120)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


@pytest.fixture
def schema():
    """A private schema on the test PostgreSQL, dropped afterwards."""
    name = f"lg_test_{uuid.uuid4().hex[:10]}"
    yield name
    from lineguard.line.db import Database
    db = Database(f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test", schema=name)
    db.drop_schema()
    db.dispose()


@needs_pg
def test_serve_waits_for_a_database_server_that_comes_up_after_it_then_answers_health(tmp_path, schema):
    import httpx
    db_port, port = _free_port(), _free_port()
    url = f"postgresql://postgres:{SECRET}@127.0.0.1:{db_port}/test"
    served = Served("--data", str(tmp_path / "st"), "--db", url, "--db-schema", schema, "--port", str(port),
                    "--min-free-gb", "0", cwd=tmp_path)
    gate = None
    try:
        # the port closed: the station says once what it waits for, and serves nothing meanwhile
        waiting = served.wait_for("waiting:")
        assert f"127.0.0.1:{db_port}" in waiting and "Connection refused" in waiting, waiting
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
        # the port open, the server starting up: still waited for, not a refusal that ends it
        gate = Gate(db_port, ("57P03", "the database system is starting up"))
        assert gate.knocked.wait(60), "\n".join(served.output())
        gate.knocked.clear()
        assert gate.knocked.wait(60), "\n".join(served.output())
        assert served.proc.poll() is None, "\n".join(served.output())
        # the server up: the station starts and answers
        gate.answer = None
        served.wait_for("took the connection")
        served.wait_for("lineguard station on")
        for _ in range(600):
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
                break
            except httpx.TransportError:
                if served.proc.poll() is not None:
                    break
                threading.Event().wait(0.1)
        assert served.proc.poll() is None, "\n".join(served.output())
        assert r.status_code == 200, r.text
        assert served.stop() == 0, "\n".join(served.output())
    finally:
        served.stop()
        if gate is not None:
            gate.close()
    said = "\n".join(served.output())
    assert SECRET not in said and "Traceback" not in said, said
    assert said.count("does not take connections yet") == 1, said        # once, then once a minute


def test_sigterm_while_serve_waits_for_its_database_ends_it_cleanly(tmp_path):
    served = Served("--data", str(tmp_path / "st"), "--db", f"postgresql://lg:{SECRET}@127.0.0.1:{_free_port()}/plant",
                    "--port", str(_free_port()), cwd=tmp_path)
    try:
        served.wait_for("waiting:")
    finally:
        code = served.stop()
    said = "\n".join(served.output())
    assert code == 0, said
    assert "stopped while waiting for the database server" in said and "did not start" in said, said
    assert "Traceback" not in said and "Aborted" not in said and SECRET not in said, said


def test_serve_gives_up_when_db_wait_runs_out_and_db_wait_0_fails_at_once(tmp_path):
    db_port = _free_port()
    url = f"postgresql://lg:{SECRET}@127.0.0.1:{db_port}/plant"
    r = run_in_process("serve", "--data", tmp_path / "st", "--db", url, "--db-wait", "2", cwd=tmp_path)
    assert r.returncode == 75, r.stderr
    assert "waiting:" in r.stderr and "for up to 2 s" in r.stderr, r.stderr
    assert f"127.0.0.1:{db_port} (database plant) did not take connections in 2 s" in r.stderr, r.stderr
    assert SECRET not in r.stderr + r.stdout and "lineguard station on" not in r.stdout
    # 0: as before the wait was added, one line and exit 2
    r = run_in_process("serve", "--data", tmp_path / "st", "--db", url, "--db-wait", "0", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot use the database"), r.stderr


@needs_pg
@pytest.mark.parametrize("case", ["no such database", "no such user", "newer schema", "wrong password"])
def test_a_refusal_no_waiting_mends_ends_serve_at_once(tmp_path, schema, case):
    """Given a long --db-wait, a refusal still ends serve at once (exit 2) saying why: had it
    waited, it would end after the wait (exit 75) instead."""
    gate = None
    url = f"postgresql://postgres:{SECRET}@{PG_HOST}:{PG_PORT}/test"
    if case == "no such database":
        url = f"postgresql://postgres:{SECRET}@{PG_HOST}:{PG_PORT}/lg_no_such_db_{uuid.uuid4().hex[:6]}"
        why = "does not exist"
    elif case == "no such user":
        url = f"postgresql://lg_nobody_{uuid.uuid4().hex[:6]}:{SECRET}@{PG_HOST}:{PG_PORT}/test"
        why = "does not exist"
    elif case == "wrong password":     # the test server trusts everyone: a server of its own refuses it
        port = _free_port()
        gate = Gate(port, ("28P01", 'password authentication failed for user "postgres"'))
        url = f"postgresql://postgres:{SECRET}@127.0.0.1:{port}/test"
        why = "password authentication failed"
    else:
        import psycopg
        with psycopg.connect(f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test", autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
            conn.execute(f'CREATE TABLE "{schema}".alembic_version (version_num varchar(32) PRIMARY KEY)')
            conn.execute(f"INSERT INTO \"{schema}\".alembic_version VALUES ('9999_from_a_newer_lineguard')")
        why = "upgraded by a newer lineguard"
    try:
        r = run_in_process("serve", "--data", tmp_path / "st", "--db", url, "--db-schema", schema,
                           "--db-wait", "20", cwd=tmp_path)
    finally:
        if gate is not None:
            gate.close()
    assert r.returncode == 2, r.stderr
    assert why in r.stderr and r.stderr.startswith("error:"), r.stderr
    assert "waiting" not in r.stderr and SECRET not in r.stderr + r.stdout, r.stderr


@pytest.mark.parametrize("answer, waited", [
    (("57P03", "the database system is starting up"), True),
    (("57P03", "the database system is not yet accepting connections"), True),
    (("53300", "sorry, too many clients already"), True),
    (("28P01", 'password authentication failed for user "line"'), False),
    (("28000", 'no pg_hba.conf entry for host "10.0.0.7", user "line", database "plant", no encryption'), False),
    (("3D000", 'database "plant" does not exist'), False),
])
def test_which_answers_of_a_database_server_are_waited_for(answer, waited):
    from lineguard.line.db import knock, not_up_yet
    port = _free_port()
    assert not_up_yet(knock(f"postgresql://line:{SECRET}@127.0.0.1:{port}/plant", timeout_s=5)) == "Connection refused"
    gate = Gate(port, answer)
    try:
        err = knock(f"postgresql://line:{SECRET}@127.0.0.1:{port}/plant", timeout_s=5)
    finally:
        gate.close()
    assert err is not None
    assert not_up_yet(err) == (answer[1] if waited else None)
