"""Test parts and each line's verification this shift (see lineguard.line.test_parts)."""
from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam

from ...line import part_names
from ...line.errors import NotFound, StationError
from ...line.orm import TestPart, iso_utc, utcnow
from ...line.station import Station
from ...line.test_parts import verification
from ..deps import Caller, get_station, known_query_only, reader, require
from ..schemas import TestPartIn, errors
from .spc import _TEXT, AT_HELP, TIME_TEXT, shift_time

router = APIRouter(prefix="/api/v1", tags=["test parts"])

# _TEXT: PostgreSQL text holds no NUL, so one is refused here (422), not a 500 there
_PRODUCT = PathParam(min_length=1, max_length=100, pattern=_TEXT,
                     description="the product name parts are sent with")


def _known_product(station: Station, product: str) -> str:
    """Test parts of a product this station inspects: a misspelt product would never match a part."""
    known = station.models.products()
    if product not in known:
        # the close ones named, as an inspection of a misspelt product is answered
        from ...line.close_names import close_names, did_you_mean, listed
        close = close_names(product, known)
        raise NotFound(f"this station has no model for product {product!r}"
                       + (f"; {did_you_mean(close)}" if close else ".")
                       + (f" It knows: {listed(known)}." if known else "")
                       + " Register test parts for a product it inspects (upload its model first).",
                       did_you_mean=close, known=known[:50])
    return product


def _row(tp: TestPart) -> dict[str, Any]:
    return {"product": tp.product, "name": tp.name, "expect": tp.expect, "description": tp.description,
            "created_at": iso_utc(tp.created_at), "created_by": tp.created_by,
            "retired_at": iso_utc(tp.retired_at), "retired_by": tp.retired_by}


@router.get("/products/{product}/test-parts", summary="A product's test parts (known verdicts, checked each shift)",
            responses=errors(401, 403, 404, 422))
def list_test_parts(product: str = _PRODUCT,
                    retired: bool = Query(False, description="also those no longer in use"),
                    station: Station = Depends(get_station), _r: Any = Depends(reader),
                    _known: None = Depends(known_query_only)) -> dict[str, Any]:
    return {"product": product, "items": [_row(tp) for tp in station.test_parts.list(product, retired)]}


@router.post("/products/{product}/test-parts", summary="Register a test part, or change one",
             description="A part sent with this name as its serial (or else its part id) is checked against "
                         "`expect`; its verdict still goes to the PLC. A retired name comes back in use. "
                         "Changing `expect` of one in use sends this shift's verification back to due (its "
                         "checks were against the old verdict); a `description` left out is kept. "
                         "REVIEW (a limit sample) needs a review band in an active model of the product (409).",
             responses=errors(401, 403, 404, 409, 422))
def put_test_part(body: TestPartIn, product: str = _PRODUCT, station: Station = Depends(get_station),
                  caller: Caller = Depends(require("engineer"))) -> dict[str, Any]:
    product = _known_product(station, product)
    if body.expect == "REVIEW":
        _refuse_review_without_band(station, product)
    # a description not sent is kept (changing what a test part must be does not wipe what
    # it is); sent as null it is cleared
    return _row(station.test_parts.add(product, body.name, body.expect, body.description, by=caller.who,
                                       keep_description="description" not in body.model_fields_set))


def _refuse_review_without_band(station: Station, product: str) -> None:
    """A limit sample (expect REVIEW) needs a review band in a model the product is judged
    by: without one every part is OK or NG, so the test part failed every shift, raised a
    test-part alarm and put every NG part since in doubt."""
    from ...line.errors import Conflict
    active = [mv for mv in station.models.list(product) if mv.active]
    if any(mv.review_threshold is not None for mv in active):
        return
    raise Conflict(f"no active model of {product!r} has a review band (every part is judged OK or NG), so a test "
                   "part that must be REVIEW would fail every shift: give the model a review band first (the Tuning "
                   "page's review threshold, or train with --review-rate), or register the limit sample as the "
                   "verdict it must get now (OK or NG)")


@router.delete("/products/{product}/test-parts", summary="Retire a test part (lost, worn, replaced)",
               description="Its past checks keep its name; register it again to bring it back.",
               responses=errors(401, 403, 404, 422))
def retire_test_part(product: str = _PRODUCT,
                     name: str = Query(min_length=1, max_length=200, pattern=_TEXT,
                                       description="the test part's name"),
                     station: Station = Depends(get_station),
                     caller: Caller = Depends(require("engineer"))) -> dict[str, Any]:
    return _row(station.test_parts.retire(product, name, by=caller.who))


@router.get("/verification", summary="Each line's test-part verification in a shift",
            description="Per line and product with test parts: `passed` (every test part's latest check got its "
                        "verdict), `failed` (one did not: `failures` say which, and the window of the line's "
                        "parts in doubt), `incomplete` or `due`; with the line's parts made before it passed. "
                        "A check counts only while the station judges as it did then: a model version made "
                        "active since, or photos of another size (another camera), leave it listed with "
                        "`before_change` and `reason` says what changed and when.",
            responses=errors(401, 403, 422))
def get_verification(line: Optional[str] = Query(None, max_length=100, pattern=_TEXT,
                                                 description="a line; empty or left out: every line"),
                     at: Optional[str] = Query(None, max_length=TIME_TEXT, description=AT_HELP + " (default: now)"),
                     station: Station = Depends(get_station), _r: Any = Depends(reader),
                     _known: None = Depends(known_query_only)) -> dict[str, Any]:
    now = utcnow()
    # a day alone read as the shift report reads it: the verification of that day's first shift
    t = shift_time(station, at)
    try:
        shift = station.config.shift_at(t if t is not None else now)
    except ValueError as exc:    # shift settings: checked at start-up, but say so if not
        raise StationError(str(exc)) from exc
    return {"shift": {"label": shift.label, "start": iso_utc(shift.start_utc), "end": iso_utc(shift.end_utc)},
            "lines": verification(station.db, shift, now,
                                  part_names.resolve_filters(station.db, {"line": line or None})["line"])}
