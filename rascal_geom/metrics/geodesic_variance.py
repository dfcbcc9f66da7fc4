"""Within-class geodesic variance on the unit sphere, around each class's Karcher mean."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from rascal_geom.metrics._inputs import as_labels, kept_precision, normalize_rows, unit_rows

#: Elements of a float64 block of rows in the passes over every row (2 MiB): a block's cast, dot
#: products and class sums then run from the CPU's caches; with blocks of 32 MiB and more a pass
#: over 300,000 x 256 took ~2.5x as long.
_CACHE_ELEMENTS = 1 << 18


def _row_slices(n: int, width: int) -> list[slice]:
    """Slices of ``n`` rows, each ``width`` float64 columns of at most :data:`_CACHE_ELEMENTS`."""
    step = max(1, _CACHE_ELEMENTS // max(1, width))
    return [slice(start, min(n, start + step)) for start in range(0, n, step)]


def _class_blocks(labels: np.ndarray, width: int) -> list[tuple]:
    """Per block of :func:`_row_slices`: ``(rows, labels[rows], classes, onehot)``.

    ``classes`` (k,) are the block's distinct labels and ``onehot`` a (k, block rows) CSR matrix
    with one entry per row in its class's row. Labels do not change between passes, so this is
    built once; a pass writes per-row weights ``w`` as ``onehot.data = w[onehot.indices]`` and
    ``onehot @ values`` sums ``w * values`` per class.
    """
    blocks = []
    for rows in _row_slices(len(labels), width):
        lab = labels[rows]
        classes, local = np.unique(lab, return_inverse=True)
        by_class = np.argsort(local, kind="stable")
        indptr = np.searchsorted(local[by_class], np.arange(len(classes) + 1))
        onehot = sparse.csr_matrix((np.ones(len(lab)), by_class, indptr),
                                   shape=(len(classes), len(lab)))
        blocks.append((rows, lab, classes, onehot))
    return blocks


def _own_cos(x: np.ndarray, labels: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """``x_i . mu_{labels_i}`` in float64, clipped to [-1, 1], block by block (never n x
    n_classes)."""
    out = np.empty(len(x))
    for rows in _row_slices(len(x), x.shape[1]):
        out[rows] = np.einsum("nd,nd->n", np.asarray(x[rows], dtype=np.float64), mu[labels[rows]])
    return np.clip(out, -1.0, 1.0)


def _iterate(x: np.ndarray, blocks: list[tuple], mu: np.ndarray, counts: np.ndarray, tol: float,
             max_iter: int) -> tuple[np.ndarray, int]:
    """``mu <- Exp_mu(mean_i Log_mu(x_i))`` per class from the unit rows ``mu`` until every step <
    ``tol``; ``blocks`` are :func:`_class_blocks` of the labels of ``x``."""
    for it in range(1, max_iter + 1):
        # One pass over the rows per iteration, a float64 block at a time.
        v, along = np.zeros_like(mu), np.zeros(len(mu))
        for rows, lab, classes, onehot in blocks:
            block = np.asarray(x[rows], dtype=np.float64)
            cos = np.clip(np.einsum("nd,nd->n", block, mu[lab]), -1.0, 1.0)
            theta = np.arccos(cos)
            # Log_mu(x) = theta / sin(theta) * (x - cos(theta) mu);
            # theta/sin(theta) -> 1 as theta -> 0.
            scale = np.where(theta > 1e-12, theta / np.maximum(np.sin(theta), 1e-300), 1.0)
            onehot.data = scale[onehot.indices]
            v[classes] += onehot @ block
            along[classes] += onehot @ cos
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
        Read in cache-sized float64 blocks, one pass per iteration; never widened whole.
    labels : ndarray of shape (n_samples,), int64, values in [0, n_classes)

    Returns
    -------
    means : ndarray of shape (n_classes, dim), float64 (zero rows for absent classes)
    iterations : int
        The most iterations any run needed.
    """
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    blocks = _class_blocks(labels, x.shape[1])
    sums = np.zeros((n_classes, x.shape[1]))
    for rows, _, classes, onehot in blocks:
        onehot.data = np.ones(len(onehot.data))  # unweighted: the Euclidean class sums
        sums[classes] += onehot @ np.asarray(x[rows], dtype=np.float64)
    degenerate = (np.linalg.norm(sums, axis=1) < 1e-12) & (counts > 0)
    mu, iters = _iterate(x, blocks, normalize_rows(sums), counts, tol, max_iter)
    for c in np.flatnonzero(degenerate):
        members = np.asarray(x[labels == c], dtype=np.float64)
        starts = normalize_rows(_degenerate_starts(members))
        # Every start is its own "class" over a copy of the members: one batched iteration.
        reps = np.repeat(np.arange(len(starts)), len(members))
        tiled = np.tile(members, (len(starts), 1))
        cands, it = _iterate(tiled, _class_blocks(reps, tiled.shape[1]), starts,
                             np.full(len(starts), float(len(members))), tol, max_iter)
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
