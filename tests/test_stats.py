"""Seed statistics against SciPy and analytic cases."""

import numpy as np
import pytest
from scipy import stats

from rascal_geom.stats import (WEIGHT_BIN_EDGES, difference_interval, histogram_summary,
                               paired_t_interval, summarize, welch_t_interval)
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


def test_welch_t_interval_matches_scipy_ttest_ind():
    rng = np.random.default_rng(11)
    meth = rng.normal(0.72, 0.03, size=4)
    base = rng.normal(0.70, 0.01, size=3)
    for conf in (0.9, 0.95, 0.99):
        delta, low, high = welch_t_interval(meth, base, conf)
        ref = stats.ttest_ind(meth, base, equal_var=False).confidence_interval(conf)
        assert delta == pytest.approx(meth.mean() - base.mean(), rel=1e-12)
        assert low == pytest.approx(ref.low, rel=1e-10)
        assert high == pytest.approx(ref.high, rel=1e-10)


def test_welch_t_interval_analytic_and_batched():
    # sides [0, 2] and [0, 0]: delta 1, se^2 = 2/2 + 0 = 1, nu = 1 / (1/1) = 1,
    # t_{0.975, 1} = 12.7062...
    t = 12.706204736174707
    assert welch_t_interval([0.0, 2.0], [0.0, 0.0]) == pytest.approx((1.0, 1.0 - t, 1.0 + t),
                                                                     rel=1e-9)
    assert welch_t_interval([0.5, 0.5], [0.25, 0.25]) == (0.25, 0.25, 0.25)  # no spread: a point
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(6, 3)), rng.normal(size=(6, 4))
    delta, low, high = welch_t_interval(a, b)
    for i in range(6):
        assert (delta[i], low[i], high[i]) == pytest.approx(welch_t_interval(a[i], b[i]), rel=1e-12)
    delta, low, high = paired_t_interval(a, b[:, :3])
    for i in range(6):
        assert (delta[i], low[i], high[i]) == pytest.approx(paired_t_interval(a[i], b[i, :3]),
                                                            rel=1e-12)


#: Comparisons simulated per setting: the binomial sd of a 5% rate is then 0.0015.
REPLICATIONS = 20000


def _false_positive_rate(interval, a: np.ndarray, b: np.ndarray) -> float:
    _, low, high = interval(a, b)
    return float(np.mean((low > 0.0) | (high < 0.0)))


@pytest.mark.parametrize("n", [2, 3, 5, 10])
def test_intervals_hold_their_coverage_under_no_difference(n):
    """Seeds are normal; method and baseline have the same mean, so an interval excluding 0 is a
    false claim.

    Paired: each seed shares an effect between the two sides (as a shared data order does), the
    paired t interval is exact, so its rate is 5% within simulation noise. Unpaired: Welch's
    interval is exact in the limit and conservative at small n with equal spreads (about 2.3% at
    n=2, 3.5% at n=3, 4.5% at n=5 and 4.8% at n=10 in 200,000 draws: the Satterthwaite df lies
    below the pooled 2n-2); it must never exceed 5%
    beyond noise, with equal spreads or with a 3x larger spread on one side. The percentile
    bootstrap it replaces gave about 35% at n=2, 19% at n=3 and 13% at n=5.
    """
    rng = np.random.default_rng(100 + n)
    noise = 4 * np.sqrt(0.05 * 0.95 / REPLICATIONS)  # 4 binomial sds: 0.006
    shared = rng.normal(size=(REPLICATIONS, n))
    paired = _false_positive_rate(paired_t_interval, shared + rng.normal(size=(REPLICATIONS, n)),
                                  shared + rng.normal(size=(REPLICATIONS, n)))
    equal = _false_positive_rate(welch_t_interval, rng.normal(size=(REPLICATIONS, n)),
                                 rng.normal(size=(REPLICATIONS, n)))
    unequal = _false_positive_rate(welch_t_interval, 3.0 * rng.normal(size=(REPLICATIONS, n)),
                                   rng.normal(size=(REPLICATIONS, n)))
    report = (f"n={n}: excluding 0 paired {paired:.4f}, Welch equal sd {equal:.4f}, "
              f"Welch sd 3:1 {unequal:.4f}")
    print(report)
    assert abs(paired - 0.05) < noise, report
    assert equal < 0.05 + noise and unequal < 0.05 + noise, report
    # Conservative, not useless: within noise of 5% at n = 10, above 2% below that.
    assert equal > (0.05 - noise if n >= 10 else 0.02), report


def test_interval_power_at_two_sd_difference_n5():
    """A true shift of 2 sd with 5 seeds per side: the power is printed and checked against
    theory."""
    rng = np.random.default_rng(7)
    shape = (REPLICATIONS, 5)
    welch = _false_positive_rate(welch_t_interval, rng.normal(2.0, 1.0, shape),
                                 rng.normal(0.0, 1.0, shape))
    shared = rng.normal(size=shape)
    paired = _false_positive_rate(paired_t_interval, shared + rng.normal(2.0, 1.0, shape),
                                  shared + rng.normal(0.0, 1.0, shape))
    report = f"power at a 2 sd difference, n=5 per side: Welch {welch:.3f}, paired {paired:.3f}"
    print(report)
    def t_power(ncp: float, df: int) -> float:  # two-sided, from the noncentral t
        t = stats.t.ppf(0.975, df)
        return float(stats.nct.sf(t, df, ncp) + stats.nct.cdf(-t, df, ncp))

    noise = 4 * np.sqrt(0.25 / REPLICATIONS)
    # Paired differences have sd sqrt(2): ncp = 2/sqrt(2)·sqrt(5) over 4 df (0.663). Welch cannot
    # beat the pooled t test that knows the spreads are equal (ncp = 2·sqrt(5/2) over 8 df: 0.791).
    assert abs(paired - t_power(2.0 / np.sqrt(2.0) * np.sqrt(5.0), 4)) < noise, report
    assert 0.7 < welch < t_power(2.0 * np.sqrt(2.5), 8) + noise, report


def test_difference_interval_chooses_pairing_by_seed():
    paired = difference_interval({0: 0.80, 1: 0.82, 2: 0.81}, {0: 0.70, 1: 0.72, 2: 0.70})
    assert paired.method == "paired-t" and paired.n == 3
    ref = stats.ttest_rel([0.80, 0.82, 0.81], [0.70, 0.72, 0.70]).confidence_interval(0.95)
    assert (paired.low, paired.high) == pytest.approx((ref.low, ref.high), rel=1e-10)
    assert paired.distinguishable

    unpaired = difference_interval({0: 0.80, 1: 0.82}, {5: 0.70, 6: 0.72, 7: 0.71})
    assert unpaired.method == "welch-t" and unpaired.has_interval
    assert unpaired.delta == pytest.approx(0.81 - 0.71)
    ref = stats.ttest_ind([0.80, 0.82], [0.70, 0.72, 0.71],
                          equal_var=False).confidence_interval(0.95)
    assert (unpaired.low, unpaired.high) == pytest.approx((ref.low, ref.high), rel=1e-10)


def test_difference_interval_identical_runs_is_indistinguishable():
    same = {0: 0.61, 1: 0.64, 2: 0.59}
    d = difference_interval(same, dict(same))
    assert d.method == "paired-t" and d.delta == 0.0
    assert d.low <= 0.0 <= d.high and not d.distinguishable
    welch = difference_interval([0.61, 0.64, 0.59], [0.61, 0.64, 0.59])
    assert welch.method == "welch-t" and welch.low < 0.0 < welch.high and not welch.distinguishable


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
