"""Calibration of a classifier's confidence: expected calibration error and reliability-diagram
data.

As Guo, Pleiss, Sun & Weinberger (2017): the confidence of a prediction is its largest
probability; predictions fall into ``n_bins`` equal-width bins ``((m-1)/M, m/M]`` of confidence;
``ECE = sum_m |B_m| / n |acc(B_m) - conf(B_m)|`` and ``MCE = max_m |acc(B_m) - conf(B_m)|`` over
non-empty bins.
"""

from __future__ import annotations

import numpy as np
from scipy.special import softmax

from rascal_geom.metrics._inputs import as_labels, as_matrix, check_positive_int
from rascal_train.errors import RascalError


def calibration(scores, labels, n_bins: int = 15, from_logits: bool = False) -> dict:
    """ECE, MCE and the per-bin numbers of a reliability diagram.

    Parameters
    ----------
    scores : array-like of shape (n_samples, n_classes), float
        Class probabilities (rows summing to 1), or logits with ``from_logits=True`` (e.g. a
        linear probe's ``logits``).
    labels : array-like of shape (n_samples,), int
        True classes, below ``n_classes``.
    n_bins : int, default=15
        Equal-width confidence bins over [0, 1] (Guo et al. use 15).
    from_logits : bool, default=False
        Apply a softmax to ``scores`` first.

    Returns
    -------
    dict
        ``ece``, ``mce``, ``accuracy``, ``confidence`` (mean confidence), ``n_bins`` (floats and an
        int); ``bins``: ``edges`` ndarray of shape (n_bins + 1,), and ``accuracy``, ``confidence``
        (NaN for an empty bin) and ``count`` ndarrays of shape (n_bins,).
    """
    n_bins = check_positive_int(n_bins, "n_bins", "calibration")
    p = as_matrix(scores, "scores")
    labels = as_labels(labels, len(p), "labels")
    if labels.max() >= p.shape[1]:
        raise RascalError(f"calibration got labels up to {labels.max()} for scores of {p.shape[1]} "
                          "classes.")
    if from_logits:
        p = softmax(p, axis=1)
    elif p.min() < 0 or p.max() > 1 or not np.allclose(p.sum(1), 1.0, atol=1e-4):
        raise RascalError("calibration got scores that are not probabilities (rows in [0, 1] "
                          "summing to 1); pass from_logits=True for logits.")
    confidence = p.max(1)
    correct = (p.argmax(1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # right=True: bin m holds (edges[m], edges[m + 1]], Guo et al.'s half-open bins.
    slot = np.digitize(confidence, edges[1:-1], right=True)
    count = np.bincount(slot, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.bincount(slot, weights=correct, minlength=n_bins) / count
        conf = np.bincount(slot, weights=confidence, minlength=n_bins) / count
    gap = np.abs(acc - conf)
    filled = count > 0
    return {"ece": float((count[filled] * gap[filled]).sum() / len(p)),
            "mce": float(gap[filled].max()), "accuracy": float(correct.mean()),
            "confidence": float(confidence.mean()), "n_bins": n_bins,
            "bins": {"edges": edges, "accuracy": acc, "confidence": conf, "count": count}}
