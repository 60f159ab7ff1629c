"""``lineguard rescore`` when something around it is wrong: a Ray address where nothing
answers, a results folder that cannot be written, a resume of another archive, a typo in
--images, a dangling link. Each is said in one line, before anything is scored or written
where it can be, and leaves nothing half-done. Fake models (tests/scale/fake_rescore.py);
no Ray cluster is started (the connect tests stand in for ``ray.init``)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pyarrow", reason="Parquet output needs pyarrow: pip install 'lineguard[scale]'")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from fake_inspector import FakeInspector, png_bytes  # noqa: E402


FAKE_CLI = str(Path(__file__).with_name("fake_rescore.py"))


def _archive(root: Path, n: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / f"part-{i:03d}.png").write_bytes(png_bytes(60, seed=i))
    return root


def _model(path: Path) -> Path:
    path.write_bytes(FakeInspector(0.2, "rescore-v2").to_bytes())
    return path



def _closed_port() -> int:
    """A local port nothing listens on (bound, then let go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _runs(url: str) -> list:
    from sqlalchemy import select
    from lineguard.line.db import Database
    from lineguard.line.orm import RescoreRun
    db = Database(url)
    try:
        with db.session() as s:
            return [(r.id, r.images, r.listed, r.finished_at) for r in s.scalars(select(RescoreRun))]
    finally:
        db.dispose()


def test_an_unreachable_ray_address_is_refused_before_anything_is_written(tmp_path, fake_models, monkeypatch):
    """ray.init on an address where nothing answered retried for ever, after the results
    folder was locked and the station database run row made; now a TCP probe says so first."""
    from lineguard.line.scale import RayUnreachable
    from lineguard.line.scale import rescore as rescore_mod
    from lineguard.line.scale.rescore_db import StationRecorder

    def hangs(*_a, **_kw):      # what ray.init did there: never returned
        raise AssertionError("ray.init was tried on an address nothing answers at (it hung there)")
    monkeypatch.setattr(rescore_mod, "connect", hangs)
    url = f"sqlite:///{tmp_path / 'station.db'}"
    rec = StationRecorder.open(url)
    address = f"127.0.0.1:{_closed_port()}"
    try:
        with pytest.raises(RayUnreachable) as err:
            rescore_mod.rescore(_model(tmp_path / "m.json"), _archive(tmp_path / "archive", 3),
                                tmp_path / "r.parquet", ray_address=address, recorder=rec)
    finally:
        rec.close()
    assert address in str(err.value) and "ray start --head" in str(err.value)
    assert not (tmp_path / "r.parquet").exists(), "nothing written for a run that cannot start"
    assert _runs(url) == [], "no run row left unfinished"


def test_cli_says_which_ray_address_cannot_be_reached(tmp_path):
    pytest.importorskip("ray", reason="--ray needs Ray: pip install 'lineguard[scale]'")
    address = f"127.0.0.1:{_closed_port()}"
    r = subprocess.run([sys.executable, FAKE_CLI, "rescore", "--model", str(_model(tmp_path / "m.json")),
                        "--images", str(_archive(tmp_path / "archive", 3)), "--out", str(tmp_path / "r.parquet"),
                        "--ray", address], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert f"cannot reach the Ray cluster at {address}" in r.stderr and "Traceback" not in r.stderr


@pytest.fixture
def unwritable(tmp_path):
    """Make a folder unwritable, as root too (immutable: chattr +i), and undo it after."""
    made: list[Path] = []

    def make(folder: Path) -> Path:
        if os.geteuid() == 0:
            r = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
            if r.returncode != 0:
                pytest.skip("root, and chattr +i is not allowed here: no folder root cannot write")
        else:
            folder.chmod(0o555)
        made.append(folder)
        return folder
    yield make
    for folder in made:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
        folder.chmod(0o755)


def test_a_results_folder_that_cannot_be_written_is_refused_before_scoring(tmp_path, unwritable):
    """It scored a whole chunk first, then ended in a pyarrow PermissionError traceback."""
    archive = _archive(tmp_path / "archive", 4)
    model = _model(tmp_path / "m.json")
    out = tmp_path / "r.parquet"
    cmd = [sys.executable, FAKE_CLI, "rescore", "--model", str(model), "--images", str(archive), "--out", str(out)]
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=120).returncode == 0
    (archive / "part-new.png").write_bytes(png_bytes(60, seed=99))     # one image left to score
    unwritable(out)
    r = subprocess.run(cmd + ["--chunk-rows", "1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "cannot write in the results folder" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert "rescored" not in r.stderr, "nothing scored for a folder that cannot take it"


def test_an_out_that_cannot_be_made_is_one_line_not_a_traceback(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    r = subprocess.run([sys.executable, FAKE_CLI, "rescore", "--model", str(_model(tmp_path / "m.json")),
                        "--images", str(_archive(tmp_path / "archive", 2)),
                        "--out", str(tmp_path / "a-file" / "r.parquet")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "cannot write the results folder" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_part_that_cannot_be_written_mid_run_says_how_to_go_on(tmp_path, fake_models, disk_full_after_one_part):
    """A full disk mid-run: the parts before stand, the message says to free space and resume."""
    from lineguard.line.scale.rescore import RescoreStopped, rescore
    from lineguard.vision.errors import LineguardError
    archive, out, model = _archive(tmp_path / "archive", 6), tmp_path / "r.parquet", _model(tmp_path / "m.json")
    with pytest.raises(LineguardError) as err:
        rescore(model, archive, out, chunk_rows=2, batch_size=2)
    assert isinstance(err.value, RescoreStopped)
    assert "No space left" in str(err.value) and "run the same command again" in str(err.value)
    disk_full_after_one_part()                  # room again
    again = rescore(model, archive, out, chunk_rows=2, batch_size=2)
    assert again.skipped == 2 and again.scored == 4


def test_a_resume_of_another_archive_is_refused_and_the_run_keeps_its_record(tmp_path, fake_models, monkeypatch):
    """A no-op resume with one day's folder rewrote a 24,005-image run's archive, listed count
    and mode; and the archive was stored as typed (relative), meaningless from elsewhere."""
    from lineguard.line.scale.rescore import rescore
    from lineguard.line.scale.rescore_db import StationRecorder
    from lineguard.vision.errors import DatasetError
    archive = _archive(tmp_path / "archive" / "2026-11-01", 3).parent
    _archive(archive / "2026-11-02", 2)
    model, url = _model(tmp_path / "m.json"), f"sqlite:///{tmp_path / 'station.db'}"
    monkeypatch.chdir(tmp_path)
    rec = StationRecorder.open(url)
    try:
        rescore(model, "archive", "r.parquet", recorder=rec)
        [(run_id, images, listed, finished)] = _runs(url)
        assert images == str(tmp_path / "archive") and listed == 5 and finished is not None
        said: list[tuple] = []
        with pytest.raises(DatasetError, match="give --images .*archive to resume it"):
            rescore(model, "archive/2026-11-01", "r.parquet", recorder=rec, progress=lambda *a: said.append(a))
        assert _runs(url) == [(run_id, images, 5, finished)], "the run's record is as its first run left it"
        # no "resume: 3 of 3 ... skipped" before the refusal: it read as a resume that was not
        assert not [a for a in said if a[0] == "resume"], said
        monkeypatch.chdir(tmp_path / "archive")      # the same archive, named from elsewhere: resumed
        summary = rescore(model, str(tmp_path / "archive"), tmp_path / "r.parquet", recorder=rec,
                          progress=lambda *a: said.append(a))
        assert summary.skipped == 5 and _runs(url)[0][1] == images
        assert ("resume", 5, 5) in said, said
    finally:
        rec.close()


def test_a_typo_in_images_leaves_no_results_folder(tmp_path, fake_models):
    from lineguard.line.scale.rescore import rescore
    from lineguard.vision.errors import DatasetError
    _archive(tmp_path / "archive", 2)
    with pytest.raises(DatasetError, match="no images found"):
        rescore(_model(tmp_path / "m.json"), str(tmp_path / "archvie" / "*.png"), tmp_path / "r.parquet")
    assert not (tmp_path / "r.parquet").exists()


def test_a_dangling_link_is_listed_as_left_out(tmp_path):
    from lineguard.line.scale.rescore import list_archive
    archive = _archive(tmp_path / "archive", 2)
    (archive / "moved.png").symlink_to(tmp_path / "elsewhere" / "moved.png")
    for spec in (str(archive), str(archive / "*.png")):
        left_out: list[str] = []
        assert len(list_archive(spec, left_out)) == 2
        assert len(left_out) == 1 and "moved.png" in left_out[0] and "not there" in left_out[0]


def test_a_resume_says_what_it_skips_when_it_starts(tmp_path, fake_models):
    from lineguard.line.scale.rescore import rescore
    archive, out, model = _archive(tmp_path / "archive", 4), tmp_path / "r.parquet", _model(tmp_path / "m.json")
    rescore(model, archive, out)
    (archive / "part-new.png").write_bytes(png_bytes(60, seed=99))
    said: list[tuple[str, int, int]] = []
    rescore(model, archive, out, progress=lambda *a: said.append(a))
    assert said[0] == ("resume", 4, 5) and said[-1] == ("rescore", 1, 1)


# -- joining Ray: ray.init stood in for, so no cluster is started ---------------------------

@pytest.fixture
def ray_init_calls(monkeypatch):
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'lineguard[scale]'")
    if ray.is_initialized():
        pytest.skip("a Ray session is open in this process")
    calls: list[dict] = []
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return calls


def test_ray_local_starts_a_private_cluster_even_beside_a_ray_start_head(ray_init_calls, monkeypatch):
    """ray.init() with no address joined the machine's `ray start` head (or RAY_ADDRESS):
    refused with --num-cpus, run on the shared cluster without it."""
    from lineguard.line.scale import connect
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    connect("local", num_cpus=2)
    assert ray_init_calls[0]["address"] == "local" and ray_init_calls[0]["num_cpus"] == 2


def test_ray_auto_joins_only_a_ray_start_head_never_another_runs_cluster(ray_init_calls, monkeypatch):
    """Ray's own "auto" joined any raylet among the machine's processes: another user's
    private --ray local run, which took this run down when it ended."""
    import ray._private.utils as ray_utils
    from lineguard.line.scale import RayUnreachable, connect
    monkeypatch.setattr(ray_utils, "read_ray_address", lambda *_a, **_kw: None)   # no `ray start` head here
    with pytest.raises(RayUnreachable, match="no Ray cluster started with `ray start`"):
        connect("auto")
    assert ray_init_calls == []
    port = _closed_port()       # a head that died uncleanly left its address behind: said, not retried for ever
    monkeypatch.setattr(ray_utils, "read_ray_address", lambda *_a, **_kw: f"127.0.0.1:{port}")
    with pytest.raises(RayUnreachable, match=f"auto \\(127.0.0.1:{port}\\)"):
        connect("auto")
    assert ray_init_calls == []


def test_joining_ray_keeps_the_callers_sigterm_handler(ray_init_calls, monkeypatch):
    """ray.init puts its own SIGTERM handler (sys.exit) in place: `rescore --ray` stopped by
    SIGTERM ended with Ray's dump and exit 15, its run recorded as "SystemExit: 15"."""
    import signal

    import ray
    from lineguard.line.scale import connect

    def ray_init(**kw):
        ray_init_calls.append(kw)
        signal.signal(signal.SIGTERM, lambda *_a: None)     # as Ray's own does
    monkeypatch.setattr(ray, "init", ray_init)

    def ours(*_a):
        raise KeyboardInterrupt
    before = signal.signal(signal.SIGTERM, ours)
    try:
        connect("local")
        assert ray_init_calls and signal.getsignal(signal.SIGTERM) is ours
    finally:
        signal.signal(signal.SIGTERM, before)


def test_an_address_where_another_program_listens_is_refused_not_waited_on():
    """A Redis on 6379 or a web server: ray.init took the TCP connection for a head's and
    retried for ever with Ray's warnings alone (a walk: killed after 10 min), the results
    folder made and locked."""
    import time

    from silent_server import silent_server

    from lineguard.line.scale import RayUnreachable, check_reachable
    # takes connections and says nothing, as a server of another protocol
    with silent_server() as port:
        t0 = time.monotonic()
        with pytest.raises(RayUnreachable, match="answers, but not as a Ray cluster's head"):
            check_reachable(f"127.0.0.1:{port}", timeout=1.0)
    assert time.monotonic() - t0 < 10


def test_the_cli_gives_sigterm_back_once_the_run_is_over(tmp_path, fake_models):
    """A SIGTERM after the run had ended (while Ray shut down at exit) still raised the
    run's KeyboardInterrupt, in Ray's exit handler: a traceback after "scored ..."."""
    import signal

    from cli_runner import run_in_process

    def mine(*_a):
        pass
    before = signal.signal(signal.SIGTERM, mine)
    try:
        r = run_in_process("rescore", "--model", _model(tmp_path / "m.json"), "--images",
                           _archive(tmp_path / "archive", 3), "--out", tmp_path / "r.parquet")
        assert r.returncode == 0, r.stdout + r.stderr
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)
