"""Open an exported model (``.onnx``) as an ordinary Inspector on the chosen runtime.

Importing this module registers the opener with ``lineguard.vision.openers``, which is
how ``Inspector.load("cell.onnx")`` reaches it (``import lineguard`` imports it).
"""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any, Optional, Union

from ..vision import openers
from ..vision.errors import BundleError
from . import onnx_file

log = logging.getLogger("lineguard.runtime")

RUNTIMES = ("onnxruntime", "openvino")


def make_detector(data: bytes, manifest: dict[str, Any], threads: Optional[int] = None,
                  runtime: str = "onnxruntime", precision: Optional[str] = None):
    if runtime == "onnxruntime":
        if precision not in (None, manifest.get("precision", "fp32")):
            exported = manifest.get("precision", "fp32")
            # one way per precision: "needs --runtime openvino (bf16) or an int8 export" read as if
            # an int8 export gave bf16
            if exported == "int8":
                # "needs --runtime openvino", which then refuses an int8 export
                way = ("an int8 export runs in int8, on ONNX Runtime only: drop --precision, or export the .lgm "
                       f"without --int8 for {precision}" + (" (on OpenVINO)" if precision == "bf16" else ""))
            elif precision == "bf16":
                way = "--precision bf16 needs --runtime openvino (bf16 runs on OpenVINO only)"
            elif precision == "int8":
                way = "--precision int8 needs an int8 export of the model (`lineguard export --int8`)"
            else:
                way = f"--precision {precision} needs an export at that precision (`lineguard export`)"
            raise BundleError(f"ONNX Runtime runs the model at its exported precision ({exported}); {way}")
        from .onnx_detector import OnnxDetector
        return OnnxDetector(data, manifest, threads)
    if runtime == "openvino":
        from .openvino_detector import OpenVinoDetector
        return OpenVinoDetector(data, manifest, threads, precision=precision or "fp32")
    raise BundleError(f"unknown runtime {runtime!r}: use {' or '.join(RUNTIMES)}")


class CalibrationMismatchWarning(UserWarning):
    """The thresholds were set on scores of another precision than the model now runs at.

    The command line shows it as one ``warning:`` line (``one_line``), without the
    source line Python adds to a warning."""

    one_line = True


def calibration_mismatch(calibration: dict[str, Any], runtime: str, precision: str, name: str) -> Optional[str]:
    """Why the thresholds may not fit this runtime, or None.

    Precision is what moves scores (int8, bf16: about 1%, enough to flip parts near the
    threshold); ONNX Runtime, OpenVINO and torch in fp32 agree to ~1e-5, so the runtime
    alone is not a mismatch. A record without ``calibrated_on`` predates it and was set
    on torch fp32 scores, the only way there was then.
    """
    on = calibration.get("calibrated_on") or {"runtime": "torch", "precision": "fp32"}
    if on.get("precision", "fp32") == precision:
        return None
    # the runtime named: without it, recalibrate would run the file on the one its old thresholds name
    how = f"--runtime openvino --precision {precision}" if runtime == "openvino" else f"--runtime {runtime}"
    return (f"{name}: its thresholds were set on {on.get('runtime', 'torch')} {on.get('precision')} scores, but it "
            f"now runs in {precision} ({runtime}), whose scores differ: good parts may be rejected or defects "
            f"pass. Recalibrate on good parts the model did not learn from: lineguard recalibrate {name} "
            f"GOOD_DIR {how + ' ' if how else ''}-o NEW.onnx")


def calibrated_runtime(manifest: dict[str, Any]) -> tuple[str, Optional[str]]:
    """The runtime and precision an exported model's thresholds were set on, to run it with
    when none is asked for: ONNX Runtime at the export's precision, unless they were set on
    OpenVINO at another precision (``recalibrate --runtime openvino --precision bf16``)."""
    on = (manifest.get("calibration") or {}).get("calibrated_on") or {}
    exported_at = manifest.get("precision", "fp32")
    if on.get("runtime") == "openvino" and on.get("precision", "fp32") != exported_at:
        return "openvino", on.get("precision")
    return "onnxruntime", None


class CalibratedRuntimeMissing(BundleError):
    """The runtime and precision an exported model's thresholds were set on (OpenVINO bf16)
    cannot run here: no OpenVINO, or a CPU without native bfloat16. ``lineguard info``
    shows such a model all the same (what the file holds needs no runtime)."""

    def __init__(self, message: str, runtime: str = "openvino", precision: Optional[str] = None, why: str = ""):
        super().__init__(message)
        self.runtime, self.precision, self.why = runtime, precision, why


def _why_missing(exc: BaseException) -> str:
    """Why the calibrated runtime cannot run here, in this context's words: OpenVINO's own
    refusal adds "or run the model on ONNX Runtime (the default)", which for a model whose
    thresholds were set on OpenVINO it is not (running it there needs --runtime onnxruntime)."""
    if isinstance(exc.__cause__, ImportError):
        return "OpenVINO is not installed here"
    return str(exc)


def _calibrated_runtime_missing(name: str, runtime: str, precision: Optional[str], why: str) -> str:
    return (f"{name}: its thresholds were set on {runtime} {precision} scores, and this machine cannot run it so "
            f"({why}). Thresholds of another precision do not fit its scores here (good parts rejected or defects "
            f"passed), so it is not run otherwise by default, nor on ONNX Runtime unless told: install OpenVINO "
            f"(pip install 'lineguard[openvino]') on a CPU with native bfloat16, or recalibrate it for fp32: "
            f"lineguard recalibrate {name} GOOD_DIR --runtime onnxruntime -o NEW.onnx. To look at it before that, "
            f"inspect, eval and recalibrate run it in fp32 anyway with --runtime onnxruntime (saying the "
            f"thresholds do not fit), and info shows what it holds; a station (serve) does not take it so")


def load_inspector(cls: type, path: Union[str, os.PathLike, bytes], threads: Optional[int] = None,
                   runtime: Optional[str] = None, precision: Optional[str] = None):
    """Build an ``Inspector`` (``cls``) around an exported model; used by ``Inspector.load``.

    ``runtime`` None: the runtime and precision its thresholds were set on
    (:func:`calibrated_runtime`; ONNX Runtime for every model not recalibrated in bf16),
    refused with what to do where that runtime is missing (``runtime="onnxruntime"``
    runs it there anyway, with a ``CalibrationMismatchWarning``)."""
    from ..vision.preprocess import Preprocess

    data, manifest, digest = onnx_file.load(path)
    name = "<bytes>" if isinstance(path, (bytes, bytearray)) else str(path)
    cal_runtime, cal_precision = calibrated_runtime(manifest)
    chosen = precision is None and runtime in (None, cal_runtime)
    if chosen:              # what the thresholds were set on (--runtime openvino alone: at their precision)
        runtime, precision = cal_runtime, cal_precision
    elif runtime is None:   # a precision alone: ONNX Runtime (bf16 there is refused, naming --runtime openvino)
        runtime = "onnxruntime"
    if threads is not None and int(threads) < 1:
        raise BundleError(f"threads must be at least 1, got {threads}")
    try:
        try:
            det = make_detector(data, manifest, threads, runtime, precision)
        except BundleError as exc:
            if chosen and runtime != "onnxruntime":
                why = _why_missing(exc)
                raise CalibratedRuntimeMissing(_calibrated_runtime_missing(name, runtime, precision, why),
                                               runtime, precision, why) from exc
            raise
        pre = Preprocess.from_dict(manifest["preprocess"])
        # a manifest changed and sealed again whose sizes disagree ended inspect in a ValueError
        # traceback ("model input must be uint8 (N, 129, 129, 3)"): refused here, at load
        for what, hw in (("the photos are prepared at", tuple(pre.input_hw)),
                         ("its graph takes", getattr(det, "graph_hw", None))):
            if hw is not None and tuple(hw) != tuple(det.input_size_):
                raise BundleError(f"{name}: its settings contradict each other ({what} {hw[0]}x{hw[1]}, its "
                                  f"manifest says {det.input_size_[0]}x{det.input_size_[1]}): it was changed "
                                  "after export; export it again with `lineguard export MODEL.lgm --format onnx`")
        info = dict(manifest.get("info", {}))
        info.update({"runtime": det.runtime, "precision": det.precision,
                     "source_model_id": manifest.get("source_model_id"),
                     "lineguard_version": manifest.get("lineguard_version")})
        insp = cls(det, pre, manifest["calibration"], info, min_region_area=int(manifest.get("min_region_area", 4)))
    except (KeyError, TypeError) as exc:
        raise BundleError(f"{name}: exported model settings are incomplete ({type(exc).__name__}: {exc}); "
                          "export it again with this lineguard version") from exc
    mismatch = calibration_mismatch(manifest["calibration"], det.runtime, det.precision, name)
    if mismatch:
        insp.info["calibration_mismatch"] = mismatch
        warnings.warn(mismatch, CalibrationMismatchWarning, stacklevel=3)
    insp._model_id = digest[:16]
    return insp



# -- what one run of a model takes ---------------------------------------------------
# An exported graph is whatever its file says: a valid hash and manifest prove nothing
# about it (anyone can seal a file). One whose run expands its input into a 1.5 GiB
# tensor (an Expand node: the real model's scores, the same verdicts) was accepted by the
# station, which then held 1.8 GB instead of 0.2 GB from its upload on, and would grow so
# with every such model. So before a station accepts an exported model, one run of it at
# its input size is tried in a child process whose address space is capped a little above
# the limit: the station's own memory is never at stake, and a graph that wants tens of
# GB fails there instead of taking the PC. The child imports numpy and ONNX Runtime only
# (no torch): about half a second and 60 MB. Its run, not its load, is measured: a file's
# weights are bounded by the upload limit, and a run is what a part pays again and again.
#
# The limit grows with the model's input: a real model's run takes ~200 bytes per input
# pixel whatever its size and profile (measured, one part, ONNX Runtime: fast 128 px 3.0 MiB,
# 224 px 9.8, 1024 px 205; quality 128 px 2.3, 224 px 10.5, 576x224 26.3), so a 2048 px
# model (the station's largest input) needs ~800 MiB, and one fixed limit either refused it
# or let a 128 px model take a hundred times its need. StationConfig.model_run_bytes_per_pixel
# (1 KiB by default: five times what was measured), at least RUN_MEMORY_FLOOR.
RUN_MEMORY_FLOOR = 64 * 1024 * 1024
TRIAL_TIMEOUT_S = 120.0
# address space the child may take past what it holds and the limit: ONNX Runtime's
# arena and the kernels' scratch; the RSS check below is what holds the limit itself
_TRIAL_SLACK = 256 * 1024 * 1024
_TRIAL_MARK = "lineguard-trial-run:"
_RAISE_IT = "LINEGUARD_MODEL_RUN_BYTES_PER_PIXEL"


class ModelRunTooLarge(BundleError):
    """One run of the model needs more memory than the station allows (or it could not be
    measured there): the station refuses the model; the message names both amounts."""


def run_memory_limit(hw: tuple[int, int], bytes_per_pixel: int) -> int:
    """The memory one run of a model with input ``hw`` may take."""
    return max(RUN_MEMORY_FLOOR, int(bytes_per_pixel) * int(hw[0]) * int(hw[1]))


def _mib(n: float) -> str:
    return f"{n / (1 << 20):,.0f} MiB"


def trial_run_memory(path: Union[str, os.PathLike], bytes_per_pixel: int,
                     timeout_s: float = TRIAL_TIMEOUT_S) -> Optional[int]:
    """Run the exported model at ``path`` once, on a plain part at its input size, in a
    child process, and return the memory that run took (bytes: the child's peak resident
    memory during the run less what it held before it); :class:`ModelRunTooLarge` when it
    takes more than :func:`run_memory_limit` allows its input size, or fails for want of
    memory, or crashes or hangs there.

    None when it cannot be tried here (no ONNX Runtime, no process limits or /proc on
    this platform) or the file is not a readable export: the ordinary load then says what
    is wrong with it. Blocking (a child process): call it from a worker thread, never
    from an event loop."""
    import json
    import subprocess
    import sys

    import lineguard
    code = "from lineguard.runtime.loader import _trial_child; _trial_child()"
    env = dict(os.environ)
    # the lineguard the station runs, whatever the working directory and PYTHONPATH
    root = str(Path(lineguard.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"      # one part on one thread: the threads' own arenas would read as the model's
    capped = f"its memory capped at the station's limit ({int(bytes_per_pixel)} bytes per input pixel)"
    try:
        done = subprocess.run([sys.executable, "-P", "-c", code, str(Path(path)), str(int(bytes_per_pixel))],
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        raise ModelRunTooLarge(f"one run of the model on a plain part, {capped}, did not end within {timeout_s:g} s; "
                               "a lineguard model judges a part in well under a second: export it again with "
                               "`lineguard export MODEL.lgm --format onnx`") from None
    said = next((line[len(_TRIAL_MARK):] for line in done.stdout.decode("utf-8", "replace").splitlines()
                 if line.startswith(_TRIAL_MARK)), None)
    if said is None and done.returncode >= 0:
        # the trial itself broke (the child could not start): never a reason to refuse a model
        log.warning("the trial run of a model could not be made (exit status %d): %s", done.returncode,
                    done.stderr.decode("utf-8", "replace")[-500:])
        return None
    if said is None:
        raise ModelRunTooLarge(f"one run of the model on a plain part, {capped}, crashed (signal "
                               f"{-done.returncode}): the station does not take a model it cannot run within "
                               "that; export it again with `lineguard export MODEL.lgm --format onnx`, or raise "
                               f"the limit ({_RAISE_IT}) if this model is meant to need more")
    out = json.loads(said)
    if out.get("skip"):
        return None
    took, wanted, limit = int(out.get("took", 0)), out.get("wanted"), int(out["limit"])
    if out.get("failed") is not None and not out.get("no_memory"):
        return None     # fails for another reason: the ordinary load and check say why, in-process as before
    if out.get("no_memory") or took > limit:
        h, w = out["hw"]
        allowed = f"the {_mib(limit)} the station allows one run of a {w}x{h} input"
        if out.get("stage") == "load":
            how = f"could not even be loaded within {allowed} past its weights"
        elif wanted:
            how = f"asked for {_mib(int(wanted))} at once (with {_mib(took)} taken already), over {allowed}"
        elif out.get("no_memory"):
            how = f"ran out of {allowed} (it had taken {_mib(took)} when it failed)"
        else:
            how = f"took {_mib(took)}, over {allowed}"
        raise ModelRunTooLarge(f"one run of the model on a plain part {how}; the station would hold that much "
                               "more memory for as long as the model is active. A lineguard model's run takes "
                               f"about {_mib(200 * h * w)} at this input size: export it again with `lineguard "
                               f"export MODEL.lgm --format onnx`, or raise the limit ({_RAISE_IT}, now "
                               f"{int(bytes_per_pixel)}) if this model is meant to need more")
    return took


def _trial_child() -> None:
    """The child of :func:`trial_run_memory`: argv path, bytes per input pixel; prints one
    line ``lineguard-trial-run:{json}``."""
    import json
    import re
    import sys

    def say(**what: Any) -> None:
        print(_TRIAL_MARK + json.dumps(what), flush=True)

    def status(field: str) -> int:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise KeyError(field)
    path, per_pixel = sys.argv[1], int(sys.argv[2])
    try:
        import resource

        import numpy as np
        status("VmRSS")
        from .onnx_detector import make_session
    except (ImportError, OSError, KeyError):     # no rlimits or no /proc on this machine
        return say(skip=True)
    try:
        data, manifest, _ = onnx_file.load(path)
        h, w = (int(v) for v in manifest["input"]["hw"])
        name = str(manifest["input"]["name"])
    except Exception:  # noqa: BLE001 - not a readable export: the station's own load says why
        return say(skip=True)
    limit = run_memory_limit((h, w), per_pixel)
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]

    def cap(extra: int) -> None:
        want = status("VmSize") + extra + _TRIAL_SLACK
        resource.setrlimit(resource.RLIMIT_AS, (want if hard == resource.RLIM_INFINITY else min(want, hard), hard))
    try:
        cap(2 * len(data) + limit)   # the weights as read and as the session holds them, and the limit
        session = make_session(data, 1, spinning=False)
        part = np.zeros((1, h, w, 3), np.uint8)
        cap(limit)
    except Exception as exc:  # noqa: BLE001 - it does not load (or no ONNX Runtime here): the station's load says why
        return say(failed=str(exc)[:300], stage="load", limit=limit, hw=[h, w],
                   no_memory=isinstance(exc, MemoryError) or "allocate" in str(exc).lower())
    try:        # the peak from here on is the run's alone, not the load's passing copies of the weights
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass    # an old kernel: the load's peak counts too, which only errs toward refusing
    before = status("VmRSS")
    try:
        session.run(None, {name: part})
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime says "Failed to allocate memory" as a plain Fail
        text = str(exc)
        wanted = re.search(r"allocate memory for requested buffer of size (\d+)", text)
        return say(took=max(0, status("VmHWM") - before), failed=text[:300], limit=limit, hw=[h, w],
                   no_memory=isinstance(exc, MemoryError) or "allocate" in text.lower(),
                   wanted=int(wanted.group(1)) if wanted else None)
    say(took=max(0, status("VmHWM") - before), limit=limit, hw=[h, w])


openers.register(onnx_file.is_export, load_inspector)
