"""``lineguard rescore`` and ``rescore-compare``, what a plant's archive still caught them on:
a CSV cell a spreadsheet ran as a formula, ``--concurrency`` without ``--ray`` ignored without
a word, a file browser's ``.thumbnails`` scored as parts, GIFs the station judges never
rescored, and a comparison a CI job could not gate on (it always exited 0). Fake models
(tests/scale/fake_rescore.py: score = mean brightness), no Ray."""
from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import pytest

pytest.importorskip("pyarrow", reason="Parquet output needs pyarrow: pip install 'lineguard[scale]'")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scale"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from cli_runner import run_in_process  # noqa: E402
from fake_inspector import FakeInspector, png_bytes  # noqa: E402
from fake_rescore import load_fake  # noqa: E402

# cells a spreadsheet runs as formulas when a quality engineer opens the CSV
FORMULAS = ('=HYPERLINK("http://example.invalid/x","open").png', "+cmd.png", "-x.png", "@x.png")


@pytest.fixture
def fake_models(monkeypatch):
    from lineguard.vision.inspector import Inspector
    monkeypatch.setattr(Inspector, "load", staticmethod(load_fake))


def _archive(root: Path, n: int = 3) -> Path:
    (root / "day").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / "day" / f"part-{i:03d}.png").write_bytes(png_bytes(60, seed=i))
    return root


def _model(path: Path, threshold: float = 0.5, version: str = "v1", review: float | None = None) -> Path:
    path.write_bytes(FakeInspector(threshold, version, review_threshold=review).to_bytes())
    return path


def _rows(out: Path) -> list[dict]:
    import pyarrow.parquet as pq
    return [r for p in sorted(out.glob("part-*.parquet")) for r in pq.read_table(p).to_pylist()]


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# 1. CSV cells that a spreadsheet would run


def test_rescore_csv_writes_formula_text_as_text_and_numbers_as_numbers(tmp_path, fake_models):
    # a model version is free text (`lineguard train --version`): one like a formula ran in Excel
    version = '=HYPERLINK("http://example.invalid/x","v2")'
    model = _model(tmp_path / "m.json", 0.5, version)
    r = run_in_process("rescore", "--model", model, "--images", _archive(tmp_path / "arch"),
                       "--out", tmp_path / "rs.parquet", "--csv", tmp_path / "rs.csv")
    assert r.returncode == 0, r.stderr
    rows = _csv(tmp_path / "rs.csv")
    assert len(rows) == 3 and {x["model_version"] for x in rows} == {"'" + version}, rows
    for x in rows:
        float(x["score"])                          # a number, not text with an apostrophe
        assert x["path"].startswith("/") and x["verdict"] == "OK", x
    with open(tmp_path / "rs.csv", encoding="utf-8") as f:
        assert '"' + version.replace('"', '""') + '"' not in f.read()     # no bare formula cell anywhere

    # a results folder whose rows name files by relative path (written by another tool into
    # the same layout): each path cell that starts like a formula is shown as text
    import pyarrow as pa
    from lineguard.line.scale.rescore import ResultsFolder, _schema, write_csv
    out = tmp_path / "other.parquet"
    table = pa.Table.from_pylist(
        [dict(path=p, size=1, mtime_ns=1, sha256="ab" * 32, score=-0.25, verdict="OK", threshold=0.5,
              n_regions=0, model_id="m", model_version="v1", error=None, scored_at=1.0,
              photo_issues=["-dark"] if i == 0 else None) for i, p in enumerate(FORMULAS)], schema=_schema())
    ResultsFolder(out).write(table)
    assert write_csv(out, tmp_path / "other.csv") == 4
    rows = _csv(tmp_path / "other.csv")
    assert sorted(x["path"] for x in rows) == sorted("'" + p for p in FORMULAS), rows
    assert {x["score"] for x in rows} == {"-0.25"}, rows      # a negative number stays a number
    assert sorted(x["photo_issues"] for x in rows) == ["", "", "", "'-dark"], rows
    assert {x["error"] for x in rows} == {""}, rows            # an empty cell stays empty


def test_rescore_csv_needs_no_station_database_libraries(tmp_path, fake_models, monkeypatch):
    # lineguard[edge,scale] has no SQLAlchemy: --csv wrote nothing, after the night's scoring
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)
    for name in [m for m in sys.modules if m.startswith(("lineguard.line.part_records", "lineguard.line.orm"))]:
        monkeypatch.delitem(sys.modules, name)
    r = run_in_process("rescore", "--model", _model(tmp_path / "m.json", 0.5, "=v2"), "--images",
                       _archive(tmp_path / "arch"), "--out", tmp_path / "rs.parquet", "--csv", tmp_path / "rs.csv")
    assert r.returncode == 0, r.stderr
    assert {x["model_version"] for x in _csv(tmp_path / "rs.csv")} == {"'=v2"}


def test_rescore_compare_csv_writes_formula_text_as_text(tmp_path):
    import pyarrow as pa
    from lineguard.line.scale.compare_runs import compare_runs, write_changed_csv

    def table(model: str, verdict: str, score: float) -> pa.Table:
        n = len(FORMULAS)
        return pa.table({"path": list(FORMULAS), "sha256": [f"{i}-sha" for i in range(n)],
                         "score": [score] * n, "verdict": [verdict] * n, "model_id": [model] * n,
                         "error": pa.nulls(n, pa.string()), "threshold": [0.5] * n, "scored_at": [1.0] * n})

    cmp = compare_runs(table("m1", "OK", -0.5), table("m2", "NG", 0.9))
    assert write_changed_csv(cmp, tmp_path / "changed.csv") == 4
    rows = _csv(tmp_path / "changed.csv")
    assert sorted(x["path"] for x in rows) == sorted("'" + p for p in FORMULAS), rows
    assert all(x["old_path"] == x["path"] for x in rows), rows
    assert {(x["old_score"], x["new_score"], x["old_error"]) for x in rows} == {("-0.5", "0.9", "")}, rows


# 2. --concurrency without --ray


@pytest.mark.parametrize("n", ["8", "2"])       # 2 is the default: given, it is still a Ray setting
def test_concurrency_without_ray_is_refused_before_any_work(tmp_path, fake_models, n):
    out = tmp_path / "rs.parquet"
    r = run_in_process("rescore", "--model", _model(tmp_path / "m.json"), "--images", _archive(tmp_path / "arch"),
                       "--out", out, "--concurrency", n)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert f"--concurrency {n}" in r.stderr and "--ray" in r.stderr and "drop --concurrency" in r.stderr, r.stderr
    assert not out.exists()
    # left out, one process scores as before
    r = run_in_process("rescore", "--model", _model(tmp_path / "m.json"), "--images", tmp_path / "arch", "--out", out)
    assert r.returncode == 0 and "single process" in r.stdout, r.stderr


# 3. hidden folders


def _with_hidden_folders(root: Path) -> Path:
    _archive(root, 3)
    for rel in (".thumbnails/normal/part-000.png", ".thumbnails/normal/part-001.png",
                "day/.Trash-1000/files/part-009.png", "day/.Trash-1000/info/part-009.png.trashinfo",
                ".@__thumb/part-002.jpg"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(png_bytes(200, seed=len(rel)) if rel.endswith((".png", ".jpg")) else b"x")
    return root


def test_files_in_hidden_folders_are_not_scored_and_are_counted(tmp_path, fake_models):
    archive = _with_hidden_folders(tmp_path / "arch")
    out = tmp_path / "rs.parquet"
    r = run_in_process("rescore", "--model", _model(tmp_path / "m.json"), "--images", archive, "--out", out)
    assert r.returncode == 0, r.stderr
    paths = sorted(Path(x["path"]).relative_to(archive.resolve()).as_posix() for x in _rows(out))
    assert paths == ["day/part-000.png", "day/part-001.png", "day/part-002.png"], paths
    assert "5 files in hidden folders not scored" in r.stderr, r.stderr
    for folder in (".thumbnails (2)", "day/.Trash-1000 (2)", ".@__thumb (1)"):
        assert folder in r.stderr, (folder, r.stderr)
    assert "trashinfo" not in r.stderr and "not read" not in r.stderr, r.stderr   # counted once, as hidden

    # the listing itself, as the library's callers use it
    from lineguard.line.scale.rescore import list_archive
    hidden: list[str] = []
    assert len(list_archive(archive, hidden=hidden)) == 3 and len(hidden) == 5
    # a glob that names a hidden folder is what its user asked for: listed
    assert len(list_archive(str(archive / ".thumbnails" / "**" / "*.png"))) == 2


def test_an_archive_of_hidden_folders_only_says_so(tmp_path):
    from lineguard.line.scale.rescore import list_archive
    from lineguard.vision.errors import DatasetError
    (tmp_path / "arch" / ".thumbnails").mkdir(parents=True)
    (tmp_path / "arch" / ".thumbnails" / "part-000.png").write_bytes(png_bytes(60, seed=1))
    with pytest.raises(DatasetError) as err:
        list_archive(tmp_path / "arch")
    assert "no images found" in str(err.value) and "1 file in hidden folders not scored: .thumbnails (1)" \
        in str(err.value), str(err.value)


def test_hidden_folders_of_an_object_store_archive_are_not_scored():
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    for rel in ("day/part-000.png", ".thumbnails/part-000.png", "day/.Trash-1000/files/part-001.png"):
        fs.pipe(f"/lg-h1-arch/{rel}", png_bytes(60, seed=1))
    try:
        from lineguard.line.scale.rescore import list_archive
        listed = list_archive("memory://lg-h1-arch/")
        assert [a.path.rsplit("/lg-h1-arch/", 1)[1] for a in listed] == ["day/part-000.png"], listed
        hidden: list[str] = []
        list_archive("memory://lg-h1-arch/", hidden=hidden)
        assert sorted(h.rsplit("/lg-h1-arch/", 1)[1] for h in hidden) == [
            ".thumbnails/part-000.png", "day/.Trash-1000/files/part-001.png"], hidden
    finally:
        fs.rm("/lg-h1-arch", recursive=True)


# 4. GIF


def test_gif_photos_are_scored_as_the_station_judges_them(tmp_path, fake_models):
    from PIL import Image
    archive = _archive(tmp_path / "arch", 2)
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (230, 230, 230)).save(buf, format="GIF")     # bright: NG under the fake
    (archive / "day" / "part-gif.gif").write_bytes(buf.getvalue())
    out = tmp_path / "rs.parquet"
    r = run_in_process("rescore", "--model", _model(tmp_path / "m.json"), "--images", archive, "--out", out)
    assert r.returncode == 0, r.stderr
    gif = [x for x in _rows(out) if x["path"].endswith(".gif")]
    assert len(gif) == 1 and gif[0]["error"] is None and gif[0]["verdict"] == "NG", gif
    assert "GIF" not in r.stderr and "scored 3 images" in r.stdout, (r.stdout, r.stderr)


# 5. rescore-compare --fail-if-changed


def _two_runs(tmp_path: Path, v2_threshold: float) -> tuple[Path, Path]:
    from lineguard.line.scale.rescore import rescore
    archive = tmp_path / "arch"
    archive.mkdir()
    for i, value in enumerate((30, 100, 150)):          # brightness 0.12, 0.39, 0.59
        (archive / f"part-{i}.png").write_bytes(png_bytes(value, seed=i))
    rescore(_model(tmp_path / "v1.json", 0.5, "v1", 0.45), archive, tmp_path / "rs-v1.parquet")
    rescore(_model(tmp_path / "v2.json", v2_threshold, "v2", v2_threshold - 0.05), archive, tmp_path / "rs-v2.parquet")
    return tmp_path / "rs-v1.parquet", tmp_path / "rs-v2.parquet"


def test_fail_if_changed_exits_1_after_the_report_and_the_csv(tmp_path, fake_models):
    old, new = _two_runs(tmp_path, 0.35)                # part-1: OK -> NG
    r = run_in_process("rescore-compare", old, new, "--csv", tmp_path / "changed.csv", "--fail-if-changed")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "changed: 1 of 3" in r.stdout and "wrote the 1 changed parts" in r.stdout, r.stdout
    assert [Path(x["path"]).name for x in _csv(tmp_path / "changed.csv")] == ["part-1.png"]
    assert "--fail-if-changed" in r.stderr, r.stderr
    # without the flag: a report, exit 0 as before
    assert run_in_process("rescore-compare", old, new).returncode == 0
    assert "--fail-if-changed" in run_in_process("rescore-compare", "--help").stdout


def test_fail_if_changed_exits_0_when_no_verdict_changed(tmp_path, fake_models):
    old, new = _two_runs(tmp_path, 0.55)                # thresholds move, no verdict does
    r = run_in_process("rescore-compare", old, new, "--fail-if-changed")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "changed: 0 of 3" in r.stdout, r.stdout
