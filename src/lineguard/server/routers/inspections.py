"""Parts in, verdicts out: inspect, look back, review."""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import tempfile
from typing import Any, Iterator, Literal, Optional, Union

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy import func, select
from starlette.background import BackgroundTask

from ...line import part_names, part_records
from ...line.close_names import close_names, did_you_mean, listed
from ...line.db import is_refusal, refusal_reason
from ...line.errors import InvalidRequest, NotFound, UploadTooLarge
from ...line.imagestore import media_type_for
from ...line.orm import Inspection
from ...line.reviews import FOUND_BY, defect_types
from ...line.shifts import plant_zone
from ...line.spc_data import known_names, known_station, refuse_backwards
from ...line import xlsx
from ...line.xlsx import TooManyRows
from ...line.station import (Part, Station, _iso, count_parts, inspection_to_dict, part_history,
                              return_freed_memory)
from ..deps import DB_INT_MAX, Caller, get_station, known_query_only, reader, require
from ..schemas import (InspectionOut, InspectionPage, PartNames, ReviewIn, ReviewList, errors, refuse_blank_form_fields,
                       refuse_odd_form_fields)
from .spc import SINCE_HELP, TIME_TEXT, UNTIL_HELP, plant_time

log = logging.getLogger("lineguard.server")
router = APIRouter(prefix="/api/v1/inspections", tags=["inspections"])

# not blank: the station refuses a part id, line, station or product of spaces only,
# so the schema says so too
_TEXT = r"\S"
_IMAGE_TYPES = ("image/png", "image/jpeg", "image/bmp", "image/tiff", "image/webp", "image/gif")
_ID = Path(ge=1, le=DB_INT_MAX, description="the inspection's id")
# An inspection's pictures never change: a browser may keep them an hour instead of asking
# the station to draw every overlay of a gallery again on each visit (private: behind a key)
# nosniff: a stored photo is sent with the type its name says, and a browser must not
# take one whose bytes look like HTML or script for a page
_PICTURE = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"}
# a picture for a screen: the photo (or overlay) with its long side at most this many pixels
_MAX_SIDE = Query(None, ge=16, le=16384, description="draw the picture at most this many pixels a side "
                  "(a screen's size; the photo is then a JPEG): a camera's 12 megapixel overlay takes seconds "
                  "to draw at full size")


def with_links(rec: Inspection) -> dict[str, Any]:
    d = inspection_to_dict(rec)
    base = f"/api/v1/inspections/{rec.id}"
    links = {"self": base}
    if rec.image_key:
        links["image"] = base + "/image"
        links["overlay"] = base + "/overlay"
    if rec.heatmap_key:
        links["heatmap"] = base + "/heatmap"
    d["links"] = links
    return d


def _read_upload(upload: UploadFile, limit: int) -> bytes:
    # Read one byte past the limit: enough to know it is too big without reading it all.
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise UploadTooLarge(f"the image is over the station limit of {limit / (1 << 20):g} MiB; "
                             "send a smaller image or raise the limit (--max-upload-mb)")
    return data


@router.post("", status_code=201, summary="Inspect one part", response_model=InspectionOut,
             responses={200: {"model": InspectionOut,
                              "description": "this part and image were already inspected; the existing record"},
                        **errors(400, 401, 403, 404, 409, 413, 415, 422, 503)})
async def create_inspection(
    request: Request,
    image: UploadFile = File(..., description="the part image (PNG, JPEG, BMP, TIFF, WebP)"),
    # examples: /docs "Try it out" fills the form with them; without, it made up a line "u"
    # and station "G" from the pattern, and a part sent so became a line of its own
    part_id: str = Form(..., min_length=1, max_length=200, pattern=_TEXT, examples=["part-000123"],
                        description="the part's id on the line (from the PLC, a scanner or the file name)"),
    line: str = Form(..., min_length=1, max_length=100, pattern=_TEXT, examples=["L1"],
                     description="the line, as the station's other parts name it"),
    station_name: str = Form(..., alias="station", min_length=1, max_length=100, pattern=_TEXT, examples=["S1"],
                             description="the inspection station on the line"),
    product: str = Form(..., min_length=1, max_length=100, pattern=_TEXT, examples=["cell"],
                        description="the product: its active model judges the part"),
    lot: Optional[str] = Form(None, max_length=200, examples=[""], description="the lot or batch, if known"),
    serial: Optional[str] = Form(None, max_length=200, examples=[""],
                                 description="the part's serial, if it has one (a test part is known by it)"),
    station: Station = Depends(get_station), caller: Caller = Depends(require("operator")),
    # after the key's check: a part id sent blank is said as blank, not as "Field required"
    _blank: None = Depends(refuse_blank_form_fields),
) -> JSONResponse:
    # the form is parsed already (FastAPI took the last image of several): which one the
    # sender meant is unknown, so none is judged
    images = (await refuse_odd_form_fields(request)).getlist("image")
    if len(images) > 1:
        raise InvalidRequest(f"the form holds {len(images)} files named image; send one image per part, "
                             "each in a request of its own")
    part = Part(part_id=part_id, line=line, station=station_name, product=product, lot=lot or None,
                serial=serial or None)

    def work():
        data = _read_upload(image, station.config.max_upload_bytes)
        return station.inspect(data, part, source="api")

    # The model and the commit block; run them off the event loop. The record is
    # committed inside station.inspect, before this response is built; its part's earlier
    # inspections are counted (and a re-sent part id logged) there, as for every source.
    outcome = await run_in_threadpool(work)
    rec = outcome.record
    body = with_links(rec)
    body["created"] = outcome.created
    body["earlier_inspections"] = outcome.earlier     # None: the database could not say
    # checked against the documented model like every other answer (JSONResponse
    # skips FastAPI's check, and is needed for the 200/201 choice)
    return JSONResponse(InspectionOut.model_validate(body).model_dump(mode="json"),
                        status_code=201 if outcome.created else 200)


def _file(station: Station, key: str, inspection_id: int) -> bytes:
    # the record named the file when it was read; the disk keeper may have cleared it since
    try:
        return station.images.get(key)
    except FileNotFoundError:
        raise NotFound(f"the files of inspection {inspection_id} were just deleted to make room on the disk "
                       "(/health's disk)") from None


def _parse_bool(v: Optional[str]) -> Optional[bool]:
    if v is None or v == "":
        return None
    return v.lower() in ("1", "true", "yes")


def part_filters(
    line: Optional[str] = None, station_name: Optional[str] = Query(None, alias="station"),
    product: Optional[str] = None,
    verdict: Optional[str] = Query(None, max_length=20, description="OK, NG or REVIEW, in any case"),
    part_id: Optional[str] = None,
    since: Optional[str] = Query(None, max_length=TIME_TEXT, description=SINCE_HELP),
    until: Optional[str] = Query(None, max_length=TIME_TEXT, description=UNTIL_HELP),
    reviewed: Optional[bool] = None, lot: Optional[str] = Query(None, max_length=200),
    serial: Optional[str] = Query(None, max_length=200, description="the part's serial as it was sent (a PLC's "
                                  "PartTag): every inspection of it, whatever part id each trigger gave it"),
    defect_type: Optional[str] = Query(None, max_length=100, description="the latest review's defect type"),
    test_parts: Optional[bool] = Query(None, description="true: only test parts' checks; false: only the line's "
                                                         "own parts; unset: both"),
    photo_doubted: Optional[bool] = Query(None, description="true: only parts whose photo was unlike the model's "
                                                            "good photos (photo_issues); false: only the others"),
    audit_sample: Optional[bool] = Query(None, description="true: only the random audit sample's parts (drawn "
                                                           "whatever the verdict: its OK ones are the parts to "
                                                           "audit for escapes); false: only the others"),
    station: Station = Depends(get_station),
) -> dict[str, Any]:
    """The filters the list and the export share (:meth:`Station.query`'s); an empty one
    is no filter, as a form left blank means."""
    # times made naive UTC here, so one out of range is refused before an export starts
    # streaming (a refusal after the first bytes can only cut the download short)
    since_t, until_t = plant_time(station, since, "since"), plant_time(station, until, "until", end=True)
    # a window back to front holds no part: answered "0 parts" (an empty export), it read as a
    # quiet period, where SPC, alarms and the change log say "swap them"
    refuse_backwards(since_t, until_t)
    # in any case, as `lineguard parts --verdict ng` takes it (the API answered "ng" with a
    # raw pattern: "String should match pattern '^(OK|NG|REVIEW)$'")
    verdict = (verdict or "").strip().upper() or None
    if verdict is not None and verdict not in ("OK", "NG", "REVIEW"):
        raise InvalidRequest(f"verdict {verdict!r} is not a verdict: give OK, NG or REVIEW (in any case), or leave it "
                             "out for every part")
    filters = dict(line=line or None, station=station_name or None, product=product or None,
                   verdict=verdict, part_id=part_id or None, since=since_t, until=until_t,
                   reviewed=reviewed, lot=lot or None, defect_type=defect_type or None, test_parts=test_parts,
                   # stored without surrounding spaces (Part.checked): a scanner's trailing CR still finds it
                   serial=(serial or "").strip() or None,
                   photo_doubted=photo_doubted, audit_sample=audit_sample)
    # a line or product typed as "l1" or "cell " finds the parts of "L1", "cell"
    filters = part_names.resolve_filters(station.db, filters)
    filters["defect_type"] = _stored_defect_type(station, filters["defect_type"], filters["product"])
    return filters


def _stored_defect_type(station: Station, defect_type: Optional[str], product: Optional[str]
                        ) -> Optional[Union[str, tuple[str, ...]]]:
    """A defect type typed in any case ("Crack") as it is stored: the spelling on the
    product's list or in the parts reviewed as it ("crack"), as a line or product is (the
    gallery found no part for "Crack" while "l1" and "CELL" found theirs). One product's list
    refuses two types told apart by case, but two products may spell one type each their own
    way (A "Crack", B "crack"), and a type taken off a list keeps its parts' spelling: with
    more than one stored spelling, the set of them (the filter matches any, along the defect
    type's index: line.station._matching), so that without a product filter the parts of
    both are found, not those of whichever spelling matched first."""
    if not defect_type:
        return defect_type
    folded = defect_type.casefold()
    with station.db.session() as s:
        products = [product] if product else part_names.stored_names(station.db, "product")
        spellings = {t for p in products for t in defect_types(s, p) if t.casefold() == folded}
        # the parts' own spellings (a type taken off a list since, another product's case)
        reviewed = select(Inspection.defect_type).where(Inspection.defect_type.is_not(None),
                                                        func.lower(Inspection.defect_type) == folded.lower())
        if product:
            reviewed = reviewed.where(Inspection.product == product)
        spellings.update(t for t in s.scalars(reviewed.distinct().limit(SPELLINGS_MAX)) if t)
    if not spellings:
        return defect_type      # no part, no list: refused by the export, "no parts" in the list
    return next(iter(spellings)) if len(spellings) == 1 else tuple(sorted(spellings))


# the stored spellings of one defect type looked for (each product may spell it its own way)
SPELLINGS_MAX = 50


@router.get("/names", summary="The lines and products the records hold (for a filter's suggestions)",
            response_model=PartNames, responses=errors(401, 403))
def list_names(station: Station = Depends(get_station), _r: Any = Depends(reader)) -> dict[str, Any]:
    return {"lines": part_names.stored_names(station.db, "line"),
            "products": part_names.stored_names(station.db, "product")}


@router.get("", summary="List inspections, newest first", response_model=InspectionPage,
            description="An unknown query parameter (a filter misspelt) is refused with a 422 naming it and "
                        "the known ones, not ignored.",
            responses=errors(401, 403, 422))
def list_inspections(
    _r: Any = Depends(reader),      # first: the filters read the database, a caller must be let in before
    filters: dict[str, Any] = Depends(part_filters),
    # after the filters: a time they cannot use is said first, as on the other endpoints
    _known: None = Depends(known_query_only),
    limit: int = Query(50, ge=1, le=1000),
    cursor: Optional[str] = Query(None, description="next_cursor of the previous page"),
    count: bool = Query(False, description="also count how many parts match (total), up to 100,000"),
    station: Station = Depends(get_station),
) -> dict[str, Any]:
    before = None
    if cursor:
        if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 10 and int(cursor) <= DB_INT_MAX):
            raise InvalidRequest("cursor must be the next_cursor value of a previous page")
        before = int(cursor)
    rows = station.query(before_id=before, limit=limit, **filters)
    out: dict[str, Any] = {"items": [with_links(r) for r in rows],
                           "next_cursor": str(rows[-1].id) if len(rows) == limit else None}
    if count:      # the first page's "of how many"; capped: a count of years of parts is not free
        n = count_parts(station.db, up_to=COUNT_CAP + 1, **filters)
        out.update(total=min(n, COUNT_CAP), total_capped=n > COUNT_CAP)
    return out


COUNT_CAP = 100_000


_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@router.get("/export", summary="Parts as a spreadsheet (CSV or .xlsx), newest first", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}, _XLSX: {}},
                             "description": "one row a part: verdict, score, thresholds, regions, model, latest "
                                            "review and its outcome (columns: lineguard.line.part_records)"},
                       **errors(401, 403, 404, 422)})
def export_inspections(
    _r: Any = Depends(reader),
    filters: dict[str, Any] = Depends(part_filters),
    _known: None = Depends(known_query_only),      # ?fromat=xlsx sent a CSV of every part
    limit: Optional[int] = Query(None, ge=1, le=DB_INT_MAX, description="at most this many parts (default: all)"),
    format: Literal["csv", "xlsx"] = Query("csv", description="csv (streamed), or xlsx: every cell typed, so part "
                                           "ids like 000123 stay text and times are times"),
    station: Station = Depends(get_station),
) -> StreamingResponse:
    # a line or product the station never saw (a typo: "L9") is refused as SPC and the period
    # report refuse it, naming the known ones: it sent a file of its header only, read as a
    # line that made nothing (the gallery's list still answers such a filter "no parts")
    known_names(station.db, filters["line"], filters["product"])
    filters["station"] = known_station(station.db, filters["station"], filters["line"])
    _known_defect_type(station, filters["defect_type"], filters["product"])
    zone = plant_zone(station.config.timezone)     # the plant_time column
    named = "-".join(v for v in (filters[k] for k in ("line", "product", "lot", "verdict")) if v)
    name = "lineguard-parts" + (f"-{named}" if named else "") + dt.datetime.now(dt.timezone.utc).strftime(
        "-%Y%m%dT%H%MZ")
    safe_name = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in name)
    if format == "xlsx":
        # a zip is finished before it can be read: built in a temporary file (spilled to
        # disk past 16 MB), then sent; the file goes when the answer has been sent
        book = tempfile.SpooledTemporaryFile(max_size=16 << 20)
        try:
            # counted first: refused before a row is written (the writer checks again as it goes)
            xlsx.check_fits(count_parts(station.db, up_to=xlsx.MAX_ROWS, limit=limit, **filters))
            part_records.write_workbook(station.each(limit=limit, **filters), book, zone)
            size = book.tell()
            book.seek(0)
        except TooManyRows as exc:
            book.close()
            raise InvalidRequest(f"{exc} (format=csv)") from None
        except BaseException:
            book.close()
            raise
        return StreamingResponse(_read_and_close(book), media_type=_XLSX, background=BackgroundTask(book.close),
                                 headers={"Content-Disposition": f'attachment; filename="{safe_name}.xlsx"',
                                          "Content-Length": str(size)})
    return StreamingResponse(_cut_short_said(part_records.csv_lines(station.each(limit=limit, **filters), zone),
                                             safe_name),
                             media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{safe_name}.csv"'})


def _known_defect_type(station: Station, defect_type: Optional[Union[str, tuple[str, ...]]],
                       product: Optional[str]) -> None:
    """NotFound for a defect type no part was reviewed as and no product's list (``product``'s,
    when named) holds: "scrach" sent an empty export. A type taken off a product's list
    since is still found: the parts reviewed as it keep it."""
    if not defect_type or isinstance(defect_type, tuple):
        return      # a tuple: the stored spellings of a type (_stored_defect_type), known
    with station.db.session() as s:
        # along the defect type's own index: one row at most
        if s.scalar(select(Inspection.id).where(Inspection.defect_type == defect_type).limit(1)) is not None:
            return
        products = [product] if product else part_names.stored_names(station.db, "product")
        types = sorted({t for p in products for t in defect_types(s, p)})
    if defect_type in types:
        return       # on the list, no part reviewed as it yet: an empty export is the answer
    close = close_names(defect_type, types)
    whose = f"the defect types of product {product!r}" if product else "the defect types of the products"
    raise NotFound(f"no part was reviewed as defect type {defect_type!r}"
                   + (f" ({did_you_mean(close)})" if close else "")
                   + f"; {whose}: {listed(types) or 'none'}; send one of them, or leave defect_type empty for every "
                     "part", unknown="defect_type", known=types[:50], did_you_mean=close)


def _cut_short_said(pieces: Iterator[str], name: str) -> Iterator[str]:
    """A streamed export whose database fails after the first bytes can only be cut short:
    the connection closes without the answer's end, so the browser marks the download
    failed (a file that merely stopped would pass for a whole one). The log says so in
    one plain line before the server's traceback."""
    sent = 0
    try:
        for piece in pieces:
            yield piece
            sent += len(piece)
    except Exception as exc:
        why = refusal_reason(exc) if is_refusal(exc) else f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
        log.error("the parts export %s was cut short after %d characters (%s): the download is incomplete and "
                  "shows as failed; export again once the station is healthy", name, sent, why)
        # not the database's own error: its handler (a 503) would try to answer a request
        # already half answered, and the log would end in Starlette's "response already started"
        raise ExportCutShort(f"the parts export {name} was cut short: {why}") from exc


class ExportCutShort(Exception):
    """A streamed export ended by a failure after its first bytes (see _cut_short_said)."""


def _read_and_close(f: Any, chunk: int = 1 << 16) -> Iterator[bytes]:
    try:
        while data := f.read(chunk):
            yield data
    finally:
        f.close()


@router.get("/{inspection_id}", summary="One inspection", response_model=InspectionOut,
            responses=errors(401, 403, 404, 422))
def get_inspection(inspection_id: int = _ID, station: Station = Depends(get_station),
                   _r: Any = Depends(reader)) -> dict[str, Any]:
    rec = station.get(inspection_id)
    out = with_links(rec)
    # the operator on an old record of a part sent again (rework, a repeated id) sees the others
    history = part_history(station.db, rec)
    for other in history["others"]:
        other["link"] = f"/api/v1/inspections/{other['id']}"
    out["part_history"] = history
    return out


# -- pictures drawn from a part's photo ----------------------------------------------------
# A 25 megapixel photo drawn as an overlay at full size holds 1.6 GB while it is drawn: six
# asked at once took a station to 10 GB for over a minute, and the parts judged meanwhile
# answered 5-30 times slower. A thumbnail decoded the whole photo to keep 320 pixels of it.
# Now a JPEG is decoded only as large as the picture asked needs (the decoder skips the
# rest), an overlay asked at full size is drawn at most OVERLAY_MAX_PIXELS, and pictures
# are drawn PICTURE_SLOTS at a time: up to PICTURE_QUEUE more wait their turn (in the event
# loop, holding no worker thread a part needs) for up to PICTURE_WAIT_S; beyond, 503 with
# Retry-After, which a gallery's next look gets right.
PICTURE_SLOTS = 2
PICTURE_QUEUE = 16
PICTURE_WAIT_S = 20.0
OVERLAY_MAX_PIXELS = 8_000_000      # ~0.5 GB while drawn; more than a screen shows


class PictureSlots:
    """How many pictures are drawn at once (see above); one per app, in ``app.state``."""

    def __init__(self, slots: Optional[int] = None, queue: Optional[int] = None):
        self.slots = PICTURE_SLOTS if slots is None else slots
        self.queue = PICTURE_QUEUE if queue is None else queue
        self.waiting = 0
        # an asyncio semaphore belongs to the loop it first made wait: a new one for the
        # same app served on another loop (as report_slots does)
        self._sem: Optional[asyncio.Semaphore] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    async def take(self) -> Optional[asyncio.Semaphore]:
        """A slot (the semaphore to release), or None when the station is too busy."""
        loop = asyncio.get_running_loop()
        if self._sem is None or self._loop is not loop:
            self._sem, self._loop, self.waiting = asyncio.Semaphore(self.slots), loop, 0
        sem = self._sem
        if sem.locked() and self.waiting >= self.queue:
            return None
        self.waiting += 1
        try:
            await asyncio.wait_for(sem.acquire(), PICTURE_WAIT_S)
            return sem
        except asyncio.TimeoutError:
            return None
        finally:
            self.waiting -= 1


async def _drawn(request: Request, draw: Any, *args: Any) -> Response:
    """``draw(*args)`` in a worker thread once a picture slot is free; 503 when none comes."""
    state = request.app.state
    slots = getattr(state, "picture_slots", None)
    if slots is None:
        slots = state.picture_slots = PictureSlots()
    sem = await slots.take()
    if sem is None:
        busy = (f"the station is drawing other pictures ({slots.slots} at a time, so parts are not slowed by "
                "them); try again in a moment")
        return JSONResponse({"error": {"code": "busy", "message": busy}, "detail": busy}, status_code=503,
                            headers={"Retry-After": "5", "X-Content-Type-Options": "nosniff"})
    try:
        return await run_in_threadpool(_and_trim, draw, *args)
    finally:
        sem.release()


def _and_trim(draw: Any, *args: Any) -> Response:
    # glibc keeps the freed blocks of each worker thread for reuse: after six overlays the
    # station stayed at ~2 GB, where a line PC's camera software may need it
    try:
        return draw(*args)
    finally:
        return_freed_memory()


def _photo(data: bytes, side: Any) -> Any:
    """The stored photo decoded for a picture whose long side is ``side(height, width)``
    pixels (None: whole): a JPEG at the reduction that still gives that many."""
    from ...line import render
    from ...line.errors import ImageTooLarge
    from ...vision.errors import ImageTooLarge as HeaderTooLarge
    from ...vision.imageio import load_photo
    try:
        return load_photo(data, sensor_bits="auto",       # shown, not judged
                          decode_scale=lambda h, w: render.jpeg_reduction(max(h, w), side(h, w)))
    except HeaderTooLarge as exc:
        # a progressive JPEG stored before the station refused them is decoded at its full
        # size for any picture (12000x12000: 950 MB each time): refused, not a 500
        raise ImageTooLarge(f"the stored image {exc.problem}, too large to draw; fetch it without max_side "
                            "to see it as it was sent") from exc


def _overlay_side(h: int, w: int, max_side: Optional[int]) -> Optional[int]:
    """The long side an overlay is drawn at: as asked, or the photo's own within OVERLAY_MAX_PIXELS."""
    if max_side or h * w <= OVERLAY_MAX_PIXELS:
        return max_side
    return max(16, int(max(h, w) * math.sqrt(OVERLAY_MAX_PIXELS / (h * w))))


def _kept_image(station: Station, inspection_id: int) -> Inspection:
    rec = station.get(inspection_id)
    if not rec.image_key:
        raise NotFound(f"the image of inspection {inspection_id} was not kept (retention samples OK parts, "
                       "and old parts' images make room when the disk is nearly full: /health's disk)")
    return rec


def _stored_image(station: Station, inspection_id: int) -> Response:
    rec = _kept_image(station, inspection_id)
    return Response(_file(station, rec.image_key, inspection_id), media_type=media_type_for(rec.image_key),
                    headers=_PICTURE)


def _photo_for_screen(station: Station, rec: Inspection, max_side: int) -> Response:
    from ...line import render
    photo = _photo(_file(station, rec.image_key, rec.id), lambda h, w: max_side)
    return Response(render.photo_jpeg(photo.pixels, max_side), media_type="image/jpeg", headers=_PICTURE)


@router.get("/{inspection_id}/image", summary="The stored part image (as sent: PNG, JPEG, BMP, TIFF, WebP or GIF; "
            "with max_side, a JPEG for a screen)",
            response_class=Response, responses={200: {"content": {m: {} for m in _IMAGE_TYPES}},
                                                **errors(401, 403, 404, 422, 503)})
async def get_image(request: Request, inspection_id: int = _ID, max_side: Optional[int] = _MAX_SIDE,
                    station: Station = Depends(get_station), _r: Any = Depends(reader),
                    _known: None = Depends(known_query_only)) -> Response:
    if max_side is None:        # the file as stored: nothing decoded, no turn to wait
        return await run_in_threadpool(_stored_image, station, inspection_id)
    rec = await run_in_threadpool(_kept_image, station, inspection_id)
    return await _drawn(request, _photo_for_screen, station, rec, max_side)


@router.get("/{inspection_id}/heatmap", summary="Colour heatmap of the anomaly map (PNG)", response_class=Response,
            responses={200: {"content": {"image/png": {}}}, **errors(401, 403, 404, 422)})
def get_heatmap(inspection_id: int = _ID, station: Station = Depends(get_station), _r: Any = Depends(reader)) -> Response:
    # no turn to wait: a stored map is at most 256 px a side (render.MAP_MAX_SIDE)
    from ...line.render import heatmap_png
    rec = station.get(inspection_id)
    if not rec.heatmap_key:
        raise NotFound(f"the anomaly map of inspection {inspection_id} was not kept")
    return Response(heatmap_png(_file(station, rec.heatmap_key, inspection_id)), media_type="image/png", headers=_PICTURE)


def _draw_overlay(station: Station, rec: Inspection, max_side: Optional[int]) -> Response:
    from ...line import render
    from ...vision.result import DefectRegion, InspectionResult, Verdict
    photo = _photo(_file(station, rec.image_key, rec.id), lambda h, w: _overlay_side(h, w, max_side))
    amap = None
    if rec.heatmap_key and rec.heatmap_scale:
        amap = render.decode_map(_file(station, rec.heatmap_key, rec.id), rec.heatmap_scale)
    result = InspectionResult(verdict=Verdict(rec.verdict), score=rec.score, threshold=rec.threshold,
                              pixel_threshold=rec.pixel_threshold, anomaly_map=amap,
                              regions=[DefectRegion.from_dict(r) for r in rec.regions or []],
                              model_id=rec.model_id, model_version=rec.model_version,
                              image_size=(rec.image_width, rec.image_height),
                              review_threshold=rec.review_threshold)
    # the regions are told in the frame the station judged (the record's size): a JPEG over
    # the pixel limit is judged reduced, and drawn as if told in the whole photo its boxes
    # landed at half their place
    told_in = (rec.image_height, rec.image_width) if rec.image_height and rec.image_width else photo.size_hw
    return Response(render.overlay_png(photo.pixels, amap, result, _overlay_side(*photo.size_hw, max_side),
                                       shown_hw=told_in),
                    media_type="image/png", headers=_PICTURE)


@router.get("/{inspection_id}/overlay", summary="The part with defect areas marked (PNG)", response_class=Response,
            description="Drawn at the photo's own size unless max_side asks smaller; a photo over "
                        f"{OVERLAY_MAX_PIXELS / 1e6:g} megapixels is drawn at that many pixels at most.",
            responses={200: {"content": {"image/png": {}}}, **errors(401, 403, 404, 422, 503)})
async def get_overlay(request: Request, inspection_id: int = _ID, max_side: Optional[int] = _MAX_SIDE,
                      station: Station = Depends(get_station), _r: Any = Depends(reader),
                      _known: None = Depends(known_query_only)) -> Response:
    rec = await run_in_threadpool(station.get, inspection_id)
    if rec.overlay_key and (max_side is None or not rec.image_key):
        return await run_in_threadpool(lambda: Response(_file(station, rec.overlay_key, inspection_id),
                                                        media_type="image/png", headers=_PICTURE))
    if not rec.image_key:
        raise NotFound(f"the image of inspection {inspection_id} was not kept, so there is no overlay")
    return await _drawn(request, _draw_overlay, station, rec, max_side)


@router.post("/{inspection_id}/review", summary="An operator's judgement of a part", response_model=InspectionOut,
             description="Appended to the part's review history; the part keeps the latest. Published to the "
                         "sinks as a review event. A defect_type must be in the product's list (422 names it). "
                         "found_by (an escape's: where it was found) only with label defect on an OK part, one of "
                         + ", ".join(FOUND_BY) + " (422 lists them). "
                         "With seen_review, a review that came meanwhile is a 409 naming it; the same person "
                         "sending the same review again is one review.",
             responses=errors(401, 403, 404, 409, 422))
def review_inspection(body: ReviewIn, inspection_id: int = _ID, station: Station = Depends(get_station),
                      caller: Caller = Depends(require("operator"))) -> dict[str, Any]:
    # who, as the change log names people: a key and a user of one name are told apart
    return with_links(station.review(inspection_id, body.label, caller.who, body.note, body.defect_type,
                                     seen_review=body.seen_review, found_by=body.found_by))


@router.get("/{inspection_id}/reviews", summary="Every review of a part, oldest first", response_model=ReviewList,
            responses=errors(401, 403, 404, 422))
def review_history(inspection_id: int = _ID, station: Station = Depends(get_station),
                   _r: Any = Depends(reader)) -> dict[str, Any]:
    return {"items": [{"id": r.id, "label": r.label, "defect_type": r.defect_type, "reviewer": r.reviewer,
                       "note": r.note, "created_at": _iso(r.created_at), "verdict_at_review": r.verdict_at_review,
                       "found_by": r.found_by}
                      for r in station.review_history(inspection_id)]}
