import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from rascal_geom.metrics import fit_linear_probe, holdout_probe_accuracy, linear_probe_accuracy
from rascal_geom.metrics.linear_probe import holdout_split
from rascal_train.errors import RascalError


def _data(seed=0, n=600, d=10, c=4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    return rng.standard_normal((c, d))[y] + 1.5 * rng.standard_normal((n, d)) + 3.0, y


def test_matches_sklearn_logistic_regression():
    x, y = _data()
    wd = 1e-2
    probe = fit_linear_probe(x, y, weight_decay=wd, dtype=__import__("torch").float64, tol=1e-10,
                             max_iter=500)
    xs = (x - x.mean(0)) / x.std(0, ddof=1)
    ref = LogisticRegression(C=1.0 / (wd * len(x)), tol=1e-10, max_iter=5000).fit(xs, y)
    p_ref = ref.predict_proba(xs)
    logits = probe.logits(x)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(p, p_ref, atol=1e-4)
    assert (probe.predict(x) == ref.predict(xs)).all()


def test_holdout_accuracy_equals_manual_split():
    x, y = _data(1)
    tr, te = holdout_split(y, 0.5, seed=0)
    assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == len(y)
    manual = linear_probe_accuracy(x[tr], y[tr], x[te], y[te])
    auto = holdout_probe_accuracy(x, y, 0.5, seed=0)
    assert manual == auto
    assert 0.5 < auto["top1"] < auto["top5"] == 1.0  # 4 classes: top-5 always holds


def test_label_lengths_are_checked_against_the_rows():
    # Before: 59 labels for 60 rows crashed inside NumPy broadcasting, and a single label for 60
    # rows was broadcast and gave a number.
    x, y = _data(4, n=200)
    for bad in (y[140:199], y[140:141]):
        with pytest.raises(RascalError,
                           match=r"'test_y' parameter must be an integer array of shape \(60,\)"):
            linear_probe_accuracy(x[:140], y[:140], x[140:], bad)
    with pytest.raises(RascalError,
                       match=r"'train_y' parameter must be an integer array of shape \(140,\)"):
        linear_probe_accuracy(x[:140], y[:139], x[140:], y[140:])
