"""Global geometry of an embedding: alignment (of two views, or of a class)/uniformity, neural
collapse, effective rank, positive/negative cosine gap with the margin-violation rate, and map
trustworthiness."""

from __future__ import annotations

import numpy as np
import torch

from rascal_geom.metrics._inputs import (
    UnitRows,
    as_labels,
    as_matrix,
    check_positive_int,
    class_sums,
    kept_precision,
    row_blocks,
    unit_rows,
)
from rascal_geom.metrics.spectrum import rankme
from rascal_train.errors import RascalError

_BLOCK = 2048
_MAX_ANCHORS = 2000


def _class_sums(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n_classes = int(labels.max()) + 1
    return (class_sums(x, labels, n_classes),
            np.bincount(labels, minlength=n_classes).astype(np.float64))


def _pair_sums(x: np.ndarray, labels: np.ndarray) -> tuple[float, float, float, float]:
    """Sums of ``x_i . x_j`` over ordered same-class and different-class pairs ``i != j``, and their
    counts."""
    sums, counts = _class_sums(x, labels)
    sq = sum(float(np.einsum("nd,nd->", b, b)) for b in (np.asarray(x[r], dtype=np.float64)
                                                         for r in row_blocks(len(x), x.shape[1])))
    same = float((sums * sums).sum() - sq)
    total = sums.sum(0)
    allpairs = float(total @ total - sq)
    n = len(x)
    n_same = float((counts * (counts - 1)).sum())
    return same, allpairs - same, n_same, float(n * (n - 1)) - n_same


def alignment(view_a, view_b) -> float:
    """Wang & Isola's alignment ``E ||f(x) - f(y)||^2`` over positive pairs (alpha = 2).

    A positive pair is two augmented views of one image: row ``i`` of ``view_a`` with row ``i``
    of ``view_b``. Both are L2-normalised here.

    Parameters
    ----------
    view_a, view_b : array-like of shape (n_images, dim), float

    Returns
    -------
    float
        ``mean_i ||a_i - b_i||^2``, in [0, 4].
    """
    a = unit_rows(view_a, "view_a")
    b = unit_rows(view_b, "view_b")
    if a.shape != b.shape:
        raise RascalError("alignment needs one row of view_b per row of view_a (two views of each "
                          f"image); got shapes {a.shape} and {b.shape}.")
    return float(((a - b) ** 2).sum(axis=1).mean())


def class_alignment(emb, labels) -> float:
    """Alignment's formula over every same-class pair: ``E ||f(x) - f(y)||^2``, ``y_x = y_y``.

    Not Wang & Isola's alignment (two views of one image, :func:`alignment`): this measures how
    tightly a class gathers, and is what a split without augmented views can give. Exact over all
    ordered same-class pairs ``i != j`` of L2-normalised rows, in O(n d):
    ``||x - y||^2 = 2 - 2 x.y`` and the pair sum comes from class sums.
    """
    x = unit_rows(emb, "emb", kept_precision(emb))
    labels = as_labels(labels, len(x), "labels")
    return _class_alignment(_pair_sums(x, labels))


def _class_alignment(pairs: tuple[float, float, float, float]) -> float:
    """:func:`class_alignment` from :func:`_pair_sums`."""
    same, _, n_same, _ = pairs
    return 2.0 - 2.0 * same / n_same if n_same else float("nan")


def uniformity(emb, t: float = 2.0, max_samples: int = 5000, seed: int = 0) -> float:
    """Wang & Isola's uniformity ``log E exp(-t ||f(x) - f(y)||^2)`` over pairs ``i != j``.

    Exact over all pairs of at most ``max_samples`` rows (a seeded subsample when larger),
    computed blockwise with a log-sum-exp.
    """
    x = unit_rows(emb, "emb", kept_precision(emb))
    if len(x) < 2:
        raise RascalError("uniformity needs at least 2 rows.")
    if len(x) > max_samples:
        x = x[np.random.default_rng(seed).choice(len(x), max_samples, replace=False)]
    xt = torch.from_numpy(x)
    n = len(xt)
    parts = []
    for start in range(0, n, _BLOCK):
        d2 = (2.0 - 2.0 * (xt[start:start + _BLOCK] @ xt.T)).clamp_min(0.0)
        rows = torch.arange(start, min(n, start + _BLOCK))
        d2[rows - start, rows] = float("inf")  # drop i == j
        parts.append(torch.logsumexp((-t * d2).flatten(), 0))
    return float(torch.logsumexp(torch.stack(parts), 0) - np.log(n * (n - 1)))


def neural_collapse(features, labels) -> dict:
    """Neural-collapse statistics of Papyan, Han & Donoho (2020) on the raw (unnormalised) rows.

    With global mean ``mu_G``, class means ``mu_c``,
    ``Sigma_W = (1/N) sum_i (h_i - mu_c)(h_i - mu_c)^T`` and
    ``Sigma_B = (1/C) sum_c (mu_c - mu_G)(mu_c - mu_G)^T``:

    - ``nc1 = Tr(Sigma_W Sigma_B^+) / C``, ``Sigma_B^+`` the pseudo-inverse of rank ``C - 1``;
    - ``equinorm``: std / mean of the norms ``||mu_c - mu_G||`` (coefficient of variation);
    - ``equiangularity``: std of the cosines between distinct centred class means;
    - ``max_equiangularity``: mean of ``|cos + 1/(C-1)|`` (0 for a simplex ETF).

    Parameters
    ----------
    features : array-like of shape (n_samples, dim), float
    labels : array-like of shape (n_samples,), int

    Returns
    -------
    dict of str to float (NaN with fewer than two classes)
    """
    h = as_matrix(features, "features", kept_precision(features))
    labels = as_labels(labels, len(h), "labels")
    sums, counts = _class_sums(h, labels)
    present = counts > 0
    means = sums[present] / counts[present, None]
    c = len(means)
    if c < 2:
        nan = float("nan")
        return {"nc1": nan, "equinorm": nan, "equiangularity": nan, "max_equiangularity": nan}
    remap = np.cumsum(present) - 1
    sigma_w = np.zeros((h.shape[1], h.shape[1]))
    for rows in row_blocks(len(h), h.shape[1]):
        centred = np.asarray(h[rows], dtype=np.float64) - means[remap[labels[rows]]]
        sigma_w += centred.T @ centred
    sigma_w /= len(h)
    mb = means - sums.sum(0) / len(h)
    sigma_b = mb.T @ mb / c
    evals, evecs = np.linalg.eigh(sigma_b)
    rank = min(c - 1, h.shape[1])
    top = evals[-rank:]
    keep = top > top.max() * 1e-12
    vecs, vals = evecs[:, -rank:][:, keep], top[keep]
    pinv = (vecs / vals) @ vecs.T
    nc1 = float(np.trace(sigma_w @ pinv) / c)
    return {"nc1": nc1, **simplex_deviation(mb)}


def simplex_deviation(vectors: np.ndarray) -> dict:
    """Papyan et al.'s NC2 statistics of ``C >= 2`` vectors (centred class means, or classifier
    rows).

    ``equinorm``: std / mean of the norms; ``equiangularity``: std of the cosines between distinct
    vectors; ``max_equiangularity``: mean of ``|cos + 1/(C-1)|`` over them (all three 0 for a
    simplex ETF).
    """
    c = len(vectors)
    norms = np.linalg.norm(vectors, axis=1)
    unit = vectors / np.maximum(norms, np.finfo(np.float64).tiny)[:, None]
    off = (unit @ unit.T)[~np.eye(c, dtype=bool)]
    return {"equinorm": float(norms.std() / norms.mean()), "equiangularity": float(off.std()),
            "max_equiangularity": float(np.abs(off + 1.0 / (c - 1)).mean())}


def effective_rank(emb) -> float:
    """RankMe's effective rank ``exp(H(sigma / ||sigma||_1))`` of the L2-normalised embedding
    matrix.

    :func:`rascal_geom.metrics.spectrum.rankme` with ``eps=0`` on the normalised rows
    (``0 log 0 = 0``); ``rankme`` itself, as Garrido et al. define it, reads the raw rows.
    """
    return rankme(unit_rows(emb, "emb", kept_precision(emb)), eps=0.0)


def similarity_gap(emb, labels, max_anchors: int = _MAX_ANCHORS, seed: int = 0) -> dict:
    """Positive / negative mean cosine, their gap, and the margin-violation rate.

    ``pos_sim`` and ``neg_sim`` are exact means over all ordered same-class / different-class
    pairs ``i != j``. ``margin_violation`` is the fraction of (anchor, negative) pairs whose cosine
    exceeds the anchor's weakest positive, over all anchors or a seeded subsample of
    ``max_anchors`` of them (anchors without a positive are left out).
    """
    x = unit_rows(emb, "emb", kept_precision(emb))
    labels = as_labels(labels, len(x), "labels")
    return _similarity_gap(x, labels, _pair_sums(x, labels), max_anchors, seed)


def _similarity_gap(x: np.ndarray, labels: np.ndarray, pairs: tuple[float, float, float, float],
                    max_anchors: int, seed: int) -> dict:
    """:func:`similarity_gap` of unit rows ``x`` (n, dim) and int64 ``labels`` (n,), given their
    :func:`_pair_sums`."""
    same, diff, n_same, n_diff = pairs
    pos = same / n_same if n_same else float("nan")
    neg = diff / n_diff if n_diff else float("nan")
    return {"pos_sim": pos, "neg_sim": neg, "sim_gap": pos - neg,
            "margin_violation": _margin_violation(x, labels, max_anchors, seed)}


def _margin_violation(x: np.ndarray, labels: np.ndarray, max_anchors: int, seed: int) -> float:
    """Fraction of (anchor, negative) pairs whose float32 cosine exceeds the anchor's weakest
    positive, over the anchors of :func:`similarity_gap`; ``x`` (n, dim) unit rows, ``labels``
    (n,) int64.

    Each block of anchors is one float32 product with every row; the anchors are taken class by
    class so that a block's positives are gathered and compared once per class, not per anchor.
    """
    counts = np.bincount(labels)
    anchors = np.flatnonzero(counts[labels] >= 2)
    if len(anchors) > max_anchors:
        anchors = np.sort(np.random.default_rng(seed).choice(anchors, max_anchors, replace=False))
    negatives = int((len(x) - counts[labels[anchors]]).sum())
    if not negatives:
        return float("nan")
    anchors = anchors[np.argsort(labels[anchors], kind="stable")]
    # Members of class c: by_class[first[c]:first[c + 1]], in ascending row order.
    by_class = np.argsort(labels, kind="stable")
    first = np.concatenate([[0], np.cumsum(counts)])
    xt = torch.from_numpy(np.asarray(x, dtype=np.float32))
    violations = 0
    # Anchors per block: at most 2^28 similarities (1 GiB, the kNN search's bound); with a million
    # rows, a product of 64 anchors took 1.3-1.6x as long per anchor as one of 268. One buffer
    # serves every block: a fresh 1 GiB result cost ~0.3 s of page faults each time.
    block = max(1, min(_BLOCK, (1 << 28) // len(x), len(anchors)))
    buffer = torch.empty(block, len(x))
    for start in range(0, len(anchors), block):
        a = anchors[start:start + block]
        s = torch.mm(xt[torch.from_numpy(a)], xt.T, out=buffer[:len(a)]).numpy()
        lab = labels[a]
        runs = np.flatnonzero(np.diff(lab, prepend=-1))
        for r0, r1 in zip(runs, np.append(runs[1:], len(a))):
            members = by_class[first[lab[r0]]:first[lab[r0] + 1]]
            pos = s[r0:r1, members]
            rows, own = np.arange(r1 - r0), np.searchsorted(members, a[r0:r1])
            self_sim = pos[rows, own]
            pos[rows, own] = np.inf
            weakest = pos.min(axis=1, keepdims=True)
            pos[rows, own] = self_sim
            # Negatives above the weakest positive = all rows above it - positives (and self)
            # above it, both read from the same similarities so that ties count alike.
            violations += int(np.count_nonzero(s[r0:r1] > weakest)
                              - np.count_nonzero(pos > weakest))
    return violations / negatives


def trustworthiness(high, low, n_neighbors: int = 5) -> float:
    """Trustworthiness of a low-dimensional map (Venna & Kaski 2001), as scikit-learn defines it.

    ``T(k) = 1 - 2 / (n k (2n - 3k - 1)) * sum_i sum_{j in U_k(i)} (r(i, j) - k)``, where
    ``U_k(i)`` are the map's ``k`` nearest neighbours of ``i`` that are not among its ``k`` nearest
    in the original space and ``r(i, j)`` the rank of ``j`` among ``i``'s neighbours there
    (1 = nearest). Both spaces use Euclidean distance (on L2-normalised rows, the cosine order).

    Parameters
    ----------
    high : array-like of shape (n_samples, dim), float
    low : array-like of shape (n_samples, n_components), float
    n_neighbors : int, default=5
        Must be below ``n_samples / 2``.
    """
    x, y = as_matrix(high, "high"), as_matrix(low, "low")
    n = len(x)
    k = check_positive_int(n_neighbors, "n_neighbors", "trustworthiness")
    if len(y) != n or k >= n / 2:
        raise RascalError("trustworthiness needs the same rows in both spaces and n_neighbors < "
                          f"n_samples / 2; got {n} and {len(y)} rows, n_neighbors={k}.")

    def sq_dists(a):
        g = a @ a.T
        d = np.diag(g)[:, None] + np.diag(g)[None, :] - 2 * g
        np.fill_diagonal(d, np.inf)
        return d

    order_high = np.argsort(sq_dists(x), axis=1, kind="stable")
    ranks = np.empty((n, n), dtype=np.int64)
    np.put_along_axis(ranks, order_high, np.broadcast_to(np.arange(1, n + 1), (n, n)), axis=1)
    nbrs_low = np.argsort(sq_dists(y), axis=1, kind="stable")[:, :k]
    r = np.take_along_axis(ranks, nbrs_low, axis=1) - k
    penalty = np.clip(r, 0, None).sum()
    return float(1.0 - penalty * 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0)))


def geometry_summary(emb, labels, features=None, seed: int = 0) -> dict:
    """Every global-geometry number of the Analysis JSON's ``metrics.geometry``.

    ``features`` (raw backbone rows) feed the neural-collapse statistics when given; otherwise
    the raw ``emb`` rows do.
    """
    # Normalised once for every metric here; class_alignment and similarity_gap also share one
    # pass for the pair sums.
    x = UnitRows(emb, "emb", kept_precision(emb))
    labels = as_labels(labels, len(x), "labels")
    pairs = _pair_sums(x.array, labels)
    nc = neural_collapse(emb if features is None else features, labels)
    return {"class_alignment": _class_alignment(pairs),
            "uniformity": uniformity(x, seed=seed), "nc1": nc["nc1"], "equinorm": nc["equinorm"],
            "equiangularity": nc["equiangularity"], "effective_rank": effective_rank(x),
            **_similarity_gap(x.array, labels, pairs, _MAX_ANCHORS, seed)}
