"""Probability of detection from hit/miss data, as non-destructive testing does it
(MIL-HDBK-1823A, hit/miss analysis).

Each painted defect is one trial: its size ``a`` and whether the model caught it. The
model is ``POD(a) = 1 / (1 + exp(-(b0 + b1 ln a)))``, fitted by maximum likelihood
(Newton's method on the log-likelihood, which is concave, so the optimum it finds is
the optimum). From the fit:

- ``a50``, ``a90``: the sizes found half and 90% of the time;
- ``a90_95``: the size found 90% of the time *with 95% confidence*: where the one-sided
  95% lower Wald confidence band on POD (from the inverse Fisher information of
  ``(b0, b1)``) crosses 0.9. It is never smaller than ``a90``. Where the band never
  reaches 0.9 within the sizes painted, the binomial rule below gives it where it can
  and ``a90`` itself lies within them (said no smaller than ``a90``).

When the data cannot support a fit, nothing is made up:

- no hits, or detection that does not grow with size: ``a90`` "not reached";
- all hits, or hits and misses split cleanly by size (the maximum-likelihood slope is
  infinite): no curve; ``a90_95`` then comes from the binomial "29 of 29" rule used in
  NDT demonstrations: if every one of the ``n`` defects at or above size ``s`` was found,
  POD(>= s) >= 0.9 with 95% confidence once ``0.9**n <= 0.05`` (``n >= 29``).

numpy only; no fitting library needed, and the tests check the fit against an
independent optimiser.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence

import numpy as np

__all__ = ["PodFit", "fit_pod", "pod_curve", "lower_band", "size_at", "binomial_a90_95", "N_29_OF_29"]

# One-sided 95%: the band is a lower bound, as a90/95 asks "at least 90%".
Z95 = 1.6448536269514722
LOGIT90 = math.log(9.0)
# The smallest n with 0.9**n <= 0.05: 29 hits in 29 trials demonstrate POD >= 0.9 at 95%.
N_29_OF_29 = 29


@dataclass
class PodFit:
    """A POD fit on ln(size). Sizes in the unit the trials were given in (px here).

    ``status``: ``fit`` (a curve), ``blind`` (no hits), ``all_found`` (no misses),
    ``separated`` (misses all smaller than hits: a step, not a curve), ``not_increasing``
    (the fitted slope is not positive: detection does not grow with size).
    """

    status: str
    n: int
    hits: int
    size_min: float
    size_max: float
    b0: Optional[float] = None
    b1: Optional[float] = None
    cov: Optional[list[list[float]]] = None        # inverse Fisher information of (b0, b1)
    a50: Optional[float] = None
    a90: Optional[float] = None
    a90_95: Optional[float] = None
    # A step (all_found, separated): every defect at or above this size was found.
    all_found_from: Optional[float] = None
    n_all_found_from: int = 0
    # Where a90_95 comes from: "band" (the Wald band on the curve), "29 of 29" (the binomial
    # rule on a run of finds), None where there is none.
    a90_95_from: Optional[str] = None
    log_likelihood: Optional[float] = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def has_curve(self) -> bool:
        return self.status == "fit"


def _expit(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))       # stable for large |z|


def _loglik(b: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    z = b[0] + b[1] * x
    # log p = -log(1+e^-z), log(1-p) = -log(1+e^z)
    return float(-(y * np.logaddexp(0.0, -z) + (1 - y) * np.logaddexp(0.0, z)).sum())


def _newton(x: np.ndarray, y: np.ndarray, max_iter: int = 100) -> tuple[np.ndarray, np.ndarray, float, bool]:
    """Maximum-likelihood (b0, b1) of a logistic model -> (b, covariance, log L, converged)."""
    X = np.column_stack([np.ones_like(x), x])
    b = np.array([math.log((y.mean() + 0.5 / len(y)) / (1 - y.mean() + 0.5 / len(y))), 0.0])
    ll = _loglik(b, x, y)
    for _ in range(max_iter):
        p = _expit(X @ b)
        grad = X.T @ (y - p)
        info = X.T @ (X * (p * (1 - p))[:, None])
        try:
            step = np.linalg.solve(info, grad)
        except np.linalg.LinAlgError:
            return b, np.full((2, 2), np.nan), ll, False
        # Halve the step until the likelihood goes up: Newton alone can overshoot.
        t = 1.0
        while True:
            nb = b + t * step
            nll = _loglik(nb, x, y)
            if nll >= ll - 1e-12 or t < 1e-8:
                break
            t *= 0.5
        b, done = nb, abs(nll - ll) < 1e-10 and float(np.abs(t * step).max()) < 1e-8
        ll = nll
        if done:
            break
    p = _expit(X @ b)
    info = X.T @ (X * (p * (1 - p))[:, None])
    try:
        cov = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        cov = np.full((2, 2), np.nan)
    return b, cov, ll, bool(done)


def _step_from(a: np.ndarray, y: np.ndarray) -> tuple[Optional[float], int]:
    """The smallest size from which every larger defect was found, and how many there are."""
    order = np.argsort(a, kind="stable")
    a, y = a[order], y[order]
    misses = np.flatnonzero(y == 0)
    start = 0 if not misses.size else int(misses[-1]) + 1
    if start >= len(a):
        return None, 0
    return float(a[start]), int(len(a) - start)


def binomial_a90_95(sizes: Sequence[float], hits: Sequence[bool]) -> Optional[float]:
    """The "29 of 29" bound: the smallest size ``s`` with every defect >= ``s`` found and
    at least 29 of them, so that POD(>= s) >= 0.9 with 95% confidence; None if no such ``s``."""
    a = np.asarray(sizes, dtype=np.float64)
    y = np.asarray(hits, dtype=np.float64)
    s, n = _step_from(a, y)
    if s is None or n < N_29_OF_29:
        return None
    # POD grows with size, so each of the n defects >= s had POD >= POD(s); were POD(s)
    # under 0.9, finding all n would have had a chance under 0.9**n <= 0.05.
    return s


def size_at(fit: PodFit, p: float) -> Optional[float]:
    """The size found with probability ``p`` on the fitted curve (None without a curve)."""
    if not fit.has_curve or not 0 < p < 1:
        return None
    return _size(fit, (math.log(p / (1 - p)) - fit.b0) / fit.b1)


# Sizes more than this many times the largest painted one are not sizes, they are a
# flat curve divided by itself: reported as not reached.
_FAR = 1000.0


def _size(fit: PodFit, log_size: Optional[float]) -> Optional[float]:
    if log_size is None or log_size > math.log(fit.size_max * _FAR):
        return None
    return float(math.exp(log_size))


def pod_curve(fit: PodFit, sizes: np.ndarray) -> np.ndarray:
    """POD at ``sizes`` on the fitted curve."""
    x = np.log(np.asarray(sizes, dtype=np.float64))
    return _expit(fit.b0 + fit.b1 * x)


def lower_band(fit: PodFit, sizes: np.ndarray, z: float = Z95) -> np.ndarray:
    """One-sided lower Wald confidence band on POD at ``sizes`` (95% for the default ``z``)."""
    x = np.log(np.asarray(sizes, dtype=np.float64))
    c = np.asarray(fit.cov, dtype=np.float64)
    se = np.sqrt(np.maximum(c[0, 0] + 2 * c[0, 1] * x + c[1, 1] * x * x, 0.0))
    return _expit(fit.b0 + fit.b1 * x - z * se)


def _band_crossing(b0: float, b1: float, cov: np.ndarray, level_logit: float, z: float) -> Optional[float]:
    """ln(size) where the lower band ``b0 + b1 x - z se(x)`` reaches ``level_logit``.

    Squaring ``b0 + b1 x - L = z se(x)`` gives a quadratic in x; the band crosses where
    its larger root also has ``b0 + b1 x - L >= 0``. No real root, or a band that
    never climbs that high (``b1^2 <= z^2 var(b1)``: the slope is too uncertain), ->
    None: a90/95 is not reached at any size.
    """
    s00, s01, s11 = float(cov[0, 0]), float(cov[0, 1]), float(cov[1, 1])
    d = b0 - level_logit
    A = b1 * b1 - z * z * s11
    B = 2 * b1 * d - 2 * z * z * s01
    C = d * d - z * z * s00
    if A <= 0:
        return None
    disc = B * B - 4 * A * C
    if disc < 0:
        return None
    roots = [(-B + sgn * math.sqrt(disc)) / (2 * A) for sgn in (1, -1)]
    good = [r for r in roots if b0 + b1 * r - level_logit >= -1e-9]
    return max(good) if good else None


def fit_pod(sizes: Sequence[float], hits: Sequence[bool], z: float = Z95, unit: str = " px",
            what: str = "size") -> PodFit:
    """Fit POD against ln(size) by maximum likelihood; see the module's doc for the cases.
    ``unit`` and ``what`` word the notes: a contrast series is in grey levels, not pixels
    (its notes said "a90 (277 px) lies beyond the largest size painted (57.8 px)")."""
    a = np.asarray(sizes, dtype=np.float64)
    y = np.asarray(hits, dtype=bool).astype(np.float64)
    if a.ndim != 1 or a.shape != y.shape:
        raise ValueError(f"sizes and hits must be two lists of the same length, got {a.shape} and {y.shape}")
    if len(a) == 0:
        raise ValueError("no trials: paint at least a few defects before fitting")
    if not np.all(np.isfinite(a)) or (a <= 0).any():
        raise ValueError("sizes must be positive numbers (the fit is on ln(size))")
    n, k = int(len(a)), int(y.sum())
    fit = PodFit(status="fit", n=n, hits=k, size_min=float(a.min()), size_max=float(a.max()))
    step, n_step = _step_from(a, y)
    fit.all_found_from, fit.n_all_found_from = step, n_step
    if k == 0:
        fit.status = "blind"
        fit.notes.append(f"none of the {n} painted defects was found, up to {fit.size_max:.3g}{unit}")
        return fit
    if k == n or (a[y == 0].max() < a[y == 1].min()):
        fit.status = "all_found" if k == n else "separated"
        fit.a90_95 = binomial_a90_95(a, y)
        fit.a90_95_from = None if fit.a90_95 is None else "29 of 29"
        fit.notes.append(
            (f"all {n} painted defects were found, down to {fit.size_min:.3g}{unit}" if k == n else
             f"every defect from {step:.3g}{unit} up was found and every one below missed: a step, "
             "too sharp to fit a curve to")
            + ("" if fit.a90_95 is not None else
               f"; fewer than {N_29_OF_29} found in a row, too few for a 90/95 bound"))
        return fit
    x = np.log(a)
    b, cov, ll, converged = _newton(x, y)
    fit.b0, fit.b1, fit.log_likelihood = float(b[0]), float(b[1]), ll
    fit.cov = cov.tolist()
    if not converged or not np.all(np.isfinite(cov)):
        fit.status = "separated"
        fit.notes.append("the fit did not settle (hits and misses nearly split by size); paint more defects")
        fit.a90_95 = binomial_a90_95(a, y)
        fit.a90_95_from = None if fit.a90_95 is None else "29 of 29"
        return fit
    if fit.b1 <= 0:
        fit.status = "not_increasing"
        fit.notes.append("larger defects were not found more often than smaller ones: the model does not "
                         "respond to this defect's size")
        return fit
    fit.a50 = size_at(fit, 0.5)
    fit.a90 = size_at(fit, 0.9)
    cross = _band_crossing(fit.b0, fit.b1, cov, LOGIT90, z)
    fit.a90_95 = _size(fit, cross)
    fit.a90_95_from = None if fit.a90_95 is None else "band"
    if fit.a90_95 is None or fit.a90_95 > fit.size_max:
        # The band is the model's bound; where it never reaches 90% within the sizes painted
        # (few misses, an uncertain slope) but 29 or more defects in a row were all found,
        # that run demonstrates 90/95 on what was painted, not on an extrapolation (README:
        # "where every defect from some size up was caught, the '29 of 29' binomial rule").
        # Without it, 35 cracks in a row caught read "too few parts ...: paint more".
        rule = binomial_a90_95(a, y)
        # Only where the curve itself reaches 90% within the sizes painted: where it puts a90
        # beyond them (or nowhere), a 90/95 from the run under it contradicted the sentence
        # "no size painted reaches 9 in 10 caught" (a90 56 px, a90/95 30 px)
        if rule is not None and fit.a90 is not None and fit.a90 <= fit.size_max:
            # Never said below a90 ("9 in 10 from 12.8 px, with 95% confidence from 12.1 px"
            # reads as a contradiction): from a90 up, with POD growing, the run's bound holds too.
            fit.a90_95 = max(rule, fit.a90)
            fit.a90_95_from = "29 of 29"
            fit.notes.append(f"the 95% band does not reach 90% within the sizes painted, but every one of the "
                             f"{n_step} defects from {step:.3g}{unit} up was found: a90/95 from the "
                             f"\"{N_29_OF_29} of {N_29_OF_29}\" binomial rule")
    if fit.a90 is None:
        fit.notes.append(f"detection grows so slowly with {what} that 90% is not reached below "
                         f"{_FAR:g} x the largest {what} painted")
    elif fit.a90 > fit.size_max:
        fit.notes.append(f"a90 ({fit.a90:.3g}{unit}) lies beyond the largest {what} painted "
                         f"({fit.size_max:.3g}{unit}): an extrapolation")
    if fit.a90_95 is None:
        fit.notes.append(f"the 95% band never reaches 90% and fewer than {N_29_OF_29} defects in a row were "
                         "found: a90/95 not reached")
    return fit
