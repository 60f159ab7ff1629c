"""Re-score an image archive with a model: one process, or many Ray actors.

    summary = rescore("cell.onnx", "archive/2026/", "results.parquet", ray_address="local", concurrency=2)

Results land in ``results.parquet/``, a folder of Parquet part files (what pyarrow,
pandas, Spark and DuckDB read as one table). Each part is written to a temporary name
and renamed into place, so a part is either complete or absent: a run that is killed
loses at most the rows not yet in a part, and the next run skips every image a part
already holds.

An image counts as already scored by its **path, size and modification time**, not by
its content hash. Deciding from the listing costs nothing per image (a local ``stat``;
an object store's listing carries size and modification time), while a hash means
reading every image of a million-image archive a second time just to skip it. The
SHA-256 of what was scored is still recorded in every row, for audit and to join
results across archives. A file rewritten with the same size within the same mtime tick
would be missed; archives are written once, so that is accepted. Unreadable images get
a row with ``error`` set and are not retried on resume unless they change.

A results folder holds **one model's** results, as a station database run does: another
model on the same ``out`` is refused (a resume would skip every image and report the
old model's scores as the new one's), and the folder keeps **one row per image**: an
image whose size or modification time changed since it was scored has its old row taken
out of its part (the part rewritten whole, under a temporary name) before it is scored
again, so a kill in between leaves it unscored, never scored twice. One run writes a
folder at a time (``.lock`` in it, which readers skip like any dot-file); a second is refused.
An archive moved (or mounted elsewhere) resumed into its old folder is refused
(:func:`refuse_moved_archive`), as are an ``out`` named like a spreadsheet and an existing
folder holding files of its own (:class:`ResultsFolder`): each left a folder that was not
one table of one archive's results.
"""
from __future__ import annotations

import contextlib
import glob as globlib
import hashlib
import math
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional, Union

import numpy as np

from ...vision.atomic import fsync_dir, hold_lock
from ...vision.errors import LineguardError
from . import check_reachable, connect, require_pyarrow

if TYPE_CHECKING:
    from .rescore_db import StationRecorder

# What the station judges (line.station takes PNG, JPEG, BMP, TIFF, WebP and GIF; the folder
# source watches the same): a GIF archived from the line was never rescored, so its verdict
# under a new model was not known. Training's list (vision.imageio) leaves GIF out on purpose.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
# Rows per Parquet part: what a killed run can lose at most, and the unit of resume.
DEFAULT_CHUNK_ROWS = 1000
# Progress(stage, done, total), as the CLI's progress line takes it: "resume" (skipped,
# listed), "start" (0, to score: the clock starts), "rescore" (scored, to score), and the
# Ray notes "ray-small" (to score, RAY_WORTH_FROM), "ray-actors" (CPUs, --concurrency), "ray-lost"
Progress = Optional[Callable[[str, int, int], None]]

COLUMNS = ("path", "size", "mtime_ns", "sha256", "score", "verdict", "threshold", "review_threshold",
           "pixel_threshold", "n_regions", "largest_region_area", "model_id", "model_version", "error",
           "scored_at", "photo_issues")


@dataclass(frozen=True)
class ArchiveImage:
    path: str        # local absolute path, or a URL (s3://..., memory://...) for fsspec
    size: int
    mtime_ns: int

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.path, self.size, self.mtime_ns)


# Why a file of the archive is not scored, a phrase for one and for several: train's
# wording (vision.dataset.NOT_READ_WHY) where it fits rescore too
_NOT_SCORED_WHY = {
    "hidden": ("a hidden name (it starts with '.'): rename it without the dot to score it",
               "hidden names (they start with '.'): rename them without the dot to score them"),
    # train's list of formats leaves out GIF, which rescore (as the station) does score
    "other": (f"not a photo format rescore reads ({', '.join(IMAGE_SUFFIXES)}, upper or lower case)",
              f"not a photo format rescore reads ({', '.join(IMAGE_SUFFIXES)}, upper or lower case)"),
}


def not_read_kind(name: str) -> Optional[str]:
    """None for a file name rescore scores; else why not, a key of vision.dataset's
    NOT_READ_WHY ("heic", "raw", "other") or of _NOT_SCORED_WHY, or "ignored" for names
    nobody put in an archive as photos (.DS_Store, a Mac's ._x.png beside x.png, a copy
    tool's temp file), passed over without a word as train passes them."""
    from ...vision.dataset import _HEIC, _RAW
    suffix = os.path.splitext(name)[1].lower()
    if name.startswith("."):
        return "hidden" if suffix in IMAGE_SUFFIXES and not name.startswith("._") else "ignored"
    if suffix in IMAGE_SUFFIXES:
        return None
    if suffix in _HEIC:
        return "heic"
    if suffix in _RAW:
        return "raw"
    return "other"


def hidden_folder(rel_parts: Iterable[str]) -> Optional[str]:
    """The first hidden folder (a name starting with '.') among ``rel_parts``, the folders
    between the archive's root and a file, or None. A file browser's .thumbnails, a desktop's
    .Trash-1000, a NAS's .@__thumb hold copies and previews, not parts: they were scored as
    parts, each a second (shrunken) row of a part or a deleted photo back in the counts."""
    return next((part for part in rel_parts if part.startswith(".") and part not in (".", "..")), None)


def hidden_said(hidden: list[str], root: Union[str, os.PathLike, None] = None, few: int = 3) -> str:
    """One line for the files of ``hidden`` (list_archive's): how many, in which hidden
    folders (below ``root`` where they are), and what to do to score them."""
    # as list_archive names a local file: "./arch/" lists arch/.thumbnails/...
    base = "" if root is None else (str(root) if _is_url(str(root)) else str(Path(str(root)))).rstrip("/") + "/"
    folders: dict[str, int] = {}
    for path in hidden:
        rel = path[len(base):] if base and path.startswith(base) else path
        parts = rel.split("/")
        at = next((i for i, part in enumerate(parts[:-1]) if part.startswith(".")), len(parts) - 2)
        folder = "/".join(parts[:at + 1])
        folders[folder] = folders.get(folder, 0) + 1
    n = len(hidden)
    shown = ", ".join(f"{f} ({k})" for f, k in list(folders.items())[:few]) + \
        (f" and {len(folders) - few} more" if len(folders) > few else "")
    return (f"{n} file{'' if n == 1 else 's'} in hidden folders not scored: {shown} (a folder whose name "
            "starts with '.' holds previews or deleted files, not parts; rename it without the dot to score it)")


def not_read_said(entries: list[tuple[str, str]], root: Union[str, os.PathLike, None] = None,
                  few: int = 3) -> list[str]:
    """(path, kind) entries (list_archive's ``not_read``), one phrase per kind, as train says
    them: the first ``few`` names (below ``root`` where they are), then why."""
    from ...vision.dataset import NOT_READ_WHY
    by_kind: dict[str, list[str]] = {}
    base = str(root).rstrip("/") + "/" if root is not None and Path(str(root)).is_dir() else None
    for path, kind in entries:
        by_kind.setdefault(kind, []).append(path[len(base):] if base and path.startswith(base) else path)
    said = []
    for kind, names in by_kind.items():
        why = {**NOT_READ_WHY, **_NOT_SCORED_WHY}[kind][0 if len(names) == 1 else 1]
        shown = ", ".join(names[:few]) + (f" and {len(names) - few} more" if len(names) > few else "")
        said.append(f"{shown}: {why}")
    return said


def _is_url(spec: str) -> bool:
    return "://" in spec and not spec.startswith("file://")


def _mtime_ns(info: dict[str, Any]) -> int:
    """Modification time from an fsspec ``info`` record (its key differs by store)."""
    for k in ("mtime", "LastModified", "last_modified", "updated", "created"):
        v = info.get(k)
        if v is None:
            continue
        if hasattr(v, "timestamp"):
            return int(v.timestamp() * 1e9)
        try:
            return int(float(v) * 1e9)
        except (TypeError, ValueError):
            continue
    return 0


def list_archive(spec: Union[str, os.PathLike], left_out: Optional[list[str]] = None,
                 not_read: Optional[list[tuple[str, str]]] = None,
                 hidden: Optional[list[str]] = None) -> list[ArchiveImage]:
    """Every image a folder (recursively), a glob pattern or an fsspec URL names, sorted by
    path, each once. ``left_out`` receives why a local file was not listed: gone while the
    archive was listed (a live archive: it crashed the run), or a name not in UTF-8 (no row
    can hold it: it stopped the run at its batch, every time). ``not_read`` receives
    (path, kind) for each other file found that is not scored (see :func:`not_read_kind`):
    a notes.txt, a phone's HEIC photos, a hidden .png were passed over without a word.
    ``hidden`` receives the path of each file in a hidden folder below the archive's root
    (:func:`hidden_folder`), not scored; a glob leaves those out itself unless it names them."""
    from ...vision.errors import DatasetError
    spec = str(spec)
    if spec.startswith("file://"):
        spec = spec[len("file://"):]
    out: list[ArchiveImage] = []
    others = not_read if not_read is not None else []
    in_hidden = hidden if hidden is not None else []
    if _is_url(spec):
        try:
            import fsspec
        except ImportError as exc:
            raise DatasetError(f"{spec}: reading from a URL needs fsspec: pip install 'lineguard[scale]'") from exc
        fs, root = fsspec.core.url_to_fs(spec)
        if any(c in root for c in "*?["):
            infos = {p: fs.info(p) for p in fs.glob(root)}
            # below the pattern's literal folders: what a wildcard matched, as a local glob skips them
            base = root[:min(root.find(c) for c in "*?[" if c in root)].rsplit("/", 1)[0]
        else:
            infos = fs.find(root, detail=True)
            base = root.rstrip("/")
        for p, info in infos.items():
            if info.get("type", "file") != "file":
                continue
            if p.startswith(base + "/") and hidden_folder(p[len(base) + 1:].split("/")[:-1]):
                in_hidden.append(fs.unstrip_protocol(p))
                continue
            if p.lower().endswith(IMAGE_SUFFIXES):      # hidden names too, as an object store listed them
                out.append(ArchiveImage(fs.unstrip_protocol(p), int(info.get("size") or 0), _mtime_ns(info)))
            elif (kind := not_read_kind(p.rsplit("/", 1)[-1])) != "ignored":
                others.append((fs.unstrip_protocol(p), str(kind)))
    else:
        root = Path(spec)
        said = left_out if left_out is not None else []
        if root.is_dir():
            found = list(root.rglob("*"))
        elif any(c in spec for c in "*?["):
            found = [Path(p) for p in globlib.glob(spec, recursive=True)]
        elif root.is_file():
            found = [root]
        else:
            raise DatasetError(f"{spec}: no such folder or file, and not a glob pattern or URL "
                               "(give a folder, a pattern like 'archive/**/*.png', or s3://bucket/prefix/)")
        files = []
        for p in found:
            # a folder's walk (rglob) enters hidden folders; a glob does not unless its pattern names them
            if root.is_dir() and hidden_folder(p.relative_to(root).parts[:-1]):
                if p.is_file():
                    in_hidden.append(str(p))
                continue
            if p.is_file():
                files.append(p)
            elif p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_symlink():
                # a link whose file is gone (an archive moved, a share not mounted) was
                # passed over without a word: it is an image this run did not score
                said.append(f"{p}: a link to {os.readlink(p)}, which is not there")
        # one row per image: a link (a file's, or a folder's a glob walks through) is the image
        # it points to, listed once (it was scored twice, and a station's counts kept both)
        seen: dict[str, Optional[ArchiveImage]] = {}      # None: left out, said once
        for p in files:
            kind = not_read_kind(p.name)
            if kind is not None:
                if kind != "ignored":
                    others.append((str(p), kind))
                continue
            try:
                path, st = str(p.resolve()), p.stat()
            except OSError:
                said.append(f"{p}: gone while the archive was listed")
                continue
            if path in seen:
                continue
            try:
                path.encode("utf-8")
            except UnicodeEncodeError:
                said.append(f"{os.fsencode(path)!r}: its name is not UTF-8 (a file copied from a Windows "
                            "share?); rename it to score it")
                seen[path] = None
                continue
            seen[path] = ArchiveImage(path, int(st.st_size), int(st.st_mtime_ns))
        out.extend(a for a in seen.values() if a is not None)
    if not out:
        holds = f"; it holds {'; '.join(not_read_said(others, spec))}" if others else ""
        if in_hidden:
            holds += f"; {hidden_said(in_hidden, spec)}"
        raise DatasetError(f"{spec}: no images found (expected files ending in {', '.join(IMAGE_SUFFIXES)}){holds}")
    out.sort(key=lambda a: a.path)
    return out


def _read_bytes(path: str) -> bytes:
    if _is_url(path):
        import fsspec
        with fsspec.open(path, "rb") as f:
            return f.read()
    with open(path, "rb") as f:
        return f.read()


# The photos of a batch judged together hold at most about this many pixels (of their own
# size, in which each part's map is made): a batch of 16 full-resolution 49 MP photos held
# 2.9 GB with their maps; past it a batch is judged in smaller groups, one photo at least.
BATCH_PIXELS = 64_000_000


class Rescorer:
    """Scores a batch of archive images; one per worker, so the model loads once.

    Takes a batch as a dict of columns (Ray Data's numpy batch format) with ``path``,
    ``size`` and ``mtime_ns``; returns a ``pyarrow.Table`` of :data:`COLUMNS`.
    An image that cannot be read or decoded gets a row with ``error`` set and no score:
    one bad file in a million must not end the job.
    """

    def __init__(self, model: bytes, threads: Optional[int] = 1, batch_size: int = 16):
        import lineguard  # noqa: F401  (registers the .onnx opener on this worker)
        from ...vision.inspector import Inspector
        self.inspector = Inspector.load(model, threads=threads)
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> Any:
        from ...vision.errors import LineguardError
        from ...vision.imageio import load_photo_for
        paths = [str(p) for p in batch["path"]]
        rows: list[dict[str, Any]] = [dict(path=p, size=int(batch["size"][i]), mtime_ns=int(batch["mtime_ns"][i]),
                                           sha256=None, error=None) for i, p in enumerate(paths)]
        photos, at, pixels = [], [], 0
        for i, p in enumerate(paths):
            try:
                data = _read_bytes(p)
                rows[i]["sha256"] = hashlib.sha256(data).hexdigest()
                photo = load_photo_for(self.inspector, data)
            except (OSError, LineguardError, ValueError) as exc:
                rows[i]["error"] = _why_unread(exc, p)
                continue
            photos.append(photo)
            at.append(i)
            pixels += photo.size_hw[0] * photo.size_hw[1]
            if pixels >= BATCH_PIXELS:
                self._score(photos, at, rows)
                photos, at, pixels = [], [], 0
        if photos:
            self._score(photos, at, rows)
        now = time.time()
        insp = self.inspector
        for r in rows:
            r.update(model_id=insp.model_id, model_version=insp.model_version, scored_at=now)
        pa = require_pyarrow()
        # typed here, so a column of unreadable images stays null instead of NaN
        return pa.Table.from_pylist(rows, schema=_schema())


    def _score(self, photos: list[Any], at: list[int], rows: list[dict[str, Any]]) -> None:
        """Judge ``photos`` (rows ``at``) and write each result's numbers into its row."""
        results: list[Any] = []
        try:
            results = self.inspector.inspect_batch(photos, batch_size=self.batch_size)
        except Exception:  # noqa: BLE001 - find the part that fails instead of losing the batch
            results = []
            for photo in photos:
                try:
                    results.append(self.inspector.inspect(photo))
                except Exception as exc:  # noqa: BLE001
                    results.append(exc)
        for i, res in zip(at, results):
            if isinstance(res, Exception):
                rows[i]["error"] = f"{type(res).__name__}: {res}"
                continue
            areas = [r.area_px for r in res.regions]
            rows[i].update(score=float(res.score), verdict=res.verdict.value, threshold=float(res.threshold),
                           review_threshold=float(res.ok_threshold), pixel_threshold=float(res.pixel_threshold),
                           n_regions=len(areas), largest_region_area=max(areas) if areas else 0,
                           # as the station's record says it: a REVIEW for a photo the model
                           # cannot judge (a lamp out, a blurred lens) is told from a real doubt
                           photo_issues=list(res.photo_issues) if res.photo_issues else None)


def _why_unread(exc: Exception, path: str) -> str:
    """The row's reason: an image error read from the file's bytes is named "<0 bytes>"
    by the reader, so its problem and advice alone (the row names the file), the advice
    for a file of that name."""
    from ...vision.errors import ImageError
    from ...vision.imageio import NOT_AN_IMAGE, not_an_image_hint
    if isinstance(exc, ImageError):
        hint = not_an_image_hint(path) if exc.problem == NOT_AN_IMAGE else exc.hint
        return f"ImageError: {exc.problem}" + (f" ({hint})" if hint else "")
    return f"{type(exc).__name__}: {exc}"


def _schema():
    pa = require_pyarrow()
    return pa.schema([("path", pa.string()), ("size", pa.int64()), ("mtime_ns", pa.int64()),
                      ("sha256", pa.string()), ("score", pa.float64()), ("verdict", pa.string()),
                      ("threshold", pa.float64()), ("review_threshold", pa.float64()),
                      ("pixel_threshold", pa.float64()), ("n_regions", pa.int32()),
                      ("largest_region_area", pa.int64()), ("model_id", pa.string()),
                      ("model_version", pa.string()), ("error", pa.string()), ("scored_at", pa.float64()),
                      # added 2026-12-04: a part written before is given it (null) when its
                      # folder is resumed (ResultsFolder.upgrade_parts), so the folder reads as one table
                      ("photo_issues", pa.list_(pa.string()))])


def refuse_other_model(parts: Iterable[Path], model_id: str) -> None:
    """Refuse a results folder whose parts another model scored: a folder (and a station
    database run) is one model's results, or a resume would skip every image and call the
    old model's scores the new one's."""
    import pyarrow.parquet as pq
    from ...vision.errors import DatasetError
    for part in parts:
        ids = set(pq.read_table(part, columns=["model_id"]).column("model_id").to_pylist()) - {None}
        foreign = ids - {model_id}
        if foreign:
            raise DatasetError(f"{part.parent} holds results of model {sorted(foreign)[0]}, not of this model "
                               f"({model_id}): give a new --out for a re-score with another model")


def refuse_moved_archive(out: Path, listed: list[ArchiveImage], elsewhere: dict[tuple[str, int, int], str]) -> None:
    """:class:`DatasetError` when ``out`` holds none of the listed images by path but does
    hold most of them at another path, each by its name, size and modification time: the
    archive was moved or mounted elsewhere. Resumed, every image was scored again under its
    new path and the folder held two rows each, without a word.

    Refused rather than resumed by the path below the archive's folder: the rows' paths are
    what a reader (and a station database's copy) joins on, and a folder naming one archive
    under two roots, half of them gone, is not one table of it; an archive copied (not moved)
    looks the same from here. ``elsewhere``: (file name, size, mtime_ns) -> path, of the
    folder's rows whose path is not listed."""
    from ...vision.errors import DatasetError
    found = [(a.path, elsewhere[k]) for a in listed
             if (k := (a.path.rsplit("/", 1)[-1], a.size, a.mtime_ns)) in elsewhere]
    if not found or 2 * len(found) < len(listed):
        return                   # another archive's rows (a day's folder before this one): resumed
    new, old = found[0]
    # the folders the two paths differ in: the same names below them
    a, b = new.split("/"), old.split("/")
    while len(a) > 1 and len(b) > 1 and a[-1] == b[-1]:
        a, b = a[:-1], b[:-1]
    new_root, old_root = "/".join(a) or "/", "/".join(b) or "/"
    raise DatasetError(f"{out} holds these images' results under another folder: {old_root} ({len(found)} of the "
                       f"{len(listed)} listed images by name, size and modification time), not {new_root}. Was the "
                       f"archive moved, or mounted elsewhere? Resumed here, every image would be scored again and "
                       f"the folder would hold two rows of each. Give a new --out to score the archive at "
                       f"{new_root}, or make it reachable at {old_root} again and give --images {old_root} to resume")


# --out names that ask for a spreadsheet, not a folder of Parquet parts
SPREADSHEET_SUFFIXES = (".csv", ".xlsx", ".xls", ".txt", ".ods")


def _ours(name: str) -> bool:
    """A name a results folder may hold: its parts, and dot-names (the lock, temporary
    parts; a Mac's .DS_Store) and _-names (Spark's _SUCCESS), which readers skip."""
    return name.startswith((".", "_")) or (name.startswith("part-") and name.endswith(".parquet"))


def result_parts(folder: Path) -> list[Path]:
    """The complete Parquet parts of a results folder, in the order written (none: not a
    folder); what every reader of a ``--out`` folder reads (resume, --csv, rescore-compare)."""
    return sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []


class ResultsFolder:
    """``results.parquet/``: complete part files only, each written under a temporary
    name and renamed into place; what resume reads to know which images are done."""

    def __init__(self, path: Union[str, os.PathLike]):
        from ...vision.errors import DatasetError
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise DatasetError(f"{self.path} is a file; results are a folder of Parquet parts "
                               "(give a new path, e.g. results.parquet)")
        if self.path.suffix.lower() in SPREADSHEET_SUFFIXES and not self.parts():
            # --out scores.csv made a folder of Parquet named scores.csv, and exited 0
            raise DatasetError(f"--out {self.path}: --out is the results folder, of Parquet parts (pandas, DuckDB, "
                               f"Spark read it as one table), not a spreadsheet: give --out "
                               f"{self.path.with_suffix('.parquet')}, and --csv {self.path.with_suffix('.csv')} "
                               "for a CSV of its rows as well")
        if self.path.is_dir():
            foreign = sorted(e.name + ("/" if e.is_dir() else "") for e in self.path.iterdir() if not _ours(e.name))
            if foreign:
                # parts written beside a report.docx: the folder no longer reads as one table
                raise DatasetError(f"--out {self.path} holds files rescore did not write "
                                   f"({', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}): a results "
                                   "folder holds its Parquet parts only, so that it reads as one table; give "
                                   "a new --out (a folder that does not exist yet, e.g. "
                                   f"{self.path / 'rescore.parquet'})")

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Held while a run writes here. Two runs on one folder (a cron job started again
        while the last still ran) deleted each other's half-written parts as "unfinished"
        and scored every image twice; the second is refused now."""
        from ...vision.errors import DatasetError
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = hold_lock(self.path / ".lock", wait=False)
        except OSError as exc:
            raise DatasetError(f"cannot write the results folder {self.path}: {exc.strerror or exc}. "
                               "Give an --out this user may write (or fix the folder's permissions)") from exc
        if fd is None:
            raise DatasetError(f"another rescore is writing to {self.path}: wait for it to end, "
                               "or give another --out")
        try:
            self._probe_write()
            yield
        finally:
            os.close(fd)

    def _probe_write(self) -> None:
        """Write and remove a small file, as a part is written: a folder made read-only (or
        immutable) after its first run took its lock file still, scored a whole chunk, and
        ended in a traceback at the first part."""
        from ...vision.errors import DatasetError
        probe = self.path / f".probe-{uuid.uuid4().hex[:8]}.tmp"
        try:
            with open(probe, "wb") as f:
                f.write(b"lineguard rescore: can this folder be written?\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise DatasetError(f"cannot write in the results folder {self.path}: {exc.strerror or exc}. "
                               "Give an --out this user may write (read-only, immutable or full?)") from exc
        finally:
            with contextlib.suppress(OSError):
                probe.unlink()

    def drop_unfinished(self) -> None:
        """Remove parts a killed run left half-written (never read: only ``part-*`` are)."""
        if self.path.is_dir():
            for tmp in [*self.path.glob(".part-*.tmp"), *self.path.glob(".probe-*.tmp")]:
                tmp.unlink(missing_ok=True)

    def parts(self) -> list[Path]:
        return result_parts(self.path)

    def upgrade_parts(self) -> int:
        """Give parts written before a column was added (photo_issues) that column, null,
        each rewritten in place (whole or not at all): pyarrow, pandas and DuckDB read a
        folder by its first part's columns, and a resumed folder's first parts are its
        oldest. Returns how many were rewritten."""
        import pyarrow.parquet as pq
        schema = _schema()
        n = 0
        for part in self.parts():
            have = pq.read_schema(part)
            if set(have.names) >= set(schema.names):
                continue
            pa = require_pyarrow()
            table = pq.read_table(part)
            for name in schema.names:
                if name not in table.column_names:
                    table = table.append_column(name, pa.nulls(table.num_rows, type=schema.field(name).type))
            self._write_atomic(table.select(schema.names).cast(schema), part.name)
            n += 1
        return n

    def refuse_other_model(self, model_id: str) -> None:
        """:class:`DatasetError` if a part holds another model's rows (see :func:`refuse_other_model`)."""
        refuse_other_model(self.parts(), model_id)

    def resume(self, listed: Iterable[ArchiveImage]) -> tuple[set[tuple[str, int, int]], int, dict[str, int]]:
        """Leave each image one row, and return (the keys already scored, rows taken out,
        the listed images already scored by verdict: "error" for unreadable ones).

        A row of a listed image whose size or modification time differs from the listing's
        is stale: the file was rewritten after it was scored. It is taken out now, so the
        image is scored again and its new row is the only one (a kill before that leaves
        it unscored, and the next run scores it). Two rows of one path (a folder written
        before this was kept, or two runs at once) keep the newest scored. Images not in
        this listing keep their rows: an archive's files may be deleted or moved after
        scoring, and their results still stand. But an archive moved (or mounted elsewhere)
        as a whole is refused (:func:`refuse_moved_archive`): every image was scored again
        under its new path, two rows each."""
        import pyarrow as pa
        import pyarrow.parquet as pq
        listed = list(listed)
        current = {a.path: a.key for a in listed}
        parts = self.parts()
        index: list[tuple[list[tuple[str, int, int]], list[float], list[Optional[str]]]] = []
        newest: dict[str, tuple[float, int, int]] = {}   # path -> (scored_at, part, row) of the row it keeps
        elsewhere: dict[tuple[str, int, int], str] = {}  # (name, size, mtime) -> path, of rows not listed
        for pi, part in enumerate(parts):
            t = pq.read_table(part, columns=["path", "size", "mtime_ns", "scored_at", "verdict", "error"])
            keys = list(zip(t.column("path").to_pylist(), t.column("size").to_pylist(),
                            t.column("mtime_ns").to_pylist()))
            at = [s or 0.0 for s in t.column("scored_at").to_pylist()]
            said = [("error" if e is not None else str(v))
                    for v, e in zip(t.column("verdict").to_pylist(), t.column("error").to_pylist())]
            for ri, key in enumerate(keys):
                if key[0] not in current:
                    elsewhere[(key[0].rsplit("/", 1)[-1], key[1], key[2])] = key[0]
                if current.get(key[0], key) != key:
                    continue                                   # the file changed since: scored again
                rank = (at[ri], pi, ri)
                if rank > newest.get(key[0], (-1.0, -1, -1)):
                    newest[key[0]] = rank
            index.append((keys, at, said))
        if elsewhere and not any(k[0] in current for keys, _, _ in index for k in keys):
            refuse_moved_archive(self.path, listed, elsewhere)
        done: set[tuple[str, int, int]] = set()
        before: dict[str, int] = {}
        dropped = 0
        for pi, (part, (keys, at, said)) in enumerate(zip(parts, index)):
            keep = [newest.get(key[0]) == (at[ri], pi, ri) for ri, key in enumerate(keys)]
            done.update(key for key, k in zip(keys, keep) if k)
            for key, k, v in zip(keys, keep, said):
                if k and key[0] in current:
                    before[v] = before.get(v, 0) + 1
            if all(keep):
                continue
            dropped += keep.count(False)
            table = pq.read_table(part).filter(pa.array(keep))
            if table.num_rows:
                self._write_atomic(table, part.name)       # same name: a station database that copied it
            else:                                           # already holds the rows it keeps
                part.unlink()
                fsync_dir(self.path)
        return done, dropped, before

    def write(self, table: Any) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        # sortable by time, unique across runs and machines
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        return self._write_atomic(table, name)

    def _write_atomic(self, table: Any, name: str) -> Path:
        import pyarrow.parquet as pq
        tmp = self.path / f".{name}.tmp"
        pq.write_table(table, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self.path / name)
        fsync_dir(self.path)      # the rename itself survives a power cut only once the folder is synced
        return self.path / name


def write_csv(results: Union[str, os.PathLike], csv_path: Union[str, os.PathLike]) -> int:
    """Every row of the results folder ``results`` (this run's and earlier runs') as one CSV
    file, for a spreadsheet: photo_issues joined with "; ". Written beside and renamed, so
    the file is whole or the old one stays. Returns the rows written."""
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq
    from ...vision.atomic import atomic_write_bytes
    pa = require_pyarrow()
    parts = ResultsFolder(results).parts()
    table = pa.concat_tables([pq.read_table(p) for p in parts]) if parts else _schema().empty_table()
    # a list column has no CSV form: one cell, the issues joined
    at = table.schema.get_field_index("photo_issues")
    if at >= 0:
        table = table.set_column(at, "photo_issues", pc.binary_join(table.column("photo_issues"), "; "))
    sink = pa.BufferOutputStream()
    # sorted by the paths themselves, then made safe: an apostrophe does not move a row
    pcsv.write_csv(_spreadsheet_safe_text(table.sort_by("path")), sink)
    atomic_write_bytes(Path(csv_path), sink.getvalue().to_pybytes())
    return table.num_rows


def _spreadsheet_safe_text(table: Any) -> Any:
    """``table`` with each text cell as the station's exports write it
    (:func:`~lineguard.line.spreadsheet_cells.spreadsheet_safe`): a cell a spreadsheet would run
    as a formula (a model version "=HYPERLINK(...)", a path "+cmd.png" from a folder another
    tool wrote) starts with an apostrophe. Numbers stay numbers, an empty cell stays empty."""
    from ..spreadsheet_cells import spreadsheet_safe
    pa = require_pyarrow()
    for i, f in enumerate(table.schema):
        if pa.types.is_string(f.type) or pa.types.is_large_string(f.type):
            cells = [None if v is None else spreadsheet_safe(v) for v in table.column(i).to_pylist()]
            table = table.set_column(i, f.name, pa.array(cells, type=f.type))
    return table


@dataclass
class RescoreSummary:
    listed: int
    skipped: int
    scored: int = 0
    errors: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    parts_written: int = 0
    mode: str = "single process"
    # until the first results came back: actors starting and loading the model (Ray), or
    # the model loading (one process); what a longer archive spreads over more images
    first_batch_s: float = 0.0
    first_batch_rows: int = 0
    # rows taken out of the folder before scoring: images whose file changed since (scored
    # again, in this run) and second rows of one path; the folder keeps one row per image
    replaced: int = 0
    # files of the archive not listed, and why (list_archive)
    left_out: list[str] = field(default_factory=list)
    # files of the archive that are not images rescore scores: (path, kind) (list_archive)
    not_read: list[tuple[str, str]] = field(default_factory=list)
    # files in hidden folders of the archive (.thumbnails, .Trash-1000), not scored (list_archive)
    hidden: list[str] = field(default_factory=list)
    # the listed images scored by an earlier run (``skipped``), by verdict ("error": unreadable):
    # with this run's, the whole archive's (a done archive's resume said "scored 0 ... none")
    before: dict[str, int] = field(default_factory=dict)
    # from the call to the first image sent to be scored: loading the model, listing the
    # archive, reading the folder, starting Ray; ``seconds`` (and the progress line's rate) start after
    startup_s: float = 0.0

    def archive_counts(self) -> dict[str, int]:
        """The listed images' verdicts, earlier runs' and this one's ("error": unreadable)."""
        counts = dict(self.before)
        for k, v in [*self.verdicts.items(), ("error", self.errors)]:
            if v:
                counts[k] = counts.get(k, 0) + v
        return counts

    @property
    def images_per_s(self) -> float:
        return self.scored / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"listed": self.listed, "skipped": self.skipped, "scored": self.scored, "errors": self.errors,
                "verdicts": dict(self.verdicts), "seconds": round(self.seconds, 3),
                "images_per_s": round(self.images_per_s, 2), "parts_written": self.parts_written,
                "replaced": self.replaced, "mode": self.mode, "first_batch_s": round(self.first_batch_s, 3),
                "steady_images_per_s": round(self.steady_images_per_s, 2), "left_out": list(self.left_out),
                "not_read": [f"{p}: {k}" for p, k in self.not_read], "hidden": len(self.hidden),
                "before": dict(self.before),
                "archive": self.archive_counts(), "startup_s": round(self.startup_s, 3)}

    @property
    def steady_images_per_s(self) -> float:
        """The rate after the first results: start-up (actors, model load) left out."""
        n, t = self.scored - self.first_batch_rows, self.seconds - self.first_batch_s
        return n / t if n > 0 and t > 0 else self.images_per_s


def _batches_single(todo: list[ArchiveImage], scorer: "Rescorer", batch_size: int) -> Iterator[Any]:
    for i in range(0, len(todo), batch_size):
        chunk = todo[i:i + batch_size]
        yield scorer({"path": np.array([a.path for a in chunk], dtype=object),
                      "size": np.array([a.size for a in chunk], dtype=np.int64),
                      "mtime_ns": np.array([a.mtime_ns for a in chunk], dtype=np.int64)})


# seconds between looks at the cluster's head, and failed looks in a row that mean it is gone
WATCH_EVERY_S = 2.0
WATCH_MISSES = 5


def _watch_head(ray: Any, ray_address: str, on_lost: Callable[[], None]) -> Callable[[], None]:
    """Look at the head's port every few seconds while the run goes on, and call ``on_lost``
    once when it stops answering; returns the function that ends the watch.

    When the head goes (``ray stop`` there, a crash, another user's ``--ray local`` run that
    ended), Ray ends this process itself a minute later from native code, where Python cannot
    catch it: the run ended with exit 1 and no word of lineguard's. This says it first."""
    import threading
    from . import _host_port
    if ray_address.startswith("ray://"):
        hp = _host_port(ray_address)
    else:
        try:
            hp = _host_port(ray.get_runtime_context().gcs_address)
        except Exception:  # noqa: BLE001 - no address to watch: nothing said, as before
            hp = None
    stop = threading.Event()
    if hp is None:
        return stop.set

    def watch() -> None:
        import socket
        misses = 0
        while not stop.wait(WATCH_EVERY_S):
            try:
                socket.create_connection(hp, timeout=WATCH_EVERY_S).close()
                misses = 0
            except OSError:
                misses += 1
                if misses == WATCH_MISSES:
                    on_lost()
                    return
    threading.Thread(target=watch, name="lineguard-ray-head-watch", daemon=True).start()
    return stop.set


def ray_lost_message(ray_address: str, out: Union[str, os.PathLike], parts: int) -> str:
    return (f"lost the Ray cluster at {ray_address}: its head stopped answering (stopped, crashed, or the end "
            f"of the run that started it). The {parts} parts in {out} are complete; run the same command again, "
            "on a running cluster, to resume")


@contextlib.contextmanager
def ray_processes_in_their_own_group() -> Iterator[None]:
    """The processes a private Ray starts meanwhile (its GCS, raylet, and the raylet's
    workers: rescore's actors, serve-ray's replicas) start in a process group of their own,
    so a SIGTERM to the command's whole group (``kill -TERM -- -PGID``, ``timeout``) reaches
    the command alone, which stops its Ray itself, as after Ctrl-C or a SIGTERM to it alone.

    They died with the command's group at once: serve-ray's replicas before ``serve.shutdown``
    could close their stations (their runs left open, read as outages; the stop waited 30 s
    on a dead controller), and rescore ended with exit 1 and the traceback of Ray's monitor.
    Ray itself does this on Windows (CREATE_NEW_PROCESS_GROUP); on Linux its processes still
    die with the process that started them (Ray's fate-sharing), a kill -9 included. Ray has
    no setting for it: its Popen is given a ``preexec_fn`` that starts a group first."""
    try:
        from ray._private import services
        base = services.ConsolePopen
    except (ImportError, AttributeError):       # a Ray without it: the group stays shared
        yield
        return
    if os.name == "nt":
        yield
        return

    class OwnGroupPopen(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            then = kwargs.get("preexec_fn")

            def own_group() -> None:
                os.setpgid(0, 0)
                if then is not None:
                    then()
            kwargs["preexec_fn"] = own_group
            super().__init__(*args, **kwargs)

    services.ConsolePopen = OwnGroupPopen
    try:
        yield
    finally:
        services.ConsolePopen = base


def join_ray(ray_address: str, num_cpus: Optional[int]) -> Any:
    """:func:`connect`, a private Ray's processes in a group of their own
    (:func:`ray_processes_in_their_own_group`). A SIGTERM while Ray starts is an interrupt,
    as one a second later is: Ray's own handler, in place while ``ray.init`` runs, ended
    the command with exit 15 and not a word (the run recorded "SystemExit: 15")."""
    import signal
    try:
        with ray_processes_in_their_own_group() if ray_address == "local" else contextlib.nullcontext():
            return connect(ray_address, num_cpus=num_cpus)
    except SystemExit as exc:
        if exc.code != signal.SIGTERM:
            raise
        raise KeyboardInterrupt() from None


def _batches_ray(todo: list[ArchiveImage], model: bytes, batch_size: int, concurrency: int,
                 ray_address: str, num_cpus: Optional[int],
                 on_lost: Optional[Callable[[], None]] = None) -> Iterator[Any]:
    ray = join_ray(ray_address, num_cpus)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False   # the CLI draws one progress line of its own
    ctx.print_on_execution_start = False
    items = [{"path": a.path, "size": a.size, "mtime_ns": a.mtime_ns} for a in todo]
    # blocks of a few batches: results stream back as they are made instead of at the end
    blocks = max(1, min(len(items), math.ceil(len(items) / (4 * batch_size))))
    ds = ray.data.from_items(items, override_num_blocks=blocks)
    # the model's bytes go with each actor's constructor: workers need no copy of the file
    ds = ds.map_batches(Rescorer, fn_constructor_kwargs={"model": model, "threads": 1, "batch_size": batch_size},
                        batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=concurrency), num_cpus=1,
                        batch_format="numpy")
    unwatch = _watch_head(ray, ray_address, on_lost) if on_lost is not None else (lambda: None)
    try:
        # batches of --batch-size, as the single process yields them, so a part closes at the first
        # whole batch past --chunk-rows: whole blocks (4 batches) made every part 4 batches or more
        yield from ds.iter_batches(batch_size=batch_size, batch_format="pyarrow")
    finally:
        unwatch()


# Below about this many images one process is faster than Ray: its start-up (a local Ray,
# then the actors loading the model: 10-15 s) outweighs what it saves (docs/scale.md)
RAY_WORTH_FROM = 10_000


def ray_actors(asked: int, cpus: Optional[float], local: bool) -> tuple[int, Optional[str]]:
    """(actors to start, what to say, or None) for ``--concurrency asked`` on a Ray with
    ``cpus`` CPUs (None: not known). Each actor takes one CPU: ``--ray local --num-cpus 2
    --concurrency 8`` ran two at a time and its summary said "x8". A local Ray has the CPUs
    it was started with, so no more are started; a cluster may grow (an autoscaler), so
    all are asked for there and the line says how many run now."""
    if not cpus or asked <= int(cpus):
        return asked, None
    n = max(1, int(cpus))
    if local:
        return n, (f"--concurrency {asked}: only {n} actor{'s' if n > 1 else ''} fit{'' if n > 1 else 's'} on "
                   f"this --ray local's {n} CPU{'s' if n > 1 else ''} (one CPU each; --num-cpus sets them, all of "
                   f"this machine's by default): running {n}")
    return asked, (f"--concurrency {asked}: the Ray cluster has {n} CPU{'s' if n > 1 else ''} now, so at most {n} "
                   "actors run at once (one CPU each); the others wait for CPUs (or for an autoscaler to add nodes)")


def ray_small_archive(n: int) -> Optional[str]:
    """What to say when ``n`` images are to be scored on Ray, or None: below RAY_WORTH_FROM
    one process is faster."""
    if n >= RAY_WORTH_FROM:
        return None
    return (f"{n} images to score: below about {RAY_WORTH_FROM:,} images one process is faster than Ray "
            "(Ray's start-up, 10-15 s, outweighs what it saves; docs/scale.md): leave out --ray next time")


def _cluster_cpus(ray: Any) -> Optional[float]:
    try:
        return float(ray.cluster_resources().get("CPU", 0)) or None
    except Exception:  # noqa: BLE001 - not known: nothing said, all actors asked for
        return None


class RescoreStopped(LineguardError):
    """The run stopped part way (the Ray cluster lost, a part that cannot be written); the
    parts written stand, and the message says how to go on. The CLI says it in one line."""


def _stopping_clearly(stream: Iterable[Any], ray_address: Optional[str], out: Path,
                      summary: RescoreSummary) -> Iterator[Any]:
    """``stream``, with a Ray error (the cluster lost, its head stopped, the actors gone)
    made one :class:`RescoreStopped` line that names the cluster and says how to resume."""
    try:
        yield from stream
    except Exception as exc:  # noqa: BLE001 - only Ray's own errors are turned into a line
        if ray_address is None or not _is_ray_error(exc):
            raise
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise RescoreStopped(f"the run on the Ray cluster at {ray_address} stopped part way ({type(exc).__name__}: "
                             f"{first}): was the cluster stopped or lost? {summary.parts_written} parts already "
                             f"in {out} stand; run the same command again to resume") from exc


def _tell(progress: Progress, stage: str, done: int, total: int, said: Optional[str]) -> None:
    """Say ``said`` (if any) when it happens: through the progress callback (the CLI
    words it from ``stage``, ``done`` and ``total``), else as a logged warning."""
    if said is None:
        return
    if progress:
        progress(stage, done, total)
    else:
        import logging
        logging.getLogger(__name__).warning(said)


def _is_ray_error(exc: BaseException) -> bool:
    try:
        from ray.exceptions import RayError
    except ImportError:
        return False
    return isinstance(exc, (RayError, ConnectionError))


def rescore(model: Union[str, os.PathLike], images: Union[str, os.PathLike], out: Union[str, os.PathLike],
            ray_address: Optional[str] = None, concurrency: int = 2, batch_size: int = 16,
            chunk_rows: int = DEFAULT_CHUNK_ROWS, threads: Optional[int] = None, num_cpus: Optional[int] = None,
            progress: Progress = None, archive: Optional[list[ArchiveImage]] = None,
            recorder: Optional["StationRecorder"] = None) -> RescoreSummary:
    """Score every image under ``images`` not yet in ``out`` and append the rows to ``out``.

    ``ray_address`` None: in this process (``threads`` for the runtime); else a Ray
    address or ``local``, with ``concurrency`` actors of one CPU each. Images must be
    readable by every worker at the same path (a shared folder or an object store URL).
    ``recorder``: also copy each part into a station database (:mod:`.rescore_db`);
    parts a killed run wrote but did not copy are copied before anything is scored.
    :class:`DatasetError` if ``out`` holds another model's results; an image whose file
    changed since it was scored replaces its row (:meth:`ResultsFolder.resume`). A run
    that ends unfinished on an error or an interrupt says so in its station database
    record (``stopped_at``, ``stop_reason``): it read "running" for ever.
    """
    try:
        return _rescore(model, images, out, ray_address, concurrency, batch_size, chunk_rows, threads, num_cpus,
                        progress, archive, recorder)
    except BaseException as exc:
        if recorder is not None:         # nothing recorded before its run began: stopped() knows
            recorder.stopped(stop_reason(exc))
        raise


def stop_reason(exc: BaseException) -> str:
    """What a run's record says when ``exc`` ended it unfinished."""
    if isinstance(exc, KeyboardInterrupt):
        said = "interrupted (Ctrl-C or SIGTERM)"
    else:
        said = str(exc).strip() or type(exc).__name__
        if not isinstance(exc, LineguardError):     # ours say what to do; others get their kind
            said = f"{type(exc).__name__}: {said}"
    if "run the same command again" in said:        # RescoreStopped, StationDbError: said already
        return said
    return f"{said.rstrip('.')}. The results written before stand; run the same command again to resume"


def _rescore(model: Union[str, os.PathLike], images: Union[str, os.PathLike], out: Union[str, os.PathLike],
             ray_address: Optional[str], concurrency: int, batch_size: int, chunk_rows: int,
             threads: Optional[int], num_cpus: Optional[int], progress: Progress,
             archive: Optional[list[ArchiveImage]], recorder: Optional["StationRecorder"]) -> RescoreSummary:
    started = time.perf_counter()
    require_pyarrow()
    if batch_size < 1 or concurrency < 1 or chunk_rows < 1:
        raise ValueError("batch size, concurrency and chunk rows must each be at least 1")
    results = ResultsFolder(out)
    model_bytes = Path(model).read_bytes()
    from ...vision.errors import BundleError
    try:
        # also with Ray: a broken or foreign model file is refused here, with its own
        # message, rather than as actors dying on the cluster's workers
        scorer = Rescorer(model_bytes, threads=threads if ray_address is None else 1, batch_size=batch_size)
    except BundleError as exc:
        raise BundleError(str(exc).replace("<bytes>", str(model))) from exc
    if ray_address is not None:
        # seconds, before anything is written: an address where nothing answers hung for ever
        # with the folder locked and a station database run left unfinished
        check_reachable(ray_address)
    left_out: list[str] = []
    not_read: list[tuple[str, str]] = []
    hidden: list[str] = []
    listed = archive
    if listed is None and not results.path.exists():
        # nothing there to resume: list first, so a typo in --images leaves no empty folder
        listed = list_archive(images, left_out, not_read, hidden)
    with results.writing():     # the folder is this run's alone from here
        results.drop_unfinished()
        # the folder is one model's results, so the model is loaded even with nothing left to
        # score: without it a resume with another model skipped every image and said so
        results.refuse_other_model(scorer.inspector.model_id)
        results.upgrade_parts()
        if listed is None:
            listed = list_archive(images, left_out, not_read, hidden)
        done, replaced, before = results.resume(listed)
        todo = [a for a in listed if a.key not in done]
        summary = RescoreSummary(listed=len(listed), skipped=len(listed) - len(todo), replaced=replaced,
                                 mode="single process" if ray_address is None else f"ray {ray_address} x{concurrency}",
                                 left_out=left_out, not_read=not_read, before=before,
                                 hidden=hidden)
        if summary.skipped and progress and recorder is None:
            progress("resume", summary.skipped, summary.listed)   # said now, not only at the end
        if not todo and recorder is None:
            summary.startup_s = time.perf_counter() - started
            return summary
        if todo and ray_address is not None:
            # joined before the station database run row is touched: a cluster that cannot be
            # joined leaves no run marked as running
            ray = join_ray(ray_address, num_cpus)
            _tell(progress, "ray-small", len(todo), RAY_WORTH_FROM, ray_small_archive(len(todo)))
            cpus = _cluster_cpus(ray)
            actors, said = ray_actors(concurrency, cpus, ray_address == "local")
            _tell(progress, "ray-actors", int(cpus or 0), concurrency, said)
            if actors != concurrency:
                summary.mode = f"ray {ray_address} x{actors} ({concurrency} asked)"
                concurrency = actors
        if recorder is not None:
            # a run is known by its folder and model (the folder was checked to be this model's above)
            out_key = str(out) if "://" in str(out) else str(Path(out).resolve())
            # the archive as an absolute path: a relative one means nothing read from another folder
            images_key = str(images) if _is_url(str(images)) else os.path.abspath(str(images).removeprefix("file://"))
            recorder.model_id = scorer.inspector.model_id
            recorder.begin(out_key, images_key, scorer.inspector.model_id, scorer.inspector.model_version,
                           summary.mode, len(listed), images_as_given=str(images))
            if summary.skipped and progress:
                # once the database took the run: said before it refused the folder as another
                # archive's, "resume: 60 of 60 ... skipped" read as a resume that was not
                progress("resume", summary.skipped, summary.listed)
            recorder.load_missing(results.parts())
            if not todo:
                recorder.finish()
                summary.startup_s = time.perf_counter() - started
                return summary
        t0 = time.perf_counter()
        summary.startup_s = t0 - started
        if progress:
            # the progress line's clock starts here, as ``seconds`` does: its rate and the
            # summary's were two clocks (24.6 against 47.4 images/s on one Ray run)
            progress("start", 0, len(todo))
        if ray_address is None:
            stream: Iterable[Any] = _batches_single(todo, scorer, batch_size)
        else:
            def lost() -> None:
                if progress:
                    progress("ray-lost", summary.parts_written, len(todo))
                else:
                    import logging
                    logging.getLogger(__name__).error(ray_lost_message(ray_address, results.path,
                                                                       summary.parts_written))
            stream = _batches_ray(todo, model_bytes, batch_size, concurrency, ray_address, num_cpus, on_lost=lost)
        pa = require_pyarrow()
        pending: list[Any] = []

        def flush() -> None:
            if pending:
                table = pa.concat_tables(pending).cast(_schema())
                try:
                    part = results.write(table)
                except OSError as exc:
                    # a full disk, a folder made read-only mid-run: the parts before are complete
                    raise RescoreStopped(
                        f"cannot write a part to {results.path}: {exc.strerror or exc}. The {summary.parts_written} "
                        f"parts written before are complete; free space (or fix the folder) and run the same "
                        f"command again to resume") from exc
                if recorder is not None:
                    recorder.load_part(part, table)
                summary.parts_written += 1
                pending.clear()

        try:
            for batch in _stopping_clearly(stream, ray_address, results.path, summary):
                pending.append(batch)
                for v, e in zip(batch.column("verdict").to_pylist(), batch.column("error").to_pylist()):
                    if e is not None:
                        summary.errors += 1
                    else:
                        summary.verdicts[str(v)] = summary.verdicts.get(str(v), 0) + 1
                if not summary.first_batch_rows:
                    summary.first_batch_s, summary.first_batch_rows = time.perf_counter() - t0, batch.num_rows
                summary.scored += batch.num_rows
                if sum(t.num_rows for t in pending) >= chunk_rows:
                    flush()
                if progress:
                    progress("rescore", summary.scored, len(todo))
        except RescoreStopped:
            if pending and ray_address is not None:
                with contextlib.suppress(RescoreStopped):
                    flush()         # what came back before the cluster was lost is kept
            raise
        flush()
        summary.seconds = time.perf_counter() - t0
        if recorder is not None:
            recorder.finish()
        return summary
