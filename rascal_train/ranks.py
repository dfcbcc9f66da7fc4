"""Average ranks within rows: the one definition the loss's ρ and the rank-stability metric share.

Ranks are 0-based by *descending* value, ties sharing the average of the ranks they span
(``scipy.stats.rankdata(-x, "average") - 1``). Ties are real here, not hypothetical: the views of
one image share one cache row.
"""

from __future__ import annotations

import itertools
import math
import threading

import numpy as np
import torch
from torch import Tensor

# Below this many elements per thread, starting a thread costs more than it saves.
_MIN_ELEMS_PER_THREAD = 1 << 16
# A float32 widened to float64 leaves this many low mantissa bits zero.
_FREE_BITS = 29


def _host_shortcuts(values: Tensor) -> bool:
    """Whether to take the CPU's shortcuts (NumPy's sort, looking for tied rows first); the GPU
    path stays correct on a CPU, and the tests run it there."""
    return values.device.type == "cpu"


def _over_row_spans(rows: int, size: int, fn) -> None:
    """``fn(lo, hi)`` over spans of rows, one per thread torch uses: NumPy sorts on one thread
    (without the GIL)."""
    parts = max(1, min(torch.get_num_threads(), size // _MIN_ELEMS_PER_THREAD))
    bounds = np.linspace(0, rows, parts + 1).astype(int)
    helpers = [threading.Thread(target=fn, args=span) for span in itertools.pairwise(bounds[1:])]
    for thread in helpers:
        thread.start()
    fn(bounds[0], bounds[1])
    for thread in helpers:
        thread.join()


def _argsort_desc(values: Tensor) -> Tensor:
    """Descending order along the rows of the 2-D ``values``; any order among ties."""
    if not _host_shortcuts(values):
        return values.argsort(dim=-1, descending=True)
    # torch's CPU sort is ~10x slower than NumPy's on many short rows, and NumPy's plain sort
    # ~2x faster than its argsort. So values that float32 holds exactly are sorted as packed
    # keys: widened to float64, -value keeps its low mantissa bits free for the column, which
    # breaks ties without reordering different values (±inf are clamped to ±2^200, exact too).
    rows, width = values.shape
    if values.dtype == torch.float64 or width >= 1 << _FREE_BITS:
        neg = -values.detach().numpy()
        order = np.empty(neg.shape, dtype=np.int64)

        def argsort_rows(lo: int, hi: int) -> None:
            order[lo:hi] = np.argsort(neg[lo:hi], axis=-1)

        _over_row_spans(rows, neg.size, argsort_rows)
        return torch.from_numpy(order)
    keys = (-values.detach()).to(torch.float64).clamp_(-2.0**200, 2.0**200).contiguous()
    bits = keys.view(torch.int64)
    bits |= torch.arange(width)
    packed = keys.numpy()

    def sort_rows(lo: int, hi: int) -> None:
        packed[lo:hi].sort(axis=-1)

    _over_row_spans(rows, packed.size, sort_rows)
    return bits & ((1 << _FREE_BITS) - 1)


def average_ranks(values, counts: Tensor | None = None):
    """0-based ranks by descending value along the last dim, ties sharing their average rank.

    Parameters
    ----------
    values : Tensor or ndarray of shape (..., m), floating point
        ``-inf`` entries sort last and so never change the ranks of finite ones (the loss marks
        padding and the anchor itself with them).
    counts : Tensor of shape (..., m), optional
        How many times each entry occurs, for ranking a multiset given by its distinct values:
        an entry of count k stands for k tied copies and gets their average rank. Default 1.

    Returns
    -------
    Tensor or ndarray (as given) of shape (..., m), dtype of ``values``
        Equal to ``scipy.stats.rankdata(-values, "average", axis=-1) - 1`` (with ``counts``:
        that of ``values`` with each entry repeated ``counts`` times, at any one of its copies).
    """
    if isinstance(values, np.ndarray):
        return average_ranks(torch.from_numpy(values), counts).numpy()
    shape = values.shape
    values = values.reshape(math.prod(shape[:-1]), shape[-1])
    if counts is not None:
        counts = counts.reshape(values.shape)
    order = _argsort_desc(values)
    srt = values.gather(-1, order)
    if counts is None:  # integer positions, one row broadcast over all: exact at any length
        before = torch.arange(values.shape[-1], device=values.device)
        through = before + 1
    else:
        through = counts.gather(-1, order).to(values.dtype).cumsum(-1)
        before = torch.cat([torch.zeros_like(through[..., :1]), through[..., :-1]], dim=-1)
    # A run of tied entries spans ranks [before at its start, through at its end - 1]; an
    # entry without ties is a run of one. Ties are rare among current similarities, so on the
    # CPU only the rows that have one take the run-length pass (finding them costs a device
    # sync, hence the GPU passes every row). Runs of -inf (padding) need no pass.
    if not _host_shortcuts(values):
        return _scatter_ranks(values, order, _tied_spans(srt, before, through)).reshape(shape)
    ranks = _scatter_ranks(values, order, before + through - 1)
    tied = ((srt[..., 1:] == srt[..., :-1]) & (srt[..., 1:] > float("-inf"))).any(-1)
    if tied.any():
        rows = tied.nonzero()[:, 0]
        if counts is not None:
            before, through = before[rows], through[rows]
        spans = _tied_spans(srt[rows], before, through)
        ranks[rows] = _scatter_ranks(values[rows], order[rows], spans)
    return ranks.reshape(shape)


def _scatter_ranks(values: Tensor, order: Tensor, span: Tensor) -> Tensor:
    """Ranks ``span / 2`` of the sorted entries, put back in the order of ``values``."""
    ranks = (span.to(values.dtype) / 2).expand_as(order)
    return torch.empty_like(values).scatter_(-1, order, ranks)


def _tied_spans(srt: Tensor, before: Tensor, through: Tensor) -> Tensor:
    """``first + last - 1`` of the run of ties each entry of the sorted rows ``srt`` is in."""
    starts = torch.ones_like(srt, dtype=torch.bool)
    starts[..., 1:] = srt[..., 1:] != srt[..., :-1]
    ends = torch.ones_like(starts)
    ends[..., :-1] = starts[..., 1:]
    first = torch.where(starts, before, 0).cummax(-1).values
    last = torch.where(ends, through, through[..., -1:]).flip(-1).cummin(-1).values.flip(-1)
    return first + last - 1
