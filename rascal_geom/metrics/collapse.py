"""Neural collapse beyond NC1 (Papyan, Han & Donoho 2020) and the class-distance normalised
variance (Galanti, Gyorgy & Hutter 2022).

``geometry.neural_collapse`` gives NC1 and NC2 of the class means. Here: NC2 of a linear
classifier's rows, NC3 (self-duality of classifier and class means), NC4 (agreement of the
nearest-class-centre rule with the classifier) and CDNV. All read the rows as given (raw
features, as the papers do).
"""

from __future__ import annotations

import numpy as np

from rascal_geom.metrics._inputs import as_labels, as_matrix, class_sums
from rascal_geom.metrics.geometry import simplex_deviation
from rascal_geom.metrics.linear_probe import LinearProbe
from rascal_train.errors import RascalError

_BLOCK_ROWS = 8192


def _class_means(h: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The labels present (ascending) and their means, ndarray of shape (n_present, dim)."""
    counts = np.bincount(labels)
    present = np.flatnonzero(counts)
    return present, class_sums(h, labels, len(counts))[present] / counts[present, None]


def _nearest_centre(h: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Index of the nearest mean (Euclidean) for each row, in row blocks."""
    sq = (means * means).sum(1)
    return np.concatenate([np.argmin(sq - 2.0 * h[s:s + _BLOCK_ROWS] @ means.T, axis=1)
                           for s in range(0, len(h), _BLOCK_ROWS)])


def classifier_collapse(features, labels, probe: LinearProbe) -> dict:
    """NC2 of the classifier, NC3 self-duality and NC4 nearest-centre agreement for a linear probe.

    The probe scores standardised rows, ``((h - m) / s) W^T + b``, so its classifier on the rows
    themselves is ``W_h = W / s`` (column-wise); that is the ``W`` used here. With class means
    ``mu_c`` and global mean ``mu_G`` (over samples) of ``features``, ``M`` the matrix of centred
    means ``mu_c - mu_G`` (rows), over the classes present in ``labels``:

    - ``w_equinorm``, ``w_equiangularity``, ``w_max_equiangularity``: NC2 of the rows of ``W_h``
      (:func:`~rascal_geom.metrics.geometry.simplex_deviation`);
    - ``nc3``: ``||W_h / ||W_h||_F - M / ||M||_F||_F^2`` (0 under self-duality, at most 4);
    - ``nc4_agreement``: share of samples where the nearest class mean (Euclidean) names the
      probe's prediction (Papyan et al. plot the complement); ``ncc_accuracy``: that rule's
      accuracy.

    Parameters
    ----------
    features : array-like of shape (n_samples, dim), float
        The rows the probe was fitted on (or rows of the same space, e.g. a held-out split).
    labels : array-like of shape (n_samples,), int
    probe : LinearProbe
        From :func:`~rascal_geom.metrics.linear_probe.fit_linear_probe` on these features.

    Returns
    -------
    dict of str to float (NaN with fewer than two classes)
    """
    h = as_matrix(features, "features")
    labels = as_labels(labels, len(h), "labels")
    w = (probe.weight / probe.std).detach().cpu().double().numpy()
    if w.shape[1] != h.shape[1] or labels.max() >= len(w):
        raise RascalError("classifier_collapse needs a probe over these features and labels; got "
                          f"a probe of {len(w)} classes x {w.shape[1]} dims for {h.shape[1]}-dim "
                          f"rows with labels up to {labels.max()}.")
    present, means = _class_means(h, labels)
    keys = ("w_equinorm", "w_equiangularity", "w_max_equiangularity", "nc3", "nc4_agreement",
            "ncc_accuracy")
    if len(present) < 2:
        return dict.fromkeys(keys, float("nan"))
    w = w[present]
    m = means - h.mean(0)
    ncc = present[_nearest_centre(h, means)]
    nc2 = simplex_deviation(w)
    return {"w_equinorm": nc2["equinorm"], "w_equiangularity": nc2["equiangularity"],
            "w_max_equiangularity": nc2["max_equiangularity"],
            "nc3": float(((w / np.linalg.norm(w) - m / np.linalg.norm(m)) ** 2).sum()),
            "nc4_agreement": float((ncc == probe.predict(h)).mean()),
            "ncc_accuracy": float((ncc == labels).mean())}


def cdnv(features, labels) -> dict:
    """Class-distance normalised variance (Galanti et al. 2022), averaged over class pairs.

    ``CDNV(i, j) = (Var_i + Var_j) / (2 ||mu_i - mu_j||^2)`` with ``Var_i`` the mean squared
    distance of class ``i``'s rows to their mean ``mu_i``; smaller = more collapsed. Rows are used
    as given (pass L2-normalised rows for the cosine geometry).

    Parameters
    ----------
    features : array-like of shape (n_samples, dim), float
    labels : array-like of shape (n_samples,), int

    Returns
    -------
    dict
        ``cdnv``: mean over pairs of distinct present classes (float; ``inf`` if two means
        coincide, NaN with fewer than two classes); ``per_class``: ndarray of shape
        (labels.max() + 1,), class ``i``'s mean over ``j != i`` (NaN for absent classes).
    """
    h = as_matrix(features, "features")
    labels = as_labels(labels, len(h), "labels")
    present, means = _class_means(h, labels)
    per_class = np.full(int(labels.max()) + 1, np.nan)
    c = len(present)
    if c < 2:
        return {"cdnv": float("nan"), "per_class": per_class}
    slot = np.cumsum(np.bincount(labels) > 0) - 1
    # Exact squared distances to the class mean (a sum-of-squares shortcut loses the small
    # variances of a collapsed class to cancellation).
    sq = np.concatenate([((h[s:s + _BLOCK_ROWS]
                           - means[slot[labels[s:s + _BLOCK_ROWS]]]) ** 2).sum(1)
                         for s in range(0, len(h), _BLOCK_ROWS)])
    var = (np.bincount(slot[labels], weights=sq, minlength=c)
           / np.bincount(slot[labels], minlength=c))
    centred = means - means.mean(0)
    norms = (centred * centred).sum(1)
    dist = np.maximum(norms[:, None] + norms[None, :] - 2.0 * centred @ centred.T, 0.0)
    off = ~np.eye(c, dtype=bool)
    # The diagonal (distance 0) is computed and then masked; two classes with the same mean and
    # no spread give 0/0 = NaN, which is what CDNV is there.
    with np.errstate(divide="ignore", invalid="ignore"):
        pairs = np.where(off, (var[:, None] + var[None, :]) / (2.0 * dist), 0.0)
    per_class[present] = pairs.sum(1) / (c - 1)
    return {"cdnv": float(pairs[off].mean()), "per_class": per_class}
