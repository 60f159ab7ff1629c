"""The camera folder a PLC trigger takes its part's photo from: the photo of that part, or
none (NG, NO_IMAGE), never another part's."""
from __future__ import annotations

import os
import threading
import time

import pytest

from lineguard.line.plc_handshake import CameraFolder

from .conftest import png_bytes


def _save(folder, name, data, mtime_ns=None):
    (folder / name).write_bytes(data)
    if mtime_ns is not None:
        os.utime(folder / name, ns=(mtime_ns, mtime_ns))


def _later(seconds, fn):
    t = threading.Timer(seconds, fn)
    t.start()
    return t


def test_a_photo_saved_a_little_after_its_trigger_is_that_parts(tmp_path):
    """Saved 40 ms after the trigger: it was NO_IMAGE, then judged as the next part, whose own
    photo went to the part after it (a cracked part told OK, a good one NG)."""
    cam = CameraFolder(tmp_path, wait_s=0.5)
    parts = {tag: png_bytes(40 + tag, seed=tag) for tag in (1, 2, 3)}
    for tag in (1, 2, 3):
        _later(0.04, lambda tag=tag: _save(tmp_path, f"part{tag}.png", parts[tag])).join(0)
        data, name = cam()
        assert (name, data) == (f"part{tag}.png", parts[tag])
    # none comes: no image, not an older part's photo
    with pytest.raises(LookupError, match="no new photo"):
        CameraFolder(tmp_path, wait_s=0.05)()


def test_the_photo_of_a_refused_trigger_is_no_later_parts(tmp_path):
    cam = CameraFolder(tmp_path, wait_s=0.05)
    _save(tmp_path, "a.png", png_bytes(40, seed=1))
    assert cam()[1] == "a.png"
    _save(tmp_path, "b.png", png_bytes(40, seed=2))      # the photo of a part whose trigger was refused
    cam.trigger_refused()
    with pytest.raises(LookupError):                     # the next part's photo has not come
        cam()
    _save(tmp_path, "c.png", png_bytes(40, seed=3))
    assert cam()[1] == "c.png"


def test_photos_there_before_the_link_started_are_no_parts(tmp_path):
    _save(tmp_path, "left-over.png", png_bytes(40, seed=1))
    cam = CameraFolder(tmp_path, wait_s=0.05)
    with pytest.raises(LookupError):
        cam()


def test_a_photo_caught_while_written_is_taken_once_whole(tmp_path):
    """A camera writing in place: the trigger read half a PNG (refused), and the finished file
    was then judged as the next part."""
    cam = CameraFolder(tmp_path, wait_s=0.5)
    whole = png_bytes(40, seed=5)
    _save(tmp_path, "cam.png", whole[: len(whole) // 2])
    _later(0.05, lambda: _save(tmp_path, "cam.png", whole)).join(0)
    data, name = cam()
    assert data == whole
    # the camera rewrites the same name for the next part: a new photo
    nxt = png_bytes(40, seed=6)
    _save(tmp_path, "cam.png", nxt, mtime_ns=time.time_ns() + 10_000_000)
    assert cam()[0] == nxt
    with pytest.raises(LookupError):
        cam()


def _late(folder, name, data, after_s=0.04):
    """The camera saving ``name`` a little after the trigger (a thread), for a take that waits."""
    return _later(after_s, lambda: _save(folder, name, data))


def test_after_a_refused_trigger_a_late_camera_keeps_each_part_with_its_own_photo(tmp_path):
    """A camera 40 ms late: the refused trigger's photo came after the next trigger, which took
    it at once, and every part after that took the previous part's photo."""
    cam = CameraFolder(tmp_path, wait_s=0.5)
    photos = {n: png_bytes(30 + i, seed=i) for i, n in enumerate("ABCDEFG")}
    _late(tmp_path, "A.png", photos["A"])
    assert cam()[1] == "A.png"
    cam.trigger_refused()                                  # B's trigger refused; its photo comes late
    _late(tmp_path, "B.png", photos["B"]).join()
    for n in "CDEFG":
        _late(tmp_path, f"{n}.png", photos[n])
        data, name = cam()
        assert (name, data) == (f"{n}.png", photos[n])


def test_after_a_photo_too_late_for_its_trigger_the_next_part_takes_its_own(tmp_path):
    cam = CameraFolder(tmp_path, wait_s=0.2)
    _late(tmp_path, "P1.png", png_bytes(30, seed=1), after_s=0.4)    # later than the wait: NO_IMAGE
    with pytest.raises(LookupError, match="no new photo"):
        cam()
    time.sleep(0.3)                                        # P1's photo lands after all
    _late(tmp_path, "P2.png", png_bytes(40, seed=2))
    assert cam()[1] == "P2.png"


def test_a_part_the_camera_missed_costs_one_more_no_image_and_no_wrong_photo(tmp_path):
    cam = CameraFolder(tmp_path, wait_s=0.1)
    with pytest.raises(LookupError):                       # part 1: the camera did not fire
        cam()
    _save(tmp_path, "2.png", png_bytes(30, seed=2))
    with pytest.raises(LookupError, match="1 photo\\(s\\) came for 1 earlier trigger"):
        cam()                                              # part 2: its photo could be part 1's
    _save(tmp_path, "3.png", png_bytes(30, seed=3))
    assert cam()[1] == "3.png"                             # in step again


def test_after_the_plc_clears_an_error_the_folder_is_counted_afresh(tmp_path):
    """A trigger with no camera photo (NO_IMAGE latches Error): once the PLC cleared it, the
    next part lost its photo too, as owed to the trigger that never got one."""
    cam = CameraFolder(tmp_path, wait_s=0.1)
    with pytest.raises(LookupError):
        cam()
    _save(tmp_path, "late.png", png_bytes(20, seed=9))     # came before the reset: no part's
    cam.restart()
    _save(tmp_path, "1.png", png_bytes(30, seed=1))
    assert cam()[1] == "1.png"


def test_a_photo_still_written_when_the_wait_ends_goes_to_no_part(tmp_path):
    """Written slower than the wait (a share): the half file was taken (refused as an image)
    and, once written, the whole one went to the next part, and so on."""
    cam = CameraFolder(tmp_path, wait_s=0.1)
    a = png_bytes(30, seed=1)
    _save(tmp_path, "A.png", a[: len(a) // 2])
    with pytest.raises(LookupError, match="no new photo"):
        cam()
    _save(tmp_path, "A.png", a, mtime_ns=time.time_ns() + 1_000_000)     # A written to its end
    b = png_bytes(40, seed=2)
    _late(tmp_path, "B.png", b)
    assert cam() == (b, "B.png")


def test_a_tiff_is_taken_once_it_stopped_changing(tmp_path):
    from PIL import Image
    import io
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (90, 90, 90)).save(buf, format="TIFF")
    cam = CameraFolder(tmp_path, wait_s=0.2)
    _save(tmp_path, "t.tif", buf.getvalue())
    assert cam() == (buf.getvalue(), "t.tif")


def test_one_photo_goes_to_one_trigger_of_the_links_sharing_a_folder(tmp_path):
    cam = CameraFolder(tmp_path, wait_s=0.05)
    _save(tmp_path, "p.png", png_bytes(40, seed=1))
    got = []

    def take():
        try:
            got.append(cam()[1])
        except LookupError:
            got.append(None)

    both = [threading.Thread(target=take) for _ in range(2)]
    for t in both:
        t.start()
    for t in both:
        t.join()
    assert sorted(map(str, got)) == ["None", "p.png"]


def test_a_refused_modbus_trigger_leaves_its_photo_to_no_one(sqlite_station):
    """Through the PLC link: a trigger while the result is unread is refused (Error 20); the
    photo the camera saved for it was judged as the next part's."""
    pytest.importorskip("pymodbus")
    from lineguard.line.plc_modbus import ModbusStation, ResultCode

    from .test_plc_modbus import Plc, _free_port
    st = sqlite_station()
    cam_dir = st.config.data_dir / "cam"
    cam_dir.mkdir()
    srv = ModbusStation(st, CameraFolder(cam_dir, wait_s=0.2), {1: "cell"}, line="L1", station_name="S1",
                        port=_free_port(), window_ms=2000, verify_every_s=3600).start()
    plc = Plc(srv.port)
    try:
        _save(cam_dir, "1.png", png_bytes(30, seed=1))
        plc.trigger(tag=1)
        plc.wait("valid")
        _save(cam_dir, "2.png", png_bytes(230, seed=2))      # part 2, a defect: its trigger comes too early
        plc.trigger(tag=2)
        deadline = time.monotonic() + 20                     # a wait for a state: loaded machines are slow
        while not plc.bits()["error"] and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)                                      # the folder looked at after the refusal
        plc.pulse(1)                                         # ResultsAck
        plc.pulse(2)                                         # ClearError
        plc.wait("ready")
        plc.trigger(tag=3)                                   # part 3: its camera did not save
        plc.wait("valid")
        regs = plc.regs()
        assert (regs["tag"], regs["code"]) == (3, ResultCode.NO_IMAGE), regs
    finally:
        plc.close()
        srv.close()


def test_serve_gives_each_link_its_own_camera_folder_and_the_plc_host(tmp_path, monkeypatch):
    """Two links are two lines with a camera each. Both on one folder (one CameraFolder
    shared) judged each link's parts on the other line's photos: Modbus's good parts
    answered NG 279/300 and OPC UA's cracked ones OK, no fault said. Each link now has its
    own folder; the PLC links listen on --plc-host."""
    from click.testing import CliRunner

    from lineguard.cli import app
    from lineguard.line import plc_modbus, plc_opcua
    made = []

    class Link:
        protocol = "fake"

        def __init__(self, station, images, recipes, host, **kw):
            made.append((type(self).__name__, images, host))
            self.hs = type("HS", (), {})()

        def start(self, hold=False):
            assert hold, "not ready until the whole station is started"
            if len(made) == 2:
                raise RuntimeError("stop here")
            return self

        def begin_stop(self):     # serve's stop: every link first drops TriggerReady
            pass

        def close(self, deadline=None):
            pass

    monkeypatch.setattr(plc_modbus, "ModbusStation", type("Modbus", (Link,), {"protocol": "modbus"}))
    monkeypatch.setattr(plc_opcua, "OpcUaStation", type("OpcUa", (Link,), {"protocol": "opcua"}))
    cam1, cam2 = tmp_path / "cam1", tmp_path / "cam2"
    cam1.mkdir()
    cam2.mkdir()
    r = CliRunner().invoke(app, ["serve", "--data", str(tmp_path / "st"), "--product", "cell", "--line", "L1",
                                 "--modbus-port", "15021", "--opcua-port", "14841",
                                 "--plc-images", f"modbus={cam1}", "--plc-images", f"opcua={cam2}",
                                 "--host", "0.0.0.0", "--plc-host", "127.0.0.1", "--plc-image-wait-ms", "100"])
    assert r.exit_code == 2 and "stop here" in r.output, r.output
    (_, modbus_images, modbus_host), (_, opcua_images, opcua_host) = made
    assert isinstance(modbus_images, CameraFolder) and isinstance(opcua_images, CameraFolder)
    assert (modbus_images.folder, opcua_images.folder) == (cam1, cam2)
    assert modbus_images.wait_s == pytest.approx(0.1)
    assert modbus_host == opcua_host == "127.0.0.1"
    r = CliRunner().invoke(app, ["serve", "--data", str(tmp_path / "st"), "--product", "cell", "--line", "L1",
                                 "--modbus-port", "15021", "--plc-images", str(cam1), "--plc-image-wait-ms", "1000"])
    assert r.exit_code == 2 and "leaves no time to judge the part" in r.output, r.output


@pytest.mark.parametrize("given", [
    ["--plc-images", "{cam1}"],                                              # one folder, no link named
    ["--plc-images", "modbus={cam1}", "--plc-images", "opcua={cam1}"],       # both named, one folder
    ["--plc-images", "modbus={cam1}"],                                       # the OPC UA link without one
    ["--plc-camera", "0"],                                                   # one camera for two lines
])
def test_serve_refuses_two_links_on_one_camera_and_says_how_to_give_each_its_own(tmp_path, monkeypatch, given):
    from click.testing import CliRunner

    from lineguard.cli import app
    from lineguard.line import plc_modbus
    started = []
    monkeypatch.setattr(plc_modbus, "ModbusStation", lambda *a, **k: started.append(1))
    cam1 = tmp_path / "cam1"
    cam1.mkdir()
    r = CliRunner().invoke(app, ["serve", "--data", str(tmp_path / "st"), "--product", "cell", "--line", "L1",
                                 "--modbus-port", "15021", "--opcua-port", "14841",
                                 *[g.format(cam1=cam1) for g in given]])
    assert r.exit_code == 2, r.output
    assert "--plc-images modbus=DIR1 --plc-images opcua=DIR2" in r.output, r.output
    assert not started and not (tmp_path / "st").exists(), "refused before the station opened"


def test_serve_takes_a_link_named_folder_for_the_one_link_that_runs(tmp_path):
    import click

    from lineguard.cli.station import _plc_image_folders
    cam = tmp_path / "cam"
    cam.mkdir()
    assert _plc_image_folders(1502, None, (str(cam),), None) == {"modbus": cam}
    assert _plc_image_folders(None, 4840, (f"opcua={cam}",), None) == {"opcua": cam}
    with pytest.raises(click.BadParameter, match="--modbus-port too"):
        _plc_image_folders(None, 4840, (f"modbus={cam}",), None)
