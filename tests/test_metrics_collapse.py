import numpy as np
import pytest
import torch

from rascal_geom.metrics import (LinearProbe, cdnv, classifier_collapse, effective_rank,
                                 fit_linear_probe, rankme)
from rascal_train.errors import RascalError


def _data(seed=0, n=300, d=6, c=4, spread=0.8):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    x = spread * rng.standard_normal((c, d))[y] + rng.standard_normal((n, d)) + 1.0
    return x, y


def _probe(weight, std=None, bias=None):
    c, d = weight.shape
    return LinearProbe(torch.zeros(d, dtype=torch.float64),
                       torch.as_tensor(std if std is not None else np.ones(d)),
                       torch.as_tensor(weight),
                       torch.as_tensor(bias if bias is not None else np.zeros(c)))


def test_classifier_collapse_restatement():
    x, y = _data()
    probe = fit_linear_probe(x, y, max_iter=20, dtype=torch.float64, device="cpu")
    out = classifier_collapse(x, y, probe)
    w = probe.weight.numpy() / probe.std.numpy()  # the classifier on the raw rows
    mus = np.array([x[y == k].mean(0) for k in range(4)])
    m = mus - x.mean(0)
    assert out["nc3"] == pytest.approx(np.sum((w / np.linalg.norm(w) - m / np.linalg.norm(m)) ** 2),
                                       rel=1e-10)
    norms = np.linalg.norm(w, axis=1)
    cos = [w[i] @ w[j] / (norms[i] * norms[j]) for i in range(4) for j in range(4) if i != j]
    assert out["w_equinorm"] == pytest.approx(norms.std() / norms.mean(), rel=1e-10)
    assert out["w_equiangularity"] == pytest.approx(np.std(cos), rel=1e-10)
    assert out["w_max_equiangularity"] == pytest.approx(np.mean(np.abs(np.array(cos) + 1 / 3)),
                                                        rel=1e-10)
    ncc = np.array([np.argmin([np.sum((h - mu) ** 2) for mu in mus]) for h in x])
    scores = ((x - probe.mean.numpy()) / probe.std.numpy() @ probe.weight.numpy().T
              + probe.bias.numpy())
    assert out["nc4_agreement"] == pytest.approx(np.mean(ncc == scores.argmax(1)))
    assert out["ncc_accuracy"] == pytest.approx(np.mean(ncc == y))
    assert 0 < out["nc3"] < 2 and 0.5 < out["nc4_agreement"] < 1


def test_self_dual_classifier_is_collapsed():
    # Class means on a simplex ETF and the classifier equal to them: NC2 of W, NC3 vanish, and with
    # bias -||mu||^2 / 2 the classifier is the nearest-centre rule, so NC4 agreement is 1.
    c = 5
    etf = np.sqrt(c / (c - 1)) * (np.eye(c) - 1.0 / c)
    y = np.repeat(np.arange(c), 40)
    x = etf[y] + 0.3 * np.random.default_rng(0).standard_normal((len(y), c))
    mus = np.array([x[y == k].mean(0) for k in range(c)])
    out = classifier_collapse(x, y, _probe(etf, bias=np.zeros(c)))
    assert (out["w_equinorm"] < 1e-12 and out["w_equiangularity"] < 1e-12
            and out["w_max_equiangularity"] < 1e-12)
    assert classifier_collapse(x, y, _probe(mus - x.mean(0)))["nc3"] < 1e-24
    assert (classifier_collapse(x, y, _probe(mus, bias=-0.5 * (mus ** 2).sum(1)))["nc4_agreement"]
            == 1.0)


def test_classifier_collapse_errors():
    x, y = _data()
    with pytest.raises(RascalError, match="probe over these features"):
        classifier_collapse(x[:, :3], y, _probe(np.ones((4, 6))))
    one = classifier_collapse(x, np.zeros(len(x), dtype=int), _probe(np.ones((4, 6))))
    assert np.isnan(one["nc3"])


def test_cdnv_restatement_and_invariance():
    x, y = _data(1, c=5)
    y[y == 3] = 4  # class 3 absent
    out = cdnv(x, y)
    classes = [0, 1, 2, 4]
    mus = {k: x[y == k].mean(0) for k in classes}
    var = {k: np.mean(np.sum((x[y == k] - mus[k]) ** 2, axis=1)) for k in classes}
    pair = {(i, j): (var[i] + var[j]) / (2 * np.sum((mus[i] - mus[j]) ** 2))
            for i in classes for j in classes if i != j}
    assert out["cdnv"] == pytest.approx(np.mean(list(pair.values())), rel=1e-10)
    for i in classes:
        assert out["per_class"][i] == pytest.approx(
            np.mean([v for (a, _), v in pair.items() if a == i]), rel=1e-10)
    assert np.isnan(out["per_class"][3])
    assert cdnv(7.0 * x - 3.0, y)["cdnv"] == pytest.approx(out["cdnv"], rel=1e-10)
    # A tight class far from the others: its small variance
    # survives (no sum-of-squares cancellation).
    tight = np.r_[x, 1e4 + 1e-4 * np.random.default_rng(2).standard_normal((20, 6))]
    labels = np.r_[y, np.full(20, 5)]
    assert cdnv(tight, labels)["per_class"][5] == pytest.approx(
        np.mean([(var[k] + np.mean(np.sum((tight[-20:] - tight[-20:].mean(0)) ** 2, 1)))
                 / (2 * np.sum((mus[k] - tight[-20:].mean(0)) ** 2)) for k in classes]), rel=1e-8)


def test_rankme_raw_against_svd_and_effective_rank_normalised():
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((200, 8)) * np.array([5, 4, 3, 2, 1, 1, 0.5, 0.1])
         * rng.uniform(0.2, 3, (200, 1)))
    s = np.linalg.svd(x, compute_uv=False)
    p = s / s.sum() + 1e-7
    assert rankme(x) == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-10)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert effective_rank(x) == pytest.approx(rankme(xn, eps=0.0), rel=1e-12)
    assert abs(rankme(x) - effective_rank(x)) > 0.05  # raw norms change the spectrum
    wide = rng.standard_normal((5, 40))  # fewer rows than columns: min(n, d) singular values
    q = np.linalg.svd(wide, compute_uv=False)
    q /= q.sum()
    assert rankme(wide, eps=0.0) == pytest.approx(np.exp(-np.sum(q * np.log(q))), rel=1e-10)
    assert rankme(np.tile(np.eye(6)[:3], (4, 1)), eps=0.0) == pytest.approx(3.0, rel=1e-12)
    with pytest.raises(RascalError, match="'eps'"):
        rankme(x, eps=-1.0)
