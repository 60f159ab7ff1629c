"""The FastAPI station service: ``create_app`` for ASGI servers, ``serve`` for the CLI."""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Any, Optional

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from .. import __version__
from ..line.config import StationConfig
from ..line.errors import StationError
from ..line.station import Station

log = logging.getLogger("lineguard.server")


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}, "detail": message},
                        status_code=status)


class _RefuseOversize:
    """Refuse a too-big upload from its header, before its body is read at all.

    A plain ASGI middleware: ``@app.middleware("http")`` would run every request
    through an extra task and stream pair, milliseconds on a busy station PC.
    """

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/api/v1/inspections":
            st = scope["app"].state.station if "app" in scope else None
            length = next((v for k, v in scope["headers"] if k == b"content-length"), b"")
            if st is not None and length.isdigit() and int(length) > st.config.max_upload_bytes + 64 * 1024:
                resp = _error(413, "upload_too_large",
                              f"the upload is {int(length) / 1e6:.1f} MB, over the station limit of "
                              f"{st.config.max_upload_bytes / 1e6:.1f} MB; send a smaller image")
                await resp(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(config: Optional[StationConfig] = None, station: Optional[Station] = None,
               **station_kwargs: Any) -> FastAPI:
    """The station as an ASGI app; with no station given, one is built from ``config`` at start-up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        own = app.state.station is None
        if own:
            app.state.station = Station(config or StationConfig.from_env(), **station_kwargs)
        try:
            yield
        finally:
            if own:
                app.state.station.close()

    app = FastAPI(title="lineguard station", version=__version__, lifespan=lifespan,
                  description="Visual inspection station: parts in, verdicts out, every part recorded.")
    app.state.station = station

    app.add_middleware(_RefuseOversize)

    @app.exception_handler(StationError)
    async def station_error(_req: Request, exc: StationError):
        return _error(exc.http_status, exc.code, exc.message)

    @app.exception_handler(HTTPException)
    async def http_error(_req: Request, exc: HTTPException):
        code = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "error")
        resp = _error(exc.status_code, code, str(exc.detail))
        for k, v in (exc.headers or {}).items():
            resp.headers[k] = v
        return resp

    @app.exception_handler(RequestValidationError)
    async def validation_error(_req: Request, exc: RequestValidationError):
        problems = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path", "form"))
            problems.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
        return _error(422, "invalid_request", "; ".join(problems) or "invalid request",
                      problems=[{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()])

    from .routers import inspections, models, system
    app.include_router(system.router)
    app.include_router(inspections.router)
    app.include_router(models.router)
    return app


def serve(config: StationConfig, host: str = "127.0.0.1", port: int = 8000, model: Optional[str] = None,
          product: Optional[str] = None, line: str = "", log_level: str = "info", **station_kwargs: Any) -> None:
    """Run the station until interrupted (``lineguard serve``)."""
    import uvicorn

    station = Station(config, **station_kwargs)
    try:
        if model:
            if not product:
                raise SystemExit("--model needs --product: name the product the model inspects")
            mv = station.ensure_model(model, product, line)
            log.info("model %s v%s active for product %s", mv.model_id[:12], mv.version, product)
        app = create_app(config, station=station)
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
    finally:
        station.close()
