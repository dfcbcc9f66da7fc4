"""Within-class geodesic variance on the unit sphere, around each class's Karcher mean."""

from __future__ import annotations

import numpy as np

from rascal_geom.metrics._inputs import (as_labels, class_sums, kept_precision, normalize_rows,
                                         row_blocks, unit_rows)


def _own_cos(x: np.ndarray, labels: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """``x_i . mu_{labels_i}`` in float64, clipped to [-1, 1], block by block (never n x
    n_classes)."""
    out = np.empty(len(x))
    for rows in row_blocks(len(x), x.shape[1]):
        out[rows] = np.einsum("nd,nd->n", np.asarray(x[rows], dtype=np.float64), mu[labels[rows]])
    return np.clip(out, -1.0, 1.0)


def _iterate(x: np.ndarray, labels: np.ndarray, mu: np.ndarray, counts: np.ndarray, tol: float,
             max_iter: int) -> tuple[np.ndarray, int]:
    """``mu <- Exp_mu(mean_i Log_mu(x_i))`` per class from the unit rows ``mu`` until every step <
    ``tol``."""
    n_classes = len(mu)
    for it in range(1, max_iter + 1):
        # One pass over the rows per iteration, a float64 block at a time.
        v, along = np.zeros_like(mu), np.zeros(n_classes)
        for rows in row_blocks(len(x), x.shape[1]):
            block, lab = np.asarray(x[rows], dtype=np.float64), labels[rows]
            cos = np.clip(np.einsum("nd,nd->n", block, mu[lab]), -1.0, 1.0)
            theta = np.arccos(cos)
            # Log_mu(x) = theta / sin(theta) * (x - cos(theta) mu);
            # theta/sin(theta) -> 1 as theta -> 0.
            scale = np.where(theta > 1e-12, theta / np.maximum(np.sin(theta), 1e-300), 1.0)
            v += class_sums(block, lab, n_classes, weights=scale)
            along += np.bincount(lab, weights=scale * cos, minlength=n_classes)
        v -= along[:, None] * mu
        v /= np.maximum(counts, 1.0)[:, None]
        step = np.linalg.norm(v, axis=1)
        safe = np.maximum(step, 1e-300)[:, None]
        mu = normalize_rows(np.cos(step)[:, None] * mu + np.sin(step)[:, None] * v / safe)
        if step.max() < tol:
            return mu, it
    return mu, max_iter


def _degenerate_starts(members: np.ndarray) -> np.ndarray:
    """Starting points for a class whose Euclidean mean vanishes, shape (n_starts, dim).

    No single start is right for every such class: for an antipodal pair every member is a
    critical point with ``V = pi^2 / 2`` while any point orthogonal to the pair reaches the
    minimum ``(pi / 2)^2``; for points spread over the whole sphere the minimum may lie
    between members. So the candidates are the members, the principal directions of the class
    (both signs), one direction orthogonal to the members' span when they do not span the
    space, and 16 seeded random directions; the caller keeps the best. For such spread-out
    classes the Frechet mean need not be unique, and the result is the best candidate found.
    """
    _, sv, vt = np.linalg.svd(members, full_matrices=False)
    span = vt[sv > sv.max() * 1e-10]
    starts = [members, span, -span]
    if len(span) < members.shape[1]:
        # The standard basis vector least covered by the span, with its span part removed.
        j = int(np.argmin((span ** 2).sum(axis=0)))
        e = np.zeros(members.shape[1])
        e[j] = 1.0
        starts.append((e - span.T @ (span @ e))[None])
    starts.append(np.random.default_rng(0).standard_normal((16, members.shape[1])))
    return np.concatenate(starts)


def karcher_means(x: np.ndarray, labels: np.ndarray, n_classes: int, tol: float = 1e-10,
                  max_iter: int = 100) -> tuple[np.ndarray, int]:
    """Per-class Karcher (Frechet) means of unit rows, all classes iterated together.

    Starts from the normalised Euclidean mean and iterates ``mu <- Exp_mu(mean_i Log_mu(x_i))``
    until the largest update norm is below ``tol``. A class whose Euclidean mean vanishes (an
    antipodal pair, points balanced around the sphere) has no such start: it is iterated from
    each of a few candidates (:func:`_degenerate_starts`) and keeps the mean of least variance.

    Parameters
    ----------
    x : ndarray of shape (n_samples, dim), float32 or float64, unit rows
        Read block by block in float64.
    labels : ndarray of shape (n_samples,), int64, values in [0, n_classes)

    Returns
    -------
    means : ndarray of shape (n_classes, dim), float64 (zero rows for absent classes)
    iterations : int
        The most iterations any run needed.
    """
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    sums = class_sums(x, labels, n_classes)
    degenerate = (np.linalg.norm(sums, axis=1) < 1e-12) & (counts > 0)
    mu, iters = _iterate(x, labels, normalize_rows(sums), counts, tol, max_iter)
    for c in np.flatnonzero(degenerate):
        members = np.asarray(x[labels == c], dtype=np.float64)
        starts = normalize_rows(_degenerate_starts(members))
        # Every start is its own "class" over a copy of the members: one batched iteration.
        reps = np.repeat(np.arange(len(starts)), len(members))
        tiled = np.tile(members, (len(starts), 1))
        cands, it = _iterate(tiled, reps, starts, np.full(len(starts), float(len(members))), tol,
                             max_iter)
        variances = np.bincount(reps,
                                np.arccos(np.clip((tiled * cands[reps]).sum(1), -1.0, 1.0)) ** 2)
        mu[c] = cands[np.argmin(variances)]
        iters = max(iters, it)
    return mu, iters


def geodesic_variance(emb, labels, tol: float = 1e-10, max_iter: int = 100) -> dict:
    """Within-class geodesic variance ``V_c = mean_i arccos(x_i . mu_c)^2`` and the collapse ratio.

    Parameters
    ----------
    emb : array-like of shape (n_samples, dim), float
        Rows are L2-normalised here.
    labels : array-like of shape (n_samples,), int

    Returns
    -------
    dict
        ``mean``: mean of ``V_c`` over classes with at least 2 members; ``between``: mean squared
        geodesic distance between distinct class means (singleton classes included: their mean
        is their one point); ``collapse_ratio`` = ``mean / between`` (smaller = more collapsed;
        NaN with fewer than two classes); ``per_class``: ndarray (n_classes,), NaN for absent
        labels and for singletons; ``singleton_classes``: how many classes had one member;
        ``iterations``.

    Notes
    -----
    A class of one sample has ``V_c = 0`` by construction, which says nothing about its spread;
    averaged in, singletons would pull ``mean`` towards "collapsed". They are left out of
    ``mean`` and counted instead (rank stability likewise skips classes under 3 members).
    """
    # Read in float64 blocks: memory O(block + n_classes x dim), not a float64 copy of every row.
    x = unit_rows(emb, "emb", kept_precision(emb))
    labels = as_labels(labels, len(x), "labels")
    n_classes = int(labels.max()) + 1
    mu, iters = karcher_means(x, labels, n_classes, tol, max_iter)
    d2 = np.arccos(_own_cos(x, labels, mu)) ** 2
    counts = np.bincount(labels, minlength=n_classes)
    present = counts > 0
    spread = counts > 1
    per_class = np.full(n_classes, np.nan)
    per_class[spread] = (np.bincount(labels, weights=d2, minlength=n_classes)[spread]
                         / counts[spread])
    mean = float(per_class[spread].mean()) if spread.any() else float("nan")
    means = mu[present]
    if len(means) >= 2:
        g = np.arccos(np.clip(means @ means.T, -1.0, 1.0)) ** 2
        between = float(g[~np.eye(len(means), dtype=bool)].mean())
    else:
        between = float("nan")
    ratio = mean / between if between > 0 else float("nan")
    return {"mean": mean, "between": between, "collapse_ratio": ratio, "per_class": per_class,
            "singleton_classes": int((counts == 1).sum()), "iterations": iters}
