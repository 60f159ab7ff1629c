"""The same activation sent twice at the same moment (a double click, a script retrying): one
is recorded, and the other answers as an activation of the version already active does,
with a warning that it changed nothing, not as a second activation."""
from __future__ import annotations

import pytest

from .fake_inspector import FakeInspector
from .test_change_log import _keys, _log
from .test_model_activation_api import _active, _line_with_good_parts, _upload
from .test_spc_api import client


@pytest.mark.one_database
def test_the_second_of_two_identical_activations_says_it_changed_nothing(spc_station):
    st = spc_station()
    keys = _keys(st)
    eng = {"X-API-Key": keys["engineer"]}
    with client(st) as c:
        _line_with_good_parts(st, c, eng, 3)
        _upload(c, eng, FakeInspector(0.5, "cell-2"))
        # the other request activates v2 while this one loads it, before this one takes the
        # product's lock: the moment two threads' requests meet, made certain
        load, other = st.models.loadable, []

        def loadable(mv):
            if not other:
                other.append(None)      # the other request loads through here too: once
                other[0] = st.activate_model("cell", "", 2, by="the other request", force=True)
            return load(mv)

        st.models.loadable = loadable
        r = c.post("/api/v1/models/cell/activate", json={"version": 2, "force": True}, headers=eng)
        assert r.status_code == 200, r.text
        assert other and other[0].version == 2
        out = r.json()
        assert out["version"] == 2 and out["active"] and _active(c, eng) == [2]
        assert out["warning"] is not None and "v2 is already the active version of product 'cell': nothing changed" \
            in out["warning"], out
        # one activation recorded, the other request's
        assert [e["actor"] for e in _log(c, keys["engineer"], action="model.activated")
                if e["subject"] == "cell/* v2"] == ["the other request"]
