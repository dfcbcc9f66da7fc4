"""Intra-class rank stability between two embeddings of the same samples.

For sample ``i`` of class ``c``, every other member of ``c`` is ranked by descending cosine
similarity under each embedding (0-based, ties share their average rank: exactly the loss's
``rho``). Per sample: the Spearman correlation of the two rankings and the normalised drift
``mean_j |rho_a(i,j) - rho_b(i,j)| / (n_c - 2)`` (the loss's ``delta``). Classes with fewer than 3
members are skipped.

On a large set the means can be taken over a seeded subsample of anchors (``anchors=``): each
anchor still ranks every other member of its class, so the subsample changes which samples are
averaged, not what each one measures.

Large classes (``n_c - 1 > topk``): each sample's ``topk`` nearest same-class neighbours under
``emb_a`` are ranked under both embeddings (drift normalised by ``topk - 1``), and the Jaccard
overlap of the two top-``topk`` sets is reported.
"""

from __future__ import annotations

import numpy as np

from rascal_geom.metrics._inputs import as_labels, kept_precision, unit_rows
from rascal_geom.neighbors import _drop_self, knn_search
from rascal_train.errors import RascalError
from rascal_train.ranks import average_ranks

_ROW_CHUNK = 1024


def _row_spearman(ra: np.ndarray, rb: np.ndarray) -> np.ndarray:
    """Pearson correlation of rank rows; a constant row gives 1 if both rows are equal, else NaN."""
    da = ra - ra.mean(axis=1, keepdims=True)
    db = rb - rb.mean(axis=1, keepdims=True)
    denom = np.sqrt((da * da).sum(1) * (db * db).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (da * db).sum(1) / denom
    degenerate = denom == 0
    rho[degenerate] = np.where((ra[degenerate] == rb[degenerate]).all(axis=1), 1.0, np.nan)
    return rho


def _off_diagonal(s: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Drop column ``rows[r]`` from row ``r`` of ``s`` (each sample's self-similarity)."""
    keep = np.ones(s.shape, dtype=bool)
    keep[np.arange(len(rows)), rows] = False
    return s[keep].reshape(len(rows), s.shape[1] - 1)


def _exact_class(xa: np.ndarray, xb: np.ndarray, pos: np.ndarray):
    """Per-anchor Spearman and drift of the anchors at positions ``pos`` of the class."""
    n = len(xa)
    rho, drift = np.empty(len(pos)), np.empty(len(pos))
    for start in range(0, len(pos), _ROW_CHUNK):
        part = slice(start, start + _ROW_CHUNK)
        rows = pos[part]
        ra = average_ranks(_off_diagonal(xa[rows] @ xa.T, rows))
        rb = average_ranks(_off_diagonal(xb[rows] @ xb.T, rows))
        rho[part] = _row_spearman(ra, rb)
        drift[part] = np.abs(ra - rb).mean(axis=1) / (n - 2)
    return rho, drift, None


def _top(x: np.ndarray, pos: np.ndarray, k: int, backend) -> np.ndarray:
    """Leave-one-out top-``k`` class positions of the anchors at ``pos``."""
    s, i = knn_search(x[pos], x, k + 1, backend=backend)
    return _drop_self(s, i, pos)[1]


def _topk_class(xa: np.ndarray, xb: np.ndarray, pos: np.ndarray, k: int, backend):
    ia, ib = _top(xa, pos, k, backend), _top(xb, pos, k, backend)
    # Similarities recomputed in float64 so both rankings see the same precision.
    sa = np.einsum("nd,nkd->nk", xa[pos], xa[ia])
    sb = np.einsum("nd,nkd->nk", xb[pos], xb[ia])
    ra, rb = average_ranks(sa), average_ranks(sb)
    inter = (ia[:, :, None] == ib[:, None, :]).sum(axis=(1, 2))
    jaccard = inter / (2 * k - inter)
    return _row_spearman(ra, rb), np.abs(ra - rb).mean(axis=1) / (k - 1), jaccard


def rank_stability(emb_a, emb_b, labels, topk: int | None = None, backend: str | None = None,
                   anchors=None) -> dict:
    """Intra-class rank stability of ``emb_b`` relative to ``emb_a`` (same samples, same order).

    Parameters
    ----------
    emb_a, emb_b : array-like of shape (n_samples, dim), float
        Two embeddings of the same samples (e.g. two checkpoints); rows are L2-normalised here.
        The dims may differ.
    labels : array-like of shape (n_samples,), int
    topk : int or None, default=None
        ``None``: exact rankings over whole classes. An int ``>= 2``: classes with more than
        ``topk + 1`` members use the top-``topk`` form (see the module docstring).
    anchors : array-like of int, or None, default=None
        The samples averaged over (a seeded subsample on a large set); ``None``: every sample.

    Returns
    -------
    dict
        ``spearman``, ``drift``: means over the samples of classes with >= 3 members;
        ``jaccard``: mean top-k Jaccard over samples of top-k classes (``None`` if none);
        ``topk``; ``per_class`` / ``per_class_drift``: ndarray (n_classes,) of per-class means
        (NaN for skipped classes); ``per_sample_spearman`` / ``per_sample_drift``: ndarray
        (n_samples,) (NaN where skipped or not an anchor); ``n_samples`` (anchors counted);
        ``n_skipped_classes``.
    """
    a = unit_rows(emb_a, "emb_a", kept_precision(emb_a))
    b = unit_rows(emb_b, "emb_b", kept_precision(emb_b))
    if len(a) != len(b):
        raise RascalError(f"rank_stability needs the same samples in both embeddings; got {len(a)} "
                          f"and {len(b)} rows.")
    labels = as_labels(labels, len(a), "labels")
    if topk is not None and (not isinstance(topk, (int, np.integer)) or topk < 2):
        raise RascalError("The 'topk' parameter of rank_stability must be None or an int in "
                          f"[2, inf). Got {topk!r} instead.")
    n_classes = int(labels.max()) + 1
    rho = np.full(len(a), np.nan)
    drift = np.full(len(a), np.nan)
    jac = np.full(len(a), np.nan)
    per_class = np.full(n_classes, np.nan)
    per_class_drift = np.full(n_classes, np.nan)
    skipped = 0
    is_anchor = (np.ones(len(a), dtype=bool) if anchors is None
                 else np.isin(np.arange(len(a)), anchors))
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < 3:
            skipped += 1
            continue
        pos = np.flatnonzero(is_anchor[members])
        if not len(pos):
            continue
        # One class at a time in float64: a float32 set is never copied whole.
        xa, xb = np.asarray(a[members], dtype=np.float64), np.asarray(b[members], dtype=np.float64)
        if topk is not None and len(members) - 1 > topk:
            r, d, j = _topk_class(xa, xb, pos, int(topk), backend)
            jac[members[pos]] = j
        else:
            r, d, _ = _exact_class(xa, xb, pos)
        rho[members[pos]], drift[members[pos]] = r, d
        per_class[c], per_class_drift[c] = (np.nanmean(r) if np.isfinite(r).any() else np.nan,
                                            d.mean())
    counted = np.isfinite(drift)
    return {
        "spearman": float(np.nanmean(rho)) if np.isfinite(rho).any() else float("nan"),
        "drift": float(drift[counted].mean()) if counted.any() else float("nan"),
        "jaccard": float(np.nanmean(jac)) if np.isfinite(jac).any() else None,
        "topk": topk,
        "per_class": per_class,
        "per_class_drift": per_class_drift,
        "per_sample_spearman": rho,
        "per_sample_drift": drift,
        "n_samples": int(counted.sum()),
        "n_skipped_classes": skipped,
    }
