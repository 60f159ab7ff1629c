"""What an alarm may turn out to be: six causes every station knows, and the plant's own.

Whoever acknowledges an alarm (a person, or the PLC by number) says what it was; counted
per shift, the causes say what stops the line. Six are built in, with fixed keys and PLC
numbers 1-6. A plant adds its own ("coil change", "die wear on press 4"): each gets the
next free number from 7, kept for good, so a PLC program written for it never has to
change; a cause no longer wanted is retired (no longer offered, but the alarms that had
it keep its name, and its number is never given to another).
"""
from __future__ import annotations

import re
from typing import Any, Optional

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from . import audit
from .db import LOCK_ALARM_CAUSES
from .errors import Conflict, InvalidRequest, NotFound
from .orm import AlarmCause, iso_utc, utcnow

# Stable keys, so counts stay comparable across stations and years.
BUILT_IN = {
    "process": "defects made upstream (tool, process)",
    "material": "material or supplier batch",
    "handling": "part position, fixture or handling",
    "camera": "camera, lens or lighting",
    "model": "false alarm: the parts were good",
    "other": "other (say what in the note)",
}
# The PLC gives the cause as a number (Modbus AlarmAckCause, OPC UA AcknowledgeAlarmsWithCause):
# 0 none, then BUILT_IN in order; a plant's own from FIRST_PLANT_CODE.
BUILT_IN_CODES = {i + 1: cause for i, cause in enumerate(BUILT_IN)}
FIRST_PLANT_CODE = 7
KEY_MAX = 20            # LineAlarm.ack_cause
LABEL_MAX = 100
PLANT_MAX = 50          # a list a person picks from on a touch panel, not a catalogue
_KEY = re.compile(r"^[a-z0-9][a-z0-9_]*$")
# a key needs a letter: one of digits alone ("7") read as a PLC number, and AlarmAckCause 7
# meant another cause than the API's "7"
_LETTER = re.compile(r"[a-z]")


def _plain(text: str) -> str:
    """A label as a person reads it: its case, a remark in parentheses and punctuation apart
    ("Other" is "other (say what in the note)")."""
    return " ".join(re.findall(r"\w+", re.sub(r"\([^)]*\)", " ", text.casefold())))


# the built-in causes by their keys and their labels read plainly: a plant's cause called so
# is a second one of them (a plant "Other" took no note where the built-in other demands one)
_BUILT_IN_PLAIN = {**{_plain(v): k for k, v in BUILT_IN.items()}, **{k: k for k in BUILT_IN}}


def key_for(label: str) -> str:
    """A key made from a label: lower case, letters and digits, the rest one underscore."""
    key = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
    return key[:KEY_MAX].rstrip("_")


def _plant(db: Any, retired: bool) -> list[AlarmCause]:
    with db.session() as s:
        q = select(AlarmCause).order_by(AlarmCause.code)
        if not retired:
            q = q.where(AlarmCause.retired_at.is_(None))
        return list(s.scalars(q))


def _offered(plant: list[AlarmCause]) -> dict[str, str]:
    out = {k: v for k, v in BUILT_IN.items() if k != "other"}
    out.update((c.key, c.label) for c in plant if c.retired_at is None)
    out["other"] = BUILT_IN["other"]
    return out


def _labels(plant: list[AlarmCause]) -> dict[str, str]:
    out = dict(BUILT_IN)
    out.update((c.key, c.label + ("" if c.retired_at is None else " (retired)")) for c in plant)
    return out


def offered(db: Any) -> dict[str, str]:
    """key -> label of the causes a person picks from: the built-in ones, the plant's in
    use before "other" (the one to take when none fits)."""
    return _offered(_plant(db, retired=False))


def labels(db: Any) -> dict[str, str]:
    """key -> label of every cause an alarm may carry, retired ones too (they name old alarms)."""
    return _labels(_plant(db, retired=True))


def offered_and_labels(db: Any) -> tuple[dict[str, str], dict[str, str]]:
    """Both, from one read of the plant's causes (the alarms list answers with both)."""
    plant = _plant(db, retired=True)
    return _offered(plant), _labels(plant)


def codes(db: Any) -> dict[int, str]:
    """The PLC's numbers: the built-in ones and the plant's causes in use."""
    return {**BUILT_IN_CODES, **{c.code: c.key for c in _plant(db, retired=False)}}


def check(db: Any, cause: Optional[str]) -> None:
    """InvalidRequest unless ``cause`` is None or one offered now."""
    if cause is None or cause in BUILT_IN:
        return
    can = offered(db)
    if cause not in can and re.fullmatch(r"[0-9]+", cause.strip()):    # ASCII digits: "²".isdigit() too
        # "7" from a form or an HMI is the PLC's number as text: the answer a JSON 7 gets, and
        # the key that number stands for
        meant = codes(db).get(int(cause.strip()))
        raise InvalidRequest("give the cause's key (GET /api/v1/alarm-causes lists them: process, material, ...), "
                             "not its number: the number is the PLC's AlarmAckCause"
                             + (f" ({cause.strip()} is {meant!r})" if meant else ""))
    if cause not in can:
        raise InvalidRequest(f"cause {cause!r} is not one of {', '.join(can)} (GET /api/v1/alarm-causes lists them "
                             "with their meaning; an engineer adds the plant's own there)")


def listing(db: Any) -> list[dict[str, Any]]:
    """Every cause with its PLC number: built in, the plant's in use, then those retired."""
    out: list[dict[str, Any]] = [{"key": k, "label": v, "code": code, "built_in": True, "retired": False,
                                  "added_by": None, "added_at": None}
                                 for code, (k, v) in enumerate(BUILT_IN.items(), start=1)]
    plant = _plant(db, retired=True)
    for c in sorted(plant, key=lambda c: (c.retired_at is not None, c.code)):
        out.append(_to_dict(c))
    return out


def _to_dict(c: AlarmCause) -> dict[str, Any]:
    return {"key": c.key, "label": c.label, "code": c.code, "built_in": False, "retired": c.retired_at is not None,
            "added_by": c.created_by, "added_at": iso_utc(c.created_at)}


def _lock(s: Any, db: Any) -> None:
    # one change of the causes at a time, across processes: the label and count checks and
    # the next number hold until the change commits
    db.hold(s, LOCK_ALARM_CAUSES, "alarm_causes")


def _free_key(rows: dict[str, AlarmCause], label: str, code: int) -> str:
    """A key made from the label that no other cause has had ("coil_change"); else, when it
    is taken (labels alike in their first 20 letters) or the label has no letter a key can
    take ("Смена рулона"), one made from its PLC number ("cause_8"): a cut label with a
    number on it would read as another press or line."""
    for key in [key_for(label)] + [f"cause_{code}"] + [f"cause_{code}_{n}" for n in range(2, 100)]:
        if key and _LETTER.search(key) and key not in BUILT_IN and key != "none" and key not in rows:
            return key
    raise Conflict("no free key for this label; give one (key)")


def add(db: Any, label: str, by: Optional[str], key: Optional[str] = None) -> dict[str, Any]:
    """The plant's own cause, offered from now on with the next free PLC number. A retired
    cause comes back under its old number only when asked by its key, or by its label."""
    label = " ".join((label or "").split())
    if not label or len(label) > LABEL_MAX:
        raise InvalidRequest(f"say what the cause is in 1 to {LABEL_MAX} characters (e.g. \"coil change\"), "
                             f"got {len(label)}")
    given = key.strip() if key else None
    if given is not None and (len(given) > KEY_MAX or not _KEY.match(given)):
        raise InvalidRequest(f"a cause's key is 1 to {KEY_MAX} lower-case letters, digits or _ (e.g. coil_change), "
                             f"got {given!r}")
    if given is not None and not _LETTER.search(given):
        raise InvalidRequest(f"a cause's key needs a letter (e.g. press_{given}): {given!r} would read as a PLC "
                             "number, and the PLC's numbers are the causes' codes")
    if given in BUILT_IN or given == "none":
        raise Conflict(f"{given!r} is a built-in cause (or 'none', no cause): choose another key")
    folded = label.casefold()
    built_in = _BUILT_IN_PLAIN.get(_plain(label))
    if built_in == "other":
        raise Conflict(f"a cause called {label!r} is the built-in 'other': acknowledge with cause other and say "
                       "what it was in the note (it asks for one), or add a cause named for what it is")
    if built_in is not None:
        raise Conflict(f"a cause called {label!r} is built in already ({built_in}: {BUILT_IN[built_in]}): use it")
    for _ in range(5):
        try:
            with db.session() as s:
                _lock(s, db)
                rows = {c.key: c for c in s.scalars(select(AlarmCause))}
                # compared here, not by the database's lower(): SQLite folds ASCII letters only
                same = [c for c in rows.values() if c.retired_at is None and c.label.casefold() == folded]
                if same:
                    raise Conflict(f"a cause called {label!r} is offered already ({same[0].key!r}, PLC number "
                                   f"{same[0].code}): use it, or say it differently")
                if given is not None:
                    row = rows.get(given)
                    if row is not None and row.retired_at is None:
                        raise Conflict(f"cause {given!r} is in use already ({row.label!r}, PLC number {row.code})")
                    if row is not None and row.label.casefold() != folded:
                        # its old alarms would be renamed, and its PLC number mean something else
                        raise Conflict(f"key {given!r} was the cause {row.label!r} (retired, PLC number {row.code}); "
                                       "bring it back under that label, or choose another key")
                else:
                    # the same cause retired before comes back; another label never takes its number
                    row = next((c for c in rows.values() if c.retired_at is not None
                                and c.label.casefold() == folded), None)
                if sum(c.retired_at is None for c in rows.values()) >= PLANT_MAX:
                    raise Conflict(f"the plant has {PLANT_MAX} causes of its own already; retire one first")
                if row is None:
                    code = max([FIRST_PLANT_CODE - 1] + [c.code for c in rows.values()]) + 1
                    row = AlarmCause(key=given or _free_key(rows, label, code), code=code, created_at=utcnow())
                    s.add(row)
                    before = None
                else:     # back from retirement: its old number, which no other cause has had
                    before = {"label": row.label, "retired_at": str(row.retired_at)}
                row.label, row.created_by = label, (by or "")[:100] or None
                row.retired_at = row.retired_by = None
                s.flush()
                audit.record(s, "alarm_cause.added", f"alarm cause {row.key}", by, label=label, code=row.code,
                             before=before)
                return _to_dict(row)
        except IntegrityError:     # a database without the lock's effect (a hand-made copy): look again
            continue
    raise Conflict("alarm causes are being changed by someone else right now; try again")


def retire(db: Any, key: str, by: Optional[str]) -> dict[str, Any]:
    """No longer offered; alarms that had it keep it, and its PLC number is never reused."""
    if key in BUILT_IN:
        raise Conflict(f"{key!r} is built in: every station offers it (say what in the note when it does not fit)")
    with db.session() as s:
        _lock(s, db)
        row = s.get(AlarmCause, key)
        if row is None or row.retired_at is not None:
            raise NotFound(f"no cause {key!r} in use (GET /api/v1/alarm-causes lists them)")
        row.retired_at, row.retired_by = utcnow(), (by or "")[:100] or None
        audit.record(s, "alarm_cause.retired", f"alarm cause {key}", by, label=row.label, code=row.code)
        s.flush()
        return _to_dict(row)
