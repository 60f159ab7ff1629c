"""A part's file taken from the hot folder after it was judged, just before the watcher moved
it to done/ (a person tidying the folder, the camera's own clean-up): the part is judged and
stored, and nothing is wrong with done/. It was said at ERROR as "done/ does not take it ...
check done/'s permissions and free space", sending the line to look at a disk that is fine."""
from __future__ import annotations

import logging

from lineguard.line.sources import local_submitter
from lineguard.line.sources.folder import FolderWatcher

from .conftest import png_bytes
from .test_folder_hardening import _settle


def test_a_file_taken_away_before_its_move_to_done_is_no_fault_of_done(sqlite_station, tmp_path, caplog):
    st = sqlite_station()
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "GONE-1.png").write_bytes(png_bytes(40, seed=141))
    printed = []
    w = FolderWatcher(inbox, local_submitter(st, "L1", "S1", "cell", "folder"), settle_s=0.05, poll_s=0.01,
                      on_result=lambda path, r: printed.append((path.name, r["verdict"])))
    real_still = w._still

    def taken_right_after_the_look(path, *args, **kwargs):
        # the file is still the one judged at the look, and is gone a moment later
        still = real_still(path, *args, **kwargs)
        path.unlink()
        return still

    w._still = taken_right_after_the_look
    with caplog.at_level(logging.DEBUG, logger="lineguard.watch"):
        _settle(w)
    assert [r.part_id for r in st.query()] == ["GONE-1"], "the part was not judged and stored"
    assert [name for name, _ in printed] == ["GONE-1.png"], printed
    errors = [r.getMessage() for r in caplog.records if r.name == "lineguard.watch" and r.levelno >= logging.WARNING]
    assert not errors, (
        f"a file taken from the folder before its move was said as a fault of done/ (the line checks a disk that "
        f"is fine): {errors}")
    assert w.not_moved == {}, f"a file no longer there is listed as judged but left in the folder: {w.not_moved}"
    assert w.counts["done"] == 1
