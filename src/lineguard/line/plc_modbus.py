"""The PLC handshake over Modbus TCP: the PLC triggers, the station answers OK / NG.

Register map (unit id 1; addresses are 0-based as sent on the wire; "PLC" = written by
the PLC, "station" = written by the station and read-only for the PLC):

Coils (PLC writes, function 05/15)

====  ============  ===========================================================
 0    Trigger       rising edge: inspect the next image now
 1    ResultsAck    rising edge: the PLC has read the result; ResultsValid drops
 2    ClearError    rising edge: clear Error and ErrorCode
====  ============  ===========================================================

Discrete inputs (station writes, function 02)

====  ============  ===========================================================
 0    TriggerReady  a trigger now is accepted (not busy, no unacknowledged result, no error)
 1    Busy          a triggered part is being inspected
 2    ResultsValid  the result registers hold the answer to the last trigger;
                    stays high until ResultsAck
 3    OK            the part passed (only with ResultsValid)
 4    NG            reject the part (only with ResultsValid): NG or REVIEW verdict,
                    or no verdict in time, or a fault
 5    Error         a fault the PLC must see; see ErrorCode, cleared by ClearError
====  ============  ===========================================================

Holding registers (PLC writes, function 03/06/16)

====  ============  ===========================================================
 0    RecipeId      the product to inspect (see ``recipes``), taken at the trigger
 1-2  PartTag       the PLC's number of the part (uint32, high word first), echoed
                    in the result so a result is matched to its part
====  ============  ===========================================================

Input registers (station writes, function 04)

=====  ==============  =======================================================
 0-1   InspectionId    the stored inspection's id (uint32, high word first; 0: none)
 2     ResultCode      see :class:`ResultCode`
 3     ScoreX1000      anomaly score x 1000 (clipped to 65535)
 4     ProcessingMs    trigger to result, ms (clipped to 65535)
 5     ErrorCode       0 or the :class:`ResultCode` of the fault (with Error)
 6     ActiveRecipe    the recipe the station has in effect
 7-8   PartTag         the PartTag latched at the trigger this result answers
 9     TriggerSeq      the station's trigger count (uint16, wraps) of this result
=====  ==============  =======================================================

The handshake: PLC waits for TriggerReady, writes RecipeId/PartTag, raises Trigger;
the station drops TriggerReady, raises Busy, takes an image and judges it; it writes
the result registers first, then OK/NG, then drops Busy and raises ResultsValid;
the PLC reads, raises ResultsAck (and drops Trigger); the station clears ResultsValid,
OK, NG and raises TriggerReady again.

Safety: a part without a verdict inside the inspection window is answered NG with
ResultCode 10 (the part is rejected, not passed); the late verdict is still stored but
never sent, because the answer belongs to a trigger number, so it can never be taken
for the next part. Every answer is recorded in ``line_signals`` with its reason and
goes out through the outbox (event ``line_signal``).
"""
from __future__ import annotations

import asyncio
import enum
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Optional

from .errors import ModelLoadFailed, NotFound, StationError, StorageUnavailable
from .orm import LineSignal, utcnow
from .outbox import record_event

log = logging.getLogger("lineguard.plc")

ImageSource = Callable[[], tuple[bytes, str]]

# coils
TRIGGER, RESULTS_ACK, CLEAR_ERROR = 0, 1, 2
# discrete inputs
TRIGGER_READY, BUSY, RESULTS_VALID, OK_BIT, NG_BIT, ERROR = 0, 1, 2, 3, 4, 5
# holding registers
HR_RECIPE, HR_PART_TAG = 0, 1
# input registers
IR_INSPECTION_ID, IR_RESULT_CODE, IR_SCORE, IR_PROCESSING_MS, IR_ERROR_CODE, IR_ACTIVE_RECIPE, IR_PART_TAG, \
    IR_TRIGGER_SEQ = 0, 2, 3, 4, 5, 6, 7, 9


class ResultCode(enum.IntEnum):
    NONE = 0
    OK = 1
    NG = 2
    REVIEW = 3              # judged REVIEW: NG bit set, the part goes to a person
    TIMEOUT = 10            # no verdict inside the inspection window
    NO_IMAGE = 11           # the image source had no new image or failed (camera lost)
    MODEL_FAULT = 12        # no active model for the recipe's product, or it cannot load
    STORAGE_FAULT = 13      # the record could not be stored
    UNKNOWN_RECIPE = 14     # RecipeId is not in the station's recipe table
    BAD_IMAGE = 15          # the image was refused (corrupt, too large)
    NOT_READY = 20          # Trigger while TriggerReady was low


def newest_image_source(folder: Path | str) -> ImageSource:
    """The newest image file of ``folder`` not yet inspected (a camera saving into a folder).

    Raises ``LookupError`` when there is no new image: the trigger is answered NG with
    NO_IMAGE rather than judging the previous part's photo again.
    """
    folder = Path(folder)
    suffixes = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
    last: dict[str, Any] = {"sig": None}

    def take() -> tuple[bytes, str]:
        try:
            files = [p for p in folder.iterdir() if p.suffix.lower() in suffixes and p.is_file()]
        except OSError as exc:
            raise LookupError(f"image folder {folder} cannot be read ({exc.strerror or exc})") from exc
        if not files:
            raise LookupError(f"no image in {folder}")
        newest = max(files, key=lambda p: (p.stat().st_mtime_ns, p.name))
        st = newest.stat()
        sig = (newest.name, st.st_mtime_ns, st.st_size)
        if sig == last["sig"]:
            raise LookupError(f"no new image in {folder} since {newest.name}")
        data = newest.read_bytes()
        last["sig"] = sig
        return data, newest.name

    return take


class _Block:
    """A pymodbus data block that tells the station when the PLC writes to it."""

    def __new__(cls, size: int, on_write: Optional[Callable[[int, list], None]] = None):
        from pymodbus.datastore import ModbusSequentialDataBlock

        class Block(ModbusSequentialDataBlock):
            def setValues(self, address, values):  # noqa: N802 - pymodbus's name
                super().setValues(address, values)
                if on_write is not None:
                    on_write(address - 1, list(values) if isinstance(values, list) else [values])

        # pymodbus's context adds 1 to every wire address: the block starts at 1
        return Block(1, [0] * size)


class ModbusStation:
    """A Modbus TCP server that runs the trigger / result handshake for one station."""

    def __init__(self, station: Any, image_source: ImageSource, recipes: dict[int, str], line: str,
                 station_name: str = "plc", host: str = "127.0.0.1", port: int = 502,
                 window_ms: float = 1000.0, initial_recipe: Optional[int] = None):
        if not recipes:
            raise ValueError("give at least one recipe: RecipeId -> product, e.g. {1: 'cell'}")
        for rid in recipes:
            if not 0 <= int(rid) <= 65535:
                raise ValueError(f"recipe id {rid} does not fit a Modbus register (0..65535)")
        if window_ms <= 0:
            raise ValueError(f"the inspection window must be positive, got {window_ms} ms")
        self.station = station
        self.image_source = image_source
        self.recipes = {int(k): v for k, v in recipes.items()}
        self.line = line
        self.station_name = station_name
        self.host, self.port = host, port
        self.window_s = window_ms / 1000.0
        self._lock = threading.RLock()
        self._coils = _Block(8, self._plc_wrote_coils)
        self._di = _Block(8)
        self._hr = _Block(8, self._plc_wrote_registers)
        self._ir = _Block(16)
        self._prev_coils = [0, 0, 0]
        self._seq = 0
        self._pending: Optional[dict[str, Any]] = None     # the trigger awaiting its answer
        self._result_valid = False
        self._error_code = 0
        self.error: Optional[str] = None
        self.counts = {"triggers": 0, "ok": 0, "ng": 0, "timeouts": 0, "faults": 0}
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="plc-inspect")
        self._recorder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plc-record")
        first = initial_recipe if initial_recipe is not None else min(self.recipes)
        self._hr.values[HR_RECIPE] = first
        self._recipe = first
        self._set_ir(IR_ACTIVE_RECIPE, [first])
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._server: Any = None
        self._thread: Optional[threading.Thread] = None
        self._update_ready()

    # -- the server ----------------------------------------------------------------------
    def start(self, timeout_s: float = 10.0) -> "ModbusStation":
        from pymodbus.datastore import ModbusServerContext, ModbusSlaveContext
        from pymodbus.server import ModbusTcpServer
        ctx = ModbusServerContext(slaves=ModbusSlaveContext(di=self._di, co=self._coils, hr=self._hr, ir=self._ir),
                                  single=True)
        started = threading.Event()
        failed: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            async def listen() -> None:
                # built inside the loop: pymodbus binds its transport to the running loop
                self._server = ModbusTcpServer(ctx, address=(self.host, self.port))
                await self._server.serve_forever(background=True)

            try:
                loop.run_until_complete(listen())
            except BaseException as exc:  # noqa: BLE001 - reported to start()
                failed.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="plc-modbus", daemon=True)
        self._thread.start()
        started.wait(timeout_s)
        if failed or self._server is None or self._server.transport is None:
            why = failed[0] if failed else "it did not start"
            raise RuntimeError(f"the Modbus server cannot listen on {self.host}:{self.port} ({why}); "
                               "choose a free --modbus-port (502 needs root)")
        log.info("Modbus TCP PLC handshake on %s:%s (line %s)", self.host, self.port, self.line)
        return self

    def close(self) -> None:
        with self._lock:
            if self._pending is not None and "timer" in self._pending:
                self._pending["timer"].cancel()
        if self._loop is not None and self._server is not None:
            fut = asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop)
            try:
                fut.result(5)
            except Exception:  # noqa: BLE001 - closing anyway
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._pool.shutdown(wait=True, cancel_futures=False)
        self._recorder.shutdown(wait=True)

    # -- bits and registers --------------------------------------------------------------
    def _set_di(self, addr: int, value: bool) -> None:
        self._di.values[addr] = bool(value)

    def _set_ir(self, addr: int, values: list[int]) -> None:
        for i, v in enumerate(values):
            self._ir.values[addr + i] = int(v) & 0xFFFF

    def _update_ready(self) -> None:
        ready = self._pending is None and not self._result_valid and self._error_code == 0
        self._set_di(TRIGGER_READY, ready)
        self._set_di(BUSY, self._pending is not None)
        self._set_di(ERROR, self._error_code != 0)
        self._set_ir(IR_ERROR_CODE, [self._error_code])

    def snapshot(self) -> dict[str, Any]:
        """The bits and registers as the PLC sees them (tests, /health)."""
        with self._lock:
            return {"trigger_ready": bool(self._di.values[TRIGGER_READY]), "busy": bool(self._di.values[BUSY]),
                    "results_valid": bool(self._di.values[RESULTS_VALID]), "error": bool(self._di.values[ERROR]),
                    "error_code": self._error_code, "error_message": self.error, "recipe": self._recipe,
                    "port": self.port, **self.counts}

    # -- PLC writes ----------------------------------------------------------------------
    def _plc_wrote_registers(self, addr: int, values: list) -> None:
        # Recipe switch: taken when written, so ActiveRecipe confirms it to the PLC
        if addr <= HR_RECIPE < addr + len(values):
            rid = int(self._hr.values[HR_RECIPE])
            with self._lock:
                if rid in self.recipes:
                    self._recipe = rid
                    self._set_ir(IR_ACTIVE_RECIPE, [rid])
                else:
                    self._fault(ResultCode.UNKNOWN_RECIPE, f"RecipeId {rid} is not a recipe of this station "
                                f"(known: {sorted(self.recipes)}); write a known RecipeId, then ClearError")

    def _plc_wrote_coils(self, addr: int, values: list) -> None:
        with self._lock:
            now = [int(bool(v)) for v in self._coils.values[:3]]
            rising = [now[i] and not self._prev_coils[i] for i in range(3)]
            self._prev_coils = now
            if rising[CLEAR_ERROR]:
                self._clear_error()
            if rising[RESULTS_ACK]:
                self._ack()
            if rising[TRIGGER]:
                self._trigger()

    def _clear_error(self) -> None:
        if self._error_code:
            log.info("PLC cleared error %s", self._error_code)
        self._error_code = 0
        self.error = None
        self.station.faults.pop("plc", None)
        self._update_ready()

    def _ack(self) -> None:
        self._result_valid = False
        for bit in (RESULTS_VALID, OK_BIT, NG_BIT):
            self._set_di(bit, False)
        self._update_ready()

    def _fault(self, code: ResultCode, message: str) -> None:
        self._error_code = int(code)
        self.error = message
        self.counts["faults"] += 1
        self.station.faults["plc"] = f"PLC error {int(code)} ({code.name}): {message}"
        log.error("PLC fault %s: %s", code.name, message)
        self._update_ready()

    def _trigger(self) -> None:
        self._seq = (self._seq + 1) & 0xFFFF
        seq = self._seq
        tag = (int(self._hr.values[HR_PART_TAG]) << 16) | int(self._hr.values[HR_PART_TAG + 1])
        trig = {"seq": seq, "tag": tag, "recipe": self._recipe, "t0": time.perf_counter(), "at": utcnow()}
        self.counts["triggers"] += 1
        if self._pending is not None or self._result_valid or self._error_code:
            why = ("a part is still being inspected" if self._pending is not None else
                   "the last result was not acknowledged (raise ResultsAck first)" if self._result_valid else
                   "the station is in error (raise ClearError first)")
            if self._error_code == 0:
                self._fault(ResultCode.NOT_READY, f"Trigger while TriggerReady was low: {why}")
            # This part still gets an answer, NG, unless an earlier part's is waiting to be read
            if not self._result_valid and self._pending is None:
                self._answer(trig, ResultCode(self._error_code), None, reason=why)
            return
        self._pending = trig
        self._set_di(TRIGGER_READY, False)
        self._set_di(BUSY, True)
        self._pool.submit(self._inspect, trig)
        timer = threading.Timer(self.window_s, self._window_closed, args=(seq,))
        timer.daemon = True
        timer.start()
        trig["timer"] = timer

    # -- the inspection ------------------------------------------------------------------
    def _inspect(self, trig: dict[str, Any]) -> None:
        from .station import Part
        product = self.recipes[trig["recipe"]]
        try:
            data, name = self.image_source()
        except Exception as exc:  # noqa: BLE001 - camera lost, empty folder: a fault the PLC sees
            self._done(trig, ResultCode.NO_IMAGE, None, f"no image for the trigger: {exc}", fault=True)
            return
        part_id = f"{self.station_name}-{trig['at'].strftime('%Y%m%dT%H%M%S%f')}-{trig['seq']}"
        if trig["tag"]:
            part_id = f"{self.station_name}-tag{trig['tag']}-{trig['seq']}"
        try:
            out = self.station.inspect(data, Part(part_id, self.line, self.station_name, product),
                                       source="plc")
        except (ModelLoadFailed, NotFound) as exc:
            self._done(trig, ResultCode.MODEL_FAULT, None, f"{exc.message}", fault=True)
            return
        except StorageUnavailable as exc:
            self._done(trig, ResultCode.STORAGE_FAULT, None, exc.message, fault=True)
            return
        except StationError as exc:
            self._done(trig, ResultCode.BAD_IMAGE, None, f"image {name} refused: {exc.message}")
            return
        except Exception as exc:  # noqa: BLE001 - anything else is a station fault, the part is rejected
            log.exception("PLC trigger %s failed", trig["seq"])
            self._done(trig, ResultCode.MODEL_FAULT, None, f"{type(exc).__name__}: {exc}", fault=True)
            return
        rec = out.record
        code = {"OK": ResultCode.OK, "NG": ResultCode.NG}.get(rec.verdict, ResultCode.REVIEW)
        self._done(trig, code, rec, None)

    def _done(self, trig: dict[str, Any], code: ResultCode, rec: Any, reason: Optional[str],
              fault: bool = False) -> None:
        with self._lock:
            if self._pending is None or self._pending["seq"] != trig["seq"]:
                # The window closed first: this part was already answered NG (timeout). The
                # verdict is stored, never sent: it would be read as the next part's.
                log.warning("trigger %s judged after its window (%s); the PLC was told NG", trig["seq"],
                            code.name)
                if rec is not None:
                    self._recorder.submit(self._record_late, trig, rec.id)
                return
            trig["timer"].cancel()
            if fault:
                self._fault(code, reason or code.name)
            self._answer(trig, code, rec, reason=reason)

    def _window_closed(self, seq: int) -> None:
        with self._lock:
            if self._pending is None or self._pending["seq"] != seq:
                return
            trig = self._pending
            self.counts["timeouts"] += 1
            self._answer(trig, ResultCode.TIMEOUT, None,
                         reason=f"no verdict within the inspection window of {self.window_s * 1000:.0f} ms")

    def _answer(self, trig: dict[str, Any], code: ResultCode, rec: Any, reason: Optional[str]) -> None:
        """Write the result for ``trig``: registers first, then OK/NG, then ResultsValid."""
        ok = code == ResultCode.OK
        ms = (time.perf_counter() - trig["t0"]) * 1000
        inspection_id = rec.id if rec is not None else 0
        score = int(min(65535, max(0, round(float(rec.score) * 1000)))) if rec is not None else 0
        self._set_ir(IR_INSPECTION_ID, [(inspection_id >> 16) & 0xFFFF, inspection_id & 0xFFFF])
        self._set_ir(IR_RESULT_CODE, [int(code)])
        self._set_ir(IR_SCORE, [score])
        self._set_ir(IR_PROCESSING_MS, [min(65535, int(round(ms)))])
        self._set_ir(IR_PART_TAG, [(trig["tag"] >> 16) & 0xFFFF, trig["tag"] & 0xFFFF])
        self._set_ir(IR_TRIGGER_SEQ, [trig["seq"]])
        self._set_di(OK_BIT, ok)
        self._set_di(NG_BIT, not ok)
        self._pending = None
        self._result_valid = True
        self._set_di(BUSY, False)
        self._set_di(RESULTS_VALID, True)
        self._update_ready()
        self.counts["ok" if ok else "ng"] += 1
        # stored off the handshake path (and off the Modbus thread): in trigger order, one writer
        self._recorder.submit(self._record, trig, code, "OK" if ok else "NG", inspection_id or None, reason)

    # -- what the PLC was told, kept ------------------------------------------------------
    def _record(self, trig: dict[str, Any], code: ResultCode, signal: str, inspection_id: Optional[int],
                reason: Optional[str]) -> None:
        row = LineSignal(protocol="modbus", line=self.line, station=self.station_name, trigger_seq=trig["seq"],
                         part_tag=trig["tag"], recipe_id=trig["recipe"], product=self.recipes.get(trig["recipe"]),
                         inspection_id=inspection_id, signal=signal, result_code=int(code), reason=reason,
                         triggered_at=trig["at"], answered_at=utcnow())
        try:
            with self.station.db.session() as s:
                s.add(row)
                s.flush()
                trig["signal_id"] = row.id
                record_event(s, "line_signal", self.line, {
                    "line": self.line, "station": self.station_name, "protocol": "modbus",
                    "trigger_seq": trig["seq"], "part_tag": trig["tag"], "recipe_id": trig["recipe"],
                    "product": row.product, "inspection_id": inspection_id, "signal": signal,
                    "result_code": int(code), "result": code.name, "reason": reason})
            self.station.sinks.wake()
        except Exception as exc:  # noqa: BLE001 - the PLC has its answer; the log keeps what was lost
            log.error("line signal of trigger %s (%s, %s) not recorded: %s", trig["seq"], signal, code.name, exc)

    def _record_late(self, trig: dict[str, Any], inspection_id: int) -> None:
        sid = trig.get("signal_id")
        if sid is None:
            return
        try:
            with self.station.db.session() as s:
                row = s.get(LineSignal, sid)
                if row is not None:
                    row.late_inspection_id = inspection_id
        except Exception as exc:  # noqa: BLE001
            log.error("late verdict of trigger %s not linked: %s", trig["seq"], exc)
