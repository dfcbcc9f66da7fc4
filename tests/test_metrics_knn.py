import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from rascal_geom.metrics import knn_accuracies, knn_accuracy


def _clustered(n, d, c, seed, spread=0.9):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((c, d))
    y = rng.integers(0, c, n)
    x = centres[y] + spread * rng.standard_normal((n, d)) * np.sqrt(d / 4)
    return x / np.linalg.norm(x, axis=1, keepdims=True), y


@pytest.mark.parametrize("k", [1, 7, 20])
def test_matches_sklearn_weighted_knn(k):
    x, y = _clustered(800, 16, 5, 0, spread=0.5)
    xb, yb, xq, yq = x[:600], y[:600], x[600:], y[600:]
    t = 0.07
    clf = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute",
                               weights=lambda d: np.exp((1 - d) / t)).fit(xb, yb)
    ref = (clf.predict(xq) == yq).mean()
    got = knn_accuracy(xb, yb, xq, yq, k=k, temperature=t)
    assert 0.3 < ref < 1.0  # the data is not trivially separable
    assert got == pytest.approx(ref, abs=1e-12)


def test_leave_one_out_and_several_ks():
    x, y = _clustered(400, 8, 4, 2)
    t = 0.1
    accs = knn_accuracies(x, y, ks=(1, 5, 50), temperature=t)
    s = x @ x.T
    np.fill_diagonal(s, -np.inf)
    for k in (1, 5, 50):
        idx = np.argsort(-s, axis=1)[:, :k]
        votes = np.zeros((400, 4))
        for i in range(400):
            for j in idx[i]:
                votes[i, y[j]] += np.exp(s[i, j] / t)
        assert accs[str(k)] == pytest.approx((votes.argmax(1) == y).mean(), abs=1e-12)
        assert knn_accuracy(x, y, k=k, temperature=t) == accs[str(k)]


def test_top5_counts_label_among_best_five():
    x, y = _clustered(300, 8, 10, 3, spread=2.0)
    top1 = knn_accuracy(x, y, k=20, topk=1)
    top5 = knn_accuracy(x, y, k=20, topk=5)
    assert top1 < top5 <= 1.0
