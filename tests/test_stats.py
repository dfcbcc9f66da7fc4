"""Seed statistics against SciPy and analytic cases."""

import numpy as np
import pytest
from scipy import stats

from rascal_geom.stats import (WEIGHT_BIN_EDGES, bootstrap_interval, difference_interval,
                               histogram_summary, paired_t_interval, summarize)
from rascal_train.errors import RascalError


def test_summarize_matches_numpy_ddof1():
    values = [0.61, 0.64, 0.58, 0.66]
    s = summarize(values)
    assert s.n == 4
    assert s.mean == pytest.approx(np.mean(values), rel=1e-12)
    assert s.std == pytest.approx(np.std(values, ddof=1), rel=1e-12)
    one = summarize([0.5])
    assert one.n == 1 and one.mean == 0.5 and np.isnan(one.std)


def test_paired_t_interval_matches_scipy_ttest_rel():
    rng = np.random.default_rng(3)
    base = rng.normal(0.7, 0.02, size=5)
    meth = base + rng.normal(0.01, 0.005, size=5)
    for conf in (0.9, 0.95, 0.99):
        delta, low, high = paired_t_interval(meth, base, conf)
        ref = stats.ttest_rel(meth, base).confidence_interval(conf)
        assert delta == pytest.approx(np.mean(meth - base), rel=1e-12)
        assert low == pytest.approx(ref.low, rel=1e-10)
        assert high == pytest.approx(ref.high, rel=1e-10)


def test_paired_t_interval_analytic_two_pairs():
    # differences 1 and 3: mean 2, sd sqrt(2), se 1, t_{0.975, 1} = 12.7062...
    delta, low, high = paired_t_interval([1.0, 3.0], [0.0, 0.0])
    t = 12.706204736174707
    assert (delta, low, high) == pytest.approx((2.0, 2.0 - t, 2.0 + t), rel=1e-9)


def test_bootstrap_interval_matches_scipy_bootstrap_exactly():
    rng = np.random.default_rng(11)
    meth = rng.normal(0.72, 0.03, size=4)
    base = rng.normal(0.70, 0.03, size=3)
    for seed in (0, 7):
        delta, low, high = bootstrap_interval(meth, base, 0.95, n_resamples=5000, seed=seed)
        ref = stats.bootstrap((meth, base), lambda x, y, axis: x.mean(axis) - y.mean(axis),
                              paired=False, vectorized=True, method="percentile",
                              n_resamples=5000, rng=np.random.default_rng(seed))
        assert delta == pytest.approx(meth.mean() - base.mean(), rel=1e-12)
        assert low == pytest.approx(ref.confidence_interval.low, rel=1e-12)
        assert high == pytest.approx(ref.confidence_interval.high, rel=1e-12)


def test_difference_interval_chooses_pairing_by_seed():
    paired = difference_interval({0: 0.80, 1: 0.82, 2: 0.81}, {0: 0.70, 1: 0.72, 2: 0.70})
    assert paired.method == "paired-t" and paired.n == 3
    ref = stats.ttest_rel([0.80, 0.82, 0.81], [0.70, 0.72, 0.70]).confidence_interval(0.95)
    assert (paired.low, paired.high) == pytest.approx((ref.low, ref.high), rel=1e-10)
    assert paired.distinguishable

    unpaired = difference_interval({0: 0.80, 1: 0.82}, {5: 0.70, 6: 0.72, 7: 0.71})
    assert unpaired.method == "bootstrap" and unpaired.has_interval
    assert unpaired.delta == pytest.approx(0.81 - 0.71)


def test_difference_interval_identical_runs_is_indistinguishable():
    same = {0: 0.61, 1: 0.64, 2: 0.59}
    d = difference_interval(same, dict(same))
    assert d.method == "paired-t" and d.delta == 0.0
    assert d.low <= 0.0 <= d.high and not d.distinguishable
    boot = difference_interval([0.61, 0.64, 0.59], [0.61, 0.64, 0.59])
    assert boot.method == "bootstrap" and boot.low < 0.0 < boot.high and not boot.distinguishable


def test_difference_interval_n1_gives_no_interval():
    d = difference_interval({0: 0.9}, {0: 0.5})
    assert d.method == "none" and d.note == "n=1: no interval"
    assert d.delta == pytest.approx(0.4) and not d.distinguishable
    assert difference_interval([0.9, 0.8], [0.5]).method == "none"


def test_difference_interval_rejects_bad_confidence():
    with pytest.raises(RascalError, match="confidence"):
        difference_interval([1.0, 2.0], [1.0, 2.0], confidence=95)


def test_histogram_summary_against_raw_values():
    rng = np.random.default_rng(0)
    raw = rng.beta(5, 2, size=20000)
    counts, _ = np.histogram(raw, bins=WEIGHT_BIN_EDGES)
    h = histogram_summary(counts)
    # Shares are exact because 0.3, 0.7 and 0.9 are bin edges.
    assert h["share_ge_0.9"] == pytest.approx(np.mean(raw >= 0.9), abs=1e-12)
    assert h["share_ge_0.7"] == pytest.approx(np.mean(raw >= 0.7), abs=1e-12)
    assert h["share_lt_0.3"] == pytest.approx(np.mean(raw < 0.3), abs=1e-12)
    # Binned mean/std: within half a bin of the raw ones.
    assert abs(h["mean"] - raw.mean()) < 0.025
    assert abs(h["std"] - raw.std()) < 0.025
    assert h["total"] == 20000


def test_histogram_summary_analytic_and_errors():
    counts = np.zeros(20)
    counts[[0, 19]] = 1  # centres 0.025 and 0.975
    h = histogram_summary(counts)
    assert h["mean"] == pytest.approx(0.5) and h["std"] == pytest.approx(0.475)
    assert h["share_ge_0.9"] == 0.5 and h["share_lt_0.3"] == 0.5
    with pytest.raises(RascalError, match="edges"):
        histogram_summary(np.ones(10))
    with pytest.raises(RascalError, match="positive total"):
        histogram_summary(np.zeros(20))
