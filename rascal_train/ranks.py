"""Average ranks within rows: the one definition the loss's ρ and the rank-stability metric share.

Ranks are 0-based by *descending* value, ties sharing the average of the ranks they span
(``scipy.stats.rankdata(-x, "average") - 1``). Ties are real here, not hypothetical: the views of
one image share one cache row.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def _argsort_desc(values: Tensor) -> Tensor:
    if values.device.type == "cpu":
        # torch's CPU sort is ~10x slower than NumPy's on many short rows; any order among
        # ties serves, since tied entries get the same average rank.
        return torch.from_numpy(np.argsort(-values.numpy(), axis=-1))
    return values.argsort(dim=-1, descending=True)


def average_ranks(values):
    """0-based ranks by descending value along the last dim, ties sharing their average rank.

    Parameters
    ----------
    values : Tensor or ndarray of shape (..., m), floating point
        ``-inf`` entries sort last and so never change the ranks of finite ones (the loss marks
        padding and the anchor itself with them).

    Returns
    -------
    Tensor or ndarray (as given) of shape (..., m), dtype of ``values``
        Equal to ``scipy.stats.rankdata(-values, "average", axis=-1) - 1``.
    """
    if isinstance(values, np.ndarray):
        return average_ranks(torch.from_numpy(values)).numpy()
    order = _argsort_desc(values)
    srt = values.gather(-1, order)
    pos = torch.arange(values.shape[-1], device=values.device).expand_as(srt)
    starts = torch.ones_like(srt, dtype=torch.bool)
    starts[..., 1:] = srt[..., 1:] != srt[..., :-1]
    # Without ties (among finite entries) the rank is the sorted position. The check costs a
    # device sync, so it is only taken on the CPU, where it saves most of the work.
    if values.device.type == "cpu" and bool((starts | srt.isneginf()).all()):
        ranks = pos.to(values.dtype)
    else:
        ends = torch.ones_like(starts)
        ends[..., :-1] = starts[..., 1:]
        first = torch.where(starts, pos, 0).cummax(-1).values                # start of each tie run
        last = torch.where(ends, pos, pos.shape[-1]).flip(-1).cummin(-1).values.flip(-1)  # its end
        ranks = (first + last).to(values.dtype) / 2
    return torch.empty_like(values).scatter_(-1, order, ranks)
