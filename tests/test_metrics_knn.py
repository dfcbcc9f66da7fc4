import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from rascal_geom.metrics import knn_accuracies, knn_accuracy
from rascal_train.errors import RascalError


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


def test_top5_never_counts_classes_without_votes():
    # k=1: one class gets a vote, so "label among the 5 best-voted" is "label is the neighbour's":
    # top-5 equals top-1, whatever the class ids. Before, the 4 lowest-numbered zero-vote classes
    # were counted as voted (0.453 vs 0.373 for a permutation of ids in the case).
    x, y = _clustered(400, 8, 12, 5, spread=2.0)
    perm = np.random.default_rng(0).permutation(12)
    top1 = knn_accuracy(x, y, k=1)
    assert 0.1 < top1 < 0.9
    assert knn_accuracy(x, y, k=1, topk=5) == top1
    assert knn_accuracy(x, perm[y], k=1, topk=5) == top1
    # k=3: at most 3 voted classes, so top-5 is "label among the voted" (a float64 restatement).
    s = (x @ x.T).astype(np.float64)
    np.fill_diagonal(s, -np.inf)
    nn = np.argsort(-s, axis=1)[:, :3]
    among = np.mean([y[i] in y[nn[i]] for i in range(len(y))])
    for labels in (y, perm[y]):
        assert knn_accuracy(x, labels, k=3, topk=5) == pytest.approx(among, abs=1e-12)


def test_knn_accuracies_keys_name_the_k_used():
    x, y = _clustered(120, 8, 4, 1)
    accs = knn_accuracies(x, y, ks=(1, 20, 500))
    assert set(accs) == {"1", "20", "119"}  # 500 was clipped to the 119 other rows
    assert accs["119"] == knn_accuracy(x, y, k=119)


def test_zero_vectors_are_refused_with_their_count():
    x, y = _clustered(50, 8, 3, 4)
    x[[3, 17]] = 0.0
    with pytest.raises(RascalError, match="2 all-zero row\\(s\\) of 50 \\(rows 3, 17\\)"):
        knn_accuracy(x, y, k=5)
    with pytest.raises(RascalError, match="all-zero"):
        knn_accuracies(x, y, ks=(1,))
