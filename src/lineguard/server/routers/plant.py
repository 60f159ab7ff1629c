"""The plant view: this station beside the plant's other stations (serve --peer NAME=URL).

A station's pages, /health and alarms hold its own line only: with three stations an
engineer kept three tabs and three keys, a line's NG-run alarms went unseen from the
next line's screen, and a station killed (-9) went unseen until it was started again.
Here each peer's /health (open, no key) is asked by this station, all at once, each for
at most PEER_WAIT_S, its answer read up to MAX_PEER_BYTES and taken field by field: a
peer that is down, slow, wrong or hostile gives its own row's words, never the page's
failure. When each peer last answered is kept in memory (since this station started).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import math
from typing import Any, Optional

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from ...line.config import peer_list
from ...line.orm import iso_utc
from ...line.station import Station
from ..deps import get_station, known_query_only, reader
from ..schemas import errors

# a peer's whole answer (connect, headers, body): the page refreshes every 10 s, and one
# station switched off must not hold the others' rows
PEER_WAIT_S = 2.0


@functools.lru_cache(maxsize=1)
def _peer_tls() -> Any:
    """The TLS context for peers' https URLs, made once: httpx makes one per client, 18 ms of
    CPU reading the CA bundle again at every refresh of every open plant view."""
    import httpx
    return httpx.create_ssl_context()


# a station's /health is a few KiB; more is not one (a wrong URL: a file server, a camera)
MAX_PEER_BYTES = 256 * 1024
# what is kept of a peer's text: a fault's words, its name, the alarm kinds
TEXT_MAX, NAME_MAX, FAULTS_MAX, KINDS_MAX = 400, 80, 20, 20
STATUSES = ("ok", "degraded", "fault")

router = APIRouter(prefix="/api/v1", tags=["system"])


class PlantAlarms(BaseModel):
    active: int
    by_kind: dict[str, int]
    past_escalation: int
    oldest_waiting_min: Optional[float] = None


class PlantStation(BaseModel):
    name: str
    url: Optional[str] = None
    page: str
    this_station: bool
    reachable: bool
    status: str
    level: str
    reasons: list[str]
    problem: Optional[str] = None
    faults: dict[str, str]
    alarms: Optional[PlantAlarms] = None
    version: Optional[str] = None
    last_answer_at: Optional[str] = None
    unreachable_since: Optional[str] = None
    # when its newest part was recorded, and how long ago by its own clock (null: none, or not said)
    last_part_at: Optional[str] = None
    last_part_age_s: Optional[float] = None


class PlantOut(BaseModel):
    checked_at: str
    peers_configured: int
    how_to_add: str
    stations: list[PlantStation]


HOW_TO_ADD = ("Start this station with serve --peer NAME=URL for each other station (e.g. --peer "
              "line2=http://10.0.0.12:8000), or set LINEGUARD_PEERS=line2=http://10.0.0.12:8000,"
              "line3=http://10.0.0.13:8000; then restart it.")


# the alarm kinds in the plant's words, as the line view says them (web/line.js KIND): the
# reasons showed "(ng_run 1, drift 1)" to operators; the codes stay in alarms.by_kind
ALARM_WORDS = {"ng_run": "rejected parts in a row", "ng_rate": "high NG rate", "photo": "check the camera",
               "no_verdict": "parts rejected without a verdict", "test_part": "test part judged wrong",
               "drift": "part scores drifting"}


def alarm_words(by_kind: dict[str, int]) -> str:
    """A station's waiting alarms by kind in words, e.g. "rejected parts in a row, part scores
    drifting ×2"; a kind this station does not know (a newer peer's) said by its own name."""
    return ", ".join(ALARM_WORDS.get(k, k.replace("_", " ")) + (f" ×{n}" if n > 1 else "")
                     for k, n in by_kind.items() if n > 0)


class NotAStation(ValueError):
    """A peer answered, but not as a station's /health (a wrong URL: a file server, a camera)."""


def _cut(value: Any, limit: int = TEXT_MAX) -> str:
    text = "".join(c if c.isprintable() else " " for c in str(value))
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _count(value: Any) -> int:
    """A count from a peer's answer: a whole number 0 or more, else 0 (bool is not one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return 0
    return max(0, min(int(value), 10 ** 9))


def _when(value: Any) -> Optional[str]:
    """A time from a peer's answer: ISO 8601 (taken as UTC without an offset), given back in
    UTC with its Z; else None."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return iso_utc((t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)).astimezone(dt.timezone.utc))
    except (ValueError, OverflowError):     # not a time; a year-1 time with an offset leaves the calendar
        return None


def _age(value: Any) -> Optional[float]:
    """Seconds from a peer's answer: a number 0 or more, else None (bool is not one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return None
    return round(min(float(value), 1e10), 1)


def _taken(body: Any) -> dict[str, Any]:
    """The fields of a /health answer this view shows, each checked for its type; a
    NotAStation saying why where ``body`` is no station's /health."""
    if not isinstance(body, dict):
        raise NotAStation("answered, but not with a station's /health (not a JSON object): is the URL a "
                         "lineguard station's address?")
    status = body.get("status")
    if status not in STATUSES:
        raise NotAStation(f"answered, but its /health has no station status ({_cut(status, 40)!r}): is the URL "
                         "a lineguard station's address?")
    # every station's /health, the first lineguard's too, names its version and its faults
    # (their types are taken defensively below): a service answering {"status": "ok"} (a
    # Grafana, another tool's health check) was shown green as a station
    if "version" not in body or "faults" not in body:
        raise NotAStation("answered with a status, but not a station's /health (no version and faults): is the URL "
                          "a lineguard station's address?")
    raw_faults = body.get("faults") if isinstance(body.get("faults"), dict) else {}
    # a peer's faults as it names them, shown (not this station's own: named apart from them)
    shown = {_cut(k, NAME_MAX): _cut(v) for k, v in list(raw_faults.items())[:FAULTS_MAX]}
    if len(raw_faults) > FAULTS_MAX:
        shown["more"] = f"{len(raw_faults) - FAULTS_MAX} more fault(s): see the station's own /health"
    alarms = None
    raw = body.get("alarms")
    if isinstance(raw, dict):
        kinds = raw.get("by_kind") if isinstance(raw.get("by_kind"), dict) else {}
        oldest = raw.get("oldest") if isinstance(raw.get("oldest"), dict) else {}
        wait = oldest.get("waiting_min")
        alarms = {"active": _count(raw.get("active")),
                  "by_kind": {_cut(k, NAME_MAX): _count(n) for k, n in list(kinds.items())[:KINDS_MAX]},
                  "past_escalation": _count(raw.get("past_escalation")),
                  "oldest_waiting_min": round(float(wait), 1) if isinstance(wait, (int, float))
                  and not isinstance(wait, bool) and math.isfinite(wait) else None}
    version = body.get("version")
    # its last part's age as it counted it: a peer PC's clock set wrong does not move it
    return {"status": status, "faults": shown, "alarms": alarms,
            "version": _cut(version, 40) if isinstance(version, str) else None,
            "last_part_at": _when(body.get("last_part_at")), "last_part_age_s": _age(body.get("last_part_age_s"))}


def _reasons(row: dict[str, Any]) -> tuple[str, list[str]]:
    """The row's level (ok, warn, down) and its reasons in words, worst first: a station not
    answering or unable to judge parts is down; one degraded or with alarms waiting wants a look."""
    if row["problem"]:
        return "down", [row["problem"]]
    said = []
    if row["status"] == "fault":
        said.append("fault: parts cannot be judged or stored")
    elif row["status"] == "degraded":
        said.append("degraded: parts are judged, something needs attention")
    said += [f"{name}: {text}" for name, text in row["faults"].items()]
    alarms = row["alarms"]
    if alarms and alarms["active"]:
        kinds = alarm_words(alarms["by_kind"])
        wait = alarms["oldest_waiting_min"]
        said.append(f"{alarms['active']} alarm(s) waiting for acknowledgement"
                    + (f" ({kinds})" if kinds else "")
                    + (f", the oldest for {wait:g} min" if wait is not None else ""))
    level = "down" if row["status"] == "fault" else "warn" if said else "ok"
    return level, said


async def _ask(client: Any, url: str) -> dict[str, Any]:
    """A peer's /health, its fields taken (see _taken); ValueError with the words of why not
    (NotAStation where it answered, but not as a station)."""
    import httpx
    try:
        # identity: the bytes counted are the bytes parsed (a gzip of zeros is a few KiB on the wire)
        async with client.stream("GET", url + "/health", headers={"Accept": "application/json",
                                                                   "Accept-Encoding": "identity"}) as r:
            declared = r.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_PEER_BYTES:
                raise NotAStation(f"answered with {int(declared)} bytes, more than a station's /health "
                                 f"({MAX_PEER_BYTES // 1024} KiB at most): is the URL a lineguard station's address?")
            got = bytearray()
            async for chunk in r.aiter_raw():
                got += chunk
                if len(got) > MAX_PEER_BYTES:
                    raise NotAStation(f"answered with more than {MAX_PEER_BYTES // 1024} KiB, more than a station's "
                                     "/health: is the URL a lineguard station's address?")
            status = r.status_code
    except httpx.TimeoutException:
        raise ValueError(f"no answer within {PEER_WAIT_S:g} s (station stopped, or its PC or network down)") from None
    except httpx.ConnectError as exc:
        if "SSL" in str(exc) or "TLS" in str(exc):
            # an https:// URL for a station serving plain HTTP (its default) read as one stopped
            raise ValueError(f"the TLS handshake failed ({_cut(exc, 160)}): a station serves http:// unless a proxy "
                             "in front of it gives https: write its --peer URL with http://") from None
        raise ValueError(f"cannot connect ({_cut(exc, 160) or 'refused'}): station stopped, or its PC or network "
                         "down") from None
    except httpx.HTTPError as exc:
        raise ValueError(f"no usable answer ({type(exc).__name__}: {_cut(exc, 160)})") from None
    if status not in (200, 503):         # /health answers 503 for a fault, with its body
        raise NotAStation(f"answered HTTP {status} for /health: is the URL a lineguard station's address "
                         "(http://HOST:PORT)?")
    try:
        body = json.loads(bytes(got))
    except (ValueError, RecursionError):
        raise NotAStation("answered, but not with JSON: is the URL a lineguard station's address?") from None
    return _taken(body)


async def _peer_row(client: Any, seen: dict, name: str, url: str) -> dict[str, Any]:
    row: dict[str, Any] = {"name": name, "url": url, "page": url + "/app/", "this_station": False,
                           "reachable": False, "status": "unreachable", "problem": None, "faults": {},
                           "alarms": None, "version": None, "last_part_at": None, "last_part_age_s": None}
    try:
        row.update(await asyncio.wait_for(_ask(client, url), PEER_WAIT_S + 0.5))
        row["reachable"] = True
    except asyncio.TimeoutError:
        row["problem"] = f"no answer within {PEER_WAIT_S:g} s (station stopped, or its PC or network down)"
    except NotAStation as exc:
        row["problem"], row["reachable"], row["status"] = str(exc), True, "not_a_station"
    except ValueError as exc:
        row["problem"] = str(exc)
    # when it last answered as a station, and since when it has not: kept per name and URL
    now = dt.datetime.now(dt.timezone.utc)
    mark = seen.setdefault((name, url), {"last_answer": None, "down_since": None})
    if row["problem"] is None:
        mark["last_answer"], mark["down_since"] = now, None
    elif mark["down_since"] is None:
        mark["down_since"] = now
    row["last_answer_at"], row["unreachable_since"] = iso_utc(mark["last_answer"]), iso_utc(mark["down_since"])
    if row["problem"] is not None:
        # a peer that answers, but not as a station (reachable, status not_a_station), is
        # said so: "not answered since" read against its reachable true
        as_one = " as a station" if row["status"] == "not_a_station" else ""
        row["problem"] += (f"; last answered{as_one} {row['last_answer_at']}" if mark["last_answer"] is not None
                           else f"; not answered{as_one} since this station started looking")
    return row


def own_name(station: Station) -> str:
    """This station's name in the plant view: the line it is started for (serve --plc-line,
    --line), else the lines its parts are recorded on (a few index hops), else its PC's
    name. Its row said "this station" on every station's screen: read from line 2's, its
    own row and a peer's could not be told apart by the name, nor matched to the --peer
    names the other stations give it. ``this_station`` marks the row."""
    import socket

    from ...line.close_names import listed
    from ...line.part_names import stored_names
    cfg = station.config
    lines = [n.strip() for n in (cfg.plc_line, cfg.line) if n and n.strip()]
    if not lines:
        try:
            lines = [n for n in stored_names(station.db, "line") if n.strip()]
        except Exception:  # noqa: BLE001 - the database's fault is its /health's to say; the PC's name stands in
            lines = []
    names = list(dict.fromkeys(lines))
    return _cut(listed(names, 3) if names else socket.gethostname() or "this station", NAME_MAX)


async def _own_row(request: Request, station: Station) -> dict[str, Any]:
    from .system import health
    row: dict[str, Any] = {"name": await run_in_threadpool(own_name, station), "url": None, "page": "/app/",
                           "this_station": True,
                           "reachable": True, "status": "unknown", "problem": None, "faults": {},
                           "alarms": None, "version": None, "unreachable_since": None, "last_part_at": None,
                           "last_part_age_s": None}
    try:
        answer = await run_in_threadpool(health, station)
        row.update(_taken(json.loads(answer.body)))
    except Exception as exc:  # noqa: BLE001 - its own /health failing is said in its row, the peers still shown
        row["problem"] = f"its own /health failed ({type(exc).__name__}): see the station's log"
    row["last_answer_at"] = iso_utc(dt.datetime.now(dt.timezone.utc))
    return row


@router.get("/plant", response_model=PlantOut, responses=errors(401, 403, 422),
            summary="This station and the plant's other stations (serve --peer): status, faults, alarms waiting",
            description="This station first (`this_station`, named by its line: serve --plc-line or --line, "
                        "else the lines of its parts, else its PC's name), then each peer given with serve "
                        "--peer NAME=URL (LINEGUARD_PEERS) "
                        f"as its /health says (asked now, at most {PEER_WAIT_S:g} s each): `level` ok, warn "
                        "(degraded, or alarms waiting) or down (not answering, not a station, or a fault), "
                        "`reasons` in the plant's words (the alarm kinds' codes in `alarms.by_kind`), when it "
                        "last answered and since when it has not (since this station started), and when its "
                        "newest part was recorded (`last_part_at`; `last_part_age_s` by its own clock; no "
                        "level of its own: a stop may be planned). A peer's answer is read up to 256 KiB.")
async def plant(request: Request, station: Station = Depends(get_station), _r: Any = Depends(reader),
                _known: None = Depends(known_query_only)) -> dict[str, Any]:
    import httpx
    peers = peer_list(station.config.peers)
    seen = getattr(request.app.state, "plant_seen", None)
    if seen is None:
        seen = request.app.state.plant_seen = {}
    # no redirects followed: a peer's URL is where its /health is, not a way to reach others
    async with httpx.AsyncClient(timeout=PEER_WAIT_S, follow_redirects=False, verify=_peer_tls()) as client:
        rows = await asyncio.gather(_own_row(request, station),
                                    *(_peer_row(client, seen, name, url) for name, url in peers))
    for row in rows:
        row["level"], row["reasons"] = _reasons(row)
    return {"checked_at": iso_utc(dt.datetime.now(dt.timezone.utc)), "peers_configured": len(peers),
            "how_to_add": HOW_TO_ADD, "stations": rows}
