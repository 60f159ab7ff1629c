"""The model queue: parts that wait go in together, each caller gets its own part's
answer, one failing part fails only itself, and models that gain nothing from batches
judge one part at a time."""
from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest

from lineguard.line.batcher import ModelBatcher


class GatedInspector:
    """Score = the part's first pixel; the first call blocks until ``gate`` opens, so
    the parts sent meanwhile are known to be waiting."""

    def __init__(self, lanes: int):
        self.detector = SimpleNamespace(parallel_parts=lanes)
        self.gate = threading.Event()
        self.calls: list[int] = []          # batch size of every model call
        self._first = True

    def _judge(self, image):
        if int(image[0, 0]) == 13:
            raise ValueError("part 13 cannot be judged")
        return SimpleNamespace(score=float(image[0, 0]))

    def _wait_first(self):
        if self._first:
            self._first = False
            assert self.gate.wait(10)

    def inspect(self, image):
        self._wait_first()
        self.calls.append(1)
        return self._judge(image)

    def inspect_batch(self, images):
        self._wait_first()
        self.calls.append(len(images))
        return [self._judge(im) for im in images]


def _part(v: int) -> np.ndarray:
    return np.full((4, 4), v, np.uint8)


def _send_while_busy(batcher: ModelBatcher, insp: GatedInspector, values: list[int]) -> dict:
    """Send part 0 (which blocks the model), then ``values`` while it is busy."""
    answers: dict = {}

    def send(v):
        try:
            answers[v] = batcher.inspect(_part(v))
        except Exception as exc:  # noqa: BLE001
            answers[v] = exc

    first = threading.Thread(target=send, args=(0,))
    first.start()
    while insp._first:  # part 0 is in the model once this flips
        threading.Event().wait(0.001)
    others = [threading.Thread(target=send, args=(v,)) for v in values]
    for t in others:
        t.start()
    while batcher._queue.qsize() < len(values):
        threading.Event().wait(0.001)
    insp.gate.set()
    for t in [first, *others]:
        t.join(10)
    return answers


def test_waiting_parts_go_in_together_and_get_their_own_answers():
    insp = GatedInspector(lanes=2)
    b = ModelBatcher(insp, max_batch=4)
    answers = _send_while_busy(b, insp, list(range(1, 8)))
    assert insp.calls[0] == 1                       # the lone first part was not held back
    assert sorted(insp.calls[1:]) == [3, 4]         # seven waiting parts: batches of at most 4
    for v in range(8):
        assert answers[v].result.score == v
    assert {answers[v].batch for v in range(1, 8)} == {3, 4}
    assert all(answers[v].queued_s >= 0 and answers[v].model_s >= 0 for v in range(8))
    b.close()


def test_a_failing_part_fails_only_itself():
    insp = GatedInspector(lanes=2)
    b = ModelBatcher(insp, max_batch=16)
    answers = _send_while_busy(b, insp, [11, 12, 13, 14])
    assert isinstance(answers[13], ValueError)
    assert [answers[v].result.score for v in (0, 11, 12, 14)] == [0, 11, 12, 14]
    b.close()


def test_models_without_lanes_judge_one_part_at_a_time():
    insp = GatedInspector(lanes=1)
    b = ModelBatcher(insp, max_batch=16)
    assert b.max_batch == 1
    answers = _send_while_busy(b, insp, [1, 2, 3])
    assert insp.calls == [1, 1, 1, 1]
    assert [answers[v].result.score for v in range(4)] == [0, 1, 2, 3]
    b.close()


def test_close_answers_queued_parts_then_stops():
    insp = GatedInspector(lanes=2)
    insp.gate.set()
    b = ModelBatcher(insp)
    assert b.inspect(_part(5)).result.score == 5
    b.close()
    b._thread.join(5)
    assert not b._thread.is_alive()


def test_station_settings_are_checked():
    from lineguard.line.config import StationConfig
    with pytest.raises(ValueError, match="max_batch"):
        StationConfig(max_batch=0)
    with pytest.raises(ValueError, match="batch_window_ms"):
        StationConfig(batch_window_ms=-1)


def test_station_with_an_exported_model_answers_concurrent_parts_like_alone(fitted_inspector, synth_category,
                                                                            tmp_path):
    """A real exported model in a real station, six parts sent at once from six threads:
    every part gets the verdict and score the model gives it alone."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from lineguard import Inspector
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Part, Station
    from lineguard.runtime.onnx_export import export_onnx
    model = tmp_path / "cell.onnx"
    export_onnx(fitted_inspector, model)
    alone = Inspector.load(model)
    files = sorted(synth_category.glob("test/*/*.png"))[::3][:6]
    want = {str(f): alone.inspect(f) for f in files}
    st = Station(StationConfig(data_dir=tmp_path / "st"))
    try:
        st.ensure_model(str(model), "cell")
        got: dict = {}

        def send(f):
            got[str(f)] = st.inspect(f.read_bytes(), Part(f"p-{f.parent.name}-{f.name}", "L1", "S1", "cell")).record

        threads = [threading.Thread(target=send, args=(f,)) for f in files]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert set(got) == set(want)
        for name, rec in got.items():
            assert rec.verdict == want[name].verdict.value
            assert rec.score == pytest.approx(want[name].score, rel=1e-5)
            assert rec.timings_ms["station_batch"] >= 1
    finally:
        st.close()


# -- issue #11 item 11: no caller waits for ever ---------------------------------------

def test_a_part_sent_after_close_fails_at_once():
    insp = GatedInspector(lanes=2)
    insp.gate.set()
    b = ModelBatcher(insp)
    b.close()
    from lineguard.line.batcher import BatcherClosed
    done = threading.Event()
    err = []

    def send():
        try:
            b.inspect(_part(1))
        except Exception as exc:  # noqa: BLE001
            err.append(exc)
        done.set()

    threading.Thread(target=send, daemon=True).start()
    assert done.wait(5), "a part queued after close blocked its caller"
    assert isinstance(err[0], BatcherClosed)


def test_a_stuck_model_times_out_its_callers():
    insp = GatedInspector(lanes=1)          # the gate is never opened: the model hangs
    b = ModelBatcher(insp, timeout_s=0.2)
    from lineguard.line.batcher import ModelTimeout
    with pytest.raises(ModelTimeout):
        b.inspect(_part(1))
    insp.gate.set()
    b.close()


def test_a_short_result_list_fails_every_part_of_the_batch():
    class Short(GatedInspector):
        def inspect_batch(self, images):
            self._wait_first()
            return [self._judge(im) for im in images][:-1]   # one answer missing

    insp = Short(lanes=2)
    b = ModelBatcher(insp, max_batch=4, timeout_s=5)
    answers = _send_while_busy(b, insp, [1, 2, 3])
    assert answers[0].result.score == 0
    assert all(isinstance(answers[v], RuntimeError) and "3 parts" in str(answers[v]) for v in (1, 2, 3))
    b.close()
