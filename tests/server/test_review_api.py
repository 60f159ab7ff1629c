"""A review through the API: what it stores of the note and of who reviewed."""
from __future__ import annotations

from fastapi.testclient import TestClient

from lineguard.line.auth import create_key
from lineguard.line.config import StationConfig
from lineguard.line.station import Part, Station
from lineguard.line.users import create_user

from .conftest import png_bytes
from .fake_inspector import FakeInspector


def _station(tmp_path) -> Station:
    st = Station(StationConfig(data_dir=tmp_path / "data", timezone="UTC"), loader=FakeInspector.load)
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    return st


def test_a_note_with_a_nul_is_refused_not_a_500(tmp_path):
    """PostgreSQL refuses NUL in text: the note answered 500 there (and was stored on SQLite)."""
    from lineguard.server.app import create_app
    st = _station(tmp_path)
    try:
        rec = st.inspect(png_bytes(230, seed=1), Part("n-1", "L1", "S1", "cell")).record
        with st.db.session() as s:
            key = create_key(s, "operator", "op", by="test")[1]
        with TestClient(create_app(station=st)) as c:
            for body in ({"label": "good", "note": "a\u0000b"}, {"label": "defect", "defect_type": "cr\u0000ack"}):
                r = c.post(f"/api/v1/inspections/{rec.id}/review", json=body, headers={"X-API-Key": key})
                assert r.status_code == 422, r.text
        assert not st.get(rec.id).reviewed
    finally:
        st.close()


def test_a_key_and_a_user_of_one_name_are_told_apart_in_a_part_s_reviews(tmp_path):
    """A key named "anna" and the user anna both showed as reviewer "anna" (the change log
    names them "anna (key 3)" and "anna (user)"), and the review page took one for the other."""
    from lineguard.server.app import create_app
    st = _station(tmp_path)
    try:
        rec = st.inspect(png_bytes(230, seed=2), Part("k-1", "L1", "S1", "cell")).record
        with st.db.session() as s:
            key = create_key(s, "operator", "anna", by="test")[1]
            create_user(s, "anna", "a long enough password", "operator", by="test")
        with TestClient(create_app(station=st)) as c:
            assert c.post(f"/api/v1/inspections/{rec.id}/review", json={"label": "good"},
                          headers={"X-API-Key": key}).status_code == 200
            signed = c.post("/api/v1/session", json={"username": "anna", "password": "a long enough password"})
            assert signed.status_code == 200, signed.text
            r = c.post(f"/api/v1/inspections/{rec.id}/review", json={"label": "defect", "defect_type": "crack"},
                       headers={"X-CSRF-Token": signed.json()["csrf_token"]})
            assert r.status_code == 200, r.text
        who = [h.reviewer for h in st.review_history(rec.id)]
        assert who[0].startswith("anna (key ") and who[1] == "anna (user)", who
        assert st.get(rec.id).reviewer == "anna (user)"
    finally:
        st.close()


def test_a_review_that_came_meanwhile_is_a_409_naming_it(tmp_path):
    """Two operators on one part: both pages said "saved" and the second overwrote a
    confirmed defect. A page sends the review it saw (seen_review); another by now is 409."""
    from lineguard.server.app import create_app
    st = _station(tmp_path)
    try:
        rec = st.inspect(png_bytes(230, seed=3), Part("s-1", "L1", "S1", "cell")).record
        with st.db.session() as s:
            anna = create_key(s, "operator", "anna", by="test")[1]
            bert = create_key(s, "operator", "bert", by="test")[1]
        url = f"/api/v1/inspections/{rec.id}/review"
        with TestClient(create_app(station=st)) as c:
            seen = c.get(f"/api/v1/inspections/{rec.id}", headers={"X-API-Key": anna}).json()["review"]
            assert seen["reviewed_at"] is None
            first = c.post(url, json={"label": "defect", "defect_type": "crack", "seen_review": "none"},
                           headers={"X-API-Key": anna})
            assert first.status_code == 200, first.text
            r = c.post(url, json={"label": "good", "seen_review": "none"}, headers={"X-API-Key": bert})
            assert r.status_code == 409, r.text
            err = r.json()["error"]
            assert err["code"] == "review_changed" and "confirmed defect (crack), by anna" in err["message"]
            assert err["review"]["reviewed_at"] == first.json()["review"]["reviewed_at"]
            # anna's page re-sending her own review (a timeout) is no conflict, and no second review
            again = c.post(url, json={"label": "defect", "defect_type": "crack", "seen_review": "none"},
                           headers={"X-API-Key": anna})
            assert again.status_code == 200, again.text
            # bert, having looked, replaces it
            r = c.post(url, json={"label": "good", "seen_review": err["review"]["reviewed_at"]},
                       headers={"X-API-Key": bert})
            assert r.status_code == 200, r.text
        assert [h.label for h in st.review_history(rec.id)] == ["defect", "good"]
    finally:
        st.close()
