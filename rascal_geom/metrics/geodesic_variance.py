"""Within-class geodesic variance on the unit sphere, around each class's Karcher mean."""

from __future__ import annotations

import numpy as np

from rascal_geom.metrics._inputs import as_labels, as_matrix, class_sums, normalize_rows


def karcher_means(x: np.ndarray, labels: np.ndarray, n_classes: int, tol: float = 1e-10,
                  max_iter: int = 100) -> tuple[np.ndarray, int]:
    """Per-class Karcher (Frechet) means of unit rows, all classes iterated together.

    Starts from the normalised Euclidean mean and iterates ``mu <- Exp_mu(mean_i Log_mu(x_i))``
    until the largest update norm is below ``tol``.

    Parameters
    ----------
    x : ndarray of shape (n_samples, dim), float64, unit rows
    labels : ndarray of shape (n_samples,), int64, values in [0, n_classes)

    Returns
    -------
    means : ndarray of shape (n_classes, dim), float64 (zero rows for absent classes)
    iterations : int
    """
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    mu = class_sums(x, labels, n_classes)
    norms = np.linalg.norm(mu, axis=1)
    # A class whose Euclidean mean vanishes (e.g. two antipodal points) starts from a member.
    first = np.full(n_classes, -1)
    first[labels[::-1]] = np.arange(len(labels))[::-1]
    degenerate = (norms < 1e-12) & (counts > 0)
    mu[degenerate] = x[first[degenerate]]
    mu = normalize_rows(mu)
    rows = np.arange(len(labels))
    for it in range(1, max_iter + 1):
        # x_i . mu_c for every class is one small matmul; keep each row's own class.
        cos = np.clip((x @ mu.T)[rows, labels], -1.0, 1.0)
        theta = np.arccos(cos)
        # Log_mu(x) = theta / sin(theta) * (x - cos(theta) mu); theta/sin(theta) -> 1 as theta -> 0.
        scale = np.where(theta > 1e-12, theta / np.maximum(np.sin(theta), 1e-300), 1.0)
        v = class_sums(x, labels, n_classes, weights=scale)
        v -= np.bincount(labels, weights=scale * cos, minlength=n_classes)[:, None] * mu
        v /= np.maximum(counts, 1.0)[:, None]
        step = np.linalg.norm(v, axis=1)
        safe = np.maximum(step, 1e-300)[:, None]
        mu = normalize_rows(np.cos(step)[:, None] * mu + np.sin(step)[:, None] * v / safe)
        if step.max() < tol:
            return mu, it
    return mu, max_iter


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
        ``mean``: mean of ``V_c`` over present classes; ``between``: mean squared geodesic
        distance between distinct class means; ``collapse_ratio`` = ``mean / between`` (smaller =
        more collapsed; NaN with fewer than two classes); ``per_class``: ndarray (n_classes,)
        (NaN for absent labels); ``iterations``.
    """
    x = normalize_rows(as_matrix(emb, "emb"))
    labels = as_labels(labels, len(x), "labels")
    n_classes = int(labels.max()) + 1
    mu, iters = karcher_means(x, labels, n_classes, tol, max_iter)
    d2 = np.arccos(np.clip((x * mu[labels]).sum(1), -1.0, 1.0)) ** 2
    counts = np.bincount(labels, minlength=n_classes)
    present = counts > 0
    per_class = np.full(n_classes, np.nan)
    per_class[present] = np.bincount(labels, weights=d2, minlength=n_classes)[present] / counts[present]
    mean = float(per_class[present].mean())
    means = mu[present]
    if len(means) >= 2:
        g = np.arccos(np.clip(means @ means.T, -1.0, 1.0)) ** 2
        between = float(g[~np.eye(len(means), dtype=bool)].mean())
    else:
        between = float("nan")
    ratio = mean / between if between > 0 else float("nan")
    return {"mean": mean, "between": between, "collapse_ratio": ratio, "per_class": per_class,
            "iterations": iters}
