"""The PLC handshake over Modbus TCP: the PLC triggers, the station answers OK / NG.

Register map (unit id 1; addresses are 0-based as sent on the wire; "PLC" = written by
the PLC, "station" = written by the station and read-only for the PLC):

Coils (PLC writes, function 05/15)

====  ============  ===========================================================
 0    Trigger       rising edge: inspect the next image now
 1    ResultsAck    rising edge: the PLC has read the result; ResultsValid drops
 2    ClearError    rising edge: clear Error and ErrorCode
 3    AlarmAck      rising edge: acknowledge this station's line alarms (line.alarms)
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
 6    Verified      this shift's test parts all got their verdicts at this station
                    (VerificationState 3): the line's interlock may require it
 7    Alarm         a line alarm at this station is not yet acknowledged (AlarmCode
                    not 0): the line may stop on it
====  ============  ===========================================================

Holding registers (PLC writes, function 03/06/16)

====  ============  ===========================================================
 0    RecipeId      the product to inspect (see ``recipes``), taken when written
                    and again at the trigger; 0 (unless a recipe is numbered 0):
                    none named, the recipe in effect stays (a PLC's power-up
                    value). Any other id not in the table latches Error 14, which
                    ClearError does not clear while RecipeId still names no recipe
 1-2  PartTag       the PLC's number of the part (uint32, high word first), echoed
                    in the result so a result is matched to its part
 3    AlarmAckCause what the alarms turned out to be, taken at AlarmAck's rising
                    edge and cleared to 0 there (write it before AlarmAck, each
                    time): 0 not said, 1 process, 2 material, 3 handling, 4
                    camera, 5 model (a false alarm), 6 other; 7 on: the
                    plant's own (line.alarm_causes)
 4    AlarmAckKinds which alarms AlarmAck acknowledges, AlarmCode's bits (1 the NG
                    run, 2 the NG rate, 4 the photos, 8 the rejects without a
                    verdict, 16 a test part judged wrong, 32 part scores
                    drifting; 0: every one), taken and cleared like
                    AlarmAckCause
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
 9     TriggerSeq      the station's trigger count of this result, its low 16 bits
                       (uint16, wraps; line_signals and OPC UA keep the full count)
 10    Verification    this shift's test-part verification for the active recipe's
                       product (:class:`VerificationState`): 0 no test parts, 1 due,
                       2 incomplete, 3 passed, 4 failed, 5 unknown (not read: the
                       database away); read every 10 s, at each shift start, at once
                       after a test part's answer (4 with a wrong one's answer) or a
                       test part registered or retired here, and
                       5 from a recipe change until read for the new product
 11    AlarmCode       this station's active line alarms: bit 0 a run of rejected
                       parts, bit 1 a high NG rate, bit 2 photos the model cannot
                       judge (check the camera), bit 3 parts answered NG without
                       a verdict (timeouts, faults), bit 4 a test part judged
                       wrong, bit 5 part scores drifting (check the lens, the
                       lamp, the focus before parts are rejected or passed
                       wrongly) (0: none); set with the answer
                       of the part that raised it, cleared once acknowledged (the
                       app, the API or AlarmAck)
=====  ==============  =======================================================

The handshake: PLC waits for TriggerReady, writes RecipeId/PartTag, raises Trigger;
the station drops TriggerReady, raises Busy, takes an image and judges it; it writes
the result registers first, then OK/NG, then drops Busy and raises ResultsValid;
the PLC reads, raises ResultsAck (and drops Trigger); the station clears ResultsValid,
OK, NG and raises TriggerReady again.

A RecipeId that names no recipe latches ErrorCode 14 and holds it: ClearError leaves the
station in Error 14 until a known RecipeId (or 0) is written, so a part is never judged
with the recipe in effect before it (ClearError made the station ready while RecipeId
still named no recipe, and the next part was judged, and passed, as the old product).

A Trigger while TriggerReady is low latches Error with ErrorCode 20. Where an earlier
result is unread or a part still in inspection, the new part gets no answer of its own:
OK and NG drop while Error 20 is latched (the error is its answer: take the part off
the line), it takes no TriggerSeq, and its ``line_signals`` row says code 20.

Safety: a part without a verdict inside the inspection window is answered NG with
ResultCode 10 (the part is rejected, not passed); the late verdict is still stored but
never sent, because the answer belongs to a trigger number, so it can never be taken
for the next part. Every answer is recorded in ``line_signals`` with its reason and
goes out through the outbox (event ``line_signal``).
"""
from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Callable, Optional

from .plc_handshake import Answer, Handshake, ImageSource, ResultCode, VerificationState, newest_image_source

__all__ = ["ModbusStation", "ResultCode", "newest_image_source", "ImageSource"]

log = logging.getLogger("lineguard.plc")

# coils
TRIGGER, RESULTS_ACK, CLEAR_ERROR, ALARM_ACK = 0, 1, 2, 3
# discrete inputs
TRIGGER_READY, BUSY, RESULTS_VALID, OK_BIT, NG_BIT, ERROR, VERIFIED, ALARM = 0, 1, 2, 3, 4, 5, 6, 7
# holding registers
HR_RECIPE, HR_PART_TAG, HR_ALARM_ACK_CAUSE, HR_ALARM_ACK_KINDS = 0, 1, 3, 4
# RecipeId 0 names no recipe (a PLC's registers at power-up): the recipe in effect stays,
# unless the station's recipe table has a recipe 0
KEEP_RECIPE = 0
# input registers
IR_INSPECTION_ID, IR_RESULT_CODE, IR_SCORE, IR_PROCESSING_MS, IR_ERROR_CODE, IR_ACTIVE_RECIPE, IR_PART_TAG, \
    IR_TRIGGER_SEQ, IR_VERIFICATION, IR_ALARM_CODE = 0, 2, 3, 4, 5, 6, 7, 9, 10, 11


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

    protocol = "modbus"

    def __init__(self, station: Any, image_source: ImageSource, recipes: dict[int, str], line: str,
                 station_name: str = "plc", host: str = "127.0.0.1", port: int = 502,
                 window_ms: float = 1000.0, initial_recipe: Optional[int] = None, verify_every_s: float = 10.0):
        self.hs = Handshake(station, image_source, recipes, line, station_name, window_ms, protocol="modbus",
                            initial_recipe=initial_recipe, verify_every_s=verify_every_s)
        self.station = station
        self.line = line
        self.host, self.port = host, port
        self._coils = _Block(8, self._plc_wrote_coils)
        self._di = _Block(8)
        self._hr = _Block(8, self._plc_wrote_registers)
        self._ir = _Block(16)
        self._prev_coils = [0, 0, 0, 0]
        self._answer_is_refusal = False     # the result registers answer a trigger refused (Error 20)
        self._said_keep: Optional[int] = None   # the recipe RecipeId 0 was last said to keep
        self._hr.values[HR_RECIPE] = self.hs.recipe
        self.hs.answered = self._write_result
        self.hs.show = self._update_bits
        self.hs.clear_advice = self._clear_advice
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._server: Any = None
        self._thread: Optional[threading.Thread] = None
        self._update_bits()

    @property
    def error(self) -> Optional[str]:
        return self.hs.error

    @property
    def counts(self) -> dict[str, int]:
        return self.hs.counts

    # -- the server ----------------------------------------------------------------------
    def start(self, timeout_s: float = 10.0, hold: bool = False) -> "ModbusStation":
        """Listen; with ``hold`` TriggerReady stays low until ``hs.release()`` (the rest of
        the station starting)."""
        self.hs.open_spool()     # before listening: a second link like this one is refused here
        if hold:
            self.hs.hold()
        self.hs.prepare()        # its models warmed up, its trigger count read
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
            self.hs.release_spool()
            raise RuntimeError(f"the Modbus server cannot listen on {self.host}:{self.port} ({why}); "
                               "choose a free --modbus-port (502 needs root)")
        log.info("Modbus TCP PLC handshake on %s:%s (line %s)", self.host, self.port, self.line)
        self.hs.start_verification()
        return self

    def begin_stop(self) -> None:
        """A stop's first step: TriggerReady drops, the link stays open (Handshake.begin_stop).
        With two links the caller runs it on every link, then close(deadline=...) on each:
        closed one after the other, the second link took parts while the first was drained."""
        if self._loop is not None and self._server is not None:
            self.hs.begin_stop()

    def close(self, deadline: Optional[float] = None) -> None:
        """Stop the link: begin_stop (if the caller has not), then the part in inspection is
        answered and acknowledged over the link, until ``deadline`` (time.monotonic(), one
        for every link of the stop: plc_handshake.stop_deadline) or STOP_WAIT_S from now."""
        if self._loop is not None and self._server is not None:
            # the part in inspection is answered, and its answer read, over the link before it
            # closes (bounded: Handshake.drain). Before, the server stopped first and the part
            # was answered to no one, yet recorded and sent to the MES as an answer the PLC had
            self.hs.drain(self._plc_connected, deadline=deadline)
            fut = asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop)
            try:
                fut.result(5)
            except Exception:  # noqa: BLE001 - closing anyway
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._server = None      # closed once: a second close() has nothing to wait for
        if self._thread is not None:
            self._thread.join(5)
        self.hs.link_closed()    # an answer up now, or not acknowledged, is marked delivery_unknown
        self.hs.close()

    def _plc_connected(self) -> Optional[bool]:
        """Whether a PLC is connected now (None: not known). Any Modbus client counts, not
        only the PLC: an HMI or a SCADA poller on the port makes the stop wait its bound
        (STOP_WAIT_S) for a part in inspection, though no PLC will read the answer."""
        clients = getattr(self._server, "active_connections", None)
        return None if clients is None else bool(clients)

    # -- bits and registers --------------------------------------------------------------
    def _set_di(self, addr: int, value: bool) -> None:
        self._di.values[addr] = bool(value)

    def _set_ir(self, addr: int, values: list[int]) -> None:
        for i, v in enumerate(values):
            self._ir.values[addr + i] = int(v) & 0xFFFF

    def _update_bits(self) -> None:
        hs = self.hs
        # TriggerReady drops first and rises last: the PLC reads without the station's
        # lock, and must never see TriggerReady together with Busy or ResultsValid
        if not hs.ready:
            self._set_di(TRIGGER_READY, False)
        self._set_ir(IR_ACTIVE_RECIPE, [hs.recipe])
        self._set_ir(IR_ERROR_CODE, [hs.error_code])
        if not hs.result_valid:
            for bit in (RESULTS_VALID, OK_BIT, NG_BIT):
                self._set_di(bit, False)
        if (hs.error_code == ResultCode.NOT_READY or hs.refused_unanswered) and not self._answer_is_refusal:
            # a trigger came while a result was unread or a part in inspection: that part
            # got no answer, and OK beside ResultsValid (the earlier part's) passed it at a
            # PLC that does not check PartTag. Error 20 is its answer: no OK, no NG
            self._set_di(OK_BIT, False)
            self._set_di(NG_BIT, False)
        self._set_di(BUSY, hs.busy)
        self._set_di(RESULTS_VALID, hs.result_valid)
        self._set_di(ERROR, hs.error_code != 0)
        self._set_ir(IR_VERIFICATION, [int(hs.verification)])
        self._set_di(VERIFIED, hs.verification == VerificationState.PASSED)
        self._set_ir(IR_ALARM_CODE, [hs.alarm_code])
        self._set_di(ALARM, hs.alarm_code != 0)
        self._set_di(TRIGGER_READY, hs.ready)

    def _write_result(self, ans: Answer) -> None:
        """The result registers and OK/NG, written before ResultsValid is raised."""
        trig = ans.trigger
        iid = ans.inspection_id
        score = int(min(65535, max(0, round(ans.score * 1000)))) if ans.score is not None else 0
        self._set_ir(IR_INSPECTION_ID, [(iid >> 16) & 0xFFFF, iid & 0xFFFF])
        self._set_ir(IR_RESULT_CODE, [int(ans.code)])
        self._set_ir(IR_SCORE, [score])
        self._set_ir(IR_PROCESSING_MS, [min(65535, int(round(ans.processing_ms)))])
        self._set_ir(IR_PART_TAG, [(trig.tag >> 16) & 0xFFFF, trig.tag & 0xFFFF])
        self._set_ir(IR_TRIGGER_SEQ, [trig.seq])
        # none while Error 20 is latched (see _update_bits): the next part was triggered
        # meanwhile, and would pass on this part's OK
        # (a refused trigger answered NG of its own, nothing else waiting, keeps its NG)
        self._answer_is_refusal = ans.code == ResultCode.NOT_READY
        refused = ((self.hs.error_code == ResultCode.NOT_READY or self.hs.refused_unanswered)
                   and not self._answer_is_refusal)
        self._set_di(OK_BIT, ans.ok and not refused)
        self._set_di(NG_BIT, not ans.ok and not refused)

    def snapshot(self) -> dict[str, Any]:
        """The bits and registers as the PLC sees them (tests, /health)."""
        with self.hs.lock:
            return {"trigger_ready": bool(self._di.values[TRIGGER_READY]), "busy": bool(self._di.values[BUSY]),
                    "results_valid": bool(self._di.values[RESULTS_VALID]), "error": bool(self._di.values[ERROR]),
                    "error_code": self.hs.error_code, "error_message": self.hs.error, "recipe": self.hs.recipe,
                    "verification": self.hs.verification.name.lower(), "alarm_code": self.hs.alarm_code,
                    "port": self.port, **self.hs.counts, **self.hs.backlog()}

    # -- PLC writes ----------------------------------------------------------------------
    def _unknown_recipe(self) -> Optional[str]:
        """Why RecipeId names no recipe of this station, or None (a recipe, or 0: keep)."""
        rid = int(self._hr.values[HR_RECIPE])
        if rid in self.hs.recipes or rid == KEEP_RECIPE:
            return None
        known = sorted(self.hs.recipes)
        return f"RecipeId {rid} is not a recipe of this station (known: {known}); {self._recipe_fix()}"

    def _recipe_fix(self) -> str:
        # 0 keeps the recipe only where the table has no recipe 0 (there it selects recipe 0)
        keep = "" if KEEP_RECIPE in self.hs.recipes else f" (or {KEEP_RECIPE} to keep recipe {self.hs.recipe})"
        return f"write a known RecipeId{keep}, then ClearError"

    def _clear_advice(self) -> Optional[str]:
        """What clears the Error held now (Handshake.clear_advice): while RecipeId names no
        recipe, ClearError alone is refused, so a trigger meanwhile says the RecipeId first."""
        if self._unknown_recipe() is None:
            return None
        return f"RecipeId {int(self._hr.values[HR_RECIPE])} names no recipe: {self._recipe_fix()}"

    def _named_recipe(self) -> Optional[int]:
        """The recipe RecipeId names for the part triggered now (None: 0, the recipe in effect)."""
        rid = int(self._hr.values[HR_RECIPE])
        return None if rid == KEEP_RECIPE and rid not in self.hs.recipes else rid

    def _take_recipe(self) -> None:
        """RecipeId as the PLC holds it now: a known recipe selected (ActiveRecipe confirms
        it), 0 keeps the one in effect, any other id latches Error 14 (UNKNOWN_RECIPE)."""
        with self.hs.lock:
            rid = int(self._hr.values[HR_RECIPE])
            if rid not in self.hs.recipes and rid == KEEP_RECIPE:
                if self._said_keep != self.hs.recipe:
                    self._said_keep = self.hs.recipe
                    log.info("line %s: RecipeId %d names no recipe: recipe %d (%s) stays in effect", self.line, rid,
                             self.hs.recipe, self.hs.recipes[self.hs.recipe])
                return
            self._said_keep = None
            if rid != self.hs.recipe and not self.hs.select_recipe(rid):
                self.hs.fault(ResultCode.UNKNOWN_RECIPE, self._unknown_recipe() or f"RecipeId {rid} refused")

    def _plc_wrote_registers(self, addr: int, values: list) -> None:
        # Recipe switch: taken when written, so ActiveRecipe confirms it to the PLC
        if addr <= HR_RECIPE < addr + len(values):
            rid = int(self._hr.values[HR_RECIPE])
            if rid in self.hs.recipes or rid == KEEP_RECIPE:
                self._take_recipe()
            else:
                # written again while in error too: the message names the id the PLC holds now
                self.hs.fault(ResultCode.UNKNOWN_RECIPE, self._unknown_recipe() or f"RecipeId {rid} refused")

    def _plc_wrote_coils(self, addr: int, values: list) -> None:
        with self.hs.lock:
            now = [int(bool(v)) for v in self._coils.values[:4]]
            rising = [now[i] and not self._prev_coils[i] for i in range(4)]
            self._prev_coils = now
            if rising[ALARM_ACK]:
                # taken and cleared: a later plain AlarmAck is not labelled with this cause
                cause = int(self._hr.values[HR_ALARM_ACK_CAUSE])
                kinds = int(self._hr.values[HR_ALARM_ACK_KINDS])
                self._hr.values[HR_ALARM_ACK_CAUSE] = self._hr.values[HR_ALARM_ACK_KINDS] = 0
                self.hs.ack_alarms(cause, kinds)
            if rising[CLEAR_ERROR]:
                unknown = self._unknown_recipe()
                if unknown is None:
                    self.hs.clear_error()
                else:
                    # Error 14 stays: ready now, the next part was judged as the old product
                    self.hs.fault(ResultCode.UNKNOWN_RECIPE, f"ClearError refused: {unknown}")
            if rising[RESULTS_ACK]:
                self.hs.ack()
            if rising[TRIGGER]:
                tag = (int(self._hr.values[HR_PART_TAG]) << 16) | int(self._hr.values[HR_PART_TAG + 1])
                if self.hs.ready:
                    # RecipeId taken at the trigger: one naming no recipe latches Error 14 here,
                    # and the part is answered NG (14), never judged as the recipe before it
                    self._take_recipe()
                # recorded with the RecipeId the PLC wrote, also one naming no recipe (Error 14)
                self.hs.trigger(tag, recipe=self._named_recipe())
