"""POST /api/v1/sinks/resend-refused names a sink as the README and the database do
(`webhook:host:port/path`, the address in outbox_deliveries.sink): only the label /health
shows (`webhook:host:port #1a2b3c4d`) was taken, and only URL-encoded, so an engineer who
copied the address got a 404 and the refused results of the line stayed unsent."""
from __future__ import annotations

import contextlib
from urllib.parse import quote

import pytest
from sqlalchemy import select

from lineguard.line.auth import create_key
from lineguard.line.orm import OutboxDelivery
from lineguard.line.station import Part

from .conftest import png_bytes
from .fake_inspector import FakeInspector
from .test_health import _receiver
from .test_spc_api import client


@contextlib.contextmanager
def _station_refused_by_its_mes(tmp_path, answer):
    """A station whose webhook's receiver refused (400) the model change and one part's verdict."""
    from lineguard.line.config import StationConfig
    from lineguard.line.sinks import WebhookSink
    from lineguard.line.station import Station
    with _receiver(answer) as url:
        sink = WebhookSink(url, timeout_s=5, retries=0)
        st = Station(StationConfig(data_dir=tmp_path / "data", timezone="UTC"), loader=FakeInspector.load,
                     sinks=[sink])
        try:
            st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
            st.inspect(png_bytes(30, seed=1), Part("fix6-1", "fix6-L1", "S1", "cell"))
            assert st.sinks.flush(10)
            assert st.sinks.status()[sink.label]["refused"] == 2, st.sinks.status()
            with st.db.session() as s:
                key = create_key(s, "engineer", "eng")[1]
            answer[0] = 200         # the MES fixed: the engineer sends the refused messages again
            with client(st) as c:
                yield st, sink, c, {"X-API-Key": key}
        finally:
            st.close()


def _stored_address(st) -> str:
    """The sink as outbox_deliveries.sink stores it (and the README writes it)."""
    with st.db.session() as s:
        (address,) = set(s.scalars(select(OutboxDelivery.sink).where(OutboxDelivery.status == "refused")))
    return address


@pytest.mark.parametrize("form", ["stored address", "label without its space", "label cut at its hash"])
def test_the_sink_named_as_stored_or_as_health_shows_it_sends_refused_results_again(tmp_path, form):
    answer = [400]
    with _station_refused_by_its_mes(tmp_path, answer) as (st, sink, c, key):
        address = _stored_address(st)
        assert address == "webhook:" + sink.url.split("://", 1)[1]       # webhook:host:port/path
        # the label's " #" lost its space where it was typed (a shell, a URL written by hand),
        # or the URL was cut at the "#" (a client takes the rest for a fragment): the one
        # webhook on that host and port
        name = {"stored address": address, "label without its space": sink.label.replace(" #", "#"),
                "label cut at its hash": sink.label.split(" #")[0]}[form]
        r = c.post("/api/v1/sinks/resend-refused", params={"sink": name}, headers=key)
        assert (r.status_code, r.json()) == (200, {"resent": 2}), r.text
        assert st.sinks.flush(10)
        assert [(m["event"], m.get("part_id")) for m in answer[1:]] == [("model", None), ("inspection", "fix6-1")]


def test_a_sink_not_known_is_a_404_naming_each_sink_as_it_can_be_pasted(tmp_path):
    answer = [400]
    with _station_refused_by_its_mes(tmp_path, answer) as (st, sink, c, key):
        r = c.post("/api/v1/sinks/resend-refused", params={"sink": "webhook:10.0.0.9:80/mes"}, headers=key)
        assert r.status_code == 404, r.text
        said = r.json()["error"]["message"]
        # the label as /health shows it, and as a query value that survives a shell and a URL
        assert sink.label in said and f"?sink={quote(sink.label, safe=':/')}" in said, said
        assert "webhook:host:port/path" in said, said
        # pasted from the 404 as it stands into the next request: taken
        pasted = said.split("?sink=", 1)[1].split(")", 1)[0]
        r = c.post(f"/api/v1/sinks/resend-refused?sink={pasted}", headers=key)
        assert (r.status_code, r.json()) == (200, {"resent": 2}), r.text
