"""Input validation shared by the metrics: one place, one message template."""

from __future__ import annotations

import numpy as np
import torch

from rascal_train.errors import RascalError


class UnitRows:
    """Rows that :func:`unit_rows` has checked and L2-normalised, to measure many times.

    Every metric checks and normalises its input, a pass over the set and a copy of it; an
    analysis that measures one set a dozen times (1,000,000 x 256: ~1 s each) wraps the rows
    once and hands this to each metric, which reads them as they are. Re-normalising would not
    be a no-op either: about a third of normalised float32 rows move by an ulp.

    Parameters
    ----------
    x : array-like of shape (n_samples, dim), float
    name : str
        Named in the error for bad rows.
    dtype : numpy dtype, default=np.float32

    Attributes
    ----------
    array : ndarray of shape (n_samples, dim), ``dtype``, unit rows (treat as read-only)
    """

    __slots__ = ("array",)

    def __init__(self, x, name: str, dtype=np.float32):
        self.array = unit_rows(x, name, dtype)

    @property
    def dtype(self):
        return self.array.dtype

    @property
    def shape(self) -> tuple[int, int]:
        return self.array.shape

    def __len__(self) -> int:
        return len(self.array)


def _matrix(x, name: str, dtype) -> np.ndarray:
    """A 2-D array from a NumPy array, tensor or :class:`UnitRows` (values not checked), or a
    one-line error."""
    if isinstance(x, UnitRows):
        x = x.array
    elif isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=dtype)
    if x.ndim != 2 or len(x) == 0:
        raise RascalError(f"The {name!r} parameter must be a non-empty 2-D array (n_samples, dim). "
                          f"Got shape {x.shape} instead.")
    return x


def _non_finite(name: str) -> RascalError:
    return RascalError(f"The {name!r} parameter holds NaN or infinite values; drop or fix those "
                       "rows.")


def as_matrix(x, name: str, dtype=np.float64) -> np.ndarray:
    """A 2-D float array from a NumPy array, tensor or :class:`UnitRows`, or a one-line error
    naming ``name``."""
    if isinstance(x, UnitRows) and x.dtype == dtype:
        return x.array
    x = _matrix(x, name, dtype)
    if not np.isfinite(x).all():
        raise _non_finite(name)
    return x


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (an all-zero row stays zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, np.finfo(x.dtype).tiny)


def unit_rows(x, name: str, dtype=np.float64) -> np.ndarray:
    """:func:`as_matrix` with rows scaled to unit L2 norm; all-zero rows are refused.

    A zero vector has no direction: scaled, it would stay zero and count as orthogonal to every
    other row (cosine 0), silently pulling every similarity-based number towards chance.
    A :class:`UnitRows` of ``dtype`` is returned as it is. The rows are checked and scaled a
    block at a time (:func:`row_blocks`), so that no temporary the size of the set is made
    beside the result: the same values as :func:`normalize_rows` of the whole.
    """
    if isinstance(x, UnitRows) and x.dtype == dtype:
        return x.array
    x = _matrix(x, name, dtype)
    out = np.empty_like(x)
    zero = []
    tiny = np.finfo(x.dtype).tiny
    for rows in row_blocks(len(x), x.shape[1]):
        block = x[rows]
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        # A NaN or infinity makes its row's norm non-finite, a zero row's norm is 0; a row whose
        # squares overflow or underflow does too, so the elements decide.
        if not np.isfinite(norms).all() and not np.isfinite(block).all():
            raise _non_finite(name)
        if not norms.all():
            zero.extend((rows.start + np.flatnonzero(~np.any(block != 0, axis=1))).tolist())
        np.divide(block, np.maximum(norms, tiny), out=out[rows])
    if zero:
        shown = ", ".join(map(str, zero[:5])) + (", ..." if len(zero) > 5 else "")
        raise RascalError(f"The {name!r} parameter has {len(zero)} all-zero row(s) of {len(x)} "
                          f"(rows {shown}); a zero vector has no direction, drop those rows before "
                          "measuring.")
    return out


def neighbour_counts(idx: np.ndarray, k: int) -> dict:
    """What ``k`` a neighbour search within groups really used (``idx`` padded with -1).

    Returns
    -------
    dict
        ``k``: the most neighbours any sample had (``k`` clipped by the largest group);
        ``k_requested``; ``short``: samples with at least one but fewer than ``k`` neighbours;
        ``alone``: samples with none (left out of the metric).
    """
    used = (np.asarray(idx) >= 0).sum(axis=1)
    return {"k": int(used.max()) if used.size else 0, "k_requested": int(k),
            "short": int(((used > 0) & (used < k)).sum()), "alone": int((used == 0).sum())}


def as_labels(y, n: int, name: str) -> np.ndarray:
    """A 1-D int64 label array of length ``n`` with non-negative values."""
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.shape != (n,) or (y.size and not np.issubdtype(y.dtype, np.integer)):
        raise RascalError(f"The {name!r} parameter must be an integer array of shape ({n},). "
                          f"Got {y.dtype} of shape {y.shape} instead.")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise RascalError(f"The {name!r} parameter must hold labels >= 0. Got {y.min()} instead.")
    return y


def check_positive_int(value, name: str, owner: str) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise RascalError(f"The {name!r} parameter of {owner} must be an int in [1, inf). Got "
                          f"{value!r} instead.")
    return int(value)


def kept_precision(x) -> type:
    """float64 for float64 input, else float32: a large float32 set is read in float64 blocks
    (:func:`row_blocks`) instead of being copied whole to float64."""
    return np.float64 if getattr(x, "dtype", None) == np.float64 else np.float32


#: Elements of a float64 block of rows that the chunked metrics hold at once (64 MiB).
BLOCK_ELEMENTS = 1 << 23


def row_blocks(n: int, width: int) -> list[slice]:
    """Slices of ``n`` rows such that a block of ``width`` float64 columns takes <= 64 MiB.

    The metrics walk large sets block by block, each block cast to float64, so that their
    memory is O(block + classes x dim) instead of a float64 copy of every row.
    """
    step = max(1, BLOCK_ELEMENTS // max(1, width))
    return [slice(start, min(n, start + step)) for start in range(0, n, step)]


def gram64(x: np.ndarray) -> np.ndarray:
    """``x.T @ x`` in float64, accumulated over blocks of rows, shape (dim, dim)."""
    out = np.zeros((x.shape[1], x.shape[1]))
    for rows in row_blocks(len(x), x.shape[1]):
        block = np.asarray(x[rows], dtype=np.float64)
        out += block.T @ block
    return out


def class_sums(x: np.ndarray, labels: np.ndarray, n_classes: int,
               weights: np.ndarray | None = None) -> np.ndarray:
    """(Weighted) float64 row sums per label, ndarray of shape (n_classes, dim), via a sparse
    one-hot product per block of rows (``np.add.at`` is ~50x slower on 50,000 x 512)."""
    from scipy import sparse

    values = np.ones(len(labels)) if weights is None else np.asarray(weights, dtype=np.float64)
    out = np.zeros((n_classes, x.shape[1]))
    for rows in row_blocks(len(x), x.shape[1]):
        m = rows.stop - rows.start
        onehot = sparse.csr_matrix((values[rows], (labels[rows], np.arange(m))),
                                   shape=(n_classes, m))
        out += onehot @ np.asarray(x[rows], dtype=np.float64)
    return out
