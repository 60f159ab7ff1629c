"""Detectors behind the estimator contract: configured in __init__, learn in fit, fitted
state ends in '_', score -> (image scores, anomaly maps); plus PatchCore's coreset and
nearest-neighbour search against brute force."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lineguard.vision.detectors import DETECTORS, PaDiM, PatchCore, create_detector  # noqa: E402
from lineguard.vision.detectors.patchcore import greedy_coreset, nearest_distance  # noqa: E402
from lineguard.vision.errors import DatasetError, NotFittedError  # noqa: E402
from lineguard.vision.synth import make_part  # noqa: E402

SIZE = 128


@pytest.fixture(scope="module")
def good_parts() -> np.ndarray:
    return np.stack([make_part(seed, size=SIZE)[0] for seed in range(100, 124)])


@pytest.fixture(scope="module")
def test_parts() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(good, defective, masks): the defective part is the good part of the same seed plus one defect."""
    seeds = range(200, 206)
    kinds = ["particle", "scratch", "dent", "stain", "crack", "missing_coating"]
    good = np.stack([make_part(s, size=SIZE)[0] for s in seeds])
    pairs = [make_part(s, size=SIZE, defect=k) for s, k in zip(seeds, kinds)]
    return good, np.stack([p[0] for p in pairs]), np.stack([p[1] > 0 for p in pairs])


@pytest.fixture(scope="module", params=["patchcore", "padim", "patchcore-two-sizes"])
def fitted(request, good_parts):
    if request.param == "patchcore-two-sizes":     # the part also seen at 0.7x the input's side
        return create_detector("patchcore", seed=0, extra_scales=(0.7,)).fit(good_parts)
    return create_detector(request.param, seed=0).fit(good_parts)


# --------------------------------------------------------------------------- contract


@pytest.mark.parametrize("cls", [PatchCore, PaDiM])
def test_get_params_round_trip_and_args_stored_unchanged(cls):
    layers = ["stage2", "stage3"]                     # a list stays the very same object
    det = cls(layers=layers, seed=7, batch_size=3)
    params = det.get_params()
    assert params["layers"] is layers and params["seed"] == 7 and params["batch_size"] == 3
    clone = cls(**params)
    assert clone.get_params() == params
    assert set(params) == set(cls().get_params())
    assert not any(k.endswith("_") for k in vars(det))   # nothing fitted at construction


def test_registry_and_unknown_detector():
    assert set(DETECTORS) == {"patchcore", "padim"}
    assert isinstance(create_detector("padim", n_features=8), PaDiM)
    with pytest.raises(ValueError, match="unknown detector"):
        create_detector("isolation_forest")


@pytest.mark.parametrize("cls", [PatchCore, PaDiM])
def test_not_fitted_error_before_fit(cls):
    det = cls()
    with pytest.raises(NotFittedError, match="fit"):
        det.score(np.zeros((1, SIZE, SIZE, 3), np.uint8))
    with pytest.raises(NotFittedError):
        det.state_tensors()


def test_fit_sets_only_trailing_underscore_public_state(fitted, good_parts):
    fresh = type(fitted)(**fitted.get_params())
    new_public = [k for k in set(vars(fitted)) - set(vars(fresh)) if not k.startswith("_")]
    assert new_public, "fit stored nothing"
    assert all(k.endswith("_") for k in new_public), new_public
    assert fitted.get_params() == fresh.get_params()     # fit does not touch the settings


def test_score_shapes_and_types(fitted, test_parts):
    good, bad, _ = test_parts
    scores, maps = fitted.score(np.concatenate([good, bad]))
    assert scores.shape == (12,) and maps.shape == (12, SIZE, SIZE)
    assert scores.dtype == np.float32 and maps.dtype == np.float32
    assert np.isfinite(scores).all() and np.isfinite(maps).all()
    if fitted.name == "padim":       # a Mahalanobis distance; PatchCore's position-normalised maps may dip below 0
        assert (maps >= 0).all()


def test_score_is_deterministic_and_batch_independent(fitted, test_parts):
    good, bad, _ = test_parts
    x = np.concatenate([good, bad])
    s1, m1 = fitted.score(x)
    s2, m2 = fitted.score(x[:1])
    np.testing.assert_allclose(s2, s1[:1], rtol=1e-4)
    np.testing.assert_allclose(m2[0], m1[0], rtol=1e-4, atol=1e-4)


def test_defects_score_higher_than_good_parts(fitted, test_parts):
    good, bad, _ = test_parts
    g, _ = fitted.score(good)
    d, _ = fitted.score(bad)
    # pairwise: each part with a defect painted on scores above the same part without it
    assert (d > g).all(), (g, d)
    assert np.median(d) > g.max()


def test_anomaly_map_peaks_on_the_defect(fitted, test_parts):
    _, bad, masks = test_parts
    _, maps = fitted.score(bad)
    inside = [m[mask].mean() for m, mask in zip(maps, masks)]
    outside = [m[~mask].mean() for m, mask in zip(maps, masks)]
    assert sum(i > o for i, o in zip(inside, outside)) >= 5


@pytest.mark.parametrize("cls,n", [(PatchCore, 1), (PaDiM, 9)])
def test_too_few_images_is_a_dataset_error(cls, n, good_parts):
    with pytest.raises(DatasetError, match=f"at least {cls.min_good_images} good images"):
        cls().fit(good_parts[:n])


def test_patchcore_settings_are_checked():
    with pytest.raises(ValueError, match="coreset_ratio"):
        PatchCore(coreset_ratio=0).fit(np.zeros((2, 64, 64, 3), np.uint8))


def test_a_second_input_size_has_its_own_bank_and_adds_its_distances(good_parts, test_parts):
    one = PatchCore(coreset_ratio=0.25, search="float32").fit(good_parts)
    two = PatchCore(coreset_ratio=0.25, search="float32", extra_scales=(0.7,)).fit(good_parts)
    assert two.scaled_input_size(0.7) == (96, 96)            # 0.7 x 128, to a multiple of 32
    assert two.extra_grids_ == [(12, 12)] and two.grid_ == one.grid_ == (16, 16)
    assert len(two.extra_banks_[0]) == round(len(good_parts) * 144 * 0.25)
    torch.testing.assert_close(two.memory_bank_, one.memory_bank_)   # the base bank is unchanged
    # the smaller size's distances, on the base grid in the base's units, on top of the base's
    extra = two.cross_distances_ - one.cross_distances_
    assert (extra > 0).all() and two.extra_weights_[0] > 0
    module = two.scoring_module().eval()
    x = torch.from_numpy(np.ascontiguousarray(test_parts[1][:2]))
    with torch.no_grad():
        emb = module.embed(x)
        base = module._nearest(emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1])).reshape(-1, 16, 16)
        _, maps = module.finish(base + module.extras[0](x))
    np.testing.assert_allclose(two.score(test_parts[1][:2])[1], maps.numpy(), rtol=1e-5, atol=1e-5)
    # each training part scored without its own patches at both sizes: above its in-sample score
    assert (two.score_distances(two.cross_distances_)[0] > two.score(good_parts)[0]).all()


@pytest.mark.parametrize("bad", [(1.0,), (0.1,), (5,)])
def test_extra_input_sizes_are_checked(good_parts, bad):
    with pytest.raises(ValueError, match="extra_scales"):
        PatchCore(extra_scales=bad).fit(good_parts[:2])


def test_patchcore_memory_bank_size_and_topk_score(good_parts, test_parts):
    det = PatchCore(coreset_ratio=0.05, image_score="topk", top_k=5).fit(good_parts[:4])
    h, w = det.grid_
    assert det.memory_bank_.shape[0] == round(4 * h * w * 0.05)
    assert det.memory_bank_.shape[1] == sum(det.backbone_.out_channels)
    torch.testing.assert_close(det.bank_sq_norms_, (det.memory_bank_ ** 2).sum(1))
    scores, _ = det.score(test_parts[1])
    assert scores.shape == (6,)
    with pytest.raises(ValueError, match="image_score"):
        PatchCore(image_score="mean").fit(good_parts[:2]).score(test_parts[1][:1])


def test_state_round_trip_reproduces_scores(fitted, test_parts):
    good, bad, _ = test_parts
    params = dict(fitted.get_params(), layers=list(fitted.layers))
    tensors = {k: np.array(v) for k, v in fitted.state_tensors().items()}
    clone = type(fitted).from_state(params, fitted.state_meta(), tensors)
    x = np.concatenate([good[:2], bad[:2]])
    s1, m1 = fitted.score(x)
    s2, m2 = clone.score(x)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(m1, m2)


# --------------------------------------------------------------------------- coreset


def test_greedy_coreset_returns_unique_indices_of_requested_size():
    feats = torch.randn(500, 96, generator=torch.Generator().manual_seed(0))
    idx = greedy_coreset(feats, 50, projection_dim=32, seed=0)
    assert idx.shape == (50,) and idx.dtype == torch.long
    assert len(set(idx.tolist())) == 50
    assert idx.min() >= 0 and idx.max() < 500
    assert torch.equal(idx, greedy_coreset(feats, 50, projection_dim=32, seed=0))   # seeded


def test_greedy_coreset_keeps_all_when_asked_for_more():
    feats = torch.randn(10, 4)
    assert torch.equal(greedy_coreset(feats, 10, 2, 0), torch.arange(10))
    assert torch.equal(greedy_coreset(feats, 50, 2, 0), torch.arange(10))


@pytest.mark.parametrize("projection_dim", [0, 16])
def test_greedy_coreset_picks_far_outliers(projection_dim):
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(400, 64, generator=g)
    outliers = [17, 250, 399]
    for i, o in enumerate(outliers):
        feats[o] += 40.0 * (i + 1)
    idx = greedy_coreset(feats, 8, projection_dim=projection_dim, seed=3).tolist()
    assert set(outliers) <= set(idx)


def test_greedy_coreset_each_pick_is_the_farthest_point():
    # k-center greedy, checked step by step: without projection every kept point is the
    # one farthest from all points kept before it.
    g = torch.Generator().manual_seed(2)
    feats = torch.randn(300, 16, generator=g, dtype=torch.float64)
    idx = greedy_coreset(feats, 15, projection_dim=0, seed=0).tolist()
    for i in range(1, len(idx)):
        d = torch.cdist(feats, feats[idx[:i]]).min(1).values
        assert d[idx[i]] == pytest.approx(float(d.max()), rel=1e-9), f"pick {i}"


def test_greedy_coreset_covers_every_cluster():
    g = torch.Generator().manual_seed(2)
    feats = torch.cat([torch.randn(300, 16, generator=g) * 0.1 + c for c in (0.0, 5.0, 10.0)])
    idx = greedy_coreset(feats, 3, projection_dim=8, seed=0)
    assert {int(i) // 300 for i in idx} == {0, 1, 2}


@pytest.mark.parametrize("block", [7, 4096])
@pytest.mark.parametrize("chunk", [17, 512])
def test_nearest_distance_matches_brute_force(block, chunk, monkeypatch):
    from lineguard.vision.detectors.patchcore import PatchCoreScoring
    monkeypatch.setattr(PatchCoreScoring, "bank_chunk", chunk)   # 17: seven full pieces and a short one
    g = torch.Generator().manual_seed(4)
    q = torch.randn(300, 48, generator=g)
    bank = torch.randn(120, 48, generator=g) * 2
    want = torch.cdist(q, bank).min(1).values
    got = nearest_distance(q, bank, block=block)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(nearest_distance(q, bank, (bank * bank).sum(1), block=block), got)


def test_nearest_distance_of_bank_rows_is_zero():
    bank = torch.randn(50, 16, generator=torch.Generator().manual_seed(5))
    d = nearest_distance(bank[:10].clone(), bank)
    assert (d >= 0).all() and d.max() < 1e-2


def test_model_files_from_before_the_new_defaults_judge_as_they_did(good_parts):
    """A file written before pool_padding and image_score 'map_max' existed has neither in
    its settings; it must load with the behaviour it was trained and calibrated with."""
    old = PatchCore(coreset_ratio=0.05, pool_padding="edge", image_score="max", position_norm=True,
                    search="float32").fit(good_parts[:4])
    params = {k: v for k, v in old.get_params().items()
              if k not in ("pool_padding", "image_score", "position_norm", "search")}
    params["position_norm"] = True
    tensors = {k: v for k, v in old.state_tensors().items() if k != "feature_range"}  # from before int8 search
    loaded = PatchCore.from_state(params, old.state_meta(), tensors)
    assert (loaded.pool_padding, loaded.image_score, loaded.search) == ("edge", "max", "float32")
    x = good_parts[4:6]
    np.testing.assert_allclose(loaded.score(x)[0], old.score(x)[0], rtol=1e-6)
    assert PatchCore().pool_padding == "zeros" and PatchCore().image_score == "map_max"
    assert PatchCore().search == "int8"


@pytest.mark.parametrize("chunk", [37, 512, 100_000])
def test_scoring_module_bank_in_pieces_matches_brute_force(good_parts, test_parts, monkeypatch, chunk):
    """The scoring module searches the bank in pieces of ``bank_chunk`` rows (speed: the
    distance matrix stays in cache); the nearest distance must not depend on the piece
    size, a last piece shorter than the others included."""
    from lineguard.vision.detectors.patchcore import PatchCoreScoring
    det = PatchCore(coreset_ratio=0.5, batch_size=8, search="float32").fit(good_parts)
    bank = det.memory_bank_
    assert len(bank) % 37 != 0 and len(bank) > 37   # several pieces, a ragged last one
    monkeypatch.setattr(PatchCoreScoring, "bank_chunk", chunk)
    module = det.scoring_module().eval()
    images, _, _ = test_parts
    with torch.no_grad():
        emb = module.embed(torch.from_numpy(np.ascontiguousarray(images[:4])))
        q = emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1])
        got = module._nearest(q)
    want = torch.cdist(q.double(), bank.double()).min(1).values.float()
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-3)


def _int8_reference(q: torch.Tensor, search) -> np.ndarray:
    """The int8 search's distances from first principles: integer dot products in int64."""
    c = (q - search.center).numpy()                   # float32, as the graph's Sub
    qq = np.clip(np.round(c / np.float32(search.query_scale)) + search.query_zero, 0, search.query_max).astype(np.int64)
    dot = (qq - search.query_zero) @ search.bank_t.numpy().astype(np.int64)
    d2 = (search.bank_sq.double().numpy()[None] + dot * search.query_scale
          * search.neg2_row_scale.double().numpy()[None]).min(1) + (c.astype(np.float64) ** 2).sum(1)
    return np.sqrt(np.maximum(d2, 0))


@pytest.mark.parametrize("chunk", [37, 512])
def test_int8_search_is_integer_arithmetic_in_every_piece(good_parts, test_parts, monkeypatch, chunk):
    """The default bank search: uint8 query patches, int8 bank rows, integer dot
    products. Torch computes them in float32; the sums must come out as the integers."""
    from lineguard.vision.detectors.patchcore import PatchCoreScoring
    det = PatchCore(coreset_ratio=0.5, batch_size=8).fit(good_parts)
    assert det.search == "int8" and len(det.memory_bank_) > 37
    monkeypatch.setattr(PatchCoreScoring, "bank_chunk", chunk)
    module = det.scoring_module().eval()
    with torch.no_grad():
        emb = module.embed(torch.from_numpy(np.ascontiguousarray(test_parts[0][:4])))
        q = emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1])
        got = module._nearest(q).numpy()
    np.testing.assert_allclose(got, _int8_reference(q, det.bank_search()), rtol=1e-5, atol=1e-4)
    # and calibration's leave-one-out path searches the same integers
    torch.testing.assert_close(nearest_distance(q, det.memory_bank_, det.bank_sq_norms_, search=det.bank_search()),
                               torch.from_numpy(got))


def _avx2_u8s8_dot(qq: np.ndarray, b: np.ndarray) -> np.ndarray:
    """uint8 x int8 dot products as x86 AVX2 kernels without VNNI compute them
    (VPMADDUBSW): each pair of neighbouring products is added into an int16 that
    saturates, then the pairs are summed exactly."""
    qq, b = qq.astype(np.int64), b.astype(np.int64)
    if qq.shape[1] % 2:
        qq, b = np.pad(qq, ((0, 0), (0, 1))), np.pad(b, ((0, 1), (0, 0)))
    pairs = qq[:, 0::2, None] * b[None, 0::2] + qq[:, 1::2, None] * b[None, 1::2]
    return np.clip(pairs, -32768, 32767).sum(1)


def test_int8_search_cannot_saturate_on_avx2_cpus(good_parts, test_parts):
    """On a CPU without VNNI (AVX2 only: many AMD EPYC hosts) ONNX Runtime multiplies
    the uint8 query by the int8 bank with int16 pair sums that saturate. The search's
    integer ranges must keep every pair sum in range, for real parts and for patches
    far outside the training range (a defect's), so the exported model scores as torch
    does on every CPU. (With bank rows coded -127..127 a good part scored 19.9 instead
    of 17.1 through ONNX Runtime on such a host.)"""
    det = PatchCore(coreset_ratio=0.1, batch_size=8).fit(good_parts)
    search = det.bank_search()
    module = det.scoring_module().eval()
    with torch.no_grad():
        emb = module.embed(torch.from_numpy(np.ascontiguousarray(test_parts[1][:2])))
    q = emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1])
    span = float(q.max() - q.min())
    extreme = torch.cat([q, q.max(0).values[None] + span, q.min(0).values[None] - span,
                         search.center[None] + span * torch.sign(det.memory_bank_[:8] - search.center)])
    from lineguard.vision.detectors.patchcore import _QuantizeQuery
    qq = _QuantizeQuery.apply(extreme - search.center, search.query_scale, search.query_zero,
                              search.query_max).numpy()
    assert qq.max() == search.query_max                      # the top code is reached ...
    b = search.bank_t.numpy()
    exact = qq.astype(np.int64) @ b.astype(np.int64)
    np.testing.assert_array_equal(_avx2_u8s8_dot(qq, b), exact)  # ... and never saturates


def test_int8_search_ranks_parts_as_the_exact_search(good_parts, test_parts):
    """Quantising the search moves scores a little, not the order of parts: the same
    fitted bank searched exactly and in int8, scores within a few percent, the same
    separation of defects from good parts."""
    from lineguard.vision.metrics import image_auroc
    int8 = PatchCore(coreset_ratio=0.1).fit(good_parts)
    exact = PatchCore.from_state({**int8.get_params(), "search": "float32"}, int8.state_meta(), int8.state_tensors())
    good, bad, _ = test_parts
    images, labels = np.concatenate([good, bad]), np.r_[np.zeros(len(good)), np.ones(len(bad))].astype(bool)
    s_exact, _ = exact.score(images)
    s_int8, _ = int8.score(images)
    assert not np.array_equal(s_int8, s_exact)            # the two searches really differ
    assert np.abs(s_int8 - s_exact).max() / np.abs(s_exact).mean() < 0.03
    assert np.corrcoef(s_int8, s_exact)[0, 1] > 0.999
    assert abs(image_auroc(s_int8, labels) - image_auroc(s_exact, labels)) < 0.01


def test_a_parts_score_does_not_depend_on_its_batch(good_parts, test_parts):
    """The query patches' quantisation scale is fixed at fit time, not taken from the
    batch: a part scores the same alone or among others."""
    det = PatchCore(coreset_ratio=0.1).fit(good_parts)
    images = test_parts[0][:6]
    together, _ = det.score(images)
    alone = np.array([det.score(images[i:i + 1])[0][0] for i in range(len(images))])
    np.testing.assert_allclose(alone, together, rtol=1e-6)


def test_nearest_distance_leaves_excluded_rows_out_in_every_piece(monkeypatch):
    from lineguard.vision.detectors.patchcore import PatchCoreScoring
    monkeypatch.setattr(PatchCoreScoring, "bank_chunk", 17)
    g = torch.Generator().manual_seed(6)
    q = torch.randn(40, 12, generator=g)
    bank = torch.randn(100, 12, generator=g)
    exclude = torch.zeros(100, dtype=torch.bool)
    exclude[::3] = True                       # rows left out in every piece of the bank
    want = torch.cdist(q, bank[~exclude]).min(1).values
    torch.testing.assert_close(nearest_distance(q, bank, exclude=exclude), want, rtol=1e-4, atol=1e-4)


def _upsample_then_blur(d: torch.Tensor, size: tuple[int, int], sigma: float) -> torch.Tensor:
    """The map step written out the slow way: bilinear upsampling to the input size, then
    a 3-sigma Gaussian over the reflect-padded map, one axis after the other."""
    from torch.nn import functional as F
    m = F.interpolate(d[:, None].double(), size=size, mode="bilinear", align_corners=False)
    if sigma > 0:
        r = int(round(3 * sigma))
        t = torch.arange(-r, r + 1, dtype=torch.float64)
        k = torch.exp(-(t ** 2) / (2 * sigma ** 2))
        k = k / k.sum()
        m = F.pad(m, (r, r, r, r), mode="reflect")
        m = F.conv2d(F.conv2d(m, k.view(1, 1, 1, -1)), k.view(1, 1, -1, 1))
    return m[:, 0].float()


@pytest.mark.parametrize("grid,size,sigma", [((28, 28), (224, 224), 4.0), ((72, 28), (576, 224), 4.0),
                                             ((7, 9), (56, 72), 2.5), ((8, 8), (64, 64), 0.0)])
def test_map_step_is_upsampling_then_gaussian(grid, size, sigma):
    """smooth_and_upsample runs as one matrix per axis; it must give the map that
    upsampling and then smoothing give, borders included (reflect padding)."""
    from lineguard.vision.detectors.base import smooth_and_upsample
    d = torch.rand(3, *grid, generator=torch.Generator().manual_seed(0)) * 30
    want = _upsample_then_blur(d, size, sigma)
    got = smooth_and_upsample(d, size, sigma)
    assert got.shape == (3, *size)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)


def test_refill_covers_the_corner_a_left_out_part_leaves_bare():
    """Two parts share a rare patch; the coreset keeps one copy. Leaving that part out
    must not leave the corner bare: a refit would keep the other part's copy, and so
    does the refill (plain leave-one-out put it ~10 away, and the threshold too high)."""
    from lineguard.vision.detectors._refill import GreedyRefill
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(90, 8, generator=g) * 0.1          # three parts' ordinary patches
    feats[5, 0] += 10.0                                     # part 0's rare patch
    feats[35, 0] += 10.05                                   # part 1's, nearly the same
    row_group = torch.arange(3).repeat_interleave(30)
    selected = greedy_coreset(feats, 6, 0, seed=0)
    rare = 5 if 5 in selected.tolist() else 35              # the copy the coreset kept
    other = 35 if rare == 5 else 5
    assert other not in selected.tolist()
    owner = int(row_group[rare])
    refill = GreedyRefill(feats, selected, row_group)
    rows = refill.rows_for(owner)
    own = row_group[selected] == owner
    assert len(rows) == int(own.sum())                      # as many rows as the part took out
    assert not bool((row_group[rows] == owner).any())       # none of them its own
    assert other in rows.tolist()
    bank = torch.cat([feats[selected[~own]], feats[rows]])
    assert float(nearest_distance(feats[rare:rare + 1], bank)) < 1.0     # the twin: noise apart
    assert float(nearest_distance(feats[rare:rare + 1], feats[selected[~own]])) > 9   # without the refill
