"""A retrain's threshold comes from the line's random audit sample, not from the parts
people reviewed good after the old version flagged them (those are its oddest good parts:
counted, they set the threshold above the line's defects)."""
from __future__ import annotations

import pytest

from lineguard.line.jobs import MIN_SAMPLE_FOR_THRESHOLD
from lineguard.line.station import Part
from lineguard.vision.imageio import load_image

from .conftest import FakeInspector, png_bytes
from .test_model_lifecycle import _wait_job


class _Recording:
    """A plant's trainer that takes ``calibrate_on`` (as Inspector.fit does): the fake
    model's threshold is just above the counted parts' brightest."""

    def __init__(self):
        self.calibrate_on = self.exclude_suspects = self.images = None

    def __call__(self, images, progress=None, calibrate_on=None, exclude_suspects=False):
        self.images, self.calibrate_on = [str(p) for p in images], calibrate_on
        self.exclude_suspects = exclude_suspects
        counted = [load_image(p).mean() / 255.0 for i, p in enumerate(images)
                   if calibrate_on is None or calibrate_on[i]]
        return FakeInspector(threshold=max(counted) + 0.05, version="retrained")


def _parts(st, value: int, want_sample: bool, n: int, prefix: str, seed0: int):
    """``n`` parts of brightness ``value`` in (or out of) the audit sample (drawn by the
    photo's hash: other seeds until enough of the wanted kind)."""
    out, seed = [], seed0
    while len(out) < n:
        rec = st.inspect(png_bytes(value, seed=seed), Part(f"{prefix}-{seed}", "L1", "S1", "cell")).record
        seed += 1
        if rec.audit_sample == want_sample:
            out.append(rec)
    return out


def test_a_retrain_sets_its_threshold_on_the_audit_sample_not_on_the_false_alarms_reviewed_good(station_factory):
    st = station_factory(audit_sample_rate=0.5)
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    trainer = _Recording()
    st.jobs.trainer = trainer
    sample = _parts(st, 60, True, MIN_SAMPLE_FOR_THRESHOLD + 2, "ok", 1000)       # OK, not reviewed
    # the old version's false alarms, outside the sample: bright (NG) and reviewed good
    false_alarms = _parts(st, 150, False, 6, "fa", 5000)
    assert {r.verdict for r in sample} == {"OK"} and {r.verdict for r in false_alarms} == {"NG"}
    for r in false_alarms:
        st.review(r.id, "good", "ann", None)
    job = _wait_job(st, st.jobs.submit_training("cell", "", min_images=5).id)
    assert job.status == "done", job.message
    flags = dict(zip(trainer.images, trainer.calibrate_on))
    by_key = {str(st.images.path(r.image_key)): r for r in sample + false_alarms}
    assert set(flags) == set(by_key)                      # every part learnt ...
    # ... the sample's counted
    assert {p for p, f in flags.items() if f} == {str(st.images.path(r.image_key)) for r in sample}
    # far out, a sample part nobody reviewed may be left out (a defect passed); a part reviewed good never
    may_leave = dict(zip(trainer.images, trainer.exclude_suspects))
    assert {p for p, f in may_leave.items() if f} == {str(st.images.path(r.image_key)) for r in sample}
    assert job.result["threshold_set_on"] == {"parts": len(sample), "audit_sample_only": True,
                                              "audit_sample_parts": len(sample)}
    assert f"set on the {len(sample)} audit-sample parts" in job.message
    new = st.models.get("cell", "", job.result["version"])
    # a part like the false alarms is judged NG by the new version: its threshold is the sample's
    assert new.threshold < min(r.score for r in false_alarms)


@pytest.mark.one_database
def test_with_too_few_audit_sample_parts_every_part_counts_and_the_job_says_so(station_factory):
    st = station_factory(audit_sample_rate=0.0)
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    trainer = _Recording()
    st.jobs.trainer = trainer
    reviewed = [st.inspect(png_bytes(150 if i < 3 else 60, seed=300 + i), Part(f"p-{i}", "L1", "S1", "cell")).record
                for i in range(10)]
    for r in reviewed:
        st.review(r.id, "good", "ann", None)
    job = _wait_job(st, st.jobs.submit_training("cell", "", min_images=5, source="confirmed").id)
    assert job.status == "done", job.message
    assert trainer.calibrate_on is None
    assert job.result["threshold_set_on"] == {"parts": 10, "audit_sample_only": False, "audit_sample_parts": 0}
    assert "only 0 of its parts are in the audit sample" in job.message and "--audit-sample-rate" in job.message


@pytest.mark.one_database
def test_a_refused_retrain_says_how_many_reviewed_good_photos_were_left_out_for_their_photo_issues(station_factory):
    """A line whose photos are unlike the training photos: the photo check doubts them, people
    review the parts good, and a retrain then counts almost none of them (the walk: 116
    reviewed good, "only 7 parts"), saying nothing of why."""
    from lineguard.line.errors import StationError
    import pytest
    st = station_factory(audit_sample_rate=0.0)
    st.add_model(FakeInspector(0.5, photo_floor=0.1).to_bytes(), "cell", activate=True)
    dim = [st.inspect(png_bytes(10, seed=700 + i), Part(f"dim-{i}", "L1", "S1", "cell")).record for i in range(8)]
    fine = [st.inspect(png_bytes(60, seed=800 + i), Part(f"ok-{i}", "L1", "S1", "cell")).record for i in range(3)]
    assert all(r.photo_issues for r in dim) and not any(r.photo_issues for r in fine)
    for r in dim + fine:
        st.review(r.id, "good", "ann", None)
    with pytest.raises(StationError) as refused:
        st.jobs.submit_training("cell", "", min_images=10, source="confirmed")
    msg = refused.value.message
    assert "only 3 stored parts" in msg and "8 other photo(s)" in msg and "photo issues" in msg
    assert "lineguard train" in msg


@pytest.mark.one_database
def test_a_trainer_without_calibrate_on_counts_every_part_and_the_job_says_so(station_factory):
    st = station_factory(audit_sample_rate=0.5)
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    st.jobs.trainer = lambda images, progress=None, **kw: FakeInspector(0.6, "own")    # a plant's own
    _parts(st, 60, True, MIN_SAMPLE_FOR_THRESHOLD, "ok", 1000)
    for r in _parts(st, 150, False, 3, "fa", 5000):
        st.review(r.id, "good", "ann", None)
    job = _wait_job(st, st.jobs.submit_training("cell", "", min_images=5).id)
    assert job.status == "done", job.message
    assert job.result["threshold_set_on"]["audit_sample_only"] is False
    assert "takes no calibrate_on" in job.message
