"""A line camera's large JPEGs at the station: decoded at the reduction that the models
about to judge the part allow (the whole decode of a 12 MP JPEG took longer than judging
it), recorded and judged in the photo's own pixels, and stored as sent; and a model whose
region of interest lies far into a camera's photo is accepted."""
from __future__ import annotations

import copy
import dataclasses
import io

import pytest
from PIL import Image
from sqlalchemy import select

pytest.importorskip("torch")


def _jpeg(src, side: int) -> bytes:
    photo = Image.open(src).convert("RGB").resize((side, side), Image.BICUBIC)
    buf = io.BytesIO()
    photo.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def test_a_station_decodes_a_large_jpeg_as_far_as_its_models_allow(synth_category, tmp_path, monkeypatch):
    from lineguard import Inspector
    from lineguard.line.config import StationConfig
    from lineguard.line.orm import ShadowResult
    from lineguard.line.station import Part, Station
    from lineguard.vision import imageio

    good = sorted((synth_category / "train" / "good").glob("*.png"))[:24]
    coarse = Inspector.fit(good, image_size=64, false_reject_rate=0.1, seed=0)
    fine = Inspector.fit(good, image_size=128, false_reject_rate=0.1, seed=0)
    coarse.save(tmp_path / "coarse.lgm")
    fine.save(tmp_path / "fine.lgm")
    # clear defects: a part near the threshold may fall either side of it at any resampling
    defects = sorted(p for p in synth_category.glob("test/*/*.png")
                     if p.parent.name != "good" and coarse.inspect(p).score > 1.15 * coarse.threshold)
    decoded = []
    real = imageio._to_rgb8
    monkeypatch.setattr(imageio, "_to_rgb8", lambda im, *a, **k: decoded.append(im.size) or real(im, *a, **k))

    st = Station(StationConfig(data_dir=tmp_path / "st"))   # keeps every image by default
    try:
        st.add_model((tmp_path / "coarse.lgm").read_bytes(), "cell", activate=True)
        held = []
        real_hold = st._pixels.hold
        monkeypatch.setattr(st._pixels, "hold", lambda n: held.append(n) or real_hold(n))
        data = _jpeg(defects[0], 1024)
        rec = st.inspect(data, Part("p-1", "L1", "S1", "cell")).record
        assert decoded == [(256, 256)]                 # 1/4: still 4x the 64 px input
        assert held == [256 * 256]                     # large parts take turns by what they decode to
        assert (rec.image_width, rec.image_height) == (1024, 1024)
        want = coarse.inspect(data)                    # the model alone, from the same bytes
        assert rec.verdict == want.verdict.value and rec.score == pytest.approx(want.score, rel=1e-5)
        whole = coarse.inspect(imageio.load_image(data))
        assert rec.verdict == whole.verdict.value == "NG" and rec.score == pytest.approx(whole.score, rel=0.03)
        assert rec.regions and all(r["box"][0] + r["box"][2] <= 1024 and r["box"][1] + r["box"][3] <= 1024
                                   for r in rec.regions)
        assert st.images.get(rec.image_key) == data    # the photo is kept as it came

        # A shadow with a finer input (128 px: 1/2 at most) gets the pixels it needs too.
        st.add_model((tmp_path / "fine.lgm").read_bytes(), "cell")
        st.shadow.start("cell", "", 2)
        decoded.clear()
        data = _jpeg(defects[1], 1024)
        rec = st.inspect(data, Part("p-2", "L1", "S1", "cell")).record
        assert st.shadow.wait_idle(30)
        assert decoded == [(512, 512)] and held[-1] == 512 * 512
        # the active model judged the shadow's finer pixels: nearly as it judges its own
        assert rec.score == pytest.approx(coarse.inspect(data).score, rel=0.03)
        with st.db.session() as s:
            shadow = s.scalars(select(ShadowResult).where(ShadowResult.inspection_id == rec.id)).one()
        assert shadow.score == pytest.approx(fine.inspect(data).score, rel=1e-5)
    finally:
        st.close()


def test_a_model_whose_roi_starts_past_256_px_is_accepted_by_the_station(tmp_path):
    # A line camera's ROI often starts hundreds of pixels into the photo; the station's
    # check that a model judges a part used a 256 x 256 part and refused every such model.
    from lineguard import Inspector
    from lineguard.line.errors import InvalidModel
    from lineguard.line.registry import check_model_judges
    from lineguard.vision.synth import make_part

    good = [make_part(s, size=(520, 640))[0] for s in range(12)]
    model = Inspector.fit(good, image_size=64, roi=(400, 300, 200, 180), false_reject_rate=0.2, seed=0)
    check_model_judges(model)        # judges a part that holds the ROI's corner
    far = copy.copy(model)           # an ROI no accepted photo reaches: refused with the reason
    far.preprocess = dataclasses.replace(model.preprocess, roi=(70_000, 70_000, 10, 10))
    with pytest.raises(InvalidModel, match="beyond any photo"):
        check_model_judges(far)
