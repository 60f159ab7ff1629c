"""A hostile client against a real station process (issue #11): every bad request gets
a clear 4xx (or 503 for a faulty station) in JSON, never a 500 or a dropped connection,
and nothing half-stored."""
from __future__ import annotations

import io
import shutil
import socket
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from .conftest import (ServerProc, fake_model_bytes, make_keys, png_bytes, post_part, read_http_head,
                       start_fake_station)


@pytest.fixture(scope="module")
def small_station(tmp_path_factory):
    """A fake-model station with a 1 MP pixel budget, so 'too many pixels' is cheap to test."""
    srv = start_fake_station(tmp_path_factory.mktemp("hardened") / "data", extra=["--max-megapixels", "1"])
    yield srv
    srv.stop()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_declaring(width: int, height: int) -> bytes:
    """A few hundred bytes whose header declares width x height: a decompression bomb's shape."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + _chunk(b"IEND", b""))


def encoded(arr_or_im, fmt: str, **kw) -> bytes:
    im = arr_or_im if isinstance(arr_or_im, Image.Image) else Image.fromarray(arr_or_im)
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _noise(h=64, w=64, seed=0):
    return np.random.default_rng(seed).integers(0, 120, (h, w, 3), dtype=np.uint8)


# -- item 2: bounded decoding --------------------------------------------------------

def test_pixels_over_the_budget_are_refused_from_the_header_with_413(small_station):
    with small_station.client(small_station.keys["operator"]) as c:
        for w, h in ((1200, 1000), (8000, 8000), (100_000, 100_000)):
            r = post_part(c, png_declaring(w, h), f"huge-{w}")
            assert r.status_code == 413, r.text
            assert r.json()["error"]["code"] == "image_too_large"
            assert "megapixels" in r.json()["error"]["message"]


def test_a_jpeg_over_the_budget_is_decoded_at_reduced_scale(small_station):
    jpeg = encoded(_noise(1200, 1600, seed=3), "JPEG", quality=80)   # 1.9 MP, budget 1 MP
    with small_station.client(small_station.keys["operator"]) as c:
        r = post_part(c, jpeg, "big-jpeg")
        assert r.status_code == 201, r.text
        assert r.json()["image_size"] == [800, 600]      # judged at 1/2 scale
        assert c.get(r.json()["links"]["image"]).content == jpeg   # the original is kept


def test_decodes_at_once_are_capped(sqlite_like_station):
    import threading
    import time
    st = sqlite_like_station(max_concurrent_decodes=2)
    from lineguard.line import station as station_mod
    busy, peak, lock = [0], [0], threading.Lock()
    real = station_mod.load_photo

    def slow_load(*a, **kw):
        with lock:
            busy[0] += 1
            peak[0] = max(peak[0], busy[0])
        time.sleep(0.05)
        try:
            return real(*a, **kw)
        finally:
            with lock:
                busy[0] -= 1

    station_mod.load_photo = slow_load
    try:
        threads = [threading.Thread(target=st.inspect, args=(png_bytes(40, seed=100 + i),
                                                            station_mod.Part(f"p{i}", "L1", "S1", "cell")))
                   for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        station_mod.load_photo = real
    assert len(st.query()) == 6 and peak[0] == 2


# -- bad-image corpus: each answered 4xx or judged, never 5xx ------------------------

def _corpus() -> dict[str, bytes]:
    base = _noise(64, 64, seed=7)
    gray16 = Image.fromarray((np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16))
    frames = [Image.fromarray(_noise(32, 32, seed=i)) for i in range(3)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
    tiff = io.BytesIO()
    frames[0].save(tiff, format="TIFF", save_all=True, append_images=frames[1:])
    exif = Image.Exif()
    exif[0x0112] = 6   # rotated: applied before judging
    huge_text = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 0, 0, 0, 0))
                 + _chunk(b"tEXt", b"comment\x00" + b"A" * 3_000_000) + _chunk(b"IDAT", zlib.compress(b"\x00" * 272))
                 + _chunk(b"IEND", b""))
    good_png = encoded(base, "PNG")
    return {
        "truncated_png": good_png[: len(good_png) // 2],
        "truncated_jpeg": encoded(base, "JPEG")[:300],
        "gray_L": encoded(base[:, :, 0], "PNG"),
        "rgba": encoded(np.dstack([base, np.full((64, 64), 128, np.uint8)]), "PNG"),
        "one_bit": encoded(Image.fromarray(base[:, :, 0]).convert("1"), "PNG"),
        "sixteen_bit": encoded(gray16, "PNG"),
        "cmyk_jpeg": encoded(Image.fromarray(base).convert("CMYK"), "JPEG"),
        "cmyk_tiff": encoded(Image.fromarray(base).convert("CMYK"), "TIFF"),
        "palette": encoded(Image.fromarray(base).convert("P"), "PNG"),
        "palette_transparent": encoded(Image.fromarray(base).convert("P"), "PNG", transparency=0),
        "float_tiff": encoded(Image.fromarray(base[:, :, 0].astype(np.float32)), "TIFF"),
        "multi_frame_gif": gif.getvalue(),
        "multi_frame_tiff": tiff.getvalue(),
        "exif_rotated": encoded(base, "JPEG", exif=exif),
        "huge_text_chunk": huge_text,
        "bomb_png": png_declaring(100_000, 100_000),
        "tiny": encoded(_noise(4, 4), "PNG"),
        "bmp": encoded(base, "BMP"),
        "webp": encoded(base, "WEBP"),
        "ppm": encoded(base, "PPM"),
        "only_magic": b"\x89PNG\r\n\x1a\n",
        "jpeg_header_only": b"\xff\xd8\xff\xe0" + b"\x00" * 20,
        "bmp_huge_header": b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + struct.pack(
            "<IiiHHIIiiII", 40, 2 ** 30, 2 ** 30, 1, 24, 0, 0, 0, 0, 0, 0),
    }


def test_bad_image_corpus_is_answered_4xx_or_judged(small_station):
    with small_station.client(small_station.keys["operator"]) as c:
        answers = {}
        for name, data in _corpus().items():
            r = post_part(c, data, f"corpus-{name}")
            answers[name] = r.status_code
            assert r.headers["content-type"].startswith("application/json"), (name, r.text)
            if r.status_code >= 400:
                assert r.json()["error"]["message"], name
        assert all(s in (201, 400, 413, 415, 422) for s in answers.values()), answers
        for judged in ("gray_L", "rgba", "sixteen_bit", "cmyk_jpeg", "palette", "multi_frame_gif",
                       "multi_frame_tiff", "exif_rotated", "bmp", "webp"):
            assert answers[judged] == 201, (judged, answers)
        assert answers["bomb_png"] == 413 and answers["bmp_huge_header"] == 413
        assert answers["truncated_png"] == 422 and answers["ppm"] == 415


def test_gif_is_stored_and_served_as_gif(small_station):
    gif = encoded(Image.fromarray(_noise(40, 40, seed=9)).convert("P"), "GIF")
    with small_station.client(small_station.keys["operator"]) as c:
        r = post_part(c, gif, "gif-part")
        assert r.status_code == 201, r.text
        img = c.get(r.json()["links"]["image"])
        assert img.headers["content-type"] == "image/gif" and img.content == gif


# -- item 4: numbers and dates out of range --------------------------------------------

@pytest.mark.parametrize("path", ["/api/v1/inspections/99999999999999999999999",
                                  "/api/v1/inspections/9223372036854775808/image",
                                  "/api/v1/inspections/3000000000", "/api/v1/jobs/18446744073709551617",
                                  "/api/v1/inspections?cursor=99999999999999999999999",
                                  "/api/v1/inspections?cursor=-5",
                                  "/api/v1/inspections?since=0001-01-01T00:00:00%2B14:00",
                                  "/api/v1/inspections?until=9999-12-31T23:59:59-14:00"])
def test_numbers_and_dates_out_of_range_are_4xx_not_500(small_station, path):
    with small_station.client(small_station.keys["operator"]) as c:
        r = c.get(path)
    assert r.status_code in (404, 422), r.text
    assert r.json()["error"]["message"]


def test_big_integers_in_json_bodies_are_422(small_station):
    with small_station.client(small_station.keys["engineer"]) as c:
        r = c.post("/api/v1/models/cell/activate", json={"version": 2 ** 70})
        assert r.status_code == 422, r.text
        r = c.post("/api/v1/models/cell/train", json={"seed": 2 ** 65})
        assert r.status_code == 422, r.text
    with small_station.client(small_station.keys["operator"]) as c:
        r = c.post(f"/api/v1/inspections/{2 ** 64}/review", json={"label": "good"})
        assert r.status_code == 422, r.text


# -- item 6: the same part id and image from another product/line/station -------------

def test_resubmission_with_other_line_or_station_is_a_409_saying_what_differs(small_station):
    img = png_bytes(40, seed=21)
    with small_station.client(small_station.keys["operator"]) as c:
        first = post_part(c, img, "part-conflict", line="L1", station="S1")
        assert first.status_code == 201
        assert post_part(c, img, "part-conflict", line="L1", station="S1").status_code == 200
        r = post_part(c, img, "part-conflict", line="L2", station="S1")
        assert r.status_code == 409, r.text
        err = r.json()["error"]
        assert err["code"] == "conflict" and err["existing_id"] == first.json()["id"]
        assert err["differs"] == {"line": {"recorded": "L1", "sent": "L2"}}
        r = post_part(c, img, "part-conflict", line="L1", station="S9")
        assert r.status_code == 409 and "station" in r.json()["error"]["differs"]


# -- item 7: chunked uploads stop at the limit -----------------------------------------

def _chunked_answer(port: int, head: bytes, blocks: int) -> bytes:
    """Send ``blocks`` x 64 KiB chunked after ``head``, the body never finished; what came back."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        block = b"\0" * 65536
        try:
            for _ in range(blocks):
                sock.sendall(b"%x\r\n%s\r\n" % (len(block), block))
        except (BrokenPipeError, ConnectionResetError):
            pass   # the server answered and closed
        sock.settimeout(10)
        try:
            return read_http_head(sock)
        except socket.timeout:
            return b""


def test_a_chunked_upload_is_refused_at_the_limit_without_reading_to_the_end(small_station):
    # The server's limit is 1 MB. 3 MB are sent chunked, and the body is never finished:
    # an answer can only come if the server stops reading at the limit.
    boundary = "lgboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"p.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode() + b"\x89PNG\r\n\x1a\n"
    request = (f"POST /api/v1/inspections HTTP/1.1\r\nHost: x\r\nX-API-Key: {small_station.keys['operator']}"
               f"\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
               "Transfer-Encoding: chunked\r\n\r\n").encode()
    answer = _chunked_answer(small_station.port, request + b"%x\r\n%s\r\n" % (len(head), head), 48)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_a_sign_in_of_megabytes_is_refused_at_1_mib_before_it_is_read(small_station):
    # No key is needed to sign in: 200 MB sign-ins, read whole before their field was
    # checked, took a station's memory from 0.3 to 1.6 GB. 3 MiB sent, never finished.
    head = ("POST /api/v1/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n")
    start = '{"api_key": "'
    answer = _chunked_answer(small_station.port, (head + f"{len(start):x}\r\n{start}\r\n").encode(), 48)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # said in its length: refused before a byte of it is read
    with small_station.client(small_station.keys["operator"]) as c:
        r = c.post("/api/v1/alarms/rules", content=b"{" + b" " * (2 << 20) + b"}",
                   headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and r.json()["error"]["code"] == "upload_too_large", r.text
        assert "over 1 MiB" in r.json()["error"]["message"]
        assert c.get("/health").status_code == 200


def test_names_are_stored_without_padding_in_the_lines_spelling_and_control_characters_refused(small_station):
    # A PLC's fixed-length string (" LN1 "), a line typed "ln1": each was a line of its own
    # beside LN1 (its own counters, its parts missing from LN1's); a NUL or an escape was
    # stored for ever in records, exports and the PLC's strings.
    with small_station.client(small_station.keys["operator"]) as c:
        first = post_part(c, png_bytes(40, seed=41), "pad-1", line="LN1", station="S1")
        assert first.status_code == 201, first.text
        padded = post_part(c, png_bytes(40, seed=42), " pad-2 ", line=" LN1 ", station="S1 ", lot="  ",
                           serial="SN-7\r")
        assert padded.status_code == 201, padded.text
        rec = padded.json()
        assert (rec["part_id"], rec["line"], rec["station"], rec["lot"], rec["serial"]) == \
            ("pad-2", "LN1", "S1", None, "SN-7")
        assert post_part(c, png_bytes(40, seed=43), "pad-3", line="ln1").json()["line"] == "LN1"
        assert post_part(c, png_bytes(40, seed=49), "pad-4", line="LN1", station="s1").json()["station"] == "S1"
        names = c.get("/api/v1/inspections/names").json()
        assert [n for n in names["lines"] if n.strip().lower() == "ln1"] == ["LN1"], names
        for field, value in (("part_id", "a\x00b"), ("line", "L\x1b[31m"), ("lot", "lot\n7"), ("part_id", "p\u200b7"),
                             ("line", "\u202eLN1"), ("part_id", "p\u2066x\u20697")):
            form = {"part_id": "ctl-1", "line": "LN1", "station": "S1", "product": "cell", field: value}
            r = c.post("/api/v1/inspections", files={"image": ("p.png", png_bytes(40, seed=44), "image/png")},
                       data=form)
            assert r.status_code == 422 and "control or invisible character" in r.json()["error"]["message"], \
                (field, r.text)
        assert c.get("/api/v1/inspections", params={"part_id": "ctl-1"}).json()["items"] == []
        # a product in another case is not guessed (a model judges by its exact name), but named
        r = post_part(c, png_bytes(40, seed=48), "case-1", product="CELL")
        assert r.status_code == 404 and "did you mean 'cell'?" in r.json()["error"]["message"], r.text


def test_two_images_in_one_part_and_a_photo_too_small_are_refused_saying_why(small_station):
    with small_station.client(small_station.keys["operator"]) as c:
        form = {"part_id": "two-images", "line": "L1", "station": "S1", "product": "cell"}
        r = c.post("/api/v1/inspections", data=form,
                   files=[("image", ("a.png", png_bytes(40, seed=45), "image/png")),
                          ("image", ("b.png", png_bytes(200, seed=46), "image/png"))])
        assert r.status_code == 422 and "one image per part" in r.json()["error"]["message"], r.text
        assert c.get("/api/v1/inspections", params={"part_id": "two-images"}).json()["items"] == []
        r = post_part(c, encoded(np.zeros((1, 1, 3), np.uint8), "PNG"), "one-pixel")
        assert r.status_code == 422 and "at least 8x8" in r.json()["error"]["message"], r.text


def test_an_image_sent_as_the_raw_body_and_unreadable_json_are_told_what_to_send(small_station):
    with small_station.client(small_station.keys["operator"]) as c:
        r = c.post("/api/v1/inspections", content=png_bytes(40, seed=47), headers={"Content-Type": "image/png"})
        assert r.status_code == 422 and "as a multipart/form-data form" in r.json()["error"]["message"], r.text
        deep = b"[" * 5000 + b"]" * 5000
        r = c.post("/api/v1/session", content=deep, headers={"Content-Type": "application/json"})
        err = r.json()["error"]
        assert r.status_code in (400, 422) and err["code"] != "error", r.text
        assert r.status_code == 422 or "send JSON" in err["message"], r.text


# -- item 9: invalid UTF-8, server paths ------------------------------------------------

def test_invalid_utf8_in_a_form_field_is_422(small_station):
    boundary = "lgb"
    parts = []
    for name, value in (("part_id", b"part-\xff\xfe-1"), ("line", b"L1"), ("station", b"S1"), ("product", b"cell")):
        parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n".encode() + value)
    parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"p.png\"\r\n"
                 "Content-Type: image/png\r\n\r\n".encode() + png_bytes(40, seed=31))
    body = b"\r\n".join(parts) + f"\r\n--{boundary}--\r\n".encode()
    with small_station.client(small_station.keys["operator"]) as c:
        before = len(c.get("/api/v1/inspections", params={"limit": 1000}).json()["items"])
        r = c.post("/api/v1/inspections", content=body,
                   headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert r.status_code == 422, r.text
        assert "UTF-8" in r.json()["error"]["message"]
        assert len(c.get("/api/v1/inspections", params={"limit": 1000}).json()["items"]) == before


def test_model_upload_errors_show_no_server_paths(small_station):
    with small_station.client(small_station.keys["engineer"]) as c:
        r = c.post("/api/v1/models", files={"file": ("m.lgm", b"garbage, not a model")}, data={"product": "x"})
    assert r.status_code == 422
    msg = r.json()["error"]["message"]
    assert "/tmp" not in msg and str(small_station.data_dir) not in msg and "/" not in msg.replace("a/b", ""), msg


# -- item 5: a failing data folder -----------------------------------------------------

def test_a_failing_data_folder_answers_503_and_health_shows_it(tmp_path):
    data = tmp_path / "data"
    keys = make_keys(data)
    srv = ServerProc(data, fake=True).start()
    try:
        with srv.client(keys["engineer"]) as c:
            assert c.post("/api/v1/models", files={"file": ("cell.lgm", fake_model_bytes())},
                          data={"product": "cell", "activate": "true"}).status_code == 201
        staging = data / "images" / ".staging"
        shutil.rmtree(staging, ignore_errors=True)
        staging.write_text("a file where the station's temp folder should be")   # writes there fail
        with srv.client(keys["operator"]) as c:
            r = post_part(c, png_bytes(40, seed=41), "p-fault")
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "storage_unavailable"
            assert "data folder" in r.json()["error"]["message"] and str(data) not in r.json()["error"]["message"]
            h = c.get("/health")
            assert h.status_code == 503 and h.json()["status"] == "fault" and "images" in h.json()["faults"]
            assert c.get("/api/v1/inspections", params={"part_id": "p-fault"}).json()["items"] == []
            staging.unlink()
            h = c.get("/health")
            assert h.status_code == 200 and h.json()["status"] == "ok" and h.json()["faults"] == {}
            assert post_part(c, png_bytes(40, seed=41), "p-fault").status_code == 201
    finally:
        srv.stop()


# -- item 10: start-up errors ----------------------------------------------------------

@pytest.mark.parametrize("case", ["bad_db_url", "db_unreachable", "corrupt_model", "model_without_product"])
def test_start_up_errors_are_one_line_and_exit_code_2(tmp_path, case):
    import subprocess
    import sys
    bad = tmp_path / "cell.lgm"
    bad.write_bytes(b"garbage, not a model")
    args = {"bad_db_url": ["--db", "notadialect://x"],
            "db_unreachable": ["--db", "postgresql://lg:secret@127.0.0.1:1/none", "--db-wait", "0"],   # 0: not waited for
            "corrupt_model": ["--model", str(bad), "--product", "cell"],
            "model_without_product": ["--model", str(bad)]}[case]
    r = subprocess.run([sys.executable, "-m", "lineguard", "serve", "--data", str(tmp_path / "st"), "--port", "1",
                        *args], capture_output=True, text=True, timeout=120)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert "Traceback" not in r.stderr and "secret" not in r.stderr
    assert "lineguard station on" not in r.stdout    # no banner for a station that never started


# -- item 3: a model is judged before it can be active ---------------------------------

@pytest.mark.parametrize("bad", [{"bank_shape": [100, 7]}, {"input_size": 20000}])
def test_a_model_that_cannot_judge_a_part_is_refused_at_upload(small_station, bad):
    import json
    model = json.dumps({"fake_lineguard_model": True, "threshold": 0.5, "version": "bad", **bad}).encode()
    with small_station.client(small_station.keys["engineer"]) as c:
        before = c.get("/api/v1/models", params={"product": "cell"}).json()["items"]
        r = c.post("/api/v1/models", files={"file": ("bad.lgm", model)},
                   data={"product": "cell", "activate": "true"})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "invalid_model"
        assert c.get("/api/v1/models", params={"product": "cell"}).json()["items"] == before
    with small_station.client(small_station.keys["operator"]) as c:
        assert post_part(c, png_bytes(40, seed=51), f"after-bad-model-{len(model)}").status_code == 201
