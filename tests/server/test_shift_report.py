"""The shift handover report on SQLite and PostgreSQL: one shift's parts, its control
against the week before, what reviewers found, what waits, and which models judged it."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest

from lineguard.line.orm import Inspection

from .test_spc_api import client

DAY = dt.datetime(2026, 11, 30)


def _part(t, verdict, line="L1", station="S1", label=None, dtype=None, model="m1", version=3):
    return Inspection(part_id=f"p{uuid.uuid4().hex[:10]}", line=line, station=station, product="cell",
                      verdict=verdict, score=0.2 if verdict == "OK" else 0.9, threshold=0.5, pixel_threshold=0.5,
                      model_id=model, model_version="v", registry_version=version, image_sha256=uuid.uuid4().hex,
                      image_width=8, image_height=8, created_at=t, reviewed=label is not None, review_label=label,
                      defect_type=dtype)


def _plant(st):
    parts = []
    for k in range(1, 7):              # six earlier shifts: 100 parts, 2 NG each
        t0 = DAY + dt.timedelta(hours=6) - dt.timedelta(hours=8 * k)
        parts += [_part(t0 + dt.timedelta(minutes=i), "NG" if i < 2 else "OK") for i in range(100)]
    t = DAY + dt.timedelta(hours=6, minutes=1)     # the morning shift, 06:00-14:00 UTC
    ng = ([("good", None)] * 3 + [("defect", "crack")] * 3 + [("defect", "dent")] + [(None, None)] * 13)
    parts += [_part(t, "NG", label=lab, dtype=dt_) for lab, dt_ in ng]
    parts += [_part(t, "REVIEW", label="defect", dtype="crack"), _part(t, "REVIEW")]
    parts += [_part(t, "OK", label="good") for _ in range(4)] + [_part(t, "OK", label="defect", dtype="dent")]
    parts += [_part(t, "OK") for _ in range(73)]
    parts += [_part(t, "OK", line="L2", station="S2", model="m2", version=1) for _ in range(50)]
    parts += [_part(DAY + dt.timedelta(hours=14, minutes=5), "NG")]       # the next shift's
    with st.db.session() as s:
        s.add_all(parts)


def test_the_report_of_one_shift(spc_station):
    st = spc_station(shift_starts=("06:00", "14:00", "22:00"))
    _plant(st)
    with client(st) as c:
        r = c.get("/api/v1/reports/shift", params={"at": "2026-11-30T10:00:00Z"})
        assert r.status_code == 200, r.text
        rep = r.json()
    assert rep["shift"]["label"] == "2026-11-30 S1 (06:00)" and rep["shift"]["start"] == "2026-11-30T06:00:00Z"
    assert rep["shift"]["previous_at"] < rep["shift"]["start"] and rep["shift"]["next_at"] == "2026-11-30T14:00:00Z"
    assert rep["totals"] == {"parts": 150, "OK": 128, "NG": 20, "REVIEW": 2, "photo_doubted": 0, "no_verdict": 0,
                             "no_verdict_late": 0, "ng_rate": 20 / 150}
    assert [(x["line"], x["station"], x["parts"], x["NG"]) for x in rep["stations"]] == [("L1", "S1", 100, 20),
                                                                                        ("L2", "S2", 50, 0)]
    assert rep["reviews"] == {"false_rejects": 3, "confirmed_defects": 4, "escapes": 1, "review_good": 0,
                              "review_defect": 1, "ok_audited": 0, "waiting": 14, "escapes_audit": 0,
                              "escapes_found_otherwise_by": {"station review": 0, "next process": 0, "customer": 0,
                                                             "other": 0, "not said": 1},
                              "escapes_text": "1 where not said"}
    assert [(b["defect_type"], b["parts"], b["escaped"]) for b in rep["defect_types"]] == [("crack", 4, 0),
                                                                                          ("dent", 2, 1)]
    assert [(m["model_id"], m["registry_version"], m["parts"]) for m in rep["models"]] == [("m1", 3, 100),
                                                                                          ("m2", 1, 50)]
    # 13 % NG against the week of 2 % before it (its six shifts, not this one): beyond its
    # upper limit, said
    ctl = rep["control"]
    assert ctl["shifts_compared"] == 6 and ctl["centre"] == 0.02 and ctl["p"] > ctl["ucl"] and ctl["alarms"]
    with client(st) as c:
        only_l2 = c.get("/api/v1/reports/shift", params={"at": "2026-11-30T10:00:00Z", "line": "L2"}).json()
    assert only_l2["totals"]["parts"] == 50 and only_l2["reviews"]["waiting"] == 0


@pytest.mark.one_database
def test_without_a_time_it_is_the_last_shift_that_ended(spc_station):
    from lineguard.line.shift_report import shift_report
    st = spc_station()
    _plant(st)
    rep = shift_report(st.db, ("06:00", "14:00", "22:00"), "UTC", now=DAY + dt.timedelta(hours=15))
    assert rep["shift"]["label"] == "2026-11-30 S1 (06:00)" and rep["totals"]["parts"] == 150
    running = shift_report(st.db, ("06:00", "14:00", "22:00"), "UTC", at=DAY + dt.timedelta(hours=15),
                           now=DAY + dt.timedelta(hours=15))
    assert running["shift"]["ended"] is False and running["shift"]["next_at"] is None
    assert running["totals"]["parts"] == 1


def test_parts_the_plc_rejected_without_a_verdict_are_counted_apart(spc_station):
    """A PLC answer NG without a verdict (timeout, no image, fault) has no part record: the
    report says how many the shift scrapped so, per station, of that line and product only."""
    from lineguard.line.orm import LineSignal
    st = spc_station(shift_starts=("06:00", "14:00", "22:00"))
    _plant(st)
    t = DAY + dt.timedelta(hours=7)

    def signal(inspection_id, signal="NG", line="L1", station="S1", product="cell", at=t, late=None):
        return LineSignal(protocol="modbus", line=line, station=station, trigger_seq=1, part_tag=0, recipe_id=1,
                          product=product, inspection_id=inspection_id, signal=signal, late_inspection_id=late,
                          result_code=10 if inspection_id is None else 1, triggered_at=at, answered_at=at)
    with st.db.session() as s:
        s.add_all([signal(None), signal(None, late=9), signal(None, station="S3"), signal(5, "OK"), signal(6, "NG"),
                   signal(None, line="L2", station="S2"), signal(None, product="other"),
                   signal(None, at=DAY + dt.timedelta(hours=15))])        # the next shift's
    with client(st) as c:
        rep = c.get("/api/v1/reports/shift", params={"at": "2026-11-30T10:00:00Z", "product": "cell"}).json()
        assert rep["totals"]["no_verdict"] == 4 and rep["totals"]["parts"] == 150
        assert rep["totals"]["no_verdict_late"] == 1          # judged after its window: among the parts
        assert {(x["line"], x["station"]): x["no_verdict"] for x in rep["stations"]} == \
            {("L1", "S1"): 2, ("L1", "S3"): 1, ("L2", "S2"): 1}
        s3 = [x for x in rep["stations"] if x["station"] == "S3"][0]
        assert (s3["parts"], s3["ng_rate"]) == (0, None)
        rep = c.get("/api/v1/reports/shift", params={"at": "2026-11-30T10:00:00Z", "line": "L1"}).json()
        assert rep["totals"]["no_verdict"] == 4                 # both products of line L1


def test_the_station_command_takes_the_plants_shifts_and_time_zone(tmp_path, monkeypatch):
    """`lineguard serve` read neither LINEGUARD_SHIFT_STARTS nor LINEGUARD_TIMEZONE (only the
    app as uvicorn imports it did) and had no option for them: a plant's report, SPC and line
    view kept 06:00/14:00/22:00 on the PC's clock whatever it set."""
    from click.testing import CliRunner

    import lineguard.server.app as server_app
    from lineguard.cli import app
    from lineguard.server.__main__ import main as server_main
    seen, schemas = [], []

    def opened(cfg, *args, **kw):
        seen.append((cfg.shift_starts, cfg.timezone))
        schemas.append(cfg.db_schema)
        raise server_app.StartupError("stop here")

    monkeypatch.setattr(server_app, "open_station", opened)
    data = str(tmp_path / "st")
    r = CliRunner().invoke(app, ["serve", "--data", data, "--shift-starts", "07:00, 19:00", "--timezone", "Asia/Tokyo"])
    assert r.exit_code == 2 and "stop here" in r.output, r.output
    monkeypatch.setenv("LINEGUARD_SHIFT_STARTS", "06:00,18:00")
    monkeypatch.setenv("LINEGUARD_TIMEZONE", "America/Chicago")
    r = CliRunner().invoke(app, ["serve", "--data", data])
    assert r.exit_code == 2, r.output
    assert seen == [(("07:00", "19:00"), "Asia/Tokyo"), (("06:00", "18:00"), "America/Chicago")]
    r = CliRunner().invoke(app, ["serve", "--data", data, "--timezone", "Mars/Olympus"])
    assert r.exit_code == 2 and "Mars/Olympus" in r.output and len(seen) == 2, r.output
    # and the station's own PostgreSQL schema, as the keys and users commands take it
    r = CliRunner().invoke(app, ["serve", "--data", data, "--db", "postgresql://lg@127.0.0.1:1/none",
                                 "--db-schema", "line_2"])
    assert r.exit_code == 2 and schemas[-1] == "line_2", r.output
    # python -m lineguard.server, for containers, alike
    monkeypatch.setattr("lineguard.server.__main__.serve", lambda cfg, **kw: seen.append((cfg.shift_starts,
                                                                                           cfg.timezone)))
    server_main(["--data", data])
    server_main(["--data", data, "--shift-starts", "22:00,10:00", "--timezone", "Europe/Berlin"])
    assert seen[3:] == [(("06:00", "18:00"), "America/Chicago"), (("22:00", "10:00"), "Europe/Berlin")]


@pytest.mark.one_database
def test_a_version_with_tuned_thresholds_does_not_make_the_models_differ(spc_station):
    """v2 is v1's model with another threshold: the same scores, yet the report said the
    models differed (their scores not comparable)."""
    from lineguard.line.tuning import save_thresholds

    from .conftest import FakeInspector
    st = spc_station(shift_starts=("06:00", "14:00", "22:00"))
    v1 = st.add_model(FakeInspector(0.5, "v-a").to_bytes(), "cell", activate=True)
    v2 = save_thresholds(st, "cell", "", 1, 0.6, None)
    parts = []
    for k in range(1, 7):              # six earlier shifts by v1, the morning shift by v2
        t0 = DAY + dt.timedelta(hours=6) - dt.timedelta(hours=8 * k)
        parts += [_part(t0 + dt.timedelta(minutes=i), "OK", model=v1.model_id, version=1) for i in range(30)]
    parts += [_part(DAY + dt.timedelta(hours=6, minutes=i), "OK", model=v2.model_id, version=2) for i in range(30)]
    with st.db.session() as s:
        s.add_all(parts)
    at = {"at": "2026-11-30T10:00:00Z"}
    with client(st) as c:
        rep = c.get("/api/v1/reports/shift", params=at).json()
        assert rep["drift"]["models_differ"] is False, rep["drift"]
        assert [m["registry_version"] for m in rep["models"]] == [2]      # which version judged it: still listed
        v3 = st.add_model(FakeInspector(0.5, "v-retrained").to_bytes(), "cell")
        with st.db.session() as s:
            s.add(_part(DAY + dt.timedelta(hours=7), "OK", model=v3.model_id, version=3))
        assert c.get("/api/v1/reports/shift", params=at).json()["drift"]["models_differ"] is True


@pytest.mark.one_database
def test_a_misspelt_line_or_product_is_a_404_not_an_empty_shift(spc_station):
    from lineguard.line.orm import Inspection
    st = spc_station(shift_starts=("06:00", "14:00", "22:00"))
    _plant(st)
    with st.db.session() as s:     # line L3 made parts last month only
        s.add(_part(DAY - dt.timedelta(days=30), "OK", line="L3"))
    at = {"at": "2026-11-30T10:00:00Z"}
    with client(st) as c:
        r = c.get("/api/v1/reports/shift", params={**at, "line": "NOSUCH"})
        assert r.status_code == 404, r.text
        msg = r.json()["error"]["message"]
        assert msg.startswith("unknown line 'NOSUCH'") and "L1, L2, L3" in msg
        r = c.get("/api/v1/reports/shift", params={**at, "line": "L2 x"})
        assert r.status_code == 404 and "did you mean 'L2'?" in r.json()["error"]["message"]
        r = c.get("/api/v1/reports/shift", params={**at, "product": "cel"})
        assert r.status_code == 404 and "did you mean 'cell'?" in r.json()["error"]["message"]
        # the stored spelling for another case, as before; a known line with no part in the shift: 0
        l2 = c.get("/api/v1/reports/shift", params={**at, "line": "l2"})
        assert l2.status_code == 200 and l2.json()["line"] == "L2" and l2.json()["totals"]["parts"] == 50
        l3 = c.get("/api/v1/reports/shift", params={**at, "line": "L3"})
        assert l3.status_code == 200 and l3.json()["totals"]["parts"] == 0
    with st.db.session() as s:
        assert s.query(Inspection).count() == 1 + 6 * 100 + 150 + 1


def test_the_shift_says_where_its_escapes_were_found(spc_station):
    """A customer's complaint about a part of the shift reads as such at the handover, as on
    the month report: the audit sample's escapes, then the others by where they were found."""
    st = spc_station(shift_starts=("06:00", "14:00", "22:00"))
    t = DAY + dt.timedelta(hours=6, minutes=1)
    escapes = [(True, "audit"), (False, "customer"), (False, "customer"), (False, None)]
    parts = [_part(t, "OK") for _ in range(20)] + [_part(t, "OK", label="defect") for _ in escapes]
    for p, (audit, found_by) in zip(parts[20:], escapes):
        p.audit_sample, p.found_by = audit, found_by
    before = _part(t - dt.timedelta(hours=8), "OK", label="defect")      # the night shift's, not this one's
    before.found_by = "customer"
    with st.db.session() as s:
        s.add_all(parts + [before])
    with client(st) as c:
        r = c.get("/api/v1/reports/shift", params={"at": "2026-11-30T10:00:00Z"})
        assert r.status_code == 200, r.text
        rev = r.json()["reviews"]
    assert rev["escapes"] == 4 and rev["escapes_audit"] == 1
    assert rev["escapes_found_otherwise_by"] == {"station review": 0, "next process": 0, "customer": 2, "other": 0,
                                                 "not said": 1}
    assert rev["escapes_text"] == "1 by the audit sample, 2 by the customer, 1 where not said"
