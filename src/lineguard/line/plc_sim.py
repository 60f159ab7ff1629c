"""A simulated PLC: triggers parts at a set rate over Modbus TCP or OPC UA and times the answers.

What a line's PLC does each cycle: the camera has saved the part's image (here: the
simulator copies the next image into the station's ``--plc-images`` folder), the PLC
waits for TriggerReady, writes the part's number and triggers, waits for ResultsValid,
reads the answer, checks that it is this part's, and acknowledges. The time from the
trigger to seeing ResultsValid is the latency the line cares about: a part whose answer
is not there inside the inspection window is a missed window (the station answers it
NG with ResultCode 10, or the PLC sees the answer too late).

The clients poll, as PLC programs do, every ``poll_s`` (1 ms by default): the measured
latency includes up to one poll interval.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


class PlcLink(Protocol):
    """The few things the simulated PLC does on the wire, one protocol each."""

    def ready(self) -> bool: ...
    def put_recipe(self, recipe_id: int) -> None: ...
    def select_recipe(self, recipe_id: int) -> None: ...
    def trigger(self, part_id: int) -> None: ...
    def result_valid(self) -> bool: ...
    def read_result(self) -> dict[str, Any]: ...
    def ack(self) -> None: ...
    def clear_error(self) -> None: ...
    def not_ready_reason(self) -> str: ...
    def alarm_code(self) -> int: ...
    def close(self) -> None: ...


class ModbusLink:
    """The simulated PLC's side of the Modbus map of :mod:`.plc_modbus`."""

    def __init__(self, host: str, port: int, timeout_s: float = 5.0):
        from pymodbus.client import ModbusTcpClient
        from pymodbus.exceptions import ModbusException, ModbusIOException
        self.c = ModbusTcpClient(host, port=port, timeout=timeout_s)
        if not self.c.connect():
            raise ConnectionError(f"no Modbus TCP server at {host}:{port}; start the station with --modbus-port {port}")
        # Trigger, ResultsAck and ClearError low, as a PLC starts: one left high by a run that
        # was stopped mid-handshake would swallow the next rising edge. It is also the first
        # word said on the link: a port that takes the connection but is no Modbus server (the
        # station's --opcua-port given) answered it with pymodbus's own ModbusIOException and a
        # 40-line traceback, after 3 retries (20 s); asked once here, then the link's retries
        trans = getattr(self.c, "transaction", None)
        retries = getattr(trans, "retries", None)
        if retries is not None:
            trans.retries = 0
        try:
            self._ok(self.c.write_coils(0, [False, False, False], slave=1), "the handshake coils' reset")
        except (ModbusException, ConnectionError, OSError) as exc:
            self.c.close()
            # pymodbus's "No response received after 0 retries, continue with next request" is
            # its own bookkeeping: the silence is said in the plant's words
            what = (f"it took the connection but gave no Modbus answer in {timeout_s:g} s"
                    if isinstance(exc, ModbusIOException) else f"it took the connection, then: {_reason(exc)}")
            raise ConnectionError(
                f"no Modbus server answering at {host}:{port}: {what}; is {port} the station's --modbus-port, not "
                f"its --opcua-port or another program's port? Start the station with --modbus-port {port}, or give "
                "line-sim the station's --modbus-port (--protocol opcua for its --opcua-port)") from exc
        finally:
            if retries is not None:
                trans.retries = retries

    def _ok(self, r: Any, what: str) -> Any:
        if r.isError():
            raise ConnectionError(f"Modbus {what} failed: {r}")
        return r

    def _bits(self) -> list[bool]:
        return list(self._ok(self.c.read_discrete_inputs(0, count=6, slave=1), "read of the status bits").bits[:6])

    def ready(self) -> bool:
        return bool(self._bits()[0])

    def put_recipe(self, recipe_id: int) -> None:
        """RecipeId written, not checked: before a ClearError, which the station refuses while
        RecipeId names no recipe of its table (ErrorCode 14)."""
        self._ok(self.c.write_register(0, recipe_id, slave=1), "RecipeId write")

    def select_recipe(self, recipe_id: int) -> None:
        self.put_recipe(recipe_id)
        regs = self._ok(self.c.read_input_registers(6, count=1, slave=1), "ActiveRecipe read").registers
        # RecipeId 0 keeps the recipe in effect where the table has no recipe 0 (plc_modbus)
        if regs[0] != recipe_id and recipe_id != 0:
            raise ValueError(f"the station did not take recipe {recipe_id} (ActiveRecipe {regs[0]})")

    def trigger(self, part_id: int) -> None:
        self._ok(self.c.write_registers(1, [(part_id >> 16) & 0xFFFF, part_id & 0xFFFF], slave=1), "PartTag write")
        self._ok(self.c.write_coil(0, True, slave=1), "Trigger")

    def result_valid(self) -> bool:
        return bool(self._bits()[2])

    def read_result(self) -> dict[str, Any]:
        r = self._ok(self.c.read_input_registers(0, count=10, slave=1), "result read").registers
        return {"inspection_id": (r[0] << 16) | r[1], "code": r[2], "score": r[3] / 1000.0, "ms": float(r[4]),
                "part_id": (r[7] << 16) | r[8], "seq": r[9]}

    def ack(self) -> None:
        # Trigger low and ResultsAck high in one write, then ResultsAck low for the next rising edge
        self._ok(self.c.write_coils(0, [False, True], slave=1), "ResultsAck")
        self._ok(self.c.write_coil(1, False, slave=1), "ResultsAck reset")

    def clear_error(self) -> None:
        # ClearError's rising edge, then low again for the next one
        self._ok(self.c.write_coil(2, True, slave=1), "ClearError")
        self._ok(self.c.write_coil(2, False, slave=1), "ClearError reset")

    def alarm_code(self) -> int:
        """The station's AlarmCode (input register 11): its active line alarms' bits, 0 none."""
        return int(self._ok(self.c.read_input_registers(11, count=1, slave=1), "AlarmCode read").registers[0])

    def not_ready_reason(self) -> str:
        bits = self._bits()
        if bits[5]:
            code = self._ok(self.c.read_input_registers(5, count=1, slave=1), "ErrorCode read").registers[0]
            from .plc_handshake import ResultCode     # here: the simulator loads without the station's stack
            if code == ResultCode.UNKNOWN_RECIPE:
                # cleared only with a RecipeId the station knows: --clear-error alone was refused
                return _IN_ERROR_RECIPE.format(code=code)
            return _IN_ERROR.format(code=code)
        if bits[2]:
            return _RESULT_UP
        if bits[1]:
            return _BUSY
        return _STARTING

    def close(self) -> None:
        self.c.close()


class OpcUaLink:
    """The simulated PLC's side of the OPC UA vision system of :mod:`.plc_opcua`."""

    RESULT = ("InspectionId", "ResultCode", "Score", "ProcessingTimeMs", "PartId", "TriggerSeq")

    def __init__(self, host: str, port: int, timeout_s: float = 5.0):
        from asyncua.sync import Client
        from .plc_opcua import NAMESPACE
        self.c = Client(f"opc.tcp://{host}:{port}/lineguard/", timeout=timeout_s)
        try:
            self.c.connect()
        except Exception as exc:  # noqa: BLE001 - said in the plant's words
            self.c._stop_own_tloop()   # its event-loop thread, or the process would not exit
            # a TimeoutError says nothing of itself: it printed "... 127.0.0.1:P ()" for a
            # Modbus port, which answers an OPC UA Hello with silence
            why = (f"no OPC UA answer in {timeout_s:g} s: is {port} the station's --opcua-port, not its "
                   "--modbus-port or another program's port?" if isinstance(exc, TimeoutError) else _reason(exc))
            raise ConnectionError(f"no OPC UA server at {host}:{port}{f' ({why})' if why else ''}; start the "
                                  f"station with --opcua-port {port}") from exc
        ns = self.c.get_namespace_index(NAMESPACE)
        self.ns = ns
        vs = self.c.nodes.objects.get_child([f"{ns}:VisionSystem"])
        self.sm = vs.get_child([f"{ns}:VisionStateMachine"])
        self.recipes = vs.get_child([f"{ns}:RecipeManagement"])
        self.results = vs.get_child([f"{ns}:ResultManagement"])
        diag = vs.get_child([f"{ns}:Diagnostics"])
        self._ready = diag.get_child([f"{ns}:TriggerReady"])
        self._alarm = diag.get_child([f"{ns}:AlarmCode"])
        self._valid = self.results.get_child([f"{ns}:ResultsValid"])
        self._result_nodes = [self.results.get_child([f"{ns}:{n}"]) for n in self.RESULT]
        state = self.sm.get_child([f"{ns}:CurrentState"]).read_value()
        if state in ("Preoperational", "Halted"):
            self.sm.call_method(f"{ns}:Start")

    def ready(self) -> bool:
        return bool(self._ready.read_value())

    def alarm_code(self) -> int:
        return int(self._alarm.read_value())

    def put_recipe(self, recipe_id: int) -> None:
        """Nothing to write ahead: OPC UA selects a recipe by a method call, checked there."""

    def select_recipe(self, recipe_id: int) -> None:
        from asyncua import ua
        try:
            self.recipes.call_method(f"{self.ns}:SelectRecipe", ua.Variant(recipe_id, ua.VariantType.UInt32))
        except ua.UaStatusCodeError as exc:
            # the status alone ("One or more arguments are invalid.(BadInvalidArgument)") does not
            # say which recipes there are: the station's LastRefusal does ("... known: [1, 2]")
            raise ValueError(self._refusal(exc)) from exc

    def _refusal(self, exc: Exception) -> str:
        """A refused call in the station's words (Diagnostics/LastRefusal) with its status."""
        from asyncua import ua
        try:
            status = ua.StatusCode(exc.code).name      # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - not a status error: its own words
            status = _reason(exc)
        try:
            why = str(self.c.nodes.objects.get_child([f"{self.ns}:VisionSystem", f"{self.ns}:Diagnostics",
                                                      f"{self.ns}:LastRefusal"]).read_value() or "")
        except Exception:  # noqa: BLE001 - the status is the answer then
            why = ""
        return f"{why} ({status})" if why else str(exc)

    def trigger(self, part_id: int) -> None:
        from asyncua import ua
        self.sm.call_method(f"{self.ns}:StartSingleJob", ua.Variant(part_id, ua.VariantType.UInt32))

    def result_valid(self) -> bool:
        return bool(self._valid.read_value())

    def read_result(self) -> dict[str, Any]:
        v = dict(zip(self.RESULT, self.c.read_values(self._result_nodes)))
        return {"inspection_id": v["InspectionId"], "code": v["ResultCode"], "score": v["Score"],
                "ms": v["ProcessingTimeMs"], "part_id": v["PartId"], "seq": v["TriggerSeq"]}

    def ack(self) -> None:
        self.results.call_method(f"{self.ns}:AcknowledgeResult")

    def clear_error(self) -> None:
        # Reset clears the error (back to Preoperational), Start makes it Operational again
        self.sm.call_method(f"{self.ns}:Reset")
        self.sm.call_method(f"{self.ns}:Start")

    def not_ready_reason(self) -> str:
        ns = self.ns
        state = self.sm.get_child([f"{ns}:CurrentState"]).read_value()
        if state == "Error":
            code = self.c.nodes.objects.get_child([f"{ns}:VisionSystem", f"{ns}:Diagnostics",
                                                   f"{ns}:ErrorCode"]).read_value()
            return _IN_ERROR.format(code=code)
        if self.result_valid():
            return _RESULT_UP
        if state == "Operational":
            return _BUSY
        return f"it is {state} (not Operational): {_STARTING}"

    def close(self) -> None:
        self.c.disconnect()


def _reason(exc: BaseException) -> str:
    """What an exception says, for a line in brackets: its text, else its kind's name (a bare
    TimeoutError() printed "()"), never empty for a kind of its own."""
    text = " ".join(str(exc).split())
    if text:
        return text[:200]
    name = type(exc).__name__
    return "" if name in ("Exception", "OSError") else name


# why the station is not TriggerReady, as the simulated PLC reads it off the link
_IN_ERROR = ("it is in Error (ErrorCode {code}, see /health): line-sim --clear-error clears it first, as the "
             "PLC's reset does")
_IN_ERROR_RECIPE = ("it is in Error (ErrorCode {code}: RecipeId names no recipe of the station, see /health for "
                    "those it has): line-sim --recipe ID --clear-error with one of them clears it")
_RESULT_UP = "a result is waiting for the PLC's acknowledgement (ResultsValid is high)"
_BUSY = "it is busy inspecting a part and has not answered (see /health: the model, the camera folder)"
_STARTING = "it is still starting or holds its links until the station is up (see /health)"


def connect(protocol: str, host: str, port: int) -> PlcLink:
    if protocol == "modbus":
        return ModbusLink(host, port)
    if protocol == "opcua":
        return OpcUaLink(host, port)
    raise ValueError(f"protocol {protocol!r}: use modbus or opcua")


class ImageFeeder:
    """Puts the next part's image where the station's camera folder is, as a camera would."""

    def __init__(self, images: Path, drop_dir: Optional[Path], protocol: str = "plc"):
        # "sim-" files are this simulator's own copies (a source folder may be the drop folder)
        files = sorted(p for p in Path(images).iterdir()
                       if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith("sim-"))
        if not files:
            raise ValueError(f"no part images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {images}")
        self.files = files
        self.drop_dir = Path(drop_dir) if drop_dir is not None else None
        self._written: list[Path] = []
        self.n = 0
        # each simulator's own names: two of them (two links, two lines) writing into one
        # folder both wrote sim-0000001.png, each overwriting the other's part
        self.prefix = f"sim-{protocol}-{os.getpid()}-"

    def feed(self) -> None:
        src = self.files[self.n % len(self.files)]
        self.n += 1
        if self.drop_dir is None:
            return
        target = self.drop_dir / f"{self.prefix}{self.n:07d}{src.suffix.lower()}"
        # written whole, then renamed: the station must never read half an image
        fd, tmp = tempfile.mkstemp(dir=self.drop_dir, prefix=".sim-", suffix=".part")
        with os.fdopen(fd, "wb") as fh:
            fh.write(src.read_bytes())
        os.replace(tmp, target)
        self._written.append(target)
        while len(self._written) > 3:   # keep the folder small; the station reads only the newest
            self._written.pop(0).unlink(missing_ok=True)

    def cleanup(self) -> None:
        for p in self._written:
            p.unlink(missing_ok=True)
        self._written.clear()


@dataclass
class SimReport:
    protocol: str
    parts: int
    rate: float
    window_ms: float
    latencies_ms: list[float] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)
    timeouts: int = 0          # the station answered NG for a missed inspection window
    late: int = 0              # the PLC saw ResultsValid after the window
    no_answer: int = 0         # no ResultsValid at all within the PLC's patience
    mismatched: int = 0        # the answer carried another part's id
    # the station was not ready when a part came (its previous part not yet answered and
    # acknowledged, or TriggerReady low), and let it go more than a period late
    overruns: int = 0
    max_send_delay_ms: float = 0.0   # the most a trigger went out after its part's due time
    wall_s: float = 0.0
    stopped: Optional[str] = None   # why the run ended before its last part (the link lost, never ready)

    @property
    def missed_windows(self) -> int:
        return self.timeouts + self.late + self.no_answer

    def summary(self) -> dict[str, Any]:
        import numpy as np
        lat = np.asarray(self.latencies_ms, dtype=float)
        q = (lambda p: round(float(np.percentile(lat, p)), 2)) if lat.size else (lambda p: None)
        return {"protocol": self.protocol, "parts": self.parts, "rate_per_s": self.rate, "window_ms": self.window_ms,
                "answered": int(lat.size), "latency_ms": {"p50": q(50), "p95": q(95), "p99": q(99),
                                                          "max": round(float(lat.max()), 2) if lat.size else None,
                                                          "mean": round(float(lat.mean()), 2) if lat.size else None},
                "missed_windows": self.missed_windows, "timeouts": self.timeouts, "late": self.late,
                "no_answer": self.no_answer, "mismatched": self.mismatched, "overruns": self.overruns,
                "result_codes": dict(sorted(self.codes.items())), "stopped": self.stopped,
                "achieved_rate_per_s": self.achieved_rate, "max_send_delay_ms": round(self.max_send_delay_ms, 1),
                "rate_kept": self.rate_kept, "rate": self.rate_said()}

    @property
    def achieved_rate(self) -> Optional[float]:
        return round(self.triggered / self.wall_s, 2) if self.wall_s else None

    @property
    def rate_kept(self) -> bool:
        """Every part went out on time (none an overrun): the station kept the rate asked."""
        return self.overruns == 0

    def rate_said(self) -> str:
        """The rate achieved against the rate asked, in words ("9.68/s of 40/s asked")."""
        got = self.achieved_rate
        return f"{got if got is not None else '-'}/s of {self.rate:g}/s asked"

    @property
    def triggered(self) -> int:
        return len(self.latencies_ms) + self.no_answer


def run(link: PlcLink, parts: int, rate: float, feeder: Optional[ImageFeeder], window_ms: float,
        first_part_id: int = 1, poll_s: float = 0.001, patience_s: float = 10.0,
        on_part: Optional[Callable[[int, dict[str, Any], float], None]] = None, protocol: str = "",
        say: Optional[Callable[[str], None]] = None) -> SimReport:
    """Trigger ``parts`` parts at ``rate`` per second; time each trigger to ResultsValid.

    A result left up by the last run (stopped between ResultsValid and its ack, as a PLC
    restarting mid-handshake leaves one) is acknowledged first and ``say`` (default:
    stderr) is told which part's it was: a real PLC does so after its restart, and the
    station takes no trigger until it is. Before, the run waited 10 s for TriggerReady
    and blamed an Error there was none of."""
    if parts < 1:
        raise ValueError("parts must be at least 1")
    if rate <= 0:
        raise ValueError("rate must be positive (parts per second)")
    rep = SimReport(protocol, parts, rate, window_ms)
    say = say or (lambda text: print(f"line-sim: {text}", file=sys.stderr, flush=True))
    start = time.perf_counter()
    try:
        _ack_leftover(link, say)
        _run_parts(link, rep, parts, rate, feeder, window_ms, first_part_id, poll_s, patience_s, on_part, start)
    except (TimeoutError, ConnectionError, OSError) as exc:
        # the parts so far are reported (a run of hours is not lost to one dropped connection)
        rep.stopped = str(exc)
    except Exception as exc:  # noqa: BLE001 - the PLC library's own errors (pymodbus ModbusIOException)
        rep.stopped = f"{type(exc).__name__}: {exc}"
    rep.wall_s = time.perf_counter() - start
    return rep


def _ack_leftover(link: PlcLink, say: Callable[[str], None]) -> None:
    """Acknowledge a result that was up before this run began (see :func:`run`)."""
    if not link.result_valid():
        return
    left = link.read_result()
    link.ack()
    say(f"a result of part {left['part_id']} was waiting from before (ResultCode {left['code']}, "
        f"inspection {left['inspection_id']}): acknowledged")


def _run_parts(link: PlcLink, rep: SimReport, parts: int, rate: float, feeder: Optional[ImageFeeder],
               window_ms: float, first_part_id: int, poll_s: float, patience_s: float,
               on_part: Optional[Callable[[int, dict[str, Any], float], None]], start: float) -> None:
    # here, not at the top: plc_handshake is the station's side (sqlalchemy); the simulator
    # is a PLC client and loads without the station's stack
    from .plc_handshake import ResultCode

    period = 1.0 / rate
    done: Optional[float] = None        # when the previous part's answer was read and acknowledged
    for i in range(parts):
        due = start + i * period
        now = time.perf_counter()
        if now < due:
            time.sleep(due - now)
        if feeder is not None:
            feeder.feed()
        ready_at_once = link.ready()
        waited = time.perf_counter() if ready_at_once else _wait(link.ready, patience_s, poll_s)
        if waited is None:
            raise TimeoutError(f"the station was not TriggerReady for {patience_s:g} s before part {i + 1}: "
                               f"{link.not_ready_reason()}")
        # The station's overrun: not ready when the part came (the previous part's answer not
        # yet up and acknowledged, or TriggerReady low), so it went out more than a period late.
        # The simulator waits for each answer before the next trigger, so TriggerReady is
        # always high by then: counted by TriggerReady alone, 80 parts at 40/s judged in
        # 50-200 ms each were "overruns 0". The simulator's own delays (its first connection,
        # copying the image) are none: a single part at 5/s to an idle station counted one.
        held = max(done if done is not None else due, due if ready_at_once else waited)
        if held > due + period:
            rep.overruns += 1
        part_id = (first_part_id + i) & 0xFFFFFFFF
        t0 = time.perf_counter()
        rep.max_send_delay_ms = max(rep.max_send_delay_ms, (t0 - due) * 1000)
        link.trigger(part_id)
        seen = _wait(link.result_valid, patience_s, poll_s)
        if seen is None:
            rep.no_answer += 1
            link.ack()
            done = time.perf_counter()
            continue
        latency_ms = (seen - t0) * 1000
        res = link.read_result()
        link.ack()
        done = time.perf_counter()
        rep.latencies_ms.append(latency_ms)
        name = ResultCode(res["code"]).name if res["code"] in ResultCode._value2member_map_ else str(res["code"])
        rep.codes[name] = rep.codes.get(name, 0) + 1
        if res["code"] == ResultCode.TIMEOUT:
            rep.timeouts += 1
        elif latency_ms > window_ms:
            rep.late += 1
        if res["part_id"] != part_id:
            rep.mismatched += 1
        if on_part is not None:
            on_part(part_id, res, latency_ms)


def _wait(pred: Callable[[], bool], patience_s: float, poll_s: float) -> Optional[float]:
    """perf_counter when ``pred`` first held, or None after ``patience_s``."""
    deadline = time.perf_counter() + patience_s
    while True:
        if pred():
            return time.perf_counter()
        if time.perf_counter() > deadline:
            return None
        time.sleep(poll_s)
