"""The FastAPI station service: ``create_app`` for ASGI servers, ``serve`` for the CLI."""
from __future__ import annotations

import logging
import re
from contextlib import asynccontextmanager
from typing import Any, Callable, Optional, Union

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..line.config import StationConfig
from ..line.db import DB_ERRORS, is_busy, is_refusal, is_unreachable, refusal_reason
from ..line import station as _station_mod
from ..line.batcher import ModelTimeout
from ..line.errors import ModelLoadFailed, StationBusy, StationError
from ..line.sources.outage import LastingFaults
from ..line.station import Station
from .docs import SecurityHeaders, add_offline_docs
from .events import EventHub
from .report_slots import ReportSlots
from .text_rules import RefuseNul

log = logging.getLogger("lineguard.server")


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}, "detail": message},
                        status_code=status)


def _station_error(exc: StationError) -> JSONResponse:
    resp = _error(exc.http_status, exc.code, exc.message, **exc.details)
    wait = exc.details.get("retry_after_s")
    if wait is not None:
        # what an HTTP client reads (the JSON field says the same to a person)
        resp.headers["Retry-After"] = str(max(1, int(wait)))
    return resp


# The words and wait of a part its model did not judge in time live beside the station's
# inspect (line.station.model_timed_out), which raises them: a hot folder or camera in the
# station's process hears what an HTTP client does
MODEL_TIMEOUT_RETRY_S = _station_mod.MODEL_TIMEOUT_RETRY_S


def _model_timed_out(exc: ModelLoadFailed) -> ModelLoadFailed:
    """The 503 for a part its model did not judge in time (``exc`` raised from the
    ModelTimeout): the station's own refusal, its wait in the body and the header alike."""
    return _station_mod.model_timed_out(exc.__cause__)


# The overload's key among the app's lasting faults: said when it begins and at most once a
# minute while it lasts, with how many requests it turned away; not a line (nor a traceback)
# for each, as every one was when it answered 500.
OVERLOAD = ("overload",)


def _say_overload(app_state: Any, method: str, path: str, exc: BaseException) -> None:
    """Log that a request found no database connection in the pool's whole wait (SQLAlchemy's
    TimeoutError: every connection in use by other requests), as one lasting fault."""
    faults = getattr(app_state, "overload", None)
    if faults is None:
        faults = app_state.overload = LastingFaults(log)
    now = faults.clock()
    going = faults.get(OVERLOAD)
    if going is not None and now - going["last"] > faults.repeat_s:
        faults.ends(OVERLOAD)       # quiet since: a new overload, said as one, not "still"
    faults.happens(OVERLOAD, logging.WARNING,
                   "the station is overloaded: a request waited for a database connection until the pool gave up "
                   "(%(error)s), all in use by other requests; answered 503 busy with Retry-After, its sender "
                   "sends it again (%(request)s). If it lasts: fewer clients at once (report pollers, "
                   "exports), or a faster database",
                   still="the station is still overloaded after %(lasted).0f s: %(times)d requests answered 503 "
                         "busy in the last %(quiet_s).0f s (latest: %(request)s)",
                   error=str(exc).split(" (Background")[0], request=f"{method} {path}", last=now)


def _overloaded(app_state: Any, method: str, path: str, exc: BaseException) -> JSONResponse:
    """The 503 busy for a request that found no database connection. Overload, not a failure
    of the request nor a bug: its sender sends it again (an inspection sent again is answered
    once, see Station.inspect). Answered 500, a hot folder set the file aside as failing on it
    and a camera gave the frame up after five tries."""
    _say_overload(app_state, method, path, exc)
    return _station_error(StationBusy.no_connection())


_LIMITED_PATHS = {"/api/v1/inspections": "part image", "/api/v1/models": "model file",
                  # a reference photo of a good part is a part's photo (routers.reference)
                  "/api/v1/reference-photos": "part image"}
# The role each large upload's route asks (its require(...)), checked again here before a
# byte of the body is read: the framework reads (spools to disk) the whole form before
# the route's own check, so an upload with no key or a wrong one filled the disk first
# and was refused after. The route still checks; this only refuses earlier.
_UPLOAD_ROLES = {"/api/v1/inspections": "operator", "/api/v1/models": "engineer",
                 "/api/v1/reference-photos": "engineer"}
# Every other request's body (JSON or a form: a sign-in, a review, a rule) is small; read
# whole by the framework before it is checked, four 200 MB sign-ins (which need no key)
# took a station from 0.3 to 1.6 GB of memory.
MAX_REQUEST_BYTES = 1 << 20
_ENVELOPE = 64 * 1024      # the multipart envelope (part id, line, boundaries) on top of a file


def _body_limit(scope: dict, station: Any) -> tuple[int, str]:
    """The most bytes this request's body may hold, and the message when it holds more."""
    from .routers.models import MAX_MODEL_BYTES, model_too_large
    what = _LIMITED_PATHS.get(scope["path"]) if scope["method"] == "POST" else None
    if what == "model file":
        return MAX_MODEL_BYTES + _ENVELOPE, f"the model file upload is too large; {model_too_large()}"
    if what == "part image":
        mib = station.config.max_upload_bytes / (1 << 20)
        return (station.config.max_upload_bytes + _ENVELOPE,
                f"the part image upload is over the station limit of {mib:g} MiB (--max-upload-mb {mib:g}); "
                "send a smaller image or raise --max-upload-mb")
    return MAX_REQUEST_BYTES, ("the request body is over 1 MiB: this API takes JSON and forms of at most 1 MiB "
                               "(part images go to POST /api/v1/inspections, model files to POST /api/v1/models)")


class _RefuseOversize:
    """Refuse a too-big upload as early as it can be known: from its Content-Length
    header before the body is read, or, for a chunked upload (no length), as soon as
    the bytes received pass the limit, not after reading it to the end.

    A plain ASGI middleware: ``@app.middleware("http")`` would run every request
    through an extra task and stream pair, milliseconds on a busy station PC.
    """

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        st = scope["app"].state.station if "app" in scope else None
        if st is None:
            await self.app(scope, receive, send)
            return
        limit, message = _body_limit(scope, st)

        def too_large() -> JSONResponse:
            return _error(413, "upload_too_large", message)

        length = next((v for k, v in scope["headers"] if k == b"content-length"), b"")
        if length.isdigit() and int(length) > limit:
            await too_large()(scope, receive, send)
            return
        if scope["method"] == "POST" and scope["path"] in _UPLOAD_ROLES:
            refused_caller = await _upload_caller_refusal(scope, st, _UPLOAD_ROLES[scope["path"]])
            if refused_caller is not None:
                await refused_caller(scope, receive, send)
                return
        received = 0
        refused = False

        async def counted_receive() -> dict:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > limit:
                    # Answer now and tell the app the client went away, so it stops
                    # parsing; its own answer (if any) is dropped below.
                    refused = True
                    await too_large()(scope, receive, send)
                    return {"type": "http.disconnect"}
            return msg

        async def guarded_send(msg: dict) -> None:
            if not refused:
                await send(msg)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not refused:
                raise


async def _upload_caller_refusal(scope: dict, station: Any, role: str) -> Optional[JSONResponse]:
    """The 401/403 for an upload whose key or session cannot send it, decided from its
    headers alone (the route's own check, asked early), or None to let it be read.

    ``Connection: close``: the client is still sending a body nobody will read; ending the
    connection stops it, where keeping it open would have the server drain it to the end.
    """
    from starlette.requests import Request as _Request
    from .deps import require
    try:
        await require(role)(_Request(scope), station, None, None)
    except HTTPException as exc:
        resp = _http_error(exc)
        resp.headers["Connection"] = "close"
        return resp
    except DB_ERRORS:
        # the key could not be looked up: the route asks again and answers the usual 503
        return None
    except PoolTimeout as exc:
        # no connection came in the pool's whole wait: the route would wait as long again
        # before the same answer, and the body is not worth reading meanwhile
        resp = _overloaded(scope["app"].state, scope["method"], scope["path"], exc)
        resp.headers["Connection"] = "close"
        return resp
    return None


_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 422: "invalid_request"}


def _http_error(exc: StarletteHTTPException) -> JSONResponse:
    """An HTTPException in the station's error shape, its headers (WWW-Authenticate) kept."""
    message = str(exc.detail)
    if message == "There was an error parsing the body":     # FastAPI's words for any unreadable body
        message = ("the request body could not be read: send JSON (Content-Type: application/json), or a "
                   "part as a multipart/form-data form; a body cut short or nested too deep is refused too")
    resp = _error(exc.status_code, _HTTP_CODES.get(exc.status_code, "error"), message)
    for k, v in (exc.headers or {}).items():
        resp.headers[k] = v
    return resp


def _strict_form_text() -> None:
    """Refuse form fields that are not valid UTF-8 instead of reading them as Latin-1.

    Starlette falls back to Latin-1 silently, which would store a garbled part id or lot
    for ever; there is no setting for it, so its decoder is replaced (once, at import).
    """
    from starlette import formparsers

    def strict(src: "bytes | bytearray", codec: str) -> str:
        try:
            return bytes(src).decode(codec or "utf-8")
        except (UnicodeDecodeError, LookupError):
            raise HTTPException(422, "a form field is not valid UTF-8 text; send part id, line, station, product, "
                                     "lot and serial as UTF-8") from None

    formparsers._user_safe_decode = strict


_strict_form_text()


def create_app(config: Optional[StationConfig] = None, station: Optional[Station] = None,
               process: Union[str, Callable[[], str]] = "serve",
               metric_labels: Optional[Callable[[], dict[str, str]]] = None, **station_kwargs: Any) -> FastAPI:
    """The station as an ASGI app; with no station given, one is built from ``config`` at start-up.

    ``process``: the name its start and run are recorded under (``PROCESS on HOST:DATA``), or
    a function giving it, called at start-up in the process that serves (a Ray Serve
    replica knows its number only there: every replica recorded "serve", so each start
    read as a short outage of the one before). ``metric_labels``: a function giving labels
    every /metrics series carries (a replica's, so Prometheus tells replicas apart)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        own = app.state.station is None
        if own:
            station = Station(config or StationConfig.from_env(), **station_kwargs)
            try:
                station.record_start(process() if callable(process) else process)
            except BaseException:
                station.close()
                raise
            app.state.station = station
        if metric_labels is not None:
            app.state.station.metrics.const_labels = dict(metric_labels())
        app.state.station.add_listener(app.state.events.publish)
        try:
            yield
        finally:
            app.state.events.close()
            app.state.station.remove_listener(app.state.events.publish)
            if own:
                app.state.station.close()

    app = FastAPI(title="lineguard station", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None,    # served from the station's own files: see .docs
                  description="Visual inspection station: parts in, verdicts out, every part recorded.\n\n"
                              "Every data endpoint needs an API key (X-API-Key header or a bearer token) or a "
                              "signed-in session (cookie from POST /api/v1/session; its changes also carry "
                              "the X-CSRF-Token header) of the role it names: operator < engineer < admin. "
                              "Reads need an operator key or session unless the station runs with "
                              "--open-reads. Every error answer is JSON: "
                              "`{\"error\": {\"code\", \"message\"}, \"detail\"}`.")
    app.state.station = station
    app.state.events = EventHub()

    app.add_middleware(RefuseNul)        # first: innermost, its 422 still gets the security headers
    app.add_middleware(_RefuseOversize)
    app.add_middleware(ReportSlots)
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(StationError)
    async def station_error(req: Request, exc: StationError):
        if isinstance(exc, StationBusy) and isinstance(exc.__cause__, PoolTimeout):
            # the station's own word for it (a part's inspect): said in the log as the others
            _say_overload(req.app.state, req.method, req.url.path, exc.__cause__)
        if isinstance(exc, ModelLoadFailed) and isinstance(exc.__cause__, ModelTimeout):
            # told apart from a model that cannot load (no retry cures that, no Retry-After)
            return _station_error(_model_timed_out(exc))
        return _station_error(exc)

    @app.exception_handler(PoolTimeout)
    async def overloaded(req: Request, exc: Exception):
        return _overloaded(req.app.state, req.method, req.url.path, exc)

    @app.exception_handler(Exception)
    async def unexpected_error(req: Request, exc: Exception):
        if isinstance(exc, PoolTimeout):
            # raised outside the routes (a middleware): the same busy answer, not a 500
            return await overloaded(req, exc)
        # Still JSON, and without internals (paths, SQL): the log has the traceback.
        log.error("unexpected error on %s %s", req.method, req.url.path, exc_info=exc)
        return _error(500, "internal_error", "the station failed on this request (see its log); "
                                             "try again, and report it if it persists")

    async def database_error(req: Request, exc: Exception):
        if not is_refusal(exc):         # the station's own mistake (a missing column...): a 500
            return await unexpected_error(req, exc)
        # Unreachable, locked past the wait, full or read-only: what the request wrote
        # was rolled back and it may be sent again, so a 503 and not the 500 of the
        # station's own failure.
        log.error("the database refused %s %s: %s", req.method, req.url.path, exc)
        check = ("that the database server is up and reachable (--db)" if is_unreachable(exc)
                 # a lock held past the wait: the disk is not the place to look
                 else "what keeps the station's tables locked (a maintenance job, a database tool left in a "
                      "transaction)" if is_busy(exc)
                 else "the database's disk space, permissions and --db")
        return _error(503, "storage_unavailable",
                      f"the station's database cannot take this request now ({refusal_reason(exc)}); try again "
                      f"shortly, and if it persists check {check}")

    for error in DB_ERRORS:
        app.add_exception_handler(error, database_error)

    # Starlette's own HTTPException (FastAPI's is a subclass): a path no route matches
    # must answer in the same JSON shape as every other error
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_req: Request, exc: StarletteHTTPException):
        return _http_error(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(req: Request, exc: RequestValidationError):
        problems = []
        sent = req.headers.get("content-type", "")
        for e in exc.errors():
            body_said = _body_problem(e, sent)
            if body_said:
                problems.append(body_said)
                continue
            where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path", "form"))
            if e.get("type") in _BOUNDS and where.endswith("rate"):
                # "Input should be less than 0.5" for 5 (meaning 5%): a rate is a fraction here
                problems.append(f"{where}: {e.get('msg')} (a rate is a fraction: 0.01 for 1%)")
                continue
            if e.get("type") == "extra_forbidden":
                # a misspelt field is refused, not dropped: said as such, and where the fields are listed
                problems.append(f"{where}: not a field of this request (a misspelt one is refused, not dropped; "
                                "/docs lists the fields it takes)")
                continue
            problems.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
        if req.method == "POST" and req.url.path in _LIMITED_PATHS and not sent.startswith("multipart/form-data"):
            # an image sent as the raw body reads as every field missing: say what was meant
            problems.insert(0, f"send the {_LIMITED_PATHS[req.url.path]} as a multipart/form-data form (this "
                               f"request's body was {sent or 'of no declared type'})")
        return _error(422, "invalid_request", "; ".join(problems) or "invalid request",
                      problems=[{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()])

    from .routers import auth, inspections, models, system
    # first: /static/docs/* must match before any broader /static mount of the pages
    add_offline_docs(app)
    app.include_router(system.router)
    app.include_router(auth.router)
    app.include_router(inspections.router)
    app.include_router(models.router)
    from .routers import alarms, change_log, products, test_parts
    app.include_router(alarms.router)
    app.include_router(products.router)
    app.include_router(test_parts.router)
    app.include_router(change_log.router)
    from .routers import spc, tuning
    app.include_router(spc.router)
    app.include_router(tuning.router)
    from .routers import reports, rescores, watchers
    app.include_router(reports.router)
    app.include_router(rescores.router)
    app.include_router(watchers.router)
    from .routers import live, pages, plant
    app.include_router(live.router)
    app.include_router(plant.router)
    app.include_router(pages.router)
    return app


_BOUNDS = ("less_than", "less_than_equal", "greater_than", "greater_than_equal")


def _body_problem(e: dict, sent: str) -> Optional[str]:
    """A JSON body the request could not use, said so a person with curl knows what to send:
    pydantic's own words were "11: JSON decode error", "Field required" (no body at all) and
    "Input should be a valid dictionary or object to extract fields from" (curl -d without
    -H 'Content-Type: application/json' sends a form, which the JSON endpoints read as text)."""
    loc, kind = tuple(e.get("loc", ())), e.get("type")
    if not loc or loc[0] != "body" or len(loc) > 2:
        return None
    if kind == "json_invalid":
        why = (e.get("ctx") or {}).get("error") or "not JSON"
        # counted from 1, as a person counts along the line (pydantic's position is from 0)
        at = f" at character {loc[1] + 1}" if len(loc) == 2 and isinstance(loc[1], int) else ""
        return f"the body is not valid JSON ({why}{at}): send a JSON object, e.g. {{\"line\": \"L1\"}}"
    if len(loc) != 1:
        return None
    if kind == "missing":
        return ("this request needs a JSON body: an object of its fields ({} for none), sent with the header "
                "Content-Type: application/json")
    if kind in ("model_attributes_type", "dict_type"):
        if sent and not sent.split(";")[0].strip().lower().endswith("json"):
            return (f"the body must be a JSON object sent with the header Content-Type: application/json (this "
                    f"request's was {sent.split(';')[0]}: curl -d sends a form unless told -H 'Content-Type: "
                    "application/json')")
        return "the body must be a JSON object of the request's fields, e.g. {\"line\": \"L1\"}"
    return None


class PortRefused(Exception):
    """This PC will not let the station listen where it was told (a port taken, an address
    not this PC's, a port below 1024 without the right): one line saying which and what to
    do. Not a mistake in the command (the same command starts once the port is free), so
    serve ends with exit code 3, "stopped by the machine"."""


def _port_refusal(exc: OSError, host: str, port: int, option: str) -> str:
    """The one line for ``exc``, raised binding or listening on ``host``:``port`` (given as
    ``option``, the serve option that named the port: --port, --modbus-port, ...)."""
    import errno
    import socket
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    host_option = "--plc-host" if option in ("--modbus-port", "--opcua-port") else "--host"
    if isinstance(exc, socket.gaierror):
        return (f"{host_option} {host} is no address this PC knows ({exc.strerror}): give one of this PC's "
                "addresses (`ip -brief address` lists them), 0.0.0.0 for every network, or 127.0.0.1")
    if exc.errno == errno.EADDRINUSE:
        if option == "--port":
            # 0.0.0.0 is no address to ask: a station on every network answers on this PC's own
            ask = {"0.0.0.0": f"127.0.0.1:{port}", "": f"127.0.0.1:{port}", "::": f"[::1]:{port}"}.get(host, where)
            who = (f"another program listens there, perhaps a station already running (`curl http://{ask}/health` "
                   "tells which)")
        else:
            who = (f"another program listens there, perhaps another station's PLC link "
                   f"(`ss -ltnp 'sport = :{port}'` names it)")
        return (f"{option} {port}: {where} is taken (address already in use): {who}; stop it, or start this station "
                f"with another {option}")
    if exc.errno == errno.EADDRNOTAVAIL:
        return (f"{host_option} {host} is not an address of this PC (cannot assign requested address): give one "
                "it has (`ip -brief address` lists them), 0.0.0.0 for every network, or 127.0.0.1 for this PC alone")
    if exc.errno in (errno.EACCES, errno.EPERM):
        if 0 < port < 1024:
            return (f"{option} {port}: a port below 1024 needs root or the right to listen there (permission "
                    f"denied): give {option} 1024 or above, or give serve that right (CAP_NET_BIND_SERVICE: "
                    "setcap, or AmbientCapabilities= in its systemd unit)")
        return (f"{option} {port}: this PC does not let serve listen on {where} (permission denied): "
                f"give another {option}")
    return (f"{option} {port}: serve cannot listen on {where} ({exc.strerror or exc}): "
            f"give another {option} or {host_option}")


def bind_port(host: str, port: int, option: str = "--port") -> list:
    """Sockets bound to every address ``host`` names (one for an IP address), not yet
    listening: a connection is refused, not queued unanswered, until the server listens.
    Bound as uvicorn binds (SO_REUSEADDR: a restart is not refused for the previous run's
    closed connections; IPv6 sockets IPv6 only). :class:`PortRefused` where this PC will
    not let it; nothing is left bound then."""
    import socket
    try:
        infos = socket.getaddrinfo(host or None, port, family=socket.AF_UNSPEC, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise PortRefused(_port_refusal(exc, host, port, option)) from exc
    bound: list = []
    # IPv6 only where the name also gave an IPv4 address bound beside it; `--host ::` alone
    # keeps the system's dual stack (IPv4 clients too), as uvicorn bound it
    both = {info[0] for info in infos} >= {socket.AF_INET, socket.AF_INET6}
    try:
        for family, kind, proto, _name, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            bound.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if both and family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError as exc:
        for sock in bound:
            sock.close()
        raise PortRefused(_port_refusal(exc, host, port, option)) from exc
    return bound


def run_server(app: FastAPI, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
               sockets: Optional[list] = None) -> None:
    """Serve ``app`` with uvicorn until interrupted, ending live event streams at shutdown.

    uvicorn waits for open responses before it stops, and a live page's event stream
    never ends by itself: without this, Ctrl-C would hang while any browser is open.

    ``sockets``: bound by :func:`bind_port` beforehand (serve binds before it starts its
    station's threads); without them the port is bound here. A port another program takes
    meanwhile raises :class:`PortRefused` (one line; uvicorn logged a raw "[Errno 98]"
    and exited itself), with nothing served.
    """
    import faulthandler
    import uvicorn

    # a crash in native code (torch, ONNX Runtime, the image libraries) killed a station
    # mid-retrain with nothing in its log but the kernel's "segfault": the Python stack of
    # every thread now goes to stderr (the station's log) first, for the plant's report
    if not faulthandler.is_enabled():
        faulthandler.enable(all_threads=True)

    class _Server(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            hub = getattr(app.state, "events", None)
            if hub is not None:
                hub.close()
            await super().shutdown(sockets)

        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            # uvicorn raises a stop signal again once it has shut down: SIGTERM (systemd,
            # docker stop) then killed the process before the caller closed the station (maps
            # in flight lost, its database log not folded in), and Ctrl-C ended in click's
            # "Aborted!". Stopped by a signal, the server returns, and the caller closes.
            self._captured_signals.clear()

    # the grace period is a backstop: a response stuck elsewhere is cut after it
    from uvicorn.protocols.http.auto import AutoHTTPProtocol
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                            timeout_graceful_shutdown=10, timeout_keep_alive=KEEP_ALIVE_S,
                            # h11 (no httptools) refused an unfinished head over 16 KiB with a 400;
                            # the station's head limit is MAX_HEAD_BYTES (431), for both protocols
                            h11_max_incomplete_event_size=MAX_HEAD_BYTES,
                            http=guarded_protocol(AutoHTTPProtocol))
    listening = sockets if sockets is not None else bind_port(host, port)
    try:
        for sock in listening:
            try:
                # here, not in uvicorn: a port taken since the bind fails on listen (a second
                # process can bind beside a socket that does not listen yet)
                sock.listen(config.backlog)
            except OSError as exc:
                raise PortRefused(_port_refusal(exc, host, port, "--port")) from exc
        _Server(config).run(sockets=listening)
    finally:
        for sock in listening:
            sock.close()


# -- slow and stalled clients ----------------------------------------------------------
# uvicorn times out only an idle keep-alive connection: one that sent half a request's
# head and stopped, or a body that stopped, was held for ever, with no key needed. 12,000
# such connections took the station's 20,000 open files, and every part upload and
# /health was then refused ("connection reset"). uvicorn's limit_concurrency does not
# help: it counts those connections too, and would answer 503 to the line's parts while
# they are held. The guard below sits in uvicorn's own HTTP protocol (where a connection
# and its bytes are seen), as little as it takes:
HEADER_TIMEOUT_S = 10.0    # a request's head (line and headers) must be in within this
BODY_STALL_S = 30.0        # a body the app waits for may pause this long between bytes
# A body that never pauses that long can still come one byte every few seconds: 100 sign-ins
# (no key needed) sent so were held 70 s and more, and past their head the connection cap
# never closed them (300 of them took /health down on a station with 256 open files). So a
# body must also be in within BODY_GRACE_S of the app's first read of it; one sent with a
# credential (an API key, a bearer token, a session cookie: a camera PC's or an engineer's
# upload) gets more time as it comes, 1 s for every MIN_BODY_RATE bytes: a 20 MB part image
# over a plant network at 100 KB/s passes, a trickle is cut. The route still checks the
# credential. One without a credential may also be closed at the connection cap.
BODY_GRACE_S = 30.0
MIN_BODY_RATE = 2 * 1024  # bytes per second, averaged over the body, past the grace (16 kbit/s: a slow VPN passes)
MAX_HEAD_BYTES = 64 * 1024  # a request's head larger than this is refused (431)
# An idle kept-open connection is closed after this. uvicorn's 5 s met a dashboard or a PLC
# gateway polling every 5 s on one connection at the moment it closed it: 16 of ~410 polls
# failed "connection reset" in a soak. Past the usual polling periods (5, 10, 15 s).
KEEP_ALIVE_S = 20.0


def _connection_cap() -> int:
    """The most connections held at once: half the process's open-file limit (the rest is
    the station's database, images and logs), at most 4096."""
    try:
        import resource
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft == resource.RLIM_INFINITY:
            soft = 1 << 16
    except (ImportError, OSError, ValueError):     # no rlimits on this platform
        return 1024
    return max(64, min(4096, soft // 2))


MAX_CONNECTIONS = _connection_cap()


def _raw_error(status: bytes, code: str, message: str) -> bytes:
    """An answer the protocol writes itself (no app involved) in the station's error shape,
    ending the connection: every error the station gives is JSON, these too."""
    import json
    body = json.dumps({"error": {"code": code, "message": message}, "detail": message}).encode()
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)


_TIMED_OUT = _raw_error(b"408 Request Timeout", "request_timeout",
                        "the request's head (its line and headers) did not arrive in time; send it again at once")
_HEAD_TOO_LARGE = _raw_error(b"431 Request Header Fields Too Large", "header_too_large",
                             f"the request's line and headers are over {MAX_HEAD_BYTES // 1024} KiB; send a shorter "
                             "URL (filters as query parameters of a few values) and fewer or shorter headers")


def _body_too_slow(keyed: bool) -> bytes:
    if keyed:
        why = (f"the request body came too slowly (under {MIN_BODY_RATE / 1024:g} KiB/s on average after the first "
               f"{BODY_GRACE_S:g} s); send it again over a faster link, or send a smaller file")
    else:
        why = (f"the request body did not arrive within {BODY_GRACE_S:g} s; a request without an API key or "
               "session sends its (small) body at once: send it again")
    return _raw_error(b"408 Request Timeout", "body_timeout", why)


def guarded_protocol(base: type) -> type:
    """uvicorn's HTTP protocol class ``base`` (httptools or h11) with deadlines for slow clients:

    - a request's head must arrive within HEADER_TIMEOUT_S of its first byte (of the
      connection, for the first request; of the answer before it, for one sent while that
      request was answered), and be at most MAX_HEAD_BYTES; else 408 (431) and the
      connection is closed;
    - a request's body the app is reading may pause at most BODY_STALL_S between bytes,
      and so may the rest of a body answered early (a 413) that the client still sends;
      else the connection is closed;
    - that body must be in within BODY_GRACE_S of its head, plus, with a credential, 1 s
      for every MIN_BODY_RATE bytes of it; else 408 (JSON) and the connection is closed;
    - at MAX_CONNECTIONS open, a new connection closes the one that has waited longest
      for its head, or for a body sent without a credential or past its grace (a slow client's, never a
      request being answered or an event stream), so the station's open files stay its own.
    """

    class Guarded(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._timer: Any = None         # the head's deadline, or a drained body's
            self._timer_for = ""            # "head" or "drain"
            self._head_bytes = 0            # of the head in progress, as far as it is known to be head
            self._head_tail = b""           # its last bytes: a blank line ending it may span two reads
            self._head_untracked = False    # a head begun in a read that ended another request
            self._parsed_head = 0           # httptools: the head in progress as its parser gave it (at least)
            self._refused = False           # a 431 owed once the requests before that head are answered
            self._in_head = self._in_message = False     # httptools' parser state (h11's is asked)
            self._seen_cycle: Any = None
            self._requests = 0              # requests whose head has come in on this connection
            # the connections awaiting a head, oldest first (one map per server)
            state = self.server_state
            if not hasattr(state, "lineguard_heads"):
                state.lineguard_heads = {}
            self._heads: dict = state.lineguard_heads
            if getattr(self, "conn", None) is not None:        # h11
                self._guard_h11_heads(self.conn)

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if len(self.connections) > MAX_CONNECTIONS and self._heads:
                slowest = next(iter(self._heads))
                log.warning("%d connections open (the most held: %d): closed the one that has waited longest "
                            "for its request", len(self.connections), MAX_CONNECTIONS)
                slowest._end(b"")
            self._await_head()

        def connection_lost(self, exc: Optional[Exception]) -> None:
            self._stop()
            super().connection_lost(exc)

        # httptools' parser calls these (h11 has none)
        def on_message_begin(self) -> None:
            self._in_head = self._in_message = True
            # the request line's method, spaces and version and the blank line: 16 bytes at least
            self._parsed_head = 16
            super().on_message_begin()

        # a head begun in a read after another request (pipelined, or sent with the end of a
        # body) was never held to MAX_HEAD_BYTES: the bytes counted before the parser are only
        # a head that begins a read. Its URL and headers as the parser gives them are counted
        # too (every head, whichever read it began in): a 100 KiB header sent after a GET or a
        # POST's body in one send was a 200, and the app was given it
        def on_url(self, url: bytes) -> None:
            self._count_parsed(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count_parsed(len(name) + len(value) + 3)     # "name:value\r\n"
            super().on_header(name, value)

        def _count_parsed(self, size: int) -> None:
            if not self._in_head:
                # a chunked body's trailers (given as headers): part of the request being read,
                # not a head that waits its turn; refused as one, the request hung 30 s unanswered
                return
            self._parsed_head += size
            if self._parsed_head > MAX_HEAD_BYTES:
                self._refused = True
                # stops the parser before this head is a request; uvicorn takes it for a
                # request it cannot parse and calls send_400_response, which answers 431
                raise ValueError("the request's head is over MAX_HEAD_BYTES")

        def _guard_h11_heads(self, conn: Any) -> None:
            """h11 parses a request's head only once the request before it is answered (it
            holds what was pipelined), from the start of what it holds: each head is held to
            the limit there, as it came, before it is parsed (a complete 100 KiB head behind
            another request was a 200; one unended past 64 KiB, h11's own plain 400)."""
            import h11
            parse = conn.next_event

            def next_event() -> Any:
                # only a buffer longer than the limit can hold a head over it: measured then
                # (trailing_data copies the buffer; for each piece of a head sent a byte at a
                # time, copied and searched, 50 KB took 3 s of CPU)
                held = getattr(conn, "_receive_buffer", None)
                if conn.their_state is h11.IDLE and (held is None or len(held) > MAX_HEAD_BYTES) \
                        and _head_size(conn.trailing_data[0]) > MAX_HEAD_BYTES:
                    self._refused = True
                    # uvicorn answers it with send_400_response, which answers 431
                    raise h11.RemoteProtocolError("the request's head is over MAX_HEAD_BYTES")
                return parse()

            # (not in handle_events: past a body answered early, uvicorn starts the next
            # request's cycle and parses its head within one call)
            conn.next_event = next_event

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._parsed_head = 0
            super().on_headers_complete()
            self._new_request()     # a pipelined one is queued here, not seen by data_received

        def on_message_complete(self) -> None:
            self._in_message = False
            super().on_message_complete()

        # both protocols call this when an answer has been sent
        def on_response_complete(self) -> None:
            super().on_response_complete()      # starts a pipelined request, or (h11) parses what waited
            if self.transport.is_closing() or self.transport.get_protocol() is not self:
                return
            if self._refused:
                # an oversize head came after this request: its 431 once every request before
                # it is answered (self.cycle is the last of them), as on a kept-alive connection
                if self.cycle is None or self.cycle.response_complete:
                    self._end(_HEAD_TOO_LARGE)
                else:
                    self.flow.pause_reading()
                return
            self._new_request()
            cycle = self.cycle
            # the next request's head, sent while this one was answered, has its deadline from now
            if cycle is not None and cycle.response_complete and self._head_begun():
                self._await_head()

        def _parser_state(self) -> tuple[bool, bool]:
            """(waiting for a request's head (h11: or idle), a request's body is still coming)"""
            conn = getattr(self, "conn", None)
            if conn is None:
                return self._in_head, self._in_message
            import h11
            return conn.their_state is h11.IDLE, conn.their_state is h11.SEND_BODY

        def _head_begun(self) -> bool:
            """Whether some of a next request's head is in (and its answer would be a 408)."""
            conn = getattr(self, "conn", None)
            if conn is None:
                return self._in_head
            import h11
            return conn.their_state is h11.IDLE and bool(conn.trailing_data[0])

        def _new_request(self) -> None:
            """Note a request whose head has come in (once): its body is guarded, and the
            next head's bytes count from nothing."""
            cycle = self.cycle
            if cycle is None or cycle is self._seen_cycle:
                return
            self._seen_cycle = cycle
            self._requests += 1
            self._head_bytes = 0
            self._head_tail = b""
            self._head_untracked = False
            _guard_body(self, cycle)

        def data_received(self, data: bytes) -> None:
            if self._refused:       # past a refused head: the connection ends after the answers before it
                return
            in_head, in_body = self._parser_state()
            # this chunk is all head only if a head was awaited before it and none ended in it:
            # the rest of a body (answered early, a 413) or a request before it is not head
            # (a refused upload's last 100 KiB was taken for an oversize head: 413, then 431)
            all_head = in_head or not in_body
            cycle = self.cycle
            # (not for a head begun in a read that ended another request: its first bytes were
            # never counted, and its end in this read taken for a blank line before a request
            # made a pipelined POST's body its head: 431)
            if all_head and not self._head_untracked and (self._head_bytes or _REQUEST_LINE.match(data)) \
                    and (cycle is None or cycle.response_complete) and self._head_over_limit(data):
                # a whole head in one read (up to 256 KiB) was let through: the limit was
                # applied only to a head still incomplete after a read. Refused before the
                # parser sees it, so no request starts.
                self._end(_HEAD_TOO_LARGE)
                return
            requests = self._requests
            super().data_received(data)
            if self.transport.is_closing() or self._refused:
                return
            if self.transport.get_protocol() is not self:      # upgraded to a websocket
                self._stop()
                return
            self._new_request()
            all_head = all_head and self._requests == requests
            cycle = self.cycle
            in_head, in_body = self._parser_state()
            answering = cycle is not None and not cycle.response_complete
            if in_head:
                if all_head:
                    self._head_bytes += len(data)
                    self._head_tail = (self._head_tail + data)[-2:]
                    if self._head_bytes > MAX_HEAD_BYTES:
                        self._refuse_head()
                        return
                else:
                    self._head_untracked = True
                if answering:
                    # a pipelined head while a request is being answered: its deadline starts
                    # when the answer is sent (on_response_complete); a 408 here replaced the
                    # answer of a request that took longer than the deadline
                    self._stop()
                else:
                    self._await_head()
            elif cycle is not None and cycle.response_complete:
                if in_body:
                    # answered before its body was read (a 413): the rest is read and dropped
                    # as it comes, as before, unless it stops
                    self._stop()
                    self._timer, self._timer_for = self.loop.call_later(BODY_STALL_S, self._end, b""), "drain"
                else:
                    self._await_head()      # between requests: the next one's head has its deadline
            else:
                self._stop()                # a request being answered

        def _head_over_limit(self, data: bytes) -> bool:
            """Whether the head this read continues (or begins) is over MAX_HEAD_BYTES: up to
            the blank line that ends it, or all of the read when it does not end here."""
            seen = self._head_tail + data
            # blank lines before a request line are skipped by both parsers: "\r\n\r\n" sent
            # first must not pass for the end of the head that follows it
            begins = len(seen) - len(seen.lstrip(b"\r\n")) if not self._head_bytes else 0
            ends = [i + len(blank) for blank in (b"\n\r\n", b"\n\n") if (i := seen.find(blank, begins)) >= 0]
            in_this_read = (min(ends) - len(self._head_tail)) if ends else len(data)
            return self._head_bytes + in_this_read > MAX_HEAD_BYTES

        def _refuse_head(self) -> None:
            """431 for the head in progress, in its turn: at once, or (pipelined) once the
            requests before it are answered, their answers kept; nothing more is read."""
            cycle = self.cycle
            if cycle is None or cycle.response_complete:
                self._end(_HEAD_TOO_LARGE)
            else:
                self._refused = True
                self._stop()
                self.flow.pause_reading()

        def send_400_response(self, msg: str) -> None:
            if self._refused:       # not a parse error: the parser was stopped at an oversize head
                self._refused = False
                self._refuse_head()
                return
            # uvicorn's own answer to a request it cannot parse is plain text: JSON as every other
            self._stop()
            if not self.transport.is_closing():
                self.transport.write(_raw_error(b"400 Bad Request", "bad_request",
                                                f"{msg.rstrip('.')}: the request's line or headers are not valid "
                                                "HTTP/1.1"))
                self.transport.close()

        def _await_head(self) -> None:
            if self._timer_for == "head" or self.transport.is_closing():
                return
            self._stop()
            self._timer, self._timer_for = self.loop.call_later(HEADER_TIMEOUT_S, self._head_late), "head"
            self._heads[self] = None

        def _stop(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
            self._timer, self._timer_for = None, ""
            self._heads.pop(self, None)

        def _head_late(self) -> None:
            # silent for a connection that never began a request (a browser's spare one)
            self._end(_TIMED_OUT if self._head_begun() else b"")

        def _end(self, answer: bytes) -> None:
            self._stop()
            if not self.transport.is_closing():
                if answer:
                    self.transport.write(answer)
                self.transport.close()

    Guarded.__name__ = Guarded.__qualname__ = f"Guarded{base.__name__}"
    return Guarded


def _head_size(buf: bytes) -> int:
    """The size of the request head at the start of ``buf`` (after the blank lines before it,
    which both parsers skip): up to the blank line that ends it, or all of ``buf`` if unended."""
    begins = len(buf) - len(buf.lstrip(b"\r\n"))
    ends = [i + len(blank) for blank in (b"\n\r\n", b"\n\n") if (i := buf.find(blank, begins)) >= 0]
    return (min(ends) if ends else len(buf)) - begins


# a read that begins a request (blank lines before it are skipped by both parsers): one that
# does not, with no head counted yet, carries the end of a head the parser holds from a
# pipelined read before it, or a body
_REQUEST_LINE = re.compile(rb"[\r\n]*[A-Z]{3,10} \S")


def _has_credential(scope: dict) -> bool:
    """Whether a request carries an API key, a bearer token or a session cookie (not
    whether it is valid: the route checks that)."""
    from ..line.sessions import COOKIE
    cookie = COOKIE.encode() + b"="
    for k, v in scope.get("headers", ()):
        if k in (b"x-api-key", b"authorization") or (k == b"cookie" and cookie in v):
            return True
    return False


def _guard_body(protocol: Any, cycle: Any) -> None:
    """Close ``cycle``'s connection when the app waits for its body and none comes for
    BODY_STALL_S, or when the body is not in by its deadline (BODY_GRACE_S from the app's
    first read of it, and with a credential 1 s more for every MIN_BODY_RATE bytes
    received): a 408 then. Only
    while the app reads the body: an answer being streamed (the live events) also waits on
    receive() for the client to leave, and is never cut."""
    receive = cycle.receive
    loop = protocol.loop
    start = None        # when the app first reads the body (a pipelined request waits its turn first)
    keyed = _has_credential(cycle.scope)
    received = 0

    def stalled() -> None:
        log.warning("%s %s: its body stopped coming for %g s; the connection is closed",
                    cycle.scope.get("method"), cycle.scope.get("path"), BODY_STALL_S)
        protocol.transport.close()

    def too_slow() -> None:
        log.warning("%s %s: its body (%d bytes so far, %s) was not in by its deadline; answered 408 and closed",
                    cycle.scope.get("method"), cycle.scope.get("path"), received,
                    "with a credential" if keyed else "no credential")
        if not protocol.transport.is_closing():
            if not cycle.response_started:
                protocol.transport.write(_body_too_slow(keyed))
            protocol.transport.close()

    async def receive_or_cut() -> Any:
        nonlocal received, start
        if start is None:
            start = loop.time()
        if not (cycle.more_body and not cycle.body and not cycle.disconnected and not cycle.response_complete):
            msg = await receive()
        else:
            # nothing arrives while this waits, so the deadline is fixed until it returns
            left = start + BODY_GRACE_S + (received / MIN_BODY_RATE if keyed else 0.0) - loop.time()
            timer = loop.call_later(max(0.0, min(BODY_STALL_S, left)), too_slow if left <= BODY_STALL_S else stalled)
            # a body without a credential waited for is as much a slow client as a head: at
            # the connection cap it may be closed for a new connection (past its head, 300
            # trickled sign-ins held the open files for as long as they lasted)
            # (one with a credential too once past its grace: any header passes for one here,
            # and a made-up key kept 300 trickled sign-ins out of reach of the cap)
            evictable = None if keyed and loop.time() - start < BODY_GRACE_S else getattr(protocol, "_heads", None)
            if evictable is not None:
                evictable[protocol] = None
            try:
                msg = await receive()
            finally:
                timer.cancel()
                if evictable is not None:
                    evictable.pop(protocol, None)
        if msg.get("type") == "http.request":
            received += len(msg.get("body", b""))
        return msg

    cycle.receive = receive_or_cut


class StartupError(Exception):
    """The station cannot start with these settings; the message is one line for the operator."""


def _db_problem(config: StationConfig, exc: BaseException) -> str:
    from ..line.config import without_password
    shown = without_password(config.database_url)      # a URL it cannot read too, minus its password
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (f"cannot use the database {shown}: {reason}. Check --db (e.g. postgresql://user@host:5432/db, "
            "or leave it out for SQLite under --data)")


def kept_model_note(station: Station, model: str, mv: Any) -> str:
    """One line: the --model file is a version already registered, and the version
    activated since (a retrain, a tuned version, a rollback) stays active."""
    from pathlib import Path
    where = mv.product + (f"/{mv.line}" if mv.line else "")
    active = next((v for v in station.models.list(mv.product, mv.line) if v.active), None)
    every = None if active is not None or not mv.line else next(
        (v for v in station.models.list(mv.product, "") if v.active), None)
    if every is not None:     # a rollback gave the line back to the model of every line
        since = (f"a rollback since gave line {mv.line} back to the model of every line, {mv.product} "
                 f"v{every.version}, which stays active")
    else:
        since = f"{f'v{active.version}' if active is not None else 'the version active'}, activated since, stays active"
    return (f"--model {Path(model).name} is {where} v{mv.version}, already registered; {since}. To judge parts with "
            f"v{mv.version} again, activate it on the Models page or with POST "
            f"/api/v1/models/{mv.product}/activate {{\"line\": \"{mv.line}\", \"version\": {mv.version}}}")


def open_station(config: StationConfig, model: Optional[str] = None, product: Optional[str] = None,
                 line: str = "", process: str = "serve", say: Optional[Callable[[str], None]] = None,
                 **station_kwargs: Any) -> Station:
    """The station and its start-up model, or :class:`StartupError` saying what to fix;
    its start (``process``) in the change log where its settings changed. ``say``: where
    a line about the start-up model goes (the command's output; default the log): a
    --model file already registered does not undo a later activation."""
    from sqlalchemy.exc import SQLAlchemyError
    if model and not product:
        raise StartupError("--model needs --product: name the product the model inspects")
    try:
        station = Station(config, **station_kwargs)
    except (SQLAlchemyError, ImportError) as exc:
        raise StartupError(_db_problem(config, exc)) from exc
    except OSError as exc:
        raise StartupError(f"cannot use the data folder {config.data_dir}: {exc.strerror or exc}; "
                           "check --data and its permissions") from exc
    except StationError as exc:         # another data folder keeps this database's files
        raise StartupError(exc.message) from exc
    try:
        if model:
            mv = station.ensure_model(model, product, line)
            if mv.active:
                log.info("model %s v%s active for product %s", mv.model_id[:12], mv.version, product)
            else:
                (say or log.warning)(kept_model_note(station, model, mv))
    except StationError as exc:
        station.close()
        raise StartupError(f"--model {model}: {exc.message}") from exc
    except OSError as exc:
        station.close()
        raise StartupError(f"--model {model}: cannot be read ({exc.strerror or exc})") from exc
    except BaseException:
        station.close()
        raise
    try:
        station.record_start(process)
    except SQLAlchemyError as exc:
        station.close()
        raise StartupError(_db_problem(config, exc)) from exc
    except BaseException:
        station.close()
        raise
    return station


def serve(config: StationConfig, host: str = "127.0.0.1", port: int = 8000, model: Optional[str] = None,
          product: Optional[str] = None, line: str = "", log_level: str = "info", **station_kwargs: Any) -> None:
    """Run the station until interrupted (``lineguard serve``); :class:`StartupError` if it cannot start."""
    station = open_station(config, model, product, line, **station_kwargs)
    try:
        app = create_app(config, station=station)
        run_server(app, host=host, port=port, log_level=log_level)
    finally:
        station.close()
