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
          Halt()                          -> Halted (a part in inspection is still answered); from
                                          Error too, the fault cleared as by Reset
          Reset()                         Error -> Preoperational (clears ErrorCode); then Start
          StartSingleJob(PartId UInt32) -> TriggerSeq UInt32
                                          the trigger: only in Operational/Ready, else the call
                                          fails with BadInvalidState (LastRefusal says why)
        RecipeManagement/
          ActiveRecipe      UInt32        the recipe (product) in effect
          Recipes           String[]      "ID=product" for each recipe of this station
          SelectRecipe(RecipeId UInt32)   taken at once, in any state, also while SingleExecution
                                          (as the Modbus RecipeId, taken when written): a part in
                                          inspection keeps the recipe it was triggered with;
                                          unknown id: BadInvalidArgument (LastRefusal names those known)
        ResultManagement/
          ResultsValid      Boolean       the variables below answer the last job; high until
                                          AcknowledgeResult
          ResultId          String        "<station>-<TriggerSeq>"
          TriggerSeq        UInt32        the station's trigger count, in full (the Modbus register
                                          holds its low 16 bits); never reused after a restart
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
                                          bit 3 rejects without a verdict,
                                          bit 4 a test part judged wrong,
                                          bit 5 part scores drifting
          Alarm             Boolean       AlarmCode is not 0 (the line may stop on it)
          AcknowledgeAlarms()             the station's active alarms acknowledged (by "plc")
          AcknowledgeAlarmsWithCause(Cause UInt32)   the same, with what they turned out to be
                                          (Modbus AlarmAckCause's numbers); a number that is
                                          no cause is refused, BadOutOfRange, nothing acknowledged
          AcknowledgeAlarmsOfKinds(Kinds UInt32, Cause UInt32)   only the alarms of the kinds
                                          AlarmCode's bits name (0: every one), with a cause;
                                          bits past the kinds are refused as an unknown cause is

    ResultReadyEventType (subtype of BaseEventType, in ns): fields ResultId, TriggerSeq,
    PartId, InspectionId, Verdict, ResultCode, Score, ModelVersion, ProcessingTimeMs,
    RecipeId, Reason (the ResultManagement variables'); emitted by VisionSystem after
    those variables are written.

Arguments: any integer Variant (SByte ... UInt64: a PLC sends DINT / UDINT) whose value
fits the argument's UInt32 is taken; anything else refuses the call, nothing done, with
BadTypeMismatch (not an integer), BadOutOfRange (negative or above 4294967295),
BadArgumentsMissing or BadTooManyArguments (InputArgumentResults name the argument,
LastRefusal says why). A refused call is answered after LastRefusal holds its reason, so
a PLC reads the reason of the call it just made. Every variable written carries
SourceTimestamp and ServerTimestamp (UTC, when its value last changed).

The server offers Anonymous login only over SecurityPolicy None (no UserName: there are
no accounts to check a password against; keep it on the machine network). Its
ApplicationUri is ``urn:<host>:lineguard:<line>:<station>``, one per station (clients
and discovery tell servers apart by it), BuildInfo names lineguard and its version.

The handshake: the PLC waits for TriggerReady (or CurrentSubState Ready), calls
StartSingleJob(PartId); the station goes to SingleExecution, writes the result
variables, then ResultsValid, then fires ResultReady; the PLC reads (or takes the
event), checks PartId, calls AcknowledgeResult; the station returns to Ready.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import socket
import threading
from datetime import datetime, timezone
from typing import Any, Callable, Optional
from urllib.parse import quote

from .. import __version__
from .plc_handshake import Answer, Handshake, ImageSource, ResultCode, VerificationState

log = logging.getLogger("lineguard.plc")

NAMESPACE = "urn:lineguard:plc:vision"
PRODUCT_URI = "urn:lineguard"
UINT32_MAX = 0xFFFFFFFF


def application_uri(line: str, station_name: str, host: Optional[str] = None) -> str:
    """This station's OPC UA ApplicationUri: unique per host, line and station, since
    clients, discovery servers and certificates tell servers apart by it (asyncua's
    default is the same on every station)."""
    parts = [host or socket.gethostname(), "lineguard", line, station_name]
    # a URN has no room for spaces or colons inside a part: percent-encode them
    return "urn:" + ":".join(quote(p, safe="-._~") for p in parts)


class _BadArguments(Exception):
    def __init__(self, status: str, why: str, arg_results: list[str]):
        super().__init__(why)
        self.status, self.why, self.arg_results = status, why, arg_results


_INTEGER_VTYPES = ("SByte", "Byte", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64")


def _uint32_args(method: str, args: tuple, spec: tuple[tuple[str, str], ...], nothing: str) -> list[int]:
    """The values of a method's UInt32 arguments (``spec``: name and what it is, in order).

    Any integer Variant is taken, since PLCs send DINT (Int32) or UDINT (UInt32) and OPC UA
    clients what their variable holds; a Boolean, a Double (3.7 is not part 3), a String,
    an array or a value outside 0..4294967295 raises :class:`_BadArguments` saying which.
    """
    from asyncua import ua
    want = ", ".join(f"{name} UInt32" for name, _ in spec)
    if len(args) < len(spec):
        missing = ", ".join(f"{name} ({what})" for name, what in spec[len(args):])
        raise _BadArguments("BadArgumentsMissing", f"{method} refused: {missing} missing (it takes {want}); {nothing}",
                            ["Good"] * len(args))
    if len(args) > len(spec):
        raise _BadArguments("BadTooManyArguments", f"{method} refused: {len(args)} arguments given, it takes "
                            f"{len(spec) or 'none'}{' (' + want + ')' if spec else ''}; {nothing}",
                            ["Good"] * len(spec) + ["BadTooManyArguments"] * (len(args) - len(spec)))
    values: list[int] = []
    results = ["Good"] * len(args)
    problems: list[tuple[str, str]] = []        # (status, why) for each bad argument
    for i, ((name, what), arg) in enumerate(zip(spec, args)):
        vtype = getattr(arg, "VariantType", None)
        value = getattr(arg, "Value", arg)
        if not isinstance(vtype, ua.VariantType) or vtype.name not in _INTEGER_VTYPES \
                or isinstance(value, bool) or not isinstance(value, int):
            results[i] = "BadTypeMismatch"
            problems.append(("BadTypeMismatch", f"{name} must be an integer (UInt32: {what}), got {_describe(arg)}"))
        elif not 0 <= value <= UINT32_MAX:
            results[i] = "BadOutOfRange"
            problems.append(("BadOutOfRange", f"{name} {value} is out of range (UInt32: 0 to {UINT32_MAX})"))
        else:
            values.append(value)
    if problems:
        # one status for the call: the first bad argument's (InputArgumentResults has each)
        raise _BadArguments(problems[0][0], f"{method} refused: " + "; ".join(w for _, w in problems) + f"; {nothing}",
                            results)
    return values


def _describe(arg: Any) -> str:
    """A Variant as a refusal names it: its type and (shortened) value."""
    vtype = getattr(arg, "VariantType", None)
    value = getattr(arg, "Value", arg)
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    if getattr(arg, "is_array", False) or isinstance(value, (list, tuple)):
        return f"an array of {getattr(vtype, 'name', '?')} {text}"
    if vtype is not None and getattr(vtype, "name", "") == "Null":
        return "no value (Null)"
    return f"{getattr(vtype, 'name', type(value).__name__)} {text}"


def _fits(name: str, value: Any) -> bool:
    """Whether ``value`` can be encoded as variable ``name``'s type (the integers are UInt32)."""
    if _VTYPES[name] != "UInt32":
        return True
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= UINT32_MAX


_CAUSE = "0 not said, 1-6 built in, 7 on the plant's own"


def _takes(method: str, spec: tuple[tuple[str, str], ...], nothing: str,
           trigger: bool = False) -> Callable[[Any], Any]:
    """A method callback that gets its UInt32 arguments (``spec``: name and what it is) as
    ints, checked; a call with bad ones is refused, ``nothing`` done, LastRefusal set.
    ``trigger``: the method triggers a part (StartSingleJob). A call of its arguments'
    number (one) refused for its value, out of range or of another type, is a trigger
    refused: the photo the camera may have taken for it is set aside
    (Handshake.refused_photo). Uncounted, a PLC whose DINT part counter passed 2^31 (a
    negative PartId, refused) had every later part judged on the photo before its own, with
    no fault; a PLC variable of the wrong type (a REAL, an uninitialised one) fires a camera
    wired to the call just the same. A call with another number of arguments (none, two)
    is no PLC program's trigger but a client that does not know the method: nothing is
    done, no photo owed either (counted, such calls from a test client made the next real
    part NO_IMAGE and Error 11, "1 photo(s) came for 13 earlier trigger(s) without one").

    asyncua hands a method whatever Variants the client sent, unchecked against the
    declared arguments: a value its variable cannot encode (an Int32 -5 echoed in PartId)
    breaks every later Read and subscription of the server, a missing one raises in the
    callback (BadUnexpectedError and a traceback). So nothing is done with an argument
    until it is a whole number in range.
    """
    def wrap(fn: Any) -> Any:
        @functools.wraps(fn)
        async def call(self: "OpcUaStation", parent: Any, *args: Any) -> Any:
            try:
                values = _uint32_args(method, args, spec, nothing)
            except _BadArguments as bad:
                why = bad.why
                if trigger and len(args) == len(spec):
                    with self.hs.lock:
                        photo = self.hs.refused_photo(0)    # no PartId to tell a repeat by
                    why += f"; {photo}" if photo else ""
                elif trigger:
                    why += ("; no photo is set aside for it (a call with another number of arguments is no "
                            "part's trigger)")
                return await self._refused(self._refuse(bad.status, why, bad.arg_results))
            out = await fn(self, parent, *values)
            # a method's own answer is a list (its output arguments); anything else is a refusal
            return out if isinstance(out, list) else await self._refused(out)
        return call
    return wrap


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
        self.hs.clear_advice = lambda: "call Reset, then Start"
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._queue: Optional[asyncio.Queue] = None
        self._server: Any = None
        self._nodes: dict[str, Any] = {}
        self._written: dict[str, Any] = {}
        self._changed_at: dict[str, datetime] = {}      # each variable's SourceTimestamp
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
        if hs.starting:
            return "Preoperational", ""
        if self.mode != "Operational":
            return self.mode, ""
        return "Operational", ("Ready" if hs.ready else "SingleExecution")

    def snapshot(self) -> dict[str, Any]:
        """The state as the PLC sees it (tests, /health)."""
        with self.hs.lock:
            state, sub = self.state()
            # busy as the Modbus snapshot has it: a part in inspection is not "not ready"
            return {"state": state, "sub_state": sub, "trigger_ready": self._trigger_ready(), "busy": self.hs.busy,
                    "results_valid": self.hs.result_valid, "error": bool(self.hs.error_code),
                    "error_code": self.hs.error_code, "error_message": self.hs.error, "recipe": self.hs.recipe,
                    "port": self.port, "last_refusal": self.last_refusal,
                    "verification": self.hs.verification.name.lower(), "alarm_code": self.hs.alarm_code,
                    **self.hs.counts, **self.hs.backlog()}

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

    def _put(self, item: tuple[str, Any]) -> None:
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
                if kind == "flush":
                    if not values.done():
                        values.set_result(None)
                elif kind == "result":
                    # the result first, ResultsValid after it, then the event: a PLC that
                    # sees ResultsValid or the event reads this part's values
                    for name, v in values.items():
                        await self._write(name, v)
                    await self._write("ResultsValid", True)
                    ev = self._event.event
                    for name, v in values.items():
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
        changed = self._written.get(name, _UNSET) != value
        if not changed and name != "ResultsValid":
            return   # unchanged: a state update rewrites only what moved
        if not _fits(name, value):
            # a value its type cannot encode breaks every Read that includes the node and
            # every subscription of the server (asyncua encodes only when it sends)
            log.error("OPC UA %s = %r does not fit %s: not written", name, value, _VTYPES[name])
            return
        self._written[name] = value
        # HMIs and historians order and age values by their timestamps, and asyncua's
        # direct write below stamps nothing. SourceTimestamp is when the value last
        # changed: ResultsValid rewritten unchanged keeps its own (a subscription that
        # triggers on timestamps would otherwise see a change with each state update)
        now = datetime.now(timezone.utc)
        if changed or name not in self._changed_at:
            self._changed_at[name] = now
        # straight into the address space (subscriptions still see it): the PLC's answer
        # is on the critical path, and a client-style write costs several times more
        await self._server.write_attribute_value(self._nodes[name].nodeid, ua.DataValue(
            _variant(name, value), SourceTimestamp=self._changed_at[name], ServerTimestamp=now))

    # -- the server ----------------------------------------------------------------------
    def start(self, timeout_s: float = 30.0, hold: bool = False) -> "OpcUaStation":
        """Listen; with ``hold`` Preoperational (TriggerReady false) until ``hs.release()``
        (the rest of the station starting), then in the mode it was made with."""
        self.hs.open_spool()     # before listening: a second link like this one is refused here
        if hold:
            self.hs.hold()
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
        server.product_uri = PRODUCT_URI
        server.manufacturer_name = "lineguard"
        await server.init()
        await server.set_application_uri(application_uri(self.line, self.hs.station_name))
        # BuildDate: no build is recorded (a pip install of the source), so the start
        await server.set_build_info(PRODUCT_URI, "lineguard", "lineguard", __version__, __version__,
                                    datetime.now(timezone.utc))
        server.set_endpoint(self.endpoint)
        server.set_server_name(f"lineguard {self.line} {self.hs.station_name}")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        # Anonymous only: asyncua's default also offers UserName and takes any password
        # (and "admin" with any password as its administrator, who may write every node),
        # a login that suggests a protection the server does not have
        server.set_identity_tokens([ua.AnonymousIdentityToken])
        server.allow_remote_admin(False)
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
                                   "the photos, 8 the rejects without a verdict, 16 a test part judged wrong, "
                                   "32 part scores drifting; 0 every one"),
                               arg("Cause", uint32, "what they turned out to be (as AcknowledgeAlarmsWithCause)")], [])
        # every result variable, Reason too (why a part was answered NG without a verdict):
        # "with the same fields" as ResultManagement, which a subscriber to the event relies on
        names = ("ResultId", "TriggerSeq", "PartId", "InspectionId", "Verdict", "ResultCode", "Score", "ModelVersion",
                 "ProcessingTimeMs", "RecipeId", "Reason")
        fields = [(n, getattr(ua.VariantType, _VTYPES[n])) for n in names]
        etype = await server.create_custom_event_type(idx, "ResultReadyEventType", ua.ObjectIds.BaseEventType, fields)
        self._event = await server.get_event_generator(etype, vs)

    def begin_stop(self) -> None:
        """A stop's first step: TriggerReady drops and StartSingleJob is refused, the link
        stays open (Handshake.begin_stop). With two links the caller runs it on every link,
        then close(deadline=...) on each: closed one after the other, the second link took
        parts while the first was drained."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self.hs.begin_stop()

    def close(self, deadline: Optional[float] = None) -> None:
        """Stop the link: begin_stop (if the caller has not), then the part in inspection is
        answered and acknowledged over the link, until ``deadline`` (time.monotonic(), one
        for every link of the stop: plc_handshake.stop_deadline) or STOP_WAIT_S from now."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            # the part in inspection is answered, and its result acknowledged, over the link
            # before the server stops (bounded: Handshake.drain). Before, the server stopped
            # first and the part was answered to no one, yet recorded and sent to the MES as
            # an answer the PLC had
            self.hs.drain(self._plc_connected, deadline=deadline)
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(10)
        self.hs.link_closed()    # an answer up now, or not acknowledged, is marked delivery_unknown
        self.hs.close()

    def _plc_connected(self) -> Optional[bool]:
        """Whether an OPC UA client is connected now (None: not known). Any client session
        counts, not only the PLC: an HMI or a UA browser left connected makes the stop wait
        its bound (STOP_WAIT_S) for a part in inspection, though no PLC will read the answer."""
        clients = getattr(getattr(self._server, "bserver", None), "clients", None)
        return None if clients is None else bool(clients)

    # -- methods (run on the server's loop; @_takes has checked their arguments) -----------
    async def _refused(self, answer: Any) -> Any:
        """``answer`` (a refusal) once the writer has written what was queued before it,
        LastRefusal among it: answered first, a PLC reading LastRefusal at once after the
        refused call could read the one before (line-sim says the station's reason)."""
        if self._loop is None or self._queue is None:
            return answer
        written = self._loop.create_future()
        self._put(("flush", written))       # in order behind the refusal's state update
        try:
            await asyncio.wait_for(written, 2.0)
        except asyncio.TimeoutError:
            log.warning("OPC UA refusal answered before LastRefusal was written (the writer is behind)")
        return answer

    def _refuse(self, status: str, why: str, arg_results: Optional[list[str]] = None) -> Any:
        from asyncua import ua
        with self.hs.lock:
            self.last_refusal = why
            log.warning("OPC UA call refused: %s", why)
            self.hs.show()
        code = ua.StatusCode(getattr(ua.StatusCodes, status))
        if arg_results is None:
            return code
        # each argument's own status too, as Part 4's Call has it (Good for the fine ones)
        return ua.CallMethodResult(StatusCode=code, InputArgumentResults=[
            ua.StatusCode(getattr(ua.StatusCodes, r)) for r in arg_results])

    @_takes("Start", (), "the state is unchanged")
    async def _m_start(self, parent: Any) -> Any:
        with self.hs.lock:
            if self.hs.error_code:
                return self._refuse("BadInvalidState", "the vision system is in Error: call Reset, then Start")
            self.mode = "Operational"
            self.hs.show()
        return []

    @_takes("Halt", (), "the state is unchanged")
    async def _m_halt(self, parent: Any) -> Any:
        with self.hs.lock:
            # Halted from every state: in Error the fault is cleared as Reset clears it, since
            # state() shows Error while one is held. It answered Good and changed nothing
            # there (Error stayed; a Reset after it went to Preoperational, never Halted)
            if self.hs.error_code:
                log.info("OPC UA Halt in Error %s: the fault is cleared, the vision system Halted",
                         self.hs.error_code)
                self.hs.clear_error()
            self.mode = "Halted"
            self.hs.show()
        return []

    @_takes("Reset", (), "the state is unchanged")
    async def _m_reset(self, parent: Any) -> Any:
        with self.hs.lock:
            self.mode = "Preoperational"
            self.hs.clear_error()
        return []

    @_takes("StartSingleJob", (("PartId", "the PLC's part number"),), "no part triggered", trigger=True)
    async def _m_start_single_job(self, parent: Any, tag: int) -> Any:
        from asyncua import ua
        with self.hs.lock:
            state, _ = self.state()
            if state != "Operational":
                photo = self.hs.refused_photo(tag)
                return self._refuse("BadInvalidState", f"StartSingleJob for part {tag} refused: the vision system "
                                    f"is {state}" + (" (call Reset, then Start)" if state == "Error" else
                                                     " (call Start)") + (f"; {photo}" if photo else ""))
            trig = self.hs.trigger(tag, fault_if_not_ready=False)
            if trig is None:
                # what became of the photo the camera may have taken for it (set aside)
                photo = self.hs.refusal_photo
                return self._refuse("BadInvalidState", f"StartSingleJob for part {tag} refused: "
                                    f"{self.hs.not_ready_reason()}".replace("ResultsAck", "AcknowledgeResult")
                                    + (f"; {photo}" if photo else ""))
        return [ua.Variant(trig.seq, ua.VariantType.UInt32)]

    @_takes("SelectRecipe", (("RecipeId", "one of RecipeManagement/Recipes"),), "the recipe is unchanged")
    async def _m_select_recipe(self, parent: Any, rid: int) -> Any:
        # Taken at once, a part in inspection or a result up too, as the Modbus RecipeId is
        # taken whenever it is written: the part in inspection keeps the recipe of its
        # trigger (Trigger.recipe), so the PLC selects the next product as soon as the last
        # part of this one is triggered. It was refused while a part was inspected (and the
        # docstring said "not while SingleExecution", yet a result up was taken)
        with self.hs.lock:
            if not self.hs.select_recipe(rid):
                return self._refuse("BadInvalidArgument", f"SelectRecipe {rid} refused: not a recipe of this "
                                    f"station (known: {sorted(self.hs.recipes)})")
        return []

    @_takes("AcknowledgeResult", (), "the result is still valid")
    async def _m_ack(self, parent: Any) -> Any:
        self.hs.ack()
        return []

    @_takes("AcknowledgeAlarms", (), "nothing acknowledged")
    async def _m_ack_alarms(self, parent: Any) -> Any:
        self.hs.ack_alarms()    # stored off this loop; Alarm drops once it is
        return []

    @_takes("AcknowledgeAlarmsWithCause", (("Cause", _CAUSE),), "nothing acknowledged")
    async def _m_ack_alarms_with_cause(self, parent: Any, cause: int) -> Any:
        refused = await self._unknown_ack("AcknowledgeAlarmsWithCause", None, cause)
        if refused is not None:
            return refused
        self.hs.ack_alarms(cause)
        return []

    # UInt32 values only: a negative Int32 Kinds would name every kind (its bits)
    @_takes("AcknowledgeAlarmsOfKinds", (("Kinds", "AlarmCode's bits, 0 every one"), ("Cause", _CAUSE)),
            "nothing acknowledged")
    async def _m_ack_alarms_of_kinds(self, parent: Any, kinds: int, cause: int) -> Any:
        refused = await self._unknown_ack("AcknowledgeAlarmsOfKinds", kinds, cause)
        if refused is not None:
            return refused
        self.hs.ack_alarms(cause, kinds)
        return []

    async def _unknown_ack(self, method: str, kinds: Optional[int], cause: int) -> Any:
        """The refusal (BadOutOfRange, nothing acknowledged) of an acknowledgement whose Kinds
        has bits past the alarm kinds or whose Cause is no cause code; None to take it. A call
        can say no where Modbus cannot: taken, Cause 99 acknowledged without a cause and Kinds
        99 acknowledged the kinds it happened to name, the PLC told Good either way."""
        from .alarms import KINDS
        results = ["Good"] * (1 if kinds is None else 2)
        why = []
        if kinds is not None and kinds >> len(KINDS):
            results[0] = "BadOutOfRange"
            why.append(f"Kinds {kinds} names bits past {len(KINDS) - 1}, which are no alarm kind (AlarmCode's "
                       "bits: 1 the NG run, 2 the NG rate, 4 the photos, 8 the rejects without a verdict, 16 a test "
                       "part judged wrong, 32 part scores drifting; 0 every one)")
        if cause:
            # the plant's own causes are in the database: read off the server's loop
            known = await asyncio.get_running_loop().run_in_executor(None, self._cause_codes)
            if known is not None and cause not in known:
                results[-1] = "BadOutOfRange"
                why.append(f"Cause {cause} is no cause code (0 not said, "
                           + ", ".join(f"{code} {key}" for code, key in sorted(known.items()))
                           + "; the plant's own are listed by GET /api/v1/alarm-causes)")
        if not why:
            return None
        return self._refuse("BadOutOfRange", f"{method} refused: " + "; ".join(why) + "; nothing acknowledged",
                            results)

    def _cause_codes(self) -> Optional[dict[int, str]]:
        """The cause codes a PLC may send now; None when they cannot be read (the database
        away: the acknowledgement is tried as before, and says so in the log)."""
        alarms = getattr(self.station, "alarms", None)
        if alarms is None:
            return None
        from .alarm_causes import codes
        try:
            return codes(alarms.db)
        except Exception:  # noqa: BLE001 - the database away: not a reason to refuse the PLC
            log.warning("the alarm cause codes could not be read to check the PLC's Cause", exc_info=True)
            return None


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
