"""Model registry: every version of every product's model, which one is active, history.

Bundles are stored content-addressed under ``<data>/models``. The database says which
version is active for a product (optionally for one line); the station looks it up for
every part, so activating or rolling back takes effect on the next part, in every
process that shares the database. A line with no version of its own active is judged by
the product's model of every line (line ""); rolling back a line's first own model gives
its parts back to that one.

Activations and rollbacks of one product take turns across processes (a lock held to
the commit): the second of two at the same moment sees the first's result and is
refused when the version active is no longer the one it was sent against.
"""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
import re
import tempfile
import threading
import time
import warnings
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..runtime.loader import CalibrationMismatchWarning, ModelRunTooLarge, trial_run_memory
from ..vision.atomic import atomic_write_bytes
from ..vision.errors import BundleError, ModelFileCorrupt
from ..vision.imageio import DEFAULT_MAX_PIXELS
from . import audit, filecheck
from .close_names import close_names, did_you_mean, listed, typos_of
from .db import LOCK_MODEL_CHANGES, Database
from .errors import (ActiveChanged, Conflict, InvalidModel, ModelFileDamaged, ModelFileMissing, ModelLoadFailed,
                     NoActiveModel, NotFound, PassesDefects, RejectsGoodParts)
from .imagestore import ContentStore, sha256_hex
from .orm import ModelActivation, ModelVersion, utcnow

Loader = Callable[[Path], Any]

log = logging.getLogger("lineguard.registry")


def _already_active(mv: ModelVersion, product: str, line: str) -> str:
    """The answer's warning for an activation that changed nothing."""
    return f"v{mv.version} is already the active version of {_where(product, line)}: nothing changed"


def _where(product: str, line: str) -> str:
    return f"product {product!r}" + (f" line {line!r}" if line else "")


def _without_paths(message: str, path: str) -> str:
    """An error message fit for an API answer: the station's own file paths (the temp
    file an upload was checked in, the model store) are no business of the client."""
    if path:
        message = message.replace(str(path), "the model file")
    return re.sub(r"(?<![\w.])/(?:[\w.+-]+/)+[\w.+-]*", "<station file>", message)


def model_file_fault(path: Path, size: int, reads_model_files: bool) -> Optional[str]:
    """Why the file at ``path`` (``size`` bytes) cannot be a model, read off its first bytes,
    its header and its length alone (never loaded, never hashed: GET /models asks it of
    every version); None where nothing is seen. A .lgm's header names the length of every
    tensor, so a file cut short or grown is told; an export must end with its hash entry.
    ``reads_model_files``: the loader reads lineguard's own formats (a test loader's files
    are neither, and only their emptiness is told)."""
    from ..runtime import onnx_file
    from ..vision.bundle import _MAX_HEADER
    if size == 0:
        return "the file is empty (0 bytes)"
    try:
        with open(path, "rb") as fh:
            head = fh.read(onnx_file.HEAD_BYTES)
            kind = onnx_file.head_kind(head)
            if kind is None and len(head) >= 8 and head[8:9] == b"{":
                kind = "lgm"     # a safetensors header whose length is out of bounds: told below
            if kind == "lgm":
                hlen = int.from_bytes(head[:8], "little")
                if hlen > _MAX_HEADER or 8 + hlen > size:
                    return (f"truncated or not a model: its header says {hlen} bytes, the whole file has "
                            f"{size}")
                fh.seek(8)
                import json
                try:
                    header = json.loads(fh.read(hlen).decode("utf-8"))
                    meta = header.get("__metadata__") or {}
                    end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"),
                              default=0)
                except (UnicodeDecodeError, ValueError, TypeError, KeyError, IndexError, AttributeError):
                    return "its header is damaged (not readable as JSON with tensor offsets)"
                if "lineguard" not in meta:
                    return "a safetensors file but not a lineguard model (no lineguard manifest in its header)"
                if 8 + hlen + end != size:
                    return (f"truncated: its header names {8 + hlen + end} bytes, the file has {size}"
                            if size < 8 + hlen + end else
                            f"{size - (8 + hlen + end)} bytes more than its header names (written over or "
                            "appended to)")
                return None
            if kind == "onnx" or path.suffix.lower() == onnx_file.SUFFIX:
                if kind != "onnx":
                    return f"does not begin as an exported model (it begins {head[:8].hex(' ')})"
                prefix = onnx_file._entry(onnx_file.HASH_KEY, "0" * 64)[:-64]
                if size <= onnx_file.TRAILER_LEN:
                    return f"truncated: {size} bytes, shorter than an export's hash entry"
                fh.seek(size - onnx_file.TRAILER_LEN)
                if not fh.read(onnx_file.TRAILER_LEN).startswith(prefix):
                    return "truncated or re-saved: it does not end with the export's lineguard hash entry"
                return None
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if reads_model_files:
        return f"not a model file: it begins as neither a .lgm nor an exported .onnx ({head[:8].hex(' ')})"
    return None


def _for_the_station(insp: Any) -> Any:
    # The station's model shares the cores with the station's own servers: its runtime's
    # threads must not spin (see ExportedDetector.set_spinning)
    det = getattr(insp, "detector", None)
    if hasattr(det, "set_spinning"):
        det.set_spinning(False)
    return insp


def default_loader(path: Path) -> Any:
    from ..vision.inspector import Inspector  # torch lives behind this import
    return _for_the_station(Inspector.load(path))


# A loader that reads lineguard's own model files (.lgm, exported .onnx): an upload whose
# first bytes are neither is refused before the rest is read (ModelRegistry.check_head).
default_loader.reads_model_files = True  # type: ignore[attr-defined]


def edge_loader(runtime: Optional[str], precision: Optional[str]) -> Loader:
    """Loads exported models on ``runtime``/``precision``; .lgm models as usual (torch)."""
    def load(path: Path) -> Any:
        from ..runtime import onnx_file
        from ..vision.inspector import Inspector
        if onnx_file.is_export(path):
            return _for_the_station(Inspector.load(path, runtime=runtime, precision=precision))
        return _for_the_station(Inspector.load(path))
    load.reads_model_files = True  # type: ignore[attr-defined]
    return load


# A model's input may be at most this many pixels (2048 x 2048): the backbone's
# activations, the patch grid and the anomaly map grow with it, and a file declaring
# 20000 x 20000 would take tens of GB on every part. That limit is the memory bound: the
# peak measured while judging the synthetic part (tracemalloc started and stopped around
# it) crashed the station. CPython 3.11's tracemalloc, stopped while another thread waits
# to record a raw allocation (numpy's ufunc buffers in the photo check of every part),
# writes through a NULL pointer (gh-128679, fixed in 3.12/3.13 only): a station judging
# parts died with "segfault at 8 ... in libpython3.11" when a model was uploaded or a
# retrain registered its version. It also counted the other threads' parts as the model's.
MODEL_INPUT_MAX_PIXELS = 2048 * 2048


def check_model_judges(insp: Any) -> None:
    """Refuse a model that loads but cannot judge a part (:class:`InvalidModel`).

    A file can carry a valid hash and still be unusable (a memory bank of the wrong
    width, an absurd input size); activated, it would fail every part of its product.
    So before it is stored it must judge a synthetic part, at an input size within
    MODEL_INPUT_MAX_PIXELS, and give a finite score. Never with tracemalloc (see above).
    """
    import math

    import numpy as np
    pre = getattr(insp, "preprocess", None)
    if pre is not None and hasattr(pre, "input_hw"):
        hw = pre.input_hw   # a property of Preprocess
        h, w = hw() if callable(hw) else hw
        if h * w > MODEL_INPUT_MAX_PIXELS:
            raise InvalidModel(f"the model's input size {w}x{h} is over the station's limit of "
                               f"{MODEL_INPUT_MAX_PIXELS} pixels (2048x2048); train it at a smaller --image-size")
    # a plain grey part, large enough to hold the corner of the model's region of interest
    # (a camera's ROI often starts past 256 px; a smaller part would be refused as outside it)
    roi = getattr(pre, "roi", None) or (0, 0, 0, 0)
    part_h, part_w = int(roi[1]) + 256, int(roi[0]) + 256
    if part_h * part_w > DEFAULT_MAX_PIXELS:
        raise InvalidModel(f"the model's region of interest starts at x={roi[0]}, y={roi[1]}, beyond any photo the "
                           "station accepts; set the ROI again and retrain")
    rng = np.random.default_rng(0)
    part = np.clip(rng.normal(128, 20, (part_h, part_w, 3)), 0, 255).astype(np.uint8)
    try:
        result = insp.inspect(part)
    except Exception as exc:  # noqa: BLE001 - whatever breaks, the model cannot judge parts
        raise InvalidModel(f"the model loads but cannot judge a part ({type(exc).__name__}: "
                           f"{_without_paths(str(exc), '')[:300]}); the file is inconsistent: export or "
                           "train it again") from exc
    score = getattr(result, "score", None)
    if score is None or not math.isfinite(float(score)):
        raise InvalidModel(f"the model judged a plain part with score {score!r}, not a number; "
                           "the file is inconsistent: export or train it again")



def product_slip_check(product: str, known: list[str], new_product: bool = False,
                       how: str = "send new_product=true with the upload") -> Optional[str]:
    """ModelRegistry.new_product_check's rule on the products ``known``: None for one of
    them (or a station with none yet); a slip of one ("tiel" beside "tile") refused (409)
    unless ``new_product``; any other new name, the warning to say."""
    if product in known or not known:
        return None      # the station's first product: nothing to confuse it with
    typos = typos_of(product, known)
    if typos and not new_product:
        raise Conflict(f"product {product!r} is new to this station: {did_you_mean(typos)} Product names are "
                       f"compared exactly, case too; this station knows: {listed(known)}. If {product!r} IS a "
                       f"new product, {how}", product=product, did_you_mean=typos, known=known[:50])
    close = close_names(product, known)
    beside = f" (beside {' and '.join(repr(n) for n in close)})" if close else ""
    return f"new product {product!r}{beside}; this station also knows: {listed(known)}"

class ModelRegistry:
    def __init__(self, db: Database, store: ContentStore, loader: Optional[Loader] = None,
                 run_bytes_per_pixel: Optional[int] = None):
        from .config import StationConfig
        self.db = db
        self.store = store
        self.loader = loader or default_loader
        # the memory one run of an exported model may take, per input pixel
        # (StationConfig.model_run_bytes_per_pixel; runtime.loader.run_memory_limit)
        self.run_bytes_per_pixel = StationConfig.model_run_bytes_per_pixel if run_bytes_per_pixel is None \
            else int(run_bytes_per_pixel)
        self._cache: dict[str, Any] = {}
        # model id -> why its last load failed (until one works): /health says it, where it
        # said "ok" while every part of the product was refused
        self._load_failed: dict[str, str] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._cache_lock = threading.Lock()
        # Which version judges a product/line, asked on every part: cached, and dropped
        # whenever this process changes an activation. The TTL bounds how long a change
        # made by another process (a second station on the same database) goes unseen.
        self._active: dict[tuple[str, str], tuple[int, float, ModelVersion]] = {}
        self._active_gen = 0
        # model id -> (precision, runtime) it judges at: an fp32 and an int8 export of one
        # model read alike in the versions list (same features, same model_version)
        self._precisions: dict[str, tuple[Optional[str], Optional[str]]] = {}
        # model file path -> ((inode, mtime, size), why it cannot be a model or None): the
        # list asks every version's file on every GET; read again only once the file changed.
        # A load the file itself failed (its hash, a tensor) is kept here too, so the list says
        # it of that very file and forgets it once the file is written back.
        self._file_checks: dict[str, tuple[tuple[int, int, int], Optional[str]]] = {}

    ACTIVE_TTL_S = 2.0
    # How a product that never had a model gets one, said after "unknown product ...": a
    # station started another way (Ray Serve's replicas take no --model) sets its own words.
    no_model_hint = ("Upload one with POST /api/v1/models (engineer key) or start the station with "
                     "`lineguard serve --model FILE.lgm --product NAME`")

    @contextmanager
    def _change(self, what: str) -> Iterator[Session]:
        # Two engineers (or two stations on one database) changing one product/line at
        # the same moment: the database's unique indexes let one win; the other is told.
        try:
            with self.db.session() as s:
                yield s
        except IntegrityError as exc:
            raise Conflict(f"another {what} for this product and line happened at the same moment; "
                           "list the versions (GET /api/v1/models) and try again") from exc

    def _activation_changed(self) -> None:
        with self._cache_lock:
            self._active_gen += 1
            self._active.clear()

    # -- versions ---------------------------------------------------------------
    def check_head(self, head: bytes, filename: Optional[str]) -> None:
        """Refuse, from its first bytes (``onnx_file.HEAD_BYTES``), a file that cannot be a
        model (:class:`InvalidModel`), before the rest of it is read: a 1.9 GB video sent
        by mistake took 4.5 GB of the station's memory to be told so. A file sent under a
        ``.onnx`` name must begin as an ONNX model; any other name as a .lgm or an ONNX
        model (an export under another name). Only for loaders of lineguard's own files."""
        if not getattr(self.loader, "reads_model_files", False):
            return
        from ..runtime import onnx_file
        kind = onnx_file.head_kind(head)
        name = Path(filename or "the file").name
        if name.lower().endswith(onnx_file.SUFFIX):
            if kind != "onnx":
                raise InvalidModel(f"not a usable lineguard model: {onnx_file.not_export_message(name)}")
        elif kind is None:
            raise InvalidModel(f"not a usable lineguard model: {name}: not a lineguard model file (it begins as "
                               f"neither a .lgm nor an exported .onnx: {head[:8].hex(' ')}); upload a .lgm file "
                               "saved by Inspector.save or `lineguard train`, or an .onnx from `lineguard export`")

    def add(self, data: bytes, product: str, line: str = "", note: Optional[str] = None,
            by: Optional[str] = None, activate: bool = False, train_images: Optional[int] = None,
            trained_from: Optional[str] = None, filename: Optional[str] = None) -> ModelVersion:
        """Validate a bundle by loading it, store it, and register it as the next version.
        ``filename``: the name it was sent under; a ``.onnx`` one is read as an export
        whatever its last bytes say (a truncated export has lost the hash entry it is
        known by, and was read as a .lgm: "a .lgm model needs torch")."""
        if not product:
            raise InvalidModel("product is required: name the product this model inspects")
        from ..runtime import onnx_file
        sent_onnx = (filename or "").lower().endswith(onnx_file.SUFFIX)
        fd, tmp = tempfile.mkstemp(suffix=onnx_file.SUFFIX if sent_onnx else ".lgm", dir=self.store.root)
        sent_name = Path(filename or ("MODEL.onnx" if sent_onnx else "MODEL.lgm")).name

        def said(exc: Any) -> str:
            # the file as it was sent, not "the model file" in a command to run ("lineguard
            # recalibrate the model file GOOD_DIR")
            return _without_paths(str(exc).replace(tmp, sent_name), tmp)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            try:
                if getattr(self.loader, "reads_model_files", False) and onnx_file.is_export(Path(tmp)):
                    # before this process runs it at all: one run in a child, its memory capped
                    trial_run_memory(tmp, self.run_bytes_per_pixel)
                with warnings.catch_warnings():
                    # refused below in its own words: the warning named the deleted temp file
                    warnings.simplefilter("ignore", CalibrationMismatchWarning)
                    insp = self.loader(Path(tmp))
            except ModelRunTooLarge as exc:
                raise InvalidModel(f"not a model this station can run: {said(exc)}") from exc
            except BundleError as exc:
                raise InvalidModel(f"not a usable lineguard model: {said(exc)}") from exc
            except Exception as exc:  # noqa: BLE001 - any load failure means the upload is unusable
                raise InvalidModel(f"not a usable lineguard model ({type(exc).__name__}: "
                                   f"{said(exc)}); upload a .lgm file saved by "
                                   "Inspector.save or `lineguard train`, or an .onnx from `lineguard export`") from exc
            # thresholds set on another precision's scores than the station runs it at (an int8
            # export that kept the fp32 thresholds rejected 40 of 40 good parts, and the upload
            # and its activation answered 200 with only a warning in the server's log)
            mismatch = (getattr(insp, "info", None) or {}).get("calibration_mismatch")
            if mismatch:
                raise InvalidModel("its thresholds do not fit the scores the station would judge with: "
                                   f"{said(mismatch)}; then upload the recalibrated file")
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        check_model_judges(insp)
        key = self.put_file(data, ".onnx" if onnx_file.is_export(data) else ".lgm")
        model_id = str(getattr(insp, "model_id", "") or key)
        self._precisions[model_id] = _precision_of(insp)
        with self._cache_lock:
            self._cache.setdefault(model_id, insp)
        if train_images is None:
            train_images = _n_train(insp)   # the station's first model: its file says how many
        with self._change("model upload") as s:
            if activate:
                self._hold(s, product)
            nxt = (s.scalar(select(func.max(ModelVersion.version)).where(
                ModelVersion.product == product, ModelVersion.line == line)) or 0) + 1
            mv = ModelVersion(product=product, line=line, version=nxt, model_id=model_id,
                              model_version=str(getattr(insp, "model_version", "") or ""),
                              file_key=key, note=note, uploaded_by=by, active=False,
                              train_images=train_images, trained_from=trained_from, **model_facts(insp))
            s.add(mv)
            s.flush()
            audit.record(s, "model.uploaded", model_subject(mv), by, model_id=mv.model_id,
                         model_version=mv.model_version, note=note, threshold=mv.threshold,
                         review_threshold=mv.review_threshold, trained_from=trained_from)
            if activate:
                self._activate(s, mv, by)
            else:
                _model_event(s, mv, "uploaded", by)
        if activate:
            self._activation_changed()
        return mv

    def put_file(self, data: bytes, suffix: str) -> str:
        """Store a model file under its content's name. A file of that name already there is
        only touched by the store; one damaged since (truncated by a full disk, a restore
        gone wrong) stayed damaged, and every version of that file with it: the same file
        uploaded again (what file_missing_message and the 409 of a damaged one tell) is
        written over it, temp file + fsync + rename, when its bytes are not these."""
        digest = sha256_hex(data)
        key = self.store.key_for(digest, suffix)
        path = self.store.path(key)
        try:
            # read through as a backup's check reads a stored file: whole when its bytes hash to its name
            whole = path.stat().st_size == len(data) and filecheck.read_stored(path, key)[0] is None
        except FileNotFoundError:
            whole = True        # not there at all: the store writes it
        if not whole:
            log.warning("model file %s did not hold the bytes its name says (damaged): written back", key)
            atomic_write_bytes(path, data)
        return self.store.put(data, digest=digest, suffix=suffix)

    def products(self) -> list[str]:
        """Every product a model was ever uploaded for, sorted."""
        with self.db.session() as s:
            return sorted(p for (p,) in s.execute(select(ModelVersion.product).distinct()))

    def new_product_check(self, product: str, new_product: bool = False,
                          how: str = "send new_product=true with the upload") -> Optional[str]:
        """None for a product the station has models of; for a new one, the warning its
        first model's answer carries ("new product 'X'; this station also knows: ...").
        A new product whose name is a slip of a known one ("tiles", "Tile", "tiel" beside
        "tile": close_names.typos_of) is refused (409) unless ``new_product``: a misspelt
        upload quietly made a product of its own, in the models list and SPC, and its parts
        never reached the one meant. A sibling's name (cell-b beside cell-a) is only said.
        ``how``: how the caller says it IS new."""
        return product_slip_check(product, self.products(), new_product, how)

    def list(self, product: Optional[str] = None, line: Optional[str] = None) -> list[ModelVersion]:
        with self.db.session() as s:
            q = select(ModelVersion)
            if product is not None:
                q = q.where(ModelVersion.product == product)
            if line is not None:
                q = q.where(ModelVersion.line == line)
            return list(s.scalars(q.order_by(ModelVersion.product, ModelVersion.line, ModelVersion.version)))

    def given_back(self, product: str, line: str) -> bool:
        """Whether a rollback gave ``line``'s parts back to the product's model of every
        line: the line has activations and none of them stands. (A line whose versions were
        only registered, never activated, has none.)"""
        if not line:
            return False
        with self.db.session() as s:
            ever, standing = s.execute(select(func.count(), func.count(ModelActivation.id).filter(
                ModelActivation.rolled_back_at.is_(None))).where(
                ModelActivation.product == product, ModelActivation.line == line)).one()
        return bool(ever) and not standing

    @staticmethod
    def _find(s: Any, product: str, line: str, version: int, what_to_do: str) -> ModelVersion:
        mv = s.scalar(select(ModelVersion).where(ModelVersion.product == product, ModelVersion.line == line,
                                                 ModelVersion.version == version))
        if mv is None:
            raise NotFound(f"no model version {version} for product {product!r}"
                           + (f" line {line!r}" if line else "") + f"; {what_to_do}")
        return mv

    def get(self, product: str, line: str, version: int) -> ModelVersion:
        with self.db.session() as s:
            return self._find(s, product, line, version, "list versions with GET /api/v1/models")

    def _hold(self, s: Session, product: str) -> None:
        """Take the product's activation lock, to the commit: the first statement of ``s``
        (on SQLite a read before it would let another writer in between)."""
        self.db.hold(s, (LOCK_MODEL_CHANGES << 32) | zlib.crc32(product.encode()), "model_activations")

    def activate(self, product: str, line: str, version: int, by: Optional[str] = None, *,
                 expected_active: Optional[int] = None, force: bool = False,
                 images: Any = None) -> ModelVersion:
        """Make ``version`` the one that judges the parts of product/line.

        ``expected_active``: the version the caller saw active (0: none); when another
        one is active by now the change is refused (:class:`ActiveChanged`). Without it,
        a change someone else made while this one waited its turn is refused the same
        way: two engineers at the same moment, the second is told, not overridden.

        ``images`` (the station's image store): the version is first tried on the
        product's latest good parts, and refused (:class:`RejectsGoodParts`) when it
        rejects most of them, then on the latest parts reviewed as defects, and refused
        (:class:`PassesDefects`) when it passes most of them and more than the line did,
        unless ``force``; a forced activation is logged as such.
        """
        with self.db.session() as s:
            mv = self._find(s, product, line, version, "upload one with POST /api/v1/models")
            active, seen = _standing(s, product, line)
            unshadowed = _unshadowed(s, mv, active or _every_line(s, product, line))
        already = active is not None and active.id == mv.id
        if not already:
            _check_expected(active, expected_active, product, line)
        # Load it before switching (a version that cannot run must never become active),
        # and try it, before the lock: nobody waits on the model.
        insp = self.loadable(mv)
        if already:
            # Nothing to change: no activation recorded, no change-log entry, no model event
            # (each repeat was logged and published as an activation, its time moved on)
            mv.shadow_note = _already_active(mv, product, line)
            return mv
        trial = defects = None
        if images is not None:
            from .compare import try_on_good_parts, try_on_reviewed_defects
            trial = try_on_good_parts(self.db, images, insp, product, line,
                                      active.model_id if active is not None else None)
            if trial.rejects_good_parts and not force:
                raise RejectsGoodParts(_rejects_message(mv, active, trial), version=mv.version,
                                       active_version=active.version if active is not None else None,
                                       parts_tried=trial.scored, judged_ng=trial.judged_ng,
                                       photo_doubted=trial.photo_doubted,
                                       photo_doubted_by_line=trial.photo_doubted_by_line,
                                       sent_to_review=trial.sent_to_review,
                                       not_passed=trial.rejected, photo_issues=dict(trial.photo_issues),
                                       line_verdicts=dict(trial.line_verdicts),
                                       learnt_left_out=trial.learnt_left_out)
            defects = try_on_reviewed_defects(self.db, images, insp, product, line)
            if defects.passes_defects and not force:
                raise PassesDefects(_passes_message(mv, defects), version=mv.version,
                                    active_version=active.version if active is not None else None,
                                    defects_tried=defects.scored, judged_ok=defects.passed,
                                    line_passed=defects.line_passed)
        with self._change("activation") as s:
            self._hold(s, product)
            now, state = _standing(s, product, line)
            if now is not None and now.id == mv.id:
                # made active by another request meanwhile (the same activation sent twice at
                # once): what was asked stands, and the answer says this one changed nothing,
                # as for a version already active (a plain answer read as a second activation)
                now.shadow_note = _already_active(now, product, line) + " (made active by another request just now)"
                return now
            if expected_active is not None:
                _check_expected(now, expected_active, product, line)
            elif state != seen:
                raise ActiveChanged(_changed_meanwhile(now, product, line) + f"; look at the versions "
                                    f"(GET /api/v1/models) and activate v{version} again if it still should be",
                                    active_version=now.version if now is not None else None)
            mv = s.get(ModelVersion, mv.id)
            assert mv is not None
            forced = {} if trial is None or not trial.rejects_good_parts else {"forced": trial.did(past=True)}
            if defects is not None and defects.passes_defects:
                said = f"passed {defects.passed} of the {defects.scored} latest parts reviewed as defects"
                forced["forced"] = f"{forced['forced']}; {said}" if forced else said
            if trial is not None and trial.learnt_left_out:
                # the parts it learned from were not tried (it fits them): the log says how many
                forced.update(good_parts_tried=trial.scored, learnt_left_out=trial.learnt_left_out)
            # a shadow of this product/line was compared with the version judging it until now:
            # from now on with this one, and the answer and the change log say so (shadow.py)
            from .shadow import on_live_change
            change = on_live_change(s, product, line, now or _every_line(s, product, line), mv, by)
            # the change log keeps it too: the answer's warning is gone once read (a retrain's
            # activate=true, a script), and who activated without a comparison is asked later
            self._activate(s, mv, by, **forced, **({"shadow": change.logged} if change else {}),
                           **({"unshadowed": unshadowed} if unshadowed else {}))
        self._activation_changed()   # after the commit, so no one re-caches the old version
        # the answer's warning (not a column: this call's alone), its counts read after the commit
        notes = [change.said(self.db) if change else None, unshadowed]
        mv.shadow_note = "; ".join(n for n in notes if n) or None
        return mv

    def rollback(self, product: str, line: str, by: Optional[str] = None, *,
                 expected_active: Optional[int] = None) -> ModelVersion:
        """Undo the standing activation: go back to the version active before it.

        Each rollback marks the activation it undoes (``rolled_back_at``) and the next
        one walks past it, so rollbacks go back through the history (v3 -> v2 -> v1)
        instead of toggling between the last two; a new activation starts the walk
        again from there. Two rollbacks at the same moment undo one activation, not two:
        the second is refused (:class:`ActiveChanged`) unless its ``expected_active``
        names the version the first went back to.

        A line whose walk ends (its first own model undone) goes back to the product's
        model of every line, which judged its parts before: its own versions stay
        registered, none active, and the version returned is that model of every line
        (``line`` ""). Its ``model`` event says ``given_back`` (not ``activated``: nothing
        was activated), with ``for_line`` and the line's own version dropped; a shadow of
        the line's own version is compared with the version given back to from then on, or
        ends when it is that very model (:func:`shadow.on_give_back`). With no model of
        every line active it stays, refused.
        """
        for _turn in range(3):
            try:
                return self._rollback_once(product, line, by, expected_active)
            except _WalkMoved:
                continue     # the version to go back to changed while the model loaded: again
        raise ActiveChanged(f"the versions of {_where(product, line)} kept changing while this rollback waited; "
                            "list them again (GET /api/v1/models) and decide on what is active now")

    def _rollback_once(self, product: str, line: str, by: Optional[str],
                       expected_active: Optional[int]) -> ModelVersion:
        with self.db.session() as s:
            if not s.scalar(select(func.count()).select_from(ModelVersion).where(ModelVersion.product == product)):
                raise NotFound(f"unknown product {product!r}: no model was ever uploaded for it; list the "
                               "versions with GET /api/v1/models")
            active, seen = _standing(s, product, line)
            target = _rollback_to(s, product, line, self.file_usable, self.file_fault)
        _check_expected(active, expected_active, product, line)
        self.loadable(target)    # before the lock: nobody waits on the model
        change, shadow_said = None, None     # what became of a shadow (on_live_change / on_give_back)
        with self._change("activation") as s:
            self._hold(s, product)
            now, state = _standing(s, product, line)
            if expected_active is not None:
                _check_expected(now, expected_active, product, line)
            elif state != seen:
                undoing = f"v{active.version}" if active is not None else "the activation"
                raise ActiveChanged(_changed_meanwhile(now, product, line) + f", so {undoing}, which this rollback was "
                                    "sent to undo, is undone already"
                                    + (f"; to go back from v{now.version} too, roll back again (the API: with "
                                       f"\"expected_active\": {now.version})" if now is not None else ""),
                                    active_version=now.version if now is not None else None)
            mv = _rollback_to(s, product, line, self.file_usable, self.file_fault)
            undone = _rollback_walk(s, product, line, self.file_usable)[1]
            if mv.id != target.id:
                # the walk moved while this one waited (sent with expected_active): its model is
                # loaded outside the lock (loading may write the version's facts, which on
                # SQLite would wait on this very lock)
                raise _WalkMoved()
            at = utcnow()
            for a in undone:
                a.rolled_back_at, a.rolled_back_by = at, by
            # the versions undone, as people name them (v3), not the database's row ids
            undone_versions = sorted(set(s.scalars(select(ModelVersion.version).where(
                ModelVersion.id.in_({a.model_version_id for a in undone})))))
            # versions the walk passed (their file missing or damaged): the answer says so
            passed = sorted(set(s.scalars(select(ModelVersion.version).where(
                ModelVersion.id.in_({a.model_version_id for a in undone}), ModelVersion.line == line,
                ModelVersion.id != (now.id if now is not None else -1)))))
            if mv.line == line:
                # not a new activation: the one rolled back to stands again as it was
                from .shadow import on_live_change
                change = on_live_change(s, product, line, now, mv, by)
                self._switch(s, mv)
                audit.record(s, "model.rolled_back", model_subject(mv), by, undone=undone_versions,
                             **({"shadow": change.logged} if change else {}))
                # "activated" as before (a consumer tracking the active version needs no change)
                _model_event(s, mv, "activated", by, rollback=True)
            else:
                # the line's first own model undone: none of its versions stays active, so
                # its parts go to the model of every line (active_for), as before that
                # activation; that model itself is untouched (it judges the other lines)
                for own in s.scalars(select(ModelVersion).where(ModelVersion.product == product,
                                                                ModelVersion.line == line,
                                                                ModelVersion.active.is_(True))):
                    own.active = False
                s.flush()
                # a shadow of the line's own version was set against the version dropped: it
                # is compared with the one given back to from now on, or ends (shadow.py)
                from .shadow import on_give_back
                shadow_said = on_give_back(s, product, line, mv, now, by)
                audit.record(s, "model.rolled_back", f"{product}/{line}", by, undone=undone_versions,
                             back_to=model_subject(mv), **({"shadow": shadow_said} if shadow_said else {}))
                # not "activated": nothing was activated, and a subscriber (an MES) told the
                # model of every line "activated" for the line could not tell this from an
                # activation. The event names the version that judges the line now (sent in
                # the line's order: its parts after it are judged by that version) and the
                # line's own version dropped.
                _model_event(s, mv, "given_back", by, rollback=True, for_line=line, undone=undone_versions,
                             dropped_version=now.version if now is not None else None,
                             dropped_model_id=now.model_id if now is not None else None,
                             dropped_model_version=now.model_version if now is not None else None)
        self._activation_changed()
        notes = ([f"passed over v{', v'.join(map(str, passed))} of {_where(product, line)}: "
                  + ("its file" if len(passed) == 1 else "their files") + " cannot be loaded (see file_problem "
                  "in GET /api/v1/models)"] if passed else [])
        if change is not None:
            shadow_said = change.said(self.db)      # its counts read after the commit, outside the lock
        notes += [shadow_said] if shadow_said else []
        mv.shadow_note = "; ".join(notes) or None     # the answer's warning (this call's alone)
        return mv

    def _activate(self, s: Session, mv: ModelVersion, by: Optional[str], **logged: Any) -> None:
        self._switch(s, mv)
        s.add(ModelActivation(product=mv.product, line=mv.line, model_version_id=mv.id, activated_by=by))
        s.flush()
        audit.record(s, "model.activated", model_subject(mv), by, model_id=mv.model_id, threshold=mv.threshold,
                     **logged)
        _model_event(s, mv, "activated", by)

    @staticmethod
    def _switch(s: Session, mv: ModelVersion) -> None:
        """Make ``mv`` the one active version of its product/line."""
        for other in s.scalars(select(ModelVersion).where(ModelVersion.product == mv.product,
                                                          ModelVersion.line == mv.line,
                                                          ModelVersion.active.is_(True))):
            other.active = False
        # written before the new one is marked: the database allows one active version
        # per product/line (uq_model_versions_one_active) and checks it row by row
        s.flush()
        mv.active = True
        mv.activated_at = utcnow()
        s.flush()

    def active_for(self, product: str, line: str) -> ModelVersion:
        """The model a part of ``product`` on ``line`` is judged by: line-specific first."""
        now = time.monotonic()
        with self._cache_lock:
            gen = self._active_gen
            hit = self._active.get((product, line))
        if hit is not None and hit[0] == gen and hit[1] > now:
            return hit[2]
        mv = self._active_from_db(product, line)
        with self._cache_lock:
            if self._active_gen == gen:
                self._active[(product, line)] = (gen, now + self.ACTIVE_TTL_S, mv)
        return mv

    def _active_from_db(self, product: str, line: str) -> ModelVersion:
        with self.db.session() as s:
            rows = list(s.scalars(select(ModelVersion).where(ModelVersion.product == product,
                                                             ModelVersion.line.in_([line, ""]),
                                                             ModelVersion.active.is_(True))))
            for want in (line, ""):
                for mv in rows:
                    if mv.line == want:
                        return mv
            known = s.scalar(select(func.count()).select_from(ModelVersion)
                             .where(ModelVersion.product == product)) or 0
            # products are names compared exactly: one sent in another case or misspelt is told the one meant
            products = [] if known else sorted(p for (p,) in s.execute(select(ModelVersion.product).distinct()))
        if not known:
            alike = close_names(product, products)
            # the products this station knows, while few enough to read in one line
            also = f" The products this station knows: {listed(products)}." if 0 < len(products) <= 10 else ""
            if alike:
                raise NoActiveModel(f"unknown product {product!r}: {did_you_mean(alike)} Product names are "
                                    f"compared exactly, case too.{also}", did_you_mean=alike)
            raise NoActiveModel(f"unknown product {product!r}: no model was ever uploaded for it.{also} "
                                f"{self.no_model_hint}")
        raise NoActiveModel(f"no active model for product {product!r} on line {line!r}; activate a version "
                            f"with POST /api/v1/models/{product}/activate")

    # -- loaded models ------------------------------------------------------------
    def loadable(self, mv: ModelVersion) -> Any:
        """The loaded model of a version about to judge the line (activated, rolled back
        to, shadowing). One whose file is gone from the store, or damaged there, is refused
        (409) even when this process still holds it: every other process, and this one
        after a restart, could not load it. A load the file itself fails is a 409 too, not
        the 503 of a part (which says: try again), since no retry mends a file."""
        fault = self.file_fault(mv)
        if fault is not None:
            raise fault
        try:
            return self.inspector(mv)
        except ModelLoadFailed as exc:
            if not isinstance(exc.__cause__, ModelFileCorrupt):
                # out of memory, a runtime not installed, a format newer than this lineguard:
                # not the file's fault, and no copy of it mends that (a 503 as before)
                raise
            fault = self.file_fault(mv)
            raise (fault or exc) from exc

    def has_file(self, mv: ModelVersion) -> bool:
        """Whether the version's file is in the station's models folder."""
        return self.store.exists(mv.file_key)

    def file_usable(self, mv: ModelVersion) -> bool:
        """Whether the version's file is there and nothing says it cannot load: what a
        rollback may go back to, and what the list offers as ``rollback_to``."""
        return self.file_problem(mv) is None

    def file_problem(self, mv: ModelVersion) -> Optional[str]:
        """Why the version's file cannot be loaded, in a few words (missing, empty,
        truncated, not a model, or its last load refused it), or None. Cheap: its size and
        header, read again only when the file changed (by inode, mtime, size)."""
        path = self.store.path(mv.file_key)
        try:
            st = path.stat()
        except FileNotFoundError:
            return "missing from the station's models folder"
        except OSError as exc:
            return f"cannot be read ({exc.strerror or exc})"
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        with self._cache_lock:
            hit = self._file_checks.get(str(path))
        if hit is not None and hit[0] == stamp:
            return hit[1]
        why = model_file_fault(path, st.st_size, bool(getattr(self.loader, "reads_model_files", False)))
        with self._cache_lock:
            self._file_checks[str(path)] = (stamp, why)
        return why

    def file_fault(self, mv: ModelVersion) -> Optional[Conflict]:
        """The refusal for a version whose file is missing (:class:`ModelFileMissing`) or
        damaged (:class:`ModelFileDamaged`), naming the file and what brings it back; None
        where its file looks whole."""
        if not self.store.exists(mv.file_key):
            return ModelFileMissing(file_missing_message(mv))
        why = self.file_problem(mv)
        if why is None:
            return None
        return ModelFileDamaged(file_damaged_message(mv, why), version=mv.version, file=f"models/{mv.file_key}")

    def _file_failed(self, path: Path, stamp: tuple[int, int, int], why: str) -> None:
        """A load refused the file itself (ModelFileCorrupt): the list says so of that very
        file, ``stamp`` as it was when the load began; a copy written back since (put_file)
        has another and is read afresh."""
        if _stamp(path) != stamp:
            return
        with self._cache_lock:
            self._file_checks[str(path)] = (stamp, why)

    def file_path(self, mv: ModelVersion) -> Path:
        """Where the version's file lies (to load it, to download a copy), or
        :class:`ModelFileMissing` saying what can bring it back."""
        if not self.store.exists(mv.file_key):
            raise ModelFileMissing(file_missing_message(mv))
        return self.store.path(mv.file_key)

    def unusable(self, mv: ModelVersion) -> Optional[str]:
        """Why parts judged by ``mv`` are refused now (its file gone from the models
        folder, or its last load failed), or None: loaded, or not tried yet with its file
        there. Cheap (no load): for /health."""
        if mv.model_id in self._cache:
            return None
        if not self.store.exists(mv.file_key):
            return file_missing_message(mv)
        return self._load_failed.get(mv.model_id)

    def inspector(self, mv: ModelVersion) -> Any:
        """The loaded model of a version (cached by content id)."""
        insp = self._cache.get(mv.model_id)
        if insp is not None:
            return insp
        with self._cache_lock:
            lock = self._locks.setdefault(mv.model_id, threading.Lock())
        with lock:  # one load per model even when many parts arrive at once
            insp = self._cache.get(mv.model_id)
            if insp is not None:
                return insp
            path = self.store.path(mv.file_key)
            stamp = _stamp(path)     # the file the load reads: a copy written back meanwhile is not blamed
            try:
                insp = self.loader(path)
            except Exception as exc:  # noqa: BLE001
                log.error("model %s v%s (%s) failed to load: %s", mv.product, mv.version, path, exc)
                said = _without_paths(str(exc), str(path))
                why = (f"model {mv.product} v{mv.version} failed to load: "
                       f"{said}. Activate another version or re-upload the model")
                self._load_failed[mv.model_id] = why
                if isinstance(exc, ModelFileCorrupt) and stamp is not None:
                    # the file's own bytes (not this PC's runtime, CPU or lineguard version)
                    self._file_failed(path, stamp, f"its last load refused it: "
                                                   f"{said.removeprefix('the model file: ')}")
                raise ModelLoadFailed(why) from exc
            with self._cache_lock:
                self._cache[mv.model_id] = insp
                self._load_failed.pop(mv.model_id, None)
            self._precisions[mv.model_id] = _precision_of(insp)
            if mv.threshold is None or mv.features is None or \
                    (mv.train_images is None and _n_train(insp) is not None):   # registered before they were recorded
                self._record_facts(mv, insp)
            return insp

    def precision(self, mv: ModelVersion) -> tuple[Optional[str], Optional[str]]:
        """(precision, runtime) a version judges at: fp32/int8/bf16, torch/onnxruntime/
        openvino; (None, None) when not known. As loaded by this station where it was;
        else read off its file once (a .lgm runs on torch in fp32; an export at its
        manifest's precision on the runtime its thresholds were set on, as a load picks)."""
        known = self._precisions.get(mv.model_id)
        if known is not None:
            return known
        insp = self._cache.get(mv.model_id)
        found = _precision_of(insp) if insp is not None else self._precision_from_file(mv)
        self._precisions[mv.model_id] = found
        return found

    def _precision_from_file(self, mv: ModelVersion) -> tuple[Optional[str], Optional[str]]:
        import json

        from ..runtime import onnx_file
        from ..runtime.loader import calibrated_runtime
        try:
            if not self.store.exists(mv.file_key):
                return None, None
            path = self.store.path(mv.file_key)
            with open(path, "rb") as fh:
                head = fh.read(onnx_file.HEAD_BYTES)
            kind = onnx_file.head_kind(head)
            if kind == "lgm":
                return "fp32", "torch"
            if kind == "onnx" or onnx_file.is_export(path):
                manifest = json.loads(onnx_file.metadata(path.read_bytes())[onnx_file.MANIFEST_KEY])
                runtime, precision = calibrated_runtime(manifest)
                return str(precision or manifest.get("precision", "fp32")), runtime
        except Exception as exc:  # noqa: BLE001 - a list entry left blank, never a failed list
            log.warning("could not read the precision of model %s v%s: %s", mv.product, mv.version, exc)
        return None, None

    def _record_facts(self, mv: ModelVersion, insp: Any) -> None:
        """Store thresholds and detector on a version registered before they were recorded
        (once, when its model is loaded anyway): the version list then shows them."""
        from sqlalchemy import or_, update
        facts = model_facts(insp)
        n_train = _n_train(insp)
        try:
            with self.db.session() as s:
                s.execute(update(ModelVersion).where(ModelVersion.model_id == mv.model_id,
                                                     or_(ModelVersion.threshold.is_(None),
                                                         ModelVersion.features.is_(None))).values(**facts))
                if n_train is not None:
                    s.execute(update(ModelVersion).where(ModelVersion.model_id == mv.model_id,
                                                         ModelVersion.train_images.is_(None))
                              .values(train_images=n_train))
        except Exception as exc:  # noqa: BLE001 - a missing list entry must never stop a part
            log.warning("could not record the thresholds of model %s v%s: %s", mv.product, mv.version, exc)

    def forget(self, model_id: str) -> None:
        with self._cache_lock:
            self._cache.pop(model_id, None)

    def keep_only(self, model_ids: set[str]) -> None:
        """Drop every loaded model not in ``model_ids`` (the active ones)."""
        with self._cache_lock:
            for model_id in [m for m in self._cache if m not in model_ids]:
                del self._cache[model_id]
                self._locks.pop(model_id, None)


def station_made(mv: ModelVersion) -> Optional[str]:
    """How a version was made on this station (trained by a job, its thresholds tuned),
    or None for one uploaded (its file came from outside: a copy may exist there)."""
    if (mv.trained_from or "").startswith("job "):
        return "trained by a job on this station"
    if (mv.note or "").startswith("thresholds of v"):
        return "its thresholds tuned on this station"
    return None


def file_missing_message(mv: ModelVersion) -> str:
    """What to do about a version whose file is gone from the models folder."""
    where = f"{mv.product}" + (f"/{mv.line}" if mv.line else "") + f" v{mv.version}"
    gone = (f"the file of {where} is missing from the station's models folder (deleted, or not in the backup it "
            "was restored from); ")
    made = station_made(mv)
    if made:
        return gone + (f"v{mv.version} was {made}, so only a copy downloaded from the station before (GET "
                       f"/api/v1/models/{mv.product}/versions/{mv.version}/file" + (f"?line={mv.line}" if mv.line
                                                                                   else "")
                       + ") puts it back: upload that copy (POST /api/v1/models). Without one, activate another "
                       "version, or make it again (retrain, or tune the thresholds again)")
    return gone + (f"upload the same model file again (POST /api/v1/models, or `serve --model` it): that puts "
                   f"the file back for v{mv.version} too")


def file_damaged_message(mv: ModelVersion, why: str) -> str:
    """What to do about a version whose file is in the models folder but cannot be a model.
    The file is named as it lies in the station's data folder (an administrator restores it
    from a backup by that name), never by the station's absolute path."""
    where = f"{mv.product}" + (f"/{mv.line}" if mv.line else "") + f" v{mv.version}"
    said = (f"the file of {where} (models/{mv.file_key} in the station's data folder) cannot be loaded: {why}; "
            "nothing changed. ")
    made = station_made(mv)
    if made:
        return said + (f"v{mv.version} was {made}, so only a copy downloaded from the station before, or that file "
                       "from a backup, puts it back: upload that copy (POST /api/v1/models), which writes the file "
                       "back for it. Without one, activate another version, or make it again (retrain, or tune "
                       "the thresholds again)")
    return said + (f"Upload the same model file again (POST /api/v1/models, the Models page's Upload, or serve "
                   f"started with --model FILE): that writes the file back for v{mv.version} too; or activate "
                   "another version")


def _stamp(path: Path) -> Optional[tuple[int, int, int]]:
    """(inode, mtime, size) of a file, what tells one written anew; None where it cannot be read."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _rollback_walk(s: Any, product: str, line: str,
                   usable: Optional[Callable[[ModelVersion], bool]] = None) -> tuple[list[Any], list[Any], Any]:
    """The standing activations (newest first), those a rollback undoes (the standing one
    with any repeats of it just before: activated twice) and the one it goes back to
    (None: nothing earlier stands). ``usable``: a version it may go back to (its file
    there); the activations of those it may not are walked past, undone with the rest."""
    standing = list(s.scalars(select(ModelActivation).where(
        ModelActivation.product == product, ModelActivation.line == line,
        ModelActivation.rolled_back_at.is_(None)).order_by(ModelActivation.id.desc())))
    run = next((i for i, a in enumerate(standing) if a.model_version_id != standing[0].model_version_id),
               len(standing))
    if usable is not None:
        while run < len(standing):
            a = standing[run]
            mv = s.get(ModelVersion, a.model_version_id)
            if a.model_version_id != standing[0].model_version_id and mv is not None and usable(mv):
                break
            run += 1
    return standing, standing[:run], (standing[run] if run < len(standing) else None)


class _WalkMoved(Exception):
    """A rollback's version to go back to changed between its look and its lock."""


def _standing(s: Any, product: str, line: str) -> tuple[Optional[ModelVersion], tuple[Any, Any]]:
    """The version active for exactly product/line (None: none) and the state a change is
    sent against: that version and the newest standing activation (a rollback changes
    it, so does activating the same version again)."""
    active = s.scalar(select(ModelVersion).where(ModelVersion.product == product, ModelVersion.line == line,
                                                 ModelVersion.active.is_(True)))
    top = s.scalar(select(func.max(ModelActivation.id)).where(
        ModelActivation.product == product, ModelActivation.line == line, ModelActivation.rolled_back_at.is_(None)))
    return active, (active.id if active is not None else None, top)


def _every_line(s: Any, product: str, line: str) -> Optional[ModelVersion]:
    """The product's model of every line (line "") active now, which judges a line with
    no version of its own active (ModelRegistry.active_for); None for line "" itself."""
    if not line:
        return None
    return s.scalar(select(ModelVersion).where(ModelVersion.product == product, ModelVersion.line == "",
                                               ModelVersion.active.is_(True)))


def _rollback_to(s: Any, product: str, line: str,
                 usable: Optional[Callable[[ModelVersion], bool]] = None,
                 fault: Optional[Callable[[ModelVersion], Optional[Conflict]]] = None) -> ModelVersion:
    """The version a rollback of product/line goes back to, or the Conflict saying why none:
    the version active before the standing activation, or, for a line whose walk ends (its
    first own model), the product's model of every line, which judged its parts before."""
    standing, _undone, before = _rollback_walk(s, product, line, usable)
    where = _where(product, line)
    every = _every_line(s, product, line)
    if not standing:
        ever = s.scalar(select(func.count()).select_from(ModelActivation).where(
            ModelActivation.product == product, ModelActivation.line == line))
        if every is not None and ever:
            raise Conflict(f"nothing to roll back for {where}: none of its own versions is active (a rollback gave "
                           f"its parts back to the model of every line, {model_subject(every)}, which judges them "
                           "now); activate one of its versions by number instead")
        raise Conflict(f"nothing to roll back for {where}: no version was ever activated"
                       + (f" for it (the model of every line, {model_subject(every)}, judges its parts)"
                          if every is not None else ""))
    if before is not None:
        mv = s.get(ModelVersion, before.model_version_id)
        assert mv is not None
        return mv
    if every is not None and (usable is None or usable(every)):
        return every
    _s, _u, plain = _rollback_walk(s, product, line)
    missing = s.get(ModelVersion, plain.model_version_id) if plain is not None else every
    if missing is not None:
        # why it cannot run, as activating it would say (its file damaged rather than gone)
        said = fault(missing) if fault is not None else None
        if isinstance(said, ModelFileDamaged):
            raise ModelFileDamaged(f"nothing to roll back to for {where} that can run: {said.message}",
                                   **said.details)
        raise ModelFileMissing(f"nothing to roll back to for {where} that can run: "
                               + file_missing_message(missing))
    first = s.get(ModelVersion, standing[-1].model_version_id)
    earlier = s.scalar(select(func.count()).select_from(ModelActivation).where(
        ModelActivation.product == product, ModelActivation.line == line, ModelActivation.id < standing[-1].id))
    if earlier or first is None:
        raise Conflict(f"nothing to roll back to for {where}: no earlier activation stands "
                       "(each earlier one was already rolled back); activate a version by number instead")
    # the usual case: the first model of the product (or of a line of a product with no
    # model of every line) replaced nothing, and undone it would leave the parts unjudged
    raise Conflict(f"nothing to roll back to for {where}: no earlier activation; v{first.version}, active now, "
                   "was the first version activated for it and replaced no earlier model"
                   + (" (and no model of every line, line \"\", is active to judge its parts instead)" if line else "")
                   + "; activate a version by number instead")


def _check_expected(active: Optional[ModelVersion], expected: Optional[int], product: str, line: str) -> None:
    """Refuse a change sent against another active version than the one active now."""
    have = active.version if active is not None else 0
    if expected is None or expected == have:
        return
    now = f"v{have} is active now" if active is not None else "no version is active now"
    since = f" (since {active.activated_at.isoformat(timespec='seconds')}Z)" \
        if active is not None and active.activated_at is not None else ""
    raise ActiveChanged(f"{_where(product, line)} changed since you looked: {now}{since}, not "
                        + (f"v{expected}" if expected else "none") + "; list the versions again (reload the Models "
                        "page, GET /api/v1/models) and decide on what is active now",
                        active_version=have or None)


def _changed_meanwhile(now: Optional[ModelVersion], product: str, line: str) -> str:
    return (f"another activation or rollback of {_where(product, line)} came first, at the same moment: "
            + (f"v{now.version} is active now" if now is not None else "no version is active now"))


def _unshadowed(s: Any, mv: ModelVersion, live: Optional[ModelVersion]) -> Optional[str]:
    """The activation's warning when ``mv`` is made live with no comparison beside the
    model live now (``live``: the one judging the parts; None: the product's first model,
    nothing to compare with): it never judged one of its parts in shadow. The good-parts
    and defects trials try it on a few stored parts; only a shadow shows what it does to
    the line's parts as they come (its review share, its false rejects).

    A version that judged the line before is told the same: its record is of parts judged
    beside older models (v1 made live again by number over v5 was never compared with v5).
    A comparison either way counts (``live`` run in shadow while ``mv`` judged the line:
    Compare showed the two). Not told: the version Roll back would go back to now, made
    live by number, as the rollback itself is not (the undo of the activation just made)."""
    if live is None or live.id == mv.id or live.model_id == mv.model_id:
        return None
    if mv.line == live.line:
        before = _rollback_walk(s, mv.product, mv.line)[2]
        if before is not None and before.model_version_id == mv.id:
            return None
    from .compare import ran_in_shadow_beside
    if ran_in_shadow_beside(s, mv, live) or ran_in_shadow_beside(s, live, mv):
        return None
    slot = f"/api/v1/models/{mv.product}/shadow"
    return (f"activated without a shadow comparison: {model_subject(mv)} never judged the line's parts in shadow "
            f"beside {model_subject(live)}, which judged them until now. Run a new version in shadow first next "
            f"time (Shadow on the Models page, or POST {slot} with {{\"version\": N"
            + (f", \"line\": \"{mv.line}\"" if mv.line else "") + "}), then Compare, then activate. "
            f"To go back to {model_subject(live)}: Roll back on the Models page")


def _named(mv: ModelVersion) -> str:
    """A version as a refusal names it: "v3", and "cell/L1 v3" for a line's own version
    ("v1" of a line's first model read as the product's v1 of every line, running beside it)."""
    return model_subject(mv) if mv.line else f"v{mv.version}"


def _parts_of(mv: ModelVersion) -> str:
    """Whose parts a version was tried on: the product's, or its line's alone."""
    return f"{mv.product!r}" + (f" on line {mv.line!r}" if mv.line else "")


def _rejects_message(mv: ModelVersion, active: Optional[ModelVersion], trial: Any) -> str:
    said = ", ".join(f"{n} {v}" for v, n in sorted(trial.line_verdicts.items(), key=lambda x: -x[1]))
    the_line = f"line {mv.line!r}" if mv.line else "the line"
    if active is None:
        before = f"{the_line} judged them {said}"
    elif trial.by_active == trial.scored:
        before = f"{_named(active)}, active now, judged them {said}"
    else:
        before = f"{the_line} judged them {said} ({trial.by_active} of them by {_named(active)}, active now)"
    # a REVIEW sets the PLC's NG bit as NG does: a doubted photo stops the line the same way
    review = " A part sent to REVIEW stops the line as an NG one does (the PLC's NG bit)." \
        if trial.photo_doubted or trial.sent_to_review else ""
    # The active version's model with other thresholds (the same file, or one saved by the
    # Tuning page, whose note says so): its threshold is the cause, not another product's model
    # ("a model made for another product" was said of a threshold saved at 0.5 beside 19.53).
    tuned = (mv.note or "").startswith("thresholds of v")
    if (active is not None and mv.model_id == active.model_id) or tuned:
        own = f"{mv.threshold:g}" if mv.threshold is not None else "as saved"
        if active is not None and active.threshold is not None:
            own += f", the active version's {active.threshold:g}"
        who = f"{_named(mv)}'s threshold ({own})"
        cause = (" A threshold set too low does this: set it within the scores the Tuning page shows and save it "
                 "again. Or try it on the line first")
    else:
        who, cause = _named(mv), " A model made for another product or camera does this. Try it on the line first"
    return (f"{who} {trial.did(parts=f'good parts of {_parts_of(mv)}')}; {before}. Good parts here: "
            "judged OK or reviewed good, their images kept"
            + (f" ({trial.learnt_left_out} it learned from left out)" if trial.learnt_left_out else "")
            + f".{review}{cause}: run it in shadow, then compare (Shadow and Compare on the "
            "Models page); or activate it anyway with \"force\": true")


def _passes_message(mv: ModelVersion, defects: Any) -> str:
    the_line = f"line {mv.line!r}" if mv.line else "the line"
    # "; or activate it anyway" as _rejects_message ends: the Models page cuts that off to ask
    return (f"{_named(mv)} judges {defects.passed} of the {defects.scored} latest parts of {_parts_of(mv)} reviewed "
            f"as defects OK (their images kept); {the_line} passed {defects.line_passed} of them when they were "
            "made: it would ship defects like them. A threshold set too high does this (a retrain that learnt only "
            "the oddest good parts, the old version's false alarms). Run it in shadow and compare first (Shadow "
            "and Compare on the Models page); or activate it anyway with \"force\": true")


def _n_train(insp: Any) -> Optional[int]:
    """How many good parts a model learned from, as its file says (``lineguard info``:
    info.n_train); None when it does not say."""
    info = getattr(insp, "info", None)
    n = info.get("n_train") if isinstance(info, dict) else None
    return int(n) if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None


def rollback_target(s: Any, product: str, line: str,
                    usable: Optional[Callable[[ModelVersion], bool]] = None) -> Optional[tuple[int, str]]:
    """The version a rollback of product/line would make active now, as (version, its
    line), or None (the page offers no Roll back then, and its question names the
    version). Its line is "" where the rollback gives a line's parts back to the model of
    every line. ``usable``: as the rollback walks (ModelRegistry.has_file: a version whose
    file is missing is passed)."""
    try:
        mv = _rollback_to(s, product, line, usable)
    except Conflict:      # ModelFileMissing too
        return None
    return mv.version, mv.line


def model_facts(insp: Any) -> dict[str, Any]:
    """Thresholds and detector of a loaded model, as stored on its version."""
    def num(name: str) -> Optional[float]:
        try:
            v = float(getattr(insp, name))
        except (AttributeError, TypeError, ValueError):
            return None
        return v if v == v else None   # NaN: not recorded
    threshold, review = num("threshold"), num("review_threshold")
    if review is not None and (threshold is None or review >= threshold):
        review = None   # no review band (the model reports its threshold as the band's edge)
    det = getattr(insp, "detector", None)
    name = getattr(det, "name", None) if det is not None else None
    return {"threshold": threshold, "review_threshold": review,
            "detector": str(name)[:50] if name else None, "features": _features(det, insp)}


def _precision_of(insp: Any) -> tuple[Optional[str], Optional[str]]:
    """(precision, runtime) of a loaded model, as its detector says (None where it does not)."""
    det = getattr(insp, "detector", None)
    precision, runtime = getattr(det, "precision", None), getattr(det, "runtime", None)
    return (precision if isinstance(precision, str) else None, runtime if isinstance(runtime, str) else None)


def _features(det: Any, insp: Any) -> Optional[str]:
    """What a model looks at, in a few words: the backbone, the input size (height x
    width) and any extra sizes the part is also seen at. A quality profile's version
    ("mobilenet_v2 320x192 + 0.7x") and a fast one's ("lite0 224x224") score on other
    scales: without this, their thresholds look like an error."""
    words = []
    # an exported (ONNX) model keeps its detector's settings as params: the backbone too
    params = getattr(det, "params", None)
    params = params if isinstance(params, dict) else {}
    backbone = getattr(det, "backbone", None) or params.get("backbone")
    if isinstance(backbone, str):
        words.append(backbone)
    size = getattr(getattr(insp, "preprocess", None), "image_size", None) or getattr(det, "input_size_", None)
    if isinstance(size, int):
        size = (size, size)
    if isinstance(size, (tuple, list)) and len(size) == 2:
        words.append(f"{int(size[0])}x{int(size[1])}")
    scales = [float(s) for s in getattr(det, "extra_scales", None) or params.get("extra_scales") or ()]
    if scales:
        words.append("+ " + ", ".join(f"{s:g}x" for s in scales))
    return " ".join(words)[:100] or None


def model_subject(mv: ModelVersion) -> str:
    """How the change log names a model version: ``cell/L1 v3`` (``cell/* v3``: every line)."""
    return f"{mv.product}/{mv.line or '*'} v{mv.version}"


def _model_event(s: Session, mv: ModelVersion, action: str, by: Optional[str], **extra: Any) -> None:
    """The model change goes out through the outbox, committed with the change itself
    (``for_line``: the production line it is about, where ``mv`` is the model of every line)."""
    from .outbox import record_event
    record_event(s, "model", extra.get("for_line") or mv.line, {
        "action": action, "product": mv.product, "line": mv.line, "version": mv.version,
        "model_id": mv.model_id, "model_version": mv.model_version, "by": by,
        "at": utcnow().isoformat() + "Z", **extra})
