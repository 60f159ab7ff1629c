"""A part's serial as a filter of the parts list, its count and its export: a PLC gives each
part a PartTag (stored as the serial) while the part id carries the trigger number
(plc-tag777-<n>), so a PartTag triggered again for rework is found only by its serial.
And a query parameter the list does not take is refused, naming it: ?serial= was ignored,
and the list answered every part as if they all matched. On SQLite and PostgreSQL."""
from __future__ import annotations

import csv
import datetime as dt
import io
import uuid

import pytest

from .test_part_export import _sheet_rows
from .test_spc_api import client


def _parts(st, *serials):
    from lineguard.line.orm import Inspection
    t = dt.datetime(2026, 11, 30, 8, 0)
    with st.db.session() as s:
        for i, serial in enumerate(serials):
            tag = serial or "none"
            s.add(Inspection(part_id=f"plc-tag{tag}-{i + 1}", line="L1", station="S1", product="cell", serial=serial,
                             verdict="NG" if i % 2 else "OK", score=0.7, threshold=0.5, pixel_threshold=0.5,
                             model_id="m1", model_version="v", image_sha256=uuid.uuid4().hex, image_width=8,
                             image_height=8, created_at=t + dt.timedelta(minutes=i)))


def test_a_serial_finds_every_trigger_of_its_part_in_the_list_count_and_export(spc_station):
    st = spc_station()
    # PartTag 777 triggered three times (first look, rework, after rework); others around it
    _parts(st, "777", "778", None, "777", "7770", "77", "777")
    with client(st) as c:
        r = c.get("/api/v1/inspections", params={"serial": "777", "count": "true"})
        assert r.status_code == 200, r.text
        page = r.json()
        assert [it["part_id"] for it in page["items"]] == ["plc-tag777-7", "plc-tag777-4", "plc-tag777-1"]
        assert {it["serial"] for it in page["items"]} == {"777"}
        assert page["total"] == 3 and page["total_capped"] is False
        # with the other filters, and through the cursor
        assert [it["part_id"] for it in c.get("/api/v1/inspections", params={"serial": "777", "verdict": "NG"})
                .json()["items"]] == ["plc-tag777-4"]
        first = c.get("/api/v1/inspections", params={"serial": "777", "limit": 2}).json()
        rest = c.get("/api/v1/inspections", params={"serial": "777", "limit": 2,
                                                    "cursor": first["next_cursor"]}).json()
        assert [it["part_id"] for it in first["items"] + rest["items"]] == [
            "plc-tag777-7", "plc-tag777-4", "plc-tag777-1"]
        # a serial read with a scanner's trailing CR finds the part stored without it
        assert len(c.get("/api/v1/inspections", params={"serial": "777\r"}).json()["items"]) == 3
        # a serial nobody was sent with: no part, not every part
        none = c.get("/api/v1/inspections", params={"serial": "999", "count": "true"}).json()
        assert none["items"] == [] and none["total"] == 0
        # an empty one is no filter, as a form left blank means
        assert len(c.get("/api/v1/inspections", params={"serial": ""}).json()["items"]) == 7
        exported = c.get("/api/v1/inspections/export", params={"serial": "777"})
        assert exported.status_code == 200, exported.text
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert [row["part_id"] for row in rows] == ["plc-tag777-7", "plc-tag777-4", "plc-tag777-1"]
        book = c.get("/api/v1/inspections/export", params={"serial": "777", "format": "xlsx"})
        assert book.status_code == 200, book.text
        sheet = _sheet_rows(book.content)
        assert len(sheet) == 1 + 3 and all(("inlineStr", "777") in row for row in sheet[1:]), sheet


@pytest.mark.one_database
def test_the_api_description_lists_serial_among_the_filters(spc_station):
    st = spc_station()
    with client(st) as c:
        spec = c.get("/openapi.json").json()
    for path in ("/api/v1/inspections", "/api/v1/inspections/export"):
        params = {p["name"]: p for p in spec["paths"][path]["get"]["parameters"]}
        assert "PartTag" in params["serial"].get("description", ""), path
    assert "unknown query parameter" in spec["paths"]["/api/v1/inspections"]["get"]["description"].lower()


@pytest.mark.one_database
def test_a_query_parameter_the_list_does_not_take_is_refused_naming_it(spc_station):
    st = spc_station()
    _parts(st, "777", "778")
    with client(st) as c:
        for params, unknown in (({"seriall": "777"}, "seriall"), ({"part": "plc-tag777-1"}, "part"),
                                ({"line": "L1", "Serial": "777", "verdcit": "NG"}, "Serial, verdcit")):
            r = c.get("/api/v1/inspections", params=params)
            assert r.status_code == 422, (params, r.text)
            message = r.json()["error"]["message"]
            assert unknown in message, message
            # the known ones are named: what to write instead
            for known in ("serial", "part_id", "line", "verdict", "limit", "cursor", "count"):
                assert known in message.split("takes", 1)[1], message
        # the gallery's, the review queue's and the line page's own requests are all taken
        # (every field they can send, filled: LG.q leaves an empty one out)
        gallery = {"line": "L1", "station": "S1", "product": "cell", "lot": "A1", "since": "2026-11-30T00:00:00Z",
                   "until": "2026-12-01T00:00:00Z", "verdict": "NG", "defect_type": "crack", "reviewed": "false",
                   "test_parts": "false", "photo_doubted": "false", "limit": 48, "cursor": "99", "count": "true"}
        review = {"verdict": "NG", "reviewed": "false", "line": "L1", "limit": 200, "test_parts": "false",
                  "audit_sample": "true", "cursor": "99"}
        for params in (gallery, review, {"limit": 12}):
            assert c.get("/api/v1/inspections", params=params).status_code == 200, params
        # a time it cannot use is still said first (as on the SPC endpoints)
        r = c.get("/api/v1/inspections", params={"by": "day", "since": "2026-02-30"})
        assert r.status_code == 422 and "is neither" in r.json()["error"]["message"], r.text
