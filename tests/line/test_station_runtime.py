"""How the station runs its exported model: beside its own servers, the runtime's threads
must not spin (a spinning ONNX Runtime thread took the core the PLC server needed and
doubled a part's model time on a loaded 2-core machine; benchmarks/plc_stages_bench.py)."""
from __future__ import annotations

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

_SPIN = "session.intra_op.allow_spinning"


def _spin_setting(insp) -> str:
    """The session's spinning entry; "default" when it was never set (ONNX Runtime spins)."""
    try:
        return insp.detector._session.get_session_options().get_session_config_entry(_SPIN)
    except RuntimeError:
        return "default"


def test_the_station_runs_its_exported_model_without_spinning_threads(exported, tmp_path, synth_category):
    from lineguard import Inspector
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Part, Station
    alone = Inspector.load(exported)
    st = Station(StationConfig(data_dir=tmp_path / "st"))
    try:
        mv = st.ensure_model(str(exported), "cell")
        insp = st.models.inspector(mv)
        assert insp.detector.spinning is False
        assert _spin_setting(insp) == "0"
        # the same answers as the model alone (the setting changes timing, never a verdict)
        f = sorted(synth_category.glob("test/*/*.png"))[0]
        rec = st.inspect(f.read_bytes(), Part("p-1", "L1", "S1", "cell")).record
        want = alone.inspect(f)
        assert rec.verdict == want.verdict.value and rec.score == pytest.approx(want.score, rel=1e-5)
    finally:
        st.close()
    # outside a station (CLI, notebooks) the runtime keeps its default
    assert alone.detector.spinning is True and _spin_setting(alone) in ("default", "1")


def test_spinning_switched_off_and_on_rebuilds_with_the_same_threads(exported):
    from lineguard import Inspector
    insp = Inspector.load(exported, threads=1)
    insp.detector.set_spinning(False)
    opts = insp.detector._session.get_session_options()
    assert opts.get_session_config_entry(_SPIN) == "0" and opts.intra_op_num_threads == 1
    insp.detector.set_spinning(True)
    assert _spin_setting(insp) in ("default", "1")
