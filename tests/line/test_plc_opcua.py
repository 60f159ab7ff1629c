"""The OPC UA PLC handshake (OPC 40100 style), driven by a real asyncua client on loopback."""
from __future__ import annotations

import socket
import threading
import time

import pytest

pytest.importorskip("asyncua")

from fake_inspector import FakeInspector  # noqa: E402
from lineguard.line.plc_handshake import ResultCode  # noqa: E402

from .conftest import png_bytes  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Plc:
    """What a PLC program does, over a real OPC UA session."""

    RESULT = ["ResultsValid", "ResultId", "TriggerSeq", "PartId", "InspectionId", "Verdict", "ResultCode", "Score",
              "ModelVersion", "ProcessingTimeMs", "RecipeId", "Reason"]

    def __init__(self, endpoint: str):
        from asyncua.sync import Client
        from lineguard.line.plc_opcua import NAMESPACE
        self.c = Client(endpoint, timeout=10)
        self.c.connect()
        ns = self.c.get_namespace_index(NAMESPACE)
        self.ns = ns
        vs = self.c.nodes.objects.get_child([f"{ns}:VisionSystem"])
        self.vs = vs
        self.sm = vs.get_child([f"{ns}:VisionStateMachine"])
        self.recipes = vs.get_child([f"{ns}:RecipeManagement"])
        self.results = vs.get_child([f"{ns}:ResultManagement"])
        self.diag = vs.get_child([f"{ns}:Diagnostics"])
        self.events: list = []
        self._got = threading.Event()

    def read(self, obj, name: str):
        return obj.get_child([f"{self.ns}:{name}"]).read_value()

    def state(self) -> tuple[str, str]:
        return self.read(self.sm, "CurrentState"), self.read(self.sm, "CurrentSubState")

    def result(self) -> dict:
        return {n: self.read(self.results, n) for n in self.RESULT}

    def call(self, obj, name: str, *args):
        return obj.call_method(f"{self.ns}:{name}", *args)

    def start_job(self, part_id: int) -> int:
        from asyncua import ua
        return self.call(self.sm, "StartSingleJob", ua.Variant(part_id, ua.VariantType.UInt32))

    def select_recipe(self, rid: int):
        from asyncua import ua
        return self.call(self.recipes, "SelectRecipe", ua.Variant(rid, ua.VariantType.UInt32))

    def ack(self) -> None:
        self.call(self.results, "AcknowledgeResult")

    def subscribe(self) -> None:
        plc = self

        class Handler:
            def event_notification(self, event):
                plc.events.append(event.get_event_props_as_fields_dict())
                plc._got.set()

        sub = self.c.create_subscription(20, Handler())
        etype = self.c.nodes.root.get_child(["0:Types", "0:EventTypes", "0:BaseEventType",
                                             f"{self.ns}:ResultReadyEventType"])
        sub.subscribe_events(self.vs, etype)

    def wait(self, pred, what: str, timeout: float = 15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = pred()
            if v:
                return v
            time.sleep(0.01)
        raise AssertionError(f"{what} did not happen in {timeout} s: state {self.state()}, result {self.result()}")

    def wait_valid(self, timeout: float = 15.0) -> dict:
        self.wait(lambda: self.read(self.results, "ResultsValid"), "ResultsValid", timeout)
        return self.result()

    def close(self) -> None:
        self.c.disconnect()


@pytest.fixture
def ua_cell(sqlite_station):
    from lineguard.line.plc_opcua import OpcUaStation
    made = []

    # 8 s unless the test is of the window (150 ms, 1.5 s): as test_plc_modbus's plc_cell (3 s before)
    def make(images, recipes=None, window_ms=8000.0, delay_s=0.0, **kw):
        st = sqlite_station()
        if delay_s:
            st.add_model(FakeInspector(0.5, "v-slow", delay_s=delay_s).to_bytes(), "slow", activate=True)
        queue = list(images)

        def source():
            item = queue.pop(0)
            if isinstance(item, Exception):
                raise item
            if callable(item):          # a camera that answers when the test says so
                item = item()
            return item, "frame.png"

        srv = OpcUaStation(st, source, recipes or {1: "slow" if delay_s else "cell"}, line="L1",
                           station_name="S1", port=_free_port(), window_ms=window_ms, **kw).start()
        made.append(srv)
        plc = Plc(srv.endpoint)
        made.append(plc)
        return st, srv, plc

    yield make
    for thing in reversed(made):
        thing.close()


def test_handshake_order_event_and_result_held_until_ack(ua_cell):
    from asyncua import ua
    st, srv, plc = ua_cell([png_bytes(230, seed=1), png_bytes(30, seed=2)], delay_s=0.4, autostart=False)
    plc.subscribe()
    assert plc.state() == ("Preoperational", "")
    with pytest.raises(ua.UaStatusCodeError, match="BadInvalidState"):
        plc.start_job(1)                                   # not started: refused, nothing judged
    assert "call Start" in plc.read(plc.diag, "LastRefusal")
    plc.call(plc.sm, "Start")
    plc.wait(lambda: plc.state() == ("Operational", "Ready"), "Operational/Ready")
    assert plc.read(plc.diag, "TriggerReady") is True
    seq = plc.start_job(70001)
    assert seq == 1
    plc.wait(lambda: plc.state() == ("Operational", "SingleExecution"), "SingleExecution")
    assert plc.read(plc.diag, "TriggerReady") is False
    with pytest.raises(ua.UaStatusCodeError, match="BadInvalidState"):
        plc.start_job(70002)                               # one part at a time
    res = plc.wait_valid()
    rec = st.get(res["InspectionId"])
    assert (rec.verdict, rec.source, rec.line, rec.product) == ("NG", "plc", "L1", "slow")
    assert res["Verdict"] == "NG" and res["ResultCode"] == ResultCode.NG and res["PartId"] == 70001
    assert res["TriggerSeq"] == 1 and res["ResultId"] == "S1-1" and res["RecipeId"] == 1
    assert res["ModelVersion"] == rec.model_version and abs(res["Score"] - rec.score) < 1e-9
    assert res["ProcessingTimeMs"] >= 400
    plc.wait(lambda: plc.events, "ResultReady event")
    ev = plc.events[0]
    assert (ev["PartId"].Value, ev["Verdict"].Value, ev["InspectionId"].Value, ev["ResultCode"].Value) == \
        (70001, "NG", rec.id, 2)
    assert ev["PartId"].VariantType == ua.VariantType.UInt32
    time.sleep(0.5)
    assert plc.read(plc.results, "ResultsValid") and plc.state() == ("Operational", "SingleExecution"), \
        "ResultsValid must stay high until AcknowledgeResult"
    plc.ack()
    plc.wait(lambda: plc.state() == ("Operational", "Ready"), "Ready after the ack")
    assert plc.read(plc.results, "ResultsValid") is False
    assert plc.start_job(70002) == 2
    res = plc.wait_valid()
    assert (res["Verdict"], res["PartId"], res["TriggerSeq"]) == ("OK", 70002, 2)
    assert st.get(res["InspectionId"]).verdict == "OK"
    plc.call(plc.sm, "Halt")
    plc.wait(lambda: plc.state() == ("Halted", ""), "Halted")


def test_no_verdict_in_the_window_is_ng_timeout_and_the_late_verdict_never_replaces_it(ua_cell):
    from sqlalchemy import select
    from lineguard.line.orm import LineSignal
    st, srv, plc = ua_cell([png_bytes(30, seed=3), png_bytes(30, seed=4)], delay_s=1.0, window_ms=150)
    plc.start_job(5)
    res = plc.wait_valid()
    assert (res["Verdict"], res["ResultCode"], res["InspectionId"], res["PartId"]) == ("NG", ResultCode.TIMEOUT, 0, 5)
    assert "150 ms" in res["Reason"]
    plc.ack()
    plc.wait(lambda: plc.read(plc.diag, "TriggerReady"), "Ready after the ack")
    plc.start_job(6)                             # the next part, while part 5's late OK arrives
    time.sleep(1.3)
    res6 = plc.wait_valid()
    assert res6["PartId"] == 6 and res6["TriggerSeq"] == 2 and res6["ResultCode"] == ResultCode.TIMEOUT, \
        "part 5's late verdict must never be given to part 6"
    with st.db.session() as s:
        first = s.scalars(select(LineSignal).where(LineSignal.part_tag == 5)).one()
    assert (first.protocol, first.signal, first.result_code, first.inspection_id) == \
        ("opcua", "NG", ResultCode.TIMEOUT, None)
    plc.wait(lambda: _late(st, 5), "the late verdict linked to part 5's signal")
    assert st.get(_late(st, 5)).verdict == "OK"


def test_a_part_judged_late_while_the_next_is_pending_is_never_matched_to_it(ua_cell):
    """Out-of-order completion: part 5's verdict comes while part 6 is in inspection."""
    release_5 = threading.Event()

    def part_5():
        release_5.wait(30)
        return png_bytes(230, seed=31)            # NG, if it were ever sent

    def part_6():
        plc.wait(lambda: len(st.query()) == 1, "part 5 judged (late)")
        return png_bytes(30, seed=32)             # OK

    st, srv, plc = ua_cell([part_5, part_6], window_ms=1500)
    plc.start_job(5)
    res5 = plc.wait_valid()
    assert (res5["PartId"], res5["ResultCode"]) == (5, ResultCode.TIMEOUT)
    plc.ack()
    plc.wait(lambda: plc.read(plc.diag, "TriggerReady"), "Ready after the ack")
    plc.start_job(6)
    release_5.set()                               # part 5 is judged now, while part 6 waits for its image
    res6 = plc.wait_valid()
    assert (res6["PartId"], res6["TriggerSeq"], res6["Verdict"], res6["ResultCode"]) == (6, 2, "OK", ResultCode.OK)
    rec6 = st.get(res6["InspectionId"])
    assert rec6.verdict == "OK" and "tag6" in rec6.part_id
    plc.wait(lambda: _late(st, 5), "part 5's late verdict linked to its signal")
    late = st.get(_late(st, 5))
    assert late.verdict == "NG" and "tag5" in late.part_id and late.id != res6["InspectionId"]


def _late(st, tag):
    from sqlalchemy import select
    from lineguard.line.orm import LineSignal
    with st.db.session() as s:
        return s.scalars(select(LineSignal.late_inspection_id).where(LineSignal.part_tag == tag)).one_or_none()


def test_recipe_switch_selects_the_product_and_unknown_recipe_is_refused(ua_cell):
    from asyncua import ua
    st, srv, plc = ua_cell([png_bytes(30, seed=7)], recipes={1: "cell", 2: "band"})
    st.add_model(FakeInspector(0.5, "band-v").to_bytes(), "band", activate=True)
    assert plc.read(plc.recipes, "Recipes") == ["1=cell", "2=band"]
    assert plc.read(plc.recipes, "ActiveRecipe") == 1
    plc.select_recipe(2)
    plc.wait(lambda: plc.read(plc.recipes, "ActiveRecipe") == 2, "ActiveRecipe 2")
    with pytest.raises(ua.UaStatusCodeError, match="BadInvalidArgument"):
        plc.select_recipe(9)
    assert "known: [1, 2]" in plc.read(plc.diag, "LastRefusal")
    assert plc.read(plc.recipes, "ActiveRecipe") == 2      # the last good recipe stays in effect
    plc.start_job(11)
    res = plc.wait_valid()
    assert res["RecipeId"] == 2 and res["ModelVersion"] == "band-v"
    assert st.get(res["InspectionId"]).product == "band"


def test_faults_put_the_vision_system_in_error_and_health_until_reset(ua_cell):
    from asyncua import ua
    st, srv, plc = ua_cell([LookupError("camera lost"), png_bytes(30, seed=4)])
    plc.start_job(21)
    res = plc.wait_valid()
    assert (res["Verdict"], res["ResultCode"], res["PartId"]) == ("NG", ResultCode.NO_IMAGE, 21)
    plc.wait(lambda: plc.state()[0] == "Error", "state Error")
    assert plc.read(plc.diag, "ErrorCode") == ResultCode.NO_IMAGE
    assert "camera lost" in plc.read(plc.diag, "ErrorMessage") and "camera lost" in st.faults["plc"]
    from fastapi.testclient import TestClient
    from lineguard.server.app import create_app
    st.plc = [srv]          # serve keeps a list when Modbus and OPC UA run side by side
    with TestClient(create_app(station=st)) as http:
        health = http.get("/health")
    assert health.status_code == 503 and "camera lost" in health.json()["faults"]["plc"]
    assert health.json()["plc"]["opcua"]["state"] == "Error"
    plc.ack()
    with pytest.raises(ua.UaStatusCodeError, match="BadInvalidState"):
        plc.start_job(22)                                   # still in error after the ack
    with pytest.raises(ua.UaStatusCodeError, match="BadInvalidState"):
        plc.call(plc.sm, "Start")                           # Start does not skip Reset
    plc.call(plc.sm, "Reset")
    plc.wait(lambda: plc.state() == ("Preoperational", ""), "Preoperational after Reset")
    assert "plc" not in st.faults and plc.read(plc.diag, "ErrorCode") == 0
    plc.call(plc.sm, "Start")
    plc.wait(lambda: plc.read(plc.diag, "TriggerReady"), "Ready after Start")
    plc.start_job(23)
    assert plc.wait_valid()["Verdict"] == "OK"


def test_bad_settings_and_a_taken_port_are_refused_with_what_to_do(sqlite_station):
    from lineguard.line.plc_opcua import OpcUaStation
    st = sqlite_station()
    with pytest.raises(ValueError, match="at least one recipe"):
        OpcUaStation(st, lambda: (b"", ""), {}, line="L1")
    with pytest.raises(ValueError, match="window"):
        OpcUaStation(st, lambda: (b"", ""), {1: "cell"}, line="L1", window_ms=-5)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        with pytest.raises(RuntimeError, match="--opcua-port"):
            OpcUaStation(st, lambda: (b"", ""), {1: "cell"}, line="L1", port=held.getsockname()[1]).start()


def test_serve_refuses_bad_opcua_settings_with_what_to_do(tmp_path):
    from cli_runner import run_serve_refusal
    cam = tmp_path / "cam"
    cam.mkdir()

    def serve(*args):
        return run_serve_refusal("--data", tmp_path / "d", "--product", "cell", "--line", "L1", "--plc-images", cam,
                                 *args)
    r = serve("--opcua-port", "70000")
    assert r.returncode == 2 and "70000 is not a TCP port" in r.stderr and "--opcua-port" in r.stderr
    r = serve("--opcua-port", "4999", "--modbus-port", "4999")
    assert r.returncode == 2 and "must differ" in r.stderr


def test_the_test_part_verification_is_shown_for_an_interlock(ua_cell):
    st, srv, plc = ua_cell([png_bytes(230, seed=41), png_bytes(30, seed=42)])
    st.test_parts.add("cell", "900001", "NG")
    srv.hs.refresh_verification()
    plc.wait(lambda: plc.read(plc.diag, "VerificationState") == 1, "VerificationState due")
    assert plc.read(plc.diag, "Verified") is False
    plc.wait(lambda: plc.state() == ("Operational", "Ready"), "Operational/Ready")
    plc.start_job(900001)                              # the red rabbit, by its PartId
    assert plc.wait_valid()["Verdict"] == "NG"
    plc.wait(lambda: plc.read(plc.diag, "VerificationState") == 3, "VerificationState passed")
    assert plc.read(plc.diag, "Verified") is True
    plc.ack()
    plc.wait(lambda: plc.state() == ("Operational", "Ready"), "Ready after the ack")
    plc.start_job(900001)                              # again, passed as OK: failed
    assert plc.wait_valid()["Verdict"] == "OK"
    plc.wait(lambda: plc.read(plc.diag, "VerificationState") == 4, "VerificationState failed")
    assert plc.read(plc.diag, "Verified") is False and srv.snapshot()["verification"] == "failed"


def test_a_run_of_ng_parts_sets_alarm_and_acknowledge_alarms_clears_it(ua_cell):
    st, srv, plc = ua_cell([png_bytes(230, seed=40 + i) for i in range(5)], verify_every_s=3600)
    assert plc.read(plc.diag, "Alarm") is False and plc.read(plc.diag, "AlarmCode") == 0
    for i in range(5):
        plc.start_job(600 + i)
        assert plc.wait_valid()["Verdict"] == "NG"
        # the fifth NG part's answer comes with the alarm already set
        assert plc.read(plc.diag, "Alarm") is (i == 4)
        plc.ack()
        plc.wait(lambda: plc.state() == ("Operational", "Ready"), "Ready")
    assert plc.read(plc.diag, "AlarmCode") == 1
    plc.call(plc.diag, "AcknowledgeAlarms")
    plc.wait(lambda: plc.read(plc.diag, "Alarm") is False, "Alarm cleared")
    assert plc.read(plc.diag, "AlarmCode") == 0
    (done,) = st.alarms.history()
    assert done["acked_by"] == "plc (opcua)"
    assert done["ack_cause"] is None


def _five_ng_in_a_row(ua_cell, seed, first_part):
    """A station whose PLC took five NG parts in a row: the NG-run alarm is raised."""
    st, srv, plc = ua_cell([png_bytes(230, seed=seed + i) for i in range(5)], verify_every_s=3600)
    for i in range(5):
        plc.start_job(first_part + i)
        assert plc.wait_valid()["Verdict"] == "NG"
        plc.ack()
        plc.wait(lambda: plc.state() == ("Operational", "Ready"), "Ready")
    return st, plc


def test_acknowledge_alarms_with_cause_says_what_they_turned_out_to_be(ua_cell):
    st, plc = _five_ng_in_a_row(ua_cell, 50, 700)
    from asyncua import ua
    plc.call(plc.diag, "AcknowledgeAlarmsWithCause", ua.Variant(5, ua.VariantType.UInt32))    # 5: model
    plc.wait(lambda: plc.read(plc.diag, "Alarm") is False, "Alarm cleared")
    (done,) = st.alarms.history()
    assert (done["acked_by"], done["ack_cause"]) == ("plc (opcua)", "model")


def test_acknowledge_alarms_of_kinds_leaves_the_others(ua_cell):
    """AcknowledgeAlarmsOfKinds(Kinds, Cause): the HMI showed one alarm; the others stay
    for their own acknowledgement (Kinds: AlarmCode's bits, 0 every one)."""
    st, plc = _five_ng_in_a_row(ua_cell, 80, 760)
    assert plc.read(plc.diag, "AlarmCode") == 1                 # the NG run
    from asyncua import ua
    u32 = (lambda v: ua.Variant(v, ua.VariantType.UInt32))
    with pytest.raises(Exception, match="BadOutOfRange"):              # -1 would name every kind
        plc.call(plc.diag, "AcknowledgeAlarmsOfKinds", ua.Variant(-1, ua.VariantType.Int32), u32(1))
    plc.call(plc.diag, "AcknowledgeAlarmsOfKinds", u32(2), u32(1))     # the NG rate, not active: none taken
    plc.call(plc.diag, "AcknowledgeAlarmsOfKinds", u32(1), u32(4))     # the NG run, a camera's
    plc.wait(lambda: plc.read(plc.diag, "Alarm") is False, "Alarm cleared")
    (done,) = st.alarms.history()
    assert (done["kind"], done["acked_by"], done["ack_cause"]) == ("ng_run", "plc (opcua)", "camera")


# -- arguments, timestamps and the server's identity -------------------------------------

def test_start_single_job_takes_an_integer_part_id_in_range_and_refuses_anything_else(ua_cell):
    """A DINT -5, a 2^40, a Double, a String or no PartId never reaches PartId (a value a
    UInt32 cannot encode broke every later Read and subscription); a DINT in range is taken."""
    from asyncua import ua
    from asyncua.client.ua_client import UaClient
    from asyncua.sync import sync_uaclient_method
    st, srv, plc = ua_cell([png_bytes(30, seed=90)])
    plc.wait(lambda: plc.state() == ("Operational", "Ready"), "Operational/Ready")
    bad = [((ua.Variant(-5, ua.VariantType.Int32),), "BadOutOfRange", "PartId -5 is out of range"),
           ((ua.Variant(2 ** 40, ua.VariantType.UInt64),), "BadOutOfRange", "PartId 1099511627776 is out of range"),
           ((ua.Variant(3.7, ua.VariantType.Double),), "BadTypeMismatch", "must be an integer (UInt32"),
           ((ua.Variant("42", ua.VariantType.String),), "BadTypeMismatch", "got String '42'"),
           ((ua.Variant(True, ua.VariantType.Boolean),), "BadTypeMismatch", "got Boolean True"),
           ((), "BadArgumentsMissing", "PartId (the PLC's part number) missing"),
           ((ua.Variant(1, ua.VariantType.UInt32), ua.Variant(2, ua.VariantType.UInt32)), "BadTooManyArguments",
            "2 arguments given, it takes 1")]
    for args, status, why in bad:
        with pytest.raises(ua.UaStatusCodeError, match=status):
            plc.call(plc.sm, "StartSingleJob", *args)
        plc.wait(lambda: why in plc.read(plc.diag, "LastRefusal"), f"LastRefusal saying {why!r}")
        assert "StartSingleJob refused" in plc.read(plc.diag, "LastRefusal")
        assert "no part triggered" in plc.read(plc.diag, "LastRefusal")
    # each argument's own status comes back too
    call = sync_uaclient_method(UaClient.call)(plc.c)
    (res,) = call([ua.CallMethodRequest(ObjectId=plc.sm.nodeid,
                                        MethodId=plc.sm.get_child([f"{plc.ns}:StartSingleJob"]).nodeid,
                                        InputArguments=[ua.Variant(-5, ua.VariantType.Int32)])])
    assert res.StatusCode.name == "BadOutOfRange" and [r.name for r in res.InputArgumentResults] == ["BadOutOfRange"]
    assert srv.snapshot()["triggers"] == 0 and not st.query(), "a refused call triggers nothing"
    assert plc.state() == ("Operational", "Ready") and plc.read(plc.diag, "TriggerReady") is True
    # the server still answers a Read of every result variable, and a subscription still sees changes
    got = []

    class Handler:
        def datachange_notification(self, node, val, data):
            got.append(val)

    sub = plc.c.create_subscription(20, Handler())
    sub.subscribe_data_change(plc.results.get_child([f"{plc.ns}:PartId"]))
    assert plc.result()["PartId"] == 0
    assert plc.call(plc.sm, "StartSingleJob", ua.Variant(4242, ua.VariantType.Int32)) == 1    # an S7 DINT
    res = plc.wait_valid()
    assert (res["PartId"], res["Verdict"]) == (4242, "OK")
    plc.wait(lambda: 4242 in got, "the PartId subscription's data change")


def test_every_method_with_arguments_checks_them(ua_cell):
    """SelectRecipe and the alarm acknowledgements take an integer Variant in UInt32's range
    (a DINT too) and refuse anything else with what is wrong; none changes anything."""
    from asyncua import ua
    st, srv, plc = ua_cell([png_bytes(30, seed=91)], recipes={1: "cell", 2: "band"})
    u32 = (lambda v: ua.Variant(v, ua.VariantType.UInt32))
    cases = [(plc.recipes, "SelectRecipe", (ua.Variant(-1, ua.VariantType.Int32),), "BadOutOfRange",
              "RecipeId -1 is out of range"),
             (plc.recipes, "SelectRecipe", (ua.Variant("2", ua.VariantType.String),), "BadTypeMismatch",
              "RecipeId must be an integer"),
             (plc.recipes, "SelectRecipe", (ua.Variant(2.0, ua.VariantType.Float),), "BadTypeMismatch", "got Float"),
             (plc.recipes, "SelectRecipe", (), "BadArgumentsMissing", "RecipeId (one of RecipeManagement/Recipes)"),
             (plc.diag, "AcknowledgeAlarmsWithCause", (ua.Variant(5.0, ua.VariantType.Double),), "BadTypeMismatch",
              "Cause must be an integer"),
             (plc.diag, "AcknowledgeAlarmsWithCause", (ua.Variant(2 ** 32, ua.VariantType.Int64),), "BadOutOfRange",
              "Cause 4294967296 is out of range"),
             (plc.diag, "AcknowledgeAlarmsWithCause", (), "BadArgumentsMissing", "Cause (0 not said"),
             (plc.diag, "AcknowledgeAlarmsOfKinds", (u32(1),), "BadArgumentsMissing", "Cause (0 not said"),
             (plc.diag, "AcknowledgeAlarmsOfKinds", (u32(1), ua.Variant(-4, ua.VariantType.Int16)), "BadOutOfRange",
              "Cause -4 is out of range"),
             (plc.diag, "AcknowledgeAlarmsOfKinds", (ua.Variant("all", ua.VariantType.String), u32(1)),
              "BadTypeMismatch", "Kinds must be an integer"),
             (plc.sm, "Start", (u32(1),), "BadTooManyArguments", "Start refused: 1 arguments given, it takes none")]
    for obj, method, args, status, why in cases:
        with pytest.raises(ua.UaStatusCodeError, match=status):
            plc.call(obj, method, *args)
        plc.wait(lambda: why in plc.read(plc.diag, "LastRefusal"), f"{method}: LastRefusal saying {why!r}")
        assert f"{method} refused" in plc.read(plc.diag, "LastRefusal")
    assert plc.read(plc.recipes, "ActiveRecipe") == 1
    plc.call(plc.recipes, "SelectRecipe", ua.Variant(2, ua.VariantType.Int32))     # a DINT 2 is recipe 2
    plc.wait(lambda: plc.read(plc.recipes, "ActiveRecipe") == 2, "ActiveRecipe 2")
    plc.call(plc.diag, "AcknowledgeAlarmsWithCause", ua.Variant(1, ua.VariantType.Int32))
    plc.call(plc.diag, "AcknowledgeAlarmsOfKinds", ua.Variant(0, ua.VariantType.Int32),
             ua.Variant(1, ua.VariantType.Byte))


def test_values_carry_source_and_server_timestamps(ua_cell):
    """HMIs and historians order and age values by their timestamps: each written value has both."""
    from datetime import datetime, timezone
    from asyncua import ua
    t0 = datetime.now(timezone.utc)
    st, srv, plc = ua_cell([png_bytes(30, seed=92)])
    plc.wait(lambda: plc.state() == ("Operational", "Ready"), "Operational/Ready")
    plc.start_job(77)
    assert plc.wait_valid()["PartId"] == 77
    t1 = datetime.now(timezone.utc)
    where = {"ResultsValid": plc.results, "PartId": plc.results, "Verdict": plc.results, "ResultCode": plc.results,
             "TriggerReady": plc.diag, "ErrorCode": plc.diag, "CurrentState": plc.sm}
    params = ua.ReadParameters(TimestampsToReturn=ua.TimestampsToReturn.Both)
    for name, obj in where.items():
        params.NodesToRead.append(ua.ReadValueId(NodeId=obj.get_child([f"{plc.ns}:{name}"]).nodeid,
                                                 AttributeId=ua.AttributeIds.Value))
    values = plc.c.nodes.root.read_params(params)
    for name, dv in zip(where, values):
        assert dv.StatusCode.is_good(), name
        for kind in ("SourceTimestamp", "ServerTimestamp"):
            ts = getattr(dv, kind)
            assert ts is not None, f"{name} has no {kind}"
            ts = ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)      # asyncua decodes UTC
            assert t0 <= ts <= t1, f"{name} {kind} {ts} is not when it was written (UTC)"
    # a state update rewrites ResultsValid unchanged: its SourceTimestamp stays when it rose
    valid = plc.results.get_child([f"{plc.ns}:ResultsValid"])
    rose = valid.read_data_value().SourceTimestamp
    with pytest.raises(ua.UaStatusCodeError, match="BadInvalidState"):
        plc.start_job(78)                          # refused: LastRefusal moves, a state update
    plc.wait(lambda: "part 78" in plc.read(plc.diag, "LastRefusal"), "LastRefusal for part 78")
    time.sleep(0.2)
    dv = valid.read_data_value()
    assert dv.Value.Value is True and dv.SourceTimestamp == rose and dv.ServerTimestamp > rose


def test_the_server_offers_anonymous_only_and_names_this_station(ua_cell):
    """No UserName login that takes any password (nor asyncua's 'admin', who may write every
    node); the ApplicationUri is this station's, not asyncua's default shared by every one."""
    import lineguard
    from asyncua import ua
    from asyncua.sync import Client
    st, srv, plc = ua_cell([])
    for user in ("plc", "admin"):
        c = Client(srv.endpoint, timeout=10)
        c.set_user(user)
        c.set_password("anything")
        with pytest.raises(Exception, match="BadIdentityTokenRejected"):
            c.connect()
        try:
            c.disconnect()
        except Exception:  # noqa: BLE001 - it never connected
            pass
    ours = f"urn:{socket.gethostname()}:lineguard:L1:S1"
    for edp in plc.c.get_endpoints():
        assert [t.TokenType for t in edp.UserIdentityTokens] == [ua.UserTokenType.Anonymous]
        assert edp.Server.ApplicationUri == ours
        assert "freeopcua" not in edp.Server.ProductUri.lower()
    assert plc.c.nodes.server.get_child(["0:ServerArray"]).read_value() == [ours]
    build = plc.c.get_node(ua.NodeId(ua.ObjectIds.Server_ServerStatus_BuildInfo)).read_value()
    assert (build.ProductName, build.ManufacturerName, build.SoftwareVersion) == \
        ("lineguard", "lineguard", lineguard.__version__)
    assert "freeopcua" not in build.ProductUri.lower()
    from lineguard.line.plc_opcua import application_uri
    assert application_uri("L1", "S2") != application_uri("L1", "S1") != application_uri("L2", "S1")
    assert application_uri("line 1", "S:1", host="cam-7") == "urn:cam-7:lineguard:line%201:S%3A1"



def test_a_start_single_job_refused_for_its_part_id_sets_its_photo_aside(sqlite_station, tmp_path):
    """The PLC's DINT part counter passed 2^31: StartSingleJob with a negative PartId is
    refused (BadOutOfRange), and the camera, fired with the call, saved a photo. Uncounted,
    that photo was taken as the next part's, and every later part was judged on the photo
    before its own, with no fault."""
    import hashlib
    from asyncua import ua
    from lineguard.line.plc_handshake import CameraFolder
    from lineguard.line.plc_opcua import OpcUaStation
    st = sqlite_station()
    cam = tmp_path / "cam"
    cam.mkdir()
    srv = OpcUaStation(st, CameraFolder(cam, wait_s=5.0), {1: "cell"}, line="L1", station_name="S1",
                       port=_free_port(), window_ms=10_000).start()
    plc = Plc(srv.endpoint)
    try:
        plc.wait(lambda: plc.state() == ("Operational", "Ready"), "Operational/Ready")
        with pytest.raises(ua.UaStatusCodeError, match="BadOutOfRange"):
            plc.call(plc.sm, "StartSingleJob", ua.Variant(-2147483648, ua.VariantType.Int32))
        refusal = plc.read(plc.diag, "LastRefusal")
        (cam / "refused.png").write_bytes(png_bytes(230, seed=130))      # the camera fired with the call
        own = png_bytes(30, seed=131)
        assert plc.start_job(11) == 1
        (cam / "11.png").write_bytes(own)
        res = plc.wait_valid()
        assert (res["PartId"], res["Verdict"]) == (11, "OK"), res
        assert st.get(res["InspectionId"]).image_sha256 == hashlib.sha256(own).hexdigest(), \
            "part 11 judged on the refused call's photo"
        assert "its photo, if the camera took one, is set aside" in refusal
    finally:
        plc.close()
        srv.close()
