"""Walk E of reference photos and access: a photo of another camera's size added by the API
(the Models page) warns as `lineguard reference add` does; a line's add compares sizes with
what that line's retrain learns (every line's photos too) and says that count; `keys revoke`
of a key revoked before says so; `users add` without --new looks for the station before it
asks for the password."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent / "server"))
from fake_inspector import FakeInspector, png_bytes  # noqa: E402
from test_camera_change_walk import _folder  # noqa: E402
from test_reference_cli import _station  # noqa: E402


def test_api_warns_of_a_photo_of_another_size_as_the_cli_does(tmp_path):
    from fastapi.testclient import TestClient
    from lineguard.line.auth import create_key
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    from lineguard.server.app import create_app
    st = Station(StationConfig(data_dir=tmp_path / "data"), loader=FakeInspector.load, trainer=FakeInspector.fit)
    try:
        st.add_model(json.dumps({"fake_lineguard_model": True, "threshold": 0.5, "version": "v1"}).encode(),
                     "cell", activate=True)
        with st.db.session() as s:
            key = create_key(s, "engineer", name="t-engineer")[1]
        c = TestClient(create_app(station=st), headers={"X-API-Key": key})

        def post(i: int, size: int, line: str = ""):
            r = c.post("/api/v1/reference-photos", data={"product": "cell", "line": line},
                       files={"photo": (f"p{i}.png", png_bytes(60, size=size, seed=i), "image/png")})
            assert r.status_code == 201, r.text
            return r.json()

        for i in range(3):
            assert post(i, 96)["warning"] is None          # one camera's photos: nothing to say
        said = post(10, 128)["warning"]
        assert said == ("this photo is 128 x 128; the 3 kept before are 96 x 96: another camera? Every retrain "
                        "learns both. If the old camera is gone, remove its photos: lineguard reference remove "
                        "--product cell --size 96x96 on the station PC, with its --data (docs/camera-change.md)")
        # a line's photo is compared with every line's too, which that line's retrain learns
        said = post(20, 64, line="L1")["warning"]
        assert said.startswith("this photo is 64 x 64; the 4 a retrain of line L1 learns besides are "
                               "96 x 96 (3), 128 x 128 (1): another camera? A retrain of line L1 learns both."), said
        assert "--product cell --line '' --size 96x96 --size 128x128" in said, said
    finally:
        st.close()


def test_a_lines_add_is_compared_with_every_lines_photos_and_says_what_its_retrain_learns(tmp_path):
    from lineguard.cli.reference import reference_app as app
    data = _station(tmp_path)
    run = CliRunner().invoke
    r = run(app, ["add", "--data", str(data), "--product", "cell", str(_folder(tmp_path / "old", 96, 6, 0))])
    assert r.exit_code == 0 and "warning" not in r.output, r.output
    r = run(app, ["add", "--data", str(data), "--product", "cell", "--line", "L1",
                  str(_folder(tmp_path / "new", 128, 2, 100))])
    assert r.exit_code == 0, r.output
    assert ("added 2 reference photo(s) of cell line L1; 8 a retrain of line L1 learns: 2 of its own, 6 of every "
            "line") in r.output, r.output
    assert ("warning: these photos are 128 x 128; the 6 a retrain of line L1 learns besides are 96 x 96: another "
            "camera? A retrain of line L1 learns both.") in r.output, r.output
    # the command given removes the every-line photos of the old size, which it names
    assert f"lineguard reference remove --data {data} --product cell --line '' --size 96x96" in r.output, r.output
    r = run(app, ["remove", "--data", str(data), "--product", "cell", "--line", "", "--size", "96x96"])
    assert r.exit_code == 0 and "removed 6 reference photo(s)" in r.output, r.output


def test_revoking_a_key_revoked_before_says_when_and_by_whom_and_changes_nothing(tmp_path):
    from lineguard.cli.access import keys_app
    from lineguard.line.auth import create_key
    from lineguard.line.db import Database
    data = _station(tmp_path)
    db = Database(f"sqlite:///{data / 'lineguard.db'}")
    try:
        with db.session() as s:
            create_key(s, "admin", name="boss")
            kid = create_key(s, "operator", name="line-pc")[0].id
    finally:
        db.dispose()
    run = CliRunner().invoke
    r = run(keys_app, ["revoke", str(kid), "--data", str(data)])
    assert r.exit_code == 0 and r.output.strip() == f"key {kid} revoked", r.output
    r = run(keys_app, ["revoke", str(kid), "--data", str(data)])
    assert r.exit_code == 0, r.output
    assert f"key {kid} was already revoked (at " in r.output and "UTC, by cli (" in r.output, r.output
    assert r.output.rstrip().endswith(": nothing changed"), r.output


def test_users_add_without_new_says_there_is_no_station_before_asking_the_password(tmp_path):
    from lineguard.cli.access import users_app
    r = CliRunner().invoke(users_app, ["add", "tom", "--role", "operator", "--data", str(tmp_path / "nowhere")],
                           input="tom-first-pw\ntom-first-pw\n")
    assert r.exit_code == 2 and "no station database" in r.output, r.output
    assert "password" not in r.output.lower().split("no station database")[0], r.output
    assert not (tmp_path / "nowhere").exists()
