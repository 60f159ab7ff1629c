"""`lineguard serve` (and watch/camera --data) take the LINEGUARD_* variables of line.config.

serve built its StationConfig from its own options and never read the table: a station set
up with LINEGUARD_BACKUP_TO made no backups, LINEGUARD_SESSION_HOURS left sign-ins at 12 h
and LINEGUARD_AUDIT_SAMPLE_RATE (which the retrain refusal tells users to set) kept no
audit sample, all without a word. These run the command in-process up to the point where
the station would open, and look at the settings it would open with.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from lineguard.cli import app
from lineguard.line.config import _ENV, StationConfig


@pytest.fixture
def no_lineguard_env(monkeypatch):
    for var in [v for v in os.environ if v.upper().startswith("LINEGUARD_")]:
        monkeypatch.delenv(var)          # each test sets its own


@pytest.fixture
def opened(serve_opens, no_lineguard_env):
    return serve_opens


def _serve(tmp_path: Path, *args: str, env: dict | None = None):
    return CliRunner().invoke(app, ["serve", "--data", str(tmp_path / "st"), *args], env=env)


def _every_variable(tmp_path: Path) -> tuple[dict[str, str], dict[str, object]]:
    """A value other than the default for every variable of the table, and the setting each
    must give (written out here, not by the table's own parsers)."""
    env = {
        "LINEGUARD_DATA": str(tmp_path / "env-station"), "LINEGUARD_DB": f"sqlite:///{tmp_path / 'env.db'}",
        "LINEGUARD_DB_SCHEMA": "line_2", "LINEGUARD_MAX_UPLOAD_BYTES": "1048576",
        "LINEGUARD_MODEL_RUN_BYTES_PER_PIXEL": "2048",
        "LINEGUARD_MAX_IMAGE_PIXELS": "4000000", "LINEGUARD_MAX_CONCURRENT_DECODES": "3",
        "LINEGUARD_REPORT_SLOTS": "4", "LINEGUARD_OK_SAMPLE_RATE": "0.25", "LINEGUARD_AUDIT_SAMPLE_RATE": "1",
        "LINEGUARD_MIN_FREE_GB": "0", "LINEGUARD_OK_IMAGE_DAYS": "3", "LINEGUARD_KEEP_RECORDS_DAYS": "90",
        "LINEGUARD_ARCHIVE_RECORDS_TO": str(tmp_path / "archive"), "LINEGUARD_ARCHIVE_IMAGES": "all",
        "LINEGUARD_STORE_SWEEP_H": "6", "LINEGUARD_BACKUP_TO": str(tmp_path / "backups"),
        "LINEGUARD_BACKUP_EVERY_H": "6", "LINEGUARD_WEBHOOK": "http://127.0.0.1:18702/hook",
        "LINEGUARD_MQTT": "mqtt://127.0.0.1:18701", "LINEGUARD_WEBHOOK_TIMEOUT": "30",
        "LINEGUARD_MAX_BATCH": "4", "LINEGUARD_BATCH_WINDOW_MS": "5", "LINEGUARD_RUNTIME": "openvino",
        "LINEGUARD_PRECISION": "bf16", "LINEGUARD_SHIFT_STARTS": "06:00, 18:00",
        "LINEGUARD_TIMEZONE": "Europe/Berlin", "LINEGUARD_OPEN_READS": "1", "LINEGUARD_SESSION_HOURS": "0.5",
        "LINEGUARD_POWER_SAFE": "1",
        "LINEGUARD_ALARM_NG_RUN": "7", "LINEGUARD_ALARM_NG_RATE": "0.2", "LINEGUARD_ALARM_WINDOW": "50",
        "LINEGUARD_ALARM_PHOTO_RUN": "4", "LINEGUARD_ALARM_NO_VERDICT_RUN": "5", "LINEGUARD_ALARM_DRIFT_PARTS": "200",
        "LINEGUARD_ALARM_ESCALATE_MIN": "15", "LINEGUARD_ALARM_ESCALATE_AGAIN_MIN": "30",
        "LINEGUARD_PRODUCT": "tile", "LINEGUARD_LINE": "L3", "LINEGUARD_PLC_LINE": "L4",
        "LINEGUARD_PLC_STATION": "S4",
        "LINEGUARD_MODBUS_PORT": "15020", "LINEGUARD_OPCUA_PORT": "14840",
        "LINEGUARD_PLC_IMAGES": f"modbus={tmp_path / 'cam-modbus'}{os.pathsep}opcua={tmp_path / 'cam-opcua'}",
        "LINEGUARD_PLC_IMAGE_WAIT_MS": "100", "LINEGUARD_INSPECTION_WINDOW_MS": "800",
        "LINEGUARD_PLC_HOST": "10.0.0.5", "LINEGUARD_RECIPE": "1=tile,2=plate",
        "LINEGUARD_PEERS": "line2=http://10.0.0.12:8000,line3=http://10.0.0.13:8000",
    }
    for cam in ("cam-modbus", "cam-opcua"):      # the PLC links' camera folders must be there
        (tmp_path / cam).mkdir(exist_ok=True)
    want = {
        "data_dir": tmp_path / "env-station", "db_url": f"sqlite:///{tmp_path / 'env.db'}", "db_schema": "line_2",
        "max_upload_bytes": 1048576, "model_run_bytes_per_pixel": 2048, "max_image_pixels": 4_000_000, "max_concurrent_decodes": 3,
        "report_slots": 4, "ok_sample_rate": 0.25, "audit_sample_rate": 1.0, "min_free_gb": 0.0,
        "ok_image_days": 3.0, "keep_records_days": 90.0, "archive_records_to": tmp_path / "archive",
        "archive_images": "all", "store_sweep_h": 6.0, "backup_to": tmp_path / "backups", "backup_every_h": 6.0,
        "webhook_url": "http://127.0.0.1:18702/hook", "mqtt_url": "mqtt://127.0.0.1:18701",
        "webhook_timeout_s": 30.0, "max_batch": 4, "batch_window_ms": 5.0, "runtime": "openvino",
        "precision": "bf16", "shift_starts": ("06:00", "18:00"), "timezone": "Europe/Berlin", "open_reads": True,
        "sqlite_synchronous": "FULL",
        "session_hours": 0.5, "alarm_ng_run": 7, "alarm_ng_rate": 0.2, "alarm_window": 50, "alarm_photo_run": 4,
        "alarm_no_verdict_run": 5, "alarm_drift_parts": 200, "alarm_escalate_min": 15.0, "alarm_escalate_again_min": 30.0,
        "product": "tile", "line": "L3", "plc_line": "L4", "plc_station": "S4", "modbus_port": 15020, "opcua_port": 14840,
        "plc_images": (f"modbus={tmp_path / 'cam-modbus'}", f"opcua={tmp_path / 'cam-opcua'}"),
        "plc_image_wait_ms": 100.0, "inspection_window_ms": 800.0,
        "plc_host": "10.0.0.5", "recipes": ("1=tile", "2=plate"),
        "peers": ("line2=http://10.0.0.12:8000", "line3=http://10.0.0.13:8000"),
    }
    return env, want


def _settings(cfg: StationConfig, names) -> dict[str, object]:
    return {n: cfg.retention.ok_sample_rate if n == "ok_sample_rate" else getattr(cfg, n) for n in names}


def test_serve_takes_every_variable_of_the_table(tmp_path, opened):
    """The walk's station: LINEGUARD_SESSION_HOURS=0.01, _AUDIT_SAMPLE_RATE=1 and _BACKUP_TO
    gave 12 h sign-ins, no audit sample and no backups; every other variable alike."""
    env, want = _every_variable(tmp_path)
    # a variable added to the table is added here too, with a value of its own
    # but the PLC camera's, which stand instead of LINEGUARD_PLC_IMAGES (tests/test_it_small_fixes.py)
    assert set(env) | {"LINEGUARD_PLC_CAMERA", "LINEGUARD_PLC_CAMERA_FPS"} == set(_ENV), set(_ENV) ^ set(env)
    # a schema is a PostgreSQL database's (refused beside a SQLite one), which takes no
    # LINEGUARD_BACKUP_TO: read in a start of its own
    schema = env.pop("LINEGUARD_DB_SCHEMA")
    want.pop("db_schema")
    r = CliRunner().invoke(app, ["serve"], env=env)
    assert r.exit_code == 2 and "stopped before the station opens" in r.output, r.output
    (cfg,) = opened
    assert _settings(cfg, want) == want
    pg = {"LINEGUARD_DATA": str(tmp_path / "pg-station"), "LINEGUARD_DB": "postgresql://lg@127.0.0.1:1/none",
          "LINEGUARD_DB_SCHEMA": schema}
    r = CliRunner().invoke(app, ["serve"], env=pg)
    assert r.exit_code == 2 and "stopped before the station opens" in r.output, r.output
    assert opened[-1].db_schema == schema


def test_the_command_line_wins_over_the_variable_and_the_variable_over_the_default(tmp_path, opened):
    env = {"LINEGUARD_AUDIT_SAMPLE_RATE": "1", "LINEGUARD_BACKUP_TO": str(tmp_path / "env-backups"),
           "LINEGUARD_SESSION_HOURS": "0.5", "LINEGUARD_MAX_BATCH": "4", "LINEGUARD_REPORT_SLOTS": "4"}
    # an option given at its default value is given all the same: it wins over the variable
    r = _serve(tmp_path, "--audit-sample-rate", "0.02", "--backup-to", str(tmp_path / "cli-backups"),
               "--max-batch", "8", env=env)
    assert r.exit_code == 2, r.output
    r = _serve(tmp_path, "--max-upload-mb", "2", "--power-safe",
               env={"LINEGUARD_MAX_UPLOAD_BYTES": "1048576", "LINEGUARD_SESSION_HOURS": "1"})
    assert r.exit_code == 2, r.output
    first, second = opened
    assert _settings(first, ["audit_sample_rate", "backup_to", "session_hours", "max_batch", "report_slots",
                             "data_dir"]) == {
        "audit_sample_rate": 0.02, "backup_to": tmp_path / "cli-backups", "session_hours": 0.5, "max_batch": 8,
        "report_slots": 4, "data_dir": tmp_path / "st"}
    assert (second.max_upload_bytes, second.sqlite_synchronous, second.session_hours) == \
        (2 * 1024 * 1024, "FULL", 1.0)
    # no variable, no option: the defaults
    r = _serve(tmp_path, env={"LINEGUARD_SESSION_HOURS": "2"})
    assert r.exit_code == 2, r.output
    assert (opened[-1].session_hours, opened[-1].audit_sample_rate, opened[-1].backup_to) == (2.0, 0.02, None)


@pytest.mark.parametrize("env, var", [
    ({"LINEGUARD_AUDIT_SAMPLE_RATE": "abc"}, "LINEGUARD_AUDIT_SAMPLE_RATE"),
    ({"LINEGUARD_AUDIT_SAMPLE_RATE": "2"}, "LINEGUARD_AUDIT_SAMPLE_RATE"),
    ({"LINEGUARD_SESSION_HOURS": "0"}, "LINEGUARD_SESSION_HOURS"),
    ({"LINEGUARD_MAX_BATCH": "1.5"}, "LINEGUARD_MAX_BATCH"),
    ({"LINEGUARD_ALARM_NG_RUN": "1"}, "LINEGUARD_ALARM_NG_RUN"),
    ({"LINEGUARD_OPEN_READS": "maybe"}, "LINEGUARD_OPEN_READS"),
    # one the station cannot take with another setting: backups of a PostgreSQL station
    ({"LINEGUARD_BACKUP_TO": "/mnt/backup-disk/lineguard", "LINEGUARD_DB": "postgresql://lg:secret@127.0.0.1/x"},
     "LINEGUARD_BACKUP_TO"),
])
def test_a_bad_value_ends_the_start_naming_its_variable(tmp_path, opened, env, var):
    r = _serve(tmp_path, env=env)
    assert r.exit_code == 2 and var in r.output, r.output
    assert not opened                     # refused before the station opens, not replaced by a default
    assert "secret" not in r.output       # a database URL's password is not shown


def test_a_bad_value_is_refused_where_the_command_line_does_not_set_it_only(tmp_path, opened):
    """The option given, its variable is not read: a bad one does not stop the station."""
    r = _serve(tmp_path, "--audit-sample-rate", "0.5", env={"LINEGUARD_AUDIT_SAMPLE_RATE": "2",
                                                            "LINEGUARD_SESSION_HOURS": "3"})
    assert r.exit_code == 2 and "stopped before the station opens" in r.output, r.output
    assert (opened[0].audit_sample_rate, opened[0].session_hours) == (0.5, 3.0)


def test_a_misspelt_variable_is_warned_about_in_one_line(tmp_path, opened):
    r = _serve(tmp_path, env={"LINEGUARD_BACKUPTO": str(tmp_path / "b"), "LINEGUARD_API_KEY": "k",
                              "LINEGUARD_SESSION_HOURS": "1"})
    assert r.exit_code == 2, r.output
    warned = [line for line in r.output.splitlines() if "LINEGUARD_BACKUPTO" in line]
    assert len(warned) == 1 and "did you mean LINEGUARD_BACKUP_TO" in warned[0], r.output
    assert "LINEGUARD_API_KEY" not in r.output          # read by watch/camera: not a typo
    assert opened[0].backup_to is None and opened[0].session_hours == 1.0


def test_the_app_as_uvicorn_imports_it_names_the_bad_variable_too(no_lineguard_env, monkeypatch):
    monkeypatch.setenv("LINEGUARD_AUDIT_SAMPLE_RATE", "abc")
    with pytest.raises(ValueError, match="LINEGUARD_AUDIT_SAMPLE_RATE"):
        StationConfig.from_env()


def test_a_watcher_inspecting_here_takes_the_variables_too(tmp_path, no_lineguard_env, monkeypatch):
    """watch --data runs a station in its own process: its settings come as serve's do."""
    import lineguard.line.station as line_station
    data = tmp_path / "st"
    data.mkdir()
    (data / "lineguard.db").touch()
    (tmp_path / "in").mkdir()
    made: list[StationConfig] = []

    class NotOpened(Exception):
        pass

    def station(cfg, *args, **kw):
        made.append(cfg)
        raise NotOpened

    monkeypatch.setattr(line_station, "Station", station)
    env = {"LINEGUARD_AUDIT_SAMPLE_RATE": "1", "LINEGUARD_MIN_FREE_GB": "0", "LINEGUARD_ALARM_NG_RUN": "9"}
    r = CliRunner().invoke(app, ["watch", str(tmp_path / "in"), "--line", "L1", "--product", "cell", "--data",
                                  str(data), "--alarm-ng-run", "6"], env=env)
    assert isinstance(r.exception, NotOpened), r.output
    (cfg,) = made
    assert (cfg.audit_sample_rate, cfg.min_free_gb, cfg.alarm_ng_run) == (1.0, 0.0, 6)
    r = CliRunner().invoke(app, ["watch", str(tmp_path / "in"), "--line", "L1", "--product", "cell", "--data",
                                  str(data)], env={"LINEGUARD_BACKUP_EVERY_H": "0"})
    assert r.exit_code == 2 and "LINEGUARD_BACKUP_EVERY_H" in r.output, r.output


def test_python_m_lineguard_server_reads_the_environment_too(monkeypatch, tmp_path):
    """The container entry point built its settings from its own options and read three
    variables: LINEGUARD_BACKUP_TO, _AUDIT_SAMPLE_RATE and the rest were dropped there too."""
    import lineguard.server.__main__ as entry
    got = {}
    monkeypatch.setattr(entry, "serve", lambda cfg, **kw: got.setdefault("cfg", cfg))
    monkeypatch.setenv("LINEGUARD_BACKUP_TO", str(tmp_path / "bk"))
    monkeypatch.setenv("LINEGUARD_AUDIT_SAMPLE_RATE", "0.5")
    monkeypatch.setenv("LINEGUARD_SESSION_HOURS", "2")
    entry.main(["--data", str(tmp_path / "st"), "--audit-sample-rate", "0.25"])
    cfg = got["cfg"]
    assert cfg.backup_to == tmp_path / "bk" and cfg.session_hours == 2.0
    assert cfg.audit_sample_rate == 0.25            # the option given wins
    assert cfg.data_dir == tmp_path / "st"
    monkeypatch.setenv("LINEGUARD_MAX_BATCH", "lots")
    with pytest.raises(SystemExit) as bad:
        entry.main(["--data", str(tmp_path / "st")])
    assert bad.value.code == 2


def test_serve_names_the_settings_the_environment_gave_and_warns_of_a_database_beside_its_folder(
        opened, tmp_path):
    """A LINEGUARD_DB left in a shell sent `serve --data DIR` (DIR holding its SQLite station)
    to an empty PostgreSQL database without a word."""
    (tmp_path / "st").mkdir()
    (tmp_path / "st" / "lineguard.db").write_bytes(b"")
    r = _serve(tmp_path, env={"LINEGUARD_DB": "postgresql://line:s3cret@127.0.0.1:1/plant",
                              "LINEGUARD_SESSION_HOURS": "2"})
    said = r.output + (r.stderr if r.stderr_bytes is not None else "")
    assert "settings from the environment: LINEGUARD_DB, LINEGUARD_SESSION_HOURS" in said
    assert "not the SQLite station in" in said and "s3cret" not in said
    assert opened and opened[-1].db_url.endswith("/plant")
