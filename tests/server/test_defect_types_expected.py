"""A product's defect types saved with the list the engineer last read (`expected`), on
SQLite and PostgreSQL: the PUT replaces the whole list, and two engineers saving at once lost
the first one's change without a word. A list changed meanwhile is now refused (409, the
stored list in the answer, nothing written); a PUT without `expected` replaces it as before."""
from __future__ import annotations

import threading

from lineguard.line import reviews
from lineguard.line.auth import create_key
from lineguard.line.orm import ChangeLogEntry

from .test_spc_api import client

DEFAULTS = ["scratch", "crack", "dent", "stain", "contamination", "other"]
URL = "/api/v1/products/tile/defect-types"


def _engineer(st):
    with st.db.session() as s:
        return {"X-API-Key": create_key(s, "engineer", name="eng-key")[1]}


def _logged(st) -> int:
    """How many changes of a product's defect types the change log holds."""
    with st.db.session() as s:
        return s.query(ChangeLogEntry).filter(ChangeLogEntry.action == "product.defect_types").count()


def test_a_list_changed_meanwhile_is_refused_with_the_stored_list_and_nothing_written(spc_station):
    st = spc_station()
    eng = _engineer(st)
    with client(st) as c:
        # the first save of a product on the default list: expected is the defaults as read
        r = c.put(URL, json={"defect_types": ["break", "blowhole"], "expected": DEFAULTS}, headers=eng)
        assert r.status_code == 200, r.text
        assert r.json()["defect_types"] == ["break", "blowhole"]
        # a second engineer's screen still shows the defaults: refused, told the list as stored
        r = c.put(URL, json={"defect_types": DEFAULTS + ["fray"], "expected": DEFAULTS}, headers=eng)
        assert r.status_code == 409, r.text
        err = r.json()["error"]
        assert err["code"] == "defect_types_changed"
        assert err["defect_types"] == ["break", "blowhole"]
        assert "changed meanwhile: now break, blowhole" in err["message"]
        assert c.get(URL).json()["defect_types"] == ["break", "blowhole"]
        assert _logged(st) == 1                     # nothing written: no change logged either
        # sent again with the list it now read: saved
        r = c.put(URL, json={"defect_types": ["break", "blowhole", "fray"], "expected": [" break", "blowhole"]},
                  headers=eng)
        assert r.status_code == 200, r.text
        assert c.get(URL).json()["defect_types"] == ["break", "blowhole", "fray"]
        # the order is part of the list: a reorder meanwhile is a change too
        r = c.put(URL, json={"defect_types": ["break"], "expected": ["fray", "break", "blowhole"]}, headers=eng)
        assert r.status_code == 409 and r.json()["error"]["defect_types"] == ["break", "blowhole", "fray"]
        assert _logged(st) == 2
        # another product's list is its own: expected compared with it, not with tile's
        r = c.put("/api/v1/products/cell/defect-types", json={"defect_types": ["crack"], "expected": DEFAULTS},
                  headers=eng)
        assert r.status_code == 200, r.text


def test_without_expected_the_list_is_replaced_as_before(spc_station):
    st = spc_station()
    eng = _engineer(st)
    with client(st) as c:
        assert c.put(URL, json={"defect_types": ["break"]}, headers=eng).status_code == 200
        r = c.put(URL, json={"defect_types": ["fray", "uneven"]}, headers=eng)
        assert r.status_code == 200 and r.json()["defect_types"] == ["fray", "uneven"]
        assert c.get(URL).json()["defect_types"] == ["fray", "uneven"]
        # expected is checked like the list: a refusal says which field
        r = c.put(URL, json={"defect_types": ["fray"], "expected": "fray"}, headers=eng)
        assert r.status_code == 422 and "expected" in r.text


def test_two_saves_without_expected_of_a_new_product_take_turns(spc_station, monkeypatch):
    """A product with no list of its own yet, two saves without `expected` at once: on
    PostgreSQL both inserted its row and the second failed (500). Now they take turns: both are
    saved, one after the other, and both changes are in the change log."""
    st = spc_station()
    eng = _engineer(st)
    real = reviews.audit.record
    both_read = threading.Barrier(2)

    def record_then_wait_for_the_other(*a, **kw):
        # each save records its change once it has read the product's (missing) row, then
        # waits for the other to get that far too: without the lock both then insert the row
        real(*a, **kw)
        try:
            both_read.wait(timeout=2)
        except threading.BrokenBarrierError:
            pass

    monkeypatch.setattr(reviews.audit, "record", record_then_wait_for_the_other)
    answers: list = []
    with client(st) as c:
        def save(types):
            r = c.put(URL, json={"defect_types": types}, headers=eng)
            answers.append((r.status_code, types))
        saves = [threading.Thread(target=save, args=([f"fray{n}"],)) for n in (1, 2)]
        for t in saves:
            t.start()
        for t in saves:
            t.join()
    monkeypatch.setattr(reviews.audit, "record", real)
    assert [a[0] for a in answers] == [200, 200], answers
    assert _stored(st) in (["fray1"], ["fray2"])
    assert _logged(st) == 2


def test_two_engineers_saving_at_once_one_is_saved_the_other_refused(spc_station, monkeypatch):
    """Both read the same list and save at the same moment: the compare and the write are one
    transaction under the product's lock, so the second compares with the first's list (409),
    not the one it read. On PostgreSQL a product with no row yet had no row to lock: both read
    the defaults and the second's write replaced the first's list (both answered 200)."""
    st = spc_station()
    eng = _engineer(st)
    real = reviews.defect_types

    def read_then_wait_for_the_other(s, product):
        # each save, once it has read, waits for the other to read too (a while, then goes
        # on): without the lock both read the same list before either writes, and one of them
        # then waits for the other's answer before it writes, the order that lost a list;
        # with the lock the second cannot read until the first is written
        got = real(s, product)
        try:
            if both_read.wait(timeout=2) == 0:
                first_answered.wait(timeout=10)
        except threading.BrokenBarrierError:
            pass
        return got

    for first_row in (False, True):         # the product with no row yet (the defaults), then with its row
        if first_row:
            with client(st) as c:
                assert c.put(URL, json={"defect_types": ["break"]}, headers=eng).status_code == 200
        expected = ["break"] if first_row else DEFAULTS
        both_read, first_answered = threading.Barrier(2), threading.Event()
        monkeypatch.setattr(reviews, "defect_types", read_then_wait_for_the_other)
        answers: list = []
        with client(st) as c:
            def save(types):
                r = c.put(URL, json={"defect_types": types, "expected": expected}, headers=eng)
                answers.append((r.status_code, types, r.json()))
                first_answered.set()
            saves = [threading.Thread(target=save, args=([f"fray{n}"],)) for n in (1, 2)]
            for t in saves:
                t.start()
            for t in saves:
                t.join()
        monkeypatch.setattr(reviews, "defect_types", real)
        assert sorted(a[0] for a in answers) == [200, 409], answers
        saved = next(a[1] for a in answers if a[0] == 200)
        refused = next(a[2] for a in answers if a[0] == 409)
        assert refused["error"]["defect_types"] == saved
        assert _stored(st) == saved


def _stored(st) -> list[str]:
    with st.db.session() as s:
        return reviews.defect_types(s, "tile")


def test_a_slip_of_a_known_product_is_refused_until_said_new(spc_station):
    """PUT .../Tile/defect-types beside 'tile' kept a list no part of tile ever used, and its
    reviewers went on choosing from the old one (a walk)."""
    from .fake_inspector import FakeInspector
    st = spc_station()
    st.add_model(FakeInspector(0.5).to_bytes(), "tile", activate=True)
    eng = _engineer(st)
    with client(st) as c:
        for slip in ("Tile", "tiles", "tiel"):
            r = c.put(f"/api/v1/products/{slip}/defect-types", json={"defect_types": ["break"]}, headers=eng)
            assert r.status_code == 409, r.text
            err = r.json()["error"]
            assert err["did_you_mean"] == ["tile"] and '"new_product": true' in err["message"], err
        assert _logged(st) == 0
        # said new: kept; a sibling's name, and the product itself, as before
        r = c.put("/api/v1/products/tiel/defect-types", json={"defect_types": ["break"], "new_product": True},
                  headers=eng)
        assert r.status_code == 200, r.text
        assert c.put("/api/v1/products/tiel/defect-types", json={"defect_types": ["fray"]},
                     headers=eng).status_code == 200       # its own list now: no question again
        r = c.put("/api/v1/products/tile2/defect-types", json={"defect_types": ["x"]}, headers=eng)
        assert r.status_code == 200, r.text
        assert c.put(URL, json={"defect_types": ["break"]}, headers=eng).status_code == 200
