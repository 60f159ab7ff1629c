"""The model lifecycle: audit sample, retraining only from trusted parts, shadow, compare, rollback."""
from __future__ import annotations

import hashlib
import time

import pytest
from sqlalchemy import func, select

from lineguard.line.compare import compare, version_rates
from lineguard.line.config import RetentionPolicy
from lineguard.line.errors import Conflict, NotFound, StationError
from lineguard.line.orm import OutboxEvent, ShadowResult
from lineguard.line.station import Part, in_audit_sample

from .conftest import FakeInspector, png_bytes


def part(pid: str, line: str = "L1") -> Part:
    return Part(pid, line, "S1", "cell")


def _wait_job(st, job_id: int, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = st.jobs.get(job_id)
        if job.status in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError("the training job did not finish")


# -- the audit sample --------------------------------------------------------------------
def test_audit_sample_parts_keep_their_image_whatever_the_retention(station_factory):
    st = station_factory(retention=RetentionPolicy(keep_ng=False, ok_sample_rate=0.0), audit_sample_rate=1.0)
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    ok = st.inspect(png_bytes(30, seed=1), part("a-ok")).record
    ng = st.inspect(png_bytes(230, seed=2), part("a-ng")).record
    assert (ok.verdict, ng.verdict) == ("OK", "NG")
    for rec in (st.get(ok.id), st.get(ng.id)):
        assert rec.audit_sample is True and rec.image_key is not None and st.images.exists(rec.image_key)


def test_parts_outside_the_audit_sample_follow_the_retention_policy(station_factory):
    st = station_factory(retention=RetentionPolicy(ok_sample_rate=0.0), audit_sample_rate=0.0)
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    ok = st.get(st.inspect(png_bytes(30, seed=1), part("n-ok")).record.id)
    assert ok.audit_sample is False and ok.image_key is None


def test_audit_sample_is_the_configured_share_and_independent_of_ok_retention():
    digests = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(20000)]
    picked = [d for d in digests if in_audit_sample(d, 0.02)]
    assert 0.015 < len(picked) / len(digests) < 0.025
    # among the OK images retention drops (rate 0.1), the audit sample still takes its share
    dropped = [d for d in digests if not RetentionPolicy(ok_sample_rate=0.1).keep(False, d)]
    share = sum(in_audit_sample(d, 0.02) for d in dropped) / len(dropped)
    assert 0.015 < share < 0.025
    assert not any(in_audit_sample(d, 0.0) for d in digests[:100])
    assert all(in_audit_sample(d, 1.0) for d in digests[:100])


# -- retraining ------------------------------------------------------------------------
def test_training_never_learns_from_unreviewed_ok_parts(station_factory):
    st = station_factory(audit_sample_rate=0.0)
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    oks = [st.inspect(png_bytes(30 + i, seed=10 + i), part(f"u-{i}")).record for i in range(12)]
    assert all(r.verdict == "OK" and r.image_key for r in oks)
    for source in ("confirmed", "sample", "both"):
        assert st.jobs.good_part_keys("cell", "", 100, source) == []
    with pytest.raises(StationError, match="at least 10"):
        st.jobs.submit_training("cell", "", min_images=10)
    for r in oks[:3]:
        st.review(r.id, "good", "ann", None)
    assert sorted(k for k, _ in st.jobs.good_part_keys("cell", "", 100, "confirmed")) == \
        sorted(r.image_key for r in oks[:3])


def test_training_sources_and_what_the_new_version_records(station_factory):
    st = station_factory(audit_sample_rate=1.0)
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    # the audit sample holds a rare bright part the old model rejected (score ~0.55): unreviewed,
    # it is not learnt (an NG nobody looked at is most likely a defect)
    sample = [st.inspect(png_bytes(40 + i, seed=20 + i), part(f"s-{i}")).record for i in range(8)]
    odd = st.inspect(png_bytes(140, seed=40), part("s-odd")).record
    defect = st.inspect(png_bytes(240, seed=41), part("s-defect")).record
    assert odd.verdict == "NG" and all(r.audit_sample for r in sample + [odd, defect])
    st.review(defect.id, "defect", "ann", None, defect_type="crack")   # reviewed defects are left out
    st.review(sample[0].id, "good", "ann", None)
    st.review(sample[1].id, "good", "ann", None)
    both = dict(st.jobs.good_part_keys("cell", "", 100, "both"))
    assert defect.image_key not in both and odd.image_key not in both and len(both) == 8
    assert [both[r.image_key] for r in sample[:2]] == ["confirmed", "confirmed"]
    confirmed = st.jobs.good_part_keys("cell", "", 100, "confirmed")
    assert sorted(k for k, _ in confirmed) == sorted(r.image_key for r in sample[:2])
    assert len(st.jobs.good_part_keys("cell", "", 100, "sample")) == 8
    with pytest.raises(StationError, match="source"):
        st.jobs.submit_training("cell", "", source="everything")

    job = _wait_job(st, st.jobs.submit_training("cell", "", min_images=5, source="both").id)
    assert job.status == "done", job.message
    assert job.result["images"] == 8 and job.result["source"] == "both"
    mv = st.models.get("cell", "", job.result["version"])
    assert mv.train_images == 8
    assert "2 reviewed good" in mv.trained_from and "6 audit sample" in mv.trained_from
    # the new threshold is set on the parts learnt, never at the unreviewed NG part's score
    assert mv.threshold < odd.score


@pytest.mark.one_database
def test_a_version_records_its_thresholds_at_upload(station):
    mv = station.add_model(FakeInspector(0.6, "v-band", review_threshold=0.4).to_bytes(), "cell")
    assert (mv.threshold, mv.review_threshold) == (pytest.approx(0.6), pytest.approx(0.4))
    plain = station.models.get("cell", "", 1)
    assert plain.threshold == pytest.approx(0.5) and plain.review_threshold is None   # no band


@pytest.mark.one_database
def test_a_version_from_before_thresholds_were_recorded_gets_them_when_loaded(station):
    from sqlalchemy import update
    from lineguard.line.orm import ModelVersion
    with station.db.session() as s:
        s.execute(update(ModelVersion).values(threshold=None, review_threshold=None, detector=None))
    mv = station.models.get("cell", "", 1)
    station.models.forget(mv.model_id)
    station.models.inspector(mv)
    assert station.models.get("cell", "", 1).threshold == pytest.approx(0.5)


# -- rollback walks back ---------------------------------------------------------------
def test_rollback_walks_back_through_the_activations(station):
    for thr, ver in ((0.6, "v-b"), (0.7, "v-c")):
        station.add_model(FakeInspector(thr, ver).to_bytes(), "cell", activate=True)
    assert station.models.active_for("cell", "L1").version == 3
    assert station.rollback_model("cell", "").version == 2
    assert station.rollback_model("cell", "").version == 1      # not forward again to 3
    with pytest.raises(Conflict, match="no earlier activation"):
        station.rollback_model("cell", "")
    assert station.models.active_for("cell", "L1").version == 1
    # a new activation starts the walk again from there
    station.activate_model("cell", "", 3)
    assert station.rollback_model("cell", "").version == 1
    with pytest.raises(Conflict):
        station.rollback_model("cell", "")


def test_rollback_skips_repeated_activations_of_the_same_version(station):
    station.add_model(FakeInspector(0.6, "v-b").to_bytes(), "cell", activate=True)
    station.activate_model("cell", "", 2)                       # activated twice in a row
    station.activate_model("cell", "", 1)
    station.activate_model("cell", "", 2)
    assert station.rollback_model("cell", "").version == 1
    assert station.rollback_model("cell", "").version == 2       # the activation of 2 before that one
    assert station.rollback_model("cell", "").version == 1
    with pytest.raises(Conflict):
        station.rollback_model("cell", "")


# -- shadow and compare ----------------------------------------------------------------
def _shadow_station(station_factory, **kw):
    st = station_factory(audit_sample_rate=0.0, **kw)
    st.add_model(FakeInspector(0.5, "v-active").to_bytes(), "cell", activate=True)
    st.add_model(FakeInspector(0.3, "v-candidate").to_bytes(), "cell")
    return st


@pytest.mark.one_database
def test_a_shadow_judges_every_part_and_is_never_signalled(station_factory):
    st = _shadow_station(station_factory)
    with pytest.raises(Conflict, match="already active"):
        st.shadow.start("cell", "", 1)
    with pytest.raises(NotFound):
        st.shadow.start("cell", "", 9)
    cand = st.shadow.start("cell", "", 2, by="eve")
    values = (40, 100, 230)     # scores ~0.16 (both OK), ~0.39 (OK vs NG), ~0.9 (both NG)
    recs = [st.inspect(png_bytes(v, seed=50 + i), part(f"sh-{i}")).record for i, v in enumerate(values)]
    assert st.shadow.wait_idle(10)
    assert [r.verdict for r in recs] == ["OK", "OK", "NG"]          # the line hears the active model
    with st.db.session() as s:
        rows = {r.inspection_id: r for r in s.scalars(select(ShadowResult))}
        events = list(s.scalars(select(OutboxEvent).where(OutboxEvent.event == "inspection")))
    assert [rows[r.id].verdict for r in recs] == ["OK", "NG", "NG"]
    assert all(rows[r.id].model_version_id == cand.id for r in recs)
    assert rows[recs[1].id].score == pytest.approx(recs[1].score)
    assert sorted(e.payload["verdict"] for e in events) == ["NG", "OK", "OK"]
    assert not any("shadow" in str(e.payload) or "v-candidate" in str(e.payload) for e in events)

    st.shadow.stop("cell", "")
    st.inspect(png_bytes(100, seed=60), part("sh-after"))
    assert st.shadow.wait_idle(10)
    with st.db.session() as s:
        assert len(list(s.scalars(select(ShadowResult)))) == 3
    with pytest.raises(NotFound):
        st.shadow.stop("cell", "")


@pytest.mark.one_database
def test_activating_the_shadow_ends_it(station_factory):
    st = _shadow_station(station_factory)
    st.shadow.start("cell", "", 2)
    st.activate_model("cell", "", 2)
    assert st.shadow.for_part("cell", "L1") is None
    st.inspect(png_bytes(100, seed=61), part("promoted"))
    assert st.shadow.wait_idle(10)
    with st.db.session() as s:
        assert list(s.scalars(select(ShadowResult))) == []
    # so does a rollback onto the shadow version
    st.shadow.start("cell", "", 1)
    assert st.rollback_model("cell", "").version == 1
    assert st.shadow.for_part("cell", "L1") is None


@pytest.mark.one_database
def test_a_slow_shadow_is_dropped_not_waited_for(station_factory):
    st = station_factory(audit_sample_rate=0.0, shadow_queue=1)
    st.add_model(FakeInspector(0.5, "v-fast").to_bytes(), "cell", activate=True)
    # 1.5 s a part: the six parts come faster than that however loaded the machine (at 0.5 s
    # a slow machine's 0.3 s parts left the shadow time for four)
    st.add_model(FakeInspector(0.3, "v-slow", delay_s=1.5).to_bytes(), "cell")
    st.shadow.start("cell", "", 2)
    for i in range(6):
        st.inspect(png_bytes(100, seed=70 + i), part(f"slow-{i}"))
    # parts dropped from the shadow's queue are the proof the line did not wait (a line that
    # waited would leave the queue empty for each next part); no clock bound beside it
    assert st.shadow.dropped >= 3
    assert st.shadow.wait_idle(30)
    with st.db.session() as s:
        judged = len(list(s.scalars(select(ShadowResult))))
    assert 1 <= judged <= 3 and judged + st.shadow.dropped == 6
    m = st.metrics.render().decode()
    assert f'lineguard_shadow_parts_total{{outcome="dropped"}} {float(st.shadow.dropped)}' in m
    assert f'lineguard_shadow_parts_total{{outcome="judged"}} {float(judged)}' in m


def test_compare_agreement_disagreements_and_rates_on_reviewed_parts(station_factory):
    st = _shadow_station(station_factory)
    st.shadow.start("cell", "", 2)
    values = (40, 100, 105, 230)    # both OK; OK vs NG; OK vs NG; both NG
    recs = [st.inspect(png_bytes(v, seed=80 + i), part(f"c-{i}")).record for i, v in enumerate(values)]
    assert st.shadow.wait_idle(10)
    st.review(recs[1].id, "good", "ann", None)          # the candidate's NG on it is a false reject
    st.review(recs[2].id, "defect", "ann", None)        # the active model's OK on it is an escape
    st.review(recs[3].id, "good", "ann", None)          # both rejected a good part
    active, cand = st.models.get("cell", "", 1), st.models.get("cell", "", 2)
    with st.db.session() as s:
        out = compare(s, active, cand)
        rates = version_rates(s, [active, cand])
    assert out["parts"] == 4 and out["agreement"] == pytest.approx(0.5)
    assert [d["inspection_id"] for d in out["disagreements"]] == [recs[2].id, recs[1].id]   # newest first
    d = out["disagreements"][0]
    assert (d["active_verdict"], d["candidate_verdict"], d["review_label"]) == ("OK", "NG", "defect")
    assert d["part_id"] == recs[2].part_id          # named as the line knows the part
    assert out["reviewed"]["active"] == {"n_good": 2, "n_defect": 1, "false_reject_rate": 0.5,
                                         "escape_rate": 1.0}
    assert out["reviewed"]["candidate"] == {"n_good": 2, "n_defect": 1, "false_reject_rate": 1.0,
                                            "escape_rate": 0.0}
    assert rates[active.id] == out["reviewed"]["active"] and rates[cand.id] == out["reviewed"]["candidate"]
    with st.db.session() as s:
        assert compare(s, active, cand, line="L9")["parts"] == 0
        assert version_rates(s, [st.models.get("cell", "", 2)])[cand.id] is not None


@pytest.mark.one_database
def test_a_training_job_reports_how_far_the_fit_is_and_is_listed_while_it_runs(station_factory):
    st = station_factory(audit_sample_rate=1.0)
    st.add_model(FakeInspector(0.5, "v-a").to_bytes(), "cell", activate=True)
    for i in range(8):
        st.inspect(png_bytes(40 + i, seed=900 + i), part(f"prog-{i}"))
    seen = []

    def trainer(images, progress):
        for i in range(len(images)):
            progress("load", i + 1, len(images))
        progress("features", 4, 8)       # a new stage: written at once, whatever the pace
        (job,) = st.jobs.recent(5, ["running"])
        seen.append((job.progress, job.message))
        progress("features", 5, 8)       # within the interval of the last: not written
        (job,) = st.jobs.recent(5, ["running"])
        seen.append((job.progress, job.message))
        return FakeInspector.fit(images)
    st.jobs.trainer = trainer
    st.jobs.progress_every_s = 600.0    # so the second report surely falls within it
    job = _wait_job(st, st.jobs.submit_training("cell", "", min_images=5, source="sample").id)
    assert job.status == "done", job.message
    # features: 0.30 to 0.50 of the bar (the coreset and the cross-scoring after them have theirs)
    assert seen[0] == (0.4, "training on 8 audit-sample parts judged OK or reviewed good (0 reviewed good, 8 audit "
                             "sample): learning the good parts' features (4 of 8)")
    assert seen[1] == seen[0]
    assert [j.id for j in st.jobs.recent(5)] == [job.id] and st.jobs.recent(5, ["running", "queued"]) == []


@pytest.mark.one_database
def test_a_trainer_without_progress_still_trains(station_factory):
    st = station_factory(audit_sample_rate=1.0)
    st.add_model(FakeInspector(0.5, "v-a").to_bytes(), "cell", activate=True)
    for i in range(6):
        st.inspect(png_bytes(40 + i, seed=950 + i), part(f"plain-{i}"))
    st.jobs.trainer = lambda images: FakeInspector.fit(images)     # a plant's own, with no progress
    job = _wait_job(st, st.jobs.submit_training("cell", "", min_images=5, source="sample").id)
    assert job.status == "done", job.message


def test_progress_never_goes_back_and_a_failed_write_does_not_fail_the_fit():
    from lineguard.line.jobs import _FitProgress, _takes
    written = []
    fail = [False]

    def write(**v):
        if fail[0]:
            raise RuntimeError("database is locked")
        written.append(v["progress"])
    prog = _FitProgress(write, "8 parts", every_s=0.0)
    for stage, done, total in [("load", 8, 8), ("features", 4, 8), ("coreset", 1, 2), ("cross-scoring at 0.7x", 1, 2),
                               ("calibrate", 1, 1), ("own-stage", 1, 4)]:
        prog(stage, done, total)
    # the coreset and cross-scoring move the bar (it stood at 80% through two thirds of a
    # 762-photo fit); a trainer's own later stage does not pull it back
    assert written == [0.3, 0.4, 0.6, 0.75, 0.85, 0.85]
    fail[0] = True
    prog("features", 8, 8)                            # logged, not raised
    # a trainer that passes **kwargs on to a library is not handed progress; one that names it is
    assert not _takes(lambda images, **opts: None, "progress")
    assert _takes(lambda images, progress=None, **opts: None, "progress")


def test_cross_fitting_reports_progress_across_every_fold_fit():
    import numpy as np
    from lineguard.vision.detectors.base import Detector
    seen = []

    class Counting(Detector):
        name = "counting"
        min_good_images = 2

        def get_params(self):
            return {}

        def fit(self, images, progress=None):
            for i in range(len(images)):
                if progress:
                    progress(i + 1, len(images))
            return self

        def score(self, images):
            return np.zeros(len(images), np.float32), np.zeros((len(images), 2, 2), np.float32)
    Counting().fit_cross_scored(np.zeros((10, 4, 4, 3), np.uint8), progress=lambda d, t: seen.append(d / t))
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert seen[0] < 0.05          # the fold fits count: not stuck at 0 until the final fit


def test_a_version_says_what_it_looks_at():
    from types import SimpleNamespace
    from lineguard.line.registry import model_facts
    quality = SimpleNamespace(threshold=3.2, review_threshold=2.9, preprocess=SimpleNamespace(image_size=(320, 192)),
                              detector=SimpleNamespace(name="patchcore", backbone="mobilenet_v2", extra_scales=(0.7,)))
    assert model_facts(quality)["features"] == "mobilenet_v2 320x192 + 0.7x"
    exported = SimpleNamespace(threshold=1.0, detector=SimpleNamespace(name="patchcore", input_size_=(224, 224)))
    assert model_facts(exported)["features"] == "224x224"
    assert model_facts(SimpleNamespace(threshold=0.5))["features"] is None


@pytest.mark.one_database
def test_a_version_registered_before_its_features_were_recorded_gets_them_at_its_next_load(station_factory,
                                                                                           monkeypatch):
    import lineguard.line.registry as registry
    from lineguard.line.orm import ModelVersion
    st = station_factory()
    st.add_model(FakeInspector(0.5, "v-a").to_bytes(), "cell", activate=True)
    with st.db.session() as s:
        assert s.query(ModelVersion).one().features is None      # a fake model says nothing of it
    real = registry.model_facts
    monkeypatch.setattr(registry, "model_facts", lambda insp: {**real(insp), "features": "efficientnet_lite0 224x224"})
    st.models.forget(st.models.list("cell")[0].model_id)
    st.inspect(png_bytes(60, seed=990), part("feat-0"))          # loads the model again
    with st.db.session() as s:
        assert s.query(ModelVersion).one().features == "efficientnet_lite0 224x224"


@pytest.mark.one_database
def test_a_second_shadow_ends_the_first_in_the_change_log_and_the_same_one_twice_is_one_run(station_factory):
    from lineguard.line.audit import entries
    st = _shadow_station(station_factory)
    st.add_model(FakeInspector(0.45, "v-c").to_bytes(), "cell")
    st.shadow.start("cell", "", 2, by="ana")
    started = st.shadow.current()[("cell", "")]
    st.shadow.start("cell", "", 2, by="ben")          # a double tap: the run goes on as it was
    assert st.shadow.for_part("cell", "L1").version == 2
    st.shadow.start("cell", "", 3, by="ana")
    assert st.shadow.for_part("cell", "L1").version == 3
    log = [(e.action, e.actor, (e.details or {}).get("why")) for e in reversed(entries(st.db))
           if e.action.startswith("model.shadow")]
    assert log == [("model.shadow_started", "ana", None), ("model.shadow_stopped", "ana", "v3 shadows instead of v2"),
                   ("model.shadow_started", "ana", None)]
    assert started.version == 2


@pytest.mark.one_database
def test_too_few_parts_to_retrain_says_what_to_do_in_the_pages_words(station_factory):
    st = station_factory(audit_sample_rate=0.0)
    st.add_model(FakeInspector(0.5, "v-a").to_bytes(), "cell", activate=True)
    with pytest.raises(StationError) as both:
        st.jobs.submit_training("cell", "", min_images=10, source="both")
    with pytest.raises(StationError) as confirmed:
        st.jobs.submit_training("cell", "", min_images=10, source="confirmed")
    assert "learn from both" not in both.value.message and "learn from both" in confirmed.value.message
    assert "review queue" in both.value.message and "LINEGUARD_AUDIT_SAMPLE_RATE" in both.value.message


@pytest.mark.one_database
def test_a_retrain_whose_activation_is_refused_is_done_with_its_version_registered(station_factory):
    """The training worked and its version was registered; only the switch was refused (it
    rejected the line's good parts). The job read "failed: uploaded as version 2, not
    activated", and the Models page said "training failed"."""
    st = station_factory(audit_sample_rate=1.0)
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    for i in range(12):
        assert st.inspect(png_bytes(40 + i, seed=60 + i), part(f"r-{i}")).record.verdict == "OK"

    def rejects_everything(paths):
        return FakeInspector(0.01, "v-too-strict")
    st.jobs.trainer = rejects_everything
    job = _wait_job(st, st.jobs.submit_training("cell", "", min_images=5, activate=True).id)
    assert job.status == "done", job.message
    assert job.result["activated"] is False and job.result["not_activated"]["code"] == "rejects_good_parts"
    assert job.message.startswith(f"version {job.result['version']} registered, not activated: ")
    versions = {mv.version: mv for mv in st.models.list("cell", "")}
    assert job.result["version"] == 2 and not versions[2].active and versions[1].active
    # asked to activate and allowed: activated, and said so
    st.jobs.trainer = lambda paths: FakeInspector(0.5, "v-fine")
    job = _wait_job(st, st.jobs.submit_training("cell", "", min_images=5, activate=True).id)
    assert job.status == "done" and job.result["activated"] is True and job.result["not_activated"] is None
    assert "registered and activated" in job.message
    assert next(mv for mv in st.models.list("cell", "") if mv.active).version == 3


@pytest.mark.one_database
def test_a_station_closed_during_a_retrain_stops_the_fit_and_says_so(station_factory):
    """A `systemctl stop` during a retrain: the fit was left running while the interpreter
    shut down (abort, exit 134), and the job said "running" until the next start."""
    import threading
    st = station_factory(audit_sample_rate=1.0)
    st.add_model(FakeInspector(0.5, "v-a").to_bytes(), "cell", activate=True)
    for i in range(6):
        st.inspect(png_bytes(40 + i, seed=970 + i), part(f"stop-{i}"))
    fitting, reports = threading.Event(), []

    def trainer(images, progress):           # a long fit, reporting as Inspector.fit does
        fitting.set()
        for i in range(6000):
            reports.append(i)
            progress("features", i, 6000)
            time.sleep(0.01)
        return FakeInspector.fit(images)
    st.jobs.trainer = trainer
    first = st.jobs.submit_training("cell", "", min_images=5, source="sample")
    queued = st.jobs.submit_training("cell", "", min_images=5, source="sample")
    assert fitting.wait(20)
    t0 = time.monotonic()
    st.jobs.close()
    assert time.monotonic() - t0 < 10 and not st.jobs._thread.is_alive()
    assert len(reports) < 6000
    for job_id, said in ((first.id, "the station stopped while this job ran; start it again"),
                          (queued.id, "the station stopped before this job started: nothing was trained; start it "
                                      "again")):
        job = st.jobs.get(job_id)
        assert job.status == "interrupted" and job.finished_at is not None, (job.status, job.message)
        assert job.message == said


def test_a_retrain_for_a_slip_of_the_product_or_line_is_told_the_one_meant(station_factory):
    """"cel" was told "only 0 stored parts ... review more of its parts"; line "l1" (the line
    is "L1") learnt the product's reference photos alone and registered cell/l1 v1."""
    st = station_factory(audit_sample_rate=1.0)
    st.add_model(FakeInspector(0.5, "v-a").to_bytes(), "cell", activate=True)
    for i in range(6):
        st.inspect(png_bytes(40 + i, seed=990 + i), part(f"slip-{i}", line="L1"))
    with pytest.raises(NotFound) as product:
        st.jobs.submit_training("cel", "", min_images=5)
    assert "did you mean 'cell'?" in product.value.message and product.value.details["did_you_mean"] == ["cell"]
    with pytest.raises(NotFound) as line:
        st.jobs.submit_training("cell", "l1", min_images=5)
    assert "line 'l1'" in line.value.message and "did you mean 'L1'?" in line.value.message, line.value.message
    assert st.jobs.recent(5) == []                       # nothing queued, no version to be made
    # a line with nothing at all of the product: refused too, the lines named
    with pytest.raises(NotFound, match="The lines the station knows: L1"):
        st.jobs.submit_training("cell", "L7", min_images=5)
    # the line itself, as before; a new product with nothing yet is a 404 too, naming the
    # products the station knows and what a retrain learns from (it was "only 0 stored parts")
    assert st.jobs.submit_training("cell", "L1", min_images=5).status == "queued"
    with pytest.raises(NotFound, match="holds nothing of product 'battery-lid'") as new:
        st.jobs.submit_training("battery-lid", "", min_images=5)
    assert new.value.details["known"] == ["cell"] and "reference add" in new.value.message


def test_activating_the_version_already_active_changes_nothing(station):
    """Each repeat was logged and published as an activation, and moved its activated_at."""
    from lineguard.line.orm import ChangeLogEntry, ModelActivation
    station.add_model(FakeInspector(0.6, "v-b").to_bytes(), "cell", activate=True)
    before = station.models.active_for("cell", "L1")

    def counts():
        with station.db.session() as s:
            return (s.scalar(select(func.count()).select_from(ChangeLogEntry)),
                    s.scalar(select(func.count()).select_from(OutboxEvent).where(OutboxEvent.event == "model")),
                    s.scalar(select(func.count()).select_from(ModelActivation)))
    seen = counts()
    again = station.activate_model("cell", "", 2, by="eve", force=True)
    assert again.version == 2 and "already the active version" in again.shadow_note
    assert counts() == seen
    assert station.models.get("cell", "", 2).activated_at == before.activated_at
    assert station.rollback_model("cell", "").version == 1      # the walk is as it was
