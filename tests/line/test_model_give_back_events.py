"""A line given back to the product's model of every line: what the outbox says, and what
becomes of the shadow of the line's own version.

The rollback of a line's first own model gives the line back to the model of every line.
Its outbox event said "activated" for that model with for_line set, as if it had been
activated again: an MES could not tell a give-back from an activation. And a shadow of
the line's own version ran on with nothing said, set against another version than the
one it was started beside; a shadow that is that very model judged no part from then on
and Compare blamed it for every one as a part it fell behind on."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from lineguard.line.compare import compare
from lineguard.line.orm import ChangeLogEntry, OutboxEvent
from lineguard.line.station import Part

from .conftest import FakeInspector, png_bytes

EVERY = FakeInspector(0.5, "every-line")


class _Line:
    """Parts of one line of product cell, each a new photo."""

    def __init__(self, st, line: str = "L1"):
        self.st, self.line, self.n = st, line, 0

    def parts(self, k: int) -> None:
        for _ in range(k):
            self.n += 1
            self.st.inspect(png_bytes(100, seed=900 + self.n), Part(f"{self.line}-{self.n}", self.line, "S1", "cell"))
        assert self.st.shadow.wait_idle(30)


def _model_events(st) -> list[tuple[str, dict]]:
    with st.db.session() as s:
        return [(e.line, e.payload) for e in s.scalars(select(OutboxEvent).where(OutboxEvent.event == "model")
                                                       .order_by(OutboxEvent.id))]


def _log(st, action: str) -> list[ChangeLogEntry]:
    with st.db.session() as s:
        return list(s.scalars(select(ChangeLogEntry).where(ChangeLogEntry.action == action)
                              .order_by(ChangeLogEntry.id)))


def _station(station_factory):
    st = station_factory(audit_sample_rate=0.0)
    every = st.add_model(EVERY.to_bytes(), "cell", activate=True)
    return st, every


def test_a_give_back_is_published_as_given_back_not_as_an_activation(station_factory):
    st, every = _station(station_factory)
    own1 = st.add_model(FakeInspector(0.5, "own-1").to_bytes(), "cell", "L1", activate=True)
    own2 = st.add_model(FakeInspector(0.4, "own-2").to_bytes(), "cell", "L1", activate=True)

    # back from v2 to v1 of the line itself: an activation again, as before
    assert (st.rollback_model("cell", "L1", by="eve").line, own1.version) == ("L1", 1)
    line, back = _model_events(st)[-1]
    assert line == "L1" and back["action"] == "activated" and back["rollback"] is True
    assert (back["line"], back["version"]) == ("L1", 1) and "for_line" not in back

    # the line's first own model undone: the line is given back, and the event says so
    assert (st.rollback_model("cell", "L1", by="eve").line, every.version) == ("", 1)
    line, given = _model_events(st)[-1]
    assert line == "L1"        # in the line's order, on its topic
    assert given["action"] == "given_back" and given["for_line"] == "L1" and given["rollback"] is True
    # the version that judges the line from now on ...
    assert (given["product"], given["line"], given["version"], given["model_id"], given["model_version"]) == \
        ("cell", "", 1, every.model_id, "every-line")
    # ... and the line's own one dropped
    assert (given["dropped_version"], given["dropped_model_id"], given["dropped_model_version"]) == \
        (1, own1.model_id, "own-1")
    assert given["undone"] == [1] and given["by"] == "eve"
    assert own2.model_id not in str(given)
    # nothing else went out for it: no "activated" of the model of every line
    assert [p["action"] for _l, p in _model_events(st)].count("activated") == 4


def test_the_version_dropped_is_the_one_active_not_every_one_undone(station_factory):
    st, every = _station(station_factory)
    own1 = st.add_model(FakeInspector(0.5, "own-1").to_bytes(), "cell", "L1", activate=True)
    own2 = st.add_model(FakeInspector(0.4, "own-2").to_bytes(), "cell", "L1", activate=True)
    # v1's file is gone (a restore without it): the rollback walks past it to the model of every line
    st.models.store.path(own1.file_key).unlink()
    assert st.rollback_model("cell", "L1").line == ""
    _line, given = _model_events(st)[-1]
    assert given["action"] == "given_back"
    assert (given["dropped_version"], given["dropped_model_id"]) == (2, own2.model_id)
    assert given["undone"] == [1, 2] and given["version"] == every.version


def test_a_shadow_of_the_lines_own_version_runs_on_against_the_model_given_back_to(station_factory):
    st, every = _station(station_factory)
    line = _Line(st)
    st.add_model(FakeInspector(0.5, "own-1").to_bytes(), "cell", "L1", activate=True)
    cand = st.add_model(FakeInspector(0.3, "own-2").to_bytes(), "cell", "L1")
    st.shadow.start("cell", "L1", cand.version, by="eve")
    line.parts(3)                      # beside L1's own v1

    st.rollback_model("cell", "L1", by="eve")
    (entry,) = _log(st, "model.rolled_back")
    # the change log says the shadow goes on, and against what
    assert entry.details["shadow"] == ("cell/L1 v2 runs on in shadow, compared from now on with cell/* v1, "
                                       "which judges the line now, not with cell/L1 v1")
    assert not _log(st, "model.shadow_stopped")
    assert st.shadow.for_part("cell", "L1").id == cand.id

    line.parts(2)                      # judged by the model of every line, and by the shadow
    active = st.models.active_for("cell", "L1")
    assert active.id == every.id
    with st.db.session() as s:
        out = compare(s, active, cand, "L1")
    # compared with what judges the line now: the two parts since the give-back, none left out
    assert (out["parts"], out["not_compared"]) == (2, 0)


@pytest.mark.one_database
def test_a_shadow_that_is_the_model_given_back_to_ends_and_says_why(station_factory):
    st, every = _station(station_factory)
    line = _Line(st)
    st.add_model(FakeInspector(0.5, "own-1").to_bytes(), "cell", "L1", activate=True)
    # the model of every line's own file, uploaded for L1 to see it beside L1's own v1
    copy = st.add_model(EVERY.to_bytes(), "cell", "L1")
    assert copy.model_id == every.model_id
    st.shadow.start("cell", "L1", copy.version, by="eve")
    line.parts(2)

    st.rollback_model("cell", "L1", by="eve")
    # the live model judges those parts itself now: nothing left to compare it with
    assert st.shadow.for_part("cell", "L1") is None
    (stopped,) = _log(st, "model.shadow_stopped")
    assert stopped.subject == "cell/L1" and stopped.actor == "eve"
    assert stopped.details["why"] == ("line L1 was given back to cell/* v1, the same model as v2 (one model id): "
                                      "it judges the line's parts itself now")
    (entry,) = _log(st, "model.rolled_back")
    assert entry.details["shadow"].startswith("the shadow of cell/L1 v2 ended: line L1 was given back")

    line.parts(2)
    with st.db.session() as s:
        out = compare(s, st.models.active_for("cell", "L1"), copy, "L1")
    # its run ended at the give-back: the parts since are not blamed on it as fallen behind
    assert out["shadow_runs"][-1]["stopped_at"] is not None
    assert out["not_compared"] == 0


@pytest.mark.one_database
def test_the_give_back_is_published_on_the_lines_own_mqtt_topic(station_factory):
    """The give-back's payload names the model of every line (line ""), so its topic was
    lineguard/_all/_/model: a subscriber to lineguard/L1/# never heard that L1 changed model."""
    from lineguard.line.sinks import MqttSink
    st, _every = _station(station_factory)
    st.add_model(FakeInspector(0.5, "own-1").to_bytes(), "cell", "L1", activate=True)
    st.rollback_model("cell", "L1", by="eve")
    sink = MqttSink.__new__(MqttSink)
    sink.topic_prefix = "lineguard"
    topics = [(p["action"], sink.topic({**p, "event": "model"})) for _line, p in _model_events(st)]
    assert topics == [("activated", "lineguard/_all/_/model"), ("activated", "lineguard/L1/_/model"),
                      ("given_back", "lineguard/L1/_/model")], topics
