"""Product names close to a known one ("tiles", "tiel" beside "tile") are typos until said
otherwise: a model upload under one is refused (409, did you mean) unless ``new_product``;
a new product is accepted with a word naming the products the station knows; a part sent
under one is told the product meant; ``serve --model`` under one is refused too."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from fake_inspector import FakeInspector, png_bytes


@pytest.fixture
def station(tmp_path):
    """A station that knows products 'coat' and 'tile' (one fake model each, active)."""
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Station
    st = Station(StationConfig(data_dir=tmp_path / "data"), loader=FakeInspector.load)
    st.add_model(FakeInspector(0.5, "coat-1").to_bytes(), "coat", activate=True)
    st.add_model(FakeInspector(0.5, "tile-1").to_bytes(), "tile", activate=True)
    yield st
    st.close()


def _engineer(st) -> TestClient:
    from lineguard.line.auth import create_key
    from lineguard.server.app import create_app
    with st.db.session() as s:
        key = create_key(s, "engineer", name="t-engineer")[1]
    return TestClient(create_app(station=st), headers={"X-API-Key": key})


def _upload(c: TestClient, product: str, version: str = "new-1", **form: str):
    return c.post("/api/v1/models", files={"file": ("m.lgm", FakeInspector(0.5, version).to_bytes())},
                  data={"product": product, **form})


def _products(st) -> set[str]:
    return {mv.product for mv in st.models.list()}


@pytest.mark.parametrize("typed, meant", [("tiles", "tile"), ("Tile", "tile"), ("tiel", "tile"),
                                          ("TILE_S", "tile"), ("coats ", "coat")])
def test_an_upload_under_a_name_close_to_a_known_product_is_refused_naming_it(station, typed, meant):
    with _engineer(station) as c:
        r = _upload(c, typed)
    assert r.status_code == 409, r.text
    err = r.json()["error"]
    assert f"did you mean {meant!r}?" in err["message"] and err["did_you_mean"] == [meant], err
    assert "new_product=true" in err["message"], err        # how to say it IS new
    assert _products(station) == {"coat", "tile"}            # no product made of the typo


def test_a_close_name_said_to_be_new_is_a_product_of_its_own(station):
    with _engineer(station) as c:
        r = _upload(c, "tiles", new_product="true")
        assert r.status_code == 201, r.text
        assert r.json()["warning"] == "new product 'tiles' (beside 'tile'); this station also knows: coat, tile"
        # its next version is no new product: no refusal, no word
        again = _upload(c, "tiles", version="new-2")
    assert again.status_code == 201 and again.json()["warning"] is None, again.text
    assert _products(station) == {"coat", "tile", "tiles"}


def test_a_new_product_of_a_name_like_no_other_is_taken_with_a_word(station):
    with _engineer(station) as c:
        r = _upload(c, "bracket")
        known = _upload(c, "tile", version="tile-2")        # a known product's next version: no word
    assert r.status_code == 201, r.text
    assert r.json()["warning"] == "new product 'bracket'; this station also knows: coat, tile"
    assert known.status_code == 201 and known.json()["warning"] is None, known.text


def test_a_siblings_name_is_no_typo_but_is_said(station):
    """cell-b beside cell-a (a letter in another's place) is how product variants are named:
    taken, its warning names the sibling."""
    station.add_model(FakeInspector(0.5, "cell-a-1").to_bytes(), "cell-a", activate=True)
    with _engineer(station) as c:
        r = _upload(c, "cell-b")
    assert r.status_code == 201, r.text
    assert r.json()["warning"] == "new product 'cell-b' (beside 'cell-a'); this station also knows: cell-a, coat, tile"


def test_a_part_under_a_misspelt_product_is_told_the_one_meant(station):
    with _engineer(station) as c:
        form = {"part_id": "p-1", "line": "L1", "station": "S1"}
        near = c.post("/api/v1/inspections", files={"image": ("p.png", png_bytes(40, seed=1), "image/png")},
                      data={**form, "product": "tiel"})
        far = c.post("/api/v1/inspections", files={"image": ("p.png", png_bytes(40, seed=2), "image/png")},
                     data={**form, "part_id": "p-2", "product": "bracket"})
    assert near.status_code in (404, 422), near.text
    msg = near.json()["error"]["message"]
    assert "did you mean 'tile'?" in msg and "coat, tile" in msg, msg
    msg = far.json()["error"]["message"]
    assert "no model was ever uploaded" in msg and "did you mean" not in msg and "coat, tile" in msg, msg


def test_serve_model_under_a_close_name_is_refused_and_a_first_product_needs_nothing(station, tmp_path):
    from lineguard.line.config import StationConfig
    from lineguard.line.errors import Conflict
    from lineguard.line.station import Station
    model = tmp_path / "tiles.lgm"
    model.write_bytes(FakeInspector(0.5, "tiles-1").to_bytes())
    with pytest.raises(Conflict, match="did you mean 'tile'"):
        station.ensure_model(model, "tiles")          # what `serve --model tiles.lgm --product tiles` does
    assert _products(station) == {"coat", "tile"}
    assert station.ensure_model(model, "bracket").active                       # not close: a new product
    fresh = Station(StationConfig(data_dir=tmp_path / "fresh"), loader=FakeInspector.load)
    try:
        assert fresh.ensure_model(model, "tiles").active                       # a fresh station's first
    finally:
        fresh.close()


def test_close_names_folds_case_separators_and_a_plural():
    from lineguard.line.close_names import close_names
    names = ["coat", "tile", "cell-a"]
    assert close_names("Tile_S ", names) == ["tile"]
    assert close_names("cell a", names) == ["cell-a"]
    assert close_names("tile", names) == []                   # itself is no other name
    assert close_names("bracket", names) == []
    from lineguard.line.close_names import typos_of
    assert typos_of("tiel", names) == typos_of("tilee", names) == typos_of("Tiles", names) == ["tile"]
    assert typos_of("cell-b", names) == typos_of("tilf", names) == typos_of("tile", names) == []


def test_siblings_by_a_digit_or_a_letter_added_are_no_typos():
    """A typo is a key pressed twice or two neighbours swapped; a letter added beside others
    or a digit names a sibling ("tile2", "bcell", "line12"/"line21"). The first rule (any
    letter added or dropped) refused the suite's own "tile2" beside "tile" and "bcell"
    beside "cell" as typos."""
    from lineguard.line.close_names import keying_slip, typos_of
    assert typos_of("tile2", ["tile"]) == typos_of("bcell", ["cell"]) == typos_of("cellr", ["cell"]) == []
    assert typos_of("cel", ["cell"]) == ["cell"] and typos_of("ttile", ["tile"]) == ["tile"]
    assert not keying_slip("line12", "line21") and not keying_slip("line1", "line")
    assert keying_slip("hd_aa", "hd_a") and keying_slip("h_da", "hd_a") and not keying_slip("hd_", "hd_a")
