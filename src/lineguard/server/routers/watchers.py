"""Heartbeats of hot-folder watchers that post to this station from another PC.

A watcher with ``--data`` writes its status into the station's data folder, where /health
and /metrics read it; one with ``--server`` (no shared folder) was invisible: behind the
line or dead, /health said "ok". It now sends the same status here every few seconds with
its own (operator) key; the station keeps it beside the local ones (line.watchers).
"""
from __future__ import annotations

from typing import Annotated, Any, Optional

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...line import watchers
from ...line.errors import Conflict, StorageUnavailable
from ...line.station import Station
from ..deps import Caller, get_station, require
from ..schemas import NO_NUL, errors
from ..text_rules import NulFree, printable

router = APIRouter(prefix="/api/v1", tags=["hot folders"])

_BIG = 1e12          # counts and seconds beyond any line's, refused as sent wrong


class WatcherCounts(BaseModel):
    done: int = Field(0, ge=0, le=_BIG)
    failed: int = Field(0, ge=0, le=_BIG)
    skipped: int = Field(0, ge=0, le=_BIG)
    ignored: int = Field(0, ge=0, le=_BIG)


class HeartbeatIn(NulFree):
    """What a watcher's status file holds (line.sources.folder.FolderWatcher.status), and
    where the watcher runs."""
    model_config = ConfigDict(extra="ignore")   # a newer watcher's fields: not kept, not refused
    # the watcher's last errors are reports, not names: a NUL in one (a station's or a
    # disk's message) is shown escaped; refused, every heartbeat was a 422 until the error
    # changed, and the station lost sight of the watcher
    nul_allowed_in = frozenset({"station_error", "set_aside_error", "moves_refused"})

    @field_validator("station_error", "set_aside_error", "moves_refused", mode="before")
    @classmethod
    def _nul_shown(cls, v: Any) -> Any:
        return v.replace("\x00", "\\x00") if isinstance(v, str) else v
    # the part fields' rule: the watcher's name is shown in /health's faults and on the pages
    # ("L9\u202e1L" turned round, a line break in a fault's key)
    line: printable(100, min_length=1)
    station: printable(100, min_length=1)
    product: Optional[printable(100)] = None
    host: printable(255, min_length=1) = Field(description="the watcher's PC")
    folder: str = Field(min_length=1, max_length=4096, pattern=NO_NUL, description="the hot folder on that PC")
    pid: Optional[int] = Field(None, ge=0, le=2 ** 31)
    running: bool = Field(description="false: a clean stop, the station forgets this watcher")
    every_s: float = Field(5.0, ge=0, le=3600, description="seconds between heartbeats")
    waiting: int = Field(0, ge=0, le=_BIG)
    oldest_wait_s: float = Field(0.0, ge=0, le=_BIG)
    behind: bool = False
    # files the station fails on alone, not in waiting (an older watcher sends neither)
    set_aside: int = Field(0, ge=0, le=_BIG)
    set_aside_files: list[Annotated[str, Field(max_length=4096, pattern=NO_NUL)]] = Field(
        default_factory=list, max_length=100, description="the first few files set aside")
    # files moved to failed/ after timing out on every try (since the watcher started), the newest
    # names and when the latest was; every file left set aside and failing (an older watcher sends none)
    given_up: int = Field(0, ge=0, le=_BIG)
    given_up_files: list[Annotated[str, Field(max_length=4096, pattern=NO_NUL)]] = Field(
        default_factory=list, max_length=100, description="the newest files given up")
    given_up_last: Optional[float] = Field(None, ge=0, le=_BIG, description="the watcher's clock (Unix time)")
    # files refused (moved to failed/ at once: truncated, undecodable, a part id in conflict):
    # the newest names, when the latest was and why (/health's "refused" fault names them)
    refused_files: list[Annotated[str, Field(max_length=4096, pattern=NO_NUL)]] = Field(
        default_factory=list, max_length=100, description="the newest files refused")
    refused_last: Optional[float] = Field(None, ge=0, le=_BIG, description="the watcher's clock (Unix time)")
    refused_last_reason: Optional[str] = Field(None, max_length=2000)
    only_set_aside: bool = False
    only_set_aside_since: Optional[float] = Field(None, ge=0, le=_BIG, description="the watcher's clock (Unix time)")
    set_aside_error: Optional[str] = Field(None, max_length=2000)
    behind_after_s: Optional[float] = Field(None, ge=0, le=_BIG)
    behind_since: Optional[float] = Field(None, ge=0, le=_BIG, description="the watcher's clock (Unix time)")
    station_taking_parts: bool = True
    station_down_since: Optional[float] = Field(None, ge=0, le=_BIG)
    station_error: Optional[str] = Field(None, max_length=2000)
    # its done/ or failed/ refused (a link, a file): no file taken since, said as the fault
    moves_refused: Optional[str] = Field(None, max_length=2000)
    moves_refused_since: Optional[float] = Field(None, ge=0, le=_BIG, description="the watcher's clock (Unix time)")
    counts: Optional[WatcherCounts] = None
    sent: Optional[float] = Field(None, ge=0, le=_BIG,
                                  description="the watcher's clock when sent (Unix time): its other times are "
                                              "read against it")


class HeartbeatOut(BaseModel):
    watcher: str = Field(description="its name in /health's faults")
    kept: bool = Field(description="false after a clean stop: the station no longer watches for it (a heartbeat "
                                   "of the same watcher sent before its stop and come after it is not kept)")
    silent_after_s: float = Field(description="a fault on /health when no heartbeat came for this long")
    forget_after_s: float = Field(description="forgotten (fault cleared) when none came for this long")


@router.post("/watchers/heartbeat", response_model=HeartbeatOut,
             summary="A hot folder's watcher on another PC says how it stands (every few seconds)",
             description="Sent by `lineguard watch --server` with its operator key: the files waiting, the oldest's "
                         "wait, whether it is behind the line and whether it can get its parts in. /health and "
                         "/metrics show it as they show a watcher on this PC; one that stops sending is a fault "
                         "after `silent_after_s` and forgotten after `forget_after_s`; `running: false` (a clean "
                         "stop) forgets it at once.",
             responses=errors(401, 403, 409, 422, 503))
async def heartbeat(body: HeartbeatIn, station: Station = Depends(get_station),
                    _c: Caller = Depends(require("operator"))) -> dict[str, Any]:
    status = body.model_dump()
    try:
        kept = await run_in_threadpool(watchers.store_heartbeat, station.config.data_dir, status)
    except watchers.TooManyWatchers as exc:
        raise Conflict(str(exc)) from exc
    except OSError as exc:
        raise StorageUnavailable(f"the watcher's heartbeat cannot be kept in the data folder ({exc}); "
                                 "free the disk or fix its permissions") from exc
    return {"watcher": f"{body.line}/{body.station}", "kept": kept is not None,
            "silent_after_s": watchers.silent_after(status), "forget_after_s": watchers.FORGET_AFTER_S}
