"""The photo alarm ("check the camera"): raised by N doubted photos among the last 2N-1
parts, not only N in a row (a dimming lamp's first doubted photos came between passing
ones, and the alarm came 20 parts after the first), and saying what to check for what the
photos had: one sentence for every issue sent a defocused lens's technician to the lamp."""
from __future__ import annotations

from lineguard.line.alarm_rules import AlarmRules
from lineguard.line.alarms import _Counts, _message
from lineguard.line.orm import Inspection
from lineguard.vision import photo_check

DARK = "too dark: brightness 0.201, allowed 0.209-0.35"
FLAT = "too flat (low contrast): contrast 0.12, allowed 0.123-0.207"
BLUR = "blurred (out of focus?): focus 0.12, allowed at least 0.228"
GREY = ("greyscale photo: the model learnt from colour photos (camera switched to mono, or a grey image format?); "
        "colour spread 0, good photos above 0.5")
COLOUR = ("colour photo: the model learnt from greyscale photos (a colour camera in place of a mono one, or a "
          "tinted lamp?); colour spread 9, good photos at most 0.1")


def _counts(pattern, rules=AlarmRules()):
    """Parts 1, 2, ... doubted where ``pattern`` has a D; the kinds due after each part."""
    c = _Counts(rules)
    due = []
    for i, p in enumerate(pattern, start=1):
        c.add(i, "REVIEW" if p == "D" else "OK", doubted=p == "D")
        due.append("photo" in c.due())
    return c, due


def test_three_doubted_of_the_last_five_raise_it_though_passing_photos_came_between():
    c, due = _counts("D.D.D")                   # a lamp flickering as it fails: every other photo doubted
    assert due == [False, False, False, False, True]
    assert c.photo_run() == [1, 3, 5]           # the alarm names the first of them as its first part
    c, due = _counts(".DD...D")                 # the oldest doubted photo left the window of 5
    assert not any(due)
    c, due = _counts("D....D....D....D")        # chance doubts, one in five: never
    assert not any(due)


def test_the_window_follows_the_stored_setting_and_what_an_alarm_did_with_stays_done():
    assert (AlarmRules().photo_window, AlarmRules(photo_run=2).photo_window, AlarmRules(photo_run=5).photo_window,
            AlarmRules(photo_run=0).photo_window) == (5, 3, 9, 0)
    _, due = _counts("D.D", AlarmRules(photo_run=2))
    assert due == [False, False, True]
    _, due = _counts("D..D", AlarmRules(photo_run=2))
    assert not any(due)
    c, due = _counts("DDD")
    assert due[-1]
    c.raise_floor("photo", 3)                   # raised (or acknowledged) at part 3
    c.add(4, "REVIEW", doubted=True)
    c.add(5, "OK")
    assert c.photo_run() == [4] and "photo" not in c.due()
    c.add(6, "REVIEW", doubted=True)
    c.add(7, "REVIEW", doubted=True)
    assert c.photo_run() == [4, 6, 7] and "photo" in c.due()
    off = _Counts(AlarmRules(photo_run=0))
    off.add(1, "REVIEW", doubted=True)
    assert off.photos == [] and off.judged == [(1, "REVIEW")]      # counted as a REVIEW part


def _rec(*issues):
    return Inspection(line="L1", station="S1", product="cell", photo_issues=list(issues))


def test_a_blurred_lens_is_told_to_the_focus_not_to_the_lamp():
    text = _message("photo", AlarmRules(), _rec(BLUR), 3, 3)
    assert "focus ring" in text and "window" in text and "the lamp is on" not in text
    assert "3 of the last 5 photos" in text and BLUR in text
    assert "REVIEW whatever their score" in text and "REVIEW at best" not in text


def test_a_dim_lamp_is_told_to_the_lamp_and_how_to_learn_a_new_one():
    text = _message("photo", AlarmRules(), _rec(DARK, FLAT), 3, 3)
    assert "the lamp is on" in text and "exposure" in text and "focus ring" not in text
    assert "lineguard recalibrate MODEL GOOD_DIR --photo-range" in text
    assert text.index("too dark:") < text.index("low contrast:")    # the lamp first: it makes both


def test_the_advice_follows_what_the_last_photos_had_most_often():
    seen = [[BLUR], [DARK, FLAT], [BLUR, FLAT], [BLUR]]
    text = _message("photo", AlarmRules(), _rec(BLUR), 4, 4, photo_issues=seen)
    what = text.split("What to check: ", 1)[1]
    assert what.index("blurred:") < what.index("low contrast:") < what.index("too dark:")
    assert f"(the last: {BLUR})" in text


def test_colour_and_grey_photos_are_told_to_the_camera_settings_or_the_recipe():
    grey = _message("photo", AlarmRules(), _rec(GREY), 3, 3)
    assert "mono" in grey and "set it back to colour" in grey
    colour = _message("photo", AlarmRules(), _rec(COLOUR), 3, 3)
    assert "recipe" in colour and "variant" in colour
    assert photo_check.issue_kind("something a newer lineguard says: x") is None
    # issues of no kind known here still get the general advice
    assert "check the lamp, the lens and the camera's settings" in _message(
        "photo", AlarmRules(), _rec("something a newer lineguard says: x"), 3, 3)


def test_every_issue_the_check_words_has_its_advice():
    words = [w for pair in photo_check._WORDS.values() for w in pair if w]
    assert all(photo_check.issue_kind(f"{w}: x 0.1, allowed 0.2-0.3") for w in words), words
    assert photo_check.issue_kind(GREY) == "greyscale photo" and photo_check.issue_kind(COLOUR) == "colour photo"
