"""Reports and exports take turns, so a line's parts never wait behind them.

Every synchronous route (a part's upload as much as a month's SPC chart or a full CSV
export) runs in one shared thread pool of 40. Forty dashboards or exports opened at once
filled it, and parts sent meanwhile waited minutes (11 of 20 had no answer within 120 s
on a 200,000-part PostgreSQL station; some were recorded after their sender gave up).
Here, before a report is handed to that pool, it takes one of ``report_slots`` (2)
slots, waiting in the event loop, which holds no thread; one that waits longer than
``WAIT_S`` is answered 503 with Retry-After, as a busy station would.

A plain ASGI middleware, like the upload limit in :mod:`.app`: only the paths below are
counted, every other request goes straight through.
"""
from __future__ import annotations

import asyncio
from typing import Any, Optional

from fastapi.responses import JSONResponse

# what reads many parts' records: the SPC charts, the shift report, the parts export
REPORT_PATHS = ("/api/v1/spc/", "/api/v1/reports/", "/api/v1/inspections/export")
WAIT_S = 30.0


class ReportSlots:
    def __init__(self, app: Any):
        self.app = app
        # one set of slots per event loop: an asyncio semaphore that ever made a request
        # wait belongs to that loop, and the same app served again on another (an embedding,
        # a server restarted in one process) failed every report with a RuntimeError
        self._slots: Optional[asyncio.Semaphore] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(REPORT_PATHS):
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        if self._slots is None or self._loop is not loop:
            st = scope["app"].state.station if "app" in scope else None
            self._slots = asyncio.Semaphore(st.config.report_slots if st is not None else 2)
            self._loop = loop
        slots = self._slots         # the one this request takes a slot of is the one it gives back
        try:
            await asyncio.wait_for(slots.acquire(), WAIT_S)
        except asyncio.TimeoutError:
            busy = ("the station is busy with other reports and exports; try again in a moment "
                    "(serve --report-slots sets how many run at once)")
            await JSONResponse({"error": {"code": "busy", "message": busy}, "detail": busy}, status_code=503,
                               headers={"Retry-After": "10"})(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            slots.release()
