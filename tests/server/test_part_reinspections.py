"""A part id sent again with a new photo: a re-inspection after rework (legitimate) or a PLC or
scanner repeating an id (a fault). It is a record of its own, as before, but no longer silently:
the sender is told how many earlier inspections the part has at the station, the station logs
it, and each of the part's records lists the others and which one is the latest."""
from __future__ import annotations

import logging

from .conftest import png_bytes, post_part

OK_PHOTO, NG_PHOTO = 30, 220     # the fake model's score is the photo's brightness (NG above 0.5)


def _post(srv, part_id: str, value: int, seed: int, **kw):
    with srv.client(srv.keys["operator"]) as c:
        r = post_part(c, png_bytes(value, seed=seed), part_id, **kw)
    assert r.status_code in (200, 201), r.text
    return r.json()


def _get(srv, inspection_id: int) -> dict:
    with srv.client(srv.keys["operator"]) as c:
        r = c.get(f"/api/v1/inspections/{inspection_id}")
    assert r.status_code == 200, r.text
    return r.json()


def test_a_reworked_part_sent_again_is_counted_logged_and_listed_on_each_of_its_records(spc_station, caplog):
    # in the station's process, on SQLite and PostgreSQL: its log is read here
    from fastapi.testclient import TestClient
    from lineguard.server.app import create_app
    from .conftest import FakeInspector, make_keys
    st = spc_station()
    keys = make_keys(st.config.data_dir, st.config.db_url, st.config.db_schema)
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    caplog.set_level(logging.INFO, logger="lineguard.station")   # the station logs a re-sent part for every source
    with TestClient(create_app(station=st), headers={"X-API-Key": keys["operator"]}) as c:
        def send(value: int, seed: int) -> dict:
            r = post_part(c, png_bytes(value, seed=seed), "rework-1")
            assert r.status_code in (200, 201), r.text
            return r.json()

        first = send(NG_PHOTO, 7100)
        assert first["created"] is True and first["earlier_inspections"] == 0
        again = send(OK_PHOTO, 7101)          # after rework, a new photo
        assert again["created"] is True and again["id"] != first["id"]
        assert again["earlier_inspections"] == 1
        # the verdict is the new photo's own: nothing merged, nothing refused
        assert (first["verdict"], again["verdict"]) == ("NG", "OK")
        # the first photo sent again is the first record, as before; nothing before it
        retry = send(NG_PHOTO, 7100)
        assert retry["created"] is False and retry["id"] == first["id"] and retry["earlier_inspections"] == 0

        said = [r for r in caplog.records if "inspected again" in r.getMessage()]
        assert len(said) == 1, [r.getMessage() for r in said]    # the retry of a recorded photo is not said again
        assert said[0].levelno == logging.INFO and "'rework-1'" in said[0].getMessage()
        assert f"inspection {again['id']}, after 1 earlier" in said[0].getMessage()

        assert c.post(f"/api/v1/inspections/{again['id']}/review", json={"label": "good"}).status_code == 200
        old = c.get(f"/api/v1/inspections/{first['id']}").json()["part_history"]
        assert old["total"] == 2 and old["total_capped"] is False
        assert old["latest_id"] == again["id"]          # the operator on the old NG is told a newer verdict stands
        assert old["others"] == [{"id": again["id"], "station": "S1", "created_at": again["created_at"],
                                  "verdict": "OK", "review_label": "good",
                                  "link": f"/api/v1/inspections/{again['id']}"}]
        new = c.get(f"/api/v1/inspections/{again['id']}").json()["part_history"]
        assert new["total"] == 2 and new["latest_id"] == again["id"]
        assert [(o["id"], o["verdict"], o["review_label"]) for o in new["others"]] == [(first["id"], "NG", None)]


def test_a_part_seen_once_says_so(fake_server):
    once = _post(fake_server, "one-off-1", OK_PHOTO, seed=7200)
    assert once["earlier_inspections"] == 0
    assert _get(fake_server, once["id"])["part_history"] == {"total": 1, "total_capped": False,
                                                             "latest_id": once["id"], "others": []}


def test_another_station_on_the_line_is_listed_but_is_no_reinspection(fake_server):
    # a line whose second station looks at every part's other side: listed together, but
    # neither is a re-inspection at its station, and neither is told a newer one stands
    front = _post(fake_server, "two-sides-1", OK_PHOTO, seed=7300, station="S1")
    back = _post(fake_server, "two-sides-1", OK_PHOTO, seed=7301, station="S2")
    assert back["created"] is True and back["earlier_inspections"] == 0
    front_history = _get(fake_server, front["id"])["part_history"]
    assert front_history["total"] == 2 and front_history["latest_id"] == front["id"]
    assert [(o["id"], o["station"]) for o in front_history["others"]] == [(back["id"], "S2")]
    assert _get(fake_server, back["id"])["part_history"]["latest_id"] == back["id"]
    # the same part id on another line is another line's part
    other_line = _post(fake_server, "two-sides-1", OK_PHOTO, seed=7302, line="LReinspOther")
    assert other_line["earlier_inspections"] == 0
    assert _get(fake_server, other_line["id"])["part_history"]["total"] == 1
    assert _get(fake_server, front["id"])["part_history"]["total"] == 2


def test_a_repeated_part_id_lists_its_twenty_newest_others_and_counts_them_all(fake_server):
    # a PLC sending one serial for every part: the answer stays small, the count says how many
    sent = [_post(fake_server, "NOREAD-7", OK_PHOTO, seed=7400 + i, line="LReinspRepeat") for i in range(23)]
    assert [s["earlier_inspections"] for s in sent] == list(range(23))
    history = _get(fake_server, sent[0]["id"])["part_history"]
    assert history["total"] == 23 and history["latest_id"] == sent[-1]["id"]
    assert [o["id"] for o in history["others"]] == [s["id"] for s in reversed(sent[3:])]     # newest first, 20


def test_the_part_queries_use_the_part_index_not_the_line_index(tmp_path):
    # along the unique (part, image) index, or the line's, a part id frequent elsewhere (NOREAD
    # on another line) or a long line history was read whole for each part sent (26-105 ms a
    # part at 40,000-160,000 records). The plan, not the time, is what is checked.
    from sqlalchemy import select
    from lineguard.line.db import Database
    from lineguard.line.orm import Inspection
    from lineguard.line.station import _part_on_line
    db = Database(f"sqlite:///{tmp_path / 'parts.db'}")
    db.upgrade()
    rec = Inspection(id=7, part_id="P-1", line="L1", product="cell", station="S1")
    try:
        plans = []
        for q in (_part_on_line(select(Inspection.id), rec).where(Inspection.station == "S1",
                                                                 Inspection.id < 7).limit(1000),
                  _part_on_line(select(Inspection.id), rec).order_by(Inspection.id.desc()).limit(20)):
            with db.engine.connect() as conn:
                plans.append(" / ".join(r[3] for r in conn.exec_driver_sql(
                    "EXPLAIN QUERY PLAN " + str(q.compile(compile_kwargs={"literal_binds": True})))))
    finally:
        db.dispose()
    for plan in plans:
        assert "ix_inspections_part_line_id (part_id=? AND line=? AND product=?" in plan, plan
        assert "TEMP B-TREE" not in plan, plan       # newest first along the index, no sort


def test_another_products_part_of_the_same_id_is_another_part(fake_server):
    """Serials counted per product (or a camera counter reset at a changeover): part 0001 of
    one product and part 0001 of another on one line are two parts, neither a re-inspection
    (the housing's NG record said the cover's OK "stands for the part")."""
    from .conftest import fake_model_bytes
    with fake_server.client(fake_server.keys["engineer"]) as c:
        r = c.post("/api/v1/models", files={"file": ("cover.lgm", fake_model_bytes())},
                   data={"product": "cover-reinsp", "activate": "true"})
        assert r.status_code == 201, r.text
    housing = _post(fake_server, "0001-reinsp", NG_PHOTO, seed=7500)
    cover = _post(fake_server, "0001-reinsp", OK_PHOTO, seed=7501, product="cover-reinsp")
    assert cover["created"] is True and cover["earlier_inspections"] == 0
    for rec in (housing, cover):
        history = _get(fake_server, rec["id"])["part_history"]
        assert history["total"] == 1 and history["latest_id"] == rec["id"] and history["others"] == [], history
