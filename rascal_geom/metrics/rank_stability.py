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

# Anchors of one class per similarity product. BLAS may pick its kernel by the product's shape,
# so this size is part of the result: a change may move a similarity by an ulp, and with it a
# rank where two similarities are that close.
_ROW_CHUNK = 1024
# Similarity entries per embedding ranked in one batch: with average_ranks' work arrays a batch
# holds ~0.15 GB, and larger ones were no faster (200,000 x 256, 200 classes, 2 cores).
_BATCH_ELEMENTS = 1 << 21


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


def _batches(units: list) -> list[list]:
    """``units`` (ordered by class size) cut into runs whose similarity rows, padded to the
    widest class of the run, hold at most :data:`_BATCH_ELEMENTS` entries per embedding."""
    batches, rows = [], 0
    for members, pos in units:
        if not batches or (rows + len(pos)) * len(members) > _BATCH_ELEMENTS:
            batches.append([])
            rows = 0
        batches[-1].append((members, pos))
        rows += len(pos)
    return batches


def _exact_classes(a: np.ndarray, b: np.ndarray, units: list, rho: np.ndarray,
                   drift: np.ndarray) -> None:
    """Per-anchor Spearman and drift of the exact-rank classes, written into ``rho`` and
    ``drift`` (shape (n_samples,)) at the anchors' rows.

    ``units`` are ``(members, pos)``: a class's rows and the positions in it of up to
    :data:`_ROW_CHUNK` of its anchors, ordered by class size. A batch of units is ranked by
    one :func:`average_ranks` call on an array of shape (2, anchors, widest class): each
    anchor's row holds its float64 similarities to the members of its class, its own and the
    padding set to ``-inf``. ``-inf`` sorts last and is never averaged with a finite value, so
    every finite entry gets exactly the rank it has among its class without self. Why: two calls
    per class spent their time in the ~20 small torch ops each makes (thread hand-offs that
    stall on a busy machine), not in sorting. The statistics are taken per unit, on the same
    arrays as a class-by-class loop, so they are the same floats.
    """
    for batch in _batches(units):
        width = len(batch[-1][0])
        sims = np.full((2, sum(len(pos) for _, pos in batch), width), -np.inf)
        start = 0
        for members, pos in batch:
            rows = slice(start, start + len(pos))
            for side, x in enumerate((a, b)):
                # One class at a time in float64: a float32 set is never copied whole.
                xc = np.asarray(x[members], dtype=np.float64)
                sims[side, rows, :len(members)] = xc[pos] @ xc.T
            sims[:, np.arange(rows.start, rows.stop), pos] = -np.inf
            start = rows.stop
        ranks = average_ranks(sims)
        start = 0
        for members, pos in batch:
            rows, n = slice(start, start + len(pos)), len(members)
            ra = _off_diagonal(ranks[0, rows, :n], pos)
            rb = _off_diagonal(ranks[1, rows, :n], pos)
            rho[members[pos]] = _row_spearman(ra, rb)
            drift[members[pos]] = np.abs(ra - rb).mean(axis=1) / (n - 2)
            start = rows.stop


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
    if anchors is None:
        is_anchor = np.ones(len(a), dtype=bool)
    else:
        anchors = np.asarray(anchors, dtype=np.int64).ravel()
        if anchors.size and (anchors.min() < 0 or anchors.max() >= len(a)):
            raise RascalError(f"The 'anchors' parameter of rank_stability must hold row indices "
                              f"in [0, {len(a)}). Got values in [{anchors.min()}, "
                              f"{anchors.max()}] instead.")
        is_anchor = np.zeros(len(a), dtype=bool)
        is_anchor[anchors] = True
    # Each class's rows (ascending) from one stable sort, not a scan of every label per class.
    counts = np.bincount(labels, minlength=n_classes)
    groups = np.split(np.argsort(labels, kind="stable"), np.cumsum(counts)[:-1])
    exact, measured = [], []
    for c in np.flatnonzero(counts):
        members = groups[c]
        if len(members) < 3:
            skipped += 1
            continue
        pos = np.flatnonzero(is_anchor[members])
        if not len(pos):
            continue
        measured.append((c, members[pos]))
        if topk is not None and len(members) - 1 > topk:
            xa = np.asarray(a[members], dtype=np.float64)
            xb = np.asarray(b[members], dtype=np.float64)
            rho[members[pos]], drift[members[pos]], jac[members[pos]] = _topk_class(
                xa, xb, pos, int(topk), backend)
        else:
            exact.append((members, pos))
    exact.sort(key=lambda unit: len(unit[0]))
    _exact_classes(a, b, [(members, pos[start:start + _ROW_CHUNK]) for members, pos in exact
                          for start in range(0, len(pos), _ROW_CHUNK)], rho, drift)
    for c, rows in measured:
        r = rho[rows]
        per_class[c] = np.nanmean(r) if np.isfinite(r).any() else np.nan
        per_class_drift[c] = drift[rows].mean()
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
