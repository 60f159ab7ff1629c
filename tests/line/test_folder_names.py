"""Hot-folder entries a plant's PCs make by accident: a file name in another code page (not
UTF-8) and a named pipe with an image's suffix. Neither may sit in the folder unsaid."""
from __future__ import annotations

import logging
import os

from .conftest import png_bytes
from .test_folder_hardening import _settle, _watcher    # the same watcher, polled the same way


def test_a_file_name_that_is_not_utf8_goes_to_failed_with_its_bytes_named(sqlite_station, tmp_path, caplog):
    """Before: "not inspected yet ('utf-8' codec can't encode ...); will retry" at every poll,
    for ever, and the file stayed in the folder."""
    st = sqlite_station()
    inbox = tmp_path / "in"
    inbox.mkdir()
    raw = os.fsencode(inbox) + b"/bad\xff\xfeutf8.png"       # a Latin-1 camera's name, as bytes
    with open(raw, "wb") as fh:
        fh.write(png_bytes(40, seed=31))
    (inbox / "good-1.png").write_bytes(png_bytes(40, seed=32))
    w = _watcher(st, inbox)
    with caplog.at_level(logging.INFO, logger="lineguard.watch"):
        _settle(w)
        _settle(w)
    assert [r.part_id for r in st.query()] == ["good-1"]           # no part recorded under a guessed id
    assert os.listdir(os.fsencode(inbox)).count(b"bad\xff\xfeutf8.png") == 0
    failed = os.fsencode(inbox / "failed")
    assert b"bad\xff\xfeutf8.png" in os.listdir(failed)            # the image kept, to be renamed
    reason = open(failed + b"/bad\xff\xfeutf8.png.reason.txt", encoding="utf-8").read()
    assert "not valid UTF-8" in reason and "\\xff\\xfe" in reason and "rename" in reason
    assert w.counts["failed"] == 1
    assert not [r for r in caplog.records if "will retry" in r.getMessage()]
    # a restart does not take it again (the journal holds the name as written)
    w2 = _watcher(st, inbox)
    _settle(w2)
    assert w2.counts == {"done": 0, "failed": 0, "skipped": 0, "ignored": 0}


def test_a_named_pipe_with_an_image_suffix_is_said_once_and_left(sqlite_station, tmp_path, caplog):
    """Before: skipped at every poll without a word; the line waited for a part that never came."""
    st = sqlite_station()
    inbox = tmp_path / "in"
    inbox.mkdir()
    os.mkfifo(inbox / "fifo.png")
    (inbox / "good-2.png").write_bytes(png_bytes(40, seed=33))
    w = _watcher(st, inbox)
    with caplog.at_level(logging.WARNING, logger="lineguard.watch"):
        _settle(w)
        _settle(w)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("fifo.png")]
    assert len(said) == 1, said                                    # once, however many polls
    assert "not a regular file" in said[0]
    assert [r.part_id for r in st.query()] == ["good-2"]
    assert (inbox / "fifo.png").exists() and not (inbox / "failed").exists()   # never opened nor moved
