"""A reject the model never judged is on record before the PLC can read it (issue #10)."""
from __future__ import annotations

import pytest

pytest.importorskip("pymodbus")

from sqlalchemy import select  # noqa: E402

from lineguard.line.orm import LineSignal  # noqa: E402
from lineguard.line.plc_modbus import ResultCode  # noqa: E402

from .conftest import png_bytes  # noqa: E402
from .test_plc_modbus import plc_cell  # noqa: E402,F401 - the fixture


class _Stalled:
    """A background recorder that never gets to run: what a crash right after the answer looks like."""

    def submit(self, *_a, **_k):
        return None

    def shutdown(self, wait: bool = True) -> None:
        return None


def _signals(st):
    with st.db.session() as s:
        return list(s.scalars(select(LineSignal)))


@pytest.mark.parametrize("case", ["timeout", "no_image"])
def test_a_reject_without_a_verdict_is_recorded_before_results_valid(plc_cell, case):  # noqa: F811
    if case == "timeout":
        st, srv, plc = plc_cell([png_bytes(30, seed=11)], delay_s=0.6, window_ms=150)
    else:
        st, srv, plc = plc_cell([LookupError("camera lost")])
    srv.hs._recorder = _Stalled()
    plc.trigger(tag=7)
    bits = plc.wait("valid", timeout=10)
    assert bits["ng"] and not bits["ok"]
    # the instant ResultsValid is high, the reject and its reason are committed
    (sig,) = _signals(st)
    want = ResultCode.TIMEOUT if case == "timeout" else ResultCode.NO_IMAGE
    assert (sig.signal, sig.result_code, sig.part_tag, sig.inspection_id) == ("NG", want, 7, None)
    assert sig.reason


def test_a_judged_part_keeps_the_line_signal_off_the_answer_path(plc_cell):  # noqa: F811
    # its inspection record is committed before the answer; the line signal follows it
    st, srv, plc = plc_cell([png_bytes(30, seed=12)])
    srv.hs._recorder = _Stalled()
    plc.trigger(tag=8)
    plc.wait("valid", timeout=10)
    assert _signals(st) == []
    assert st.get(plc.regs()["inspection_id"]).verdict == "OK"
