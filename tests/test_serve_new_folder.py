"""`lineguard serve` on a data folder with no station in it.

A mistyped --data (./Station for ./station) started a new, empty station without a word:
the line's key then got 401 "unknown or revoked; ask an admin for a new one" and its parts
went into another database. The first start of a station must still work without a flag
(the demo and the README start serve on a new folder), so serve says when it makes a new
station, and refuses one beside a near-namesake that holds a station unless --new.
The web server itself is not started (``run_server`` is replaced): the station is opened,
made where new, and closed, as `serve` does before and after serving.
"""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi")


@pytest.fixture
def serve(monkeypatch, serve_ports_anywhere):
    from click.testing import CliRunner

    import lineguard.server.app as server_app
    from lineguard.cli import app
    served = []
    monkeypatch.setattr(server_app, "run_server", lambda *a, **k: served.append(k.get("port")))

    def run(*args: str):
        r = CliRunner().invoke(app, ["serve", "--min-free-gb", "0", *args])
        return r, " ".join(r.output.split())
    run.served = served
    return run


def test_serve_says_it_made_a_new_station_and_how_to_give_it_keys(serve, tmp_path):
    data = tmp_path / "station"
    r, out = serve("--data", str(data))
    assert r.exit_code == 0, r.output
    assert f"new station: no data folder at {data.resolve()} yet; created it" in out
    assert f"lineguard keys create --role admin --data {data.resolve()}" in out and "users add" in out
    assert (data / "lineguard.db").is_file() and serve.served
    # its second start is no news
    r, out = serve("--data", str(data))
    assert r.exit_code == 0, r.output
    assert "new station" not in out


def test_serve_refuses_a_new_station_beside_one_of_nearly_the_same_name(serve, tmp_path):
    real = tmp_path / "station"
    r, _ = serve("--data", str(real))
    assert r.exit_code == 0, r.output
    r, out = serve("--data", str(tmp_path / "Station"))
    assert r.exit_code == 2, r.output
    assert f"holds no station, but {real} beside it does" in out and "--new" in out
    assert not (tmp_path / "Station").exists()            # nothing made for the typo
    # asked for by name: made, and said
    r, out = serve("--data", str(tmp_path / "Station"), "--new")
    assert r.exit_code == 0, r.output
    assert "new station:" in out and f"a station stays at {real}" in out
    assert (tmp_path / "Station" / "lineguard.db").is_file()


# --------------------------------------------------------------------------- watch --data
# (here beside serve's start: both are a station started from the command line)

def test_watch_here_warms_the_model_before_its_first_file_and_stores_no_part_for_it(tmp_path, monkeypatch):
    """`watch --data` loaded the model on the first file: that part took 3.2 s, booked as
    station_decode (the line view's p95 read 3,400 ms). camera --data warmed it at start."""
    from pathlib import Path

    from click.testing import CliRunner
    from sqlalchemy import func, select

    monkeypatch.syspath_prepend(str(Path(__file__).parent / "server"))
    from fake_inspector import FakeInspector, png_bytes

    import lineguard.line.registry as registry
    from lineguard.cli import app
    from lineguard.line.config import StationConfig
    from lineguard.line.orm import Inspection
    from lineguard.line.sources.folder import FolderWatcher
    from lineguard.line.station import Station
    judged: list[str] = []

    def loader(path):
        insp = FakeInspector.load(path)
        inspect = insp.inspect

        def counted(image):
            judged.append("part")
            return inspect(image)
        insp.inspect = counted
        return insp
    monkeypatch.setattr(registry, "default_loader", loader)
    judged_before_files: list[int] = []
    run = FolderWatcher.run

    def run_briefly(self):
        judged_before_files.append(len(judged))
        return run(self, stop_after=1.0)
    monkeypatch.setattr(FolderWatcher, "run", run_briefly)
    data = tmp_path / "station"
    st = Station(StationConfig(data_dir=data, min_free_gb=0, store_sweep_h=0), loader=FakeInspector.load)
    st.add_model(FakeInspector(0.5).to_bytes(), "cell", activate=True)
    st.close()
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "p1.png").write_bytes(png_bytes(60, seed=3))
    r = CliRunner().invoke(app, ["watch", str(inbox), "--line", "L1", "--product", "cell", "--data", str(data),
                                 "--settle", "0.1", "--poll", "0.05", "--min-free-gb", "0"])
    assert r.exit_code == 0, r.output
    assert judged_before_files == [1]         # the model judged once before the watcher took a file
    st = Station(StationConfig(data_dir=data, min_free_gb=0, store_sweep_h=0), loader=FakeInspector.load)
    try:
        with st.db.session() as s:
            parts = s.scalar(select(func.count()).select_from(Inspection))
    finally:
        st.close()
    done = list((inbox / "done").glob("*.png")) if (inbox / "done").exists() else []
    assert parts == len(done) <= 1            # the warm-up is no part: only the file's, if taken


def test_a_key_sent_to_a_station_with_no_keys_at_all_is_told_it_may_be_a_new_folder(tmp_path):
    import sys
    from fastapi.testclient import TestClient
    sys.path.insert(0, str(Path(__file__).parent / "server"))
    from fake_inspector import FakeInspector
    from lineguard.line.auth import create_key
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    from lineguard.server.app import create_app
    st = Station(StationConfig(data_dir=tmp_path / "new"), loader=FakeInspector.load)
    c = TestClient(create_app(station=st))
    r = c.get("/api/v1/inspections", headers={"X-API-Key": "lg_op_notakeyofthisstation"})
    assert r.status_code == 401 and "no API keys yet (a new data folder?)" in r.json()["error"]["message"]
    with st.db.session() as s:
        create_key(s, "operator", name="line-1")
    r = c.get("/api/v1/inspections", headers={"X-API-Key": "lg_op_notakeyofthisstation"})
    assert r.status_code == 401 and "unknown or revoked" in r.json()["error"]["message"]
    st.close()
