"""A camera frame's trip to the station: PNG encode (camera source) + decode (station).

Camera sources hand the station each frame as a PNG. This times that round trip with
OpenCV's default PNG settings at level 1 (what the sources used before) and with
``line.png.encode_frame`` (a mono frame as one grey channel; the "up" row
filter and zlib's run-length strategy), on camera-like frames: a real part photo
(``--data``'s first test/good image) enlarged to each camera size, with sensor noise
(sigma 2 grey levels), once as a mono camera delivers it through OpenCV (three equal
channels) and once as a colour camera (per-channel gains, noise of its own per channel).
The decode is the station's (``imageio.load_photo``). Checks that every way gives the
station the same pixels. Median of ``--runs``, one thread of work each.

    python -m benchmarks.frame_encode_bench [--data ../shared/datasets/magnetic_tile] [--runs 7]

Writes ``benchmarks/results/frame-encode.json``.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
SIZES = ((1280, 1024), (1920, 1080), (2448, 2048))


def _median_ms(fn, runs: int):
    out, times = None, []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return out, round(statistics.median(times), 1)


def _frames(photo: np.ndarray, w: int, h: int, seed: int = 0) -> dict[str, np.ndarray]:
    from PIL import Image
    rng = np.random.default_rng(seed)
    grey = np.asarray(Image.fromarray(photo).convert("L").resize((w, h), Image.BICUBIC), dtype=np.float32)
    mono = np.clip(grey + rng.normal(0, 2, grey.shape), 0, 255).astype(np.uint8)
    colour = np.stack([np.clip(grey * g + rng.normal(0, 2, grey.shape), 0, 255) for g in (0.8, 1.0, 1.1)],
                      axis=2).astype(np.uint8)
    return {"mono": np.repeat(mono[:, :, None], 3, axis=2), "colour": colour}   # BGR, as OpenCV gives


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "magnetic_tile"))
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()

    import cv2

    from lineguard.line.png import encode_frame
    from lineguard.vision.dataset import MVTecCategory
    from lineguard.vision.imageio import load_image, load_photo

    cv2.setNumThreads(1)
    cat = MVTecCategory(args.data)
    src = sorted((it.path for it in cat.test_items if not it.is_defect), key=lambda p: Path(p).name)[0]
    photo = load_image(src)
    ways = {"opencv default, level 1 (before)": lambda f: cv2.imencode(".png", f, [cv2.IMWRITE_PNG_COMPRESSION, 1])[1].tobytes(),
            "encode_frame (now)": encode_frame}
    rows = []
    for w, h in SIZES:
        for kind, frame in _frames(photo, w, h).items():
            want = np.ascontiguousarray(frame[:, :, ::-1])     # RGB, as the station judges it
            row = {"frame": f"{w}x{h}", "camera": kind}
            for name, enc in ways.items():
                data, enc_ms = _median_ms(lambda: enc(frame), args.runs)
                got, dec_ms = _median_ms(lambda: load_photo(data).pixels, args.runs)
                assert np.array_equal(got, want), f"{name} changed the pixels of a {kind} frame"
                row[name] = {"encode_ms": enc_ms, "decode_ms": dec_ms, "total_ms": round(enc_ms + dec_ms, 1),
                             "kB": round(len(data) / 1000)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    out = {"photo": str(Path(src).name), "data": Path(args.data).name, "runs": args.runs,
           "opencv": cv2.__version__, "cpu": platform.processor() or platform.machine(), "frames": rows}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "frame-encode.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
