"""The housekeeping thread the disk keeper, store sweep, backups and record keeper share:
a first run after its wait, one on request, a failed run retried sooner, and a close that
ends the thread even while the wait is a day long."""
from __future__ import annotations

import threading

from lineguard.line.periodic import PeriodicJob

DAY = 86400.0


class _Job(PeriodicJob):
    thread_name = "lg-test-job"

    def __init__(self, every_s=DAY, first_after_s=DAY, fail=0, hold=None):
        super().__init__(every_s, first_after_s)
        self.runs = 0
        self.fail = fail                  # runs that raise first
        self.hold = hold                  # an Event the run waits on (a long run)
        self.started = threading.Event()
        self.ran = threading.Semaphore(0)

    def run_once(self):
        self.started.set()
        if self.hold is not None:
            self.hold.wait(10)
        self.runs += 1
        self.ran.release()
        if self.runs <= self.fail:
            raise OSError("the share is away")


def test_a_job_waits_its_first_wait_runs_when_asked_and_closes_at_once():
    job = _Job().start()
    assert not job.ran.acquire(timeout=0.2) and job.runs == 0      # a day before the first run
    job.soon()
    assert job.ran.acquire(timeout=5) and job.runs == 1
    assert not job.ran.acquire(timeout=0.2)                         # then a day again
    job.close()
    assert not job._thread.is_alive()


def test_a_failed_run_is_retried_after_retry_after_s_and_logged(caplog):
    job = _Job(first_after_s=0, fail=1)
    job.retry_after_s = 0.05            # (an hour for the record keeper)
    job.what = "deleting old records"
    job.start()
    try:
        assert job.ran.acquire(timeout=5) and job.ran.acquire(timeout=5)   # failed, then again soon
        assert job.runs == 2
        assert "deleting old records failed; tried again in 0 s" in caplog.text
        assert not job.ran.acquire(timeout=0.2)                      # worked: the usual day's wait
    finally:
        job.close()


def test_asked_during_a_run_runs_again_only_where_the_job_says_so():
    for again, runs in ((False, 1), (True, 2)):
        hold = threading.Event()
        job = _Job(first_after_s=0, hold=hold)
        job.again_if_asked_during_run = again
        job.start()
        try:
            assert job.started.wait(5)
            job.soon()                    # asked while the first run holds
            hold.set()
            assert job.ran.acquire(timeout=5)
            assert job.ran.acquire(timeout=5 if again else 0.2) is again
            assert job.runs == runs
        finally:
            job.close()


def test_closed_during_a_run_the_thread_ends_at_the_runs_end_not_a_day_later():
    for again in (False, True):
        hold = threading.Event()
        job = _Job(first_after_s=0, hold=hold)        # every_s: a day
        job.again_if_asked_during_run = again
        job.join_s = 5.0
        job.start()
        assert job.started.wait(5)
        threading.Timer(0.2, hold.set).start()        # the run ends while close() waits for it
        job.close()
        assert not job._thread.is_alive() and job.runs == 1
