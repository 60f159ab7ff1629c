"""A fixture for tests of a model that does not answer in time, shared by the server's and the
sources' tests (imported as fake_inspector is: tests/server is on sys.path for both)."""
from __future__ import annotations

import threading

import pytest
from fake_inspector import FakeInspector


@pytest.fixture
def stuck_model(monkeypatch):
    """The station's models hang, once ``gate.armed`` is set, until the returned gate is set;
    their wait is 0.3 s. Armed after the station opens: a part judged while it starts (its
    model's first run) waited the hang's whole 10 s."""
    from lineguard.line import station as station_mod
    from lineguard.line.batcher import ModelBatcher
    gate = threading.Event()
    gate.armed = threading.Event()

    class ShortWait(ModelBatcher):
        def __init__(self, *args, **kw):
            kw["timeout_s"] = 0.3
            super().__init__(*args, **kw)

    inspect = FakeInspector.inspect

    def hangs(self, image, *a, **kw):
        if gate.armed.is_set():
            gate.wait(10)
        return inspect(self, image, *a, **kw)

    monkeypatch.setattr(station_mod, "ModelBatcher", ShortWait)
    monkeypatch.setattr(FakeInspector, "inspect", hangs)
    yield gate
    gate.set()
