"""A part its model does not judge in time is answered 503 with Retry-After and a body that
says what is wrong and what to do.

The model's wait (300 s) ran out and the station answered 503 model_unavailable with no
Retry-After: a client could not tell how long to wait, nor this from a model that cannot
load. Here the model hangs on a gate the test holds, and the wait is shortened.
"""
from __future__ import annotations

from fastapi.testclient import TestClient

from model_stalls import stuck_model  # noqa: F401 - the fixture: a model that does not answer in time

from .conftest import png_bytes, post_part


def _client(st) -> TestClient:
    from lineguard.line.auth import create_key
    from lineguard.server.app import create_app
    with st.db.session() as s:
        _row, key = create_key(s, "operator", "timeout test", by="test")
    return TestClient(create_app(station=st), headers={"X-API-Key": key}, raise_server_exceptions=False)


def test_a_part_its_model_does_not_judge_in_time_is_answered_503_with_retry_after_unlike_a_broken_model(sqlite_like_station,
                                                                                   stuck_model):
    from lineguard.server.app import MODEL_TIMEOUT_RETRY_S
    st = sqlite_like_station()
    c = _client(st)
    stuck_model.armed.set()
    r = post_part(c, png_bytes(30), "late-1")
    assert r.status_code == 503, (r.status_code, r.text)
    err = r.json()["error"]
    assert err["code"] == "model_unavailable", err
    # how long to wait, for a program (the header) and a person (the body) alike, and not
    # the busy answer's 5 s: the parts ahead took the model's whole wait
    assert r.headers["Retry-After"] == str(MODEL_TIMEOUT_RETRY_S), r.headers
    assert err["retry_after_s"] == MODEL_TIMEOUT_RETRY_S > 5, err
    message = err["message"]
    assert message == r.json()["detail"]
    # what is wrong, that nothing was kept, what to do now and if it lasts
    assert "the model did not answer within 0 s" in message, message
    assert "Nothing was stored for this part" in message, message
    assert f"send it again in {MODEL_TIMEOUT_RETRY_S} s" in message, message
    assert "check the station's load" in message and "lineguard_queue_depth" in message, message
    stuck_model.set()
    with st.db.session() as s:
        from lineguard.line.orm import Inspection
        assert s.query(Inspection).filter_by(part_id="late-1").count() == 0
    # sent again once the model answers: judged as any part
    r = post_part(c, png_bytes(30), "late-1")
    assert r.status_code == 201, r.text

    # No wait cures a model file that fails to load (another version must be activated):
    # its 503 names no Retry-After, unlike a model that was only too slow.
    def broken(path):
        raise ValueError("not a model")

    st.models.loader = broken
    st.models._cache.clear()
    r = post_part(c, png_bytes(30), "broken-1")
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "model_unavailable"
    assert "Retry-After" not in r.headers
    assert "retry_after_s" not in r.json()["error"]
