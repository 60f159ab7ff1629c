"""The station's memory keeper: glibc keeps what the threads judging parts free in their
malloc arenas, so a station grew for hours (2 h at 4 parts/s: +114 MB, 60 MB of it free
memory a trim gave back). The keeper trims on a schedule, from the station's start to
its close."""
from __future__ import annotations

import threading

from lineguard.line.station import MemoryKeeper, return_freed_memory

DAY = 86400.0


class _Trims:
    def __init__(self, fail: int = 0):
        self.n = 0
        self.fail = fail
        self.done = threading.Semaphore(0)

    def __call__(self) -> None:
        self.n += 1
        self.done.release()
        if self.n <= self.fail:
            raise OSError("no libc here")


def test_the_keeper_trims_every_every_s_and_stops_on_close():
    trims = _Trims()
    keeper = MemoryKeeper(every_s=0.01, trim=trims).start()
    try:
        for _ in range(3):                       # a first trim after every_s, then again and again
            assert trims.done.acquire(timeout=10)
    finally:
        keeper.close()
    assert not keeper._thread.is_alive()
    after_close = trims.n
    threading.Event().wait(0.1)                  # ten periods: none comes after the close
    assert trims.n == after_close


def test_the_first_trim_waits_its_every_s_not_at_start():
    # a station that starts has nothing freed yet: the first trim is one period later
    trims = _Trims()
    keeper = MemoryKeeper(every_s=DAY, trim=trims).start()
    try:
        assert keeper.first_wait() == DAY
        assert not trims.done.acquire(timeout=0.2) and trims.n == 0
        keeper.soon()
        assert trims.done.acquire(timeout=10) and trims.n == 1
    finally:
        keeper.close()
    assert not keeper._thread.is_alive()


def test_a_trim_that_fails_is_logged_and_the_keeper_goes_on(caplog):
    trims = _Trims(fail=1)
    keeper = MemoryKeeper(every_s=0.01, trim=trims).start()
    try:
        assert trims.done.acquire(timeout=10) and trims.done.acquire(timeout=10)
    finally:
        keeper.close()
    assert "handing freed memory back to the OS failed" in caplog.text


def test_the_default_trim_is_the_stations_own():
    assert MemoryKeeper()._trim is return_freed_memory
    assert MemoryKeeper().every_s == 60.0


def test_a_station_runs_a_keeper_from_its_start_to_its_close(sqlite_station):
    st = sqlite_station()
    keeper = st.memory
    assert isinstance(keeper, MemoryKeeper)
    assert keeper._thread is not None and keeper._thread.is_alive()
    st.close()
    assert not keeper._thread.is_alive()
