"""One defect type spelt two ways by two products (product A's list says "Crack", product B's
"crack"): the parts list and export without a product filter find the parts of both. The
filter took the first stored spelling it met and missed the other product's cracked parts."""
from __future__ import annotations

import datetime as dt

from lineguard.line.orm import Inspection

from .test_spc_api import client

T0 = dt.datetime(2026, 11, 30, 8, 0)


def _parts(st) -> None:
    st.set_defect_types("housing", ["Crack", "scratch"])
    st.set_defect_types("cover", ["crack", "dent"])
    with st.db.session() as s:
        for i, (product, kind) in enumerate([("housing", "Crack"), ("cover", "crack"), ("cover", "dent"),
                                             ("housing", None)]):
            s.add(Inspection(part_id=f"P{i}", line="L1", station="S1", product=product, source="api", verdict="NG",
                             score=0.9, threshold=0.5, pixel_threshold=0.5, model_id="m", model_version="v1",
                             regions=[], timings_ms={}, image_sha256=f"{i:064x}", image_width=64, image_height=48,
                             created_at=T0 + dt.timedelta(minutes=i), reviewed=kind is not None,
                             review_label="defect" if kind else None, defect_type=kind))


def test_a_defect_type_spelt_two_ways_by_two_products_finds_the_parts_of_both(spc_station):
    st = spc_station()
    _parts(st)
    with client(st) as c:
        for typed in ("crack", "Crack", "CRACK"):
            r = c.get("/api/v1/inspections", params={"defect_type": typed, "count": "true"})
            assert r.status_code == 200, r.text
            found = sorted(i["part_id"] for i in r.json()["items"])
            assert found == ["P0", "P1"] and r.json()["total"] == 2, (
                f"defect type {typed!r} with no product filter found {found}: the cracked parts of the product that "
                "spells it the other way are missing from the list")
            r = c.get("/api/v1/inspections/export", params={"defect_type": typed})
            assert r.status_code == 200, (typed, r.text)
            assert "P0" in r.text and "P1" in r.text and "P2" not in r.text, (typed, r.text)
        # with a product, that product's parts only
        r = c.get("/api/v1/inspections", params={"defect_type": "Crack", "product": "cover"})
        assert r.status_code == 200, r.text
        assert [i["part_id"] for i in r.json()["items"]] == ["P1"], r.json()
        # a type no part and no list holds is still refused
        r = c.get("/api/v1/inspections/export", params={"defect_type": "crak"})
        assert r.status_code == 404, r.text
