"""The ng_run alarm says what the run's parts point at.

A walk ("the camera's bad week") fed a station parts through a knocked camera, a 4:3
camera, another product variant and a lens with a dirty spot: each raised "5 parts in a
row not passed ... a defect the process now makes on every part, or the camera, lighting
or model gone wrong", never naming the likely cause, though the parts' defect regions
showed it: the knocked camera's regions covered 67-77% of every photo (real defects at
most 24%), the dirty lens gave the same box on every part. The alarm now adds one
sentence when the run's regions are that clear, and nothing for a run of real defects.
The regions below are the walk's records and the station's real model's regions of the
synthetic generator's defect parts (vision.synth, product A).
"""
from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
from PIL import Image

from lineguard.line import alarms
from lineguard.line.alarms import ng_run_cause
from lineguard.line.station import Part

from .conftest import FakeInspector

_seeds = itertools.count(7100)

WHOLE = "the whole photo is unlike the good ones on most of these parts"
SPOT = "the same spot on most of these parts"
OLD_END = "stop the line and look before more parts are made"


def _parts(rows, width=256, height=256):
    """(regions, width, height) per part from ((x, y, w, h), area_px) per region."""
    return [([{"box": list(box), "area_px": area, "peak_score": 40.0, "mean_score": 25.0} for box, area in regs],
             width, height) for regs in rows]


# each alarm's five parts, as the walk's station recorded them
KNOCKED = _parts([[((0, 0, 256, 256), a)] for a in (44346, 50424, 47517, 43938, 48906)])
CAMERA_4_3 = _parts([[((221, 0, 119, 256), 26153), ((0, 0, 123, 256), 24435)],
                     [((197, 0, 143, 256), 29048), ((0, 0, 114, 256), 24416)],
                     [((211, 0, 129, 256), 29458), ((0, 0, 120, 256), 23661)],
                     [((212, 0, 128, 256), 27351), ((0, 0, 119, 256), 23567)],
                     [((204, 0, 136, 256), 29236), ((0, 0, 177, 256), 27553)]], width=340)
MIRRORED_VARIANT = _parts([[((0, 189, 248, 67), 14345), ((0, 0, 256, 57), 10762)],
                           [((4, 185, 248, 71), 13835), ((9, 0, 238, 54), 9720)],
                           [((0, 160, 253, 96), 17873), ((6, 0, 244, 54), 10127)],
                           [((1, 189, 245, 67), 14050), ((16, 0, 227, 54), 9342)],
                           [((1, 178, 255, 78), 15868), ((10, 0, 233, 56), 10222)]])
LENS_SPOT = _parts([[((58, 107, 79, 99), 6308)], [((56, 106, 96, 99), 6638)], [((56, 100, 93, 107), 6579)],
                    [((60, 100, 83, 108), 6239)], [((58, 113, 84, 89), 5237)]])

# the five largest regions of each defect type of the synthetic generator (256x256 photos,
# all judged NG by the walk's model): the runs a process's defect makes
REAL_DEFECTS = {
    "crack": [((24, 89, 148, 141), 13898), ((0, 66, 148, 142), 12637), ((68, 37, 139, 136), 11893),
              ((40, 144, 160, 112), 10584), ((45, 114, 141, 116), 10437)],
    "dent": [((25, 124, 112, 113), 9467), ((53, 118, 107, 115), 9337), ((100, 29, 110, 116), 9231),
             ((94, 46, 109, 108), 8321), ((98, 109, 109, 105), 7920)],
    "missing_coating": [((39, 43, 167, 153), 15917), ((26, 32, 147, 150), 15012), ((107, 28, 118, 149), 12014),
                        ((80, 47, 140, 126), 11530), ((51, 110, 136, 123), 11467)],
    "particle": [((66, 86, 111, 105), 8410), ((32, 53, 103, 95), 6616), ((29, 130, 86, 97), 6358),
                 ((160, 46, 85, 103), 6351), ((141, 63, 87, 91), 5699)],
    "scratch": [((19, 100, 167, 135), 15092), ((27, 24, 200, 105), 13509), ((64, 42, 166, 115), 13414),
                ((80, 58, 112, 149), 12261), ((12, 123, 141, 119), 10619)],
    "stain": [((57, 115, 111, 105), 9000), ((59, 123, 116, 100), 7439), ((11, 59, 98, 105), 7392),
              ((152, 88, 86, 97), 5862), ((69, 145, 113, 90), 5781)],
}


@pytest.mark.parametrize("run", [KNOCKED, CAMERA_4_3, MIRRORED_VARIANT], ids=["knocked", "4:3 camera", "variant"])
def test_a_run_whose_regions_cover_most_of_each_photo_is_called_a_camera_or_product_fault(run):
    said = ng_run_cause(run)
    assert said is not None and said.startswith(WHOLE), said
    assert "reference photo" in said and "lineguard reference list" in said


def test_a_run_with_the_same_box_on_every_part_is_called_a_spot_and_says_where():
    said = ng_run_cause(LENS_SPOT)
    assert said is not None and said.startswith(SPOT), said
    # the run's median box, (58, 106, 84, 99) of 256x256, in shares of the photo
    assert "(x 23-55%, y 41-80% of the photo)" in said
    assert "wipe the lens" in said


def test_real_defects_are_never_called_a_camera_fault():
    parts = {k: _parts([[r] for r in v]) for k, v in REAL_DEFECTS.items()}
    # a process making one defect on every part: each type's runs, as recorded
    for kind, run in parts.items():
        for n in (3, 4, 5):
            assert ng_run_cause(run[:n]) is None, f"a run of {n} {kind} parts named a cause"
    # every run of 5 of these 30 parts, mixed: never the whole photo; a spot only by chance
    every = [p for run in parts.values() for p in run]
    said = [ng_run_cause(run) for run in itertools.combinations(every, 5)]
    assert not any(s and s.startswith(WHOLE) for s in said)
    spots = sum(1 for s in said if s)
    assert spots / len(said) < 0.005, f"{spots} of {len(said)} runs of real defects called one spot"


def test_one_odd_part_among_a_run_of_real_defects_names_no_cause():
    crack = _parts([[r] for r in REAL_DEFECTS["crack"]])
    assert ng_run_cause(crack[:4] + KNOCKED[:1]) is None
    assert ng_run_cause(KNOCKED[:4] + crack[:1]).startswith(WHOLE)     # 4 of 5: most of the run


def test_a_short_run_or_records_without_regions_name_no_cause():
    assert ng_run_cause(KNOCKED[:2]) is None                  # a station's ng_run of 2: too little to say
    assert ng_run_cause(LENS_SPOT[:3]) is None                # a spot needs 4 parts at it
    assert ng_run_cause([([], 256, 256)] * 5) is None
    damaged = [([{"box": "x"}], 256, 256), (None, 256, 256), ([{"box": [0, 0, 256, 256]}], 0, None)] + KNOCKED[:2]
    assert ng_run_cause(damaged) is None                       # 2 of 5 parts say it: not most


# -- through the station: the alarm's message ------------------------------------------------

def _photo(patch=None, seed=0, size=64):
    """A dark part (the fake model: REVIEW, the review band starts at 0.2) with a bright patch
    (x, y, w, h) where the model outlines its region; ``patch`` None: bright all over (NG)."""
    rng = np.random.default_rng(seed)
    arr = np.clip(rng.normal(200 if patch is None else 60, 3, (size, size, 3)), 0, 255)
    if patch is not None:
        x, y, w, h = patch
        arr[y:y + h, x:x + w] = 250
    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def station(station_factory):
    st = station_factory(alarm_ng_rate=0)
    st.add_model(FakeInspector(0.5, review_threshold=0.2).to_bytes(), "cell", activate=True)
    return st


def _run(st, patches, prefix):
    for i, patch in enumerate(patches):
        out = st.inspect(_photo(patch, seed=next(_seeds)), Part(f"{prefix}-{i}", "L1", "S1", "cell"))
        assert out.record.verdict != "OK"
    (alarm,) = [a for a in st.alarms.active() if a["kind"] == "ng_run"]
    return alarm["message"]


def test_the_alarm_of_a_dirty_lens_names_the_spot(station):
    msg = _run(station, [(16, 24, 12, 12)] * 5, "SPOT")
    assert msg.startswith("5 parts in a row not passed") and f"{OLD_END}; {SPOT} (x 25-44%, y 38-56%" in msg, msg


@pytest.mark.one_database
def test_the_alarm_of_photos_unlike_the_good_ones_all_over_says_so(station):
    msg = _run(station, [None] * 5, "WHOLE")
    assert f"{OLD_END}; {WHOLE}" in msg, msg


@pytest.mark.one_database
def test_the_alarm_of_real_defects_keeps_its_sentence_alone(station):
    # small marks at different places: a defect of the process, no cause to name
    msg = _run(station, [(2, 2, 8, 8), (40, 6, 10, 6), (10, 44, 6, 12), (44, 40, 9, 9), (26, 20, 7, 7)], "REAL")
    assert msg.endswith(OLD_END), msg


@pytest.mark.one_database
def test_the_regions_are_read_once_when_the_alarm_is_raised_not_for_each_part(station, monkeypatch):
    calls = []
    read = alarms._read_run_cause
    monkeypatch.setattr(alarms, "_read_run_cause", lambda s, ids: calls.append(list(ids)) or read(s, ids))
    for i in range(9):       # four parts, the fifth raises the alarm, four more while it is latched
        station.inspect(_photo((16, 24, 12, 12), seed=500 + i), Part(f"ONCE-{i}", "L1", "S1", "cell"))
        assert len(calls) == (0 if i < 4 else 1), f"the regions were read at part {i + 1}"
    assert len(calls[0]) == 5
