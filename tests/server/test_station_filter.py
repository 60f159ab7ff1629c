"""The station filter of the SPC charts and the period report, read as the line and the
product are: a station no part was inspected at is refused naming the stations the
station knows (it answered 0 parts, read as a station that made nothing), and one typed
in another case ("s1") is the stored one, said and issued as such."""
from __future__ import annotations

import datetime as dt
import uuid

from lineguard.line.auth import create_key
from lineguard.line.orm import Inspection

from .test_spc_api import client

DAY = {"since": "2026-12-07", "until": "2026-12-07"}


def _parts(st):
    """Parts of line L1 at station S1 and of line L2 at station S2, on 7 December (Berlin)."""
    t = dt.datetime(2026, 12, 7, 9)
    rows = [Inspection(part_id=f"p{uuid.uuid4().hex[:10]}", line=line, station=station, product="cell",
                       verdict="NG" if i % 10 == 0 else "OK", score=0.3, threshold=0.5, pixel_threshold=0.5,
                       model_id="m1", model_version="v", image_sha256=uuid.uuid4().hex, image_width=8,
                       image_height=8, created_at=t + dt.timedelta(minutes=i))
            for line, station, n in (("L1", "S1", 30), ("L2", "S2", 20)) for i in range(n)]
    with st.db.session() as s:
        s.add_all(rows)


def _engineer(st) -> dict[str, str]:
    with st.db.session() as s:
        return {"X-API-Key": create_key(s, "engineer", name="fix15-engineer")[1]}


def test_a_station_no_part_was_inspected_at_is_refused_naming_the_stations(spc_station):
    st = spc_station(timezone="Europe/Berlin")
    _parts(st)
    with client(st) as c:
        for path in ("/api/v1/reports/period", "/api/v1/spc/p-chart", "/api/v1/spc/review-rates",
                     "/api/v1/inspections/export"):
            r = c.get(path, params={**DAY, "station": "S9"})
            # not 200 "no part was judged in this window": a typo read as a station that stood still
            assert r.status_code == 404, (path, r.text)
            said = r.json()["error"]
            assert "'S9'" in said["message"] and "S1, S2" in said["message"], (path, said)
            assert said["known"] == ["S1", "S2"]
        # on a line, its own stations are the ones known; a station of another line is said to be there
        r = c.get("/api/v1/spc/p-chart", params={**DAY, "line": "L1", "station": "S2"})
        assert r.status_code == 404 and "line L2" in r.json()["error"]["message"], r.text


def test_a_station_typed_in_another_case_is_the_stored_one(spc_station):
    st = spc_station(timezone="Europe/Berlin")
    _parts(st)
    with client(st) as c:
        r = c.get("/api/v1/reports/period", params={**DAY, "station": "s1"})
        assert r.status_code == 200, r.text
        body = r.json()
        # S1's parts, and said as S1 (it echoed "s1", a station no part carries)
        assert body["window"]["station"] == "S1" and body["total"]["parts"] == 30, body["window"]
        chart = c.get("/api/v1/spc/p-chart", params={**DAY, "station": " s2 ", "by": "day"})
        assert chart.status_code == 200 and chart.json()["parts"] == 20, chart.text


def test_a_report_issued_for_s1_is_the_next_revision_of_the_one_issued_for_S1(spc_station):
    st = spc_station(timezone="Europe/Berlin")
    _parts(st)
    engineer = _engineer(st)
    with client(st) as c:
        first = c.post("/api/v1/reports/period/issue", params={**DAY, "station": "S1"}, headers=engineer,
                       json={"note": "sent to ACME"})
        assert first.status_code == 201, first.text
        again = c.post("/api/v1/reports/period/issue", params={**DAY, "station": "s1"}, headers=engineer,
                       json={"note": "corrected"})
        assert again.status_code == 201, again.text
        one, two = first.json()["issued"], again.json()["issued"]
        # the same parts: a second revision replacing the first, not two revision-1 reports side by side
        assert two["station"] == "S1" and two["revision"] == 2 and two["replaces"] == one["id"], two
        back = c.get(f"/api/v1/reports/issued/{one['id']}").json()["issued"]
        assert back["replaced_by"] == two["id"], back


def test_the_chain_of_revisions_reads_an_older_report_issued_for_s1_as_S1s(spc_station):
    # a report issued before the station was matched to its stored name kept "s1": it counted
    # S1's parts, so it is a revision of S1's report, not a report of its own
    from lineguard.line import issued_reports
    from lineguard.line.orm import IssuedReport
    st = spc_station(timezone="Europe/Berlin")
    _parts(st)
    engineer = _engineer(st)
    with client(st) as c:
        first = c.post("/api/v1/reports/period/issue", params={**DAY, "station": "S1"}, headers=engineer,
                       json={}).json()["issued"]
    with st.db.session() as s:
        s.get(IssuedReport, first["id"]).station = "s1"
    with client(st) as c:
        second = c.post("/api/v1/reports/period/issue", params={**DAY, "station": "S1"}, headers=engineer,
                        json={}).json()["issued"]
    assert (second["revision"], second["replaces"]) == (2, first["id"])
    assert [h["id"] for h in issued_reports.issued_list(st.db)][:2] == [second["id"], first["id"]]
