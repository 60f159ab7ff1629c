"""A part id sent again with another photo is noticed in the station, whatever sent it: the hot
folder, a camera, the PLC handshake and the API all go through Station.inspect, which counts the
part's earlier inspections at its station and logs the re-sent part once. Before, only the API
counted and logged it: a PLC re-triggering a part id, or a hot folder fed one twice, said
nothing in the log."""
from __future__ import annotations

import logging
import time

from lineguard.line.sources import local_submitter
from lineguard.line.sources.folder import FolderWatcher
from lineguard.line.station import REINSPECTIONS_LOGGED, Part

from .conftest import png_bytes

OK_PHOTO, NG_PHOTO = 30, 220     # the fake model's score is the photo's brightness (NG above 0.5)


def _said(caplog, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "lineguard.station" and text in r.getMessage()]


def _settle(w: FolderWatcher, rounds: int = 3) -> None:
    for _ in range(rounds):
        w.poll_once()
        time.sleep(w.settle_s + 0.02)
    w.poll_once()


def test_a_part_id_the_hot_folder_is_fed_again_is_logged_with_its_count(sqlite_station, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="lineguard.station")
    st = sqlite_station()
    inbox = tmp_path / "incoming"
    inbox.mkdir()
    w = FolderWatcher(inbox, local_submitter(st, "L1", "S1", "cell", "folder"), settle_s=0.05, poll_s=0.01)
    ids = []
    for value, seed in ((NG_PHOTO, 8100), (OK_PHOTO, 8101), (OK_PHOTO, 8102)):   # reworked twice
        (inbox / "p-7.png").write_bytes(png_bytes(value, seed=seed))
        _settle(w)
        assert not (inbox / "p-7.png").exists()
        ids.append(max(r.id for r in st.query(part_id="p-7")))
    assert len(set(ids)) == 3 and all(r.source == "folder" for r in st.query(part_id="p-7"))
    said = _said(caplog, "inspected again")
    assert [r.levelno for r in said] == [logging.INFO, logging.INFO], [r.getMessage() for r in said]
    for rec_id, earlier, r in zip(ids[1:], (1, 2), said):
        msg = r.getMessage()
        assert "part 'p-7' on line L1 station S1" in msg and "(source folder)" in msg, msg
        assert f"inspection {rec_id}, after {earlier} earlier here" in msg, msg


def test_a_parttag_the_plc_triggers_again_is_counted_and_logged_but_not_a_retry_nor_a_test_part(station, caplog):
    # as the PLC handshake calls the station: a part id of its own for each trigger (the trigger
    # number in it), the PartTag as serial: the part is its PartTag (each re-trigger was a new id,
    # never counted nor said)
    caplog.set_level(logging.INFO, logger="lineguard.station")
    station.test_parts.add("cell", "900001", "NG")

    def plc(part_id: str, value: int, seed: int, tag: str = "4711"):
        return station.inspect(png_bytes(value, seed=seed), Part(part_id, "L1", "S1", "cell", serial=tag),
                               source="plc")

    first = plc("S1-tag4711-5", OK_PHOTO, 8200)
    assert first.created and first.earlier == 0
    again = plc("S1-tag4711-6", NG_PHOTO, 8201)         # re-triggered: the next trigger number
    assert again.created and again.earlier == 1 and again.record.id != first.record.id
    retry = plc("S1-tag4711-5", OK_PHOTO, 8200)         # the first trigger's photo again: its record
    assert not retry.created and retry.record.id == first.record.id and retry.earlier == 0
    other = plc("S1-tag4712-7", NG_PHOTO, 8204, tag="4712")     # another part: none before it
    assert other.created and other.earlier == 0
    # a test part is sent again by design (each shift's verification): counted, not logged
    for n, seed in ((9, 8202), (10, 8203)):
        test = plc(f"S1-tag900001-{n}", NG_PHOTO, seed, tag="900001")
    assert test.created and test.record.test_part == "900001" and test.earlier == 1
    said = _said(caplog, "triggered again")
    assert len(said) == 1, [r.getMessage() for r in said]
    assert "PartTag 4711" in said[0].getMessage() and "part 'S1-tag4711-6'" in said[0].getMessage()
    assert f"inspection {again.record.id}), after 1 earlier here" in said[0].getMessage()
    assert "serial=4711" in said[0].getMessage()


def test_an_id_repeated_for_every_part_is_said_once_not_a_line_per_part(sqlite_station, caplog):
    # a camera naming every file "image" (or a scanner's NOREAD): a few lines, then one
    # warning, then nothing more for that id, however many parts follow
    caplog.set_level(logging.INFO, logger="lineguard.station")
    st = sqlite_station()
    submit = local_submitter(st, "L1", "S1", "cell", "camera")
    n = REINSPECTIONS_LOGGED + 4
    sent = [submit(png_bytes(OK_PHOTO, seed=8300 + i), "image", "image.png") for i in range(n)]
    assert all(s["created"] for s in sent)
    said = _said(caplog, "inspected again")
    assert len(said) == REINSPECTIONS_LOGGED - 1, [r.getMessage() for r in said]
    warned = _said(caplog, "was sent")
    assert len(warned) == 1 and warned[0].levelno == logging.WARNING, [r.getMessage() for r in warned]
    msg = warned[0].getMessage()
    assert f"part id 'image' on line L1 station S1 was sent {REINSPECTIONS_LOGGED + 1} times (source camera" in msg
    assert f"inspection {sent[REINSPECTIONS_LOGGED]['id']})" in msg and "own id" in msg, msg


def test_a_failed_count_never_fails_the_part(sqlite_station, monkeypatch, caplog):
    from sqlalchemy.exc import OperationalError
    import lineguard.line.station as station_module
    caplog.set_level(logging.INFO, logger="lineguard.station")
    st = sqlite_station()
    st.inspect(png_bytes(OK_PHOTO, seed=8400), Part("p-9", "L1", "S1", "cell"), source="folder")

    def away(db, rec):
        raise OperationalError("SELECT count(*) ...", {}, Exception("server closed the connection"))

    monkeypatch.setattr(station_module, "earlier_inspections", away)
    out = st.inspect(png_bytes(NG_PHOTO, seed=8401), Part("p-9", "L1", "S1", "cell"), source="folder")
    assert out.created and out.earlier is None and out.record.verdict == "NG"
    assert len(st.query(part_id="p-9")) == 2            # the part is recorded all the same
    assert _said(caplog, "inspected again") == []
    failed = _said(caplog, "could not be counted")
    assert len(failed) == 1 and failed[0].levelno == logging.WARNING
    assert f"part 'p-9' (inspection {out.record.id})" in failed[0].getMessage()


def test_a_parttag_the_plc_gives_every_part_is_said_once_not_a_line_per_part(sqlite_station, caplog):
    # a PLC that writes one PartTag for every part (a constant): a few lines, then one warning
    caplog.set_level(logging.INFO, logger="lineguard.station")
    st = sqlite_station()
    for n in range(13):
        st.inspect(png_bytes(OK_PHOTO, seed=8300 + n), Part(f"S1-tag1-{n}", "L1", "S1", "cell", serial="1"),
                   source="plc")
    assert len(_said(caplog, "triggered again")) == 9
    (warned,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "PartTag 1 " in warned.getMessage() and "triggered 11 times" in warned.getMessage()
