"""A TIFF whose pages list millions of strips, all at one block (hostile-input walk):
4 MB held the hot-folder watcher for minutes while it read the tables an entry at a
time, then the station refused it as "not an image ...; use one of .png, ... .tif"."""
from __future__ import annotations

import io
import struct
import time

from lineguard.line.sources import local_submitter
from lineguard.line.sources.folder import FolderWatcher, _whole, looks_complete
from lineguard.vision.imageio import MAX_TIFF_ENTRIES

from .conftest import until


def strip_table_tiff(pages: int, count: int, last_offset: int = 8) -> bytes:
    """A little-endian TIFF of ``pages`` directories, each listing ``count`` strips (four
    tables of ``count`` LONGs at one block of zeros); the block's last LONG is
    ``last_offset`` (a strip there, in the offsets table, begins at that byte)."""
    block = 8
    ifd = block + 4 * count
    out = bytearray(b"II*\x00" + struct.pack("<I", ifd)) + bytes(4 * count)
    out[ifd - 4:ifd] = struct.pack("<I", last_offset)
    for p in range(pages):
        at = ifd + p * (2 + 4 * 12 + 4)
        out += struct.pack("<H", 4)
        for tag in (273, 279, 324, 325):
            out += struct.pack("<HHII", tag, 4, count, block)
        out += struct.pack("<I", at + 2 + 4 * 12 + 4 if p + 1 < pages else 0)
    return bytes(out)


class CountingReader(io.BytesIO):
    """A file that counts the bytes read from it: the work the completeness check does."""

    def __init__(self, data: bytes):
        super().__init__(data)
        self.bytes_read = 0

    def read(self, n: int = -1) -> bytes:
        got = super().read(n)
        self.bytes_read += len(got)
        return got


def test_the_strip_tables_read_are_bounded_whatever_the_pages_list():
    bomb = strip_table_tiff(pages=1, count=1_000_000)       # 4 MB listing 4 million entries
    fh = CountingReader(bomb)
    # taken as whole, unread past the limit: the station refuses it and says why
    assert _whole(fh, bomb[:16], len(bomb)) is True
    # before: every table read whole, 16 MB for 4 MB of file (12 such pages: 2m43s)
    assert fh.bytes_read <= 4 * MAX_TIFF_ENTRIES + 65536


def test_a_strip_past_the_end_of_a_long_table_is_still_seen():
    cut = strip_table_tiff(pages=1, count=100_000, last_offset=10**9)
    assert looks_complete(cut) is False
    assert looks_complete(strip_table_tiff(pages=1, count=100_000)) is True


def test_the_watcher_refuses_a_strip_table_bomb_saying_what_is_wrong(sqlite_station, tmp_path):
    st = sqlite_station()
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "TBOMB.tif").write_bytes(strip_table_tiff(pages=3, count=200_000))
    # a refused decode waits for a writer first (incomplete_after_s), then goes to failed/
    w = FolderWatcher(inbox, local_submitter(st, "L1", "S1", "cell", "folder"), settle_s=0.05, poll_s=0.01,
                      incomplete_after_s=0.3)
    explained = inbox / "failed" / "TBOMB.tif.reason.txt"

    def refused() -> bool:
        w.poll_once()
        time.sleep(0.05)
        return explained.exists()

    until(refused, "the strip-table bomb moved to failed/")
    reason = explained.read_text()
    assert "2,400,000 strip or tile offsets" in reason
    assert "use one of" not in reason
    assert st.query() == []
