"""The API's part sent again is counted and logged where every source's is, in the station
(tests/line/test_part_history_sources.py has the hot folder's, a camera's and the PLC's): the
answer keeps its earlier_inspections, the log says it once (not once by the station and again
by the router), and a count the database refuses still answers the part."""
from __future__ import annotations

import logging

import pytest

from .conftest import png_bytes, post_part

OK_PHOTO, NG_PHOTO = 30, 220     # the fake model's score is the photo's brightness (NG above 0.5)


def _client(spc_station):
    from fastapi.testclient import TestClient
    from lineguard.server.app import create_app
    from .conftest import FakeInspector, make_keys
    st = spc_station()
    keys = make_keys(st.config.data_dir, st.config.db_url, st.config.db_schema)
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    return TestClient(create_app(station=st), headers={"X-API-Key": keys["operator"]})


@pytest.mark.one_database
def test_a_part_sent_again_to_the_api_is_logged_once_by_the_station(spc_station, caplog):
    caplog.set_level(logging.INFO, logger="lineguard")      # the station's and the server's
    with _client(spc_station) as c:
        first = post_part(c, png_bytes(NG_PHOTO, seed=8500), "api-rework-1").json()
        again = post_part(c, png_bytes(OK_PHOTO, seed=8501), "api-rework-1").json()
    assert (first["earlier_inspections"], again["earlier_inspections"]) == (0, 1)
    said = [r for r in caplog.records if "inspected again" in r.getMessage()]
    assert [r.name for r in said] == ["lineguard.station"], [(r.name, r.getMessage()) for r in said]
    assert "(source api)" in said[0].getMessage()
    assert f"inspection {again['id']}, after 1 earlier here" in said[0].getMessage()


def test_a_count_the_database_refuses_still_answers_the_part(spc_station, monkeypatch, caplog):
    from sqlalchemy.exc import OperationalError
    import lineguard.line.station as station_module
    caplog.set_level(logging.INFO, logger="lineguard")
    with _client(spc_station) as c:
        assert post_part(c, png_bytes(OK_PHOTO, seed=8600), "api-away-1").status_code == 201

        def away(db, rec):
            raise OperationalError("SELECT count(*) ...", {}, Exception("server closed the connection"))

        monkeypatch.setattr(station_module, "earlier_inspections", away)
        r = post_part(c, png_bytes(NG_PHOTO, seed=8601), "api-away-1")
        assert r.status_code == 201, r.text
        assert r.json()["earlier_inspections"] is None and r.json()["verdict"] == "NG"
    failed = [x for x in caplog.records if "could not be counted" in x.getMessage()]
    assert len(failed) == 1 and failed[0].levelno == logging.WARNING
    assert not [x for x in caplog.records if "inspected again" in x.getMessage()]
