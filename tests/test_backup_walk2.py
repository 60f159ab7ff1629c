"""Two backups into one folder at once (walk 2): `lineguard backup --data st5 --to sbk2` run
twice together both exited 0, each having copied part of the files and counted the other's
as "already there", the last one's database copy replacing the first's. The second is
refused now (exit 2, saying a backup into that folder runs), and the first goes on whole."""
from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "server"))
from fake_inspector import FakeInspector, png_bytes  # noqa: E402

from cli_runner import run_in_process  # noqa: E402


def _station_with_parts(folder: Path, parts: int = 3) -> None:
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Part, Station
    st = Station(StationConfig(data_dir=folder, min_free_gb=0, store_sweep_h=0), loader=FakeInspector.load)
    try:
        st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
        for i in range(parts):
            st.inspect(png_bytes(60 + i, seed=i), Part(f"b{i}", "L1", "S1", "cell"))
        st.maps.flush()
    finally:
        st.close()


def test_a_second_backup_into_a_folder_a_backup_is_writing_is_refused(tmp_path):
    from lineguard.line.backup import MANIFEST, backup_station
    data, dest = tmp_path / "st5", tmp_path / "sbk2"
    _station_with_parts(data)
    copying, go_on = threading.Event(), threading.Event()

    def held_mid_copy() -> bool:          # the first backup, stopped between its files
        copying.set()
        go_on.wait(30)
        return False

    first: dict = {}

    def run_first():
        try:
            first["report"] = backup_station(data, dest, stop=held_mid_copy)
        except Exception as exc:  # noqa: BLE001 - the test says it
            first["error"] = exc

    worker = threading.Thread(target=run_first, daemon=True)
    worker.start()
    try:
        assert copying.wait(30), first
        before = sorted(p.relative_to(dest) for p in dest.rglob("*"))
        second = run_in_process("backup", "--data", data, "--to", dest)
        assert second.returncode == 2, (second.stdout, second.stderr)
        assert "another backup into" in second.stderr and str(dest) in second.stderr, second.stderr
        assert "backed up" not in second.stdout
        assert sorted(p.relative_to(dest) for p in dest.rglob("*")) == before     # nothing written by it
    finally:
        go_on.set()
        worker.join(60)
    assert "error" not in first, first
    made = json.loads((dest / MANIFEST).read_text())
    assert made["parts"] == 3 and first["report"].files_there == 0
    # once it ended, the next backup is taken: every file there already
    again = run_in_process("backup", "--data", data, "--to", dest)
    assert again.returncode == 0 and "0 files copied" in again.stdout, (again.stdout, again.stderr)


def test_a_stations_own_backup_meeting_a_backup_by_hand_is_no_fault_and_tries_again_soon(tmp_path):
    """The station's --backup-to schedule that met a `lineguard backup` writing the same
    folder set the fault "the backup failed ... check the backup disk (mounted, room left)"
    and waited an hour: nothing was wrong with the disk."""
    from lineguard.vision.atomic import hold_lock
    from lineguard.line.backup import LOOK_EVERY_S, BackupSchedule
    data, dest = tmp_path / "st5", tmp_path / "sbk3"
    _station_with_parts(data, parts=1)
    dest.mkdir()
    held = hold_lock(dest, wait=False)          # a backup by hand, writing the folder now
    assert held is not None
    faults: dict = {}
    schedule = BackupSchedule(data, dest, 24 * 3600, faults)
    try:
        wait = schedule._tick()
    finally:
        import os
        os.close(held)
    assert "backup" not in faults and schedule.error is None, faults
    assert wait == LOOK_EVERY_S
    schedule._next_at = None
    schedule._tick()                            # the folder free: the backup is made
    assert (dest / "lineguard.db").is_file() and "backup" not in faults


def test_a_first_backup_failed_on_a_read_only_disk_asks_to_clear_nothing(tmp_path, monkeypatch, caplog):
    """`lineguard backup --to ./ro/station` on a read-only mount: exit 1 with the disk's
    reason, then "the failed first backup's folder .../ro/station could not be cleared
    ([Errno 30] ...): remove what it left there by hand", though its mkdir had failed and
    nothing was there. The mount is stood in for by making every mkdir and rmdir under it
    fail as the kernel fails them (EROFS): a chmod does not stop root."""
    import errno
    import os

    data, ro = tmp_path / "st", tmp_path / "ro"
    _station_with_parts(data, parts=1)
    ro.mkdir()
    real_mkdir, real_rmdir = os.mkdir, os.rmdir

    def read_only(real):
        def call(path, *a, **k):
            if os.fspath(path).startswith(str(ro)):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))
            return real(path, *a, **k)
        return call
    monkeypatch.setattr(os, "mkdir", read_only(real_mkdir))
    monkeypatch.setattr(os, "rmdir", read_only(real_rmdir))
    with caplog.at_level("WARNING"):
        r = run_in_process("backup", "--data", data, "--to", ro / "station")
    assert r.returncode == 1 and "Read-only file system" in r.stderr, (r.stdout, r.stderr)
    said = r.stderr + caplog.text
    assert "could not be cleared" not in said and "by hand" not in said, said
    assert list(ro.iterdir()) == []
