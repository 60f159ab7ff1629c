"""How `lineguard watch` and `lineguard camera` take their station: --server or --data.

Walks: `watch ./in5 --server 127.0.0.1:18100` (no http://) started, and every part then
failed to go out ("Request URL is missing an 'http://' or 'https://' protocol"): the
watcher said the station could not take parts and retried for ever, the line's photos piling
up in the folder. `watch --data ./station --server http://...` took --server and dropped
--data without a word (the part stored with source api, by another station than meant).
And `watch --help` said of --api-key only "Operator key for --server.", where the README and
the command's own refusal say LINEGUARD_API_KEY gives it.
"""
from __future__ import annotations

import pytest
from cli_runner import run_in_process

# nothing listens here: no part is sent in these tests (the sources are stand-ins)
SERVER = "http://127.0.0.1:18599"


@pytest.fixture
def started(monkeypatch):
    """Whether the watcher or camera started; they return at once instead of running, so a
    start with settings that should have been refused ends instead of retrying for ever."""
    from lineguard.line.sources import camera as camera_mod
    from lineguard.line.sources import folder as folder_mod
    seen: list[str] = []

    class Camera:
        lost = 0

        def __init__(self, source, submit, station_name, **kw):
            seen.append("camera")

        def run_free(self, max_parts=None):
            pass

        def close(self):
            pass

        def summary(self):
            return "0 frames"

    monkeypatch.setattr(folder_mod.FolderWatcher, "run", lambda self, stop_after=None: seen.append("watch"))
    monkeypatch.setattr(camera_mod, "CameraSource", Camera)
    return seen


def _command(verb: str, tmp_path, *args) -> list:
    inbox = tmp_path / "in5"
    inbox.mkdir(exist_ok=True)
    where = [inbox] if verb == "watch" else ["--source", "0"]
    return [verb, *where, "--line", "L1", "--product", "cell", *args]


@pytest.mark.parametrize("verb", ["watch", "camera"])
def test_a_server_address_without_http_is_refused_at_start(tmp_path, started, verb):
    r = run_in_process(*_command(verb, tmp_path, "--server", "127.0.0.1:18100", "--api-key", "KEY"), cwd=tmp_path)
    # before: it started, and every part waited in the folder (or every frame was lost)
    assert r.returncode == 2 and not started, r.stdout + r.stderr
    errors = [x for x in r.stderr.splitlines() if x.strip()]
    assert errors == ["error: --server '127.0.0.1:18100' is not a station's address: write it as "
                      "http://127.0.0.1:18100 (or https://127.0.0.1:18100 for a station behind https)"], r.stderr
    # written as said, it starts: the refusal is for addresses no station has
    r = run_in_process(*_command(verb, tmp_path, "--server", SERVER + "/", "--api-key", "KEY"),
                       cwd=tmp_path)
    assert r.returncode == 0 and started == [verb], r.stdout + r.stderr


@pytest.mark.parametrize("server", ["http://:18599", "http://127.0.0.1:0", "http://127.0.0.1:99999",
                                    "ftp://127.0.0.1:18599", "http://127.0.0.1 :18599"])
def test_a_server_address_no_station_can_have_is_refused_at_start(tmp_path, started, server):
    r = run_in_process(*_command("watch", tmp_path, "--server", server, "--api-key", "KEY"), cwd=tmp_path)
    assert r.returncode == 2 and not started, r.stdout + r.stderr
    assert "is not a station's address: write it as http://HOST:PORT" in r.stderr, r.stderr


@pytest.mark.parametrize("verb", ["watch", "camera"])
@pytest.mark.parametrize("here", [["--data", "station"], ["--db", "sqlite:///x.db"],
                                  ["--data", "station", "--db-schema", "line1"]])
def test_server_and_a_station_in_this_process_together_are_refused(tmp_path, started, verb, here):
    r = run_in_process(*_command(verb, tmp_path, *here, "--server", SERVER, "--api-key", "KEY"), cwd=tmp_path)
    # before: --server taken, --data dropped without a word (the part stored by the server, source api)
    assert r.returncode == 2 and not started, r.stdout + r.stderr
    given = "--server and " + ", ".join(a for a in here if a.startswith("--"))
    assert f"error: {given} given: --server sends the parts to a station server, --data inspects them in this " \
           "process; give one" in r.stderr, r.stderr


@pytest.mark.parametrize("verb", ["watch", "camera"])
def test_help_names_the_variable_that_gives_the_operator_key(verb):
    r = run_in_process(verb, "--help")
    assert r.returncode == 0, r.stderr
    # before: "Operator key for --server." (watch) and nothing at all (camera)
    assert "--api-key TEXT Operator key for --server. [env: LINEGUARD_API_KEY]" in " ".join(r.stdout.split()), \
        r.stdout
