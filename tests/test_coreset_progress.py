"""Training says where it is after the features: the coreset (picks made of how many) and
the cross-scoring of every good part report through the same progress callback, so a fit
that runs for minutes (762 magnetic tiles: 25 minutes after the features) is not taken
for a hung one. And the coreset still picks the same patches."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lineguard.vision.detectors import patchcore  # noqa: E402
from lineguard.vision.detectors._coreset import StreamingCoreset  # noqa: E402
from lineguard.vision.detectors.patchcore import PatchCore, coreset_projection, greedy_coreset  # noqa: E402
from lineguard.vision.inspector import Inspector  # noqa: E402
from lineguard.vision.synth import make_part  # noqa: E402


def reference_greedy_coreset(feats: torch.Tensor, n_keep: int, projection_dim: int, seed: int) -> torch.Tensor:
    """The selection as it was before it reported progress: the picks must not move."""
    n = len(feats)
    if n_keep >= n:
        return torch.arange(n)
    g = torch.Generator().manual_seed(seed)
    x = coreset_projection(feats, projection_dim, g)
    x_sq = (x * x).sum(1)
    start = int(torch.randint(n, (1,), generator=g))
    selected = torch.empty(n_keep, dtype=torch.long)
    min_d = torch.full((n,), float("inf"), dtype=x.dtype)
    d = torch.empty(n, dtype=x.dtype)
    cur = start
    for i in range(n_keep):
        selected[i] = cur
        c = x[cur]
        torch.addmv(x_sq, x, c, beta=1.0, alpha=-2.0, out=d)
        d += c.dot(c)
        torch.minimum(min_d, d, out=min_d)
        cur = int(torch.argmax(min_d))
    return selected


def _bank(n: int, c: int = 152, seed: int = 3) -> torch.Tensor:
    """Patch-like rows: a few dense clusters and a spread of rarer ones."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(12, c, generator=g) * 4
    rows = centres[torch.randint(12, (n,), generator=g)] + torch.randn(n, c, generator=g)
    return rows * torch.rand(n, 1, generator=g) ** 2


@pytest.mark.parametrize("n, keep, dim, seed", [(3001, 60, 64, 0), (2048, 41, 64, 5), (777, 30, 200, 1)])
def test_the_coreset_reports_each_pick_and_picks_what_it_always_picked(monkeypatch, n, keep, dim, seed):
    monkeypatch.setattr(patchcore, "PROGRESS_EVERY_S", 0.0)     # every pick, not once a second
    feats = _bank(n)
    calls = []
    picked = greedy_coreset(feats, keep, dim, seed, progress=lambda d, t: calls.append((d, t)))
    assert torch.equal(picked, reference_greedy_coreset(feats, keep, dim, seed))
    assert calls == [(k, keep) for k in range(1, keep + 1)]


def test_the_coreset_reports_its_end_even_when_it_is_quick():
    calls = []
    greedy_coreset(_bank(500), 10, 64, 0, progress=lambda d, t: calls.append((d, t)))
    assert calls and calls[-1] == (10, 10)
    assert all(t == 10 and 1 <= d <= 10 for d, t in calls)


def test_the_streaming_coreset_reports_its_last_selection(monkeypatch):
    monkeypatch.setattr(patchcore, "PROGRESS_EVERY_S", 0.0)
    stream = StreamingCoreset(0.05, 600)
    stream.add(_bank(2000))
    calls = []
    bank, _ = stream.finish(progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (len(bank), len(bank)) and len(calls) == len(bank)


@pytest.fixture(scope="module")
def parts():
    return np.stack([make_part(s, size=64)[0] for s in range(6)])


def test_patchcore_fit_reports_the_coreset_and_the_cross_scoring_after_the_features(monkeypatch, parts):
    monkeypatch.setattr(patchcore, "PROGRESS_EVERY_S", 0.0)
    seen = []
    PatchCore(coreset_ratio=0.1).fit_cross_scored(
        parts, progress=lambda d, t, stage="features": seen.append((stage, d, t)))
    stages = list(dict.fromkeys(s for s, _, _ in seen))
    assert stages == ["features", "coreset", "cross-scoring"]
    coreset = [(d, t) for s, d, t in seen if s == "coreset"]
    assert coreset[-1][0] == coreset[-1][1] > 1 and len(coreset) == coreset[-1][1]
    assert [(d, t) for s, d, t in seen if s == "cross-scoring"] == [(k, 6) for k in range(7)]
    # a plain (done, total) callback, as other code passes, hears the features only
    plain = []
    PatchCore(coreset_ratio=0.1).fit(parts, progress=lambda d, t: plain.append((d, t)))
    assert plain == [(d, t) for s, d, t in seen if s == "features"]


def test_an_extra_input_size_reports_its_own_stages(parts):
    seen = []
    PatchCore(coreset_ratio=0.1, extra_scales=(0.5,)).fit(
        parts, progress=lambda d, t, stage="features": seen.append(stage))
    assert list(dict.fromkeys(seen)) == ["features", "coreset", "cross-scoring",
                                         "coreset at 0.5x", "cross-scoring at 0.5x"]


def test_inspector_fit_passes_the_later_stages_to_its_callback(parts):
    seen = []
    Inspector.fit(list(parts), image_size=64, progress=lambda stage, done, total: seen.append((stage, done, total)))
    stages = list(dict.fromkeys(s for s, _, _ in seen))
    assert stages == ["load", "features", "coreset", "cross-scoring", "calibrate"]
    assert ("cross-scoring", 6, 6) in seen


def test_a_progress_line_says_about_how_long_is_left_once_a_tenth_is_done():
    """A 762-photo fit printed its stages with no idea of the end: 20 minutes of coreset read
    like a hang. From a tenth done on, the pace so far says what is left."""
    from lineguard.cli._term import time_left
    assert time_left(5.0, 1, 100) == ""                   # the first steps do not tell the pace
    assert time_left(10.0, 5, 10) == ", about 10 s left"
    assert time_left(120.0, 1000, 3000) == ", about 4 min left"
    assert time_left(9.0, 10, 10) == ""                   # done: nothing left to say
