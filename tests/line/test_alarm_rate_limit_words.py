"""The NG-rate alarm is raised when the rejected parts reach its limit: it said "10 of the
last 28 parts NG ... over the alarm limit of 10 in 100", and the shift asked how far over."""
from __future__ import annotations

from lineguard.line.alarms import _message

from .test_drift_alarm import _count, _record


def test_a_rate_alarm_raised_at_its_limit_says_at_the_limit_not_over_it(station_factory):
    st = station_factory(alarm_ng_run=0, alarm_window=20, alarm_ng_rate=0.2, alarm_drift_parts=0)
    recs = []
    for _ in range(4):
        recs += _record(st, [0.1] * 3, verdict="OK") + _record(st, [0.9], verdict="NG")
    [(_, alarm)] = _count(st.alarms, recs)
    assert alarm["kind"] == "ng_rate"
    said = alarm["message"]
    assert "4 of the last 16 parts NG" in said and "at the alarm limit of 4 in 20" in said, said
    assert "over the alarm limit" not in said, f"4 rejected parts are at a limit of 4, not over it: {said}"
    # parts counted in one go (a restart reading the window back) may pass the limit at once
    said = _message("ng_rate", st.alarms.rules, recs[-1], 16, 6)
    assert "6 of the last 16 parts NG" in said and "over the alarm limit of 4 in 20" in said, said

