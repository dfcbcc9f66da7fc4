"""kNN classification accuracy with the weighted vote of the usual kNN monitor.

Each of the ``k`` cosine neighbours votes for its label with weight ``exp(sim / temperature)``
(Wu et al. 2018, as in the SupCon / MoCo kNN monitors); the prediction is the class with the
largest summed weight.
"""

from __future__ import annotations

import numpy as np

from rascal_geom.metrics._inputs import as_labels, check_positive_int, row_blocks, unit_rows
from rascal_geom.neighbors import knn_search
from rascal_train.errors import RascalError

#: The vote temperature of the usual kNN monitor (Wu et al. 2018).
KNN_TEMPERATURE = 0.07
#: Neighbours that vote in the kNN monitor and in ``rascal eval``'s kNN accuracy.
KNN_K = 20


def knn_vote(sims: np.ndarray, nbr_labels: np.ndarray, num_classes: int, k: int,
             temperature: float = KNN_TEMPERATURE) -> np.ndarray:
    """Summed vote weights per class from the first ``k`` neighbours.

    Parameters
    ----------
    sims : ndarray of shape (n, >=k), float
        Neighbour cosine similarities, descending; ``-inf`` marks padding.
    nbr_labels : ndarray of shape (n, >=k), int
        Labels of those neighbours (any value where ``sims`` is ``-inf``).
    num_classes : int
    k : int
    temperature : float, default=0.07

    Returns
    -------
    scores : ndarray of shape (n, num_classes), float64
    """
    s = np.asarray(sims[:, :k], dtype=np.float64)
    lab = np.asarray(nbr_labels[:, :k])
    valid = np.isfinite(s)
    weights = np.where(valid, np.exp((np.where(valid, s, 0.0) - 1.0) / temperature), 0.0)
    flat = (np.arange(len(s))[:, None] * num_classes + np.where(valid, lab, 0)).ravel()
    return np.bincount(flat, weights.ravel(),
                       minlength=len(s) * num_classes).reshape(len(s), num_classes)


def knn_correct(sims: np.ndarray, nbr_labels: np.ndarray, labels: np.ndarray, num_classes: int,
                k: int, temperature: float = KNN_TEMPERATURE, topk: int = 1,
                chunk: int = 8192) -> np.ndarray:
    """Whether each row's weighted vote (:func:`knn_vote`) ranks its true label in the top ``topk``.

    A class no neighbour voted for is never in the top ``topk``: with fewer than ``topk`` voted
    classes, counting zero-vote classes would make the number depend on how classes are
    numbered. Rows are voted in chunks so memory stays at ``chunk * num_classes`` scores.

    Returns
    -------
    ndarray of shape (n,), bool
    """
    chunk = max(1, min(chunk, 10_000_000 // max(num_classes, 1)))
    out = np.empty(len(sims), dtype=bool)
    for start in range(0, len(sims), chunk):
        rows = slice(start, start + chunk)
        scores = knn_vote(sims[rows], nbr_labels[rows], num_classes, k, temperature)
        voted = scores[np.arange(len(scores)), labels[rows]] > 0
        out[rows] = voted & topk_correct(scores, labels[rows], topk)
    return out


def topk_correct(scores: np.ndarray, labels: np.ndarray, topk: int = 1) -> np.ndarray:
    """Whether each row's true label is among its ``topk`` highest scores (bool array of shape
    (n,)).

    For ``topk > 1`` a label counts when fewer than ``topk`` classes score strictly higher, so
    ties are resolved without looking at class ids.
    """
    if topk == 1:
        return scores.argmax(axis=1) == labels
    own = scores[np.arange(len(scores)), labels]
    return (scores > own[:, None]).sum(axis=1) < topk


def knn_accuracy(bank, bank_labels, queries=None, query_labels=None, k: int = KNN_K,
                 temperature: float = KNN_TEMPERATURE, topk: int = 1,
                 backend: str | None = None) -> float:
    """Weighted-vote cosine kNN accuracy.

    Parameters
    ----------
    bank : array-like of shape (n_bank, dim), float
        Reference embeddings (rows are L2-normalised here).
    bank_labels : array-like of shape (n_bank,), int
    queries : array-like of shape (n_queries, dim), float, or None, default=None
        ``None``: leave-one-out on the bank (no sample votes for itself).
    query_labels : array-like of shape (n_queries,), int, or None
    k : int, default=20
    temperature : float, default=0.07
    topk : int, default=1
        A query counts as correct when its label is among the ``topk`` best-voted classes.

    Returns
    -------
    float
        Fraction of queries classified correctly.
    """
    check_positive_int(k, "k", "knn_accuracy")
    check_positive_int(topk, "topk", "knn_accuracy")
    if not temperature > 0:
        raise RascalError("The 'temperature' parameter of knn_accuracy must be a float in "
                          f"(0, inf). Got {temperature!r} instead.")
    bank = unit_rows(bank, "bank", np.float32)
    bank_labels = as_labels(bank_labels, len(bank), "bank_labels")
    if queries is None:
        q, q_labels, loo = bank, bank_labels, True
    else:
        q = unit_rows(queries, "queries", np.float32)
        if query_labels is None:
            raise RascalError("knn_accuracy got queries without query_labels; pass both or "
                              "neither.")
        q_labels, loo = as_labels(query_labels, len(q), "query_labels"), False
    k = min(k, len(bank) - int(loo))
    sims, idx = knn_search(q, bank, k, exclude_self=loo, backend=backend)
    num_classes = int(max(bank_labels.max(), q_labels.max())) + 1
    return float(knn_correct(sims, bank_labels[idx], q_labels, num_classes, k, temperature,
                             topk).mean())


def knn_accuracies(emb, labels, ks=(1, 20, 200), temperature: float = KNN_TEMPERATURE,
                   topk: int = 1, neighbours: tuple[np.ndarray, np.ndarray] | None = None,
                   backend: str | None = None) -> dict[str, float]:
    """Leave-one-out kNN accuracy for several ``k`` from one neighbour search.

    Parameters
    ----------
    emb : array-like of shape (n_samples, dim), float
    labels : array-like of shape (n_samples,), int
    ks : sequence of int, default=(1, 20, 200)
    neighbours : (sims, idx) from ``knn_search(emb, emb, >= max(ks), exclude_self=True)``, optional
        Reuse a search already made (e.g. for several label levels).

    Returns
    -------
    dict of str to float
        ``{str(k_used): accuracy}`` keyed by the ``k`` actually used: a requested ``k`` larger
        than ``n_samples - 1`` (or than the neighbours passed in) is clipped, and its key says so
        (requests that clip to the same ``k`` give one entry).
    """
    labels = as_labels(labels, len(emb), "labels")
    if neighbours is None:
        emb = unit_rows(emb, "emb", np.float32)
        neighbours = knn_search(emb, emb, min(max(ks), len(emb) - 1), exclude_self=True,
                                backend=backend)
    sims, idx = neighbours
    num_classes = int(labels.max()) + 1
    out = {}
    for k in ks:
        kk = min(k, sims.shape[1])
        # Blocks of rows: the neighbours' labels are (block, k), never (n_samples, k) at once.
        correct = sum(int(knn_correct(sims[r], labels[idx[r, :kk]], labels[r], num_classes, kk,
                                      temperature, topk).sum()) for r in row_blocks(len(idx), kk))
        out[str(kk)] = correct / len(idx)
    return out
