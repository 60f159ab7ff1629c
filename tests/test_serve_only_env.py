"""Settings only `serve` acts on (its model's product and line, the PLC links) come from the
environment for serve alone: a watcher on the same environment file was stopped by a PLC
setting it does not use, and `python -m lineguard.server` (the container entry point) read
LINEGUARD_MODBUS_PORT and started no PLC link without a word."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lineguard.line.config import StationConfig

SRC = str(Path(__file__).resolve().parents[1] / "src")


def test_a_watcher_does_not_read_or_check_the_plc_settings(tmp_path):
    env = {"LINEGUARD_PLC_IMAGE_WAIT_MS": "6000", "LINEGUARD_LINE": "L9", "LINEGUARD_MODBUS_PORT": "502"}
    with pytest.raises(ValueError, match="LINEGUARD_PLC_IMAGE_WAIT_MS"):
        StationConfig.from_env(environ=env, data_dir=tmp_path)            # serve's: refused
    cfg = StationConfig.from_env(environ=env, data_dir=tmp_path, serve=False)
    assert (cfg.plc_image_wait_ms, cfg.line, cfg.modbus_port) == (250.0, "", None)


def _entry_point(tmp_path, **env):
    full = {k: v for k, v in os.environ.items() if not k.startswith("LINEGUARD_")}
    full.update(PYTHONPATH=SRC, **env)
    return subprocess.run([sys.executable, "-m", "lineguard.server", "--data", str(tmp_path / "st"), "--port", "9"],
                          capture_output=True, text=True, timeout=120, env=full)


def test_the_container_entry_point_refuses_plc_ports_it_would_not_start(tmp_path):
    r = _entry_point(tmp_path, LINEGUARD_MODBUS_PORT="15020", LINEGUARD_PRODUCT="tile")
    assert r.returncode == 2 and "starts no PLC link" in r.stderr and "lineguard serve" in r.stderr, r.stderr
    assert not (tmp_path / "st").exists()


def test_the_container_entry_point_checks_the_line_it_is_given(tmp_path):
    r = _entry_point(tmp_path, LINEGUARD_LINE="L" * 150)
    assert r.returncode == 2 and "LINEGUARD_LINE" in r.stderr and "longer than the 100" in r.stderr, r.stderr
