import importlib

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
        v = np.mean([(t / np.sin(t) if t > 0 else 1.0) * (xi - c * mu)
                     for xi, c, t in zip(x, cos, th)], axis=0)
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
    assert out["singleton_classes"] == 0


def test_singleton_classes_are_counted_not_averaged_as_zero():
    # Before, each singleton entered the mean with V = 0 (here: mean 0, "fully collapsed").
    one_each = geodesic_variance(np.eye(4), np.arange(4))
    assert np.isnan(one_each["mean"]) and np.isnan(one_each["collapse_ratio"])
    assert one_each["singleton_classes"] == 4 and np.isnan(one_each["per_class"]).all()
    # singleton means still count here
    assert one_each["between"] == pytest.approx((np.pi / 2) ** 2)
    a = 0.3
    x = np.array([[np.cos(a), np.sin(a), 0.0], [np.cos(a), -np.sin(a), 0.0], [0.0, 0.0, 1.0]])
    out = geodesic_variance(x, [0, 0, 1])
    assert out["mean"] == pytest.approx(a ** 2, rel=1e-10) and out["singleton_classes"] == 1


@pytest.mark.parametrize("dim", [2, 3, 16])
def test_antipodal_pair_reaches_the_frechet_minimum(dim):
    # The Euclidean mean vanishes. Every point orthogonal to the pair is at pi/2 from both, so the
    # minimum is (pi/2)^2; the old start at a member stayed there (V = (0 + pi^2)/2).
    rng = np.random.default_rng(dim)
    p = rng.standard_normal(dim)
    p /= np.linalg.norm(p)
    q = rng.standard_normal(dim)
    q /= np.linalg.norm(q)
    x = np.stack([p, -p, q, 0.8 * q + 0.6 * np.roll(q, 1)])
    out = geodesic_variance(x, [0, 0, 1, 1])
    assert out["per_class"][0] == pytest.approx((np.pi / 2) ** 2, rel=1e-10)


def test_balanced_octahedron_beats_every_member():
    # +-e1, +-e2, +-e3: the mean vanishes; a member gives V = pi^2/3, a face centre
    # (1,1,1)/sqrt(3) gives mean(3 arccos(1/sqrt3)^2 + 3 arccos(-1/sqrt3)^2)/6, which is lower.
    x = np.vstack([np.eye(3), -np.eye(3)])
    face = (np.arccos(1 / np.sqrt(3)) ** 2 + np.arccos(-1 / np.sqrt(3)) ** 2) / 2
    out = geodesic_variance(x, np.zeros(6, dtype=int))
    assert face < np.pi ** 2 / 3
    assert out["per_class"][0] <= face + 1e-9


def _karcher_restatement(x, y, n_classes, tol=1e-10, max_iter=100):
    """karcher_means' iteration written out densely in float64: every class at once, ``mu <-
    Exp_mu(mean_i Log_mu(x_i))`` with ``Log_mu(x) = theta / sin(theta) (x - cos(theta) mu)``,
    until the largest step is below ``tol``."""
    onehot = np.eye(n_classes)[y]
    counts = np.maximum(onehot.sum(0), 1.0)[:, None]
    mu = onehot.T @ x
    mu /= np.maximum(np.linalg.norm(mu, axis=1, keepdims=True), 1e-300)
    for it in range(1, max_iter + 1):
        cos = np.clip((x * mu[y]).sum(1), -1.0, 1.0)
        theta = np.arccos(cos)
        scale = np.where(theta > 1e-12, theta / np.maximum(np.sin(theta), 1e-300), 1.0)
        v = onehot.T @ (scale[:, None] * (x - cos[:, None] * mu[y])) / counts
        step = np.linalg.norm(v, axis=1, keepdims=True)
        mu = np.cos(step) * mu + np.sin(step) * v / np.maximum(step, 1e-300)
        mu /= np.maximum(np.linalg.norm(mu, axis=1, keepdims=True), 1e-300)
        if step.max() < tol:
            return mu, it
    return mu, max_iter


@pytest.mark.parametrize("block_rows", [7, None])
def test_matches_a_dense_restatement_of_the_iteration(monkeypatch, block_rows):
    # The module by name: the package exports the function under the same name.
    module = importlib.import_module("rascal_geom.metrics.geodesic_variance")
    rng = np.random.default_rng(3)
    n, d, c = 2000, 16, 9
    y = rng.integers(0, c, n)
    y[y == 4] = 5  # class 4 absent
    y[17] = 9  # a singleton
    x = (rng.standard_normal((c + 1, d))[y] + 0.9 * rng.standard_normal((n, d))).astype(np.float32)
    if block_rows:  # many blocks, each with several classes, each class over many blocks
        monkeypatch.setattr(module, "_CACHE_ELEMENTS", block_rows * d)
    out = geodesic_variance(x, y)
    # The float32 rows as geodesic_variance normalises them, then read in float64.
    xn = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float64)
    mu, iterations = _karcher_restatement(xn, y, c + 1)
    assert out["iterations"] == iterations > 3
    members = np.bincount(y, minlength=c + 1)
    d2 = np.arccos(np.clip((xn * mu[y]).sum(1), -1, 1)) ** 2
    v = np.bincount(y, d2, c + 1) / np.maximum(members, 1)
    spread = members > 1
    np.testing.assert_allclose(out["per_class"][spread], v[spread], rtol=1e-12)
    assert np.isnan(out["per_class"][~spread]).all() and out["singleton_classes"] == 1
    present = mu[members > 0]
    g = np.arccos(np.clip(present @ present.T, -1, 1)) ** 2
    assert out["between"] == pytest.approx(g[~np.eye(len(present), dtype=bool)].mean(), rel=1e-12)
    assert out["mean"] == pytest.approx(v[spread].mean(), rel=1e-12)
