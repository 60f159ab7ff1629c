"""A port that takes every connection and never says a word: a server PC hung, a firewall
dropping packets after the handshake, or a program of another protocol. Shared by the
tests of what waits on such a port (serve --db-wait, rescore's Ray address)."""
from __future__ import annotations

import socket
import threading
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def silent_server() -> Iterator[int]:
    """Its port, while it listens; every connection it took is closed after."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    held: list[socket.socket] = []

    def take() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            held.append(conn)
    threading.Thread(target=take, daemon=True).start()
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()
        for conn in held:
            conn.close()
