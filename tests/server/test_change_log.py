"""The change log on SQLite and PostgreSQL: every change to models, defect types, test parts,
keys and users is written with the change itself (who, what, from what to what); a change
refused leaves no entry; engineers read it, filter it and take it as CSV."""
from __future__ import annotations

import csv
import io

import pytest

from lineguard.line.auth import create_key

from .fake_inspector import FakeInspector
from .test_spc_api import client


def _keys(st):
    """{role: key}, and st.who: {role: how the change log names that key}."""
    keys, st.who = {}, {}
    with st.db.session() as s:
        for role in ("operator", "engineer", "admin"):
            row, keys[role] = create_key(s, role, name=f"{role}-pc")
            st.who[role] = f"{role}-pc (key {row.id})"
    return keys


def _log(c, key, **params):
    r = c.get("/api/v1/change-log", params=params, headers={"X-API-Key": key})
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_every_change_is_logged_with_who_and_what(spc_station):
    st = spc_station()
    keys = _keys(st)
    eng, adm = {"X-API-Key": keys["engineer"]}, {"X-API-Key": keys["admin"]}
    with client(st) as c:
        for version in ("fake-1", "fake-2"):
            r = c.post("/api/v1/models", files={"file": ("m.lgm", FakeInspector(0.5, version).to_bytes())},
                       data={"product": "cell", "activate": "true"}, headers=eng)
            assert r.status_code == 201, r.text
        assert c.post("/api/v1/models/cell/rollback", json={}, headers=eng).status_code == 200
        assert c.post("/api/v1/models/cell/shadow", json={"version": 2}, headers=eng).status_code == 200
        assert c.delete("/api/v1/models/cell/shadow", headers=eng).status_code == 204
        assert c.put("/api/v1/products/cell/defect-types", json={"defect_types": ["crack", "dent"]},
                     headers=eng).status_code == 200
        assert c.put("/api/v1/products/cell/defect-types", json={"defect_types": ["crack"]},
                     headers=eng).status_code == 200
        assert c.post("/api/v1/products/cell/test-parts", json={"name": "RR-01", "expect": "NG"},
                      headers=eng).status_code == 200
        assert c.delete("/api/v1/products/cell/test-parts", params={"name": "RR-01"}, headers=eng).status_code == 200
        made = c.post("/api/v1/keys", json={"role": "operator", "name": "line-7"}, headers=adm).json()
        assert c.delete(f"/api/v1/keys/{made['id']}", headers=adm).status_code == 200
        user = c.post("/api/v1/users", json={"username": "maria", "password": "maria-tunes", "role": "engineer"},
                      headers=adm).json()
        assert c.delete(f"/api/v1/users/{user['id']}", headers=adm).status_code == 200
        E, A = st.who["engineer"], st.who["admin"]
        log = list(reversed(_log(c, keys["engineer"])))
        # the set-up's keys (made in this process, no one named)
        assert [(e["action"], e["actor"]) for e in log[:3]] == [("key.created", None)] * 3
        log = log[3:]
        assert [(e["action"], e["subject"], e["actor"]) for e in log] == [
            ("model.uploaded", "cell/* v1", E), ("model.activated", "cell/* v1", E),
            ("model.uploaded", "cell/* v2", E), ("model.activated", "cell/* v2", E),
            ("model.rolled_back", "cell/* v1", E), ("model.shadow_started", "cell/* v2", E),
            ("model.shadow_stopped", "cell/*", E), ("product.defect_types", "cell", E),
            ("product.defect_types", "cell", E), ("test_part.registered", "cell RR-01", E),
            ("test_part.retired", "cell RR-01", E), ("key.created", f"key {made['id']} (line-7)", A),
            ("key.revoked", f"key {made['id']} (line-7)", A), ("user.added", "user maria", A),
            ("user.disabled", "user maria", A)]
        # from what to what
        assert log[8]["details"] == {"before": ["crack", "dent"], "after": ["crack"]}
        assert log[2]["details"]["model_version"] == "fake-2" and log[2]["what"] == "a model version was added"
        # filters: a family, one action, who, what was changed
        assert {e["action"] for e in _log(c, keys["engineer"], action="model")} == {
            "model.uploaded", "model.activated", "model.rolled_back", "model.shadow_started", "model.shadow_stopped"}
        assert len(_log(c, keys["engineer"], action="key.revoked")) == 1
        assert {e["actor"] for e in _log(c, keys["engineer"], actor=A)} == {A}
        # a part of who, as an auditor types it: the name without "(key 4)", any case
        assert {e["actor"] for e in _log(c, keys["engineer"], actor=A.split(" (")[0].upper())} == {A}
        assert len(_log(c, keys["engineer"], subject="RR-01")) == 2
        assert len(_log(c, keys["engineer"], subject="rr-01")) == 2          # case-blind on both databases
        page = c.get("/api/v1/change-log", params={"limit": 10}, headers=eng).json()
        older = c.get("/api/v1/change-log", params={"limit": 10, "cursor": page["next_cursor"]}, headers=eng).json()
        assert len(page["items"]) + len(older["items"]) == 18 and older["next_cursor"] is None
        # as CSV for an audit
        r = c.get("/api/v1/change-log/export", params={"action": "user"}, headers=eng)
        assert r.status_code == 200 and r.text.startswith("\ufeff")
        rows = list(csv.DictReader(io.StringIO(r.text[1:])))
        assert [(x["action"], x["actor"]) for x in rows] == [("user.disabled", A), ("user.added", A)]


@pytest.mark.one_database
def test_a_refused_change_leaves_no_entry_and_operators_cannot_read(spc_station):
    st = spc_station()
    keys = _keys(st)
    with client(st) as c:
        eng, adm = {"X-API-Key": keys["engineer"]}, {"X-API-Key": keys["admin"]}
        assert c.post("/api/v1/models/cell/activate", json={"version": 3}, headers=eng).status_code == 404
        assert c.post("/api/v1/models", files={"file": ("m.lgm", b"not a model")}, data={"product": "cell"},
                      headers=eng).status_code == 422
        assert c.put("/api/v1/products/cell/defect-types", json={"defect_types": []}, headers=eng).status_code == 422
        admin_id = next(k["id"] for k in c.get("/api/v1/keys", headers=adm).json()["items"] if k["role"] == "admin")
        assert c.delete(f"/api/v1/keys/{admin_id}", headers=adm).status_code == 409       # the last admin
        assert [e["action"] for e in _log(c, keys["engineer"])] == ["key.created"] * 3     # the set-up's only
        assert c.get("/api/v1/change-log", headers={"X-API-Key": keys["operator"]}).status_code == 403
        bad = c.get("/api/v1/change-log", params={"action": "modle"}, headers=eng)
        assert bad.status_code == 422 and "model.activated" in bad.json()["error"]["message"]


@pytest.mark.one_database
def test_a_shadow_ended_by_an_activation_and_an_infinite_threshold_are_logged(spc_station):
    st = spc_station()
    keys = _keys(st)
    eng = {"X-API-Key": keys["engineer"]}
    with client(st) as c:
        # a model that never rejects (threshold inf): stored on PostgreSQL too
        for i, thr in enumerate((0.5, float("inf"))):
            r = c.post("/api/v1/models", files={"file": ("m.lgm", FakeInspector(thr, f"v{i}").to_bytes())},
                       data={"product": "cell", "activate": "true" if i == 0 else "false"}, headers=eng)
            assert r.status_code == 201, r.text
        assert c.post("/api/v1/models/cell/shadow", json={"version": 2}, headers=eng).status_code == 200
        assert c.post("/api/v1/models/cell/activate", json={"version": 2}, headers=eng).status_code == 200
        log = _log(c, keys["engineer"], action="model")
    assert [e["action"] for e in log[:3]] == ["model.shadow_stopped", "model.activated", "model.shadow_started"]
    assert log[0]["actor"] == st.who["engineer"] and "v2 was made active" in log[0]["details"]["why"]
    uploaded = next(e for e in log if e["action"] == "model.uploaded" and e["subject"] == "cell/* v2")
    assert uploaded["details"]["threshold"] == "inf"


@pytest.mark.one_database
def test_a_station_started_with_other_settings_is_in_the_change_log(spc_station, tmp_path, monkeypatch):
    """Who started the station deleting records after 90 days instead of keeping them,
    and when: each process's start with settings other than its last start's."""
    import dataclasses
    import socket

    from lineguard.line import audit
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station

    def starts(st):
        with client(st) as c:
            return _log(c, keys["engineer"], action="station.settings")

    st = spc_station(shift_starts="06:00, 18:00", webhook_url="https://hook:s3cret@mes.plant/api/T0K3N?sig=abc")
    keys = _keys(st)
    assert starts(st) == []                                  # a station opened by a library call: not a start
    assert st.record_start("serve") is True
    (first,) = starts(st)
    assert first["subject"] == f"serve on {socket.gethostname()}:{st.config.data_dir.resolve()}"
    assert first["actor"].startswith("cli") and "before" not in first["details"]
    settings = first["details"]["settings"]
    assert (settings["keep_records_days"], settings["alarm_ng_run"], settings["shift_starts"]) == \
        (None, 5, ["06:00", "18:00"])
    assert settings["webhook"] == "https://mes.plant" and "s3cret" not in str(first) and "T0K3N" not in str(first)
    from lineguard.line.config import without_secrets
    assert without_secrets("user:pw@broker:1883", "mqtt") == "mqtt://broker:1883"      # as the MQTT sink reads it
    assert without_secrets("http://[::1]:8080/hook?token=x", "http") == "http://[::1]:8080"
    assert st.record_start("serve") is False                 # the same settings again: no entry
    st.close()
    st = spc_station(keep_records_days=90, alarm_ng_run=3, shift_starts="06:00,18:00",
                     webhook_url="https://hook:other@mes.plant/api/T0K3N2")
    assert st.record_start("serve") is True
    latest = starts(st)[0]
    assert latest["details"]["before"] == {"alarm_ng_run": 5, "keep_records_days": None}
    assert latest["details"]["after"] == {"alarm_ng_run": 3, "keep_records_days": 90}
    assert len(starts(st)) == 2
    # another process on the same database (a hot folder's watcher) is its own subject
    assert st.record_start("watch L1/S1") is True and st.record_start("watch L1/S1") is False
    assert [e["subject"].split(" on ")[0] for e in starts(st)] == ["watch L1/S1", "serve", "serve"]
    st.close()
    # `lineguard serve`'s start, and a watcher inspecting in its own process
    from lineguard.server.app import open_station
    open_station(st.config).close()
    assert [e["subject"].split(" on ")[0] for e in starts(st)] == ["watch L1/S1", "serve", "serve"]   # no change
    open_station(dataclasses.replace(st.config, alarm_ng_run=4)).close()
    assert starts(st)[0]["details"]["after"] == {"alarm_ng_run": 4}

    from click.testing import CliRunner

    from lineguard.cli import app
    from lineguard.line.sources.folder import FolderWatcher
    monkeypatch.setattr(FolderWatcher, "run", lambda self: None)
    (tmp_path / "in").mkdir()
    # a station of its own, never started by serve (with a model: a watcher refuses a product it cannot judge)
    own = Station(StationConfig(data_dir=tmp_path / "own"), loader=FakeInspector.load)
    own.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    own.close()
    r = CliRunner().invoke(app, ["watch", str(tmp_path / "in"), "--line", "L2", "--station", "S9", "--product", "cell",
                                 "--data", str(tmp_path / "own")])
    assert r.exit_code == 0, r.output
    own = Station(StationConfig(data_dir=tmp_path / "own"))
    try:
        (watcher,) = [(e.subject, e.details["settings"]["ok_sample_rate"])
                      for e in audit.entries(own.db, action="station.settings")]
    finally:
        own.close()
    assert watcher == (f"watch L2/S9 on {socket.gethostname()}:{(tmp_path / 'own').resolve()}", 1.0)
