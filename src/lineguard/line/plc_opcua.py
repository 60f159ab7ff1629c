"""The PLC handshake over OPC UA, shaped after OPC 40100-1 (Machine Vision), Simple Inline profile.

The same rules as the Modbus server (:class:`.plc_handshake.Handshake`: one part at a
time, NG on a missed inspection window, faults held until reset, every answer recorded
and sent through the outbox); here they are a vision system with a state machine,
methods and a ResultReady event. The companion specification's nodeset is not loaded
(it is large and the Simple Inline profile needs a small part of it): the nodes below
follow its names in this station's own namespace.

Namespace URI ``urn:lineguard:plc:vision`` (``ns`` below; browse names are ``ns:Name``)::

    Objects/
      VisionSystem                        (object; EventNotifier: emits ResultReady)
        VisionStateMachine/
          CurrentState      String        Preoperational | Halted | Error | Operational
          CurrentSubState   String        in Operational: Ready | SingleExecution; else ""
          Start()                         Preoperational / Halted -> Operational
          Halt()                          -> Halted (a part in inspection is still answered)
          Reset()                         Error -> Preoperational (clears ErrorCode); then Start
          StartSingleJob(PartId UInt32) -> TriggerSeq UInt32
                                          the trigger: only in Operational/Ready, else the call
                                          fails with BadInvalidState (LastRefusal says why)
        RecipeManagement/
          ActiveRecipe      UInt32        the recipe (product) in effect
          Recipes           String[]      "ID=product" for each recipe of this station
          SelectRecipe(RecipeId UInt32)   not while SingleExecution; unknown id: BadInvalidArgument
        ResultManagement/
          ResultsValid      Boolean       the variables below answer the last job; high until
                                          AcknowledgeResult
          ResultId          String        "<station>-<TriggerSeq>"
          TriggerSeq        UInt32        the station's trigger count (wraps at 65536, as Modbus)
          PartId            UInt32        the PartId given to StartSingleJob: match on it
          InspectionId      UInt32        the stored inspection (0: none: timeout or fault)
          Verdict           String        OK | NG (NG also for REVIEW, timeout, fault)
          ResultCode        UInt32        as the Modbus ResultCode (1 OK, 2 NG, 3 REVIEW, 10 TIMEOUT, ...)
          Score             Double        anomaly score (0 with no inspection)
          ModelVersion      String
          ProcessingTimeMs  Double        trigger to result
          RecipeId          UInt32        the recipe the part was judged with
          Reason            String        why a part was answered NG without a verdict
          AcknowledgeResult()             the PLC has read the result: ResultsValid drops
        Diagnostics/
          TriggerReady      Boolean       a StartSingleJob now is taken
          ErrorCode         UInt32        0, or the ResultCode of the fault (with state Error)
          ErrorMessage      String
          LastRefusal       String        why the last method call was refused
          VerificationState UInt32        this shift's test parts for the recipe's product:
                                          0 none, 1 due, 2 incomplete, 3 passed, 4 failed,
                                          5 unknown (as the Modbus register)
          Verified          Boolean       VerificationState is 3 (the line may interlock on it)
          AlarmCode         UInt32        the station's active line alarms (line.alarms): bit 0
                                          a run of rejected parts, bit 1 a high NG rate,
                                          bit 2 photos the model cannot judge,
                                          bit 3 rejects without a verdict
          Alarm             Boolean       AlarmCode is not 0 (the line may stop on it)
          AcknowledgeAlarms()             the station's active alarms acknowledged (by "plc")
          AcknowledgeAlarmsWithCause(Cause UInt32)   the same, with what they turned out to be
                                          (Modbus AlarmAckCause's numbers)
          AcknowledgeAlarmsOfKinds(Kinds UInt32, Cause UInt32)   only the alarms of the kinds
                                          AlarmCode's bits name (0: every one), with a cause

    ResultReadyEventType (subtype of BaseEventType, in ns): fields ResultId, TriggerSeq,
    PartId, InspectionId, Verdict, ResultCode, Score, ModelVersion, ProcessingTimeMs,
    RecipeId; emitted by VisionSystem after the ResultManagement variables are written.

The handshake: the PLC waits for TriggerReady (or CurrentSubState Ready), calls
StartSingleJob(PartId); the station goes to SingleExecution, writes the result
variables, then ResultsValid, then fires ResultReady; the PLC reads (or takes the
event), checks PartId, calls AcknowledgeResult; the station returns to Ready.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Optional

from .plc_handshake import Answer, Handshake, ImageSource, ResultCode, VerificationState

log = logging.getLogger("lineguard.plc")

NAMESPACE = "urn:lineguard:plc:vision"


class OpcUaStation:
    """An OPC UA server that runs the trigger / result handshake for one station."""

    protocol = "opcua"

    def __init__(self, station: Any, image_source: ImageSource, recipes: dict[int, str], line: str,
                 station_name: str = "plc", host: str = "127.0.0.1", port: int = 4840,
                 window_ms: float = 1000.0, initial_recipe: Optional[int] = None, autostart: bool = True,
                 verify_every_s: float = 10.0):
        self.hs = Handshake(station, image_source, recipes, line, station_name, window_ms, protocol="opcua",
                            initial_recipe=initial_recipe, recipe_max=0xFFFFFFFF, verify_every_s=verify_every_s)
        self.station = station
        self.line = line
        self.host, self.port = host, port
        # Preoperational until Start; `serve` starts it so a PLC can trigger at once
        self.mode = "Operational" if autostart else "Preoperational"
        self.last_refusal = ""
        self.hs.answered = self._queue_result
        self.hs.show = self._queue_state
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._queue: Optional[asyncio.Queue] = None
        self._server: Any = None
        self._nodes: dict[str, Any] = {}
        self._written: dict[str, Any] = {}
        self._event: Any = None
        self._thread: Optional[threading.Thread] = None
        self._stop: Optional[asyncio.Event] = None

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}/lineguard/"

    # -- what the PLC sees -------------------------------------------------------------
    def state(self) -> tuple[str, str]:
        """CurrentState and CurrentSubState now."""
        hs = self.hs
        if hs.error_code:
            return "Error", ""
        if self.mode != "Operational":
            return self.mode, ""
        return "Operational", ("Ready" if hs.ready else "SingleExecution")

    def snapshot(self) -> dict[str, Any]:
        """The state as the PLC sees it (tests, /health)."""
        with self.hs.lock:
            state, sub = self.state()
            return {"state": state, "sub_state": sub, "trigger_ready": self._trigger_ready(),
                    "results_valid": self.hs.result_valid, "error": bool(self.hs.error_code),
                    "error_code": self.hs.error_code, "error_message": self.hs.error, "recipe": self.hs.recipe,
                    "port": self.port, "last_refusal": self.last_refusal,
                    "verification": self.hs.verification.name.lower(), "alarm_code": self.hs.alarm_code,
                    **self.hs.counts}

    def _trigger_ready(self) -> bool:
        return self.mode == "Operational" and self.hs.ready

    def _queue_state(self) -> None:
        # called under the handshake's lock from any thread: the values are taken now and
        # written, in order, by the server's one writer task
        state, sub = self.state()
        view = {"CurrentState": state, "CurrentSubState": sub, "TriggerReady": self._trigger_ready(),
                "ResultsValid": self.hs.result_valid, "ErrorCode": self.hs.error_code,
                "ErrorMessage": self.hs.error or "", "ActiveRecipe": self.hs.recipe, "LastRefusal": self.last_refusal,
                "VerificationState": int(self.hs.verification),
                "Verified": self.hs.verification == VerificationState.PASSED,
                "AlarmCode": self.hs.alarm_code, "Alarm": self.hs.alarm_code != 0}
        self._put(("state", view))

    def _queue_result(self, ans: Answer) -> None:
        trig = ans.trigger
        values = {"ResultId": f"{self.hs.station_name}-{trig.seq}", "TriggerSeq": trig.seq, "PartId": trig.tag,
                  "InspectionId": ans.inspection_id, "Verdict": ans.signal, "ResultCode": int(ans.code),
                  "Score": float(ans.score or 0.0), "ModelVersion": ans.model_version,
                  "ProcessingTimeMs": float(ans.processing_ms), "RecipeId": trig.recipe, "Reason": ans.reason or ""}
        self._put(("result", values))

    def _put(self, item: tuple[str, dict[str, Any]]) -> None:
        if self._loop is None or self._queue is None:
            return
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:   # the loop is closed: the server is shutting down
            pass

    async def _writer(self) -> None:
        assert self._queue is not None
        while True:
            kind, values = await self._queue.get()
            try:
                if kind == "result":
                    # the result first, ResultsValid after it, then the event: a PLC that
                    # sees ResultsValid or the event reads this part's values
                    for name, v in values.items():
                        await self._write(name, v)
                    await self._write("ResultsValid", True)
                    ev = self._event.event
                    for name, v in values.items():
                        if name != "Reason":
                            setattr(ev, name, v)
                    await self._event.trigger(message=f"result {values['ResultId']}: {values['Verdict']} "
                                                      f"(part {values['PartId']})")
                else:
                    for name in ("ResultsValid", "ErrorCode", "ErrorMessage", "ActiveRecipe", "LastRefusal",
                                 "VerificationState", "Verified", "AlarmCode", "Alarm", "CurrentState",
                                 "CurrentSubState",
                                 "TriggerReady"):
                        await self._write(name, values[name])
            except Exception:  # noqa: BLE001 - one failed write must not stop the writer
                log.exception("OPC UA %s update failed", kind)

    async def _write(self, name: str, value: Any) -> None:
        from asyncua import ua
        if self._written.get(name, _UNSET) == value and name != "ResultsValid":
            return   # unchanged: a state update rewrites only what moved
        self._written[name] = value
        # straight into the address space (subscriptions still see it): the PLC's answer
        # is on the critical path, and a client-style write costs several times more
        await self._server.write_attribute_value(self._nodes[name].nodeid, ua.DataValue(_variant(name, value)))

    # -- the server ----------------------------------------------------------------------
    def start(self, timeout_s: float = 30.0) -> "OpcUaStation":
        self.hs.open_spool()     # before listening: a second link like this one is refused here
        self.hs.prepare()        # its models warmed up, its trigger count read
        started = threading.Event()
        failed: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                loop.run_until_complete(self._serve(started))
            except BaseException as exc:  # noqa: BLE001 - reported to start()
                failed.append(exc)
            finally:
                started.set()
                loop.close()

        self._thread = threading.Thread(target=run, name="plc-opcua", daemon=True)
        self._thread.start()
        started.wait(timeout_s)
        if failed or self._server is None or not started.is_set():
            why = failed[0] if failed else "it did not start"
            self.hs.release_spool()
            raise RuntimeError(f"the OPC UA server cannot listen on {self.host}:{self.port} ({why}); "
                               "choose a free --opcua-port (4840 is the standard one)")
        log.info("OPC UA PLC handshake on %s (line %s)", self.endpoint, self.line)
        self.hs.start_verification()
        return self

    async def _serve(self, started: threading.Event) -> None:
        from asyncua import Server, ua
        logging.getLogger("asyncua").setLevel(logging.WARNING)   # it logs every method call at INFO
        server = Server()
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name(f"lineguard {self.hs.station_name}")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace(NAMESPACE)
        await self._build(server, idx)
        self._queue = asyncio.Queue()
        self._stop = asyncio.Event()
        await server.start()
        self._server = server
        writer = asyncio.create_task(self._writer())
        with self.hs.lock:
            self._queue_state()
        started.set()
        try:
            await self._stop.wait()
        finally:
            writer.cancel()
            await server.stop()

    async def _build(self, server: Any, idx: int) -> None:
        from asyncua import ua
        vs = await server.nodes.objects.add_object(idx, "VisionSystem")
        await vs.set_event_notifier([ua.EventNotifier.SubscribeToEvents])
        sm = await vs.add_object(idx, "VisionStateMachine")
        recipes = await vs.add_object(idx, "RecipeManagement")
        results = await vs.add_object(idx, "ResultManagement")
        diag = await vs.add_object(idx, "Diagnostics")
        state, sub = self.state()
        layout = [(sm, "CurrentState", state), (sm, "CurrentSubState", sub),
                  (recipes, "ActiveRecipe", self.hs.recipe),
                  (recipes, "Recipes", [f"{k}={v}" for k, v in sorted(self.hs.recipes.items())]),
                  (results, "ResultsValid", False), (results, "ResultId", ""), (results, "TriggerSeq", 0),
                  (results, "PartId", 0), (results, "InspectionId", 0), (results, "Verdict", ""),
                  (results, "ResultCode", 0), (results, "Score", 0.0), (results, "ModelVersion", ""),
                  (results, "ProcessingTimeMs", 0.0), (results, "RecipeId", 0), (results, "Reason", ""),
                  (diag, "TriggerReady", False), (diag, "ErrorCode", 0), (diag, "ErrorMessage", ""),
                  (diag, "LastRefusal", ""), (diag, "VerificationState", int(self.hs.verification)),
                  (diag, "Verified", self.hs.verification == VerificationState.PASSED),
                  (diag, "AlarmCode", self.hs.alarm_code), (diag, "Alarm", self.hs.alarm_code != 0)]
        for parent, name, value in layout:
            self._nodes[name] = await parent.add_variable(idx, name, _variant(name, value))

        def arg(name: str, vtype: Any, text: str) -> Any:
            a = ua.Argument()
            a.Name, a.DataType, a.ValueRank = name, ua.NodeId(vtype), -1
            a.Description = ua.LocalizedText(text)
            return a

        uint32 = ua.ObjectIds.UInt32
        await sm.add_method(idx, "Start", self._m_start, [], [])
        await sm.add_method(idx, "Halt", self._m_halt, [], [])
        await sm.add_method(idx, "Reset", self._m_reset, [], [])
        await sm.add_method(idx, "StartSingleJob", self._m_start_single_job,
                            [arg("PartId", uint32, "the PLC's number of the part, echoed in the result")],
                            [arg("TriggerSeq", uint32, "the station's number of this trigger")])
        await recipes.add_method(idx, "SelectRecipe", self._m_select_recipe,
                                 [arg("RecipeId", uint32, "one of RecipeManagement/Recipes")], [])
        await results.add_method(idx, "AcknowledgeResult", self._m_ack, [], [])
        await diag.add_method(idx, "AcknowledgeAlarms", self._m_ack_alarms, [], [])
        await diag.add_method(idx, "AcknowledgeAlarmsWithCause", self._m_ack_alarms_with_cause,
                              [arg("Cause", uint32, "what they turned out to be: 0 not said, 1 process, 2 material, "
                                   "3 handling, 4 camera, 5 model (a false alarm), 6 other, 7 on the plant's own "
                                   "(GET /api/v1/alarm-causes)")], [])
        await diag.add_method(idx, "AcknowledgeAlarmsOfKinds", self._m_ack_alarms_of_kinds,
                              [arg("Kinds", uint32, "which alarms, AlarmCode's bits: 1 the NG run, 2 the NG rate, 4 "
                                   "the photos, 8 the rejects without a verdict; 0 every one"),
                               arg("Cause", uint32, "what they turned out to be (as AcknowledgeAlarmsWithCause)")], [])
        names = ("ResultId", "TriggerSeq", "PartId", "InspectionId", "Verdict", "ResultCode", "Score", "ModelVersion",
                 "ProcessingTimeMs", "RecipeId")
        fields = [(n, getattr(ua.VariantType, _VTYPES[n])) for n in names]
        etype = await server.create_custom_event_type(idx, "ResultReadyEventType", ua.ObjectIds.BaseEventType, fields)
        self._event = await server.get_event_generator(etype, vs)

    def close(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(10)
        self.hs.close()

    # -- methods (run on the server's loop) -------------------------------------------------
    def _refuse(self, status: str, why: str) -> Any:
        from asyncua import ua
        self.last_refusal = why
        log.warning("OPC UA call refused: %s", why)
        self.hs.show()
        return ua.StatusCode(getattr(ua.StatusCodes, status))

    async def _m_start(self, parent: Any) -> Any:
        with self.hs.lock:
            if self.hs.error_code:
                return self._refuse("BadInvalidState", "the vision system is in Error: call Reset, then Start")
            self.mode = "Operational"
            self.hs.show()
        return []

    async def _m_halt(self, parent: Any) -> Any:
        with self.hs.lock:
            self.mode = "Halted"
            self.hs.show()
        return []

    async def _m_reset(self, parent: Any) -> Any:
        with self.hs.lock:
            self.mode = "Preoperational"
            self.hs.clear_error()
        return []

    async def _m_start_single_job(self, parent: Any, part_id: Any) -> Any:
        from asyncua import ua
        tag = int(part_id.Value)
        with self.hs.lock:
            state, _ = self.state()
            if state != "Operational":
                return self._refuse("BadInvalidState", f"StartSingleJob for part {tag} refused: the vision system "
                                    f"is {state}" + (" (call Reset, then Start)" if state == "Error" else
                                                     " (call Start)"))
            trig = self.hs.trigger(tag, fault_if_not_ready=False)
            if trig is None:
                return self._refuse("BadInvalidState", f"StartSingleJob for part {tag} refused: "
                                    f"{self.hs.not_ready_reason()}".replace("ResultsAck", "AcknowledgeResult"))
        return [ua.Variant(trig.seq, ua.VariantType.UInt32)]

    async def _m_select_recipe(self, parent: Any, recipe_id: Any) -> Any:
        rid = int(recipe_id.Value)
        with self.hs.lock:
            if self.hs.busy:
                return self._refuse("BadInvalidState", f"SelectRecipe {rid} refused: a part is being inspected")
            if not self.hs.select_recipe(rid):
                return self._refuse("BadInvalidArgument", f"SelectRecipe {rid} refused: not a recipe of this "
                                    f"station (known: {sorted(self.hs.recipes)})")
        return []

    async def _m_ack(self, parent: Any) -> Any:
        self.hs.ack()
        return []

    async def _m_ack_alarms(self, parent: Any) -> Any:
        self.hs.ack_alarms()    # stored off this loop; Alarm drops once it is
        return []

    async def _m_ack_alarms_with_cause(self, parent: Any, cause: Any) -> Any:
        value = getattr(cause, "Value", cause)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFFFFFF:
            return self._refuse("BadInvalidArgument", f"AcknowledgeAlarmsWithCause takes a cause number (UInt32: 0 "
                                f"not said, 1-6 built in, 7 on the plant's own), got {value!r}; nothing acknowledged")
        self.hs.ack_alarms(value)
        return []

    async def _m_ack_alarms_of_kinds(self, parent: Any, kinds: Any, cause: Any) -> Any:
        values = [getattr(v, "Value", v) for v in (kinds, cause)]
        # a negative Int32 would name every kind (its bits): numbers as UInt32 only
        if any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 0xFFFFFFFF for v in values):
            return self._refuse("BadInvalidArgument", f"AcknowledgeAlarmsOfKinds takes two numbers (UInt32 Kinds: "
                                f"AlarmCode's bits, 0 every one; Cause: 0-6, 7 on the plant's own), got {values!r}; "
                                "nothing acknowledged")
        self.hs.ack_alarms(values[1], values[0])
        return []


_UNSET = object()


def _variant(name: str, value: Any) -> Any:
    from asyncua import ua
    vtype = getattr(ua.VariantType, _VTYPES[name])
    return ua.Variant(value, vtype)


_VTYPES = {"CurrentState": "String", "CurrentSubState": "String", "ActiveRecipe": "UInt32", "Recipes": "String",
           "ResultsValid": "Boolean", "ResultId": "String", "TriggerSeq": "UInt32", "PartId": "UInt32",
           "InspectionId": "UInt32", "Verdict": "String", "ResultCode": "UInt32", "Score": "Double",
           "ModelVersion": "String", "ProcessingTimeMs": "Double", "RecipeId": "UInt32", "Reason": "String",
           "TriggerReady": "Boolean", "ErrorCode": "UInt32", "ErrorMessage": "String", "LastRefusal": "String",
           "VerificationState": "UInt32", "Verified": "Boolean", "AlarmCode": "UInt32", "Alarm": "Boolean"}

__all__ = ["OpcUaStation", "NAMESPACE", "ResultCode"]
