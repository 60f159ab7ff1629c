"""`lineguard service-unit -- watch ...` and `-- camera ...`: the hot folder's and the
camera's systemd units.

service-unit wrote a unit for `serve` alone ("give the serve command line after --"): a
plant running `watch --server URL` or `camera` at boot wrote that unit by hand, with the
quoting traps tests/test_service_unit.py describes, and an operator key typed on its
command line, readable by every account. The unit now runs those command lines too,
checked as the command reads them; an --api-key on the line is refused and sent to the
EnvironmentFile as LINEGUARD_API_KEY (the variable watch and camera read), and one without
any key at all for --server is refused rather than restarted every 10 s for ever.
"""
from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import sys

import pytest

from cli_runner import run_in_process
from test_service_unit import _line1_is_an_account_here, _settings, systemd_argv  # noqa: F401 - a fixture

pytest.importorskip("fastapi")

KEY = "lg_op_s3cretkey"


def _env_file(tmp_path):
    env_file = tmp_path / "line 1 watch.env"
    env_file.write_text(f"LINEGUARD_API_KEY={KEY}\n")
    env_file.chmod(0o600)
    return env_file


def test_the_unit_runs_watch_with_a_server_and_its_key_from_the_environment_file(tmp_path):
    env_file = _env_file(tmp_path)
    args = ["watch", "/srv/hot 1/50% $in", "--line", "L1", "--product", "cell", "--server", "http://10.0.0.5:8000"]
    r = run_in_process("service-unit", "--user", "line1", "--working-dir", tmp_path, "--env-file", env_file, "--",
                       *args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    s = _settings(r.stdout)
    (exec_start,) = s["ExecStart"]
    assert systemd_argv(exec_start) == [os.path.abspath(sys.executable), "-m", "lineguard", *args]
    assert s["EnvironmentFile"] == [str(env_file)] and s["User"] == ["line1"]
    assert s["Restart"] == ["on-failure"] and s["KillSignal"] == ["SIGTERM"]
    assert "network-online.target" in s["After"] and "network-online.target" in s["Wants"]
    assert "AmbientCapabilities" not in s          # it listens on no port
    (description,) = s["Description"]
    assert "hot folder /srv/hot 1/50%% $in" in description and "L1" in description, description
    assert KEY not in r.stdout + r.stderr


def test_the_unit_runs_camera_inspecting_here_without_a_capability(tmp_path):
    args = ["camera", "--source", "0", "--line", "L1", "--station", "cam 2", "--product", "cell",
            "--data", "/srv/line1", "--db-wait", "600"]
    r = run_in_process("service-unit", "--user", "line1", "--working-dir", tmp_path, "--", *args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    s = _settings(r.stdout)
    assert systemd_argv(s["ExecStart"][0])[3:] == args
    assert "AmbientCapabilities" not in s and s["Restart"] == ["on-failure"]
    assert "camera cam 2, line L1" in s["Description"][0], s["Description"]
    assert "video group" in r.stdout          # a USB camera's device is the video group's


@pytest.mark.parametrize("verb", ["watch", "camera"])
def test_an_api_key_on_the_command_line_is_refused_and_sent_to_an_environment_file(tmp_path, verb):
    where = ["/srv/hot1"] if verb == "watch" else ["--source", "rtsp://10.0.0.9/s1"]
    r = run_in_process("service-unit", "--user", "line1", "--env-file", _env_file(tmp_path), "--", verb, *where,
                       "--line", "L1", "--product", "cell", "--server", "http://10.0.0.5:8000", "--api-key", KEY,
                       cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "--api-key is a secret" in r.stderr and "LINEGUARD_API_KEY=" in r.stderr and "--env-file" in r.stderr
    assert KEY not in r.stdout + r.stderr and "[Service]" not in r.stdout


def test_a_key_in_this_shell_alone_is_not_taken_for_one_on_the_command_line(tmp_path):
    """watch reads LINEGUARD_API_KEY as its --api-key: one set where service-unit runs is
    not on the unit's command line (the unit does not carry it), and is named as such."""
    r = run_in_process("service-unit", "--user", "line1", "--env-file", _env_file(tmp_path), "--", "watch",
                       "/srv/hot1", "--line", "L1", "--product", "cell", "--server", "http://10.0.0.5:8000",
                       cwd=tmp_path, env={"LINEGUARD_API_KEY": KEY})
    assert r.returncode == 0, r.stderr
    assert "LINEGUARD_API_KEY" in r.stderr and KEY not in r.stdout + r.stderr


def test_what_would_end_watch_at_every_boot_is_refused_now(tmp_path):
    # --server without a key anywhere: "a station server needs an operator key", every 10 s for ever
    r = run_in_process("service-unit", "--user", "line1", "--", "watch", "/srv/hot1", "--line", "L1",
                       "--product", "cell", "--server", "http://10.0.0.5:8000", cwd=tmp_path)
    assert r.returncode == 2 and "needs its operator key at boot" in r.stderr and "--env-file" in r.stderr, r.stderr
    # neither a station to send to nor one to inspect in
    r = run_in_process("service-unit", "--user", "line1", "--", "camera", "--source", "0", "--line", "L1",
                       "--product", "cell", cwd=tmp_path)
    assert r.returncode == 2 and "neither --server URL" in r.stderr and "[Service]" not in r.stdout, r.stderr
    # a mistyped option of watch's own
    r = run_in_process("service-unit", "--user", "line1", "--", "watch", "/srv/hot1", "--line", "L1",
                       "--product", "cell", "--data", "/srv/line1", "--setle", "2", cwd=tmp_path)
    assert r.returncode == 2 and "No such option" in r.stderr and "--settle" in r.stderr, r.stderr


def test_a_camera_password_in_its_source_is_refused(tmp_path):
    """Warned about while --source was the one way to give it; camera reads
    LINEGUARD_CAMERA_SOURCE now (tests/test_camera_secrets.py)."""
    r = run_in_process("service-unit", "--user", "line1", "--", "camera", "--source", "rtsp://admin:c4m-pw@10.0.0.9/s1",
                       "--line", "L1", "--product", "cell", "--data", "/srv/line1", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "--source holds a password" in r.stderr and "LINEGUARD_CAMERA_SOURCE=" in r.stderr, r.stderr
    assert "c4m-pw" not in r.stdout + r.stderr and "[Service]" not in r.stdout


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("verb", ["watch", "camera"])
def test_systemd_analyze_verify_takes_the_watch_and_camera_units(tmp_path, verb):
    where = ["/srv/hot 1/it's 50% $HOME"] if verb == "watch" else ["--source", "/srv/cam 1/%04d.png"]
    r = run_in_process("service-unit", "--user", getpass.getuser(), "--working-dir", tmp_path / "a b 50%",
                       "--env-file", _env_file(tmp_path), "--", verb, *where, "--line", "Linie Süd",
                       "--product", "cell", "--server", "http://127.0.0.1:8000")
    assert r.returncode == 0, r.stderr
    unit = tmp_path / f"lineguard-L1-{verb}.service"
    unit.write_text(r.stdout)
    v = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert v.returncode == 0, v.stdout + v.stderr


def test_a_password_in_the_server_url_is_refused(tmp_path):
    """The unit's description and ExecStart name --server: a password in its URL was shown to every account."""
    r = run_in_process("service-unit", "--user", "line1", "--env-file", _env_file(tmp_path), "--", "watch",
                       "/srv/hot1", "--line", "L1", "--product", "cell", "--server", "http://op:s3cret@10.0.0.5:8000",
                       cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "--server holds a password" in r.stderr and "LINEGUARD_API_KEY=" in r.stderr
    assert "s3cret" not in r.stdout + r.stderr
