"""Seeded, stratified subsamples: what a stage too costly for every row is computed on.

Every stage that subsamples (the linear probe, rank-stability anchors, the UMAP map, the exact
queries that check an approximate neighbour search) draws its rows here, so a given seed picks
the same rows on every machine and the analysis JSON can say how many were used.
"""

from __future__ import annotations

import numpy as np


def stratified_sample(labels, size: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of about ``size`` rows, each class represented in proportion to its size.

    Parameters
    ----------
    labels : array-like of shape (n_samples,), int
    size : int
        Rows wanted; ``size >= n_samples`` returns every row.
    seed : int, default=0

    Returns
    -------
    ndarray of shape (m,), int64
        ``m = size`` exactly: each class gets ``floor(size * n_c / n)`` rows, and the rows left
        over go to the classes with the largest remainders (ties broken by the seeded draw).
    """
    labels = np.asarray(labels)
    n = len(labels)
    if size >= n:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    share = size * counts / n
    take = np.floor(share).astype(np.int64)
    left = size - int(take.sum())
    # Largest remainders first; a random key breaks ties without favouring low class ids.
    order = np.lexsort((rng.random(len(classes)), -(share - take)))
    take[order[:left]] += 1
    # One permutation of all rows, then the first `take[c]` rows of each class in that order.
    perm = rng.permutation(n)
    by_class = perm[np.argsort(inverse[perm], kind="stable")]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    picked = np.concatenate([by_class[s:s + t] for s, t in zip(starts, take)])
    return np.sort(picked).astype(np.int64)
