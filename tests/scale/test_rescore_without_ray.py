"""The default install has no Ray: the CLI still loads, `rescore` in one process works,
and `rescore --ray` says how to install the extra. Ray is hidden by a stand-in package
that fails to import, as it would on an install without it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import make_archive


def _env_without_ray(tmp_path: Path) -> dict[str, str]:
    shadow = tmp_path / "no-ray"
    (shadow / "ray").mkdir(parents=True, exist_ok=True)
    (shadow / "ray" / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\", name='ray')\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(shadow), env.get("PYTHONPATH", "")])
    return env


def test_rescore_on_ray_without_ray_says_how_to_install(tmp_path, synth_category):
    env = _env_without_ray(tmp_path)
    r = subprocess.run([sys.executable, "-c", "import lineguard.cli, sys; "
                        "assert 'ray' not in sys.modules or sys.modules['ray'] is None"],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    model = tmp_path / "cell.onnx"
    model.write_bytes(b"not needed: refused before the model is read")
    r = subprocess.run([sys.executable, "-m", "lineguard", "rescore", "--ray", "local", "--model", str(model),
                        "--images", str(synth_category / "test"), "--out", str(tmp_path / "r.parquet")],
                       env=env, capture_output=True, text=True)
    assert r.returncode != 0
    assert "pip install 'lineguard[scale]'" in r.stderr, r.stderr
    assert not (tmp_path / "r.parquet").exists()


def test_single_process_rescore_needs_no_ray(tmp_path, synth_category, fitted_inspector):
    pytest.importorskip("pyarrow", reason="Parquet output needs pyarrow: pip install 'lineguard[scale]'")
    pytest.importorskip("onnxruntime")
    from lineguard.runtime.onnx_export import export_onnx
    model = tmp_path / "cell.onnx"
    export_onnx(fitted_inspector, model)
    archive = make_archive(tmp_path / "archive", synth_category)
    cmd = [sys.executable, "-m", "lineguard", "rescore", "--model", str(model), "--images", str(archive),
           "--out", str(tmp_path / "r.parquet"), "--chunk-rows", "7"]
    r = subprocess.run(cmd, env=_env_without_ray(tmp_path), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    n = sum(1 for _ in archive.rglob("*.png"))
    assert f"scored {n} images" in r.stdout and "1 images could not be read" in r.stderr
    again = subprocess.run(cmd, env=_env_without_ray(tmp_path), capture_output=True, text=True)
    assert again.returncode == 0 and "scored 0 images" in again.stdout
    assert f"{n} of {n} images already in" in again.stderr


def test_rescore_refuses_a_broken_model_naming_the_file(tmp_path, synth_category):
    pytest.importorskip("pyarrow", reason="Parquet output needs pyarrow: pip install 'lineguard[scale]'")
    model = tmp_path / "cell.onnx"
    model.write_bytes(b"{}")
    r = subprocess.run([sys.executable, "-m", "lineguard", "rescore", "--model", str(model), "--images",
                        str(synth_category / "test"), "--out", str(tmp_path / "r.parquet")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and f"{model}: " in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "r.parquet").exists()


def test_the_archive_lists_each_image_once_and_says_what_it_left_out(tmp_path, monkeypatch):
    """A link to an image (a file's, or a folder's a glob walks through) was scored twice and
    counted twice in the station's database; a file gone while the archive was listed (a live
    archive) crashed the run with a traceback; a name not in UTF-8 stopped it at its batch,
    every run."""
    from lineguard.line.scale import rescore as rescore_module
    from lineguard.line.scale.rescore import list_archive
    day = tmp_path / "arch" / "2026" / "12"
    day.mkdir(parents=True)
    for i in range(3):
        (day / f"p{i}.png").write_bytes(b"\x89PNG" + bytes([i]))
    (tmp_path / "arch" / "today").symlink_to(day)                 # a folder link
    (day / "again.png").symlink_to(day / "p0.png")                 # a file link
    (day / b"caf\xe9.png".decode("utf-8", "surrogateescape")).write_bytes(b"\x89PNG")
    left: list[str] = []
    listed = list_archive(str(tmp_path / "arch" / "**" / "*.png"), left)
    assert sorted(os.path.basename(a.path) for a in listed) == ["p0.png", "p1.png", "p2.png"]
    assert len(left) == 1 and "not UTF-8" in left[0] and "caf" in left[0]
    assert [os.path.basename(a.path) for a in list_archive(tmp_path / "arch")] == ["p0.png", "p1.png", "p2.png"]
    # a file that goes between the walk and its look: left out, said, the rest listed
    real_stat, looks = Path.stat, []

    def vanishing(self, *a, **kw):
        if self.name == "p1.png":
            looks.append(1)
            if len(looks) > 1:           # there for the walk's look, gone at the listing's
                raise FileNotFoundError(2, "No such file or directory", str(self))
        return real_stat(self, *a, **kw)

    monkeypatch.setattr(rescore_module.Path, "stat", vanishing)
    left = []
    assert [os.path.basename(a.path) for a in list_archive(day, left)] == ["p0.png", "p2.png"]
    assert any("gone while the archive was listed" in why for why in left)


def test_a_file_rescore_does_not_read_is_told_the_formats_rescore_reads_gif_among_them():
    """The advice was train's list of formats, without GIF, which rescore scores (a walk)."""
    from lineguard.line.scale.rescore import not_read_said
    (said,) = not_read_said([("/arch/notes.txt", "other")], "/arch")
    assert said.startswith("/arch/notes.txt: not a photo format rescore reads (.png"), said
    assert ".webp, .gif, upper or lower case" in said, said
