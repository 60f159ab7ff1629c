"""Compare two re-scores of one archive: what a new model version would change.

    cmp = compare_runs("rescore-v1.parquet", "rescore-v2.parquet")
    cmp.transitions            # {("OK", "REVIEW"): 40, ("NG", "OK"): 5, ...}
    cmp.changed[:20]           # the parts whose verdict changed, most changed first

Each side is a ``rescore --out`` folder (or a ``pyarrow.Table`` of its rows). The station
database's ``compare_live`` compares one re-score with the live inspections; an engineer
choosing between two model versions had to join the two folders in pandas to learn that
49 of 2,041 verdicts would change.

Rows are joined by image **path**; rows left over on both sides are then joined by their
**SHA-256** (the same bytes: the archive moved or was mounted elsewhere between the two
runs), and the comparison says how many were joined each way. An unreadable image is the
state ``error`` in the transition table, so the table's counts add up to the images in both.

"Most changed" ranks a move by how many verdict steps it crosses (OK <-> NG before OK <->
REVIEW), then by how far the score moved measured in each model's own NG threshold: two
models' raw scores are on different scales, their score / threshold is not.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from ...vision.errors import DatasetError
from . import require_pyarrow
from .rescore import result_parts

# the columns a results folder must have to be compared; the others are read where present
NEEDED = ("path", "sha256", "score", "verdict", "model_id", "error")
OPTIONAL = ("threshold", "model_version", "scored_at")
ERROR = "error"
_STEP = {"OK": 0, "REVIEW": 1, "NG": 2}
_ORDER = ("OK", "REVIEW", "NG", ERROR)

Side = Union[str, os.PathLike, Any]      # a results folder, or a pyarrow.Table of its rows


@dataclass
class RunSide:
    """One side of the comparison: where it came from and which model scored it."""
    name: str
    model_id: str
    model_version: Optional[str]
    rows: int

    def said(self) -> str:
        version = f"model {self.model_version} " if self.model_version else "model "
        return f"{self.name}: {version}(id {self.model_id[:12]}), {self.rows} images"


@dataclass
class Changed:
    """One image in both runs whose state (verdict, or ``error``) differs."""
    old_path: str
    new_path: str
    sha256: Optional[str]
    old: str                  # verdict, or "error"
    new: str
    old_score: Optional[float]
    new_score: Optional[float]
    old_threshold: Optional[float]
    new_threshold: Optional[float]
    old_error: Optional[str]
    new_error: Optional[str]
    joined_by: str            # "path" or "sha256"

    def rank(self) -> tuple[float, float]:
        """(verdict steps crossed, score move in thresholds): larger is more changed. A move
        to or from ``error`` ranks after every verdict move: no score moved."""
        if self.old not in _STEP or self.new not in _STEP:
            return (-1.0, 0.0)
        return (float(abs(_STEP[self.new] - _STEP[self.old])), abs(_relative(self.new_score, self.new_threshold)
                                                                    - _relative(self.old_score, self.old_threshold)))


def _relative(score: Optional[float], threshold: Optional[float]) -> float:
    if score is None:
        return 0.0
    return score / threshold if threshold else score


@dataclass
class Comparison:
    old: RunSide
    new: RunSide
    both: int = 0
    by_path: int = 0
    by_sha256: int = 0            # paths differ, bytes the same (an archive moved)
    only_old: list[str] = field(default_factory=list)
    only_new: list[str] = field(default_factory=list)
    # (old state, new state) -> images in both; states are verdicts and "error"
    transitions: dict[tuple[str, str], int] = field(default_factory=dict)
    changed: list[Changed] = field(default_factory=list)      # most changed first
    # images in both unreadable in either run: (path, old error or None, new error or None)
    errors: list[tuple[str, Optional[str], Optional[str]]] = field(default_factory=list)

    @property
    def joined_by(self) -> str:
        if self.by_sha256 and self.by_path:
            return f"path ({self.by_path}), then SHA-256 for {self.by_sha256} whose path differs"
        return "SHA-256 (no path in common: the archive moved?)" if self.by_sha256 else "path"

    def states(self) -> list[str]:
        seen = {s for pair in self.transitions for s in pair}
        return [s for s in _ORDER if s in seen] + sorted(seen - set(_ORDER))

    def moves(self) -> list[tuple[tuple[str, str], int]]:
        """The transitions that change something, most images first."""
        return sorted(((k, v) for k, v in self.transitions.items() if k[0] != k[1]), key=lambda kv: (-kv[1], kv[0]))


def read_side(side: Side, name: Optional[str] = None) -> tuple[Any, str]:
    """(table of the needed columns, its name) for a results folder or a table; a folder
    that is not a ``rescore --out`` folder is refused with :class:`DatasetError`."""
    pa = require_pyarrow()
    import pyarrow.parquet as pq
    if isinstance(side, pa.Table):
        table, name = side, name or "<table>"
    else:
        folder = Path(side)
        name = name or str(folder)
        what = "give the --out folder of a `lineguard rescore` run"
        if not folder.exists():
            raise DatasetError(f"{folder}: no such folder ({what})")
        if not folder.is_dir():
            raise DatasetError(f"{folder} is a file, not a rescore results folder of Parquet parts ({what}; "
                               f"a --csv export cannot be compared)")
        parts = result_parts(folder)
        if not parts:
            raise DatasetError(f"{folder} is not a rescore results folder: it holds no part-*.parquet ({what})")
        tables = []
        for part in parts:
            try:
                names = pq.read_schema(part).names
                missing = [c for c in NEEDED if c not in names]
                if missing:
                    raise DatasetError(f"{part} has no {', '.join(missing)} column: {folder} is not a rescore "
                                       f"results folder ({what})")
                tables.append(pq.read_table(part, columns=[c for c in (*NEEDED, *OPTIONAL) if c in names]))
            except (OSError, pa.ArrowInvalid) as exc:
                raise DatasetError(f"{part}: not a readable Parquet part ({exc}): is {folder} a rescore results "
                                   f"folder? ({what})") from exc
        table = pa.concat_tables(tables, promote_options="default")
    missing = [c for c in NEEDED if c not in table.column_names]
    if missing:
        raise DatasetError(f"{name} has no {', '.join(missing)} column: not rescore results")
    return table, name


def _rows(table: Any) -> dict[str, dict[str, Any]]:
    """path -> row; two rows of one path (a folder written before resume kept one) keep the
    newest scored, as a resume does."""
    cols = {c: table.column(c).to_pylist() if c in table.column_names else [None] * table.num_rows
            for c in (*NEEDED, *OPTIONAL)}
    out: dict[str, dict[str, Any]] = {}
    for i, path in enumerate(cols["path"]):
        if path is None:
            continue
        row = {c: cols[c][i] for c in cols}
        have = out.get(path)
        if have is None or (row["scored_at"] or 0.0) >= (have["scored_at"] or 0.0):
            out[path] = row
    return out


def _side(rows: dict[str, dict[str, Any]], name: str) -> RunSide:
    ids = sorted({r["model_id"] for r in rows.values()} - {None})
    if not rows:
        raise DatasetError(f"{name} holds no rows: nothing to compare")
    if len(ids) != 1:
        named = ", ".join(i[:12] for i in ids) or "none named"
        raise DatasetError(f"{name} holds results of {len(ids)} models ({named}): compare folders that each hold "
                           "one rescore run")
    versions = sorted({r["model_version"] for r in rows.values() if r["model_id"] == ids[0]} - {None})
    return RunSide(name, ids[0], versions[0] if len(versions) == 1 else None, len(rows))


def _state(row: dict[str, Any]) -> str:
    return ERROR if row["error"] is not None or row["verdict"] is None else str(row["verdict"])


def compare_runs(old: Side, new: Side, old_name: Optional[str] = None,
                 new_name: Optional[str] = None) -> Comparison:
    """Join two re-scores of an archive and count how their verdicts differ.

    :class:`DatasetError` when either is not a results folder, when both hold the same model
    (nothing to compare), or when no image is in both (by path or by SHA-256)."""
    old_table, old_name = read_side(old, old_name)
    new_table, new_name = read_side(new, new_name)
    a, b = _rows(old_table), _rows(new_table)
    cmp = Comparison(_side(a, old_name), _side(b, new_name))
    if cmp.old.model_id == cmp.new.model_id:
        raise DatasetError(f"{old_name} and {new_name} both hold results of the same model "
                           f"({cmp.old.model_version or 'id'} {cmp.old.model_id[:12]}): nothing to compare. Give the "
                           "results folders of two rescore runs with different models")
    pairs = [(p, p, "path") for p in sorted(a.keys() & b.keys())]
    cmp.by_path = len(pairs)
    # left on both sides: the same bytes under another path (the archive moved between the runs)
    left_a: dict[str, list[str]] = {}
    left_b: dict[str, list[str]] = {}
    for rows, left in ((a, left_a), (b, left_b)):
        for p in sorted(rows.keys() - (a.keys() & b.keys())):
            if rows[p]["sha256"]:
                left.setdefault(rows[p]["sha256"], []).append(p)
    for sha in sorted(left_a.keys() & left_b.keys()):
        # the same photo saved twice: paired in path order (its bytes, so its scores, are the same)
        pairs.extend((pa_, pb, "sha256") for pa_, pb in zip(left_a[sha], left_b[sha]))
    cmp.by_sha256 = len(pairs) - cmp.by_path
    cmp.both = len(pairs)
    if not pairs:
        raise DatasetError(f"no image of {old_name} ({cmp.old.rows}) is in {new_name} ({cmp.new.rows}), by path or "
                           "by SHA-256: are they re-scores of the same archive?")
    matched_a, matched_b = {p for p, _, _ in pairs}, {p for _, p, _ in pairs}
    cmp.only_old = sorted(a.keys() - matched_a)
    cmp.only_new = sorted(b.keys() - matched_b)
    for pa_, pb, how in pairs:
        ra, rb = a[pa_], b[pb]
        sa, sb = _state(ra), _state(rb)
        cmp.transitions[(sa, sb)] = cmp.transitions.get((sa, sb), 0) + 1
        if ERROR in (sa, sb):
            cmp.errors.append((pb, ra["error"] if sa == ERROR else None, rb["error"] if sb == ERROR else None))
        if sa != sb:
            cmp.changed.append(Changed(pa_, pb, rb["sha256"] or ra["sha256"], sa, sb, ra["score"], rb["score"],
                                       ra["threshold"], rb["threshold"], ra["error"], rb["error"], how))
    cmp.changed.sort(key=lambda c: (tuple(-x for x in c.rank()), c.new_path))
    return cmp


CSV_COLUMNS = ("path", "old_path", "sha256", "joined_by", "old_verdict", "new_verdict", "old_score", "new_score",
               "old_threshold", "new_threshold", "old_error", "new_error")


def write_changed_csv(cmp: Comparison, csv_path: Union[str, os.PathLike]) -> int:
    """Every changed image, most changed first, as one CSV (written whole, then renamed).
    ``path`` is the new run's; ``old_path`` differs where the rows were joined by SHA-256.
    Returns the rows written."""
    import csv
    import io
    from ...vision.atomic import atomic_write_bytes
    from ..spreadsheet_cells import spreadsheet_safe
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    for c in cmp.changed:
        # each cell as the station's exports write it: text a spreadsheet would run as a formula
        # (a photo named "=HYPERLINK(...).png") starts with an apostrophe; numbers stay numbers
        w.writerow([spreadsheet_safe(v) for v in (c.new_path, c.old_path, c.sha256, c.joined_by, c.old, c.new,
                                                  c.old_score, c.new_score, c.old_threshold, c.new_threshold,
                                                  c.old_error, c.new_error)])
    atomic_write_bytes(Path(csv_path), buf.getvalue().encode("utf-8"))
    return len(cmp.changed)
