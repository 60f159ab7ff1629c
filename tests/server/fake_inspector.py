"""A tiny stand-in for Inspector (no torch): score = mean brightness of the part.

Used by the plumbing tests (auth, storage, idempotency, sources, sinks) so they run in
a second; the end-to-end tests use a real fitted model.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from lineguard.vision.errors import ModelFileCorrupt
from lineguard.vision.imageio import load_image
from lineguard.vision.result import DefectRegion, InspectionResult, Verdict


class FakeInspector:
    def __init__(self, threshold: float = 0.5, version: str = "fake-1", delay_s: float = 0.0,
                 review_threshold: float | None = None, photo_floor: float | None = None,
                 sensor_bits: int | None = None):
        self.threshold = threshold
        # a review band: OK at or below it, REVIEW up to threshold (None: no band)
        self.review_threshold = threshold if review_threshold is None else review_threshold
        self.pixel_threshold = threshold
        self.model_version = version
        self.delay_s = delay_s
        # a photo check (vision.photo_check) in small: a photo darker than this is doubted
        self.photo_floor = photo_floor
        self.model_id = ""
        if sensor_bits is not None:     # a camera depth, as Preprocess.sensor_bits: 16-bit photos scaled by it
            from types import SimpleNamespace
            self.preprocess = SimpleNamespace(sensor_bits=sensor_bits)
        self.calibration: dict = {}

    def to_bytes(self) -> bytes:
        d = {"fake_lineguard_model": True, "threshold": self.threshold,
             "version": self.model_version, "delay_s": self.delay_s}
        if self.review_threshold < self.threshold:
            d["review_threshold"] = self.review_threshold
        if self.calibration:
            d["calibration"] = self.calibration
        if self.photo_floor is not None:
            d["photo_floor"] = self.photo_floor
        if getattr(getattr(self, "preprocess", None), "sensor_bits", None):
            d["sensor_bits"] = self.preprocess.sensor_bits
        return json.dumps(d).encode()

    def with_calibration(self, calibration: dict) -> bytes:
        """This model's file with other thresholds (what threshold tuning saves)."""
        t = float(calibration["threshold"])
        out = FakeInspector(t, self.model_version, self.delay_s, calibration.get("review_threshold", t))
        out.calibration = calibration
        return out.to_bytes()

    def save(self, path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path) -> "FakeInspector":
        data = Path(path).read_bytes()
        try:
            d = json.loads(data)
            assert d["fake_lineguard_model"] is True
        except Exception as exc:  # noqa: BLE001
            raise ModelFileCorrupt(f"{path}: not a model file") from exc
        if d.get("broken"):
            raise ModelFileCorrupt(f"{path}: weights are corrupt")
        insp = cls(float(d["threshold"]), d["version"], float(d.get("delay_s", 0.0)), d.get("review_threshold"),
                   d.get("photo_floor"), d.get("sensor_bits"))
        insp.calibration = d.get("calibration") or {}
        if d.get("bank_shape"):   # a bundle whose memory bank does not fit its features
            insp.bank = np.zeros(d["bank_shape"], np.float32)
        if d.get("input_size"):
            from types import SimpleNamespace
            n = int(d["input_size"])
            insp.preprocess = SimpleNamespace(input_hw=(n, n))   # as Preprocess.input_hw (a property)
        import hashlib
        insp.model_id = hashlib.sha256(data).hexdigest()
        return insp

    @classmethod
    def fit(cls, images, progress=None, **params) -> "FakeInspector":
        vals = []
        for i, p in enumerate(images):     # reports its stages like Inspector.fit
            vals.append(load_image(p).mean() / 255.0)
            if progress:
                progress("load", i + 1, len(images))
        if progress:
            progress("features", len(images), len(images))
            progress("calibrate", 1, 1)
        insp = cls(threshold=float(max(vals)) + 0.05, version="fake-trained")
        # as Inspector.fit's record when the threshold is the highest of the parts' scores
        insp.calibration = {"rank": len(vals), "n_calibration": len(vals)}
        # like Inspector.fit: good images far above the others are named, highest first
        med = float(np.median(vals))
        insp.info = {"suspect_good": sorted(({"image": str(p), "score": v} for p, v in zip(images, vals)
                                             if v > med + 0.3), key=lambda s: -s["score"]),
                     # and, like the photo check, photos far darker than the others
                     "photo_odd": [{"image": str(p), "issues": [f"too dark: brightness {v:.3f}"]}
                                   for p, v in zip(images, vals) if v < 0.5 * med]}
        return insp

    def inspect(self, image) -> InspectionResult:
        t0 = time.perf_counter()
        arr = load_image(image, sensor_bits=getattr(getattr(self, "preprocess", None), "sensor_bits", None))
        if self.delay_s:
            time.sleep(self.delay_s)
        if getattr(self, "bank", None) is not None:
            np.zeros((16, 160), np.float32) @ self.bank   # shapes do not align: what a bad bank does
        amap = arr.mean(axis=2).astype(np.float32) / 255.0
        score = float(amap.mean())
        regions = []
        ys, xs = np.nonzero(amap > self.pixel_threshold)
        verdict = (Verdict.NG if score > self.threshold else Verdict.REVIEW if score > self.review_threshold
                   else Verdict.OK)
        photo_issues = []
        had = verdict                      # on the score alone: regions where it did not pass
        if self.photo_floor is not None and score < self.photo_floor:     # as Inspector: REVIEW whatever the score
            photo_issues = [f"too dark: brightness {score:.3f}, good photos {self.photo_floor:.3f} and above"]
            verdict = Verdict.REVIEW
        if had is not Verdict.OK and len(xs):
            regions.append(DefectRegion(int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                                        int(ys.max() - ys.min() + 1), int(len(xs)), float(amap.max()),
                                        float(amap[ys, xs].mean())))
        return InspectionResult(verdict=verdict, score=score, threshold=self.threshold,
                                pixel_threshold=self.pixel_threshold, anomaly_map=amap, regions=regions,
                                model_id=self.model_id, model_version=self.model_version,
                                image_size=(arr.shape[1], arr.shape[0]), review_threshold=self.review_threshold,
                                timings_ms={"total": (time.perf_counter() - t0) * 1e3}, photo_issues=photo_issues)


def png_bytes(value: int = 60, size: int = 64, seed=None) -> bytes:
    """A PNG part; ``value`` sets brightness (the fake model's score), ``seed`` makes it unique."""
    import io
    from PIL import Image
    rng = np.random.default_rng(seed if seed is not None else value)
    arr = np.clip(rng.normal(value, 5, (size, size, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def serve_main(argv: list[str]) -> None:
    """Run the station with fake models (``python tests/server/fake_inspector.py ...``)."""
    from lineguard.line.config import RetentionPolicy, StationConfig
    from lineguard.server.app import serve
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--data")
    ap.add_argument("--db", default=None)
    ap.add_argument("--db-schema", default=None)
    ap.add_argument("--port", type=int)
    ap.add_argument("--max-upload-mb", type=float, default=1.0)
    ap.add_argument("--max-megapixels", type=float, default=26.0)
    ap.add_argument("--power-safe", action="store_true")
    ap.add_argument("--ok-sample-rate", type=float, default=1.0)
    ap.add_argument("--audit-sample-rate", type=float, default=0.02)
    ap.add_argument("--mqtt", default=None)
    ap.add_argument("--webhook", default=None)
    ap.add_argument("--open-reads", action="store_true")
    ap.add_argument("--backup-to", default=None)
    ap.add_argument("--keep-records-days", type=float, default=None)
    ap.add_argument("--archive-records-to", default=None)
    a = ap.parse_args(argv)
    cfg = StationConfig(data_dir=Path(a.data), db_url=a.db, db_schema=a.db_schema,
                        max_upload_bytes=int(a.max_upload_mb * 1024 * 1024),
                        max_image_pixels=int(a.max_megapixels * 1e6),
                        sqlite_synchronous="FULL" if a.power_safe else "NORMAL",
                        retention=RetentionPolicy(ok_sample_rate=a.ok_sample_rate), mqtt_url=a.mqtt,
                        webhook_url=a.webhook, open_reads=a.open_reads, audit_sample_rate=a.audit_sample_rate,
                        backup_to=a.backup_to, keep_records_days=a.keep_records_days,
                        archive_records_to=a.archive_records_to)
    serve(cfg, port=a.port, log_level="warning", loader=FakeInspector.load, trainer=FakeInspector.fit)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    serve_main(sys.argv[1:])
