"""The Models page and API tell the truth about a version's file and about a shadow's baseline.

1. A version whose model file is unusable (deleted, truncated, overwritten) was listed like
   any other; activating or rolling back to it was the first anyone heard of it, as a 503
   "model_unavailable" (which says: try again) for a file no retry mends, and the rollback
   was offered to it. The list says ``file_problem`` now (read off the file's size and
   header), such a version is refused with a 409 naming the file, and the same file
   uploaded again writes it back (the store only touched the damaged copy).
2. A shadow is compared with the version live now (Compare counts the parts that version
   judged): an activation or a rollback changed that with no word, the comparison's count
   dropping to 0 or the old version's parts coming back. The answer and the change log say
   it now, and Compare names the versions whose parts it leaves out.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lineguard.line.station import Part
from lineguard.vision.errors import BundleError, ModelFileCorrupt

from .fake_inspector import FakeInspector, png_bytes
from .test_model_lifecycle import _client, make_station  # noqa: F401 - the fixture, on both databases


def lgm_bytes(threshold: float, version: str) -> bytes:
    """A model file in the .lgm container (safetensors: header length, JSON header naming
    each tensor's bytes, the tensors), its settings those of a FakeInspector."""
    from safetensors.numpy import save
    return save({"bank": np.arange(64, dtype=np.float32).reshape(16, 4)},
                metadata={"lineguard": json.dumps({"threshold": threshold, "version": version}),
                          "content_sha256": "-"})


def lgm_loader(path) -> FakeInspector:
    """Reads lgm_bytes' files as a station reads .lgm ones: a damaged one is a BundleError."""
    from safetensors.numpy import load
    data = Path(path).read_bytes()
    try:
        from safetensors import safe_open
        load(data)
        with safe_open(str(path), "np") as fh:
            meta = json.loads(fh.metadata()["lineguard"])
    except Exception as exc:  # noqa: BLE001 - any failure is a damaged file here
        raise ModelFileCorrupt(f"{path}: not a lineguard model file, or truncated ({exc})") from exc
    return FakeInspector(float(meta["threshold"]), meta["version"])


lgm_loader.reads_model_files = True   # type: ignore[attr-defined] - as default_loader


def _versions(eng) -> dict[int, dict]:
    r = eng.get("/api/v1/models", params={"product": "cell"})
    assert r.status_code == 200, r.text
    return {m["version"]: m for m in r.json()["items"]}


@pytest.mark.one_database
def test_a_version_whose_file_is_unusable_is_listed_so_refused_with_409_and_mended_by_an_upload(make_station):
    st = make_station(loader=lgm_loader)
    v1 = st.add_model(lgm_bytes(0.5, "one"), "cell", activate=True)
    st.add_model(lgm_bytes(0.45, "two"), "cell", activate=True)
    v3 = st.add_model(lgm_bytes(0.55, "three"), "cell")
    v4 = st.add_model(lgm_bytes(0.6, "four"), "cell")
    path = {mv.version: st.models.store.path(mv.file_key) for mv in (v1, v3, v4)}
    whole = path[1].read_bytes()
    path[1].write_bytes(whole[: len(whole) // 2])          # a disk that filled up during a restore
    path[3].write_bytes(b"\0" * len(path[3].read_bytes()))  # written over
    path[4].unlink()                                        # a backup without it
    with _client(st) as eng:
        listed = _versions(eng)
        assert listed[1]["file_problem"].startswith("truncated: its header names")
        assert str(len(whole) // 2) in listed[1]["file_problem"]
        assert listed[3]["file_problem"].startswith("not a model file")
        assert listed[4]["file_problem"] == "missing from the station's models folder"
        assert listed[2]["file_problem"] is None
        # no rollback is offered to a version that cannot run (it was offered to v1)
        assert listed[2]["active"] and listed[2]["rollback_to"] is None

        r = eng.post("/api/v1/models/cell/activate", json={"version": 3})
        assert r.status_code == 409, r.text          # was 503 model_unavailable: "try again"
        err = r.json()["error"]
        assert err["code"] == "model_file_damaged" and err["version"] == 3
        assert err["file"] == f"models/{v3.file_key}" and f"models/{v3.file_key}" in err["message"]
        assert "Upload the same model file again" in err["message"]
        assert str(st.models.store.root) not in err["message"]      # the station's own paths stay its own
        assert eng.post("/api/v1/models/cell/activate", json={"version": 4}).json()["error"]["code"] == \
            "model_file_missing"
        assert eng.post("/api/v1/models/cell/shadow", json={"version": 3}).status_code == 409
        r = eng.post("/api/v1/models/cell/rollback", json={"expected_active": 2})
        assert r.status_code == 409 and r.json()["error"]["code"] == "model_file_damaged", r.text
        assert "nothing to roll back to" in r.json()["error"]["message"] and "cell v1" in r.json()["error"]["message"]
        assert _versions(eng)[2]["active"]           # nothing changed

        # the same file uploaded again writes the damaged copy back (the store only touched it)
        r = eng.post("/api/v1/models", files={"file": ("one.lgm", whole)}, data={"product": "cell"})
        assert r.status_code == 201 and r.json()["same_file_as"] == 1, r.text
        assert path[1].read_bytes() == whole
        listed = _versions(eng)
        assert listed[1]["file_problem"] is None and listed[2]["rollback_to"] == 1
        r = eng.post("/api/v1/models/cell/rollback", json={"expected_active": 2})
        assert r.status_code == 200 and r.json()["version"] == 1, r.text


@pytest.mark.one_database
def test_a_file_its_load_refused_is_listed_so_and_refused_with_409(make_station):
    st = make_station()
    st.add_model(FakeInspector(0.5, "one").to_bytes(), "cell", activate=True)
    v2 = st.add_model(FakeInspector(0.45, "two").to_bytes(), "cell")
    # whole to its size and first bytes (a test model has no header to check), refused by the load
    path = st.models.store.path(v2.file_key)
    path.write_bytes(json.dumps({"fake_lineguard_model": True, "broken": True}).encode())
    with _client(st) as eng:
        assert _versions(eng)[2]["file_problem"] is None       # nothing seen without loading it
        r = eng.post("/api/v1/models/cell/activate", json={"version": 2})
        assert r.status_code == 409 and r.json()["error"]["code"] == "model_file_damaged", r.text
        assert "weights are corrupt" in r.json()["error"]["message"]
        assert _versions(eng)[2]["file_problem"] == "its last load refused it: weights are corrupt"
        # the same file written back: the list forgets the refusal of the damaged copy
        eng.post("/api/v1/models", files={"file": ("two.lgm", FakeInspector(0.45, "two").to_bytes())},
                 data={"product": "cell"})
        assert _versions(eng)[2]["file_problem"] is None
        assert eng.post("/api/v1/models/cell/activate", json={"version": 2}).status_code == 200


class _Line:
    """Parts of product cell on line L1, each a new photo, the shadow caught up after each batch."""

    def __init__(self, st):
        self.st, self.n = st, 0

    def parts(self, k: int, brightness: int = 100) -> None:
        for _ in range(k):
            self.n += 1
            self.st.inspect(png_bytes(brightness, seed=700 + self.n), Part(f"p-{self.n}", "L1", "S1", "cell"))
        assert self.st.shadow.wait_idle(60)


def _log(eng, action: str) -> list[dict]:
    r = eng.get("/api/v1/change-log", params={"action": action})
    assert r.status_code == 200, r.text
    return r.json()["items"]


@pytest.mark.one_database
def test_an_activation_and_a_rollback_say_the_shadow_is_compared_with_the_new_live_version(make_station):
    st = make_station()
    line = _Line(st)
    with _client(st) as eng:
        for thr, ver in ((0.5, "a"), (0.6, "b"), (0.3, "c")):
            assert eng.post("/api/v1/models", files={"file": ("m.lgm", FakeInspector(thr, ver).to_bytes())},
                            data={"product": "cell"}).status_code == 201
        assert eng.post("/api/v1/models/cell/activate", json={"version": 1}).json()["warning"] is None
        assert eng.post("/api/v1/models/cell/shadow", json={"version": 3}).status_code == 200
        line.parts(4)
        assert eng.get("/api/v1/models/cell/compare").json()["parts"] == 4

        r = eng.post("/api/v1/models/cell/activate", json={"version": 2, "expected_active": 1})
        assert r.status_code == 200, r.text
        said = r.json()["warning"]
        assert said.startswith("cell/* v3 runs on in shadow, compared from now on with cell/* v2")
        assert "none yet" in said and "the 4 parts compared with cell/* v1 are left out" in said
        # the change log's words, without the counts (read after the commit, outside the lock)
        (entry,) = [e for e in _log(eng, "model.activated") if e["subject"] == "cell/* v2"]
        assert said.startswith(entry["details"]["shadow"]) and "none yet" not in entry["details"]["shadow"]
        line.parts(3)
        cmp = eng.get("/api/v1/models/cell/compare").json()
        assert (cmp["active"]["version"], cmp["parts"]) == (2, 3)
        assert cmp["other_baselines"] == [{"version": 1, "line": "", "parts": 4}]

        r = eng.post("/api/v1/models/cell/rollback", json={"expected_active": 2})
        assert r.status_code == 200 and r.json()["version"] == 1, r.text
        said = r.json()["warning"]
        assert said.startswith("cell/* v3 runs on in shadow, compared from now on with cell/* v1")
        assert "4 from an earlier time it was live" in said and "the 3 parts compared with cell/* v2" in said
        (entry,) = _log(eng, "model.rolled_back")
        assert said.startswith(entry["details"]["shadow"]) and "compared from now on with cell/* v1" in said
        cmp = eng.get("/api/v1/models/cell/compare").json()
        assert (cmp["active"]["version"], cmp["parts"]) == (1, 4)
        assert cmp["other_baselines"] == [{"version": 2, "line": "", "parts": 3}]
        # the shadow itself runs on
        assert _versions(eng)[3]["state"] == "shadow"


@pytest.mark.one_database
def test_making_the_shadows_very_model_live_under_another_version_ends_the_shadow(make_station):
    st = make_station()
    line = _Line(st)
    with _client(st) as eng:
        for thr, ver in ((0.5, "a"), (0.3, "c"), (0.3, "c")):     # v3: v2's very file again
            assert eng.post("/api/v1/models", files={"file": ("m.lgm", FakeInspector(thr, ver).to_bytes())},
                            data={"product": "cell"}).status_code == 201
        eng.post("/api/v1/models/cell/activate", json={"version": 1})
        assert eng.post("/api/v1/models/cell/shadow", json={"version": 2}).status_code == 200
        line.parts(2)
        r = eng.post("/api/v1/models/cell/activate", json={"version": 3, "expected_active": 1})
        assert r.status_code == 200, r.text
        assert r.json()["warning"].startswith("the shadow of cell/* v2 ended: cell/* v3 was made to judge the parts")
        # it ran on before, skipping every part (the live model judged it): Compare blamed it for each
        assert _versions(eng)[2]["state"] == "inactive"
        assert eng.get("/api/v1/models/cell/compare").status_code == 404
        (stopped,) = _log(eng, "model.shadow_stopped")
        assert "the same model as v2" in stopped["details"]["why"]


@pytest.mark.one_database
def test_a_rollback_that_passes_a_version_with_an_unusable_file_says_so(make_station):
    st = make_station(loader=lgm_loader)
    st.add_model(lgm_bytes(0.5, "one"), "cell", activate=True)
    v2 = st.add_model(lgm_bytes(0.45, "two"), "cell", activate=True)
    st.add_model(lgm_bytes(0.55, "three"), "cell", activate=True)
    path = st.models.store.path(v2.file_key)
    path.write_bytes(path.read_bytes() + b"appended")
    with _client(st) as eng:
        assert _versions(eng)[2]["file_problem"] == "8 bytes more than its header names (written over or appended to)"
        assert _versions(eng)[3]["rollback_to"] == 1
        r = eng.post("/api/v1/models/cell/rollback", json={"expected_active": 3})
        assert r.status_code == 200 and r.json()["version"] == 1, r.text
        assert r.json()["warning"].startswith("passed over v2 of product 'cell': its file cannot be loaded")


@pytest.mark.one_database
def test_serve_with_the_same_model_file_writes_a_damaged_copy_back(make_station, tmp_path):
    """`serve --model FILE` (Station.ensure_model) only touched a damaged copy of FILE, so the
    version stayed unusable however often the station was started with it."""
    st = make_station(loader=lgm_loader)
    data = lgm_bytes(0.5, "one")
    v1 = st.add_model(data, "cell", activate=True)
    stored = st.models.store.path(v1.file_key)
    stored.write_bytes(data[: len(data) // 2])
    assert st.models.file_problem(v1).startswith("truncated")
    given = tmp_path / "cell.lgm"
    given.write_bytes(data)
    st.ensure_model(given, "cell", "")
    assert stored.read_bytes() == data and st.models.file_problem(v1) is None


@pytest.mark.one_database
def test_a_load_this_pc_cannot_do_is_no_damaged_file(make_station):
    """A runtime not installed (or a CPU without bfloat16, a format newer than this lineguard)
    is a BundleError too: it marked the version's file damaged, answered 409 "upload the same
    file again" (which cannot help) and a rollback walked past that version to an older one."""
    runtime = {"gone": False}     # uploaded on a PC that had it; then the station moved to one without

    def loader(path):
        insp = lgm_loader(path)
        if runtime["gone"] and insp.model_version == "two":
            raise BundleError("running an exported .onnx model needs onnxruntime: pip install 'lineguard[edge]'")
        return insp
    loader.reads_model_files = True
    st = make_station(loader=loader)
    st.add_model(lgm_bytes(0.5, "one"), "cell", activate=True)
    v2 = st.add_model(lgm_bytes(0.45, "two"), "cell", activate=True)
    st.add_model(lgm_bytes(0.55, "three"), "cell", activate=True)
    runtime["gone"] = True
    st.models._cache.clear()      # as after a restart: v2 is loaded again when asked for
    with _client(st) as eng:
        r = eng.post("/api/v1/models/cell/activate", json={"version": 2})
        assert r.status_code == 503 and r.json()["error"]["code"] == "model_unavailable", r.text
        assert "onnxruntime" in r.json()["error"]["message"]
        listed = _versions(eng)
        assert listed[2]["file_problem"] is None
        assert listed[3]["rollback_to"] == 2          # offered as before: the file is whole
    assert st.models.file_problem(v2) is None
