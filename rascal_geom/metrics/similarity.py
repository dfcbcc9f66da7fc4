"""Similarity between two representations of the same samples: linear CKA and shape distances.

Everything here comes from sums over the samples of centred products, accumulated over row
blocks in float64: the ``dim x dim`` feature products when the widths are below ``n_samples``
(memory: one block plus the products, whatever ``n_samples``), else blocks of Gram rows (the
``n x n`` Gram is never held whole):

- linear CKA (Kornblith et al. 2019) with the biased HSIC estimator, or the unbiased one
  (Song et al. 2012) that Nguyen, Raghu & Kornblith (2021) recommend: the biased estimate is far
  from 0 for independent sets when the width is not small against ``n`` (about 0.8 at n = 128,
  d = 512); minibatch CKA (Nguyen et al. 2021) averages unbiased HSIC over batches;
- the orthogonal Procrustes distance and the angular shape metric of Williams et al. (2021),
  with netrep's partial whitening ``alpha``.

Products are computed in the input's precision (float32 rows stay float32 inside a block, as the
neighbour search does) and summed in float64; float64 rows are computed in float64.
"""

from __future__ import annotations

import numpy as np

from rascal_geom.metrics._inputs import as_matrix, check_positive_int
from rascal_train.errors import RascalError

#: Entries of one block of products (rows x width): about 32 MB of float64.
_BLOCK_ENTRIES = 1 << 22


class _Rows:
    """One validated representation: its rows, column mean and centred squared row norms."""

    def __init__(self, x, name: str):
        self.x = as_matrix(x, name, dtype=None)
        self.n, self.d = self.x.shape
        self.dtype = np.result_type(self.x.dtype, np.float32)
        self.mean = self.x.mean(axis=0, dtype=np.float64).astype(self.dtype)
        step = max(1, _BLOCK_ENTRIES // self.d)
        self.sq_norms = np.concatenate([(self.block(s, s + step).astype(np.float64) ** 2).sum(1)
                                        for s in range(0, self.n, step)])

    def block(self, start: int, stop: int) -> np.ndarray:
        """Centred rows ``start:stop`` in the working precision."""
        return self.x[start:stop].astype(self.dtype) - self.mean


def _cross(a: _Rows, b: _Rows) -> np.ndarray:
    """``A^T B`` of the centred rows, ndarray of shape (a.d, b.d), float64."""
    out = np.zeros((a.d, b.d))
    step = max(1, _BLOCK_ENTRIES // max(a.d, b.d))
    for start in range(0, a.n, step):
        out += a.block(start, start + step).T @ b.block(start, start + step)
    return out


def _trace_kl(a: _Rows, b: _Rows) -> float:
    """``tr(K L)`` for the centred linear Grams ``K = A A^T``, ``L = B B^T``, never forming them
    whole.

    Feature form ``||A^T B||_F^2`` when the ``d_a x d_b`` product is no larger than an ``n x n``
    Gram (then it is also the cheaper one), else the Gram form, one block of Gram rows at a time.
    """
    if a.d * b.d <= a.n * a.n:
        return float((_cross(a, b) ** 2).sum())
    total = 0.0
    step = max(1, _BLOCK_ENTRIES // a.n)
    a_all, b_all = a.block(0, a.n), b.block(0, b.n)
    for start in range(0, a.n, step):
        k = a_all[start:start + step] @ a_all.T
        l_rows = b_all[start:start + step] @ b_all.T
        total += float((k.astype(np.float64) * l_rows).sum())
    return total


def _hsic(a: _Rows, b: _Rows, tr_kl: float, debiased: bool) -> float:
    """HSIC of two centred linear kernels, from ``tr(K L)`` and the squared row norms.

    Biased: ``tr(K L) / (n - 1)^2``. Unbiased (Song et al. 2012), with ``K~``, ``L~`` the Grams with
    their diagonals zeroed:
    ``[tr(K~ L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n(n-3))``. The estimator is
    invariant to shifting the features, and on centred features ``K~ 1 = -diag K``, so each term is
    a sum over rows: ``tr(K~ L~) = tr(K L) - sum_i k_ii l_ii``, ``1'K~1 = -sum k_ii`` and
    ``1'K~L~1 = sum_i k_ii l_ii``.
    """
    n = a.n
    if not debiased:
        return tr_kl / (n - 1) ** 2
    kl_diag = float(a.sq_norms @ b.sq_norms)
    return (tr_kl - kl_diag + a.sq_norms.sum() * b.sq_norms.sum() / ((n - 1) * (n - 2))
            - 2.0 * kl_diag / (n - 2)) / (n * (n - 3))


def _check_pairs(rows: list[_Rows], debiased: bool, owner: str) -> None:
    n = rows[0].n
    for r in rows[1:]:
        if r.n != n:
            raise RascalError(f"{owner} needs representations of the same samples; got {n} and "
                              f"{r.n} rows.")
    if n < (4 if debiased else 2):
        raise RascalError(f"{owner} needs at least {4 if debiased else 2} samples"
                          f"{' for the unbiased estimator' if debiased else ''}; got {n}.")


def _cka_table(xs: list[_Rows], ys: list[_Rows], debiased: bool) -> np.ndarray:
    self_x = [_hsic(r, r, _trace_kl(r, r), debiased) for r in xs]
    self_y = self_x if ys is xs else [_hsic(r, r, _trace_kl(r, r), debiased) for r in ys]
    out = np.empty((len(xs), len(ys)))
    for i, a in enumerate(xs):
        for j, b in enumerate(ys):
            denom = np.sqrt(self_x[i] * self_y[j]) if self_x[i] > 0 and self_y[j] > 0 else 0.0
            out[i, j] = _hsic(a, b, _trace_kl(a, b), debiased) / denom if denom > 0 else np.nan
    return out


def cka(x, y, debiased: bool = False) -> float:
    """Linear CKA between two representations of the same samples (Kornblith et al. 2019).

    ``CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` with ``K = X X^T``, ``L = Y Y^T`` of the
    column-centred rows (no other normalisation: CKA is invariant to orthogonal maps and isotropic
    scaling of either side). Computed from ``X^T Y``-type products when the widths are below
    ``n_samples``, else from blocks of Gram rows; the ``n x n`` Gram is never held whole.

    Parameters
    ----------
    x : array-like of shape (n_samples, dim_x), float
    y : array-like of shape (n_samples, dim_y), float
        Same samples in the same order; the widths may differ.
    debiased : bool, default=False
        Use the unbiased HSIC estimator (Song et al. 2012), as Nguyen, Raghu & Kornblith (2021)
        recommend; needs ``n_samples >= 4``. The biased estimate of two independent sets is far
        above 0 unless ``n_samples`` is much larger than the widths; the unbiased one is near 0
        (and can be slightly negative).

    Returns
    -------
    float
        In [0, 1] for the biased estimator; NaN when a side has no variance.
    """
    a, b = _Rows(x, "x"), _Rows(y, "y")
    _check_pairs([a, b], debiased, "cka")
    return float(_cka_table([a], [b], debiased)[0, 0])


def cka_matrix(xs, ys=None, debiased: bool = False) -> np.ndarray:
    """Linear CKA between every pair of two lists of representations (a layer x layer map).

    Parameters
    ----------
    xs : sequence of array-like of shape (n_samples, dim_i), float
        E.g. the layers of one model, all on the same samples.
    ys : sequence of array-like of shape (n_samples, dim_j), float, or None, default=None
        The layers of a second model; ``None`` compares ``xs`` with itself.
    debiased : bool, default=False
        As in :func:`cka`.

    Returns
    -------
    ndarray of shape (len(xs), len(ys)), float64
        ``out[i, j] = cka(xs[i], ys[j])``; each representation's own HSIC is computed once.
    """
    rows_x = [_Rows(x, f"xs[{i}]") for i, x in enumerate(xs)]
    rows_y = rows_x if ys is None else [_Rows(y, f"ys[{j}]") for j, y in enumerate(ys)]
    if not rows_x or not rows_y:
        raise RascalError("cka_matrix needs at least one representation on each side.")
    _check_pairs(rows_x + ([] if ys is None else rows_y), debiased, "cka_matrix")
    return _cka_table(rows_x, rows_y, debiased)


def minibatch_cka(x, y, batch_size: int = 1024, seed: int = 0) -> dict:
    """Minibatch linear CKA (Nguyen, Raghu & Kornblith 2021) with the unbiased HSIC estimator.

    The samples are shuffled (seeded) and split into ``n_batches = n_samples // batch_size``
    batches of nearly equal size (at least ``batch_size`` each; one batch when ``n_samples`` is
    smaller);
    ``CKA = mean_b HSIC_1(K_b, L_b) / sqrt(mean_b HSIC_1(K_b, K_b) mean_b HSIC_1(L_b, L_b))``.
    Unbiased per batch, so the average does not drift with the batch size as the biased one does.

    Parameters
    ----------
    x : array-like of shape (n_samples, dim_x), float
    y : array-like of shape (n_samples, dim_y), float
    batch_size : int, default=1024
        At least 4.
    seed : int, default=0

    Returns
    -------
    dict
        ``cka`` (float), ``n_batches`` (int), ``batch_size`` (int, the smallest batch used).
    """
    check_positive_int(batch_size, "batch_size", "minibatch_cka")
    if batch_size < 4:
        raise RascalError("The 'batch_size' parameter of minibatch_cka must be an int in [4, "
                          f"inf). Got {batch_size} instead.")
    a, b = _Rows(x, "x"), _Rows(y, "y")
    _check_pairs([a, b], True, "minibatch_cka")
    order = np.random.default_rng(seed).permutation(a.n)
    batches = np.array_split(order, max(1, a.n // batch_size))
    sums = np.zeros(3)
    for rows in batches:
        rows = np.sort(rows)
        ba, bb = _Rows(a.x[rows], "x"), _Rows(b.x[rows], "y")
        sums += [_hsic(ba, bb, _trace_kl(ba, bb), True), _hsic(ba, ba, _trace_kl(ba, ba), True),
                 _hsic(bb, bb, _trace_kl(bb, bb), True)]
    denom = np.sqrt(sums[1] * sums[2]) if sums[1] > 0 and sums[2] > 0 else 0.0
    return {"cka": float(sums[0] / denom) if denom > 0 else float("nan"), "n_batches": len(batches),
            "batch_size": min(len(r) for r in batches)}


def _whitener(cov: np.ndarray, alpha: float, eig_floor: float = 1e-7) -> np.ndarray:
    """netrep's partial whitening matrix ``Z = V diag(alpha + (1 - alpha) lam^-1/2) V^T``, rescaled
    so ``X Z`` keeps the total variance of ``X`` (``cov = X^T X``; eigenvalues floored at
    ``eig_floor``)."""
    if alpha == 1.0:
        return np.eye(len(cov))
    lam, v = np.linalg.eigh(cov)
    lam = np.maximum(lam, eig_floor)
    scale = alpha + (1.0 - alpha) / np.sqrt(lam)
    scale *= np.sqrt(lam.sum() / (lam * scale ** 2).sum())
    return (v * scale) @ v.T


def shape_distances(x, y, alpha: float = 1.0) -> dict:
    """Orthogonal Procrustes distance and the angular shape metric (Williams et al. 2021).

    Both sides are column-centred, partially whitened with ``alpha`` (netrep's ``LinearMetric``:
    ``alpha = 1`` no whitening, only rotations are aligned; ``alpha = 0`` full whitening, any
    invertible linear map is aligned, a CCA-like distance), then scaled to unit Frobenius norm.
    With ``rho = max_Q <X, Y Q>_F = ||X^T Y||_*`` over orthogonal ``Q`` (widths may differ: the
    narrower side is zero-padded):

    - ``angular = arccos(rho)`` in [0, pi/2]: netrep's angular score, a metric;
    - ``procrustes = min_Q ||X - Y Q||_F = sqrt(2 - 2 rho)`` in [0, sqrt(2)]: the normalised
      Procrustes distance (Ding et al. 2021); netrep's ``euclidean`` score of the unit-norm rows.

    Computed from the ``dim x dim`` products (memory ``O(dim^2)``, rows taken in blocks).

    Parameters
    ----------
    x : array-like of shape (n_samples, dim_x), float
    y : array-like of shape (n_samples, dim_y), float
    alpha : float, default=1.0
        Partial whitening in [0, 1].

    Returns
    -------
    dict
        ``angular``, ``procrustes``, ``alpha`` (floats).
    """
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not 0.0 <= alpha <= 1.0:
        raise RascalError("The 'alpha' parameter of shape_distances must be a float in [0, 1]. "
                          f"Got {alpha!r} instead.")
    a, b = _Rows(x, "x"), _Rows(y, "y")
    _check_pairs([a, b], False, "shape_distances")
    cov_x, cov_y = _cross(a, a), _cross(b, b)
    zx, zy = _whitener(cov_x, alpha), _whitener(cov_y, alpha)
    # Norms of the whitened rows taken exactly: with floored eigenvalues (width above n_samples)
    # the whitener's variance-preserving scale is only approximate.
    norm = np.sqrt(np.trace(zx.T @ cov_x @ zx) * np.trace(zy.T @ cov_y @ zy))
    if not norm > 0:
        raise RascalError("shape_distances needs representations with some variance; one side is "
                          "constant.")
    rho = min(1.0, np.linalg.svd(zx.T @ _cross(a, b) @ zy, compute_uv=False).sum() / norm)
    return {"angular": float(np.arccos(rho)),
            "procrustes": float(np.sqrt(max(0.0, 2.0 - 2.0 * rho))), "alpha": float(alpha)}
