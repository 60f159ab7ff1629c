"""A backup or the record archive never goes to a share's mount point without its share:
the empty folder of the station's own disk left when the share is not mounted."""
from __future__ import annotations

import pytest

from lineguard.line import mounted
from lineguard.line.backup import MARKER, BackupError, backup_station
from lineguard.line.mounted import CopyFolders, FolderAway, fstab_mount_points, unmounted_fstab_point

from .test_backup import _inspect


def test_fstab_mount_points_are_read_as_mount_reads_them(tmp_path):
    fstab = tmp_path / "fstab"
    fstab.write_text("# <file system> <mount point> <type> <options> <dump> <pass>\n"
                     "UUID=1234 / ext4 errors=remount-ro 0 1\n"
                     "UUID=5678 none swap sw 0 0\n"
                     "/swapfile swap swap defaults 0 0\n"
                     "//nas/qa\\040records /mnt/qa\\040records cifs nofail,credentials=/root/c 0 0   # the share\n"
                     "\n   \n"
                     "nas:/export /srv/archive/ nfs defaults\n"
                     "  # an indented comment\n"
                     "//nas/qa#2 /mnt/qa#2 cifs nofail 0 0\n"
                     "broken-line\n")
    assert fstab_mount_points(fstab) == ["/mnt/qa records", "/srv/archive", "/mnt/qa#2"]
    assert fstab_mount_points(tmp_path / "no-fstab") == []


def test_the_nearest_fstab_mount_above_a_folder_must_be_mounted(tmp_path):
    share = tmp_path / "share"
    (share / "lineguard" / "archive").mkdir(parents=True)
    fstab = tmp_path / "fstab"
    fstab.write_text(f"nas:/qa {share} nfs nofail 0 0\n/proc-like /proc proc defaults 0 0\n")
    assert unmounted_fstab_point(share / "lineguard" / "archive", fstab) == share       # not a mount point here
    assert unmounted_fstab_point(share, fstab) == share
    assert unmounted_fstab_point(tmp_path / "elsewhere", fstab) is None                  # fstab does not mount it
    assert unmounted_fstab_point(mounted.Path("/proc/self"), fstab) is None               # mounted: fine
    # a bind mount from the same disk is no mount point to os.path.ismount: what is mounted
    # now is read from the kernel's list (\040 a space there too)
    (tmp_path / "bound here").mkdir()
    fstab.write_text(f"/srv/src {tmp_path}/bound\\040here none bind 0 0\n")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(f"36 25 8:1 /srv/src {tmp_path}/bound\\040here rw,relatime shared:1 - ext4 /dev/sda1 rw\n")
    assert unmounted_fstab_point(tmp_path / "bound here", fstab, mountinfo) is None
    mountinfo.write_text("25 1 8:1 / / rw - ext4 /dev/sda1 rw\n")
    assert unmounted_fstab_point(tmp_path / "bound here", fstab, mountinfo) == tmp_path / "bound here"


def test_a_link_to_an_unmounted_share_is_refused_as_the_share_is(tmp_path, monkeypatch):
    share = tmp_path / "mnt" / "nas"
    share.mkdir(parents=True)
    (tmp_path / "archive").symlink_to(share)
    fstab = tmp_path / "fstab"
    fstab.write_text(f"//nas/qa {share} cifs nofail 0 0\n")
    monkeypatch.setattr(mounted, "FSTAB", fstab)
    with pytest.raises(FolderAway, match="is not mounted"):
        CopyFolders(tmp_path).check(tmp_path / "archive", ".mark", "copies")


def test_a_remembered_folder_without_its_mark_is_refused_until_marked_again(tmp_path):
    data, share = tmp_path / "data", tmp_path / "share"
    data.mkdir()
    share.mkdir()
    copies = CopyFolders(data, fstab=tmp_path / "no-fstab")
    copies.check(share, ".mark", "copies")                 # never written: nothing to compare with
    copies.mark(share, ".mark")
    assert (share / ".mark").exists()
    copies.check(share, ".mark", "copies")
    copies.check(share, ".other", "other copies")          # remembered for its own mark only
    share.rename(tmp_path / "the-share-itself")            # unmounted: its mount point is left, empty
    share.mkdir()
    with pytest.raises(FolderAway, match="has no .mark file.*create an empty .mark file"):
        copies.check(share, ".mark", "copies")
    assert list(share.iterdir()) == []                      # nothing written there
    (share / ".mark").touch()                              # "start afresh in this folder"
    copies.check(share, ".mark", "copies")
    share.rename(tmp_path / "gone")                        # a remembered folder that is not there at all
    with pytest.raises(FolderAway, match="is not there.*make the folder and an empty .mark file"):
        copies.check(share, ".mark", "copies")
    (data / mounted.REMEMBERED).write_text("not json")     # an unreadable memory guards nothing, breaks nothing
    copies.check(tmp_path / "the-share-itself", ".mark", "copies")


def test_folders_marked_at_once_by_two_writers_are_all_remembered(tmp_path):
    # the station's backup and records threads, and a CLI command, on one data folder
    import threading
    data = tmp_path / "data"
    data.mkdir()
    folders = {mark: [tmp_path / f"{mark}-{i}" for i in range(40)] for mark in (".a", ".b")}
    for each in folders.values():
        for f in each:
            f.mkdir()
    go = threading.Barrier(2)

    def writer(mark):
        copies = CopyFolders(data)
        go.wait()
        for f in folders[mark]:
            copies.mark(f, mark)
    threads = [threading.Thread(target=writer, args=(m,)) for m in folders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    known = CopyFolders(data)._remembered()
    assert {m: sorted(v) for m, v in known.items()} == {m: sorted(str(f) for f in v) for m, v in folders.items()}


def test_a_backup_to_an_unmounted_share_writes_nothing_there(sqlite_station, tmp_path, monkeypatch):
    st = sqlite_station(min_free_gb=0)
    _inspect(st, 3)
    share = tmp_path / "nas"
    share.mkdir()
    dest = share / "station-1"
    backup_station(st.config.data_dir, dest)
    assert (dest / MARKER).exists() and (dest / "lineguard.db").exists()
    share.rename(tmp_path / "nas-away")                    # the share not mounted after a restart:
    share.mkdir()                                          # an empty mount point on the station's disk
    with pytest.raises(BackupError, match="station-1, where the station wrote backups before, is not there"):
        backup_station(st.config.data_dir, dest)
    assert list(share.iterdir()) == []                     # not even the backup's folder made there
    fstab = tmp_path / "fstab"                             # listed in fstab, it is refused by that too
    fstab.write_text(f"//nas/qa {share} cifs nofail 0 0\n")
    monkeypatch.setattr(mounted, "FSTAB", fstab)
    with pytest.raises(BackupError, match=f"{share} is not mounted"):
        backup_station(st.config.data_dir, tmp_path / "nas" / "station-2")     # a folder never written
    assert list(share.iterdir()) == []
    monkeypatch.setattr(mounted, "FSTAB", tmp_path / "no-fstab")
    share.rmdir()
    (tmp_path / "nas-away").rename(share)                  # mounted again: backups go on
    assert backup_station(st.config.data_dir, dest).parts == 3
