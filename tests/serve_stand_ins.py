"""`lineguard serve` run in-process up to the PLC links and camera it starts, for tests that
look at what it starts: no station opened (a stand-in that loads nothing), no web server, the
links released at once. Each test gives its own stand-ins for the links and the camera."""
from __future__ import annotations

import os


class FakeStation:
    """What serve opens instead of a station: nothing to load, nothing to close."""
    faults: dict = {}

    def load_active_models(self):
        pass

    def close(self):
        pass


def serve_without_a_station(monkeypatch) -> None:
    """Patch serve so, with the LINEGUARD_* variables of the test's environment cleared (each
    test sets its own)."""
    import lineguard.cli.station as cli_station
    import lineguard.server.app as server_app
    for var in [v for v in os.environ if v.upper().startswith("LINEGUARD_")]:
        monkeypatch.delenv(var)
    monkeypatch.setattr(server_app, "open_station", lambda cfg, *a, **kw: FakeStation())
    monkeypatch.setattr(server_app, "run_server", lambda *a, **kw: None)
    monkeypatch.setattr(server_app, "create_app", lambda *a, **kw: None)
    monkeypatch.setattr(cli_station, "_release_plcs_when_up", lambda *a, **kw: None)
