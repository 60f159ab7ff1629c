"""``python -m lineguard.server``: the station without the full CLI (tests, containers)."""
from __future__ import annotations

import argparse
import sys
import logging
from pathlib import Path

from ..line.config import RetentionPolicy, StationConfig, shift_starts_from_text, start_disk_floor
from ..line.data_folders import BackupFolderAsData, refuse_backup_folder
from ..line.schema_names import SCHEMA_NAME_RULE
from .app import PortRefused, StartupError, serve


def main(argv: list[str] | None = None) -> None:
    # Station settings default to None, "not given": StationConfig.from_env then takes the
    # LINEGUARD_* variable, else the default (a container sets the station by its environment;
    # only three variables were read here before)
    ap = argparse.ArgumentParser(prog="python -m lineguard.server")
    ap.add_argument("--data", default=None, help="data folder (env LINEGUARD_DATA; default ./station)")
    ap.add_argument("--db", default=None)
    ap.add_argument("--db-schema", default=None,
                    help=f"the station's PostgreSQL schema (env LINEGUARD_DB_SCHEMA); {SCHEMA_NAME_RULE}")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--model", default=None)
    ap.add_argument("--product", default=None)
    ap.add_argument("--line", default=None)
    ap.add_argument("--max-upload-mb", type=float, default=None, help="largest upload (default 32)")
    ap.add_argument("--max-megapixels", type=float, default=None, help="largest image accepted (default 26)")
    ap.add_argument("--ok-sample-rate", type=float, default=None)
    ap.add_argument("--audit-sample-rate", type=float, default=None,
                    help="share of parts kept at random whatever the verdict (retraining's audit sample)")
    ap.add_argument("--min-free-gb", type=float, default=None,
                    help="keep this much free on the data disk by deleting the oldest parts' images (0: never)")
    ap.add_argument("--ok-image-days", type=float, default=None, help="delete OK parts' images older than this")
    ap.add_argument("--backup-to", default=None, help="back the station up into this folder (SQLite stations)")
    ap.add_argument("--backup-every-h", type=float, default=None, help="hours between backups (default 24)")
    ap.add_argument("--webhook", default=None)
    ap.add_argument("--mqtt", default=None)
    ap.add_argument("--max-batch", type=int, default=None, help="parts judged together when several wait (1: off)")
    ap.add_argument("--batch-window-ms", type=float, default=None, help="hold a lone part this long for company")
    ap.add_argument("--runtime", choices=["onnxruntime", "openvino"], default=None,
                    help="runtime for exported .onnx models")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default=None)
    ap.add_argument("--sqlite-synchronous", default=None, choices=["OFF", "NORMAL", "FULL", "EXTRA"],
                    type=str.upper, help="NORMAL (default): survives kill -9 of the station; FULL: power loss too")
    ap.add_argument("--open-reads", action="store_true", default=None,
                    help="let anyone on the network read inspections and images without a key "
                         "(env LINEGUARD_OPEN_READS=1)")
    ap.add_argument("--shift-starts", default=None,
                    help="when the plant's shifts start, e.g. 06:00,18:00 (env LINEGUARD_SHIFT_STARTS)")
    ap.add_argument("--timezone", default=None,
                    help="the plant's IANA time zone (env LINEGUARD_TIMEZONE; default this PC's)")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    def given(value, convert=lambda v: v):
        return None if value is None else convert(value)
    try:
        cfg = StationConfig.from_env(
            data_dir=given(a.data, Path), db_url=a.db, db_schema=a.db_schema,
            max_upload_bytes=given(a.max_upload_mb, lambda v: int(v * 1024 * 1024)),
            max_image_pixels=given(a.max_megapixels, lambda v: int(v * 1e6)),
            retention=given(a.ok_sample_rate, lambda v: RetentionPolicy(ok_sample_rate=v)),
            webhook_url=a.webhook, mqtt_url=a.mqtt, sqlite_synchronous=a.sqlite_synchronous,
            max_batch=a.max_batch, batch_window_ms=a.batch_window_ms, runtime=a.runtime,
            precision=a.precision, open_reads=a.open_reads, audit_sample_rate=a.audit_sample_rate,
            min_free_gb=a.min_free_gb, ok_image_days=a.ok_image_days, backup_to=a.backup_to,
            backup_every_h=a.backup_every_h, timezone=a.timezone, line=a.line, product=a.product,
            shift_starts=given(a.shift_starts, shift_starts_from_text))
        # the check `lineguard serve` makes, first as there (line.data_folders): a backup
        # folder opened as the station's had its database changed, and the next backup into
        # it refused
        refuse_backup_folder(cfg.data_dir, cfg.sqlite_path)
        # the floor of free space held to the data disk as `lineguard serve` holds it: one
        # the disk can never reach started here and deleted every part image it might
        floor_said = start_disk_floor(cfg, a.min_free_gb is not None)
    except BackupFolderAsData as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        raise SystemExit(2) from None
    except ValueError as exc:      # a setting out of range, or a LINEGUARD_* variable named: no traceback
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if cfg.modbus_port is not None or cfg.opcua_port is not None:
        # the PLC links are `lineguard serve`'s: started here they were dropped without a word
        print("error: LINEGUARD_MODBUS_PORT / LINEGUARD_OPCUA_PORT are set, but `python -m lineguard.server` starts "
              "no PLC link: run `lineguard serve` (it reads the same variables) for a station with one",
              file=sys.stderr)
        raise SystemExit(2)
    # the place checks `lineguard serve` makes (a schema beside a SQLite database, a
    # PostgreSQL station's folder without its database, a --backup-to that can never hold
    # its backups): here the first started a new, empty SQLite station in such a folder
    from ..line.backup import BackupError, check_backup_place
    from ..line.data_folders import PlaceRefused, station_place_problem
    try:
        said = station_place_problem(cfg.data_dir, cfg.db_url, cfg.db_schema, schema_var=a.db_schema is None,
                                     db_given=a.db is not None)
    except PlaceRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if said:
        print(f"note: {said}", file=sys.stderr)
    if cfg.backup_to is not None:
        try:
            check_backup_place(cfg.data_dir, cfg.backup_to)
        except BackupError as exc:
            print(f"error: {'--backup-to' if a.backup_to is not None else 'LINEGUARD_BACKUP_TO'} {cfg.backup_to}: "
                  f"{exc}", file=sys.stderr)
            raise SystemExit(2) from None
    if floor_said:
        print(f"warning: {floor_said}", file=sys.stderr)
    try:
        # the option, else LINEGUARD_PRODUCT / LINEGUARD_LINE (read into cfg, and checked, with the rest)
        serve(cfg, host=a.host, port=a.port, model=a.model, product=cfg.product, line=cfg.line or "",
              log_level="warning")
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except PortRefused as exc:
        # the port taken, or not this PC's to listen on: one line and exit 3, as serve's
        # (uvicorn's own exit before run_server bound the port itself; then a traceback)
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(3) from None


if __name__ == "__main__":
    main()
