"""Reference photos of good parts per product: what a retrain learns beside the stored parts
(line.reference). Upload (one photo a request, as a part's), list, view, remove."""
from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ...line.errors import InvalidRequest
from ...line.imagestore import media_type_for
from ...line.reference import check_names, of_station, remove_command, size_warning
from ...line.station import Station
from ..deps import DB_INT_MAX, Caller, get_station, known_query_only, reader, require
from ..schemas import NO_NUL, errors, refuse_odd_form_fields
from .inspections import _MAX_SIDE, _PICTURE, _drawn, _photo

# no prefix of its own: routers.models includes it under its /api/v1
router = APIRouter()      # its routes take the models router's tag (included there)


class ReferencePhotoOut(BaseModel):
    id: int
    product: str
    line: str = Field(description="\"\": every line's retrain of the product learns it; else that line's")
    image_key: str
    sha256: str
    filename: Optional[str]
    width: int
    height: int
    added_at: Optional[str]
    added_by: Optional[str]
    links: dict[str, str]


class ReferencePhotoAdded(ReferencePhotoOut):
    created: bool = Field(description="false: the very same photo was there already for this product and line "
                                      "(it is learnt once)")
    count: int = Field(description="the reference photos of this product and line now")
    warning: Optional[str] = Field(None, description="a product the station has no model or reference photo of: "
                                                     "the products it knows; a photo of a size none a retrain of "
                                                     "the product (line) learns is of: another camera's, and how "
                                                     "to remove the old camera's photos")


class ReferencePhotoSize(BaseModel):
    width: int
    height: int
    count: int = Field(description="how many of the photos asked are of this size")


class ReferencePhotoList(BaseModel):
    items: list[ReferencePhotoOut]
    count: int = Field(description="the reference photos of the product and line asked (all of them, whatever "
                                   "the limit)")
    for_training: Optional[int] = Field(default=None, description="with a product: how many a retrain of it (of "
                                                                  "that line) learns: the photos of every line and "
                                                                  "the line's own")
    sizes: Optional[list[ReferencePhotoSize]] = Field(
        default=None, description="with a product: how many of the photos asked (all of them, whatever the limit) "
                                  "are of each size, the most first: the old camera's photos after a camera of "
                                  "another resolution replaced it (lineguard reference remove --size WxH)")


@router.post("/reference-photos", status_code=201, response_model=ReferencePhotoAdded,
             summary="Give the station a photo of a good part for a product's retrains",
             description="The photos a product's first model was trained on (lineguard train photos/good) are "
                         "not on the station; given here, every retrain of the product (POST "
                         "/api/v1/models/{product}/train, \"reference\": true by default) learns them beside the "
                         "stored parts reviewed good. One photo a request, checked as a part's upload is (the "
                         "station's size and pixel limits, a format it keeps, decodable). The same photo again "
                         "answers 200 with the entry there. `lineguard reference add` gives a whole folder.",
             responses={200: {"model": ReferencePhotoAdded, "description": "the same photo was there already"},
                        **errors(400, 401, 403, 409, 413, 415, 422)})
async def add_reference_photo(
    request: Request,
    photo: UploadFile = File(..., description="a photo of a good part (PNG, JPEG, BMP, TIFF, WebP, GIF)"),
    product: str = Form(..., min_length=1, max_length=100, pattern=r"^[^\x00]*[^\x00\s][^\x00]*$",
                        examples=["cell"], description="the product, as its parts are sent"),
    line: str = Form("", max_length=100, pattern=NO_NUL, examples=[""],
                     description="only this line's retrains learn it; empty: every line's"),
    new_product: bool = Form(False, description="the product is new, though its name is a slip of a known one "
                                                "(without it such a name is refused, 409, as a typo)"),
    station: Station = Depends(get_station), caller: Caller = Depends(require("engineer")),
) -> JSONResponse:
    photos = (await refuse_odd_form_fields(request)).getlist("photo")
    if len(photos) > 1:
        raise InvalidRequest(f"the form holds {len(photos)} files named photo; send one photo a request "
                             "(lineguard reference add takes a whole folder)")

    def work() -> dict[str, Any]:
        from .inspections import _read_upload
        data = _read_upload(photo, station.config.max_upload_bytes)
        ref = of_station(station)
        warning = ref.product_check(product, new_product)
        name, ln = check_names(product, line)
        # the sizes a retrain of that line learns before this photo, as `lineguard reference add`
        # compares them: a photo of another camera's size was kept here without a word
        kept = ref.training_sizes(name, ln)
        entry, created = ref.add(product, data, filename=photo.filename, line=line, by=caller.who)
        size = (entry["width"], entry["height"])
        odd = size_warning({size: 1}, kept, {size: [entry["filename"] or "the photo"]},
                           lambda sizes: remove_command(ref, name, ln, sizes)
                           + " on the station PC, with its --data (docs/camera-change.md)", ln) if created else None
        return {**entry, "created": created, "count": ref.count(entry["product"], entry["line"]),
                "warning": "; ".join(w for w in (warning, odd) if w) or None}

    out = await run_in_threadpool(work)
    return JSONResponse(ReferencePhotoAdded.model_validate(out).model_dump(mode="json"),
                        status_code=201 if out["created"] else 200)


@router.get("/reference-photos", response_model=ReferencePhotoList, responses=errors(401, 403, 422),
            summary="The reference photos of good parts a retrain learns, oldest first")
def list_reference_photos(product: Optional[str] = Query(None, max_length=100),
                          line: Optional[str] = Query(None, max_length=100,
                                                      description="only this line's (\"\": those of every line)"),
                          limit: int = Query(1000, ge=1, le=10000), offset: int = Query(0, ge=0, le=DB_INT_MAX),
                          station: Station = Depends(get_station), _r: Any = Depends(reader),
                          _known: None = Depends(known_query_only)) -> dict[str, Any]:
    ref = of_station(station)
    out: dict[str, Any] = {"items": ref.list(product, line, limit, offset), "count": ref.count(product, line)}
    if product is not None:
        out["for_training"] = len(ref.for_training(product, line or ""))
        # the page's list shows a page of photos; which cameras' photos are kept is said of all
        out["sizes"] = [{"width": w, "height": h, "count": n}
                        for (w, h), n in sorted(ref.sizes(product, line).items(), key=lambda x: (-x[1], x[0]))]
    return out


def _photo_file(station: Station, photo_id: int) -> tuple[str, bytes]:
    from ...line.errors import NotFound
    ref = of_station(station)
    entry = ref.get(photo_id)
    try:
        return entry["image_key"], ref.store.get(entry["image_key"])
    except FileNotFoundError:
        raise NotFound(f"reference photo {photo_id}'s file is missing from the data folder (reference/): remove it "
                       "and add the photo again") from None


def _stored_photo(station: Station, photo_id: int) -> Response:
    key, data = _photo_file(station, photo_id)
    return Response(data, media_type=media_type_for(key), headers=_PICTURE)


def _photo_for_screen(station: Station, photo_id: int, max_side: int) -> Response:
    from ...line import render
    _key, data = _photo_file(station, photo_id)
    photo = _photo(data, lambda h, w: max_side)
    return Response(render.photo_jpeg(photo.pixels, max_side), media_type="image/jpeg", headers=_PICTURE)


# Served as a part's picture is (routers.inspections): the file as given, or with max_side a
# JPEG for a screen, drawn in the station's picture slots. The Models page lists a product's
# photos as thumbnails: ?max_side was ignored and each photo sent whole (a 12 megapixel
# camera's: megabytes a thumbnail, a page of them decoded at once by a line PC's browser).
@router.get("/reference-photos/{photo_id}/image", summary="A reference photo (as given; with max_side, a JPEG for "
            "a screen)", response_class=Response,
            responses={**errors(401, 403, 404, 422, 503),
                       200: {"content": {m: {} for m in ("image/png", "image/jpeg", "image/bmp", "image/tiff",
                                                         "image/webp", "image/gif")}}})
async def reference_photo_image(request: Request, photo_id: int = Path(ge=1, le=DB_INT_MAX),
                                max_side: Optional[int] = _MAX_SIDE, station: Station = Depends(get_station),
                                _r: Any = Depends(reader), _known: None = Depends(known_query_only)) -> Response:
    if max_side is None:        # the file as given: nothing decoded, no turn to wait
        return await run_in_threadpool(_stored_photo, station, photo_id)
    await run_in_threadpool(lambda: of_station(station).get(photo_id))      # 404 before a picture slot is taken
    return await _drawn(request, _photo_for_screen, station, photo_id, max_side)


@router.delete("/reference-photos/{photo_id}", status_code=204, response_class=Response,
               summary="Remove a reference photo: retrains no longer learn it", responses=errors(401, 403, 404, 422))
def remove_reference_photo(photo_id: int = Path(ge=1, le=DB_INT_MAX), station: Station = Depends(get_station),
                           caller: Caller = Depends(require("engineer"))) -> Response:
    of_station(station).remove(photo_id, by=caller.who)
    return Response(status_code=204)
