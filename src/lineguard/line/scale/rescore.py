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

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# Rows per Parquet part: what a killed run can lose at most, and the unit of resume.
DEFAULT_CHUNK_ROWS = 1000
# Progress(stage, done, total), as the CLI's progress line takes it
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


def list_archive(spec: Union[str, os.PathLike], left_out: Optional[list[str]] = None) -> list[ArchiveImage]:
    """Every image a folder (recursively), a glob pattern or an fsspec URL names, sorted by
    path, each once. ``left_out`` receives why a local file was not listed: gone while the
    archive was listed (a live archive: it crashed the run), or a name not in UTF-8 (no row
    can hold it: it stopped the run at its batch, every time)."""
    from ...vision.errors import DatasetError
    spec = str(spec)
    if spec.startswith("file://"):
        spec = spec[len("file://"):]
    out: list[ArchiveImage] = []
    if _is_url(spec):
        try:
            import fsspec
        except ImportError as exc:
            raise DatasetError(f"{spec}: reading from a URL needs fsspec: pip install 'lineguard[scale]'") from exc
        fs, root = fsspec.core.url_to_fs(spec)
        if any(c in root for c in "*?["):
            infos = {p: fs.info(p) for p in fs.glob(root)}
        else:
            infos = fs.find(root, detail=True)
        for p, info in infos.items():
            if info.get("type", "file") == "file" and p.lower().endswith(IMAGE_SUFFIXES):
                out.append(ArchiveImage(fs.unstrip_protocol(p), int(info.get("size") or 0), _mtime_ns(info)))
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
            if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."):
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
        raise DatasetError(f"{spec}: no images found (expected files ending in {', '.join(IMAGE_SUFFIXES)})")
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


class ResultsFolder:
    """``results.parquet/``: complete part files only, each written under a temporary
    name and renamed into place; what resume reads to know which images are done."""

    def __init__(self, path: Union[str, os.PathLike]):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            from ...vision.errors import DatasetError
            raise DatasetError(f"{self.path} is a file; results are a folder of Parquet parts "
                               "(give a new path, e.g. results.parquet)")

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
        return sorted(self.path.glob("part-*.parquet")) if self.path.is_dir() else []

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

    def resume(self, listed: Iterable[ArchiveImage]) -> tuple[set[tuple[str, int, int]], int]:
        """Leave each image one row, and return (the keys already scored, rows taken out).

        A row of a listed image whose size or modification time differs from the listing's
        is stale: the file was rewritten after it was scored. It is taken out now, so the
        image is scored again and its new row is the only one (a kill before that leaves
        it unscored, and the next run scores it). Two rows of one path (a folder written
        before this was kept, or two runs at once) keep the newest scored. Images not in
        this listing keep their rows: an archive's files may be deleted or moved after
        scoring, and their results still stand."""
        import pyarrow as pa
        import pyarrow.parquet as pq
        current = {a.path: a.key for a in listed}
        parts = self.parts()
        index: list[tuple[list[tuple[str, int, int]], list[float]]] = []
        newest: dict[str, tuple[float, int, int]] = {}   # path -> (scored_at, part, row) of the row it keeps
        for pi, part in enumerate(parts):
            t = pq.read_table(part, columns=["path", "size", "mtime_ns", "scored_at"])
            keys = list(zip(t.column("path").to_pylist(), t.column("size").to_pylist(),
                            t.column("mtime_ns").to_pylist()))
            at = [s or 0.0 for s in t.column("scored_at").to_pylist()]
            for ri, key in enumerate(keys):
                if current.get(key[0], key) != key:
                    continue                                   # the file changed since: scored again
                rank = (at[ri], pi, ri)
                if rank > newest.get(key[0], (-1.0, -1, -1)):
                    newest[key[0]] = rank
            index.append((keys, at))
        done: set[tuple[str, int, int]] = set()
        dropped = 0
        for pi, (part, (keys, at)) in enumerate(zip(parts, index)):
            keep = [newest.get(key[0]) == (at[ri], pi, ri) for ri, key in enumerate(keys)]
            done.update(key for key, k in zip(keys, keep) if k)
            if all(keep):
                continue
            dropped += keep.count(False)
            table = pq.read_table(part).filter(pa.array(keep))
            if table.num_rows:
                self._write_atomic(table, part.name)       # same name: a station database that copied it
            else:                                           # already holds the rows it keeps
                part.unlink()
                fsync_dir(self.path)
        return done, dropped

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

    @property
    def images_per_s(self) -> float:
        return self.scored / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"listed": self.listed, "skipped": self.skipped, "scored": self.scored, "errors": self.errors,
                "verdicts": dict(self.verdicts), "seconds": round(self.seconds, 3),
                "images_per_s": round(self.images_per_s, 2), "parts_written": self.parts_written,
                "replaced": self.replaced, "mode": self.mode, "first_batch_s": round(self.first_batch_s, 3),
                "steady_images_per_s": round(self.steady_images_per_s, 2), "left_out": list(self.left_out)}

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


def _batches_ray(todo: list[ArchiveImage], model: bytes, batch_size: int, concurrency: int,
                 ray_address: str, num_cpus: Optional[int],
                 on_lost: Optional[Callable[[], None]] = None) -> Iterator[Any]:
    ray = connect(ray_address, num_cpus=num_cpus)
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
        yield from ds.iter_batches(batch_size=None, batch_format="pyarrow")
    finally:
        unwatch()


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
    listed = archive
    if listed is None and not results.path.exists():
        # nothing there to resume: list first, so a typo in --images leaves no empty folder
        listed = list_archive(images, left_out)
    with results.writing():     # the folder is this run's alone from here
        results.drop_unfinished()
        # the folder is one model's results, so the model is loaded even with nothing left to
        # score: without it a resume with another model skipped every image and said so
        results.refuse_other_model(scorer.inspector.model_id)
        results.upgrade_parts()
        if listed is None:
            listed = list_archive(images, left_out)
        done, replaced = results.resume(listed)
        todo = [a for a in listed if a.key not in done]
        summary = RescoreSummary(listed=len(listed), skipped=len(listed) - len(todo), replaced=replaced,
                                 mode="single process" if ray_address is None else f"ray {ray_address} x{concurrency}",
                                 left_out=left_out)
        if summary.skipped and progress:
            progress("resume", summary.skipped, summary.listed)   # said now, not only at the end
        if not todo and recorder is None:
            return summary
        if todo and ray_address is not None:
            # joined before the station database run row is touched: a cluster that cannot be
            # joined leaves no run marked as running
            connect(ray_address, num_cpus=num_cpus)
        if recorder is not None:
            # a run is known by its folder and model (the folder was checked to be this model's above)
            out_key = str(out) if "://" in str(out) else str(Path(out).resolve())
            # the archive as an absolute path: a relative one means nothing read from another folder
            images_key = str(images) if _is_url(str(images)) else os.path.abspath(str(images).removeprefix("file://"))
            recorder.model_id = scorer.inspector.model_id
            recorder.begin(out_key, images_key, scorer.inspector.model_id, scorer.inspector.model_version,
                           summary.mode, len(listed), images_as_given=str(images))
            recorder.load_missing(results.parts())
            if not todo:
                recorder.finish()
                return summary
        t0 = time.perf_counter()
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
