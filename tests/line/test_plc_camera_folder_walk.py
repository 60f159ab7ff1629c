"""The PLC's camera folder (`--plc-images FOLDER`) and a camera that creates its file first and
writes the photo into it a little later (walk F2): the empty file was taken at once and the
part refused ("the image is empty (0 bytes)", NG), where a half-written PNG was waited for."""
from __future__ import annotations

import threading

import pytest

from lineguard.line.plc_handshake import CameraFolder
from lineguard.line.sources.folder import file_looks_complete

from .conftest import png_bytes


def test_an_empty_file_is_never_complete(tmp_path):
    (tmp_path / "p-3.png").write_bytes(b"")
    (tmp_path / "p-3.tif").write_bytes(b"")
    assert file_looks_complete(tmp_path / "p-3.png", 0) is False
    assert file_looks_complete(tmp_path / "p-3.tif", 0) is False


def test_a_photo_created_empty_and_written_60_ms_later_is_taken_whole(tmp_path):
    cam = CameraFolder(tmp_path, wait_s=0.5)
    photo = png_bytes(40, seed=3)
    (tmp_path / "p-3.png").write_bytes(b"")                 # the camera creates the file ...
    threading.Timer(0.06, lambda: (tmp_path / "p-3.png").write_bytes(photo)).start()   # ... then writes it
    data, name = cam()
    assert (name, data) == ("p-3.png", photo)


def test_a_photo_that_stays_empty_is_no_image_naming_the_empty_file(tmp_path):
    cam = CameraFolder(tmp_path, wait_s=0.1)
    (tmp_path / "p-3.png").write_bytes(b"")
    with pytest.raises(LookupError, match=r"no new photo .*p-3\.png there is empty \(0 bytes\)"):
        cam()
