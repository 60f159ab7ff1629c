"""The lines, stations and products the station's records hold, and a typed name matched to them.

A person filtering the gallery types "l1" for line "L1" (or "cell " for "cell") and got
no part at all: the filters compare exactly, so each can use its index. The stored names
are few, so they are read first and the typed name is replaced by the stored one it
matches apart from case and surrounding spaces; the query itself still compares exactly.
"""
from __future__ import annotations

from typing import Any, Optional

from sqlalchemy import func, or_, select, text

from .close_names import close_names, did_you_mean, listed
from .errors import NotFound
from .orm import Inspection, ModelVersion, ReferencePhoto

# Each is the first column of an index of the parts' table (ix_inspections_line_created,
# ix_inspections_product_created): the names are read by hopping from one to the next
# along the index, one lookup per name, never a scan of millions of parts.
_INDEXED = ("line", "product")


def stored_names(db: Any, column: str) -> list[str]:
    """Every distinct value of ``column`` (line or product) among the parts, in the
    database's order of its index."""
    if column not in _INDEXED:
        raise ValueError(f"names are read for {', '.join(_INDEXED)} only, not {column!r}")
    with db.session() as s:
        return [r[0] for r in s.execute(_hop("inspections", column))]


def _hop(table: str, column: str, where: str = "") -> Any:
    """The distinct values of ``column`` in ``table`` (rows matching ``where``), each found by
    one lookup along an index that starts with it (or with ``where``'s columns, then it):
    MIN, then the MIN above it, and so on; never a scan."""
    also = f"{where} AND " if where else ""
    return text(f"WITH RECURSIVE names(name) AS ("
                f" SELECT MIN({column}) FROM {table}{' WHERE ' + where if where else ''}"
                f" UNION ALL SELECT (SELECT MIN({column}) FROM {table} WHERE {also}{column} > names.name)"
                f" FROM names WHERE names.name IS NOT NULL)"
                f" SELECT name FROM names WHERE name IS NOT NULL")


# the tables whose stations are read, each along its index that starts (line, station):
# ix_inspections_line_station_id, ix_line_signals_station_id (a station whose parts the PLC
# rejected without a verdict holds no part record, and is still a station)
_STATIONS_OF = {"inspections": ("ix_inspections_line_station_id", "ix_inspections_line_created"),
                "line_signals": ("ix_line_signals_station_id", "ix_line_signals_line_triggered")}


def stored_stations(db: Any, table: str = "inspections") -> dict[str, list[str]]:
    """{line: its stations} among the rows of ``table`` (the parts, or line_signals: the PLC's
    answers), each list in the database's order. No index starts with the station: the
    lines are read by hopping along the line's index, then each line's stations along
    (line, station), one lookup per name, never a scan."""
    if table not in _STATIONS_OF:
        raise ValueError(f"stations are read from {', '.join(_STATIONS_OF)} only, not {table!r}")
    lines, hop = _hop(table, "line"), _hop(table, "station", "line = :line")
    with db.session() as s:
        return {ln: [r[0] for r in s.execute(hop, {"line": ln})] for (ln,) in s.execute(lines).all()}


def stations_by_line(db: Any) -> dict[str, list[str]]:
    """{line: its stations, sorted}: where a part was inspected or the PLC was answered."""
    out: dict[str, set[str]] = {}
    for table in _STATIONS_OF:
        for ln, stations in stored_stations(db, table).items():
            out.setdefault(ln, set()).update(stations)
    return {ln: sorted(names) for ln, names in sorted(out.items())}


def station_names(db: Any, line: Optional[str] = None) -> list[str]:
    """The stations a part was inspected at or the PLC was answered for, sorted: ``line``'s
    (as stored) when given, read along that line alone (every SPC, report and filtered
    parts-list call asks: walking every line's stations for one was 2 + 2 x lines queries
    each time), else every line's."""
    if line:
        with db.session() as s:
            return sorted({r[0] for table in _STATIONS_OF
                           for r in s.execute(_hop(table, "station", "line = :line"), {"line": line})})
    return sorted({n for names in stations_by_line(db).values() for n in names})


def station_lines(db: Any, station: str) -> list[str]:
    """The lines with a station named ``station`` (as stored, or in another case)."""
    want = station.strip().casefold()
    return [ln for ln, names in stations_by_line(db).items() if any(n.strip().casefold() == want for n in names)]


def as_stored(typed: Optional[str], names: list[str]) -> Optional[str]:
    """The stored name ``typed`` means: itself when stored, else the one stored name equal
    to it apart from case and surrounding spaces; unchanged when none or several are."""
    if typed is None or typed in names:
        return typed
    if typed.strip() in names:
        return typed.strip()
    want = typed.strip().casefold()
    same = [n for n in names if n.strip().casefold() == want]
    return same[0] if len(same) == 1 else typed


def resolve_filters(db: Any, filters: dict[str, Any]) -> dict[str, Any]:
    """``filters`` with a typed line, station and product replaced by the names stored
    (as_stored; the station among the line's own when a line is given): "s1" echoed back
    as the station of a report or an export's name, and issued as another report than "S1"."""
    out = dict(filters)
    for column in _INDEXED:
        if out.get(column):
            out[column] = as_stored(out[column], stored_names(db, column))
    if out.get("station"):
        out["station"] = as_stored(out["station"], station_names(db, out.get("line")))
    return out


def names_holding_nothing(db: Any, filters: dict[str, Any]) -> list[str]:
    """For a filter that found no part: each line or product in ``filters`` (as resolved)
    that no stored part bears, said with the names stored. A nightly export for a mistyped
    line wrote an empty file every night, "wrote 0 parts", as if the line had stopped."""
    said = []
    for column in _INDEXED:
        name = filters.get(column)
        if not name:
            continue
        names = stored_names(db, column)
        if name in names:
            continue
        close = close_names(name, names)
        said.append(f"no part of {column} {name!r} is stored"
                    + (f" ({did_you_mean(close)})" if close else "")
                    + (f"; the {column}s the station holds parts of: {listed(names)}" if names
                       else "; the station holds no part yet"))
    station = filters.get("station")
    if station:
        line = filters.get("line")
        names = station_names(db, line)
        if station not in names:
            close = close_names(station, names)
            said.append(f"no part of station {station!r} is stored" + (f" on line {line!r}" if line else "")
                        + (f" ({did_you_mean(close)})" if close else "")
                        + (f"; the stations with parts stored{' on that line' if line else ''}: {listed(names)}"
                           if names else "; no station's part is stored yet"))
    return said


def station_is(column: Any, typed: str) -> Any:
    """The condition a station filter puts on ``column``: the name as stored, or in any
    case as a person types it. No index starts with the station, so this costs what an
    exact match would. SQLite's lower() folds ASCII letters only: the typed name is folded
    the same way (a name beyond ASCII is then found as stored)."""
    return or_(column == typed, func.lower(column) == folded(typed.strip()))


def folded(name: str) -> str:
    """``name`` in lower case as SQLite's lower() makes it (ASCII letters only), so the same
    comparison holds on both databases for ASCII names."""
    return "".join(c.lower() if c.isascii() else c for c in name)


# what a retrain for a line nothing is stored of can do instead
TRAIN_LINE_ADVICE = ("A line's own model learns that line's parts; leave the line empty for the model of every "
                     "line, or give the station photos of good parts from that line first (lineguard reference add "
                     "--line)")


def check_product_and_line(db: Any, product: str, line: str, advice: str = TRAIN_LINE_ADVICE,
                           new_product: Optional[str] = None) -> None:
    """Refuse (404) a product or line the station holds nothing of (no part, model version
    or reference photo), saying the one meant: a retrain for "cel" was told "only 0 stored
    parts ... review more of its parts"; one for line "l1" (the line is "L1") learnt the
    product's reference photos alone and registered a model for a line no part was ever
    inspected on; Compare for an unknown line answered "0 parts" as if the shadow had judged
    none. A product that is new (nothing stored, no name close to it) passes: what it needs
    is said by whoever asked; where it can need nothing but what is stored (a retrain),
    ``new_product`` is what to do, and it is a 404 too naming the products the station knows
    (a retrain for "nothing" was told "only 0 stored parts ... review more of its parts")."""

    def held(s: Any, on_line: Optional[str] = None) -> bool:
        for table in (Inspection, ModelVersion, ReferencePhoto):
            q = select(table.id).where(table.product == product)
            if on_line is not None:
                q = q.where(table.line == on_line)
            if s.scalar(q.limit(1)) is not None:
                return True
        return False

    with db.session() as s:
        if not held(s):
            known = set(stored_names(db, "product"))
            known |= set(s.scalars(select(ModelVersion.product).distinct()))
            known |= set(s.scalars(select(ReferencePhoto.product).distinct()))
            close = close_names(product, sorted(known))
            if close:
                raise NotFound(f"unknown product {product!r}: {did_you_mean(close)} Product names are compared "
                               "exactly, case too", did_you_mean=close)
            if new_product is not None:
                raise NotFound(f"this station holds nothing of product {product!r} (no part, model or reference "
                               "photo)" + (f"; it knows {listed(sorted(known))}" if known else "") + f". {new_product}",
                               did_you_mean=[], known=sorted(known)[:50])
            return
        if not line or held(s, line):
            return
        lines = set(stored_names(db, "line"))
        lines |= set(s.scalars(select(ModelVersion.line).where(ModelVersion.product == product).distinct()))
        lines |= set(s.scalars(select(ReferencePhoto.line).where(ReferencePhoto.product == product).distinct()))
        lines.discard("")
    close = close_names(line, sorted(lines))
    raise NotFound(f"no part of product {product!r} was inspected on line {line!r}, and no model or reference photo "
                   "is kept for that line: " + (f"{did_you_mean(close)} " if close else "")
                   + (f"The lines the station knows: {listed(sorted(lines))}. " if lines else "") + advice,
                   did_you_mean=close)
