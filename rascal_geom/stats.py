"""Seed statistics for comparing runs: mean ± std over seeds, and 95% intervals for differences.

A difference between a method and a baseline is ``mean(method) - mean(baseline)``. Its interval
is a paired Student-t interval when both sides ran the same seeds (the seed is the pairing
unit: same data order, same initialisation), and a seeded percentile bootstrap of the
difference of means otherwise. With a single run on a side there is no interval: the spread
of one number is unknown, and :func:`difference_interval` says so instead of inventing one.
A difference is called distinguishable from noise only when its interval excludes 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import stats as _sps

from rascal_train.errors import RascalError

#: Bin edges of a logged weight histogram: 20 bins over [0, 1], 0.05 apart.
WEIGHT_BIN_EDGES = np.linspace(0.0, 1.0, 21)


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation (``ddof=1``; ``nan`` when ``n == 1``) and count."""

    mean: float
    std: float
    n: int


@dataclass(frozen=True)
class Difference:
    """``method - baseline`` with its confidence interval.

    Attributes
    ----------
    delta : float
        Difference of the two means.
    low, high : float or None
        Interval bounds; ``None`` when no interval can be computed (see ``note``).
    method : str
        ``"paired-t"``, ``"bootstrap"`` or ``"none"``.
    n : int
        Seed pairs (paired) or the smaller of the two sample sizes (otherwise).
    confidence : float
    note : str
        Human-readable reason when ``method == "none"``, else ``""``.
    """

    delta: float
    low: float | None
    high: float | None
    method: str
    n: int
    confidence: float
    note: str = ""

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    @property
    def distinguishable(self) -> bool:
        """True only when an interval exists and excludes 0."""
        return self.has_interval and (self.low > 0.0 or self.high < 0.0)


def _as_1d(values: Sequence[float], name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise RascalError(f"The '{name}' sample is empty; pass at least one value.")
    if not np.all(np.isfinite(arr)):
        raise RascalError(f"The '{name}' sample holds non-finite values {arr.tolist()}; "
                          "drop the runs whose metric is missing before comparing.")
    return arr


def summarize(values: Sequence[float]) -> Summary:
    """Mean, sample std (``ddof=1``) and n of the values of one metric over seeds.

    Parameters
    ----------
    values : array-like of shape (n,), float

    Returns
    -------
    Summary
        ``std`` is ``nan`` for a single value.
    """
    arr = _as_1d(values, "values")
    std = float(np.std(arr, ddof=1)) if arr.size > 1 else float("nan")
    return Summary(mean=float(arr.mean()), std=std, n=int(arr.size))


def paired_t_interval(method: Sequence[float], baseline: Sequence[float],
                      confidence: float = 0.95) -> tuple[float, float, float]:
    """Student-t interval of the mean paired difference ``method[i] - baseline[i]``.

    Parameters
    ----------
    method, baseline : array-like of shape (n,), float
        Values for the same seeds, in the same order; ``n >= 2``.
    confidence : float, default=0.95

    Returns
    -------
    (delta, low, high) : tuple of float
        The mean difference and ``delta ± t_{(1+c)/2, n-1} · sd / sqrt(n)``; a zero spread gives
        ``low == high == delta``. Matches ``scipy.stats.ttest_rel(method, baseline)
        .confidence_interval(confidence)``.
    """
    a = _as_1d(method, "method")
    b = _as_1d(baseline, "baseline")
    if a.shape != b.shape:
        raise RascalError(f"A paired interval needs one baseline value per method value; "
                          f"got {a.size} and {b.size}.")
    if a.size < 2:
        raise RascalError("A paired interval needs at least 2 seed pairs; got 1.")
    d = a - b
    delta = float(d.mean())
    half = float(_sps.t.ppf((1.0 + confidence) / 2.0, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size))
    return delta, delta - half, delta + half


def bootstrap_interval(method: Sequence[float], baseline: Sequence[float], confidence: float = 0.95,
                       n_resamples: int = 9999, seed: int = 0) -> tuple[float, float, float]:
    """Percentile bootstrap interval of ``mean(method) - mean(baseline)`` (independent samples).

    Each bootstrap replicate resamples both sides with replacement, independently. The draws
    are those of ``scipy.stats.bootstrap((method, baseline), lambda x, y, axis: x.mean(axis)
    - y.mean(axis), paired=False, vectorized=True, method="percentile", n_resamples=n_resamples,
    rng=numpy.random.default_rng(seed))``: one generator, the method's indices
    ``integers(0, n_method, (n_resamples, n_method))`` first, then the baseline's; the bounds are
    the linear-interpolated ``(1 - c)/2`` and ``(1 + c)/2`` quantiles of the replicates.

    Returns
    -------
    (delta, low, high) : tuple of float
    """
    a = _as_1d(method, "method")
    b = _as_1d(baseline, "baseline")
    if a.size < 2 or b.size < 2:
        raise RascalError(f"A bootstrap interval needs at least 2 values per side; "
                          f"got {a.size} and {b.size}.")
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, a.size, (n_resamples, a.size))
    ib = rng.integers(0, b.size, (n_resamples, b.size))
    replicates = a[ia].mean(axis=-1) - b[ib].mean(axis=-1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(replicates, [alpha, 1.0 - alpha])
    return float(a.mean() - b.mean()), float(low), float(high)


def difference_interval(method: Mapping[int, float] | Sequence[float],
                        baseline: Mapping[int, float] | Sequence[float],
                        confidence: float = 0.95, n_resamples: int = 9999,
                        seed: int = 0) -> Difference:
    """The difference of a method from a baseline over seeds, with the interval that fits.

    Parameters
    ----------
    method, baseline : mapping of seed -> float, or array-like of float
        Mappings pair by seed: identical seed sets of size >= 2 give a paired t-interval.
        Otherwise (different seeds, or plain sequences) both sides need >= 2 values for a
        bootstrap interval (:func:`bootstrap_interval`); a side with a single value gives no
        interval (``note="n=1: no interval"``).
    confidence : float, default=0.95
    n_resamples, seed : int
        Bootstrap settings.

    Returns
    -------
    Difference
    """
    if not 0.0 < confidence < 1.0:
        raise RascalError(f"The 'confidence' parameter must be a float in (0, 1). Got {confidence} instead.")
    if isinstance(method, Mapping) and isinstance(baseline, Mapping) and set(method) == set(baseline):
        seeds = sorted(method)
        a = _as_1d([method[s] for s in seeds], "method")
        b = _as_1d([baseline[s] for s in seeds], "baseline")
        if a.size >= 2:
            delta, low, high = paired_t_interval(a, b, confidence)
            return Difference(delta, low, high, "paired-t", int(a.size), confidence)
    else:
        a = _as_1d(list(method.values()) if isinstance(method, Mapping) else method, "method")
        b = _as_1d(list(baseline.values()) if isinstance(baseline, Mapping) else baseline, "baseline")
        if a.size >= 2 and b.size >= 2:
            delta, low, high = bootstrap_interval(a, b, confidence, n_resamples, seed)
            return Difference(delta, low, high, "bootstrap", int(min(a.size, b.size)), confidence)
    return Difference(float(a.mean() - b.mean()), None, None, "none", int(min(a.size, b.size)),
                      confidence, note="n=1: no interval")


def histogram_summary(counts: Sequence[float], edges: Sequence[float] = WEIGHT_BIN_EDGES) -> dict:
    """Mean, std and threshold shares of values known only through a histogram.

    The mean and std treat every value as its bin centre (so they are approximations, exact
    to within half a bin width); the shares are exact when the thresholds are bin edges, as
    0.3, 0.7 and 0.9 are for the 20 logged bins of width 0.05.

    Parameters
    ----------
    counts : array-like of shape (n_bins,), float
        Non-negative counts (or masses) per bin.
    edges : array-like of shape (n_bins + 1,), float, default=20 bins over [0, 1]

    Returns
    -------
    dict
        ``total``, ``mean``, ``std`` (population std of the binned values), ``share_ge_0.9``,
        ``share_ge_0.7``, ``share_lt_0.3`` (fractions in [0, 1]).
    """
    c = np.asarray(counts, dtype=np.float64).reshape(-1)
    e = np.asarray(edges, dtype=np.float64).reshape(-1)
    if e.size != c.size + 1:
        raise RascalError(f"A histogram of {c.size} bins needs {c.size + 1} edges; got {e.size}.")
    if np.any(c < 0) or c.sum() <= 0:
        raise RascalError("A weight histogram needs non-negative counts with a positive total; "
                          f"got {c.tolist()}.")
    total = float(c.sum())
    p = c / total
    centres = (e[:-1] + e[1:]) / 2.0
    mean = float(np.dot(p, centres))
    std = float(np.sqrt(np.dot(p, (centres - mean) ** 2)))

    def share(mask: np.ndarray) -> float:
        return float(p[mask].sum())

    def edge_index(x: float) -> int:
        hits = np.flatnonzero(np.isclose(e, x))
        if hits.size != 1:
            raise RascalError(f"Threshold {x} is not a bin edge of this histogram; shares would be inexact.")
        return int(hits[0])

    return {
        "total": total, "mean": mean, "std": std,
        "share_ge_0.9": share(np.arange(c.size) >= edge_index(0.9)),
        "share_ge_0.7": share(np.arange(c.size) >= edge_index(0.7)),
        "share_lt_0.3": share(np.arange(c.size) < edge_index(0.3)),
    }
