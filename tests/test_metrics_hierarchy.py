import numpy as np
import pytest

from rascal_geom.metrics import hierarchy_retention


def test_matches_restatement():
    rng = np.random.default_rng(0)
    n = 300
    coarse = rng.integers(0, 3, n)
    fine = coarse * 4 + rng.integers(0, 4, n)
    x = 2 * np.eye(15)[coarse] + 0.6 * np.eye(15)[3 + fine] + 0.35 * rng.standard_normal((n, 15))
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    k, t = 7, 0.07
    out = hierarchy_retention(x, coarse, fine, k=k, temperature=t)
    correct, chance = [], []
    for i in range(n):
        others = np.array([j for j in np.flatnonzero(coarse == coarse[i]) if j != i])
        s = xn[others] @ xn[i]
        nn = np.argsort(-s)[:k]
        votes = np.zeros(12)
        np.add.at(votes, fine[others[nn]], np.exp(s[nn] / t))
        correct.append(votes.argmax() == fine[i])
        members = fine[coarse == coarse[i]]
        p = np.bincount(members, minlength=12) / len(members)
        chance.append((p ** 2).sum())
    acc, ch = np.mean(correct), np.mean(chance)
    assert out["accuracy"] == pytest.approx(acc, abs=1e-12)
    assert out["chance"] == pytest.approx(ch, abs=1e-12)
    assert out["retention"] == pytest.approx((acc - ch) / (1 - ch), abs=1e-12)
    assert 0.3 < out["retention"] < 1.0


def test_fine_level_collapsed_gives_chance():
    # Fine labels invisible inside each coarse class (embedding = coarse one-hot): retention ~ 0.
    rng = np.random.default_rng(1)
    coarse = rng.integers(0, 2, 4000)
    fine = coarse * 2 + rng.integers(0, 2, 4000)
    x = np.eye(2)[coarse] + 1e-3 * rng.standard_normal((4000, 2))
    out = hierarchy_retention(x, coarse, fine, k=20)
    assert out["chance"] == pytest.approx(0.5, abs=0.01)
    assert abs(out["retention"]) < 0.06


def test_reports_the_k_it_used():
    # Coarse classes of 4 and 6 samples: at most 5 within-class neighbours, whatever k asks.
    rng = np.random.default_rng(2)
    coarse = np.array([0] * 4 + [1] * 6)
    fine = coarse * 2 + np.arange(10) % 2
    out = hierarchy_retention(rng.standard_normal((10, 5)), coarse, fine, k=20)
    assert (out["k"], out["k_requested"], out["short"], out["alone"]) == (5, 20, 10, 0)
    out = hierarchy_retention(rng.standard_normal((11, 5)), np.r_[coarse, 2], np.r_[fine, 5], k=3)
    assert (out["k"], out["k_requested"], out["short"], out["alone"]) == (3, 3, 0, 1)
