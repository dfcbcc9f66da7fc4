"""Hierarchy retention: is the finer level still readable inside each coarse class?

Fine-label kNN accuracy (weighted vote, as :func:`knn_accuracy`) with neighbours restricted to
the sample's own coarse class, against the chance level ``sum_v p(v | coarse)^2`` of that
restricted guess, averaged over samples (a coarse class weighs by its size); retention =
``(accuracy - chance) / (1 - chance)``.
"""

from __future__ import annotations

import numpy as np

from rascal_geom.metrics._inputs import as_labels, check_positive_int, neighbour_counts, unit_rows
from rascal_geom.metrics.knn import knn_correct
from rascal_geom.neighbors import grouped_knn


def _retention(acc: float, chance: float) -> float:
    return (acc - chance) / (1.0 - chance) if chance < 1 else float("nan")


def hierarchy_retention(emb, coarse_labels, fine_labels, k: int = 20, temperature: float = 0.07,
                        backend: str | None = None, rows=None) -> dict:
    """Fine-level kNN accuracy within coarse classes, its chance level and the retention.

    Parameters
    ----------
    emb : array-like of shape (n_samples, dim), float
        Rows are L2-normalised here.
    coarse_labels, fine_labels : array-like of shape (n_samples,), int
    k : int, default=20
        Neighbours per sample, leave-one-out, within the coarse class.
    rows : array-like of shape (n_queries,), int, or None, default=None
        The samples whose accuracy is averaged (a seeded subsample on a large set; their
        neighbours are still searched among every member of the coarse class). ``None``: all.

    Returns
    -------
    dict
        ``accuracy``, ``chance``, ``retention``; ``k`` (the most neighbours a sample used: the
        request clipped by the largest coarse class), ``k_requested``, ``short`` (samples in coarse
        classes too small for ``k``) and ``alone`` (samples alone in their coarse class: no
        neighbour, left out); ``per_class``: dict of ``accuracy``, ``chance``, ``retention``
        ndarrays (n_coarse_classes,).
    """
    check_positive_int(k, "k", "hierarchy_retention")
    x = unit_rows(emb, "emb", np.float32)
    coarse = as_labels(coarse_labels, len(x), "coarse_labels")
    fine = as_labels(fine_labels, len(x), "fine_labels")
    rows = np.arange(len(x)) if rows is None else np.asarray(rows)
    sims, idx = grouped_knn(x, coarse, k, backend=backend, rows=rows)
    correct = knn_correct(sims, fine[np.where(idx >= 0, idx, 0)], fine[rows], int(fine.max()) + 1,
                          k, temperature)
    # p(v | coarse) for each sample's own fine label, summed over v: sum_v p(v|c)^2 per coarse c.
    n_coarse = int(coarse.max()) + 1
    n_fine = int(fine.max()) + 1
    pair_counts = np.bincount(coarse * n_fine + fine,
                              minlength=n_coarse * n_fine).reshape(n_coarse, n_fine)
    sizes = pair_counts.sum(1)
    chance_c = (pair_counts ** 2).sum(1) / np.maximum(sizes, 1) ** 2
    counted = idx[:, 0] >= 0
    coarse_q = coarse[rows]
    acc = float(correct[counted].mean()) if counted.any() else float("nan")
    chance = float(chance_c[coarse_q[counted]].mean()) if counted.any() else float("nan")
    per_class = {key: np.full(n_coarse, np.nan) for key in ("accuracy", "chance", "retention")}
    for c in np.unique(coarse_q[counted]):
        a = float(correct[counted & (coarse_q == c)].mean())
        per_class["accuracy"][c], per_class["chance"][c] = a, chance_c[c]
        per_class["retention"][c] = _retention(a, chance_c[c])
    return {"accuracy": acc, "chance": chance, "retention": _retention(acc, chance),
            **neighbour_counts(idx, k), "n_queries": int(len(rows)), "per_class": per_class}
