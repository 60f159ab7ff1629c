"""`lineguard service-unit -- serve ...` refuses the serve settings serve refuses at every start.

The README's "Run the station at boot" command line without its --env-file (`serve --data
/srv/line1 --modbus-port 502 --plc-images /srv/cam1`) gave a unit, exit 0, while serve itself
refused those settings at every start (no line for the PLC-triggered parts, no product for
recipe 1): systemd started the station again every 10 s, for ever, and no part was judged.
serve's own checks now run when the unit is written, in serve's words; a setting the
--env-file may give is warned about instead, and a camera folder this PC lacks too (the unit
may be written for the line's PC, not this one).
"""
from __future__ import annotations

import os

import pytest

from cli_runner import run_in_process, run_serve_refusal

pytest.importorskip("fastapi")

LINE_MISSING = "name the line PLC-triggered parts are on: --plc-line or --line"
PRODUCT_MISSING = "give --recipe ID=PRODUCT (or --product for recipe 1)"


@pytest.fixture(autouse=True)
def _line1_is_an_account_here(monkeypatch):
    """Units written for an account line1, looked up as the account running the tests (an
    account the PC lacks is refused, and that is not what these tests are about)."""
    from lineguard.cli import service
    real = service._account
    here = service._Account("line1", os.getuid(), os.getgid(), frozenset(os.getgroups()))
    monkeypatch.setattr(service, "_account", lambda name: here if name == "line1" else real(name))


def _unit(tmp_path, *serve_args, env_file=None, user="line1"):
    pre = ["--env-file", env_file] if env_file is not None else []
    return run_in_process("service-unit", "--user", user, "--working-dir", tmp_path, *pre, "--", "serve",
                          *serve_args, cwd=tmp_path)


def test_the_readme_unit_without_its_line_and_product_is_refused_in_serves_words(tmp_path):
    cam = tmp_path / "cam1"
    cam.mkdir()
    args = ["--data", str(tmp_path / "line1"), "--modbus-port", "502", "--plc-images", str(cam)]
    r = _unit(tmp_path, *args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "[Service]" not in r.stdout
    assert LINE_MISSING in r.stderr and "LINEGUARD_PLC_LINE" in r.stderr and "--env-file" in r.stderr
    # the same sentence serve says at start
    served = run_serve_refusal(*args, cwd=tmp_path)
    assert served.returncode == 2 and LINE_MISSING in served.stderr, served.stderr
    # the line given, the product for recipe 1 is still missing: refused as serve refuses it
    r = _unit(tmp_path, *args, "--line", "L1")
    assert r.returncode == 2 and "[Service]" not in r.stdout, r.stdout + r.stderr
    assert PRODUCT_MISSING in r.stderr and "LINEGUARD_PRODUCT" in r.stderr
    served = run_serve_refusal(*args, "--line", "L1", cwd=tmp_path)
    assert served.returncode == 2 and PRODUCT_MISSING in served.stderr, served.stderr
    # both given: the unit, without a word about them
    r = _unit(tmp_path, *args, "--line", "L1", "--product", "cell")
    assert r.returncode == 0 and "[Service]" in r.stdout, r.stderr
    assert "refuses" not in r.stderr


def test_a_setting_the_environment_file_may_give_is_warned_about_not_refused(tmp_path):
    env_file = tmp_path / "L1.env"
    env_file.write_text("LINEGUARD_PLC_LINE=L1\nLINEGUARD_PRODUCT=cell\n")
    env_file.chmod(0o600)
    cam = tmp_path / "cam1"
    cam.mkdir()
    r = _unit(tmp_path, "--data", str(tmp_path / "line1"), "--modbus-port", "502", "--plc-images", str(cam),
              env_file=env_file)
    assert r.returncode == 0 and "[Service]" in r.stdout, r.stderr
    # each missing setting said once, with the variables that give it: the later check went on
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("warning:")]
    assert any(LINE_MISSING in ln and "LINEGUARD_PLC_LINE or LINEGUARD_LINE" in ln for ln in warnings), r.stderr
    assert any(PRODUCT_MISSING in ln and "LINEGUARD_PRODUCT" in ln for ln in warnings), r.stderr


def test_settings_no_environment_file_can_mend_are_refused_even_with_one(tmp_path):
    env_file = tmp_path / "L1.env"
    env_file.write_text("LINEGUARD_PLC_LINE=L1\n")
    env_file.chmod(0o600)
    cam = tmp_path / "cam1"
    cam.mkdir()
    # one port for both links: the command line's values are taken over any variable
    r = _unit(tmp_path, "--modbus-port", "5020", "--opcua-port", "5020", "--plc-images", str(cam), "--product",
              "cell", env_file=env_file)
    assert r.returncode == 2 and "[Service]" not in r.stdout, r.stdout + r.stderr
    assert "--modbus-port and --opcua-port must differ" in r.stderr
    # a recipe written wrong
    r = _unit(tmp_path, "--modbus-port", "5020", "--plc-images", str(cam), "--recipe", "one=cell",
              env_file=env_file)
    assert r.returncode == 2 and "write ID=PRODUCT" in r.stderr, r.stdout + r.stderr


def test_a_camera_folder_this_pc_lacks_is_warned_about_not_refused(tmp_path):
    # the unit may be written here for the line's PC, where /srv/cam1 is
    cam = tmp_path / "not-here" / "cam1"
    r = _unit(tmp_path, "--modbus-port", "5020", "--plc-images", str(cam), "--line", "L1", "--product", "cell")
    assert r.returncode == 0 and "[Service]" in r.stdout, r.stderr
    assert any(str(cam) in ln and "not a folder on this PC" in ln for ln in r.stderr.splitlines()), r.stderr


def test_the_low_port_comment_fits_the_account(tmp_path):
    cam = tmp_path / "cam1"
    cam.mkdir()
    args = ["--data", str(tmp_path / "line1"), "--modbus-port", "502", "--plc-images", str(cam), "--line", "L1",
            "--product", "cell"]
    r = _unit(tmp_path, *args, user="line1")
    assert r.returncode == 0, r.stderr
    assert "# port 502 below 1024, without running as root" in r.stdout
    # User=root with "without running as root" beside it read as a mistake in the unit
    r = _unit(tmp_path, *args, user="root")
    assert r.returncode == 0, r.stderr
    assert "User=root" in r.stdout and "without running as root" not in r.stdout, r.stdout
