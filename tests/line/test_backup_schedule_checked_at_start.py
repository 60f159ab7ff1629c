"""`serve --backup-to` a folder that can never hold the station's backups is refused at its
start (exit 2), as `lineguard backup --to` refuses it (line.backup.check_backup_place).

Walk: `serve --backup-to ./st/bk` (inside its own data folder) started without a word and
/health showed no fault; the station's first backup runs 5 minutes after start at the
earliest, so the mistake showed much later, where `lineguard backup --data ./st --to
./st/bk` refused it at once ("is the station's folder or holds it").
"""
from __future__ import annotations

from pathlib import Path

import pytest

from cli_runner import run_in_process, run_serve_refusal


def _station(folder: Path) -> None:
    made = run_in_process("keys", "create", "--role", "admin", "--name", "first", "--data", folder, "--new")
    assert made.returncode == 0, made.stderr


@pytest.mark.parametrize("where", ["inside", "itself", "above"])
def test_serve_refuses_a_backup_folder_in_its_own_data_folder_as_backup_does(where, tmp_path, serve_ports_anywhere):
    st = tmp_path / "st"
    _station(st)
    bk = {"inside": st / "bk", "itself": st, "above": tmp_path}[where]
    by_hand = run_in_process("backup", "--data", st, "--to", bk)
    assert by_hand.returncode == 2 and "is the station's folder or holds it" in by_hand.stderr, by_hand.stderr
    r = run_serve_refusal("--data", st, "--backup-to", bk)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert f"--backup-to {bk}" in r.stderr and "is the station's folder or holds it" in r.stderr, r.stderr
    assert "serve took these settings" not in r.stderr
    r = run_serve_refusal("--data", st, env={"LINEGUARD_BACKUP_TO": str(bk)})
    assert r.returncode == 2 and "LINEGUARD_BACKUP_TO" in r.stderr and "holds it" in r.stderr, r.stderr
    assert not (st / "bk").exists()


def test_serve_refuses_another_stations_folder_or_a_file_as_its_backup_folder(tmp_path, serve_ports_anywhere):
    st, other = tmp_path / "st", tmp_path / "line2"
    _station(st)
    _station(other)
    r = run_serve_refusal("--data", st, "--backup-to", other)
    assert r.returncode == 2 and "holds a station's database that no backup made" in r.stderr, r.stderr
    (tmp_path / "a-file").write_text("x")
    r = run_serve_refusal("--data", st, "--backup-to", tmp_path / "a-file")
    assert r.returncode == 2 and "is a file" in r.stderr, r.stderr
    # a folder fit for backups (not there yet: the first backup makes it) goes on to open the station
    r = run_serve_refusal("--data", st, "--backup-to", tmp_path / "usb" / "bk")
    assert "serve took these settings" in r.stderr, r.stderr
    assert not (tmp_path / "usb").exists()


def test_the_check_reads_only(tmp_path):
    from lineguard.line.backup import BackupError, check_backup_place
    st = tmp_path / "st"
    st.mkdir()
    with pytest.raises(BackupError, match="is the station's folder or holds it"):
        check_backup_place(st, st / "bk")
    check_backup_place(st, tmp_path / "bk")          # elsewhere: fine, nothing made
    assert sorted(p.name for p in tmp_path.iterdir()) == ["st"]
