"""``lineguard rescore`` as an engineer re-scoring an archive met it: a moved archive resumed
into the same --out (every row doubled, without a word), files that are not images passed
over silently, ``--out scores.csv`` made a folder of Parquet, a progress line with no time
left and a rate on another clock than the summary's, a done archive's summary "scored 0
... none", and ``--ray local --concurrency 8 --num-cpus 2`` said "x8". Fake models
(tests/scale/fake_rescore.py), no Ray: its warnings are checked through their pure
functions and a stand-in for the cluster."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("pyarrow", reason="Parquet output needs pyarrow: pip install 'lineguard[scale]'")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scale"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from cli_runner import run_in_process  # noqa: E402
from fake_inspector import FakeInspector, png_bytes  # noqa: E402
from fake_rescore import load_fake  # noqa: E402


@pytest.fixture
def fake_models(monkeypatch):
    from lineguard.vision.inspector import Inspector
    monkeypatch.setattr(Inspector, "load", staticmethod(load_fake))


def _archive(root: Path, n: int, first: int = 0) -> Path:
    (root / "day").mkdir(parents=True, exist_ok=True)
    for i in range(first, first + n):
        (root / ("day" if i % 2 else "") / f"part-{i:03d}.png").write_bytes(png_bytes(60, seed=i))
    return root


def _model(path: Path) -> Path:
    path.write_bytes(FakeInspector(0.2, "rescore-v2").to_bytes())
    return path


def _rows(out: Path) -> int:
    import pyarrow.parquet as pq
    return sum(pq.read_metadata(p).num_rows for p in out.glob("part-*.parquet"))


def test_a_moved_archive_resumed_into_the_same_out_is_refused_not_scored_twice(tmp_path, fake_models):
    from lineguard.line.scale.rescore import rescore
    from lineguard.vision.errors import DatasetError
    model, out = _model(tmp_path / "m.json"), tmp_path / "rs.parquet"
    rescore(model, _archive(tmp_path / "arch_small", 6), out)
    shutil.move(tmp_path / "arch_small", tmp_path / "arch_moved")
    with pytest.raises(DatasetError) as err:
        rescore(model, tmp_path / "arch_moved", out)
    said = str(err.value)
    assert "moved" in said and str(tmp_path / "arch_small") in said and "new --out" in said, said
    assert _rows(out) == 6, "nothing scored a second time"
    r = run_in_process("rescore", "--model", model, "--images", tmp_path / "arch_moved", "--out", out)
    assert r.returncode == 2 and "moved" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert _rows(out) == 6
    # another archive's images (the next day's folder) into the same --out are still scored
    summary = rescore(model, _archive(tmp_path / "arch_next", 3, first=50), out)
    assert summary.scored == 3 and _rows(out) == 9


def test_files_that_are_not_scored_are_named_with_what_to_do(tmp_path, fake_models):
    archive = _archive(tmp_path / "arch", 4)
    for name in ("notes.txt", "export.csv", "IMG_0001.HEIC", ".hidden.png", "._part-000.png"):
        (archive / name).write_bytes(b"x")
    r = run_in_process("rescore", "--model", _model(tmp_path / "m.json"), "--images", archive,
                       "--out", tmp_path / "rs.parquet")
    assert r.returncode == 0, r.stderr
    assert "4 files in" in r.stderr and "not read" in r.stderr, r.stderr
    for name in ("notes.txt", "export.csv", "IMG_0001.HEIC", ".hidden.png"):
        assert name in r.stderr, name
    assert "export it as JPEG or PNG" in r.stderr          # train's advice for a phone's photos
    assert "._part-000.png" not in r.stderr                # a Mac's shadow file: nobody's photo
    # a folder of HEIC photos alone: "no images found" says what it holds and what to do
    heic = tmp_path / "phone"
    heic.mkdir()
    (heic / "IMG_0002.HEIC").write_bytes(b"x")
    r = run_in_process("rescore", "--model", tmp_path / "m.json", "--images", heic, "--out", tmp_path / "p.parquet")
    assert r.returncode == 2 and "IMG_0002.HEIC" in r.stderr and "export it as JPEG" in r.stderr, r.stderr


def test_an_out_named_like_a_spreadsheet_is_refused_and_csv_writes_one(tmp_path, fake_models):
    archive, model = _archive(tmp_path / "arch", 4), _model(tmp_path / "m.json")
    for name in ("scores.csv", "scores.xlsx"):
        r = run_in_process("rescore", "--model", model, "--images", archive, "--out", tmp_path / name)
        assert r.returncode == 2 and "not a spreadsheet" in r.stderr and "--csv" in r.stderr, r.stderr
        assert not (tmp_path / name).exists()
    out, csv = tmp_path / "scores.parquet", tmp_path / "scores.csv"
    r = run_in_process("rescore", "--model", model, "--images", archive, "--out", out, "--csv", csv)
    assert r.returncode == 0, r.stderr
    _archive(archive, 2, first=20)                  # a resume: the CSV holds every row, not this run's
    r = run_in_process("rescore", "--model", model, "--images", archive, "--out", out, "--csv", csv)
    assert r.returncode == 0, r.stderr
    lines = csv.read_text().splitlines()
    assert lines[0].startswith('"path","size"') and len(lines) == 1 + 6
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == \
        sorted(p.name for p in out.glob("part-*.parquet"))


def test_an_existing_folder_holding_other_files_is_refused(tmp_path, fake_models):
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "report.docx").write_bytes(b"x")
    r = run_in_process("rescore", "--model", _model(tmp_path / "m.json"), "--images", _archive(tmp_path / "a", 2),
                       "--out", reports)
    assert r.returncode == 2 and "report.docx" in r.stderr and "new --out" in r.stderr, r.stderr
    assert sorted(p.name for p in reports.iterdir()) == ["report.docx"]


def test_the_progress_line_shows_time_left_on_the_summarys_clock(monkeypatch, capsys):
    """Its rate counted start-up (Ray's, the model's) and the summary's did not: 24.6 against
    47.4 images/s for one run. Both start when the first image is sent now."""
    from lineguard.cli import scale as cli_scale
    now = [1000.0]
    monkeypatch.setattr(cli_scale, "time", SimpleNamespace(monotonic=lambda: now[0]))
    cb = cli_scale._progress_line(Path("rs.parquet"))
    now[0] += 100                       # start-up: listing, the model, Ray
    cb("start", 0, 100)
    now[0] += 10
    cb("rescore", 10, 100)
    now[0] += 10
    cb("rescore", 30, 100)
    lines = capsys.readouterr().err.splitlines()
    assert "1.0 images/s" in lines[0], lines
    assert "about 35 s left" in lines[1], lines     # 70 left at 2 images/s since the first results


def test_a_resume_says_the_archives_totals_not_only_this_runs(tmp_path, fake_models):
    from lineguard.line.scale.rescore import rescore
    archive, model, out = _archive(tmp_path / "arch", 6), _model(tmp_path / "m.json"), tmp_path / "rs.parquet"
    said: list[tuple] = []
    rescore(model, archive, out, progress=lambda *a: said.append(a))
    assert said[0] == ("start", 0, 6) and said[-1] == ("rescore", 6, 6)
    r = run_in_process("rescore", "--model", model, "--images", archive, "--out", out)
    assert r.returncode == 0 and "scored 0 images" in r.stdout and "all 6" in r.stdout, r.stdout
    assert "NG 6" in r.stdout and "none" not in r.stdout, r.stdout
    (archive / "broken.png").write_bytes(b"")
    summary = rescore(model, archive, out)
    assert summary.before == {"NG": 6} and summary.archive_counts() == {"NG": 6, "error": 1}


def test_ray_actors_that_cannot_fit_are_said_and_not_promised():
    from lineguard.line.scale.rescore import ray_actors, ray_small_archive
    n, said = ray_actors(8, 2.0, local=True)
    assert n == 2 and "--concurrency 8" in said and "2 CPUs" in said
    assert ray_actors(2, 2.0, local=True) == (2, None)
    assert ray_actors(8, None, local=True) == (8, None)          # CPUs not known: nothing said
    n, said = ray_actors(8, 4.0, local=False)                    # a cluster may grow: all asked for
    assert n == 8 and "4 CPUs" in said
    assert "one process is faster" in ray_small_archive(2000)
    assert ray_small_archive(50_000) is None


def test_ray_local_with_fewer_cpus_than_actors_runs_what_fits(tmp_path, fake_models, monkeypatch):
    """No cluster: connect and the Ray stream are stood in for; the run's own path decides."""
    from lineguard.line.scale import rescore as mod
    monkeypatch.setattr(mod, "connect", lambda address, num_cpus=None: SimpleNamespace(
        cluster_resources=lambda: {"CPU": float(num_cpus)}))
    pools: list[int] = []

    def stream(todo, model, batch_size, concurrency, *a, **k):
        pools.append(concurrency)
        yield from mod._batches_single(todo, mod.Rescorer(model), batch_size)
    monkeypatch.setattr(mod, "_batches_ray", stream)
    said: list[tuple] = []
    summary = mod.rescore(_model(tmp_path / "m.json"), _archive(tmp_path / "a", 4), tmp_path / "rs.parquet",
                          ray_address="local", concurrency=8, num_cpus=2, progress=lambda *a: said.append(a))
    assert pools == [2] and summary.mode == "ray local x2 (8 asked)" and summary.scored == 4
    assert ("ray-actors", 2, 8) in said and ("ray-small", 4, mod.RAY_WORTH_FROM) in said
