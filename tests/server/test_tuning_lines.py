"""Threshold tuning of a line's models (walk C, two stations of two lines on one database): after
`serve --line L1` every version is L1's, and the Tuning page without a line said "no active model
for product 'cell' on line ''" (with the advice to activate a version, one being active on L1);
v3 chosen gave "no model version 3 for product 'cell'", and GET .../tuning?version=3 was 404. Left
without a line, the API now takes the only line that has the version, and asks for the line,
naming them, when several have one."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from .conftest import FakeInspector, png_bytes


@pytest.fixture
def two_lines(tmp_path):
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Part, Station
    st = Station(StationConfig(data_dir=tmp_path / "data", open_reads=True), loader=FakeInspector.load)
    # as `serve --line L1` makes them: three versions of L1's model, v3 active
    for n, t in ((1, 0.5), (2, 0.55), (3, 0.6)):
        st.add_model(FakeInspector(t, f"l1-{n}").to_bytes(), "cell", "L1", activate=(n == 3))
    for value in (40, 90, 140, 200):
        rec = st.inspect(png_bytes(value, seed=value), Part(f"k{value}", "L1", "S1", "cell")).record
        st.review(rec.id, "good" if value < 150 else "defect", "tester", None)
    from lineguard.server.app import create_app
    with TestClient(create_app(station=st)) as c:
        yield st, c
    st.close()


def test_a_lines_version_is_found_without_the_line_when_only_that_line_has_it(two_lines):
    st, c = two_lines
    r = c.get("/api/v1/models/cell/tuning", params={"version": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["line"], body["version"], body["parts_line"]) == ("L1", 3, "L1")
    assert body["threshold"] == 0.6 and len(body["good_scores"]) == 3 and len(body["defect_scores"]) == 1
    # the same as with the line given
    with_line = c.get("/api/v1/models/cell/tuning", params={"version": 3, "line": "L1"}).json()
    assert with_line["good_scores"] == body["good_scores"] and with_line["version"] == 3
    # an older version of L1 too (the page's "v2 · L1")
    assert c.get("/api/v1/models/cell/tuning", params={"version": 2}).json()["threshold"] == 0.55


def test_the_active_version_of_the_only_line_with_one_is_tuned_without_the_line(two_lines):
    st, c = two_lines
    r = c.get("/api/v1/models/cell/tuning")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["line"], body["version"], body["active_version"]) == ("L1", 3, 3)
    assert body["not_active"] is None


def test_several_lines_with_the_version_are_named_to_choose_from(two_lines):
    st, c = two_lines
    # line 2's station: its own model, its own v1..v3, v2 active
    for n in (1, 2, 3):
        st.add_model(FakeInspector(0.4, f"l2-{n}").to_bytes(), "cell", "L2", activate=(n == 2))
    for params, shown in (({"version": 3}, "version 3"), ({}, "active version")):
        r = c.get("/api/v1/models/cell/tuning", params=params)
        assert r.status_code == 422, r.text
        said = r.json()["error"]["message"]
        assert shown in said and "L1 (v3)" in said and "L2 (v" in said and "line=" in said, said
        assert "activate" not in said, said      # a version is active: never told to activate one
    # with the line, each line's own
    assert c.get("/api/v1/models/cell/tuning", params={"line": "L2"}).json()["version"] == 2
    assert c.get("/api/v1/models/cell/tuning", params={"line": "L1", "version": 3}).json()["threshold"] == 0.6

    # a version no line has is still not found, nor is a product no model was ever uploaded for
    r = c.get("/api/v1/models/cell/tuning", params={"version": 9})
    assert r.status_code == 404 and "no model version 9" in r.json()["error"]["message"]
    assert c.get("/api/v1/models/bolt/tuning").status_code == 404
