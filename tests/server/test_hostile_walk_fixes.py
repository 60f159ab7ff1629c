"""What a hostile-input walk against `lineguard serve` found, each refused as it should be:

- a request body sent one byte every few seconds was never cut (only a pause of 30 s was),
  and past its head the connection cap never closes it: 300 of them took /health down;
- an uploaded .onnx whose tensors name "external data" had onnxruntime read that file
  (the station's own database, relative to its working directory) into the graph;
- a threshold of 5e-324 was saved as a tuned version, and "version": true read as 1;
- an image part sent without a filename was told "a form field is not valid UTF-8 text";
- a 70 KB head arriving in one read passed the 64 KiB head limit; uvicorn's own 400 was
  plain text.

The slow-body tests run a real station process with short deadlines, and count bytes sent,
not seconds.
"""
from __future__ import annotations

import json
import socket
import time

import pytest

from .conftest import HERE, png_bytes, start_fake_station
from .test_tuning import tuned_station  # noqa: F401 - the fixture, shared

SERVE = f"""
import sys
sys.path.insert(0, {str(HERE)!r})
if {{h11}}:     # uvicorn without httptools (a plain install) serves with its h11 protocol
    import uvicorn.protocols.http.auto as auto
    from uvicorn.protocols.http.h11_impl import H11Protocol
    auto.AutoHTTPProtocol = H11Protocol
import lineguard.server.app as app
app.BODY_STALL_S = 30
app.BODY_GRACE_S = 1.5
app.MIN_BODY_RATE = 100
from fake_inspector import serve_main
serve_main(sys.argv[1:])
"""


@pytest.fixture(scope="module", params=["httptools", "h11"])
def body_station(request, tmp_path_factory):
    """A station whose bodies must be in within 1.5 s (with a credential: plus 1 s for every
    100 bytes), a pause of 30 s cuts a body as before; each of uvicorn's protocols."""
    srv = start_fake_station(tmp_path_factory.mktemp("hostile") / "data",
                             python_args=["-c", SERVE.format(h11=request.param == "h11")])
    yield srv
    srv.stop()


def _until_closed(s: socket.socket) -> bytes:
    got = b""
    try:
        while chunk := s.recv(65536):
            got += chunk
    except ConnectionResetError:
        pass
    return got


def _trickle(port: int, head: bytes, most: int = 60) -> tuple[int, bytes]:
    """Send ``head``, then a chunked body one byte at a time, 0.25 s apart, until the
    station closes the connection or ``most`` bytes went: (bytes sent, what came back)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    sent = 0
    try:
        s.sendall(head)
        for _ in range(most):
            try:
                s.sendall(b"1\r\n{\r\n" if sent == 0 else b"1\r\n \r\n")
            except OSError:      # closed by the station
                break
            sent += 1
            time.sleep(0.25)
            s.setblocking(False)
            try:
                if s.recv(65536, socket.MSG_PEEK):
                    break        # answered: read it below
            except BlockingIOError:
                pass
            finally:
                s.setblocking(True)
        return sent, _until_closed(s)
    finally:
        s.close()


def _json_answer(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), raw[:300]
    return int(head.split(b" ")[1]), json.loads(body)


SIGN_IN = (b"POST /api/v1/session HTTP/1.1\r\nHost: station\r\nContent-Type: application/json\r\n"
           b"Transfer-Encoding: chunked\r\n")


def test_a_sign_in_body_trickled_a_byte_at_a_time_is_cut_with_a_408(body_station):
    # 1 byte every 0.25 s, never a pause near 30 s: before, held as long as the client liked
    # (60 bytes sent, still open); now told 408 once the 1.5 s are up
    sent, got = _trickle(body_station.port, SIGN_IN + b"\r\n")
    assert got, f"the station never cut a body trickled for {sent} bytes"
    status, body = _json_answer(got)
    assert status == 408 and body["error"]["code"] == "body_timeout", got
    assert "without an API key or session" in body["error"]["message"], body
    assert sent < 60


def test_a_key_on_a_trickled_body_gets_more_time_but_not_for_ever(body_station):
    # any credential (checked by the route later) buys time by the bytes it sends: at 4
    # bytes/s against 100 bytes/s the deadline comes all the same
    sent, got = _trickle(body_station.port, SIGN_IN + b"X-API-Key: lg_not_checked_yet\r\n\r\n")
    assert got, f"the station never cut a body trickled for {sent} bytes"
    status, body = _json_answer(got)
    assert status == 408 and "too slowly" in body["error"]["message"], got


def test_a_part_upload_over_a_slow_link_that_keeps_its_rate_passes(body_station):
    srv = body_station
    boundary = "hostile-walk-part"
    fields = {"part_id": f"slow-link-{srv.port}", "line": "L1", "station": "S1", "product": "cell"}
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                    for k, v in fields.items())
    body += (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="p.png"\r\n'
             "Content-Type: image/png\r\n\r\n").encode() + png_bytes(60, seed=3) + f"\r\n--{boundary}--\r\n".encode()
    head = (f"POST /api/v1/inspections HTTP/1.1\r\nHost: station\r\nX-API-Key: {srv.keys['operator']}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    try:
        s.sendall(head)
        pieces = 10          # past the 1.5 s grace in all, each piece far over 100 bytes
        step = -(-len(body) // pieces)
        assert step > 100
        for i in range(pieces):
            s.sendall(body[i * step:(i + 1) * step])
            time.sleep(0.3)
        got = s.recv(65536)
    finally:
        s.close()
    assert got.startswith(b"HTTP/1.1 201 "), got[:400]


# -- the head limit, for a head that arrives whole -----------------------------------------
def _raw(port: int, request: bytes) -> bytes:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        try:
            s.sendall(request)
        except OSError:
            pass
        return _until_closed(s)
    finally:
        s.close()


def test_a_70_kb_header_in_one_read_is_refused_431_in_json(body_station):
    big = b"GET /health HTTP/1.1\r\nHost: station\r\nX-Filler: " + b"a" * 70_000 + b"\r\nConnection: close\r\n\r\n"
    status, body = _json_answer(_raw(body_station.port, big))
    assert status == 431 and body["error"]["code"] == "header_too_large", body


def test_a_70_kb_url_is_refused_in_json(body_station):
    big = b"GET /health?x=" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: station\r\nConnection: close\r\n\r\n"
    status, body = _json_answer(_raw(body_station.port, big))
    assert status == 431, body


def test_a_head_under_the_limit_still_passes(body_station):
    ok = b"GET /health HTTP/1.1\r\nHost: station\r\nX-Filler: " + b"a" * 60_000 + b"\r\nConnection: close\r\n\r\n"
    assert _raw(body_station.port, ok).startswith(b"HTTP/1.1 200 ")


def test_a_request_the_protocol_cannot_parse_gets_a_json_400(body_station):
    status, body = _json_answer(_raw(body_station.port, b"GET /health HTTP/1.1\r\nHost station\r\n\r\n"))
    assert status == 400 and body["error"]["code"] == "bad_request", body


# -- an image part without a filename ------------------------------------------------------


@pytest.mark.one_database
def test_a_threshold_far_below_the_good_parts_is_refused_and_nothing_saved(tuned_station):  # noqa: F811
    st, c, keys, _ = tuned_station
    eng = {"X-API-Key": keys["engineer"]}
    before = len(st.models.list("cell", ""))
    r = c.post("/api/v1/models/cell/threshold", headers=eng, json={"line": "", "version": 1, "threshold": 5e-324})
    assert r.status_code == 422, r.text
    assert "less than 1/100" in r.json()["error"]["message"], r.text
    r = c.post("/api/v1/models/cell/threshold", headers=eng,
               json={"line": "", "version": 1, "threshold": 0.6, "review_threshold": 1e-9})
    assert r.status_code == 422 and "review_threshold" in r.json()["error"]["message"], r.text
    assert len(st.models.list("cell", "")) == before
    # a hundredth of the calibrated 0.5 is still a threshold an engineer may set
    ok = c.post("/api/v1/models/cell/threshold", headers=eng, json={"line": "", "version": 1, "threshold": 0.005})
    assert ok.status_code == 201, ok.text


@pytest.mark.one_database
def test_a_version_that_is_not_a_number_is_refused(tuned_station):  # noqa: F811
    st, c, keys, _ = tuned_station
    eng = {"X-API-Key": keys["engineer"]}
    for body in ({"line": "", "version": True, "threshold": 0.6},
                 {"line": "", "version": 1, "threshold": 0.6, "expected_active": True}):
        r = c.post("/api/v1/models/cell/threshold", headers=eng, json=body)
        assert r.status_code == 422, (body, r.text)
    assert len(st.models.list("cell", "")) == 1


# -- ONNX models that take their tensors from other files -----------------------------------
def _sealed(model) -> bytes:
    from lineguard.runtime import onnx_file
    return onnx_file.seal(model.SerializeToString())[0]


def _external(name: str, location: str):
    from onnx import TensorProto
    t = TensorProto(name=name, data_type=TensorProto.UINT8, dims=[16], data_location=TensorProto.EXTERNAL)
    for k, v in (("location", location), ("offset", "0"), ("length", "16")):
        t.external_data.add(key=k, value=v)
    return t


def _graphs_with_external_data() -> dict[str, bytes]:
    """Sealed models whose one external tensor sits where a hostile file may hide it."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    out_info = helper.make_tensor_value_info("y", TensorProto.UINT8, [16])
    as_initializer = helper.make_graph([helper.make_node("Identity", ["w"], ["y"])], "g", [], [out_info],
                                       initializer=[_external("w", "lineguard.db")])
    constant = helper.make_graph([helper.make_node("Constant", [], ["y"], value=_external("c", "/etc/passwd"))],
                                 "g", [], [out_info])
    inner = helper.make_graph([helper.make_node("Constant", [], ["y"], value=_external("deep", "../x"))],
                              "inner", [], [out_info])
    flag = helper.make_tensor("flag", TensorProto.BOOL, [], [True])
    in_a_branch = helper.make_graph([helper.make_node("If", ["flag"], ["y"], then_branch=inner, else_branch=inner)],
                                    "g", [], [out_info], initializer=[flag])
    out = {name: _sealed(helper.make_model(g)) for name, g in
           (("initializer", as_initializer), ("node attribute", constant), ("subgraph", in_a_branch))}
    # an unknown field of the old "group" kind before the tensor: protobuf readers skip it
    # (onnxruntime would still read the external tensor), so the check must too
    from lineguard.runtime import onnx_file
    group = onnx_file._encode_varint(99 << 3 | 3) + b"\x08\x01" + onnx_file._encode_varint(99 << 3 | 4)
    graph = helper.make_graph([], "g", [], []).SerializeToString() + \
        onnx_file._length_delimited(5, group + _external("hidden", "lineguard.db").SerializeToString())
    out["behind a group"] = onnx_file.seal(onnx_file._length_delimited(7, graph))[0]
    return out


def test_an_onnx_model_with_external_data_is_refused_before_onnxruntime_opens_it(monkeypatch):
    from lineguard.runtime import onnx_file
    from lineguard.vision.errors import BundleError
    ort = pytest.importorskip("onnxruntime")
    opened = []
    monkeypatch.setattr(ort, "InferenceSession", lambda *a, **k: opened.append(a))
    for where, data in _graphs_with_external_data().items():
        with pytest.raises(BundleError, match="external data"):
            onnx_file.load(data)
        from lineguard.runtime.onnx_detector import make_session
        with pytest.raises(BundleError, match="external data"):
            make_session(data)
    assert opened == []


def test_an_uploaded_export_with_external_data_is_refused_and_the_database_not_read(tmp_path, monkeypatch,
                                                                                   fitted_inspector,
                                                                                   onnx_sessions_opened):
    """A real export (its manifest and hash good) with one initializer more, whose data is
    "lineguard.db" next to the station: onnxruntime read that file into the graph before."""
    onnx = pytest.importorskip("onnx")
    from fastapi.testclient import TestClient
    from onnx import TensorProto, helper

    from lineguard.line.auth import create_key
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    from lineguard.runtime import onnx_file
    from lineguard.runtime.onnx_export import export_onnx
    from lineguard.server.app import create_app
    export_onnx(fitted_inspector, tmp_path / "cell.onnx")
    m = onnx.load_from_string((tmp_path / "cell.onnx").read_bytes()[:-onnx_file.TRAILER_LEN])
    m.graph.initializer.append(_external("stolen", "lineguard.db"))
    m.graph.node.append(helper.make_node("Identity", ["stolen"], ["stolen_out"]))
    m.graph.output.append(helper.make_tensor_value_info("stolen_out", TensorProto.UINT8, [16]))
    hostile = _sealed(m)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lineguard.db").write_bytes(b"secret-rows!" * 8)
    opened = onnx_sessions_opened
    st = Station(StationConfig(data_dir=tmp_path / "data"))
    try:
        with st.db.session() as s:
            key = create_key(s, "engineer", "eng", by="test")[1]
        with TestClient(create_app(station=st)) as c:
            r = c.post("/api/v1/models", headers={"X-API-Key": key}, data={"product": "cell"},
                       files={"file": ("cell.onnx", hostile, "application/octet-stream")})
            assert r.status_code == 422, r.text
            said = r.json()["error"]["message"]
            assert "'stolen'" in said and "external data" in said, said
            assert hostile not in opened, "onnxruntime opened the hostile model"
            assert c.get("/api/v1/models", headers={"X-API-Key": key}).json()["items"] == []
    finally:
        st.close()


def test_an_onnx_model_without_external_data_is_not_taken_for_one():
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    import numpy as np

    from lineguard.runtime import onnx_file
    w = numpy_helper.from_array(np.arange(16, dtype=np.uint8), "w")
    g = helper.make_graph([helper.make_node("Identity", ["w"], ["y"])], "g", [],
                          [helper.make_tensor_value_info("y", TensorProto.UINT8, [16])], initializer=[w])
    assert onnx_file.external_tensor(_sealed(helper.make_model(g))) is None


def test_a_flood_of_trickled_sign_ins_cannot_take_the_open_files(tmp_path):
    # past their head, sign-in bodies held their connections whatever the cap: with 256
    # open files, 300 of them took /health down for as long as they lasted. Their deadline
    # is a minute here: it is the cap that lets the line in.
    script = SERVE.format(h11=False).replace(
        "import lineguard.server.app as app\n",
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))\n"
        "import lineguard.server.app as app\n").replace("app.BODY_GRACE_S = 1.5", "app.BODY_GRACE_S = 60")
    srv = start_fake_station(tmp_path / "data", python_args=["-c", script])
    slow: list[socket.socket] = []
    try:
        for _ in range(300):
            try:
                s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
                s.sendall(SIGN_IN + b"\r\n1\r\n{\r\n")
                slow.append(s)
            except OSError:        # closed by the station as the flood came in
                pass
        with srv.client(srv.keys["operator"]) as c:
            c.timeout = 20.0
            assert c.get("/health").status_code == 200
            assert c.post("/api/v1/inspections", files={"image": ("part.png", png_bytes(60, seed=4), "image/png")},
                          data={"part_id": "during-trickle-flood", "line": "L1", "station": "S1",
                                "product": "cell"}).status_code == 201
    finally:
        for s in slow:
            s.close()
        srv.stop()


def _fed(reads: list, protocol: str) -> bytes:
    """What the station's guarded protocol writes back when fed exactly these reads (a float:
    a pause) over a stand-in transport, with an app that answers each request its body's size."""
    import asyncio

    from uvicorn.config import Config
    from uvicorn.protocols.http.h11_impl import H11Protocol
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    from lineguard.server import app

    async def echo_size(scope, receive, send):
        body = b""
        while True:
            m = await receive()
            body += m.get("body", b"")
            if m["type"] != "http.request" or not m.get("more_body"):
                break
        said = str(len(body)).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(said)).encode())]})
        await send({"type": "http.response.body", "body": said})

    class Transport:
        def __init__(self):
            self.out, self.closing, self.proto = bytearray(), False, None

        def write(self, d): self.out += d
        def close(self):
            if not self.closing:
                self.closing = True
                asyncio.get_event_loop().call_soon(self.proto.connection_lost, None)
        def is_closing(self): return self.closing
        def get_extra_info(self, k, d=None): return {"sockname": ("127.0.0.1", 1), "peername": ("127.0.0.1", 2)}.get(k, d)
        def pause_reading(self): pass
        def resume_reading(self): pass
        def get_protocol(self): return self.proto
        def set_protocol(self, p): self.proto = p

    async def feed():
        cfg = Config(echo_size, h11_max_incomplete_event_size=app.MAX_HEAD_BYTES, lifespan="off")
        cfg.load()
        base = HttpToolsProtocol if protocol == "httptools" else H11Protocol
        p = app.guarded_protocol(base)(config=cfg, server_state=ServerState(), app_state={})
        t = Transport()
        t.proto = p
        p.connection_made(t)
        for r in reads:
            if t.closing:
                break
            if isinstance(r, float):
                await asyncio.sleep(r)
            else:
                p.data_received(r)
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        return bytes(t.out)
    return asyncio.run(feed())


@pytest.mark.parametrize("protocol", ["httptools", "h11"])
def test_a_pipelined_post_whose_head_ends_in_the_next_read_is_not_a_431(protocol):
    """A read with a GET and most of a POST's head, then one with the head's last CRLF and a
    100 KB body: the one-read head check took the CRLF for a blank line before a request and
    the body for its head (431; found by review)."""
    if protocol == "httptools":
        pytest.importorskip("httptools")
    body = b"x" * 100_000
    post = b"POST /up HTTP/1.1\r\nHost: s\r\nContent-Length: " + str(len(body)).encode() + b"\r\n"
    out = _fed([b"GET / HTTP/1.1\r\nHost: s\r\n\r\n" + post, 0.2, b"\r\n" + body], protocol)
    assert out.count(b"HTTP/1.1 200 OK") == 2 and b"431" not in out, out[-300:]
    assert out.endswith(b"100000")
