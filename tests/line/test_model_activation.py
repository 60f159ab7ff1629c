"""Activating and rolling back model versions on SQLite and PostgreSQL: a version that
rejects the product's good parts is refused unless forced, two changes at the same
moment take turns (the second is told), the change log names versions, and a version
whose file is gone is refused with what to do."""
from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from lineguard.line.audit import entries
from lineguard.line.errors import Conflict, NotFound, StationError
from lineguard.line.station import Part

from .conftest import FakeInspector, png_bytes


def _good_parts(st, n: int, product: str = "cell", value: int = 40, seed: int = 0) -> list:
    """``n`` parts of ``product`` the fake model scores ~value/255 (40: OK under 0.5), images kept."""
    return [st.inspect(png_bytes(value, seed=seed + i), Part(f"{product}-{seed + i}", "L1", "S1", product)).record
            for i in range(n)]


def _active(st, product: str = "cell", line: str = "L1") -> int:
    return st.models.active_for(product, line).version


def _log(st, action: str) -> list:
    return [e for e in entries(st.db) if e.action == action]


# -- a version for another product ---------------------------------------------------------
@pytest.mark.one_database
def test_a_version_that_rejects_most_good_parts_is_refused_unless_forced(station_factory):
    st = station_factory()
    st.add_model(FakeInspector(0.5, "cell-1").to_bytes(), "cell", activate=True)
    _good_parts(st, 8)
    # the washer line's model, uploaded as cell: every good cell part is NG under it
    st.add_model(FakeInspector(0.1, "washer-1").to_bytes(), "cell")
    with pytest.raises(StationError) as refused:
        st.models.activate("cell", "", 2, by="ann", images=st.images)
    err = refused.value
    assert (err.http_status, err.code) == (409, "rejects_good_parts")
    assert "judges 8 of the 8 latest good parts of 'cell' NG" in err.message
    assert "v1, active now, judged them 8 OK" in err.message
    assert "shadow" in err.message and '"force": true' in err.message
    assert err.details["parts_tried"] == 8 and err.details["judged_ng"] == 8 and err.details["active_version"] == 1
    assert _active(st) == 1 and len(_log(st, "model.activated")) == 1      # nothing changed, nothing logged
    mv = st.models.activate("cell", "", 2, by="ann", force=True, images=st.images)
    assert mv.version == 2 and _active(st) == 2
    forced = _log(st, "model.activated")[0]
    assert forced.actor == "ann" and forced.details["forced"] == "judged 8 of the 8 latest good parts NG"


def test_the_good_parts_check_counts_only_parts_known_good_and_needs_five(station_factory):
    st = station_factory()
    st.add_model(FakeInspector(0.5, "cell-1").to_bytes(), "cell", activate=True)
    _good_parts(st, 4)
    _good_parts(st, 3, value=230, seed=100)                  # NG parts: not good parts
    st.test_parts.add("cell", "RR-1", "OK")                  # a test part judged OK: the station's, not the line's
    rabbit = st.inspect(png_bytes(40, seed=150), Part("RR-1", "L1", "S1", "cell")).record
    assert rabbit.test_part == "RR-1" and rabbit.verdict == "OK"
    escape = _good_parts(st, 1, seed=200)[0]
    st.review(escape.id, "defect", "ann", None, defect_type="crack")   # judged OK, a person says defect
    st.add_model(FakeInspector(0.1, "washer-1").to_bytes(), "cell")
    # 4 good parts: too few to stop anyone
    assert st.models.activate("cell", "", 2, images=st.images).version == 2
    st.models.activate("cell", "", 1)
    # a part the old model rejected but a person reviewed good counts too: 5 now
    ng_good = _good_parts(st, 1, value=200, seed=300)[0]
    assert ng_good.verdict == "NG"
    st.review(ng_good.id, "good", "ann", None)
    with pytest.raises(StationError) as refused:
        st.models.activate("cell", "", 2, images=st.images)
    assert refused.value.details["parts_tried"] == 5 and "4 OK, 1 NG" in refused.value.message
    # a version that passes the good parts (stricter but sane) is activated as before
    st.add_model(FakeInspector(0.3, "cell-2").to_bytes(), "cell")
    assert st.models.activate("cell", "", 3, images=st.images).version == 3
    assert "forced" not in (_log(st, "model.activated")[0].details or {})


def test_a_version_that_passes_most_reviewed_defects_is_refused_unless_forced(station_factory):
    # a retrain whose threshold came out above every defect of the line passed 26 of 26
    # real defects, and its good-parts trial alone let it be activated with a 200
    st = station_factory()
    st.add_model(FakeInspector(0.5, "cell-1").to_bytes(), "cell", activate=True)
    _good_parts(st, 8)
    for rec in _good_parts(st, 6, value=200, seed=500):        # judged NG, a person says defect
        assert rec.verdict == "NG"
        st.review(rec.id, "defect", "ann", None, defect_type="crack")
    escape = _good_parts(st, 1, seed=600)[0]                    # passed by the line, found by an audit
    st.review(escape.id, "defect", "ann", None, defect_type="crack")
    st.add_model(FakeInspector(0.9, "cell-loose").to_bytes(), "cell")
    with pytest.raises(StationError) as refused:
        st.models.activate("cell", "", 2, by="ann", images=st.images)
    err = refused.value
    assert (err.http_status, err.code) == (409, "passes_reviewed_defects")
    assert "judges 7 of the 7 latest parts of 'cell' reviewed as defects OK" in err.message
    assert "the line passed 1 of them" in err.message and '"force": true' in err.message
    assert (err.details["defects_tried"], err.details["judged_ok"], err.details["line_passed"]) == (7, 7, 1)
    assert _active(st) == 1 and len(_log(st, "model.activated")) == 1
    mv = st.models.activate("cell", "", 2, by="ann", force=True, images=st.images)
    assert mv.version == 2 and _log(st, "model.activated")[0].details["forced"] == (
        "passed 7 of the 7 latest parts reviewed as defects")
    # an upload asking to activate is kept, not activated, and says so
    st.models.activate("cell", "", 1, force=True, images=st.images)
    with pytest.raises(StationError) as refused:
        st.add_model(FakeInspector(0.95, "cell-looser").to_bytes(), "cell", activate=True, try_first=True)
    assert refused.value.code == "passes_reviewed_defects"
    assert refused.value.message.startswith("uploaded as version 3, not activated") and _active(st) == 1
    # a version that catches them as the line did is activated as before
    st.add_model(FakeInspector(0.6, "cell-2").to_bytes(), "cell")
    assert st.models.activate("cell", "", 4, images=st.images).version == 4
    assert "forced" not in (_log(st, "model.activated")[0].details or {})


# -- two changes at the same moment -----------------------------------------------------------
def _in_step(st, n: int):
    """Make ``n`` activations/rollbacks meet: each waits, once it has read what is active and
    is loading its model, until all have; then they race for the switch."""
    meet = threading.Barrier(n, timeout=10)
    real = st.models.inspector

    def inspector(mv):
        try:
            meet.wait()
        except threading.BrokenBarrierError:
            pass
        return real(mv)
    st.models.inspector = inspector


def _race(*calls):
    out = [None] * len(calls)

    def run(i, call):
        try:
            out[i] = call()
        except StationError as exc:
            out[i] = exc
    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def test_two_activations_at_the_same_moment_the_second_is_told_not_overridden(station_factory):
    st = station_factory()
    for thr, name in ((0.5, "a"), (0.6, "b"), (0.7, "c")):
        st.add_model(FakeInspector(thr, name).to_bytes(), "cell")
    st.activate_model("cell", "", 2)
    _in_step(st, 2)
    out = _race(lambda: st.models.activate("cell", "", 1, by="ann"),
                lambda: st.models.activate("cell", "", 3, by="ben"))
    won = [o for o in out if not isinstance(o, Exception)]
    lost = [o for o in out if isinstance(o, Exception)]
    assert len(won) == 1 and len(lost) == 1, out
    assert (lost[0].http_status, lost[0].code) == (409, "active_changed")
    assert f"v{won[0].version} is active now" in lost[0].message
    assert _active(st) == won[0].version
    assert len(_log(st, "model.activated")) == 2          # v2's, then the winner's only


def test_two_rollbacks_at_the_same_moment_undo_one_activation(station_factory):
    st = station_factory()
    for thr, name in ((0.5, "a"), (0.6, "b"), (0.7, "c")):
        st.add_model(FakeInspector(thr, name).to_bytes(), "cell", activate=True)
    _in_step(st, 2)
    out = _race(lambda: st.models.rollback("cell", "", by="ann"), lambda: st.models.rollback("cell", "", by="ben"))
    assert sorted(type(o).__name__ for o in out) == ["ActiveChanged", "ModelVersion"], out
    lost = next(o for o in out if isinstance(o, Exception))
    assert lost.http_status == 409 and "v2 is active now" in lost.message and '"expected_active": 2' in lost.message
    assert _active(st) == 2
    assert [e.details["undone"] for e in _log(st, "model.rolled_back")] == [[3]]
    # going back further is said so: against the version active now
    st.models.inspector = type(st.models).inspector.__get__(st.models)
    with pytest.raises(Conflict, match="v2 is active now"):
        st.models.rollback("cell", "", expected_active=3)
    assert st.models.rollback("cell", "", expected_active=2).version == 1


def test_a_change_sent_against_another_active_version_is_refused(station_factory):
    st = station_factory()
    for thr, name in ((0.5, "a"), (0.6, "b"), (0.7, "c")):
        st.add_model(FakeInspector(thr, name).to_bytes(), "cell")
    with pytest.raises(Conflict, match="no version is active now, not v1"):
        st.models.activate("cell", "", 2, expected_active=1)
    assert st.models.activate("cell", "", 1, expected_active=0).version == 1
    with pytest.raises(Conflict) as stale:
        st.models.activate("cell", "", 3, expected_active=2)       # the page showed v2 active: it is v1
    assert stale.value.code == "active_changed" and "v1 is active now" in stale.value.message
    assert _active(st) == 1
    assert st.models.activate("cell", "", 3, expected_active=1).version == 3
    # asked for what is active already: nothing to refuse
    assert st.models.activate("cell", "", 3, expected_active=1).version == 3


# -- the change log and the station's own first model --------------------------------------
@pytest.mark.one_database
def test_the_change_log_names_the_versions_a_rollback_undid(station_factory):
    st = station_factory()
    for name in ("w1", "w2", "w3"):        # another product first: its rows take the low ids
        st.add_model(FakeInspector(0.5, name).to_bytes(), "washer")
    for thr, name in ((0.5, "a"), (0.6, "b")):
        st.add_model(FakeInspector(thr, name).to_bytes(), "cell", activate=True)
    st.activate_model("cell", "", 2)          # activated twice in a row: both undone at once
    st.rollback_model("cell", "")
    (entry,) = _log(st, "model.rolled_back")
    assert entry.subject == "cell/* v1" and entry.details["undone"] == [2]


@pytest.mark.one_database
def test_a_model_file_says_how_many_parts_it_learned_from(station_factory):
    st = station_factory()

    def load(path):   # as Inspector.load: the file's info says n_train (`lineguard info`)
        insp = FakeInspector.load(path)
        insp.info = {"n_train": 120}
        return insp
    st.models.loader = load
    mv = st.add_model(FakeInspector(0.5, "first").to_bytes(), "cell", activate=True)   # as `serve --model`
    assert mv.train_images == 120
    # a training job's own count stands
    assert st.add_model(FakeInspector(0.6, "t").to_bytes(), "cell", train_images=19).train_images == 19
    # a version added before it was read gets it when its model is next loaded
    from sqlalchemy import update
    from lineguard.line.orm import ModelVersion
    with st.db.session() as s:
        s.execute(update(ModelVersion).where(ModelVersion.version == 1).values(train_images=None))
    st.models.forget(mv.model_id)
    st.inspect(png_bytes(40, seed=5), Part("n-1", "L1", "S1", "cell"))
    assert st.models.get("cell", "", 1).train_images == 120 and st.models.get("cell", "", 2).train_images == 19


def test_an_exported_model_says_its_backbone():
    from lineguard.line.registry import model_facts
    onnx = SimpleNamespace(threshold=1.0, info={"n_train": 40},
                           detector=SimpleNamespace(name="patchcore", input_size_=(224, 224),
                                                    params={"backbone": "efficientnet_lite0", "extra_scales": [0.7]}))
    assert model_facts(onnx)["features"] == "efficientnet_lite0 224x224 + 0.7x"


# -- refusals that say what to do ----------------------------------------------------------------
@pytest.mark.one_database
def test_a_version_whose_file_is_gone_is_refused_with_what_to_do(station_factory):
    st = station_factory()
    st.add_model(FakeInspector(0.5, "a").to_bytes(), "cell", activate=True)
    data = FakeInspector(0.6, "b").to_bytes()
    mv = st.add_model(data, "cell")
    st.models.store.path(mv.file_key).unlink()
    st.models.forget(mv.model_id)
    for change in (lambda: st.activate_model("cell", "", 2), lambda: st.shadow.start("cell", "", 2)):
        with pytest.raises(StationError) as gone:
            change()
        assert 400 <= gone.value.http_status < 500 and gone.value.code == "model_file_missing"
        assert "missing from the station's models folder" in gone.value.message
        assert "upload the same model file again" in gone.value.message
    assert _active(st) == 1
    st.add_model(data, "cell")                 # the same file again: v2's file is back
    assert st.activate_model("cell", "", 2).version == 2


@pytest.mark.one_database
def test_rolling_back_an_unknown_product_is_not_found(station_factory):
    st = station_factory()
    st.add_model(FakeInspector(0.5, "a").to_bytes(), "cell", activate=True)
    with pytest.raises(NotFound, match="unknown product 'washer'"):
        st.rollback_model("washer", "")
    with pytest.raises(Conflict, match="no earlier activation"):     # known, with nothing before: as before
        st.rollback_model("cell", "")


@pytest.mark.one_database
def test_a_real_model_and_its_export_say_what_they_learned_from_and_look_at(station_factory, fitted_inspector,
                                                                             fitted_model_path, tmp_path):
    """As `lineguard serve --model` adds them: the .lgm and its ONNX export."""
    pytest.importorskip("onnx")
    from lineguard.line.registry import default_loader
    from lineguard.runtime.onnx_export import export_onnx
    onnx_path = tmp_path / "cell.onnx"
    export_onnx(fitted_inspector, onnx_path)
    st = station_factory()
    st.models.loader = default_loader
    n = fitted_inspector.info["n_train"]
    for product, path in (("cell", fitted_model_path), ("cell-edge", onnx_path)):
        mv = st.add_model(path.read_bytes(), product, activate=True)
        assert mv.train_images == n, product
        assert mv.features == "efficientnet_lite0 128x128", product
