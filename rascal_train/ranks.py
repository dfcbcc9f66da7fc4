"""Average ranks within rows: the one definition the loss's ρ and the rank-stability metric share.

Ranks are 0-based by *descending* value, ties sharing the average of the ranks they span
(``scipy.stats.rankdata(-x, "average") - 1``). Ties are real here, not hypothetical: the views of
one image share one cache row.

:func:`average_ranks` sorts each row (:func:`_argsort_desc`), notes the places each sorted entry's
copies take (:func:`_sorted_places`), gives each run of ties the average of its places
(:func:`_tied_spans`) and puts the ranks back in the row's order. Its CPU fast paths sit beside
plain forms that the tests in ``tests/test_ranks.py`` compare them with:
:func:`_argsort_desc_reference`, :func:`_tied_spans` on every row, and
:func:`average_ranks_reference` for the whole; ``benchmarks/fastpath_bench.py`` times each pair.
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


def _argsort_desc_reference(values: Tensor) -> Tensor:
    """Descending order along the rows of the 2-D ``values``, any order among ties: torch's sort.

    The plain form of :func:`_argsort_desc`, and what it runs off the CPU.
    """
    return values.argsort(dim=-1, descending=True)


def _argsort_desc(values: Tensor) -> Tensor:
    """:func:`_argsort_desc_reference`, on a CPU by NumPy's plain sort of packed keys.

    Why: torch's CPU sort is ~10x slower than NumPy's on many short rows, and NumPy's plain
    sort ~2x faster than its argsort. So where the values fit in float32 the order comes from
    a sort of numbers alone, each number carrying its own column. A float32 widened to float64
    is exact and its 52-bit mantissa ends in 52 - 23 = 29 zero bits; the column index is
    written into them (``bits | column``). That moves a key by less than the gap between two
    float32 values of its binade, so different values keep their order, equal values are
    ordered among themselves by their columns, and after sorting the low 29 bits of each key
    say which column it came from. The key is ``-value``, so the ascending sort is descending
    in ``value``; ±inf become ±2^200 (exact, beyond any float32, with free bits too); ±0
    become the smallest subnormals of either sign, still between the negative and the positive
    float32s. float64 values (no free bits) take NumPy's argsort instead. Rows are split over
    threads, as NumPy sorts on one.

    Buys (``benchmarks/fastpath_bench.py``, CPU time on 1 thread, the loss at N = 2048): 1.7 ms
    instead of 16.4 on the [2048, 244] block of 10 classes and 0.43 instead of 3.8 on its
    cached multiset, ~18 ms of an ~88 ms loss step; at 100 classes 0.39 instead of 1.3 ms, and
    on the [1024, 21] multiset it loses (0.13 instead of 0.08 ms).
    """
    if not _host_shortcuts(values):
        return _argsort_desc_reference(values)
    rows, width = values.shape
    if values.dtype == torch.float64 or width >= 1 << _FREE_BITS:
        neg = -values.detach().numpy()
        order = np.empty(neg.shape, dtype=np.int64)

        def argsort_rows(lo: int, hi: int) -> None:
            order[lo:hi] = np.argsort(neg[lo:hi], axis=-1)

        _over_row_spans(rows, neg.size, argsort_rows)
        return torch.from_numpy(order)
    keys = (-values.detach()).to(torch.float64).clamp_(-2.0**200, 2.0**200).contiguous()
    bits = keys.view(torch.int64)  # the same memory: sorting ``packed`` sorts ``bits`` too
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
        padding and the anchor itself with them); their own ranks are unspecified.
    counts : Tensor of shape (..., m), optional
        How many times each entry occurs, for ranking a multiset given by its distinct values:
        an entry of count k stands for k tied copies and gets their average rank. Default 1.
        Buys (``benchmarks/fastpath_bench.py``, CPU, 1 thread): the loss's cached multiset of
        [1024, 122] (N = 2048, 10 classes) in 1.5 ms instead of 5.1 for the expanded rows.

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
    order, srt, before, through = _sorted_places(values, counts)
    # Finding the tied rows costs a device sync, hence the GPU passes every row.
    tie_pass = _tied_spans_where_tied if _host_shortcuts(values) else _tied_spans
    return _scatter_ranks(values, order, tie_pass(srt, before, through)).reshape(shape)


def average_ranks_reference(values: Tensor, counts: Tensor | None = None) -> Tensor:
    """:func:`average_ranks` (Tensors only) counted from its definition: O(m^2) per row.

    The copies of an entry come after every copy of a larger value (``above`` of them) and
    share the next ``equal`` places with the copies of their own value, so their average
    0-based rank is ``above + (equal - 1) / 2``. Counted in float64 (exact), then rounded to
    the dtype of ``values`` as ``average_ranks`` rounds. Unlike ``average_ranks`` on a CPU it
    also averages the ranks of tied ``-inf`` entries.
    """
    weight = torch.ones_like(values, dtype=torch.float64) if counts is None else counts.double()
    others, this = values[..., None, :], values[..., :, None]
    above = ((others > this) * weight[..., None, :]).sum(-1)
    equal = ((others == this) * weight[..., None, :]).sum(-1)
    return (above + (equal - 1) / 2).to(values.dtype)


def _sorted_places(values: Tensor, counts: Tensor | None):
    """The rows of the 2-D ``values`` sorted, and where each sorted entry's copies stand.

    Returns
    -------
    order, srt : LongTensor and Tensor of shape (rows, m)
        ``srt = values.gather(-1, order)``, descending.
    before, through : Tensor of shape (rows, m), or (m,) for all rows when ``counts`` is None
        The copies of ``srt[r, k]`` take the places ``before[r, k] .. through[r, k] - 1``.
        Without ``counts`` these are integer positions (exact at any length); with them, the
        running sum of the sorted counts (the multiset is never expanded).
    """
    order = _argsort_desc(values)
    srt = values.gather(-1, order)
    if counts is None:
        before = torch.arange(values.shape[-1], device=values.device)
        through = before + 1
    else:
        through = counts.gather(-1, order).to(values.dtype).cumsum(-1)
        before = torch.cat([torch.zeros_like(through[..., :1]), through[..., :-1]], dim=-1)
    return order, srt, before, through


def _scatter_ranks(values: Tensor, order: Tensor, span: Tensor) -> Tensor:
    """Ranks ``span / 2`` of the sorted entries, put back in the order of ``values``."""
    ranks = (span.to(values.dtype) / 2).expand_as(order)
    return torch.empty_like(values).scatter_(-1, order, ranks)


def _tied_spans(srt: Tensor, before: Tensor, through: Tensor) -> Tensor:
    """``first + last - 1`` of the places spanned by the run of ties each entry of the sorted
    rows ``srt`` is in (``before``, ``through`` as :func:`_sorted_places` gives them).

    ``first`` is ``before`` at the run's start, carried forward by a running max; ``last``
    is ``through - 1`` at its end, carried backward by a running min. Half of the sum is the
    run's average rank; an entry without ties is a run of one.
    """
    starts = torch.ones_like(srt, dtype=torch.bool)
    starts[..., 1:] = srt[..., 1:] != srt[..., :-1]
    ends = torch.ones_like(starts)
    ends[..., :-1] = starts[..., 1:]
    first = torch.where(starts, before, 0).cummax(-1).values
    last = torch.where(ends, through, through[..., -1:]).flip(-1).cummin(-1).values.flip(-1)
    return first + last - 1


def _tied_spans_where_tied(srt: Tensor, before: Tensor, through: Tensor) -> Tensor:
    """:func:`_tied_spans`, the run-length pass taken by the rows that have a tie only.

    Ties are rare among similarities, and in a row without one every entry is a run of one,
    whose span is ``before + through - 1``. Runs of ``-inf`` (padding, the anchor itself) are
    not looked for: they sort last, so their ranks, left unaveraged, change no other entry's.

    Buys (``benchmarks/fastpath_bench.py``, CPU, 1 thread): 1.3 ms instead of 4.2 on the
    loss's [2048, 244] block (N = 2048, 10 classes), ~3% of its step; less elsewhere.
    """
    spans = before + through - 1
    tied = ((srt[..., 1:] == srt[..., :-1]) & (srt[..., 1:] > float("-inf"))).any(-1)
    if tied.any():
        rows = tied.nonzero()[:, 0]
        if before.ndim > 1:  # places per row (a multiset), not one row for all
            before, through = before[rows], through[rows]
        spans = spans.expand_as(srt).clone()
        spans[rows] = _tied_spans(srt[rows], before, through)
    return spans
