"""The change log: who changed what on a station, and when.

A quality system asks it of every inspection (ISO 9001 change control, IATF 16949; in
regulated plants a 21 CFR Part 11 audit trail): which model judged the parts and who made
it active, who moved a threshold, who added a defect type, a test part, a key or a user.
Each change writes its entry in the same transaction as the change itself, so the log
holds exactly the changes that were made: one that failed leaves no entry, and no change
is made without one. Entries are only ever added; the API and pages only read them.

Parts' reviews are not here: each part keeps the history of its own reviews.
"""
from __future__ import annotations

import datetime as dt
import math
import os
try:
    import pwd
except ImportError:   # Windows: the CLI's changes are logged as "cli"
    pwd = None  # type: ignore[assignment]
from typing import Any, Optional

from sqlalchemy import select
from sqlalchemy.orm import Session

from .orm import ChangeLogEntry, iso_utc, utcnow

# action -> what it says, for the page's filter and the docs
ACTIONS = {
    "model.uploaded": "a model version was added",
    "model.activated": "a model version was made the one that judges the parts",
    "model.rolled_back": "the active model went back to the version before",
    "model.shadow_started": "a version started judging every part beside the active one",
    "model.shadow_stopped": "a shadow run was stopped",
    "model.training_started": "a retraining job was started",
    "reference.added": "reference photos of good parts were given to the station for a product's retrains",
    "reference.removed": "a reference photo of a good part was removed: retrains no longer learn it",
    "product.defect_types": "a product's defect types were set",
    "test_part.registered": "a test part was registered or changed",
    "test_part.retired": "a test part was retired",
    "key.created": "an API key was created",
    "key.revoked": "an API key was revoked",
    "user.added": "a user was added",
    "user.disabled": "a user was disabled",
    "user.enabled": "a disabled user was let in again",
    "user.role_changed": "a user was given another role",
    "user.password_set": "a user's password was reset by an admin or changed by the user",
    "sign_in.locks_lifted": "an admin lifted the lock-outs that failed sign-ins had set",
    "alarm_rules.set": "a station's own line-alarm rules were set",
    "alarm_rules.cleared": "a station's line-alarm rules went back to the defaults",
    "alarm_cause.added": "a cause of the plant's own was added to what alarms may turn out to be",
    "alarm_cause.retired": "a cause of the plant's own is no longer offered for alarms",
    "report.issued": "a period report was issued: kept as it was sent to the customer",
    "report.signed": "a shift report was signed at the handover: kept as it was handed over",
    "report.withdrawn": "an issued period report or signed shift report was withdrawn (made in error); it stays readable, "
                        "marked so",
    "records.deleted": "old parts' records were deleted by hand (lineguard old-records --delete)",
    "station.settings": "a station process started with other settings than at its last start (records and "
                        "images kept, backups, alarm defaults, ...)",
}


def cli_actor() -> str:
    """The change log's name for a change made with the command line on the station PC:
    the account it ran as (from the system, not from $USER, which anyone can set)."""
    try:
        return f"cli ({pwd.getpwuid(os.getuid()).pw_name})"
    except (KeyError, AttributeError, OSError):   # no passwd entry (a container), or not POSIX
        return "cli"


def _json_safe(v: Any) -> Any:
    # PostgreSQL's json refuses Infinity and NaN (a model whose threshold is infinite)
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


def record(s: Session, action: str, subject: str, by: Optional[str], **details: Any) -> None:
    """Add an entry to the change log in the caller's transaction (committed with the change)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown change-log action {action!r}")
    s.add(ChangeLogEntry(at=utcnow(), actor=by[:100] if by else by, action=action, subject=subject[:320],
                         details=_json_safe({k: v for k, v in details.items() if v is not None})))


def record_start(db: Any, subject: str, settings: dict[str, Any], by: Optional[str]) -> bool:
    """At a station process's start: an entry when its settings (``StationConfig.audited_settings``)
    differ from those of its last start (``subject`` names the process: what, on which PC,
    for which data folder), so the log says who started the station keeping records 90 days
    instead of for good, and when. The first start is an entry too. True when one was written."""
    settings, subject = _json_safe(settings), subject[:320]
    with db.session() as s:
        last = s.scalar(select(ChangeLogEntry).where(ChangeLogEntry.action == "station.settings",
                                                     ChangeLogEntry.subject == subject)
                        .order_by(ChangeLogEntry.id.desc()).limit(1))
        before = (last.details or {}).get("settings", {}) if last is not None else None
        # a setting added in a later version is None (unset) at the starts before it
        changed = sorted(k for k in settings.keys() | (before or {}).keys()
                         if before is None or before.get(k) != settings.get(k))
        if not changed:
            return False
        record(s, "station.settings", subject, by,
               before=None if before is None else {k: before.get(k) for k in changed},
               after=None if before is None else {k: settings.get(k) for k in changed}, settings=settings)
    return True


def last_start_timezone(db: Any) -> Optional[str]:
    """The plant time zone (an IANA name) the station's latest ``serve`` start ran with, from
    the change log's ``station.settings`` entries (one each time its settings changed), or
    None: none logged, or that start given none (it counts in its PC's zone). A command
    reading the station's records without ``--timezone`` (``lineguard parts``) cut days by
    the PC's zone where the station counts its shifts and reports in another. A watcher's or
    camera's start is not the station's: their zone counts no shift."""
    with db.session() as s:
        entry = s.scalar(select(ChangeLogEntry).where(ChangeLogEntry.action == "station.settings",
                                                      ChangeLogEntry.subject.like("serve%"))
                         .order_by(ChangeLogEntry.id.desc()).limit(1))
    zone = ((entry.details or {}).get("settings") or {}).get("timezone") if entry is not None else None
    return zone if isinstance(zone, str) and zone and not zone.startswith("this PC's") else None


def entries(db: Any, *, since: Optional[dt.datetime] = None, until: Optional[dt.datetime] = None,
            actor: Optional[str] = None, action: Optional[str] = None, subject: Optional[str] = None,
            before_id: Optional[int] = None, limit: int = 100) -> list[ChangeLogEntry]:
    """Newest first; ``action`` may be a family (``model``) or one action (``model.activated``);
    ``subject`` a part of it (a product's name finds its models and test parts); ``actor``
    a part of who (a user's or key's name)."""
    q = select(ChangeLogEntry)
    if since is not None:
        q = q.where(ChangeLogEntry.at >= since)
    if until is not None:
        q = q.where(ChangeLogEntry.at < until)
    if actor:
        # a part of the name, case-blind: "maria" finds "maria (user)", "cli" finds "cli (root)"
        q = q.where(ChangeLogEntry.actor.icontains(actor, autoescape=True))
    if action:
        q = q.where(ChangeLogEntry.action == action if "." in action else ChangeLogEntry.action.like(action + ".%"))
    if subject:
        # case-blind on both databases (SQLite's LIKE is, PostgreSQL's is not)
        q = q.where(ChangeLogEntry.subject.icontains(subject, autoescape=True))
    if before_id is not None:
        q = q.where(ChangeLogEntry.id < before_id)
    with db.session() as s:
        return list(s.scalars(q.order_by(ChangeLogEntry.id.desc()).limit(max(1, min(limit, 1000)))))


def entry_to_dict(e: ChangeLogEntry) -> dict[str, Any]:
    return {"id": e.id, "at": iso_utc(e.at), "actor": e.actor, "action": e.action,
            "what": ACTIONS.get(e.action, e.action), "subject": e.subject, "details": e.details or {}}
