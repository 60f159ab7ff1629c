"""Reports and exports take turns (server.report_slots): forty dashboards opened at once
filled the 40 threads every route shares, and parts sent meanwhile waited minutes."""
from __future__ import annotations

import threading
import time

from fastapi.testclient import TestClient

from lineguard.line.config import StationConfig
from lineguard.line.station import Part, Station

from .conftest import png_bytes
from .fake_inspector import FakeInspector


def _station(tmp_path, **kw) -> Station:
    st = Station(StationConfig(data_dir=tmp_path / "data", open_reads=True, timezone="UTC", **kw),
                 loader=FakeInspector.load)
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    st.inspect(png_bytes(30, seed=1), Part("r-1", "L1", "S1", "cell"))
    return st


def _slow_charts(monkeypatch, hold_s: float):
    """Each p-chart holds its thread ``hold_s``; returns the most seen running at once."""
    from lineguard.server.routers import spc
    running, most, lock = [0], [0], threading.Lock()
    real = spc.defect_subgroups

    def slow(*a, **kw):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            time.sleep(hold_s)
            return real(*a, **kw)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(spc, "defect_subgroups", slow)
    return most


def test_reports_run_at_most_report_slots_at_once_and_a_part_is_not_held_up(tmp_path, monkeypatch):
    from lineguard.server.app import create_app
    from lineguard.line.auth import create_key
    st = _station(tmp_path, report_slots=2)
    with st.db.session() as s:
        key = create_key(s, "operator", "line", by="test")[1]
    most = _slow_charts(monkeypatch, 0.4)
    answers: list[int] = []
    try:
        with TestClient(create_app(station=st)) as c:
            def chart():
                answers.append(c.get("/api/v1/spc/p-chart", params={"line": "L1"}).status_code)

            charts = [threading.Thread(target=chart) for _ in range(8)]
            for t in charts:
                t.start()
            time.sleep(0.2)
            # a part sent while six reports wait: answered without waiting for them all
            part = c.post("/api/v1/inspections", files={"image": ("p.png", png_bytes(40, seed=2), "image/png")},
                          data={"part_id": "r-2", "line": "L1", "station": "S1", "product": "cell"},
                          headers={"X-API-Key": key})
            still_running = sum(t.is_alive() for t in charts)
            for t in charts:
                t.join(60)
        assert part.status_code == 201, part.text
        assert still_running >= 4, still_running      # the part did not queue behind them
        assert answers == [200] * 8 and most[0] == 2, (answers, most[0])
    finally:
        st.close()


def test_a_report_that_waits_too_long_for_its_turn_is_a_503_to_try_again(tmp_path, monkeypatch):
    from lineguard.server import report_slots
    from lineguard.server.app import create_app
    st = _station(tmp_path, report_slots=1)
    _slow_charts(monkeypatch, 1.0)
    monkeypatch.setattr(report_slots, "WAIT_S", 0.2)
    got: list = []
    try:
        with TestClient(create_app(station=st)) as c:
            first = threading.Thread(target=lambda: got.append(c.get("/api/v1/spc/p-chart", params={"line": "L1"})))
            first.start()
            time.sleep(0.3)
            r = c.get("/api/v1/spc/p-chart", params={"line": "L1"})
            first.join(30)
        assert r.status_code == 503 and r.headers["retry-after"] == "10", r.text
        assert r.json()["error"]["code"] == "busy" and "--report-slots" in r.json()["error"]["message"]
        assert got[0].status_code == 200
    finally:
        st.close()


def test_the_same_app_served_on_another_event_loop_still_runs_its_reports(tmp_path, monkeypatch):
    """The slots were bound to the first event loop that made a report wait: the same app
    served again on another loop answered every report that had to wait with a 500."""
    from lineguard.server.app import create_app
    st = _station(tmp_path, report_slots=1)
    _slow_charts(monkeypatch, 0.3)
    app = create_app(station=st)
    try:
        for _ in range(2):                  # two servings, each on an event loop of its own
            with TestClient(app) as c:
                got: list[int] = []
                charts = [threading.Thread(target=lambda: got.append(
                    c.get("/api/v1/spc/p-chart", params={"line": "L1"}).status_code)) for _ in range(3)]
                for t in charts:
                    t.start()
                for t in charts:
                    t.join(60)
                assert got == [200, 200, 200], got
    finally:
        st.close()


def test_two_long_exports_leave_a_slot_for_the_shift_report_and_the_charts(tmp_path, monkeypatch):
    """Streamed exports held both slots for their whole download: the shift report waited
    into a 503 and the p-chart for as long as an export lasted. Exports now take at most
    all but one of the slots."""
    from lineguard.line import part_records
    from lineguard.server import report_slots
    from lineguard.server.app import create_app
    st = _station(tmp_path, report_slots=2)
    monkeypatch.setattr(report_slots, "WAIT_S", 3.0)
    release, started = threading.Event(), []
    real = part_records.csv_lines

    def slow_lines(records, zone=None, **kw):
        pieces = real(records, zone, **kw)
        yield next(pieces)
        started.append(1)
        release.wait(20)         # a long download in progress
        yield from pieces

    monkeypatch.setattr(part_records, "csv_lines", slow_lines)
    exports: list[int] = []
    try:
        with TestClient(create_app(station=st)) as c:
            threads = [threading.Thread(target=lambda: exports.append(
                c.get("/api/v1/inspections/export").status_code)) for _ in range(2)]
            for t in threads:
                t.start()
            deadline = time.monotonic() + 10
            while not started and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
            # both answered while the first export still holds its slot: a report that found
            # no slot free would wait WAIT_S (3 s here) into a 503
            shift = c.get("/api/v1/reports/shift", params={"line": "L1"})
            chart = c.get("/api/v1/spc/p-chart", params={"line": "L1"})
            exporting = len(started)
            release.set()
            for t in threads:
                t.join(30)
        assert exporting == 1, "the second export should wait for the first, not take the last slot"
        assert shift.status_code == 200, shift.text
        assert chart.status_code == 200, chart.text
        assert sorted(exports) == [200, 200], exports      # the second export waited its turn
    finally:
        release.set()
        st.close()


def test_exports_take_all_but_one_slot():
    from lineguard.server.report_slots import export_slots
    assert [export_slots(n) for n in (1, 2, 3, 8)] == [1, 1, 2, 7]
