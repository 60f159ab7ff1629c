"""Reports and exports take turns, so a line's parts never wait behind them.

Every synchronous route (a part's upload as much as a month's SPC chart or a full CSV
export) runs in one shared thread pool of 40. Forty dashboards or exports opened at once
filled it, and parts sent meanwhile waited minutes (11 of 20 had no answer within 120 s
on a 200,000-part PostgreSQL station; some were recorded after their sender gave up).
Here, before a report is handed to that pool, it takes one of ``report_slots`` (2)
slots, waiting in the event loop, which holds no thread; one that waits longer than
``WAIT_S`` is answered 503 with Retry-After, as a busy station would.

A streamed parts export holds its slot for its whole download (a year of parts is
minutes): two of them held both slots, and the shift report and the SPC charts waited
the 30 s into a 503 (the p-chart took 14.5 s where it had a turn). Exports take at most
``report_slots - 1`` of the slots (all of one when there is only one): one slot is
always left for the short reports.

A plain ASGI middleware, like the upload limit in :mod:`.app`: only the paths below are
counted, every other request goes straight through.
"""
from __future__ import annotations

import asyncio
from typing import Any, Optional

from fastapi.responses import JSONResponse

# what reads many parts' records: the SPC charts, the shift report, the parts export
REPORT_PATHS = ("/api/v1/spc/", "/api/v1/reports/", "/api/v1/inspections/export")
# the long ones: streamed for as long as the download lasts
EXPORT_PATHS = ("/api/v1/inspections/export",)
WAIT_S = 30.0


def export_slots(slots: int) -> int:
    """How many of ``slots`` the exports may hold at once: all but one, at least one."""
    return max(1, slots - 1)


class ReportSlots:
    def __init__(self, app: Any):
        self.app = app
        # one set of slots per event loop: an asyncio semaphore that ever made a request
        # wait belongs to that loop, and the same app served again on another (an embedding,
        # a server restarted in one process) failed every report with a RuntimeError
        self._slots: Optional[asyncio.Semaphore] = None
        self._exports: Optional[asyncio.Semaphore] = None      # the exports' share of them
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(REPORT_PATHS):
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        if self._slots is None or self._loop is not loop:
            st = scope["app"].state.station if "app" in scope else None
            n = st.config.report_slots if st is not None else 2
            self._slots = asyncio.Semaphore(n)
            self._exports = asyncio.Semaphore(export_slots(n))
            self._loop = loop
        # the ones this request takes a slot of are the ones it gives back
        slots, exports = self._slots, self._exports
        assert exports is not None
        held: list[asyncio.Semaphore] = []
        deadline = loop.time() + WAIT_S
        try:
            # an export takes its share first, so a waiting export never holds a slot
            for sem in ((exports, slots) if scope["path"].startswith(EXPORT_PATHS) else (slots,)):
                await asyncio.wait_for(sem.acquire(), max(0.01, deadline - loop.time()))
                held.append(sem)
        except asyncio.TimeoutError:
            for sem in held:
                sem.release()
            busy = ("the station is busy with other reports and exports; try again in a moment "
                    "(serve --report-slots sets how many run at once; exports take all but one of them)")
            await JSONResponse({"error": {"code": "busy", "message": busy}, "detail": busy}, status_code=503,
                               headers={"Retry-After": "10"})(scope, receive, send)
            return
        except BaseException:
            for sem in held:
                sem.release()
            raise
        try:
            await self.app(scope, receive, send)
        finally:
            for sem in reversed(held):
                sem.release()
