"""Leave-one-out retrieval as metric-learning papers report it.

Every sample queries all the others, ranked by cosine similarity of the L2-normalised rows. With
``R`` the number of other samples of the query's class:

- ``precision_at_1``: the nearest other sample shares the class;
- ``r_precision``: the share of same-class samples among the ``R`` nearest;
- ``map_at_r``: ``(1 / R) sum_{i <= R} P(i) rel(i)``, ``P(i)`` the precision among the ``i`` nearest
  and ``rel(i)`` whether the ``i``-th is of the class (Musgrave, Belongie & Lim 2020);
- ``recall_at_K``: a same-class sample is among the ``K`` nearest (Song et al. 2016).

Queries alone in their class (``R = 0``) are left out, and means are over queries, as
pytorch-metric-learning's ``AccuracyCalculator`` does (``avg_of_avgs=False``); the per-class
arrays are the means over each class's queries (its ``return_per_class``).
"""

from __future__ import annotations

import numpy as np

from rascal_geom.metrics._inputs import as_labels, check_positive_int, unit_rows
# _drop_self: the leave-one-out step of knn_search, for a query subset searching the whole set.
from rascal_geom.neighbors import _drop_self, grouped_knn, knn_search
from rascal_train.errors import RascalError

#: Entries of one block of neighbour labels scored at a time.
_BLOCK_ENTRIES = 1 << 22


def _check_ks(ks) -> tuple[int, ...]:
    ks = tuple(ks)
    for k in ks:
        check_positive_int(k, "ks", "retrieval_metrics")
    return ks


def retrieval_k(labels, ks=(1, 2, 4, 8)) -> int:
    """Neighbours per sample that :func:`retrieval_metrics` needs:
    ``max(largest class - 1, max(ks))``, at most ``n_samples - 1``. Search this many once to share
    one search with other metrics."""
    labels = as_labels(labels, len(labels), "labels")
    ks = _check_ks(ks)
    return int(min(len(labels) - 1, max(np.bincount(labels).max() - 1, max(ks, default=1))))


def _scores(nbr_labels: np.ndarray, labels: np.ndarray, r: np.ndarray, ks: tuple[int, ...]) -> dict:
    """Per-query precision@1, R-precision, AP@R and Recall@K from neighbour labels, in row blocks.

    ``nbr_labels`` (n, >= max(r)) holds the labels of each query's neighbours, nearest first
    (``-1`` for padding); ``r`` (n,) the number of relevant others. Queries with ``r == 0`` get NaN.
    """
    n = len(labels)
    # A K above the neighbours available (n_samples - 1) reads them all.
    width = min(nbr_labels.shape[1], max(int(r.max()), max(ks, default=1)))
    keys = ["precision_at_1", "r_precision", "map_at_r"] + [f"recall_at_{k}" for k in ks]
    out = {key: np.full(n, np.nan) for key in keys}
    rank = np.arange(1, width + 1)
    step = max(1, _BLOCK_ENTRIES // width)
    for start in range(0, n, step):
        rows = slice(start, start + step)
        rr = r[rows]
        ok = rr > 0
        match = nbr_labels[rows, :width] == labels[rows, None]
        hits = match & (rank <= rr[:, None])
        found = hits.sum(1)
        precision_sum = (np.cumsum(hits, axis=1) * hits / rank).sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            values = {"precision_at_1": match[:, 0].astype(float), "r_precision": found / rr,
                      "map_at_r": precision_sum / rr}
        values.update({f"recall_at_{k}": match[:, :k].any(1).astype(float) for k in ks})
        for key in keys:
            out[key][rows] = np.where(ok, values[key], np.nan)
    return out


def _given_neighbours(neighbours, n: int, k: int, owner: str, why: str) -> np.ndarray:
    """The first ``k`` columns of a search the caller made, or a one-line error saying what is
    needed."""
    idx = np.asarray(neighbours[1])
    if idx.ndim != 2 or len(idx) != n or idx.shape[1] < k:
        raise RascalError(f"{owner} needs at least {k} neighbours for each of the {n} samples "
                          f"({why}); got neighbour indices of shape {idx.shape}.")
    return idx[:, :k]


def _summary(per_query: dict, groups: np.ndarray, counted: np.ndarray, n_groups: int) -> dict:
    """Means over counted queries, and per group (ndarray (n_groups,), NaN where none)."""
    sizes = np.bincount(groups[counted], minlength=n_groups)
    out, per_group = {}, {}
    for key, values in per_query.items():
        out[key] = float(values[counted].mean()) if counted.any() else float("nan")
        sums = np.bincount(groups[counted], weights=values[counted], minlength=n_groups)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_group[key] = np.where(sizes > 0, sums / sizes, np.nan)
    out["n_queries"] = int(counted.sum())
    out["per_class"] = per_group
    return out


def retrieval_metrics(emb, labels, ks=(1, 2, 4, 8),
                      neighbours: tuple[np.ndarray, np.ndarray] | None = None,
                      max_queries: int | None = None, seed: int = 0,
                      backend: str | None = None) -> dict:
    """Leave-one-out retrieval over the set (see the module docstring), as ``AccuracyCalculator``.

    Exact MAP@R ranks each query's ``R`` nearest others, so the search needs ``k`` = largest
    class - 1 neighbours: at 50,000 rows with classes of 500 that is a full search at k = 564.
    To stay cheap either pass a search already made (``neighbours``) or let a seeded subsample
    of ``max_queries`` queries search the whole set (every sample stays a candidate neighbour).

    Parameters
    ----------
    emb : array-like of shape (n_samples, dim), float
        Rows are L2-normalised here (cosine similarity).
    labels : array-like of shape (n_samples,), int
    ks : sequence of int, default=(1, 2, 4, 8)
        The ``K`` of Recall@K.
    neighbours : (sims, idx) from ``knn_search(emb, emb, k, exclude_self=True)``, optional
        A search already made, with ``k >= retrieval_k(labels, ks)``, on the same normalised rows
        (only ``idx`` is read). Without it one exact search is made here; its result takes
        ``12 * n_samples * k`` bytes.
    max_queries : int or None, default=None
        Without ``neighbours``: score a seeded random subsample of this many queries (means and
        per-class values are then estimates); ``None`` scores every sample.
    seed : int, default=0
        Seed of that subsample.
    backend : str or None
        Neighbour-search backend, as :func:`rascal_geom.neighbors.knn_search`.

    Returns
    -------
    dict
        ``precision_at_1``, ``r_precision``, ``map_at_r``, ``recall_at_K`` for each ``K`` (floats,
        means over queries), ``n_queries`` (queries scored: sampled, and not alone in their
        class), ``k`` (neighbours used); ``per_class``: the same keys as ndarrays of shape
        (labels.max() + 1,), NaN for a class without a counted query.
    """
    x = unit_rows(emb, "emb", np.float32)
    labels = as_labels(labels, len(x), "labels")
    if len(x) < 2:
        raise RascalError("retrieval_metrics needs at least 2 samples.")
    ks = _check_ks(ks)
    k = retrieval_k(labels, ks)
    if max_queries is not None:
        check_positive_int(max_queries, "max_queries", "retrieval_metrics")
    queries = np.arange(len(x))
    if neighbours is not None:
        idx = _given_neighbours(neighbours, len(x), k, "retrieval_metrics",
                                "largest class - 1, or max(ks): search with k=retrieval_k(labels, "
                                "ks)")
    elif max_queries is not None and max_queries < len(x):
        queries = np.sort(np.random.default_rng(seed).choice(len(x), max_queries, replace=False))
        sims, idx = knn_search(x[queries], x, k + 1, backend=backend)
        _, idx = _drop_self(sims, idx, queries)
    else:
        _, idx = knn_search(x, x, k, exclude_self=True, backend=backend)
    q_labels = labels[queries]
    r = np.bincount(labels)[q_labels] - 1
    out = _summary(_scores(labels[idx], q_labels, r, ks), q_labels, r > 0, int(labels.max()) + 1)
    out["k"] = k
    return out


def _sampled_grouped_search(x: np.ndarray, groups: np.ndarray, queries: np.ndarray, k: int,
                            backend: str | None) -> np.ndarray:
    """Leave-one-out neighbours of the ``queries`` rows among the rows of their own group, as
    :func:`~rascal_geom.neighbors.grouped_knn` gives them for every row (padded with ``-1``)."""
    idx = np.full((len(queries), k), -1, dtype=np.int64)
    for g in np.unique(groups[queries]):
        members = np.flatnonzero(groups == g)
        rows = np.flatnonzero(groups[queries] == g)
        kk = min(k, len(members) - 1)
        if kk < 1:
            continue
        sims, found = knn_search(x[queries[rows]], x[members], kk + 1, backend=backend)
        idx[rows, :kk] = _drop_self(sims, members[found], queries[rows])[1]
    return idx


def within_coarse_retrieval(emb, coarse_labels, fine_labels,
                            neighbours: tuple[np.ndarray, np.ndarray] | None = None,
                            backend: str | None = None, max_queries: int | None = None,
                            seed: int = 0) -> dict:
    """Fine-label retrieval with neighbours restricted to the query's own coarse class.

    A retrieval form of hierarchy retention: each sample queries the other members of its coarse
    class; relevant are those of its fine class too (``R`` = their number). ``chance`` is the
    expected precision@1 and R-precision of a random order, ``R / (m - 1)`` for a coarse class of
    ``m`` samples, averaged over queries like the metrics (so a coarse class weighs by its size).

    Parameters
    ----------
    emb : array-like of shape (n_samples, dim), float
        Rows are L2-normalised here.
    coarse_labels, fine_labels : array-like of shape (n_samples,), int
    neighbours : (sims, idx) from ``grouped_knn(emb, coarse_labels, k)``, optional
        A search within coarse classes already made (e.g. hierarchy retention's, widened), with
        ``k`` at least the largest (coarse, fine) group - 1; only ``idx`` is read.
    backend : str or None
    max_queries : int or None, default=None
        Without ``neighbours``: score a seeded random subsample of this many queries, each
        searching all other members of its coarse class (the search costs grow with the
        queries, not with the square of each coarse class); ``None`` scores every sample.
    seed : int, default=0
        Seed of that subsample.

    Returns
    -------
    dict
        ``map_at_r``, ``r_precision``, ``precision_at_1``, ``chance``, ``n_queries``, ``k``;
        ``per_class``: those four as ndarrays over coarse classes (shape (coarse.max() + 1,)).
    """
    x = unit_rows(emb, "emb", np.float32)
    coarse = as_labels(coarse_labels, len(x), "coarse_labels")
    fine = as_labels(fine_labels, len(x), "fine_labels")
    pair = coarse * (int(fine.max()) + 1) + fine
    r = np.bincount(pair)[pair] - 1
    k = int(r.max())
    if k == 0:
        raise RascalError("within_coarse_retrieval needs a fine class with 2 or more samples in "
                          "one coarse class.")
    if max_queries is not None:
        check_positive_int(max_queries, "max_queries", "within_coarse_retrieval")
    queries = np.arange(len(x))
    if neighbours is not None:
        idx = _given_neighbours(neighbours, len(x), k, "within_coarse_retrieval",
                                "within the coarse class: largest (coarse, fine) group - 1")
    elif max_queries is not None and max_queries < len(x):
        queries = np.sort(np.random.default_rng(seed).choice(len(x), max_queries, replace=False))
        idx = _sampled_grouped_search(x, coarse, queries, k, backend)
    else:
        _, idx = grouped_knn(x, coarse, k, backend=backend)
    r = r[queries]
    per_query = _scores(np.where(idx >= 0, fine[np.maximum(idx, 0)], -1), fine[queries], r, ())
    counted = r > 0
    sizes = np.bincount(coarse)[coarse[queries]]
    per_query["chance"] = np.where(counted, r / np.maximum(sizes - 1, 1), np.nan)
    out = _summary(per_query, coarse[queries], counted, int(coarse.max()) + 1)
    out["k"] = k
    return out
