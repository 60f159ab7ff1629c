"""Station verbs: serve, keys, watch, camera."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

keys_app = typer.Typer(help="API keys of a station (operator < engineer < admin).", no_args_is_help=True)


def _config(data: Path, db: Optional[str], max_upload_mb: float = 32.0, ok_sample_rate: float = 1.0,
            webhook: Optional[str] = None, mqtt: Optional[str] = None, max_batch: int = 16,
            batch_window_ms: float = 0.0):
    from ..line.config import RetentionPolicy, StationConfig
    try:
        return StationConfig(data_dir=data, db_url=db, max_upload_bytes=int(max_upload_mb * 1024 * 1024),
                             retention=RetentionPolicy(ok_sample_rate=ok_sample_rate), webhook_url=webhook,
                             mqtt_url=mqtt, max_batch=max_batch, batch_window_ms=batch_window_ms)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def serve(
    data: Path = typer.Option(Path("./station"), help="Station folder: database (SQLite) and stored images."),
    model: Optional[Path] = typer.Option(None, help="A .lgm model to make active at start-up."),
    product: Optional[str] = typer.Option(None, help="Product the --model inspects."),
    line: str = typer.Option("", help="Limit --model to one line (default: every line of the product)."),
    db: Optional[str] = typer.Option(None, help="Database URL, e.g. postgresql://user@host/db (default SQLite)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 for the plant network)."),
    port: int = typer.Option(8000),
    max_upload_mb: float = typer.Option(32.0, help="Largest image accepted."),
    ok_sample_rate: float = typer.Option(1.0, help="Share of OK part images kept (NG images are always kept)."),
    webhook: Optional[str] = typer.Option(None, help="POST every result to this URL."),
    mqtt: Optional[str] = typer.Option(None, help="Publish results to this broker, e.g. mqtt://127.0.0.1:1883."),
    max_batch: int = typer.Option(16, help="Parts judged together when several wait for the model (exported "
                                  ".onnx models; a .lgm model judges one part at a time). 1 turns batching off."),
    batch_window_ms: float = typer.Option(0.0, help="Hold a lone part this long for others to batch with "
                                          "(0: never hold a part back)."),
    power_safe: bool = typer.Option(False, "--power-safe", help="SQLite: fsync every inspection before answering "
                                    "(survives power loss, ~7 ms more per part; the default survives a crash "
                                    "or kill -9 of the station)."),
) -> None:
    """Run the inspection station: REST API (docs at /docs), storage, metrics."""
    import logging
    from ..server.app import serve as run
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if model is not None and not model.exists():
        raise typer.BadParameter(f"{model}: no such model file", param_hint="--model")
    cfg = _config(data, db, max_upload_mb, ok_sample_rate, webhook, mqtt, max_batch, batch_window_ms)
    if power_safe:
        cfg.sqlite_synchronous = "FULL"
    typer.echo(f"lineguard station on http://{host}:{port}  (API docs: http://{host}:{port}/docs, data: {data})")
    run(cfg, host=host, port=port, model=str(model) if model else None, product=product, line=line)


@keys_app.command("create")
def keys_create(
    role: str = typer.Option(..., help="operator (inspect, review), engineer (models), admin (keys)."),
    data: Path = typer.Option(Path("./station"), help="Station folder."),
    db: Optional[str] = typer.Option(None, help="Database URL if not the station's SQLite file."),
    name: Optional[str] = typer.Option(None, help="Who or what uses the key (shown in reviews and logs)."),
) -> None:
    """Create an API key and print it (it is stored hashed and cannot be shown again)."""
    from ..line.auth import ROLES, create_key
    from ..line.db import Database
    if role not in ROLES:
        raise typer.BadParameter(f"use one of {', '.join(ROLES)}", param_hint="--role")
    cfg = _config(data, db)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(cfg.database_url)
    database.upgrade()
    with database.session() as s:
        _row, key = create_key(s, role, name)
    database.dispose()
    typer.echo(key)


def _submitter(source: str, line: str, station: str, product: str, server: Optional[str],
               api_key: Optional[str], data: Optional[Path], db: Optional[str]):
    from ..line.sources import local_submitter, remote_submitter
    if server:
        if not api_key:
            raise typer.BadParameter("a station server needs an operator key (--api-key or LINEGUARD_API_KEY)",
                                     param_hint="--api-key")
        return remote_submitter(server, api_key, line, station, product), None
    if data is None and db is None:
        raise typer.BadParameter("give --server URL --api-key KEY, or --data DIR to inspect in this process")
    from ..line.station import Station
    st = Station(_config(data or Path("./station"), db))
    return local_submitter(st, line, station, product, source), st


def watch(
    folder: Path = typer.Argument(..., help="Hot folder: every new image in it is inspected once."),
    line: str = typer.Option(..., help="Line the parts come from."),
    station: str = typer.Option("watch", help="Station name."),
    product: str = typer.Option(..., help="Product (selects the active model)."),
    server: Optional[str] = typer.Option(None, help="Station URL, e.g. http://127.0.0.1:8000."),
    api_key: Optional[str] = typer.Option(None, envvar="LINEGUARD_API_KEY", help="Operator key for --server."),
    data: Optional[Path] = typer.Option(None, help="Inspect in this process with the station folder DIR."),
    db: Optional[str] = typer.Option(None),
    settle: float = typer.Option(1.0, help="Seconds a file must stay unchanged before it is taken."),
    poll: float = typer.Option(0.5, help="Seconds between folder scans."),
) -> None:
    """Inspect every new image dropped into a folder; done files go to done/, refused ones to failed/."""
    from ..line.sources.folder import FolderWatcher
    submit, st = _submitter("folder", line, station, product, server, api_key, data, db)

    def show(path, r):
        typer.echo(f"{path.name}\t{r.get('verdict')}\tscore={r.get('score'):.4g}\tid={r.get('id')}")

    w = FolderWatcher(folder, submit, settle_s=settle, poll_s=poll, on_result=show)
    typer.echo(f"watching {folder} (Ctrl-C to stop)", err=True)
    try:
        w.run()
    except KeyboardInterrupt:
        pass
    finally:
        if st is not None:
            st.close()
    typer.echo(f"done: {w.counts['done']}, failed: {w.counts['failed']}", err=True)


def camera(
    source: str = typer.Option(..., help="RTSP/HTTP URL, USB camera index (0, 1, ...) or a video file."),
    line: str = typer.Option(...), station: str = typer.Option("cam"),
    product: str = typer.Option(...),
    mode: str = typer.Option("free", help="free: continuous at --max-fps; trigger: inspect when Enter is pressed."),
    max_fps: float = typer.Option(2.0, help="Most parts per second in free-run mode."),
    max_parts: Optional[int] = typer.Option(None, help="Stop after this many parts."),
    server: Optional[str] = typer.Option(None), api_key: Optional[str] = typer.Option(None, envvar="LINEGUARD_API_KEY"),
    data: Optional[Path] = typer.Option(None), db: Optional[str] = typer.Option(None),
) -> None:
    """Inspect frames from a camera, free-running (rate-limited) or on trigger."""
    from ..line.sources.camera import CameraSource
    submit, st = _submitter("camera", line, station, product, server, api_key, data, db)

    def show(r):
        typer.echo(f"{r.get('part_id')}\t{r.get('verdict')}\tscore={r.get('score'):.4g}\tid={r.get('id')}")

    try:
        cam = CameraSource(source, submit, station_name=station, mode=mode, max_fps=max_fps, on_result=show)
    except (RuntimeError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    try:
        if mode == "free":
            cam.run_free(max_parts=max_parts)
        else:
            cam.start_grabbing()
            typer.echo("press Enter to inspect a part, Ctrl-D to stop", err=True)
            n = 0
            for _ in sys.stdin:
                cam.trigger()
                n += 1
                if max_parts is not None and n >= max_parts:
                    break
    except KeyboardInterrupt:
        pass
    finally:
        cam.close()
        if st is not None:
            st.close()


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.add_typer(keys_app, name="keys")
    app.command()(watch)
    app.command()(camera)
