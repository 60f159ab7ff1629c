"""line-sim counts the parts a slow station made late as overruns (walk: 80 parts at 40/s,
due 25 ms apart and judged in 50-200 ms each, were reported "overruns 0": the simulator
waits for each answer before the next trigger, so TriggerReady was always high by the time
the next, already late, part went out)."""
from __future__ import annotations

import time

from lineguard.line import plc_sim


class _SlowStation:
    """A station that judges each part in 100 ms and is otherwise always ready, as the walk's
    was between parts: the simulator's PLC side, without a network."""

    JUDGE_S = 0.1

    def __init__(self) -> None:
        self.part_id = 0
        self.answered_at: float | None = None

    def ready(self) -> bool:
        return self.answered_at is None

    def trigger(self, part_id: int) -> None:
        self.part_id = part_id
        self.answered_at = time.perf_counter() + self.JUDGE_S

    def result_valid(self) -> bool:
        return self.answered_at is not None and time.perf_counter() >= self.answered_at

    def read_result(self) -> dict:
        return {"inspection_id": self.part_id, "code": 1, "score": 0.1, "ms": 100.0, "part_id": self.part_id,
                "seq": self.part_id}

    def ack(self) -> None:
        self.answered_at = None

    def not_ready_reason(self) -> str:
        return "a part is still being inspected"


def test_parts_due_while_the_station_still_judges_the_last_one_are_overruns():
    # 40 parts a second asked, 10 at most possible: every part after the first came while the
    # one before it was still being judged, and went out later than its time by more than a
    # period (a slower machine only makes them later)
    rep = plc_sim.run(_SlowStation(), parts=6, rate=40, feeder=None, window_ms=1000, say=lambda _t: None)
    assert rep.stopped is None, rep.stopped
    assert rep.overruns == 5, (
        f"{rep.overruns} overruns counted for 5 parts that came while the station was still judging the part "
        "before: line-sim reports a line the station cannot keep up with as keeping up")
    summary = rep.summary()
    assert summary["rate_kept"] is False, summary
    assert summary["rate"].endswith("/s of 40/s asked"), summary["rate"]
    # the first part went out on time: the simulator's own first steps are no overrun, and
    # the lateness reported is that of the parts after it
    assert summary["max_send_delay_ms"] > 1000 / 40, summary
