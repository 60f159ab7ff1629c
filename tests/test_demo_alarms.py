"""The alarms the demo's line view opens on, said and explained: a first demo once opened
the operator app on two red "stop the line" alarms (ng_run, ng_rate) with no word why. They
are the demo line's own doing (its test parts are more than half defects, up to six in a
row), so the demo says so; an alarm of another kind is named as not the demo line's.

A real station in the test process (the torch-free fake model: a bright photo is NG), fed
the demo line's parts in the demo's own order through the demo's own feeder."""
from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from lineguard import demo

from server.fake_inspector import FakeInspector, png_bytes      # the station tests' fake model (tests/server)

OK, NG = 60, 200          # brightness: the fake model scores 0.24 and 0.78 against 0.5
# as the demo's synth makes them (SYNTH_ARGS): 30 good test parts, 36 defects of six kinds
KINDS = ("crack", "dent", "missing_coating", "particle", "scratch", "stain")


def _demo_data(root: Path, n_good: int = 30, n_each: int = 6) -> Path:
    n = 0
    for kind, count in [("good", n_good)] + [(k, n_each) for k in KINDS]:
        folder = root / "test" / kind
        folder.mkdir(parents=True)
        for i in range(count):
            n += 1
            (folder / f"{i:03d}.png").write_bytes(png_bytes(OK if kind == "good" else NG, seed=n))
    return root


@pytest.fixture
def station(tmp_path):
    """(the station, a client with the demo's operator key), on SQLite as the demo's."""
    from lineguard.line.auth import create_key
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    from lineguard.server.app import create_app
    st = Station(StationConfig(data_dir=tmp_path / "station", timezone="UTC"), loader=FakeInspector.load)
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    with st.db.session() as s:
        key = create_key(s, "operator", name=demo.DEMO_KEYS["operator"])[1]
    with TestClient(create_app(station=st), headers={"X-API-Key": key}) as c:
        yield st, c
    st.close()


def test_the_demo_says_which_alarms_its_line_raises_and_that_they_are_on_purpose(station, tmp_path, capsys):
    st, c = station
    parts = demo.line_parts(_demo_data(tmp_path / "cell"))
    tally = demo.feed_line(c, parts, "20261206-120000")
    assert (tally.verdicts["OK"], tally.verdicts["NG"]) == (30, 36)
    # what the operator app's line view shows: the two reject alarms, raised by the demo's parts
    assert sorted(a["kind"] for a in st.alarms.active()) == ["ng_rate", "ng_run"]
    capsys.readouterr()
    demo.say_alarms(c, parts)
    out = capsys.readouterr().out
    assert "line view shows 2 alarm(s) until someone acknowledges them" in out
    assert "ng_run: 5 parts in a row not passed (NG or REVIEW)" in out and "ng_rate: 10 of the last" in out
    assert ("ng_run, ng_rate: on purpose. The demo line sends 36 defective parts among its 66 (up to 6 in a row)"
            in out)
    assert "raise them again" not in out             # the demo without --serve sends no more parts
    demo.say_alarms(c, parts, again=True)            # `lineguard demo`: parts keep coming
    assert "the parts still coming raise them again" in capsys.readouterr().out


def test_an_alarm_the_demo_line_does_not_raise_on_purpose_is_not_explained_away(station, tmp_path, capsys):
    st, c = station
    parts = demo.line_parts(_demo_data(tmp_path / "cell", n_good=3, n_each=0))
    demo.feed_line(c, parts, "20261206-120000")
    capsys.readouterr()
    demo.say_alarms(c, parts)
    assert capsys.readouterr().out == ""             # good parts only: no alarm, nothing said
    # a red rabbit the station passed: an alarm of another kind, said as not the demo line's doing
    st.test_parts.add("cell", "RR-01", "NG")
    demo._send(c, parts[0], "check-RR-01", serial="RR-01").raise_for_status()
    demo.say_alarms(c, parts)
    out = capsys.readouterr().out
    assert "line view shows 1 alarm(s)" in out and "test_part: test part RR-01 judged OK" in out
    assert "test_part: not the demo line's doing" in out and "on purpose" not in out


@pytest.mark.parametrize("answer", [lambda req: httpx.Response(503, json={"detail": "storage"}),
                                    lambda req: httpx.Response(200, json={"no": "items"}),
                                    lambda req: (_ for _ in ()).throw(httpx.ConnectError("gone", request=req))])
def test_alarms_that_cannot_be_read_never_end_the_demo(answer, capsys):
    # the explanation is one more line after the tally: a 503, an odd body or a station gone
    # ended the demo with a traceback (and stopped the station --serve was to leave running)
    with httpx.Client(base_url="http://demo", transport=httpx.MockTransport(answer)) as c:
        demo.say_alarms(c, [])
    assert "the line's alarms could not be read" in capsys.readouterr().out
