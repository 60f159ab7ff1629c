"""A camera's password (rtsp://user:password@cam/...) and a database's, wherever lineguard
prints a camera source or a database URL.

`serve` printed its PLC link's start line with the camera's URL as given ("images from
rtsp://admin:c4m-pw@10.0.0.9/s1"): in the journal of every station started by systemd. The
camera's lost-stream fault (the log, /health) and the "cannot open camera source" error
named it whole too. They are now printed through one helper (line.config.without_password),
which writes the password ***, as the database URLs the commands print already were.

`service-unit` only warned about a password in serve's --plc-camera and camera's --source
(no variable to move it to): serve reads LINEGUARD_PLC_CAMERA, and camera now reads
LINEGUARD_CAMERA_SOURCE, so the unit refuses both, as it refuses --db with a password, and
sends the URL to the --env-file.
"""
from __future__ import annotations

import threading

import pytest

from cli_runner import run_in_process
from test_serve_env_plc import links  # noqa: F401 - a fixture
from test_service_unit import _line1_is_an_account_here, _settings  # noqa: F401 - a fixture

from lineguard.line.config import unknown_env_warnings

PASSWORD = "c4m-pw"
CAMERA = f"rtsp://admin:{PASSWORD}@10.0.0.9:554/Streaming/Channels/101"
SHOWN = "rtsp://admin:***@10.0.0.9:554/Streaming/Channels/101"


@pytest.mark.parametrize("given, shown", [
    (CAMERA, SHOWN),
    # an "@" or "/" in the password, not percent-encoded: hidden whole, not in part
    ("rtsp://admin:p@ss/w0rd@cam/s1", "rtsp://admin:***@cam/s1"),
    # a camera taking its account in the query
    ("http://cam/video.cgi?user=admin&pwd=s3cret&res=1", "http://cam/video.cgi?user=admin&pwd=***&res=1"),
    ("postgresql+psycopg://line1:s3cret@dbpc:5432/plant", "postgresql+psycopg://line1:***@dbpc:5432/plant"),
    ("postgresql://line1@dbpc/plant?password=s3cret&sslmode=require",
     "postgresql://line1@dbpc/plant?password=***&sslmode=require"),
    # nothing to hide: as given
    ("rtsp://10.0.0.9:554/s1", "rtsp://10.0.0.9:554/s1"),
    ("http://cam:8080/live?name=a@b", "http://cam:8080/live?name=a@b"),
    ("rtsp://viewer@cam/s1", "rtsp://viewer@cam/s1"),
    ("0", "0"),
    ("/srv/cam 1/%04d.png", "/srv/cam 1/%04d.png"),
    ("sqlite:////srv/line1/lineguard.db", "sqlite:////srv/line1/lineguard.db"),
])
def test_a_source_or_url_is_shown_without_its_password(given, shown):
    from lineguard.line.config import without_password
    assert without_password(given) == shown


# ---- serve's start line -------------------------------------------------------------------------


class _Grabber:
    """serve's camera, not opened: the start line is what is looked at."""
    kind = "url"        # a live camera: started at once (a file or folder plays from ready)
    made: list = []

    def __init__(self, source, fps=None, on_fault=None, **_kw):
        self.made.append(source)

    def start(self):
        return self

    def image_source(self):
        return lambda: None

    def close(self):
        pass


@pytest.mark.parametrize("given_as", ["option", "environment"])
def test_serve_prints_its_plc_camera_without_the_password(tmp_path, links, monkeypatch, given_as):  # noqa: F811
    from lineguard.line.sources import frames
    monkeypatch.setattr(frames, "FrameGrabber", _Grabber)
    _Grabber.made = []
    env = {"LINEGUARD_PRODUCT": "tile", "LINEGUARD_LINE": "L1", "LINEGUARD_MODBUS_PORT": "18250"}
    args = ["serve", "--data", tmp_path / "st"]
    if given_as == "option":
        args += ["--plc-camera", CAMERA]
    else:
        env["LINEGUARD_PLC_CAMERA"] = CAMERA
    r = run_in_process(*args, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert _Grabber.made == [CAMERA]          # the camera is opened with its password
    assert f"images from {SHOWN}" in r.stdout, r.stdout
    assert PASSWORD not in r.stdout + r.stderr


# ---- the camera's faults: the log, /health, the command's error ------------------------------


class _DeadCamera:
    """A stream that opened and delivers no frame (the camera unplugged after its start)."""

    def get(self, _prop):
        return 0.0

    def read(self):
        return False, None

    def release(self):
        pass


def test_a_lost_camera_is_said_without_its_password(caplog):
    from lineguard.line.sources.frames import FrameGrabber
    said: list = []
    lost = threading.Event()

    def on_fault(why):          # serve puts it in the station's faults: /health shows it
        said.append(why)
        if why is not None:
            lost.set()
    g = FrameGrabber(CAMERA, on_fault=on_fault, reconnect_s=(0.01, 0.01), opener=_DeadCamera)
    with caplog.at_level("INFO", logger="lineguard.camera"):
        g.start()
        try:
            assert lost.wait(30), "the grabber never said the stream was lost"
            with pytest.raises(LookupError) as exc:
                g.next_frame(timeout_s=0.05)
        finally:
            g.close()
    fault = next(why for why in said if why is not None)
    assert f"camera {SHOWN} delivers no frames" in fault, fault
    assert SHOWN in str(exc.value) and g.status()["source"] == SHOWN
    assert PASSWORD not in " ".join([*filter(None, said), str(exc.value), str(g.status()), caplog.text])


def test_a_camera_that_does_not_open_is_said_without_its_password():
    from lineguard.line.sources.camera import CameraSource
    from lineguard.line.sources.frames import FrameGrabber
    for opening in (lambda: FrameGrabber(CAMERA, opener=lambda: None),
                    lambda: CameraSource(CAMERA, lambda *a, **k: None, opener=lambda: None)):
        with pytest.raises(RuntimeError) as exc:
            opening()
        assert f"cannot open camera source {SHOWN!r}" in str(exc.value) and PASSWORD not in str(exc.value)


# ---- camera reads LINEGUARD_CAMERA_SOURCE --------------------------------------------------------


def test_camera_takes_its_source_from_lineguard_camera_source(tmp_path, monkeypatch):
    """The unit's env file holds the URL; the command line names no --source. The camera
    does not open here (no camera at that address): its error is said without the password."""
    import cv2

    import lineguard.cli.station as station_cli
    opened: list = []

    class Unreachable:
        def __init__(self, source):
            opened.append(source)

        def isOpened(self):
            return False

        def release(self):
            pass
    monkeypatch.setattr(cv2, "VideoCapture", Unreachable)
    monkeypatch.setattr(station_cli, "_submitter", lambda *a, **k: (lambda *a, **k: None, None))
    r = run_in_process("camera", "--line", "L1", "--product", "cell", "--server", "http://127.0.0.1:18251",
                       "--api-key", "lg_op_x", env={"LINEGUARD_CAMERA_SOURCE": CAMERA}, cwd=tmp_path)
    assert opened == [CAMERA], r.stdout + r.stderr
    assert r.returncode == 2 and f"cannot open camera source {SHOWN!r}" in r.stderr, r.stderr
    assert PASSWORD not in r.stdout + r.stderr
    # a variable lineguard reads: not reported as a misspelt setting
    assert unknown_env_warnings({"LINEGUARD_CAMERA_SOURCE": CAMERA}) == []


def test_camera_without_a_source_says_both_ways_to_give_it(tmp_path):
    r = run_in_process("camera", "--line", "L1", "--product", "cell", "--data", tmp_path / "st", cwd=tmp_path,
                       env={"LINEGUARD_CAMERA_SOURCE": ""})      # empty: unset, as every LINEGUARD_* variable
    assert r.returncode == 2, r.stdout + r.stderr
    assert "--source" in r.stderr and "LINEGUARD_CAMERA_SOURCE" in r.stderr, r.stderr
    assert not (tmp_path / "st").exists()


# ---- service-unit ------------------------------------------------------------------------------


@pytest.mark.parametrize("verb, option, variable", [
    ("serve", "--plc-camera", "LINEGUARD_PLC_CAMERA"),
    ("camera", "--source", "LINEGUARD_CAMERA_SOURCE"),
])
def test_a_camera_password_on_the_units_command_line_is_refused(tmp_path, verb, option, variable):
    rest = (["--data", "/srv/line1", "--modbus-port", "18252", "--product", "cell"] if verb == "serve" else
            ["--line", "L1", "--product", "cell", "--data", "/srv/line1"])
    r = run_in_process("service-unit", "--user", "line1", "--", verb, option, CAMERA, *rest, cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"{option} holds a password" in r.stderr and f"{variable}=" in r.stderr and "--env-file" in r.stderr
    assert PASSWORD not in r.stdout + r.stderr and "[Service]" not in r.stdout


def test_a_camera_unit_takes_its_source_from_the_environment_file(tmp_path):
    env_file = tmp_path / "L1-cam.env"
    env_file.write_text(f"LINEGUARD_CAMERA_SOURCE={CAMERA}\n")
    env_file.chmod(0o600)
    args = ["camera", "--line", "L1", "--product", "cell", "--data", "/srv/line1"]
    r = run_in_process("service-unit", "--user", "line1", "--env-file", env_file, "--", *args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    s = _settings(r.stdout)
    assert s["EnvironmentFile"] == [str(env_file)] and "--source" not in s["ExecStart"][0]
    assert PASSWORD not in r.stdout + r.stderr
    # without the env file the camera would end at every start for want of its source
    r = run_in_process("service-unit", "--user", "line1", "--", *args, cwd=tmp_path)
    assert r.returncode == 2 and "no --source" in r.stderr and "LINEGUARD_CAMERA_SOURCE=" in r.stderr, r.stderr
    assert "[Service]" not in r.stdout


# ---- database URLs ---------------------------------------------------------------------------------


def test_database_urls_are_printed_through_the_same_helper():
    """The commands' database URL (serve's, keys', parts'), the station's start error and
    rescore's --station-db: a query's password was printed as given by all three."""
    from lineguard.cli.station import _database_shown
    from lineguard.line.config import StationConfig
    from lineguard.line.scale.rescore_db import _shown
    from lineguard.server.app import _db_problem
    url = "postgresql://line1@dbpc/plant?password=s3cret"
    assert _database_shown(url, "--db") == "postgresql://line1@dbpc/plant?password=***"
    assert _shown(url) == "postgresql://line1@dbpc/plant?password=***"
    said = _db_problem(StationConfig(db_url="postgresql://line1:s3cret@dbpc/plant"), RuntimeError("refused"))
    assert "postgresql://line1:***@dbpc/plant" in said and "s3cret" not in said
