"""`lineguard reference add|list|remove`: the reference photos of good parts a station's
retrains learn beside its stored parts (line.reference).

A plant trains its first model on a PC from photos of good parts; given to the station here
(or on the Models page, or POST /api/v1/reference-photos), every retrain learns them too.
Run on the station PC with the station's folder, as `keys` and `users` are (--data, --db,
--db-schema, or LINEGUARD_DATA, LINEGUARD_DB, LINEGUARD_DB_SCHEMA); a running station sees
them at its next retrain.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from .core import PathArg
from .station import data_option, db_options, station_said

_data = data_option()
_db = db_options()
_PHOTO_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif"}


@click.group(name="reference")
def reference_app() -> None:
    """Reference photos of good parts that a station's retrains learn (the photos its first model was trained on)."""


# why reference add passes over an entry of a folder it is given, where train's words
# (dataset.NOT_READ_WHY) do not fit: it keeps GIFs, as the station judges them, and it
# never follows a link (a link could point anywhere on the station PC; watch refuses them)
_NOT_ADDED_WHY = {
    "other": (f"not a photo format kept ({', '.join(sorted(_PHOTO_SUFFIXES))}, upper or lower case)",) * 2,
    "link": ("a symbolic link, not followed (it could point anywhere on the station PC): copy the photo itself "
             "into the folder", "symbolic links, not followed (they could point anywhere on the station PC): copy "
             "the photos themselves into the folder"),
}


def _not_added(folder: Path) -> list:
    """What a folder given to reference add holds besides the photos it keeps, as train
    names what it does not learn (dataset.NotRead): sub-folders, other files, and links.
    Passed over without a word before, and a link to a photo elsewhere was followed and kept."""
    from ..vision.dataset import NotRead, not_read_in
    entries = [e for e in not_read_in(folder) if e.kind != "gif" and not e.path.is_symlink()]
    return entries + [NotRead(f, "link") for f in sorted(folder.iterdir())
                      if f.is_symlink() and not f.name.startswith(".")]


def _photos(paths: tuple[Path, ...]) -> list[Path]:
    """The files given, a folder's photos (by their suffix, sorted; never a link) in its
    place; what else a folder holds is said (``not read:``), as train says it."""
    from ..vision.dataset import NOT_READ_WHY
    from ._term import fail, note
    from .core import _not_read_said
    why = {**NOT_READ_WHY, **_NOT_ADDED_WHY}
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.iterdir()
                           if not f.is_symlink() and f.is_file() and f.suffix.lower() in _PHOTO_SUFFIXES)
            skipped = _not_added(p)
            if not found:
                holds = "; ".join(_not_read_said(skipped, why=why)) if skipped else "nothing (it is empty)"
                fail(f"{p} holds no photos (PNG, JPEG, BMP, TIFF, WebP, GIF); it holds {holds}. Give the folder "
                     "of good parts' photos")
            if skipped:
                note("not read", f"{p}: {len(skipped)} entr{'y' if len(skipped) == 1 else 'ies'} not added, beside "
                                 f"its {len(found)} photo{'' if len(found) == 1 else 's'}:")
                for line in _not_read_said(skipped, why=why):
                    note("not read", f"  {line}")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            fail(f"{p}: no such file or folder")
    return out


def _store(database, data: Path, max_upload_mb: float, max_megapixels: float):
    from ..line.reference import ReferencePhotos
    return ReferencePhotos(database, data, max_bytes=int(max_upload_mb * 1024 * 1024),
                           max_pixels=int(max_megapixels * 1e6))


@reference_app.command("add")
@click.argument("photos", nargs=-1, required=True, type=PathArg)
@click.option("--product", required=True, help="The product the photos are of, as its parts are sent.")
@click.option("--line", default="", help="Only this line's retrains learn them (default: every line's).")
@click.option("--new-product", is_flag=True,
              help="PRODUCT is new, though its name is a slip of a known one (cell-ab beside cell-ba); without "
                   "it such a name is refused as a typo.")
@click.option("--max-upload-mb", type=click.FloatRange(min=0, min_open=True), default=32.0, show_default=True,
              help="Largest photo taken, as the station's --max-upload-mb.")
@click.option("--max-megapixels", type=click.FloatRange(min=0, min_open=True), default=26.0, show_default=True,
              help="Most pixels a photo may have, as the station's --max-megapixels.")
@_data
@_db
def reference_add(photos: tuple[Path, ...], product: str, line: str, new_product: bool, max_upload_mb: float,
                  max_megapixels: float, data: Path, db: Optional[str], db_schema: Optional[str]) -> None:
    """Keep photos of good parts (files or folders) for PRODUCT's retrains.

    Each is checked as a part's photo is (size, pixels, format, decodable); nothing is kept
    when one is refused, so a folder is given whole or not at all. The same photo again is
    kept once."""
    from ..line.audit import cli_actor
    from ..line.errors import StationError
    from ._term import fail
    from .access import _database
    from ..line.reference import check_names, check_photo, size_warning
    try:
        # a name too long (or holding a control character) was refused at the first photo's
        # add, exit 1 "0 added before it", after every photo was read and checked
        check_names(product, line)
    except StationError as exc:
        fail(f"{exc.message}; nothing was added")
    files = _photos(photos)
    # every photo checked before any is kept: a folder half given would train half
    given: dict[tuple[int, int], int] = {}
    named: dict[tuple[int, int], list[str]] = {}      # the files of each size, to name an odd one
    for f in files:
        try:
            _suffix, w, h = check_photo(f.read_bytes(), str(f), int(max_upload_mb * 1024 * 1024),
                                        int(max_megapixels * 1e6))
            given[(w, h)] = given.get((w, h), 0) + 1
            named.setdefault((w, h), []).append(str(f))
        except StationError as exc:
            fail(f"{exc.message}; nothing was added (remove or replace that file and run it again)")
        except OSError as exc:
            fail(f"cannot read {f}: {exc.strerror or exc}; nothing was added")
    with _database(data, db, db_schema, existing=True) as database:
        store = _store(database, data, max_upload_mb, max_megapixels)
        # a misspelt product ("Cell", "cel" beside "cell") kept photos no retrain would learn
        try:
            warning = store.product_check(product, new_product, how="add --new-product")
        except StationError as exc:
            fail(f"{exc.message}; nothing was added")
        if warning:
            from ._term import note
            note("warning", warning)
        product, line = product.strip(), line.strip()
        # what a retrain of that line learns (every line's photos and its own), not the line's
        # own alone: 5 photos of 128 x 128 for line L1 beside 30 of 96 x 96 for every line said
        # "5 in all" and nothing of the sizes, and L1's retrain learnt 35 of two sizes
        kept = store.training_sizes(product, line)
        new = 0
        for f in files:
            try:
                _entry, created = store.add(product, f.read_bytes(), filename=f.name, line=line, by=cli_actor())
            except StationError as exc:
                fail(f"{exc.message} ({new} added before it)", code=1)
            new += created
        if line:
            own, learnt = store.count(product, line), len(store.for_training(product, line))
            total = (f"{learnt} a retrain of line {line} learns: {own} of its own, {learnt - own} of every line"
                     if learnt > own else f"{own} in all")
        else:
            total = f"{store.count(product, line)} in all"
        warning = size_warning(given, kept, named, lambda sizes: _remove_command(store, data, db, db_schema, product,
                                                                                 line, sizes), line)
    click.echo(f"added {new} reference photo(s) of {product}" + (f" line {line}" if line else "")
               + (f" ({len(files) - new} there already)" if len(files) > new else "")
               + f"; {total}: the next retrain learns them beside the stored parts reviewed good")
    if warning:
        click.echo(f"warning: {warning}")


def _remove_command(store, data: Path, db: Optional[str], db_schema: Optional[str], product: str, line: str,
                    sizes: list[tuple[int, int]]) -> str:
    """`lineguard reference remove` of ``product``'s (``line``'s) photos of ``sizes``, with the
    station as this command was given it (the database password as ***)."""
    from ..line.reference import remove_command
    where, hidden = station_said(data, db, db_schema)
    return (remove_command(store, product, line, sizes, station=where)
            + (" (with the database password where *** stands; docs/camera-change.md)" if hidden
               else " (docs/camera-change.md)"))


def _size(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[tuple[int, int]]:
    out = []
    for v in values:
        w, sep, h = v.lower().replace(" ", "").partition("x")
        if not (sep and w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0):
            raise click.BadParameter(f"{v!r}: give WIDTHxHEIGHT in pixels as `reference list` shows it, e.g. 256x256")
        out.append((int(w), int(h)))
    return out


@reference_app.command("list")
@click.option("--product", default=None, help="Only this product's.")
@_data
@_db
def reference_list(product: Optional[str], data: Path, db: Optional[str], db_schema: Optional[str]) -> None:
    """List the reference photos (id, product, line, size, file name, added)."""
    from .access import _database
    with _database(data, db, db_schema, existing=True, read_only=True) as database:
        rows = _store(database, data, 32.0, 26.0).list(product)
    if not rows:
        click.echo("no reference photos" + (f" of {product}" if product else ""))
        return
    for r in rows:
        click.echo(f"{r['id']}\t{r['product']}\t{r['line'] or '*'}\t{r['width']}x{r['height']}\t"
                   f"{r['filename'] or '-'}\t{r['added_at']}")
    click.echo(f"{len(rows)} reference photo(s)")


@reference_app.command("remove")
@click.argument("ids", nargs=-1, type=click.IntRange(min=1))
@click.option("--product", default=None,
              help="Remove this product's photos (all of them, or those of --line / --size) instead of by id.")
@click.option("--line", default=None, help="With --product: only the photos kept for this line ('' every line's).")
@click.option("--size", "sizes", multiple=True, callback=_size, metavar="WxH",
              help="With --product: only photos of this width x height (e.g. the old camera's 256x256); repeatable.")
@_data
@_db
def reference_remove(ids: tuple[int, ...], product: Optional[str], line: Optional[str], sizes: list[tuple[int, int]],
                     data: Path, db: Optional[str], db_schema: Optional[str]) -> None:
    """Remove reference photos by id (`reference list`), or a product's (after a camera change, the
    old camera's: --product P --size WxH): retrains no longer learn them."""
    from ..line.audit import cli_actor
    from ..line.errors import StationError
    from ._term import fail
    from .access import _database
    if product is None and (line is not None or sizes):
        fail("--line and --size narrow --product: give --product too")
    if bool(ids) == (product is not None):
        fail("give the ids to remove (`lineguard reference list` shows them) or --product (with --line or --size "
             "to narrow it)" + (", not both" if ids else ""))
    with _database(data, db, db_schema, existing=True) as database:
        store = _store(database, data, 32.0, 26.0)
        if product is not None:
            # each photo once: a --size given twice (64x64 and 64X64) picked them twice, and the
            # second removal of each failed the command after all were gone
            picked = list(dict.fromkeys(i for wh in (sizes or [None])
                                        for i in store.ids_of(product.strip(), None if line is None else line.strip(),
                                                              wh)))
            if not picked:
                from ..line.close_names import close_names, did_you_mean
                # names compared exactly: "Widget" for "widget" removed nothing without a word of
                # the one meant, where add says it
                known = sorted({r["product"] for r in store.list()})
                close = [] if product.strip() in known else close_names(product.strip(), known)
                fail(f"no reference photos of {product.strip()}"
                     + (f" line {line.strip()!r}" if line is not None else "")
                     + (" of " + ", ".join(f"{w}x{h}" for w, h in sizes) if sizes else "")
                     + (f"; {did_you_mean(close)} Product names are compared exactly, case too" if close else "")
                     + ": `lineguard reference list --product " + (close[0] if close else product.strip())
                     + "` shows those kept")
            ids = tuple(picked)
        else:
            # every id looked up before any goes: a mistyped id after good ones removed those and
            # then failed, half done, naming the API; an id given twice failed at its second removal
            ids = tuple(dict.fromkeys(ids))
            missing = []
            for i in ids:
                try:
                    store.get(i)
                except StationError:
                    missing.append(i)
            if missing:
                fail(f"no reference photo with id {', '.join(map(str, missing))}: nothing was removed "
                     "(`lineguard reference list` shows the ids kept)")
        for i in ids:
            try:
                store.remove(i, by=cli_actor())
            except StationError as exc:
                fail(exc.message, code=1)
    click.echo(f"removed {len(ids)} reference photo(s)")


def register(app: click.Group) -> None:
    app.add_command(reference_app)
