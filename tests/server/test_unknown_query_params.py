"""A query parameter an endpoint does not take is refused (422) naming it and the ones it
takes, on every GET that filters: a filter misspelt (?lnie=L1, ?activ=true, ?fromat=xlsx) was
ignored, and the answer covered every line, alarm or part as if they all matched. The
requests the pages, the demo and the benchmarks send (every field filled) are still taken,
and a caller not signed in still hears 401 first. On SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt

import pytest

from lineguard.line.auth import create_key

from .test_alarms import NG, OK, _parts, _station
from .test_spc_api import client


def _now(**delta) -> str:
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(**delta)).isoformat().replace("+00:00", "Z")


def _cases():
    since, until = _now(hours=-12), _now(hours=1)
    window = {"line": "L1", "station": "S1", "product": "cell", "since": since, "until": until}
    gallery = {**window, "lot": "A1", "verdict": "NG", "defect_type": "crack", "reviewed": "false",
               "test_parts": "false", "photo_doubted": "false"}
    alarms = {"since": since, "until": until, "line": "L1", "station": "S1", "kind": "ng_run", "cause": "process",
              "active": "false"}
    changes = {"since": since, "until": until, "actor": "anna", "action": "model", "subject": "cell"}
    # (path, what its callers send with every field filled, a misspelt one, a name it takes)
    return [
        ("/api/v1/inspections/export", [gallery, {**gallery, "format": "xlsx"},
                                        {"lot": "A1", "verdict": "NG", "limit": 5}], {"fromat": "xlsx"}, "format"),
        ("/api/v1/alarms", [{**alarms, "limit": 100, "before_id": 99}, {"limit": 1},
                            {"active": "true", "line": "L1", "station": "S1"}], {"activ": "true"}, "active"),
        ("/api/v1/alarms/export", [alarms], {"lnie": "L1"}, "line"),
        ("/api/v1/alarms/summary", [{"since": since, "until": until, "line": "L1", "station": "S1"}],
         {"statoin": "S1"}, "station"),
        ("/api/v1/jobs", [{"status": "queued,running", "kind": "train", "limit": 1}, {"limit": 5}],
         {"state": "failed"}, "status"),
        ("/api/v1/models", [{"product": "cell", "line": "L1"}], {"prodcut": "cell"}, "product"),
        ("/api/v1/change-log", [{**changes, "limit": 100, "cursor": 99}], {"actr": "anna"}, "actor"),
        ("/api/v1/change-log/export", [changes], {"acton": "model"}, "action"),
        ("/api/v1/spc/p-chart", [{**window, "by": "hour"}, {**window, "by": "day", "format": "csv"}],
         {"lnie": "L1"}, "by"),
        ("/api/v1/spc/scores", [{**window, "by": "hour", "format": "csv", "baseline_subgroups": 2},
                                {**window, "baseline_since": since, "baseline_until": until}],
         {"baseline_sinse": since}, "baseline_since"),
        ("/api/v1/spc/review-rates", [window, {**window, "format": "csv"}], {"by": "day"}, "until"),
        ("/api/v1/spc/pareto", [window, {**window, "format": "csv"}], {"form": "csv"}, "format"),
        ("/api/v1/spc/defect-map", [{**window, "which": "defects", "columns": 4}], {"wich": "defects"}, "which"),
        ("/api/v1/reports/shift", [{"line": "L1", "product": "cell", "at": _now()}], {"shift": "2"}, "at"),
        ("/api/v1/lines/summary", [{}, {"since": since}], {"snice": since}, "since"),
    ]


def each_taken_and_its_typo_refused(c, cases, headers) -> None:
    """For each (path, what its callers send, a misspelt parameter, a name it takes): what is
    sent answers 200; the same with the misspelt one 422, naming it and the ones it takes."""
    for path, sent, typo, known in cases:
        for params in sent:
            r = c.get(path, params=params, headers=headers)
            assert r.status_code == 200, (path, params, r.text[:300])
        r = c.get(path, params={**sent[0], **typo}, headers=headers)
        assert r.status_code == 422, (path, typo, r.text[:300])
        message = r.json()["error"]["message"]
        (name,) = typo
        said, takes = message.split("; this endpoint takes ", 1)
        assert said == f"unknown query parameter {name}", message
        assert known in takes.split(", ") and name not in takes.split(", "), message


@pytest.mark.one_database
def test_a_parameter_an_endpoint_does_not_take_is_refused_naming_it_and_the_known_ones(spc_station):
    st = _station(spc_station, alarm_ng_rate=0)
    _parts(st, OK, NG, OK)
    with st.db.session() as s:
        eng = {"X-API-Key": create_key(s, "engineer", name="qe")[1]}
    with client(st) as c:
        each_taken_and_its_typo_refused(c, _cases(), eng)
        # two at once: both named
        r = c.get("/api/v1/alarms", params={"lnie": "L1", "activ": "true"}, headers=eng)
        assert r.json()["error"]["message"].startswith("unknown query parameters lnie, activ;"), r.text


@pytest.mark.one_database
def test_a_caller_not_signed_in_hears_401_before_the_misspelt_parameter(spc_station):
    st = _station(spc_station, alarm_ng_rate=0)
    _parts(st, OK)
    st.config.open_reads = False
    with st.db.session() as s:
        eng = {"X-API-Key": create_key(s, "engineer", name="qe")[1]}
    with client(st) as c:
        for path, sent, typo, _known in _cases():
            assert c.get(path, params=typo).status_code == 401, path
            r = c.get(path, params=typo, headers=eng)
            assert r.status_code == 422 and "unknown query parameter" in r.text, (path, r.text[:300])
