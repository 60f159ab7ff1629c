"""Each station's own alarm rules, on SQLite and PostgreSQL: set by an engineer, counted by
from the station's next part (its latest records counted afresh), followed by every process
on the database, in the change log, and back to the defaults when cleared."""
from __future__ import annotations

import datetime as dt

import pytest

from lineguard.line.alarms import AlarmWatch
from lineguard.line.auth import create_key
from lineguard.line.orm import StationAlarmRules

from .test_alarms import NG, OK, _parts, _station
from .test_spc_api import client


def _keys(st):
    with st.db.session() as s:
        return {role: {"X-API-Key": create_key(s, role, name=f"{role}-key")[1]} for role in ("operator", "engineer")}


@pytest.mark.one_database
def test_a_station_with_rules_of_its_own_is_counted_by_them(spc_station):
    st = _station(spc_station, alarm_ng_rate=0)           # defaults: 5 in a row, no rate rule
    keys = _keys(st)
    _parts(st, OK)
    _parts(st, OK, station="S2")
    with client(st) as c:
        body = {"line": "L1", "station": "S1", "ng_run": 3, "escalate_min": 2}
        assert c.put("/api/v1/alarms/rules", json=body, headers=keys["operator"]).status_code == 403
        r = c.put("/api/v1/alarms/rules", json=body, headers=keys["engineer"])
        assert r.status_code == 200, r.text
        assert r.json()["own"] == {"ng_run": 3, "escalate_min": 2}
        assert r.json()["rules"]["ng_run"] == 3 and r.json()["rules"]["photo_run"] == 3    # the rest: defaults
        listed = c.get("/api/v1/alarms/rules").json()
        assert listed["defaults"]["ng_run"] == 5 and listed["defaults"]["ng_rate"] == 0
        (s1,) = listed["stations"]
        assert (s1["line"], s1["station"], s1["own"], s1["rules"]["ng_run"]) == \
            ("L1", "S1", {"ng_run": 3, "escalate_min": 2}, 3)
        assert s1["updated_by"].startswith("engineer-key") and s1["problem"] is None

    _parts(st, NG, NG, station="S2")
    _parts(st, NG, NG)
    assert st.alarms.active() == []
    third = _parts(st, NG)[0]                             # S1: its own 3 in a row
    (alarm,) = st.alarms.active()
    assert (alarm["station"], alarm["parts"], alarm["inspection_id"]) == ("S1", 3, third.id)
    raised = dt.datetime.fromisoformat(alarm["raised_at"].replace("Z", "+00:00"))
    assert alarm["escalate_at"] == (raised + dt.timedelta(minutes=2)).isoformat().replace("+00:00", "Z")
    _parts(st, NG, station="S2")                          # S2 still on the defaults: 3 of 5
    assert [a["station"] for a in st.alarms.active()] == ["S1"]
    _parts(st, NG, NG, station="S2")
    assert sorted(a["station"] for a in st.alarms.active()) == ["S1", "S2"]

    with client(st) as c:
        log = c.get("/api/v1/change-log", params={"action": "alarm_rules"}, headers=keys["engineer"]).json()["items"]
        assert [(e["action"], e["subject"]) for e in log] == [("alarm_rules.set", "L1/S1")]
        assert log[0]["details"] == {"before": {}, "after": {"ng_run": 3, "escalate_min": 2}}
        assert c.delete("/api/v1/alarms/rules", params={"line": "L1", "station": "S1"},
                        headers=keys["operator"]).status_code == 403
        r = c.delete("/api/v1/alarms/rules", params={"line": "L1", "station": "S1"}, headers=keys["engineer"])
        assert r.status_code == 200 and r.json()["rules"]["ng_run"] == 5
        assert c.delete("/api/v1/alarms/rules", params={"line": "L1", "station": "S1"},
                        headers=keys["engineer"]).status_code == 404        # on the defaults already
        log = c.get("/api/v1/change-log", params={"action": "alarm_rules"}, headers=keys["engineer"]).json()["items"]
        assert log[0]["action"] == "alarm_rules.cleared" and log[0]["details"]["before"]["ng_run"] == 3
        assert c.get("/api/v1/alarms/rules").json()["stations"] == []
    st.alarms.acknowledge(alarm["id"], "maria (user)")
    _parts(st, NG, NG, NG, NG)                            # back on the defaults: 4 in a row is no alarm
    assert [a["station"] for a in st.alarms.active()] == ["S2"]
    _parts(st, NG)
    assert sorted(a["station"] for a in st.alarms.active()) == ["S1", "S2"]


@pytest.mark.one_database
def test_rules_out_of_range_or_for_an_unknown_station_are_refused_and_nothing_stored(spc_station):
    st = _station(spc_station)
    keys = _keys(st)
    _parts(st, OK)
    with client(st) as c:
        def put(**body):
            return c.put("/api/v1/alarms/rules", json={"line": "L1", "station": "S1", **body},
                         headers=keys["engineer"])
        r = put(ng_run=1)
        assert r.status_code == 422 and "2 to 10000 parts in a row" in r.json()["detail"]
        assert put(ng_rate=1.5).status_code == 422
        assert put(window=5).status_code == 422
        assert put(escalate_min=0.1).status_code == 422
        r = c.put("/api/v1/alarms/rules", json={"line": "L1", "station": "S9", "ng_run": 3},
                  headers=keys["engineer"])
        assert r.status_code == 404 and "in any case" in r.json()["detail"]
        # the line's stations named (a PLC link's parts are station "plc": no one guesses it)
        assert "line 'L1' has parts of station S1:" in r.json()["detail"] and r.json()["error"]["stations"] == ["S1"]
        r = c.put("/api/v1/alarms/rules", json={"line": "L1", "station": " S1", "ng_run": 3},
                  headers=keys["engineer"])
        assert r.status_code == 422
        # a misspelt setting, a number as text, true for a number: refused, not dropped or read as 1
        for bad in ({"ng_rte": 0.05}, {"ng_run": "4"}, {"ng_rate": True}, {"photo_run": False}, {"window": 20.5}):
            assert put(**bad).status_code == 422, bad
        assert c.get("/api/v1/alarms/rules").json()["stations"] == []
        assert c.get("/api/v1/change-log", params={"action": "alarm_rules"},
                     headers=keys["engineer"]).json()["items"] == []
        # all left empty: the defaults, as a DELETE
        assert put(ng_run=0).status_code == 200
        assert c.get("/api/v1/alarms/rules").json()["stations"][0]["own"] == {"ng_run": 0}
        r = put()
        assert r.status_code == 200 and r.json()["own"] == {}
        assert c.get("/api/v1/alarms/rules").json()["stations"] == []


@pytest.mark.one_database
def test_new_rules_count_the_stations_latest_parts_afresh(spc_station):
    """A station three rejects into a run when it gets a rule of four raises at its next
    reject: the counts are read back from the records under the new rules, not started empty."""
    # every rule off by default: a station's own switch one on
    st = _station(spc_station, alarm_ng_rate=0, alarm_photo_run=0, alarm_ng_run=0, alarm_no_verdict_run=0)
    _parts(st, NG, NG, NG)
    assert st.alarms.active() == []
    st.alarms.set_station_rules("L1", "S1", {"ng_run": 4}, by="maria (user)")
    assert st.alarms.active() == []          # nothing raised until the station's next part
    last = _parts(st, NG)[0]
    (alarm,) = st.alarms.active()
    assert (alarm["parts"], alarm["inspection_id"]) == (4, last.id)
    st.alarms.acknowledge(alarm["id"], "maria (user)")
    # the rate rule switched on: its own floor, so the four NG parts the run alarm dealt with count
    # toward it (as after a restart); set again, the run rule goes back to the default (off)
    st.alarms.set_station_rules("L1", "S1", {"ng_rate": 0.2, "window": 10}, by="maria (user)")
    assert st.alarms.rules_for("L1", "S1").active_kinds == ("ng_rate", "drift")
    ok = _parts(st, OK)[0]
    (rate,) = st.alarms.active()
    assert (rate["kind"], rate["inspection_id"]) == ("ng_rate", ok.id)
    assert "4 of the last 5 parts NG" in rate["message"] and "limit of 2 in 10" in rate["message"]


def test_every_process_on_the_database_follows_a_stations_rules(spc_station):
    """Rules set in the server reach a hot folder's watcher (another process on the
    database) at its next read of them, at the latest RULES_READ_S later."""
    st = _station(spc_station, alarm_ng_rate=0)
    watcher = AlarmWatch(st.db, st.alarms.rules)
    _parts(st, OK)
    assert watcher.rules_for("L1", "S1").ng_run == 5
    st.alarms.set_station_rules("L1", "S1", {"ng_run": 2, "photo_run": 0}, by="maria (user)")
    assert watcher.rules_for("L1", "S1").ng_run == 5          # read less than RULES_READ_S ago
    watcher._own_read_at -= AlarmWatch.RULES_READ_S
    rules = watcher.rules_for("L1", "S1")
    assert (rules.ng_run, rules.photo_run, rules.window, rules.escalate_min) == (2, 0, 100, 10.0)
    assert watcher.rules_for("L1", "S2") == st.alarms.rules
    # a setting written out of range by hand in the database: that station on the defaults, the others as set
    with st.db.session() as s:
        s.add(StationAlarmRules(line="L1", station="S2", ng_run=1, updated_at=dt.datetime(2026, 12, 4)))
    watcher.read_rules()
    assert watcher.rules_for("L1", "S2") == st.alarms.rules and watcher.rules_for("L1", "S1").ng_run == 2
    with client(st) as c:
        bad = [x for x in c.get("/api/v1/alarms/rules").json()["stations"] if x["station"] == "S2"][0]
        assert "2 to 10000 parts in a row" in bad["problem"] and bad["rules"]["ng_run"] == 5
    if st.db.is_sqlite:     # SQLite keeps a fraction in an integer column: the defaults again, not a crash at each part
        from sqlalchemy import text
        with st.db.session() as s:
            s.execute(text("UPDATE alarm_rules SET ng_run = NULL, photo_run = 2.5 WHERE station = 'S2'"))
        watcher.read_rules()
        assert watcher.rules_for("L1", "S2") == st.alarms.rules
        st.alarms.read_rules()
        _parts(st, NG, station="S2")
        with client(st) as c:
            bad = [x for x in c.get("/api/v1/alarms/rules").json()["stations"] if x["station"] == "S2"][0]
            assert "whole number" in bad["problem"]



@pytest.mark.one_database
def test_a_station_may_have_its_own_no_verdict_rule(spc_station):
    st = _station(spc_station)
    keys = _keys(st)
    _parts(st, OK)
    with client(st) as c:
        r = c.put("/api/v1/alarms/rules", json={"line": "L1", "station": "S1", "no_verdict_run": 0},
                  headers=keys["engineer"])
        assert r.status_code == 200 and r.json()["own"] == {"no_verdict_run": 0}
        assert r.json()["rules"]["no_verdict_run"] == 0
        assert c.put("/api/v1/alarms/rules", json={"line": "L1", "station": "S1", "no_verdict_run": 1},
                     headers=keys["engineer"]).status_code == 422
    assert st.alarms.rules_for("L1", "S1").active_kinds == ("ng_run", "ng_rate", "photo", "drift")
    assert [st.alarms.after_answer("L1", "S1", "cell", None, verdict=False) for _ in range(5)] == [[]] * 5


def test_alarm_rules_set_list_and_clear_from_the_command_line(tmp_path):
    """The same change as the page's, on the station's database: in the change log under
    the account that ran it, counted by the running station at its next look."""
    from click.testing import CliRunner

    from lineguard.cli import app
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station

    from .fake_inspector import FakeInspector
    data = tmp_path / "st"
    st = Station(StationConfig(data_dir=data, timezone="UTC", alarm_ng_rate=0), loader=FakeInspector.load)
    try:
        st.add_model(FakeInspector(0.5, review_threshold=0.4, photo_floor=0.1).to_bytes(), "cell", activate=True)
        _parts(st, OK)

        def cli(*args):
            return CliRunner().invoke(app, ["alarm-rules", *args, "--data", str(data)])

        r = cli("set", "--line", "L1", "--station", "S1", "--ng-run", "3", "--escalate-min", "2")
        assert r.exit_code == 0, r.output
        assert "L1/S1: ng_run=3 escalate_min=2.0" in r.output
        kept = cli("set", "--line", "L1", "--station", "S1", "--photo-run", "4")
        assert kept.exit_code == 0 and "ng_run=3 photo_run=4 escalate_min=2.0" in kept.output, kept.output
        listed = cli("list").output.splitlines()
        assert listed[1].startswith("L1\tS1\tng_run=3 photo_run=4 escalate_min=2.0\tcli"), listed
        # refused, nothing changed: a station never seen, a setting out of range, no setting at all
        unseen = cli("set", "--line", "L1", "--station", "S9", "--ng-run", "3")
        assert unseen.exit_code == 2 and "no part was ever inspected at station 'S9'" in unseen.output
        out_of_range = cli("set", "--line", "L1", "--station", "S1", "--ng-run", "1")
        assert out_of_range.exit_code == 2 and "2 to 10000 parts in a row" in out_of_range.output
        assert cli("set", "--line", "L1", "--station", "S1").exit_code == 2
        assert cli("set", "--line", "L1", "--station", "S1", "--ng-run", "3", "--unset", "ng-run").exit_code == 2
        assert cli("set", "--line", "L1", "--station", "S1", "--unset", "ng-runs").exit_code == 2
        elsewhere = CliRunner().invoke(app, ["alarm-rules", "list", "--data", str(tmp_path / "typo")])
        assert elsewhere.exit_code == 2 and "no station database" in elsewhere.output
        assert not (tmp_path / "typo").exists()           # a misspelt folder does not become a station

        st.alarms._own_read_at -= AlarmWatch.RULES_READ_S     # the station's next look at the rules
        _parts(st, NG, NG)
        assert st.alarms.active() == []
        _parts(st, NG)                     # its own 3 in a row, set from the command line
        assert [a["station"] for a in st.alarms.active()] == ["S1"]

        unset = cli("set", "--line", "L1", "--station", "S1", "--unset", "photo-run")
        assert unset.exit_code == 0 and unset.output.startswith("L1/S1: ng_run=3 escalate_min=2.0 ("), unset.output
        replaced = cli("set", "--line", "L1", "--station", "S1", "--ng-run", "4", "--replace")   # the rest: defaults
        assert replaced.exit_code == 0 and replaced.output.startswith("L1/S1: ng_run=4 (")
        assert cli("clear", "--line", "L1", "--station", "S1").exit_code == 0
        again = cli("clear", "--line", "L1", "--station", "S1")
        assert again.exit_code == 2 and "follows the defaults already" in again.output
        assert cli("list").output.splitlines()[1:] == []
        with st.db.session() as s:
            from sqlalchemy import select
            from lineguard.line.orm import ChangeLogEntry
            log = [(e.action, e.subject, e.actor.startswith("cli"), e.details)
                   for e in s.scalars(select(ChangeLogEntry).where(ChangeLogEntry.action.like("alarm_rules%"))
                                      .order_by(ChangeLogEntry.id))]
        assert log == [
            ("alarm_rules.set", "L1/S1", True, {"before": {}, "after": {"ng_run": 3, "escalate_min": 2.0}}),
            ("alarm_rules.set", "L1/S1", True, {"before": {"ng_run": 3, "escalate_min": 2.0},
                                                "after": {"ng_run": 3, "photo_run": 4, "escalate_min": 2.0}}),
            ("alarm_rules.set", "L1/S1", True, {"before": {"ng_run": 3, "photo_run": 4, "escalate_min": 2.0},
                                                "after": {"ng_run": 3, "escalate_min": 2.0}}),
            ("alarm_rules.set", "L1/S1", True, {"before": {"ng_run": 3, "escalate_min": 2.0},
                                                "after": {"ng_run": 4}}),
            ("alarm_rules.cleared", "L1/S1", True, {"before": {"ng_run": 4}})]
    finally:
        st.close()


def test_alarm_rules_from_the_command_line_reach_a_station_in_its_own_schema(spc_station):
    """On PostgreSQL a station may live in a schema of its own (--db-schema): the rules
    go there, not into a new station in the public schema."""
    from click.testing import CliRunner

    from lineguard.cli import app
    st = _station(spc_station)
    _parts(st, OK)
    where = ["--data", str(st.config.data_dir)]
    if st.config.db_url:
        where += ["--db", st.config.db_url, "--db-schema", st.config.db_schema]
    r = CliRunner().invoke(app, ["alarm-rules", "set", "--line", "L1", "--station", "S1", "--ng-run", "7", *where])
    assert r.exit_code == 0, r.output
    replace_all = CliRunner().invoke(app, ["alarm-rules", "set", "--line", "L1", "--station", "S1", "--replace",
                                           "--unset", "photo-run", *where])
    assert replace_all.exit_code == 2 and "would clear them all" in replace_all.output
    if st.config.db_url:                  # a misspelt schema is refused, not made a new empty station
        typo = CliRunner().invoke(app, ["alarm-rules", "list", "--db", st.config.db_url, "--db-schema",
                                        st.config.db_schema + "x"])
        assert typo.exit_code == 2 and "no station in" in typo.output and "check --db and --db-schema" in typo.output
        from sqlalchemy import create_engine, inspect
        engine = create_engine(st.config.db_url)
        try:
            assert st.config.db_schema + "x" not in inspect(engine).get_schema_names()
        finally:
            engine.dispose()
    st.alarms.read_rules()
    assert st.alarms.rules_for("L1", "S1").ng_run == 7


def test_rules_for_a_station_typed_in_another_case_are_kept_under_the_name_its_parts_carry(spc_station):
    st = _station(spc_station, alarm_ng_rate=0)           # defaults: 5 in a row
    keys = _keys(st)
    _parts(st, OK)
    with client(st) as c:
        r = c.put("/api/v1/alarms/rules", json={"line": "l1", "station": "s1", "ng_run": 3}, headers=keys["engineer"])
        assert r.status_code == 200, r.text
        assert (r.json()["line"], r.json()["station"]) == ("L1", "S1")
        assert r.json()["rules"]["ng_run"] == 3            # what counts, not the defaults (5)
        gone = c.delete("/api/v1/alarms/rules", params={"line": "l1", "station": "s1"}, headers=keys["engineer"])
        assert gone.json()["rules"]["ng_run"] == 5
        assert c.put("/api/v1/alarms/rules", json={"line": "l1", "station": "s1", "ng_run": 3},
                     headers=keys["engineer"]).status_code == 200
    _parts(st, NG, NG, NG)                                 # counted by them: 3 in a row raise it
    assert [a["kind"] for a in st.alarms.active()] == ["ng_run"]


def test_rules_set_under_another_case_are_cleared_so_too_and_an_exact_station_wins(spc_station):
    st = _station(spc_station, alarm_ng_rate=0)
    keys = _keys(st)
    _parts(st, OK)                       # S1 of L1
    _parts(st, OK, station="s1")         # and a newer station named s1, another one
    with client(st) as c:
        r = c.put("/api/v1/alarms/rules", json={"line": "l1", "station": "S1", "ng_run": 3}, headers=keys["engineer"])
        assert (r.json()["line"], r.json()["station"]) == ("L1", "S1")          # as typed, not the newer s1
        gone = c.delete("/api/v1/alarms/rules", params={"line": "l1", "station": "S1"}, headers=keys["engineer"])
        assert gone.status_code == 200 and (gone.json()["line"], gone.json()["station"]) == ("L1", "S1")
        assert c.get("/api/v1/alarms/rules").json()["stations"] == []
