import numpy as np
import pytest

from rascal_geom.metrics import geodesic_variance


def _frechet_reference(x):
    """Karcher mean by plain Riemannian gradient descent in float64, one class at a time."""
    mu = x.mean(0)
    mu /= np.linalg.norm(mu)
    for _ in range(500):
        cos = np.clip(x @ mu, -1, 1)
        th = np.arccos(cos)
        v = np.mean([(t / np.sin(t) if t > 0 else 1.0) * (xi - c * mu) for xi, c, t in zip(x, cos, th)], axis=0)
        nv = np.linalg.norm(v)
        if nv < 1e-14:
            break
        mu = np.cos(nv) * mu + np.sin(nv) * v / nv
        mu /= np.linalg.norm(mu)
    return mu


def test_matches_float64_restatement():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 90)
    x = 2 * rng.standard_normal((3, 6))[y] + rng.standard_normal((90, 6))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    out = geodesic_variance(x, y)
    mus = np.array([_frechet_reference(x[y == c]) for c in range(3)])
    v = np.array([np.mean(np.arccos(np.clip(x[y == c] @ mus[c], -1, 1)) ** 2) for c in range(3)])
    g = np.arccos(np.clip(mus @ mus.T, -1, 1)) ** 2
    between = g[~np.eye(3, dtype=bool)].mean()
    np.testing.assert_allclose(out["per_class"], v, rtol=1e-8)
    assert out["mean"] == pytest.approx(v.mean(), rel=1e-8)
    assert out["collapse_ratio"] == pytest.approx(v.mean() / between, rel=1e-8)
    # The Karcher mean minimises the variance: the Euclidean-mean direction does no better.
    e = x[y == 0].mean(0)
    e /= np.linalg.norm(e)
    assert v[0] <= np.mean(np.arccos(np.clip(x[y == 0] @ e, -1, 1)) ** 2) + 1e-12


def test_analytic_cases():
    # Two points at angle 2a around a pole: mean is the pole, variance a^2.
    a = 0.4
    x = np.array([[np.cos(a), np.sin(a)], [np.cos(a), -np.sin(a)], [0.0, 1.0], [0.0, 1.0]])
    out = geodesic_variance(x, np.array([0, 0, 1, 1]))
    assert out["per_class"][0] == pytest.approx(a ** 2, rel=1e-10)
    assert out["per_class"][1] == 0.0  # a collapsed class
    assert out["between"] == pytest.approx((np.pi / 2) ** 2, rel=1e-10)
    one_each = geodesic_variance(np.eye(4), np.arange(4))
    assert one_each["mean"] == 0.0 and one_each["collapse_ratio"] == 0.0
