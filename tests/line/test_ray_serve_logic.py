"""The Ray Serve station's own logic, without Ray: which model the scoring route uses
after an activation, and the settings refused before anything starts."""
from __future__ import annotations

import socket

import pytest

from lineguard.server.ray_serve import ProductModel, port_problem, replicas_problem


class _Models:
    """The registry as ProductModel asks it: the active version, and its loaded model."""

    def __init__(self) -> None:
        self.active = {"cell": "v1"}
        self.loaded = {"v1": object(), "v2": object()}

    def active_for(self, product: str, line: str) -> str:
        return self.active[product]

    def inspector(self, mv: str) -> object:
        return self.loaded[mv]


class _Station:
    def __init__(self) -> None:
        self.models = _Models()


def test_the_scoring_route_follows_the_active_version():
    # Serve keeps the ProductModel for as long as the replica serves the product: it kept
    # v1's loaded model and scored with it after v2 was activated (and after a rollback)
    station = _Station()
    pm = ProductModel(station, "cell")
    assert pm.current() is station.models.loaded["v1"]
    station.models.active["cell"] = "v2"          # an engineer activates v2
    assert pm.current() is station.models.loaded["v2"]
    station.models.active["cell"] = "v1"          # and rolls back
    assert pm.current() is station.models.loaded["v1"]


def test_more_replicas_than_cpus_is_refused_with_the_number_that_fits():
    # the docs' 4 replicas on a 2-core PC: serve.run waited for CPUs for ever
    why = replicas_problem(4, 2.0)
    assert why is not None and "--replicas 2 or fewer" in why and "has 2" in why
    assert replicas_problem(2, 2.0) is None
    assert "at least 1" in replicas_problem(0, 2.0)


def test_a_taken_port_is_said_before_ray_starts():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        why = port_problem("127.0.0.1", port)
        assert why is not None and f"127.0.0.1:{port}" in why and "--port" in why
    assert port_problem("127.0.0.1", port) is None     # free again once its holder closed it


def test_a_station_database_that_does_not_answer_is_said_before_ray_starts():
    # replicas failed to open it inside Serve's retries: 20 s, then "Failed to update the
    # deployments" with the cause only in the replicas' tracebacks
    from lineguard.line.config import StationConfig
    from lineguard.server.ray_serve import database_problem
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]        # nothing listens on it
    why = database_problem(StationConfig(db_url=f"postgresql://postgres@127.0.0.1:{port}/plant"))
    assert why is not None and f"127.0.0.1:{port}" in why and "--db" in why


def test_more_replicas_than_a_private_ray_has_cpus_is_refused_before_ray_starts(tmp_path, monkeypatch):
    """serve-ray --replicas 3 on a 2-core PC was refused only once its private Ray had
    started (12 s, and Ray's warnings); the README says before."""
    import lineguard.line.scale as scale
    from lineguard.line.config import StationConfig
    from lineguard.server.ray_serve import run_station

    def started(*_a, **_k):
        raise AssertionError("a private Ray was started for a setting known to be refused")
    monkeypatch.setattr(scale, "connect", started)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ValueError, match="--replicas 3: each replica takes one CPU and this Ray has 2"):
        run_station(StationConfig(data_dir=tmp_path / "st"), ray_address="local", num_cpus=2, port=port,
                    num_replicas=3)
