"""Read a category folder laid out like MVTec AD, the layout most public sets use.

    <root>/train/good/*.png                     good parts to learn from
    <root>/test/good/*.png                      good parts to test on
    <root>/test/<defect type>/*.png             defective parts, one folder per type
    <root>/ground_truth/<defect type>/<stem>_mask.png   where the defect is (optional)

Masks are optional: without a ``ground_truth`` folder an evaluation has image metrics
only. A defect image whose mask file is missing gets ``mask_path=None`` and is listed
in ``missing_masks`` so the report can say why it has no pixel metrics.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
from PIL import Image, ImageOps

from .errors import DatasetError, ImageError
from .imageio import IMAGE_SUFFIXES, shown_hw

__all__ = ["MVTecCategory", "TestItem", "GOOD", "NotRead", "not_read_in"]

GOOD = "good"

_LAYOUT = ("expected <category>/test/good/ and <category>/test/<defect type>/ with images, "
           "optionally <category>/train/good/ and "
           "<category>/ground_truth/<defect type>/<image name>_mask.png")


@dataclass(frozen=True)
class TestItem:
    """One test image: where it is, what it shows, and where its mask is."""

    __test__ = False  # not a pytest test class, despite the name

    path: Path
    defect_type: str                 # "good" for good parts
    mask_path: Optional[Path] = None

    @property
    def is_defect(self) -> bool:
        return self.defect_type != GOOD


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


# Why an entry of a photo folder is not read, one reason per kind of entry, worded for
# the person who filled the folder (singular, plural). `lineguard train` passed over a
# phone's HEIC photos, a sub-folder of last week's lot and the PDFs beside them without a
# word, and the model learnt from fewer parts than its owner thought it had.
NOT_READ_WHY = {
    "sub-folder": ("its photos are not read: name it as a folder of its own to use them too",
                   "their photos are not read: name each as a folder of its own to use them too"),
    "heic": ("a phone's photo format (HEIC/HEIF) lineguard does not read: export it as JPEG or PNG",
             "a phone's photo format (HEIC/HEIF) lineguard does not read: export them as JPEG or PNG"),
    "gif": ("GIF: the station judges GIFs, training does not learn from them: save it as PNG",
            "GIF: the station judges GIFs, training does not learn from them: save them as PNG"),
    "raw": ("a camera's raw format lineguard does not read: export it as PNG or TIFF",
            "a camera's raw format lineguard does not read: export them as PNG or TIFF"),
    "other": (f"not a photo format lineguard reads ({', '.join(IMAGE_SUFFIXES)}, upper or lower case)",
              f"not a photo format lineguard reads ({', '.join(IMAGE_SUFFIXES)}, upper or lower case)"),
    "link to nothing": ("a link whose file is gone", "links whose files are gone"),
    "not a file": ("not a regular file (a named pipe, socket or device)",
                   "not regular files (named pipes, sockets or devices)"),
}
_HEIC = (".heic", ".heif", ".hif")
_RAW = (".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2", ".pef", ".srw", ".raw")


@dataclass(frozen=True)
class NotRead:
    """An entry of a photo folder that is not read as a photo: ``kind`` is a key of
    :data:`NOT_READ_WHY`; ``photos``, for a sub-folder, how many photos it holds."""

    path: Path
    kind: str
    photos: int = 0

    @property
    def shown(self) -> str:
        """Its name as a person looks for it in the folder (a sub-folder with its photos)."""
        if self.kind == "sub-folder":
            return f"{self.path.name}/ ({self.photos} photo{'' if self.photos == 1 else 's'})"
        return self.path.name

    @property
    def why(self) -> str:
        return NOT_READ_WHY[self.kind][0]


def not_read_in(folder: Union[str, os.PathLike]) -> list[NotRead]:
    """What a folder of photos holds besides the photos training reads from it
    (``imageio.list_images``: files ending in one of IMAGE_SUFFIXES, in any case), by
    name. Hidden names (``.DS_Store``, a copy tool's ``.part.png.tmp``) are left out
    here as there: nobody put them there as photos. Empty for a folder that cannot be
    listed (list_images then says why)."""
    root = Path(folder)
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    out: list[NotRead] = []
    for p in entries:
        if p.name.startswith("."):
            continue
        suffix = p.suffix.lower()
        if p.is_dir():
            try:
                photos = len(_images_in(p))
            except OSError:          # unreadable sub-folder: still named, its photos uncounted
                photos = 0
            out.append(NotRead(p, "sub-folder", photos))
        elif p.is_symlink() and not p.exists():
            out.append(NotRead(p, "link to nothing"))
        elif not p.is_file():
            out.append(NotRead(p, "not a file"))
        elif suffix in IMAGE_SUFFIXES:
            continue
        elif suffix in _HEIC:
            out.append(NotRead(p, "heic"))
        elif suffix == ".gif":
            out.append(NotRead(p, "gif"))
        elif suffix in _RAW:
            out.append(NotRead(p, "raw"))
        else:
            out.append(NotRead(p, "other"))
    return out


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _oriented_size(path: Path) -> tuple[int, int]:
    """(width, height) as :func:`load_image` will deliver it, read from the header only."""
    try:
        with Image.open(path) as im:
            # (not getexif(): for a PNG it decodes the whole photo to find the orientation)
            h, w = shown_hw(im)
    except (OSError, SyntaxError, ValueError, ImageError) as exc:
        raise DatasetError(f"{path}: cannot read the image header ({exc})") from exc
    return w, h


class MVTecCategory:
    """One category of an MVTec-style data set (e.g. ``bottle`` or ``magnetic_tile``).

    Attributes:
        root: the category folder.
        train_good: good training images (empty when there is no ``train/good``).
        test_items: every test image, good ones first, then by defect type and name.
        defect_types: the defect folder names under ``test`` (without ``good``).
        has_ground_truth: whether a ``ground_truth`` folder exists.
        missing_masks: defect images without a mask file although ground truth exists.
        not_read: what train/good and the test/<type> folders hold that is not read as a
            photo (:func:`not_read_in`), for eval to say.
    """

    def __init__(self, root: Union[str, os.PathLike]):
        self.root = Path(root)
        if not self.root.exists():
            raise DatasetError(f"{self.root}: folder does not exist (check the path)")
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: is a file; {_LAYOUT}")
        test_dir = self.root / "test"
        if not test_dir.is_dir():
            raise DatasetError(self._not_mvtec_message("there is no test/ folder"))

        train_dir = self.root / "train" / GOOD
        self.train_good: list[Path] = _images_in(train_dir) if train_dir.is_dir() else []
        # what train/good and the test folders hold besides photos (eval says so: a folder
        # of HEIC photos was a category with fewer parts than its owner counted)
        self.not_read: list[NotRead] = not_read_in(train_dir) if train_dir.is_dir() else []

        loose = _images_in(test_dir)
        if loose:
            raise DatasetError(f"{test_dir}: holds images directly ({loose[0].name}, ...); "
                               f"sort them into test/good/ and test/<defect type>/ folders")

        gt_dir = self.root / "ground_truth"
        self.has_ground_truth = gt_dir.is_dir()
        self.missing_masks: list[Path] = []
        self.test_items: list[TestItem] = []
        types: list[str] = []
        folders = _subfolders(test_dir)
        # Good parts first: a stable, readable order for reports and progress bars.
        folders.sort(key=lambda p: (p.name != GOOD, p.name))
        for folder in folders:
            self.not_read.extend(not_read_in(folder))
            images = _images_in(folder)
            if not images:
                continue
            kind = folder.name
            if kind != GOOD:
                types.append(kind)
            for path in images:
                mask = None
                if kind != GOOD and self.has_ground_truth:
                    mask = self._find_mask(gt_dir / kind, path.stem)
                    if mask is None:
                        self.missing_masks.append(path)
                self.test_items.append(TestItem(path, kind, mask))
        if not self.test_items:
            raise DatasetError(self._not_mvtec_message("test/ has no sub-folder with images"))
        self.defect_types: list[str] = types

    def _not_mvtec_message(self, problem: str) -> str:
        msg = f"{self.root}: not an MVTec-style category folder: {problem}; {_LAYOUT}"
        nested = [p.name for p in _subfolders(self.root) if (p / "test").is_dir()]
        if nested:
            msg += (f". It looks like a data set with several categories "
                    f"({', '.join(nested[:5])}{', ...' if len(nested) > 5 else ''}): pass one of them")
        return msg

    @staticmethod
    def _find_mask(folder: Path, stem: str) -> Optional[Path]:
        if not folder.is_dir():
            return None
        # MVTec names masks <stem>_mask.png; some converted sets keep the image name.
        for name in (f"{stem}_mask", stem):
            for suffix in IMAGE_SUFFIXES:
                for cand in (folder / f"{name}{suffix}", folder / f"{name}{suffix.upper()}"):
                    if cand.is_file():
                        return cand
        return None

    @property
    def n_good(self) -> int:
        return sum(1 for it in self.test_items if not it.is_defect)

    @property
    def n_defect(self) -> int:
        return sum(1 for it in self.test_items if it.is_defect)

    def items_of(self, defect_type: str) -> list[TestItem]:
        return [it for it in self.test_items if it.defect_type == defect_type]

    def load_mask(self, item: TestItem, image_shape: Optional[tuple[int, int]] = None
                  ) -> Optional[np.ndarray]:
        """Boolean (H, W) mask of the defect, True where the defect is.

        A good part gets an all-False mask of its image size; a defect image without
        a mask file gets None (where the defect is, is unknown). ``image_shape`` (H, W)
        spares reading the image header when the caller already loaded the image.
        Raises :class:`DatasetError` naming the file if the mask is unreadable or its
        size differs from the image's.
        """
        if image_shape is None:
            w, h = _oriented_size(item.path)
            image_shape = (h, w)
        image_shape = (int(image_shape[0]), int(image_shape[1]))
        if not item.is_defect:
            return np.zeros(image_shape, dtype=bool)
        if item.mask_path is None:
            return None
        try:
            with Image.open(item.mask_path) as im:
                im = ImageOps.exif_transpose(im)
                # Any non-zero value marks the defect: masks come as 0/255, 0/1 or
                # palette images depending on the tool that drew them.
                if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                    mask = np.asarray(im) > 0
                else:
                    mask = np.asarray(im.convert("L")) > 0
        except (OSError, SyntaxError, ValueError) as exc:
            raise DatasetError(f"{item.mask_path}: mask cannot be read ({exc}); "
                               f"re-export it as a PNG") from exc
        if mask.shape != image_shape:
            raise DatasetError(
                f"{item.mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image "
                f"{item.path} is {image_shape[1]}x{image_shape[0]}; a mask must match its image "
                f"pixel for pixel")
        return mask

    def __repr__(self) -> str:
        return (f"MVTecCategory({str(self.root)!r}: {len(self.train_good)} train, "
                f"{self.n_good} good + {self.n_defect} defective test images, "
                f"types {self.defect_types})")
