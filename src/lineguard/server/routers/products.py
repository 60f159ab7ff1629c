"""Per-product settings: the defect types reviewers choose from."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from ...line.station import Station
from ..deps import Caller, get_station, reader, require
from ..schemas import NO_NUL, DefectTypesIn, DefectTypesOut, errors

router = APIRouter(prefix="/api/v1/products", tags=["products"])

_PRODUCT = PathParam(min_length=1, max_length=100, pattern=NO_NUL, description="the product name parts are sent with")


@router.get("/{product}/defect-types", summary="The defect types reviewers of a product choose from",
            response_model=DefectTypesOut, responses=errors(401, 403, 404, 422))
def get_defect_types(product: str = _PRODUCT, station: Station = Depends(get_station),
                     _r: Any = Depends(reader)) -> dict[str, Any]:
    return {"product": product, "defect_types": station.defect_types(product)}


@router.put("/{product}/defect-types", summary="Set a product's defect types",
            description="The whole list is replaced. Reviews already recorded keep their type, even one no longer "
                        "listed. With `expected` (the list as last read) a list changed meanwhile is not replaced: "
                        "409 `defect_types_changed`, the stored list in `defect_types`, nothing written; read it, "
                        "merge, and send again with it as `expected`.",
            response_model=DefectTypesOut, responses=errors(401, 403, 404, 409, 422))
def put_defect_types(body: DefectTypesIn, product: str = _PRODUCT, station: Station = Depends(get_station),
                     caller: Caller = Depends(require("engineer"))) -> dict[str, Any]:
    if not station.has_product_settings(product):
        # a slip of a known product ("Cell" for "cell") kept a list no review of it ever used,
        # and the product's own reviewers went on choosing from the old one: refused as an upload is
        station.models.new_product_check(product, body.new_product, how='send "new_product": true with the list')
    return {"product": product, "defect_types": station.set_defect_types(product, body.defect_types, by=caller.who,
                                                                         expected=body.expected)}

