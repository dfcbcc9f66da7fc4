"""Seed statistics for comparing runs: mean ± std over seeds, and 95% intervals for differences.

A difference between a method and a baseline is ``mean(method) - mean(baseline)``. Its interval
is a paired Student-t interval when both sides ran the same seeds (the seed is the pairing
unit: same data order, same initialisation), and Welch's t interval of the difference of means
otherwise. Both hold their stated coverage at the handful of seeds a paper runs (2 to 10 per
side), which a percentile bootstrap does not: with no true difference its 95% interval excluded
0 in about 35% of comparisons at n=2 per side, 19% at n=3 and 13% at n=5, because resampling
two or three values cannot see the spread it is missing. ``tests/test_stats.py`` checks the
coverage of both intervals by simulation. With a single run on a side there is no interval: the
spread of one number is unknown, and :func:`difference_interval` says so instead of inventing
one. A difference is called distinguishable from noise only when its interval excludes 0.
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
        ``"paired-t"``, ``"welch-t"`` or ``"none"``.
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


def _samples(values: Sequence[float], name: str) -> np.ndarray:
    """Values as float64 of shape (n,), or (r, n) for r independent comparisons at once."""
    arr = np.asarray(values, dtype=np.float64)
    return arr if arr.ndim == 2 else _as_1d(arr, name)


def _bounds(delta: np.ndarray, half: np.ndarray):
    """``(delta, delta - half, delta + half)`` as floats for one comparison, arrays for a batch."""
    if np.ndim(delta) == 0:
        return float(delta), float(delta - half), float(delta + half)
    return delta, delta - half, delta + half


def paired_t_interval(method: Sequence[float], baseline: Sequence[float], confidence: float = 0.95):
    """Student-t interval of the mean paired difference ``method[i] - baseline[i]``.

    Parameters
    ----------
    method, baseline : array-like of shape (n,) or (r, n), float
        Values for the same seeds, in the same order; ``n >= 2``. A 2-D input holds ``r``
        independent comparisons (one per row), as a coverage simulation needs.
    confidence : float, default=0.95

    Returns
    -------
    (delta, low, high) : tuple of float, or of arrays of shape (r,) for 2-D input
        The mean difference and ``delta ± t_{(1+c)/2, n-1} · sd / sqrt(n)``; a zero spread gives
        ``low == high == delta``. Matches ``scipy.stats.ttest_rel(method, baseline)
        .confidence_interval(confidence)``.
    """
    a = _samples(method, "method")
    b = _samples(baseline, "baseline")
    if a.shape != b.shape:
        raise RascalError(f"A paired interval needs one baseline value per method value; "
                          f"got {a.shape[-1]} and {b.shape[-1]}.")
    n = a.shape[-1]
    if n < 2:
        raise RascalError("A paired interval needs at least 2 seed pairs; got 1.")
    d = a - b
    half = _sps.t.ppf((1.0 + confidence) / 2.0, n - 1) * d.std(ddof=1, axis=-1) / np.sqrt(n)
    return _bounds(d.mean(axis=-1), half)


def welch_t_interval(method: Sequence[float], baseline: Sequence[float], confidence: float = 0.95):
    """Welch's t interval of ``mean(method) - mean(baseline)`` for independent samples.

    Parameters
    ----------
    method, baseline : array-like of shape (n_m,) and (n_b,), or (r, n_m) and (r, n_b), float
        ``n_m >= 2`` and ``n_b >= 2``; the sides may differ in size and in spread. 2-D inputs
        hold ``r`` independent comparisons (one per row).
    confidence : float, default=0.95

    Returns
    -------
    (delta, low, high) : tuple of float, or of arrays of shape (r,) for 2-D input
        ``delta ± t_{(1+c)/2, ν} · se`` with ``se² = s_m²/n_m + s_b²/n_b`` and the
        Welch-Satterthwaite ``ν = se⁴ / (s_m⁴/(n_m²(n_m-1)) + s_b⁴/(n_b²(n_b-1)))``; two sides
        without spread give ``low == high == delta``. Matches ``scipy.stats.ttest_ind(method,
        baseline, equal_var=False).confidence_interval(confidence)``.
    """
    a = _samples(method, "method")
    b = _samples(baseline, "baseline")
    na, nb = a.shape[-1], b.shape[-1]
    if na < 2 or nb < 2:
        raise RascalError(f"A Welch interval needs at least 2 values per side; got {na} and {nb}.")
    va = a.var(ddof=1, axis=-1) / na
    vb = b.var(ddof=1, axis=-1) / nb
    se2 = va + vb
    spread = se2 > 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        df = np.where(spread, se2 ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1)), 1.0)
    half = np.where(spread, _sps.t.ppf((1.0 + confidence) / 2.0, df) * np.sqrt(se2), 0.0)
    return _bounds(a.mean(axis=-1) - b.mean(axis=-1), half)


def difference_interval(method: Mapping[int, float] | Sequence[float],
                        baseline: Mapping[int, float] | Sequence[float],
                        confidence: float = 0.95) -> Difference:
    """The difference of a method from a baseline over seeds, with the interval that fits.

    Parameters
    ----------
    method, baseline : mapping of seed -> float, or array-like of float
        Mappings pair by seed: identical seed sets of size >= 2 give a paired t-interval.
        Otherwise (different seeds, or plain sequences) both sides need >= 2 values for Welch's
        interval (:func:`welch_t_interval`); a side with a single value gives no interval
        (``note="n=1: no interval"``).
    confidence : float, default=0.95

    Returns
    -------
    Difference
    """
    if not 0.0 < confidence < 1.0:
        raise RascalError(f"The 'confidence' parameter must be a float in (0, 1). Got {confidence} "
                          "instead.")
    if (isinstance(method, Mapping) and isinstance(baseline, Mapping)
            and set(method) == set(baseline)):
        seeds = sorted(method)
        a = _as_1d([method[s] for s in seeds], "method")
        b = _as_1d([baseline[s] for s in seeds], "baseline")
        if a.size >= 2:
            delta, low, high = paired_t_interval(a, b, confidence)
            return Difference(delta, low, high, "paired-t", int(a.size), confidence)
    else:
        a = _as_1d(list(method.values()) if isinstance(method, Mapping) else method, "method")
        b = _as_1d(list(baseline.values()) if isinstance(baseline, Mapping) else baseline,
                   "baseline")
        if a.size >= 2 and b.size >= 2:
            delta, low, high = welch_t_interval(a, b, confidence)
            return Difference(delta, low, high, "welch-t", int(min(a.size, b.size)), confidence)
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
            raise RascalError(f"Threshold {x} is not a bin edge of this histogram; shares would be "
                              "inexact.")
        return int(hits[0])

    return {
        "total": total, "mean": mean, "std": std,
        "share_ge_0.9": share(np.arange(c.size) >= edge_index(0.9)),
        "share_ge_0.7": share(np.arange(c.size) >= edge_index(0.7)),
        "share_lt_0.3": share(np.arange(c.size) < edge_index(0.3)),
    }
