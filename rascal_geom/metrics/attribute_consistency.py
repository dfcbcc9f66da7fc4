"""Attribute consistency: do an image's nearest same-class neighbours share its attributes?

agreement = mean Jaccard similarity of binary attribute sets between each image and its ``k``
nearest neighbours *within its class*; chance = the same over ``k`` random same-class partners
per image (seeded); lift = ``(agreement - chance) / (1 - chance)``. Pairs in which both sets
are empty carry no information and are left out of every mean (Jaccard of two empty sets is
undefined).
"""

from __future__ import annotations

import numpy as np

from rascal_geom.metrics._inputs import as_labels, check_positive_int, neighbour_counts, unit_rows
from rascal_geom.neighbors import grouped_knn
from rascal_train.errors import RascalError


def _pair_jaccard(attrs: np.ndarray, partners: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Jaccard of row ``rows[i]`` with each ``partners[i, j]`` (NaN for padding or two empty
    sets)."""
    a = attrs.astype(np.float32)
    safe = np.where(partners >= 0, partners, 0)
    inter = np.einsum("nm,nkm->nk", a[rows], a[safe])
    size = a.sum(1)
    union = size[rows][:, None] + size[safe] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        jac = inter / union
    jac[(partners < 0) | (union == 0)] = np.nan
    return jac


def _random_partners(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """``k`` uniformly random other members of each sample's class (-1 for singleton classes)."""
    rng = np.random.default_rng(seed)
    partners = np.full((len(labels), k), -1, dtype=np.int64)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        m = len(members)
        if m < 2:
            continue
        offsets = rng.integers(1, m, size=(m, k))  # never 0, so never the sample itself
        partners[members] = members[(np.arange(m)[:, None] + offsets) % m]
    return partners


def _summary(jac: np.ndarray, chance_jac: np.ndarray) -> dict:
    agreement = float(np.nanmean(jac)) if np.isfinite(jac).any() else float("nan")
    chance = float(np.nanmean(chance_jac)) if np.isfinite(chance_jac).any() else float("nan")
    lift = (agreement - chance) / (1.0 - chance) if chance < 1 else float("nan")
    return {"agreement": agreement, "chance": chance, "lift": lift}


def attribute_consistency(emb, labels, attributes, k: int = 10, groups=None, seed: int = 0,
                          backend: str | None = None, rows=None) -> dict:
    """Attribute agreement of within-class nearest neighbours, against chance.

    Parameters
    ----------
    emb : array-like of shape (n_samples, dim), float
        Rows are L2-normalised here (cosine neighbours).
    labels : array-like of shape (n_samples,), int
    attributes : array-like of shape (n_samples, n_attributes), bool or {0, 1}
    k : int, default=10
        Neighbours (and random partners) per image; clipped to ``n_c - 1`` in small classes.
    groups : sequence of str of length n_attributes, or None
        Group of each attribute column (CUB: the part of ``"group::value"`` before ``::``);
        adds a per-group summary.
    seed : int, default=0
        Seed of the random same-class partners.
    rows : array-like of shape (n_queries,), int, or None, default=None
        The images whose agreement is averaged (a seeded subsample on a large set; their
        neighbours are still searched among every member of the class). ``None``: all.

    Returns
    -------
    dict
        ``agreement``, ``chance``, ``lift``; ``k`` (the most neighbours an image used: the request
        clipped by the largest class), ``k_requested``, ``short`` (images in classes too small for
        ``k``), ``alone`` (images alone in their class); ``per_class``: dict with ``agreement``,
        ``chance``, ``lift`` ndarrays (n_classes,); ``per_group``: {group: {agreement, chance,
        lift}} or None.
    """
    check_positive_int(k, "k", "attribute_consistency")
    x = unit_rows(emb, "emb", np.float32)
    labels = as_labels(labels, len(x), "labels")
    attrs = np.asarray(attributes)
    if attrs.ndim != 2 or len(attrs) != len(x):
        raise RascalError(f"The 'attributes' parameter must have shape ({len(x)}, n_attributes). "
                          f"Got {attrs.shape} instead.")
    attrs = attrs.astype(bool)
    rows = np.arange(len(x)) if rows is None else np.asarray(rows)
    _, nbrs = grouped_knn(x, labels, k, backend=backend, rows=rows)
    rand = _random_partners(labels, k, seed)[rows]
    jac, chance_jac = _pair_jaccard(attrs, nbrs, rows), _pair_jaccard(attrs, rand, rows)
    # Random partners are drawn k per image even where fewer than k neighbours exist; keep the
    # same number of pairs on both sides.
    chance_jac[nbrs < 0] = np.nan
    out = _summary(jac, chance_jac)
    out.update(neighbour_counts(nbrs, k))
    out["n_queries"] = int(len(rows))
    n_classes = int(labels.max()) + 1
    per_class = {key: np.full(n_classes, np.nan) for key in ("agreement", "chance", "lift")}
    row_labels = labels[rows]
    for c in np.unique(row_labels):
        mine = row_labels == c
        for key, value in _summary(jac[mine], chance_jac[mine]).items():
            per_class[key][c] = value
    out["per_class"] = per_class
    out["per_group"] = None
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != (attrs.shape[1],):
            raise RascalError("The 'groups' parameter must name the group of each of the "
                              f"{attrs.shape[1]} attribute columns. Got shape {groups.shape} "
                              "instead.")
        out["per_group"] = {}
        for g in dict.fromkeys(groups.tolist()):
            cols = groups == g
            gj, gc = (_pair_jaccard(attrs[:, cols], nbrs, rows),
                      _pair_jaccard(attrs[:, cols], rand, rows))
            gc[nbrs < 0] = np.nan
            out["per_group"][str(g)] = _summary(gj, gc)
    return out
