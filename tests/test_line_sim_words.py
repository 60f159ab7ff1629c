"""`lineguard line-sim`'s summary says the rate kept against the rate asked, and what an
overrun is in the PLC's terms.

A walk at 40 parts a second printed "(9.68/s)": the rate the line got, with nothing to hold it
against, so a station that kept a quarter of the line's pace read like a fine result. And an
overrun was "a part the station was not ready for when it came, sent a period late", where the
simulator counts a part that came while the part before was not yet answered and acknowledged,
and let go more than a period late.
"""
from __future__ import annotations

from cli_runner import run_in_process


class _Link:
    """The station's PLC link as line-sim uses it around a run: ready, no line alarm."""

    def alarm_code(self) -> int:
        return 0

    def close(self) -> None:
        pass


def test_the_summary_says_the_rate_got_of_the_rate_asked_and_what_an_overrun_is(monkeypatch):
    from lineguard.line import plc_sim

    def run(link, parts, rate, feeder, window_ms, **_kw):
        # a station at a quarter of the line's pace: 3 parts in 0.31 s where 40/s was asked,
        # 2 of them let go late because the one before was still being judged
        return plc_sim.SimReport(protocol="modbus", parts=parts, rate=rate, window_ms=window_ms,
                                 latencies_ms=[80.0, 95.0, 101.0], codes={"OK": 3}, overruns=2, wall_s=0.31)
    monkeypatch.setattr(plc_sim, "connect", lambda protocol, host, port: _Link())
    monkeypatch.setattr(plc_sim, "run", run)
    r = run_in_process("line-sim", "--protocol", "modbus", "--port", "15020", "--parts", "3", "--rate", "40",
                       "--no-feed")
    assert r.returncode == 0, r.stdout + r.stderr
    # before: "(9.68/s)", the rate asked not beside it
    assert "answered 3/3 in 0.3 s (9.68/s of 40/s asked); results {'OK': 3}" in r.stdout, r.stdout
    assert ("overruns 2 (parts that came while the station was not ready for them (the part before not yet "
            "answered and acknowledged), sent more than a period late); answers for another part 0") in r.stdout, \
        r.stdout


def test_a_window_of_0_ms_or_less_is_refused_naming_the_stations_default():
    """0 ms counted every answer as a missed window: a report of a failing line, made up."""
    for window in ("0", "-5", "nan"):
        r = run_in_process("line-sim", "--protocol", "modbus", "--port", "15020", "--no-feed", "--window-ms", window)
        assert r.returncode == 2, (window, r.stdout + r.stderr)
        assert "--window-ms" in r.stderr and "above 0" in r.stderr and "default is 1000" in r.stderr, r.stderr
