"""Reference photos of good parts, per product (and line): what a retrain learns beside the
station's stored parts reviewed good.

A plant trains its first model on a PC from its photos of good parts (``lineguard train
photos/good``) and starts the station with it. A retrain on the station learnt only from
the station's own parts reviewed good or in the audit sample (at most ``limit``): the
photos the first model learnt were gone from it, so a month later it learnt from a few
dozen parts, mostly the old version's false alarms, and its threshold was set by one of
them (on KolektorSDD: 68 parts, 49 of 52 defects passed, where the first model passed 17).
Given here (``lineguard reference add``, POST /api/v1/reference-photos, the Models page),
those photos are kept in the data folder and every retrain of the product learns them too:
the good parts pile up rather than replace.

They are kept in a content-addressed store of their own (``DATA/reference``), not among the
part photos: the disk keeper and the store sweep delete a part photo no record names, and
these are named by no part. Each photo passes the checks a part's upload passes (empty,
the station's size and pixel limits, a format the station keeps, decodable), so a photo
the station would refuse as a part is never learnt as a good one.
"""
from __future__ import annotations

import threading
import weakref
from pathlib import Path
from typing import Any, Callable, Optional

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from . import audit
from .errors import (Conflict, CorruptImage, EmptyUpload, ImageTooLarge, InvalidRequest, NotAnImage, NotFound,
                     UploadTooLarge)
from .imagestore import ContentStore, sha256_hex, sniff_image
from .orm import ModelVersion, ReferencePhoto, iso_utc
from .station import unprintable

# The most reference photos of one product and line. A retrain reads every one of them (with
# up to 10,000 stored parts): a first model is trained on tens to a few thousand photos; more
# than this is more likely a folder of everything than the photos of good parts.
MAX_PHOTOS = 10_000

FOLDER = "reference"


class TooManyPhotos(Conflict):
    code = "too_many_reference_photos"


def check_photo(data: bytes, name: str, max_bytes: int, max_pixels: int) -> tuple[str, int, int]:
    """(suffix, width, height) of a photo of a good part, checked as the station checks a
    part's upload (``Station._inspect`` and ``_decode``): not empty, within the station's
    byte and pixel limits, a format the station keeps and serves, and decodable. Raises the
    error a part's upload would get, its message naming the photo and what to do."""
    from ..vision.errors import ImageError, ImageTooLarge as HeaderTooLarge
    from ..vision.imageio import load_photo
    if not data:
        raise EmptyUpload(f"{name} is empty (0 bytes): copy the photo again")
    if len(data) > max_bytes:
        raise UploadTooLarge(f"{name} is {len(data) / (1 << 20):.1f} MiB, over the station limit of "
                             f"{max_bytes / (1 << 20):g} MiB for a part's photo; give a smaller photo or raise the "
                             "station's --max-upload-mb")
    suffix, _media = sniff_image(data)
    if not suffix:
        raise NotAnImage(f"{name} is not an image the station keeps; give PNG, JPEG, BMP, TIFF, WebP or GIF "
                         "photos, as the line's camera takes them")
    try:
        # as a part's decode: a JPEG over the pixel limit decoded reduced, anything else over it
        # refused from its header before it is decoded
        photo = load_photo(data, max_pixels=max_pixels, reduce_to_fit=True, keep_depth=True)
    except HeaderTooLarge as exc:
        raise ImageTooLarge(f"{name}: the image {exc.problem}; give a smaller photo (downscale or crop it) or raise "
                            "the station's --max-megapixels") from exc
    except ImageError as exc:
        raise CorruptImage(f"{name}: the {suffix[1:].upper()} image {exc.problem}; "
                           + (exc.hint or "copy the photo again from the camera or the training folder")) from exc
    height, width = photo.size_hw
    return suffix, int(width), int(height)


def photo_to_dict(row: ReferencePhoto) -> dict[str, Any]:
    return {"id": row.id, "product": row.product, "line": row.line, "image_key": row.image_key,
            "sha256": row.image_sha256, "filename": row.filename, "width": row.width, "height": row.height,
            "added_at": iso_utc(row.added_at), "added_by": row.added_by,
            "links": {"image": f"/api/v1/reference-photos/{row.id}/image"}}


class ReferencePhotos:
    """The reference photos of a station's data folder: their files and their rows."""

    def __init__(self, db: Any, data_dir: Path, max_bytes: int, max_pixels: int, power_safe: bool = False):
        self.db = db
        self.store = ContentStore(Path(data_dir) / FOLDER, power_safe=power_safe)
        self.max_bytes, self.max_pixels = max_bytes, max_pixels

    def add(self, product: str, data: bytes, filename: Optional[str] = None, line: str = "",
            by: Optional[str] = None) -> tuple[dict[str, Any], bool]:
        """Keep one photo for ``product``'s retrains (``line``: only that line's, "" every
        line's): (its entry, whether it is new). The same photo again is the entry already
        there, not a second one (a folder given twice learns each photo once)."""
        product, line = check_names(product, line)
        name = (filename or "the photo").strip() or "the photo"
        suffix, width, height = check_photo(data, name, self.max_bytes, self.max_pixels)
        digest = sha256_hex(data)
        with self.db.session() as s:
            found = s.scalar(select(ReferencePhoto).where(ReferencePhoto.product == product,
                                                          ReferencePhoto.line == line,
                                                          ReferencePhoto.image_sha256 == digest))
            if found is not None:
                return photo_to_dict(found), False
            n = s.scalar(select(func.count()).select_from(ReferencePhoto)
                         .where(ReferencePhoto.product == product, ReferencePhoto.line == line))
            if n >= MAX_PHOTOS:
                raise TooManyPhotos(f"product {product!r}" + (f" line {line!r}" if line else "")
                                    + f" has {n} reference photos, the most the station keeps ({MAX_PHOTOS}); "
                                    "remove some before adding others")
        # the file first (written whole to a temp file, fsynced, renamed): a row never names a
        # file that is not there; a file left by a failed insert is one the sweep below clears
        key = self.store.put(data, suffix, digest=digest)
        row = ReferencePhoto(product=product, line=line, image_key=key, image_sha256=digest,
                             filename=shown_filename(filename), width=width, height=height,
                             added_by=by[:100] if by else by)
        try:
            with self.db.session() as s:
                s.add(row)
                s.flush()
                audit.record(s, "reference.added", f"{product}/{line or '*'}", by, photo=row.id,
                             filename=row.filename, sha256=digest)
                out = photo_to_dict(row)
        except IntegrityError:
            # the same photo added at the same moment by another request: that one stands
            with self.db.session() as s:
                found = s.scalar(select(ReferencePhoto).where(ReferencePhoto.product == product,
                                                              ReferencePhoto.line == line,
                                                              ReferencePhoto.image_sha256 == digest))
                if found is None:
                    raise
                return photo_to_dict(found), False
        return out, True

    def list(self, product: Optional[str] = None, line: Optional[str] = None, limit: int = 10_000,
             offset: int = 0) -> list[dict[str, Any]]:
        q = select(ReferencePhoto).order_by(ReferencePhoto.id)
        if product is not None:
            q = q.where(ReferencePhoto.product == product)
        if line is not None:
            q = q.where(ReferencePhoto.line == line)
        with self.db.session() as s:
            return [photo_to_dict(r) for r in s.scalars(q.offset(offset).limit(limit))]

    def product_check(self, product: str, new_product: bool = False, how: str = "add new_product=true") -> Optional[str]:
        """The upload's rule for a product's name (registry.product_slip_check) on the
        products this station has models or reference photos of: a slip of one ("Cell",
        "cel" beside "cell") is refused (409) unless ``new_product``, as reference photos
        kept under it would be learnt by no retrain; another new name, a warning back."""
        from .registry import product_slip_check
        with self.db.session() as s:
            known = {p for (p,) in s.execute(select(ModelVersion.product).distinct())}
            known |= {p for (p,) in s.execute(select(ReferencePhoto.product).distinct())}
        return product_slip_check(_name(product, "product"), sorted(known), new_product, how)

    def count(self, product: Optional[str] = None, line: Optional[str] = None) -> int:
        q = select(func.count()).select_from(ReferencePhoto)
        if product is not None:
            q = q.where(ReferencePhoto.product == product)
        if line is not None:
            q = q.where(ReferencePhoto.line == line)
        with self.db.session() as s:
            return int(s.scalar(q) or 0)

    def sizes(self, product: str, line: Optional[str] = None) -> dict[tuple[int, int], int]:
        """How many of ``product``'s photos (``line``'s only, "" every line's; None all) are of
        each (width, height): a camera replaced by one of another resolution shows as a size
        the photos kept are not of (``lineguard reference add`` says so)."""
        q = (select(ReferencePhoto.width, ReferencePhoto.height, func.count())
             .where(ReferencePhoto.product == product).group_by(ReferencePhoto.width, ReferencePhoto.height))
        if line is not None:
            q = q.where(ReferencePhoto.line == line)
        with self.db.session() as s:
            return {(int(w), int(h)): int(n) for w, h, n in s.execute(q)}

    def training_sizes(self, product: str, line: str = "") -> dict[tuple[int, int], int]:
        """How many of the photos a retrain of ``product`` (``line``) learns (as
        :meth:`for_training`) are of each (width, height). A line's add compared with that
        line's own photos only: 5 of a new camera beside 30 of every line's old one said
        nothing, and the line's retrain learnt both."""
        out: dict[tuple[int, int], int] = {}
        for _pid, w, h in self._learnt(product, line).values():
            out[(w, h)] = out.get((w, h), 0) + 1
        return out

    def ids_of(self, product: str, line: Optional[str] = None,
               size: Optional[tuple[int, int]] = None) -> list[int]:
        """The ids of ``product``'s photos (``line``'s only; None every line's), of one
        (width, height) where ``size`` is given: the old camera's, to remove them at once
        after a camera change (one id at a time for a training folder of 200 was no way)."""
        q = select(ReferencePhoto.id).where(ReferencePhoto.product == product).order_by(ReferencePhoto.id)
        if line is not None:
            q = q.where(ReferencePhoto.line == line)
        if size is not None:
            q = q.where(ReferencePhoto.width == size[0], ReferencePhoto.height == size[1])
        with self.db.session() as s:
            return [int(i) for i in s.scalars(q)]

    def for_training(self, product: str, line: str = "") -> list[tuple[int, str]]:
        """(id, image key) of the photos a retrain of ``product`` (``line``) learns: those of
        every line, and a line's retrain its own too; each photo once."""
        return [(pid, key) for key, (pid, _w, _h) in self._learnt(product, line).items()]

    def _learnt(self, product: str, line: str) -> dict[str, tuple[int, int, int]]:
        """image key -> (its first id, width, height) of the photos a retrain of ``product``
        (``line``) learns, by id."""
        lines = [""] + ([line] if line else [])
        q = (select(ReferencePhoto.id, ReferencePhoto.image_key, ReferencePhoto.width, ReferencePhoto.height)
             .where(ReferencePhoto.product == product, ReferencePhoto.line.in_(lines)).order_by(ReferencePhoto.id))
        out: dict[str, tuple[int, int, int]] = {}
        with self.db.session() as s:
            for pid, key, w, h in s.execute(q):
                out.setdefault(key, (pid, int(w), int(h)))
        return out

    def get(self, photo_id: int) -> dict[str, Any]:
        with self.db.session() as s:
            row = s.get(ReferencePhoto, photo_id)
            if row is None:
                raise NotFound(f"no reference photo with id {photo_id} (GET /api/v1/reference-photos lists them)")
            return photo_to_dict(row)

    def path(self, key: str) -> Path:
        return self.store.path(key)

    def remove(self, photo_id: int, by: Optional[str] = None) -> dict[str, Any]:
        """Remove one photo: retrains no longer learn it. Its file goes once no other entry
        (another product's, another line's) names it."""
        with self.db.session() as s:
            row = s.get(ReferencePhoto, photo_id)
            if row is None:
                raise NotFound(f"no reference photo with id {photo_id} (GET /api/v1/reference-photos lists them)")
            out = photo_to_dict(row)
            s.execute(delete(ReferencePhoto).where(ReferencePhoto.id == photo_id))
            audit.record(s, "reference.removed", f"{row.product}/{row.line or '*'}", by, photo=photo_id,
                         filename=row.filename, sha256=row.image_sha256)
        self._forget_file(out["image_key"])
        return out

    def _forget_file(self, key: str) -> None:
        with self.db.session() as s:
            named = s.scalar(select(func.count()).select_from(ReferencePhoto).where(ReferencePhoto.image_key == key))
        if not named:
            # not one stored in the last minute (another request or process adding the same
            # photo now, its row about to name it): that one stays, for the sweep to judge
            self.store.delete_unnamed(key, unless_newer_than_s=60.0)

    def sweep(self, older_than_s: float = 3600.0) -> int:
        """Delete the files no entry names (an add whose row failed, a removal that left a
        file just stored), older than ``older_than_s``; how many went."""
        with self.db.session() as s:
            named = set(s.scalars(select(ReferencePhoto.image_key)))
        gone = 0
        root = self.store.root
        for p in root.glob("??/??/*"):
            key = p.relative_to(root).as_posix()
            if key not in named and self.store.delete_unnamed(key, unless_newer_than_s=older_than_s):
                gone += 1
        return gone


def sizes_said(sizes: dict[tuple[int, int], int]) -> str:
    """e.g. "384 x 384" or "256 x 256 (118), 256 x 192 (2)", the most first."""
    order = sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(order) == 1:
        return f"{order[0][0][0]} x {order[0][0][1]}"
    return ", ".join(f"{w} x {h} ({n})" for (w, h), n in order)


def size_warning(given: dict[tuple[int, int], int], kept: dict[tuple[int, int], int],
                 named: dict[tuple[int, int], list[str]], remove: Callable[[list[tuple[int, int]]], str],
                 line: str = "") -> Optional[str]:
    """The warning for photos of ``given`` sizes added where those a retrain learns are of
    ``kept`` sizes (:meth:`ReferencePhotos.training_sizes`, before the add), or None; the
    same words from `lineguard reference add` and POST /api/v1/reference-photos (the API
    said nothing of a size, the CLI did). ``named``: the files of each size given, to name
    an odd one; ``remove(sizes)``: how to remove the photos of those sizes; ``line``: the
    line they were added for ("" every line's)."""
    odd = {wh: n for wh, n in given.items() if wh not in kept}
    if not (kept and odd):
        return None
    learns = f"A retrain of line {line} learns" if line else "Every retrain learns"
    before = (f"the {sum(kept.values())} a retrain of line {line} learns besides" if line
              else f"the {sum(kept.values())} kept before")
    if len(odd) == len(given):
        # A replaced camera of another resolution: the old camera's photos kept beside the new
        # one's, every retrain learns both, and its photo check then passes either camera's
        # photos (the old lamp or exposure coming back among them unnoticed).
        n = sum(given.values())
        return (f"{'this photo is' if n == 1 else 'these photos are'} {sizes_said(given)}; {before} "
                f"{'is' if sum(kept.values()) == 1 else 'are'} {sizes_said(kept)}: another camera? {learns} both. "
                f"If the old camera is gone, remove its photos: {remove(sorted(kept))}")
    # some of those given are of a size none kept is (a 64 x 64 crop among 256 x 256 photos):
    # warned only when all of them were before, and "added 9 ... 69 in all" said nothing
    n = sum(odd.values())
    names = [name for wh in sorted(odd) for name in named.get(wh, [])]
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return (f"{n} of these photos {'is' if n == 1 else 'are'} {sizes_said(odd)}" + (f" ({shown})" if shown else "")
            + f"; {before} {'is' if sum(kept.values()) == 1 else 'are'} {sizes_said(kept)}: another camera's, or "
            f"cropped? {learns} {'it' if n == 1 else 'them'}. If {'it does' if n == 1 else 'they do'} not belong, "
            f"remove {'it' if n == 1 else 'them'}: {remove(sorted(odd))}")


def remove_command(store: ReferencePhotos, product: str, line: str, sizes: list[tuple[int, int]],
                   station: str = "") -> str:
    """`lineguard reference remove` (``station``: its --data/--db words) of the photos of
    ``sizes`` that a retrain of ``product`` (``line``) learns. An add for every line names no
    --line (every line's photos of those sizes, as before); a line's add names the lines that
    hold them, every line's as --line '': without it the command removed other lines' photos,
    and with the line's own name alone it missed the photos kept for every line."""
    import shlex
    said = " --size " + " --size ".join(f"{w}x{h}" for w, h in sizes)
    head = f"lineguard reference remove{station} --product {shlex.quote(product)}"
    if not line:
        return head + said
    holding = [ln for ln in ("", line) if any(store.ids_of(product, ln, wh) for wh in sizes)] or [line]
    return " and ".join(f"{head} --line {shlex.quote(ln)}{said}" for ln in holding)


def check_names(product: str, line: Optional[str]) -> tuple[str, str]:
    """The product and line photos are kept under, as :meth:`ReferencePhotos.add` takes them,
    or InvalidRequest saying what is wrong: checked before any photo is read."""
    return _name(product, "product"), _line(line)


def _name(value: str, what: str) -> str:
    v = (value or "").strip()
    if not v:
        raise InvalidRequest(f"give the {what} the photos are of (as its parts are sent)")
    if len(v) > 100:
        raise InvalidRequest(f"the {what} is at most 100 characters")
    bad = unprintable(v)
    if bad is not None:
        # a part's rule: no part can carry such a name (a right-to-left override showed a
        # spoofed name on the pages), so no retrain of a real product would ever learn it
        raise InvalidRequest(f"the {what} holds a control character or an invisible one (U+{ord(bad):04X}): give "
                             "its name as its parts are sent")
    return v


def _line(value: Optional[str]) -> str:
    """The line a photo is for ("" every line's), as the station takes a part's line: at
    most 100 characters (a longer one was a raw database error on PostgreSQL, and on SQLite
    a name no part's line can match), no NUL or control characters."""
    v = (value or "").strip()
    if len(v) > 100:
        raise InvalidRequest(f"the line is at most 100 characters (got {len(v)}): give the line's name as its "
                             "parts are sent, or none for every line's retrains")
    bad = unprintable(v)
    if bad is not None:
        raise InvalidRequest(f"the line holds a control character or an invisible one (U+{ord(bad):04X}): give the "
                             "line's name as its parts are sent")
    return v


def shown_filename(filename: Optional[str]) -> Optional[str]:
    """A photo's file name as kept and shown: its control, invisible and bidirectional
    characters replaced by U+FFFD. Only a label (the photo is kept by its content), so it
    is not refused; but "x\u202egnp.exe" read "xexe.png" on the page."""
    if not filename:
        return None
    return "".join("\ufffd" if unprintable(c) else c for c in filename)[-255:]


_made: "weakref.WeakKeyDictionary[Any, ReferencePhotos]" = weakref.WeakKeyDictionary()
_made_lock = threading.Lock()


def of_station(station: Any) -> ReferencePhotos:
    """The reference photos of a running station (one per station object), with its
    limits for a part's photo; its unnamed files older than an hour are cleared when first
    asked for."""
    with _made_lock:
        ref = _made.get(station)
        if ref is None:
            cfg = station.config
            ref = ReferencePhotos(station.db, cfg.data_dir, cfg.max_upload_bytes, cfg.max_image_pixels,
                                  power_safe=cfg.sqlite_synchronous in ("FULL", "EXTRA"))
            try:
                ref.sweep()
            except Exception:  # noqa: BLE001 - a sweep is housekeeping: a retrain must not fail on it
                import logging
                logging.getLogger("lineguard.reference").warning("could not sweep the reference photos",
                                                                 exc_info=True)
            _made[station] = ref
        return ref
