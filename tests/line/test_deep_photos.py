"""A station whose camera writes 16-bit photos of a 12-bit sensor: the station decodes
them as they are and the model scales them by the depth it learned, so a part sent as a
file judges as the model alone judges it."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")


def _mono12_png(src) -> bytes:
    grey = np.asarray(Image.open(src).convert("L")).astype(np.uint16) << 4   # 0..4080
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format="PNG")
    return buf.getvalue()


def test_a_station_judges_12bit_photos_as_its_model_does(synth_category, tmp_path):
    from lineguard import Inspector
    from lineguard.line.config import StationConfig
    from lineguard.line.station import Part, Station
    good = tmp_path / "good"
    good.mkdir()
    for f in sorted((synth_category / "train" / "good").glob("*.png"))[:24]:
        (good / f.name).write_bytes(_mono12_png(f))
    model = Inspector.fit(good, image_size=64, false_reject_rate=0.1, seed=0)
    assert model.preprocess.sensor_bits == 12
    model.save(tmp_path / "cell.lgm")
    st = Station(StationConfig(data_dir=tmp_path / "st"))   # keeps every image by default
    try:
        st.ensure_model(str(tmp_path / "cell.lgm"), "cell")
        for i, f in enumerate(sorted(synth_category.glob("test/*/*.png"))[::6]):
            data = _mono12_png(f)
            rec = st.inspect(data, Part(f"p-{i}", "L1", "S1", "cell")).record
            want = model.inspect(data)
            assert rec.verdict == want.verdict.value and rec.score == pytest.approx(want.score, rel=1e-5)
            assert (rec.image_width, rec.image_height) == (want.image_size[0], want.image_size[1])
            # the photo is kept as it came, all 16 bits of it
            with Image.open(io.BytesIO(st.images.get(rec.image_key))) as kept:
                assert kept.mode.startswith("I") and np.asarray(kept).max() > 255
        # a deeper camera's photo is refused with the reason (422), not judged white
        from lineguard.line.errors import PhotoTooDeep
        grey = np.asarray(Image.open(io.BytesIO(_mono12_png(f)))) << 2
        buf = io.BytesIO()
        Image.fromarray(grey).save(buf, format="PNG")
        with pytest.raises(PhotoTooDeep, match="past the 12-bit camera depth") as refused:
            st.inspect(buf.getvalue(), Part("p-deep", "L1", "S1", "cell"))
        assert refused.value.http_status == 422
    finally:
        st.close()


def test_a_16bit_photo_holds_twice_the_pixel_budget_of_an_8bit_one():
    """The station's pixel budget bounds its memory by pixels decoding at once; a 16-bit
    colour photo decodes to twice the bytes a pixel, and four of 25 MP took 1.5 GB where
    8-bit ones took 0.76."""
    import cv2

    from lineguard.line.station import declared_pixels
    rgba16 = np.zeros((64, 80, 4), np.uint16)
    ok, deep = cv2.imencode(".png", rgba16)
    assert ok
    buf = io.BytesIO()
    Image.fromarray(np.zeros((64, 80, 3), np.uint8)).save(buf, format="PNG")
    mono16 = io.BytesIO()
    Image.fromarray(np.zeros((64, 80), np.uint16)).save(mono16, format="PNG")
    assert declared_pixels(buf.getvalue(), 10**9) == 64 * 80
    assert declared_pixels(deep.tobytes(), 10**9) == 2 * 64 * 80
    assert declared_pixels(mono16.getvalue(), 10**9) == 2 * 64 * 80
    assert declared_pixels(deep.tobytes(), 6000) == 6000          # one photo never needs more than the whole budget
