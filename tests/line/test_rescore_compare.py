"""``lineguard rescore-compare OLD NEW``: what a new model version would change on an archive.

An engineer re-scoring an archive with v2 could compare it only with the live inspections
(``compare_live``); learning that 49 of 2,041 verdicts would move (OK->REVIEW 40 ...) took
joining the two Parquet folders in pandas. Two small results folders are made here by the
local (no Ray) rescore with two fake models (tests/scale/fake_rescore.py: score = mean
brightness), whose thresholds differ."""
from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("pyarrow", reason="Parquet output needs pyarrow: pip install 'lineguard[scale]'")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scale"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from cli_runner import run_in_process  # noqa: E402
from fake_inspector import FakeInspector, png_bytes  # noqa: E402
from fake_rescore import load_fake  # noqa: E402

# brightness -> (v1's verdict, v2's): v1 NG above 0.5, REVIEW above 0.4; v2 NG above 0.35, REVIEW above 0.2
PARTS = {"a-dark": 30,         # 0.12: OK, OK
         "b-grey": 60,         # 0.24: OK, REVIEW
         "c-mid": 100,         # 0.39: OK, NG      (two steps: the most changed)
         "d-light": 115,       # 0.45: REVIEW, NG
         "e-bright": 150}      # 0.59: NG, NG


@pytest.fixture
def fake_models(monkeypatch):
    from lineguard.vision.inspector import Inspector
    monkeypatch.setattr(Inspector, "load", staticmethod(load_fake))


def _archive(root: Path) -> Path:
    (root / "day").mkdir(parents=True, exist_ok=True)
    for i, (name, value) in enumerate(PARTS.items()):
        (root / "day" / f"{name}.png").write_bytes(png_bytes(value, seed=i))
    (root / "day" / "z-broken.png").write_bytes(b"not a png at all")      # unreadable by both
    return root


def _models(tmp_path: Path) -> tuple[Path, Path]:
    v1, v2 = tmp_path / "v1.json", tmp_path / "v2.json"
    v1.write_bytes(FakeInspector(0.5, "v1", review_threshold=0.4).to_bytes())
    v2.write_bytes(FakeInspector(0.35, "v2", review_threshold=0.2).to_bytes())
    return v1, v2


def _two_runs(tmp_path: Path) -> tuple[Path, Path, Path]:
    from lineguard.line.scale.rescore import rescore
    v1, v2 = _models(tmp_path)
    archive = _archive(tmp_path / "arch")
    rescore(v1, archive, tmp_path / "rs-v1.parquet")
    (archive / "day" / "f-new.png").write_bytes(png_bytes(40, seed=99))   # photographed after v1's run
    rescore(v2, archive, tmp_path / "rs-v2.parquet")
    return tmp_path / "rs-v1.parquet", tmp_path / "rs-v2.parquet", archive


def test_two_model_versions_compared_on_one_archive(tmp_path, fake_models):
    old, new, archive = _two_runs(tmp_path)
    r = run_in_process("rescore-compare", old, new, "--csv", tmp_path / "changed.csv")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    out = r.stdout
    assert "model v1" in out and "model v2" in out, out
    assert "in both: 6 images, joined by path; only in old: 0, only in new: 1" in out, out
    assert "f-new.png" in r.stderr                                      # named, on stderr
    # the transition table: rows old, columns new, each count where it belongs
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("verdicts, old"))
    columns = lines[head + 1].split()
    table = {cells[0]: dict(zip(columns, map(int, cells[1:]))) for cells in
             (line.split() for line in lines[head + 2:head + 2 + len(columns)])}
    assert columns == ["OK", "REVIEW", "NG", "error"], lines[head + 1]
    assert table["OK"] == {"OK": 1, "REVIEW": 1, "NG": 1, "error": 0}, table
    assert table["REVIEW"] == {"OK": 0, "REVIEW": 0, "NG": 1, "error": 0}, table
    assert table["NG"]["NG"] == 1 and table["error"]["error"] == 1, table
    assert "changed: 3 of 6 (50.0%): OK->NG 1, OK->REVIEW 1, REVIEW->NG 1" in out, out
    # most changed first: OK->NG crosses two verdict steps
    listed = [line for line in lines if line.startswith("  ") and "score" in line]
    assert len(listed) == 3 and "OK->NG" in listed[0] and "c-mid.png" in listed[0], listed
    assert "0.39" in listed[0] and str(archive / "day") in listed[0], listed[0]
    # unreadable in either: said, with why
    assert "z-broken.png" in r.stderr and "unreadable" in r.stderr, r.stderr
    with open(tmp_path / "changed.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    # one step each after it, the larger move in thresholds first (0.45: 0.90 -> 1.29 of NG; 0.24: 0.47 -> 0.67)
    assert [(Path(x["path"]).name, x["old_verdict"], x["new_verdict"]) for x in rows] == [
        ("c-mid.png", "OK", "NG"), ("d-light.png", "REVIEW", "NG"), ("b-grey.png", "OK", "REVIEW")], rows
    assert all(x["joined_by"] == "path" and x["old_score"] and x["new_score"] for x in rows), rows
    assert "wrote the 3 changed parts" in out
    # --list 1: one part shown, and how to see more
    r = run_in_process("rescore-compare", old, new, "--list", "1")
    assert r.returncode == 0
    assert len([line for line in r.stdout.splitlines() if line.startswith("  OK->") or
                line.startswith("  REVIEW->")]) == 1 and "1 of 3; --list N for more" in r.stdout, r.stdout


def test_an_archive_moved_between_the_runs_is_joined_by_sha256(tmp_path, fake_models):
    from lineguard.line.scale.compare_runs import compare_runs
    from lineguard.line.scale.rescore import rescore
    v1, v2 = _models(tmp_path)
    rescore(v1, _archive(tmp_path / "arch"), tmp_path / "rs-v1.parquet")
    shutil.move(tmp_path / "arch", tmp_path / "mounted-elsewhere")
    rescore(v2, tmp_path / "mounted-elsewhere", tmp_path / "rs-v2.parquet")
    cmp = compare_runs(tmp_path / "rs-v1.parquet", tmp_path / "rs-v2.parquet")
    assert (cmp.both, cmp.by_path, cmp.by_sha256, cmp.only_old, cmp.only_new) == (6, 0, 6, [], [])
    assert "SHA-256" in cmp.joined_by
    assert len(cmp.changed) == 3 and cmp.changed[0].old_path != cmp.changed[0].new_path
    assert cmp.changed[0].joined_by == "sha256" and cmp.changed[0].new_path.endswith("c-mid.png")
    r = run_in_process("rescore-compare", tmp_path / "rs-v1.parquet", tmp_path / "rs-v2.parquet")
    assert r.returncode == 0 and "joined by SHA-256" in r.stdout and "(was " in r.stdout, r.stdout


def test_what_cannot_be_compared_is_refused_in_words(tmp_path, fake_models):
    from lineguard.line.scale.rescore import rescore
    old, new, _ = _two_runs(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "results.csv").write_text("path,verdict\n")
    other = tmp_path / "other"
    other.mkdir()
    (other / "part-0.parquet").write_text("not parquet")

    def refused(*args: object) -> str:
        r = run_in_process("rescore-compare", *args)
        assert r.returncode == 2 and "Traceback" not in r.stderr, (args, r.stderr)
        return r.stderr

    assert "not a rescore results folder" in refused(tmp_path / "empty", new)
    assert "is a file" in refused(old, tmp_path / "results.csv")
    assert "no such folder" in refused(old, tmp_path / "nowhere.parquet")
    assert "rescore results folder" in refused(old, other)
    said = refused(new, new)
    assert "same model" in said and "nothing to compare" in said, said
    # two folders of one model (the same archive scored twice): nothing to compare either
    v1 = tmp_path / "v1.json"
    rescore(v1, tmp_path / "arch", tmp_path / "rs-v1-again.parquet")
    assert "same model" in refused(old, tmp_path / "rs-v1-again.parquet")
    # another archive altogether: nothing matches by path or by bytes
    another = tmp_path / "another"
    (another).mkdir()
    (another / "x.png").write_bytes(png_bytes(70, seed=1234))
    rescore(tmp_path / "v2.json", another, tmp_path / "rs-another.parquet")
    said = refused(old, tmp_path / "rs-another.parquet")
    assert "same archive" in said and "SHA-256" in said, said
    r = run_in_process("rescore-compare", old, new, "--csv", tmp_path / "changed.xlsx")
    assert r.returncode == 2 and "name it .csv" in r.stderr


def test_tables_compare_without_folders_and_a_path_scored_twice_keeps_its_newest_row():
    import pyarrow as pa
    from lineguard.line.scale.compare_runs import compare_runs

    def table(model: str, rows: list[tuple[str, str, float, float]]) -> pa.Table:
        return pa.table({"path": [r[0] for r in rows], "sha256": [r[0] + "-sha" for r in rows],
                         "score": [r[2] for r in rows], "verdict": [r[1] for r in rows],
                         "model_id": [model] * len(rows), "error": pa.nulls(len(rows), pa.string()),
                         "threshold": [0.5] * len(rows), "scored_at": [r[3] for r in rows]})

    old = table("m1", [("/a/1.png", "OK", 0.1, 1.0), ("/a/2.png", "NG", 0.9, 1.0), ("/a/2.png", "OK", 0.2, 2.0)])
    new = table("m2", [("/a/1.png", "NG", 0.8, 5.0), ("/a/2.png", "OK", 0.2, 5.0)])
    cmp = compare_runs(old, new)
    assert cmp.both == 2 and cmp.transitions == {("OK", "NG"): 1, ("OK", "OK"): 1}, cmp.transitions
    assert [c.new_path for c in cmp.changed] == ["/a/1.png"]
