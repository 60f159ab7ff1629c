"""A PostgreSQL server gone silent mid-shift: how long the station's next uses of the database wait.

    sudo python -m benchmarks.silent_db_bench [--wait-s 120] [--old-src OLD/src]

Silent, not down: a hung PC, a pulled cable, a firewall dropping packets. Nothing answers and
nothing refuses, so only a timeout ends the wait. The station's ``Database`` connects to the
test PostgreSQL (127.0.0.1:5432) through a relay on a port of its own and reads once; then
every packet to and from that port is dropped (two iptables rules, removed at the end:
root and iptables needed; nothing else on the machine is touched) and the next read is
timed, up to ``--wait-s``, then the three reads after it (the parts behind it). ``--old-src``
runs the same in a second process on another checkout's ``src`` (``git archive COMMIT src |
tar -x -C OLD``), for before/after.
Results go to benchmarks/results/silent-db.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _relay(a: socket.socket, b: socket.socket) -> None:
    try:
        while (data := a.recv(65536)):
            b.sendall(data)
    except OSError:
        pass


def _relay_to_postgres() -> int:
    """A port whose connections are passed to the test PostgreSQL: the one the rules silence."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(8)

    def take() -> None:
        while True:
            c, _ = lst.accept()
            u = socket.create_connection(("127.0.0.1", 5432))
            threading.Thread(target=_relay, args=(c, u), daemon=True).start()
            threading.Thread(target=_relay, args=(u, c), daemon=True).start()
    threading.Thread(target=take, daemon=True).start()
    return lst.getsockname()[1]


def measure(wait_s: float, next_reads: int = 3) -> dict:
    from sqlalchemy import text

    from lineguard.line.db import Database
    port = _relay_to_postgres()
    db = Database(f"postgresql://postgres@127.0.0.1:{port}/test")
    with db.session() as s:
        s.execute(text("SELECT 1"))
    rules = [["INPUT", "-p", "tcp", "--dport", str(port), "-j", "DROP"],
             ["INPUT", "-p", "tcp", "--sport", str(port), "-j", "DROP"]]
    for r in rules:
        subprocess.run(["iptables", "-I", *r], check=True)
    still_waiting = f"still waiting after {wait_s:g} s"

    def read() -> tuple[float, str]:
        said: dict = {}

        def once() -> None:
            try:
                with db.session() as s:
                    s.execute(text("SELECT 1"))
                said["answer"] = "answered"
            except Exception as exc:  # noqa: BLE001 - what the station would be told is the result
                said["answer"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        began = time.monotonic()
        t = threading.Thread(target=once, daemon=True)
        t.start()
        t.join(wait_s)
        return time.monotonic() - began, said.get("answer", still_waiting)
    try:
        took, answer = read()
        # the parts behind it, one after another (a station's next records), while it is silent
        behind = [read() for _ in range(next_reads)] if answer != still_waiting else []
    finally:
        for r in rules:
            subprocess.run(["iptables", "-D", *r], check=True)
    return {"waited_s": round(took, 1), "answer": answer,
            "next_reads_waited_s": [round(t, 2) for t, _ in behind],
            "next_answer": behind[-1][1] if behind else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wait-s", type=float, default=120.0)
    ap.add_argument("--old-src", type=Path, help="another checkout's src, run the same for comparison")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)     # the child's own run
    args = ap.parse_args()
    if shutil.which("iptables") is None or os.geteuid() != 0:
        raise SystemExit("silent_db_bench drops packets with iptables: run it as root with Debian's iptables "
                         "installed (apt-get install iptables)")
    if args.one:
        print(json.dumps(measure(args.wait_s)))
        return
    out = {"new": measure(args.wait_s)}
    if args.old_src:
        env = {**os.environ, "PYTHONPATH": str(args.old_src.resolve())}
        run = subprocess.run([sys.executable, "-m", "benchmarks.silent_db_bench", "--one", "--wait-s", str(args.wait_s)],
                             env=env, capture_output=True, text=True, check=True)
        out["old"] = json.loads(run.stdout.strip().splitlines()[-1])
    out["machine"] = f"{platform.machine()}, {platform.python_version()}"
    for k in ("old", "new"):
        if k in out:
            print(f"{k}: {out[k]['waited_s']} s, {out[k]['answer']}; the next reads "
                  f"{out[k]['next_reads_waited_s']} s, {out[k]['next_answer']}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "silent-db.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
