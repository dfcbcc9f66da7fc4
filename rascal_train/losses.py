"""The RASCAL loss and the weight sources of its ablation, as the project's RASCAL.md spec fixes
them.

One loss with one switch: SupCon's equal weight over an anchor's positives is replaced by a
row-stochastic weight ``w_ij``; ``weights="uniform"`` *is* SupCon (Khosla et al. 2020, Eq. 2).

Ranks are needed only among each anchor's positives, so nothing here sorts an N×N matrix:
every anchor's class members are gathered into a padded ``[N, n_max]`` block (``n_max`` the
largest class count in the batch), and ranks, drifts and weights live in that block. Work and
memory of the weighting are O(N · n_max). The softmax denominator needs every similarity, but
never all at once: they are computed a chunk of rows at a time, and the backward pass rebuilds
each chunk instead of keeping an N×N matrix alive between forward and backward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from rascal_train.errors import RascalError
from rascal_train.names import WEIGHT_SOURCES
from rascal_train.ranks import average_ranks

_CACHE_SOURCES = ("rank_agreement", "rank_agreement_hard")
HIST_BINS = 20
# Elements of a [rows, N] chunk: 64 MiB in float32 keeps a CPU pass near its caches; on a GPU
# a chunk of 256 MiB takes N = 8192 in one launch per kernel and still bounds memory.
_CHUNK_ELEMS = {"cpu": 1 << 24, "cuda": 1 << 26}


def _validate(z: Tensor, labels: Tensor, cached: Tensor | None,
              cached_valid: Tensor | None) -> None:
    if not isinstance(z, Tensor) or z.ndim != 2:
        raise RascalError(f"z must be a 2-D tensor of shape (n_samples, dim); got "
                          f"{tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__}. "
                          "Stack the views of a batch along dim 0.")
    if not z.is_floating_point():
        raise RascalError(f"z must be a floating-point tensor; got {z.dtype}.")
    n = z.shape[0]
    if not isinstance(labels, Tensor) or labels.ndim != 1 or labels.shape[0] != n:
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise RascalError(f"labels must be a 1-D tensor with one label per row of z ({n}); got "
                          f"{shape}. Repeat the labels once per view.")
    if labels.is_floating_point():
        raise RascalError(f"labels must be integers; got {labels.dtype}. Pass class indices.")
    if cached is None:
        if cached_valid is not None:
            raise RascalError("cached_valid was given without cached rows; pass both or neither.")
        return
    if cached_valid is None:
        raise RascalError("cached rows were given without cached_valid; pass the validity mask "
                          "that EmbeddingCache.lookup returns alongside the rows.")
    if cached.shape != z.shape:
        raise RascalError(f"cached must have the shape of z {tuple(z.shape)}; got "
                          f"{tuple(cached.shape)}. Look up one cache row per row of z.")
    if cached_valid.shape != (n,) or cached_valid.dtype != torch.bool:
        raise RascalError(f"cached_valid must be a bool tensor of shape ({n},); got "
                          f"{cached_valid.dtype} {tuple(cached_valid.shape)}.")


@dataclass
class PositiveBlock:
    """Each anchor's class members in padded form.

    Attributes
    ----------
    index : LongTensor of shape (N, n_max)
        Row indices of the anchor's class members (itself included); padding points at row 0.
    member : BoolTensor of shape (N, n_max)
        False on padding.
    mask : BoolTensor of shape (N, n_max)
        True where ``index`` is a positive of the anchor (a class member other than itself).
    num_pos : LongTensor of shape (N,)
        ``|P(i)|``.
    cls : LongTensor of shape (N,)
        The anchor's class, as an index ``0..num_classes-1`` into the batch's classes.
    pos : LongTensor of shape (N,)
        The column of the anchor itself in its row of ``index``.
    members : LongTensor of shape (num_classes, n_max)
        Each class's row of ``index``: ``index == members[cls]``.
    """

    index: Tensor
    member: Tensor
    mask: Tensor
    num_pos: Tensor
    cls: Tensor
    pos: Tensor
    members: Tensor

    @classmethod
    def from_labels(cls, labels: Tensor) -> "PositiveBlock":
        n = labels.shape[0]
        device = labels.device
        order = torch.argsort(labels, stable=True)
        _, counts = torch.unique_consecutive(labels[order], return_counts=True)
        n_max = int(counts.max()) if n else 0
        starts = torch.cumsum(counts, 0) - counts
        # output_size: the length is known, so the GPU need not be asked for it (a sync).
        cls_of_sorted = torch.repeat_interleave(torch.arange(len(counts), device=device), counts,
                                                output_size=n)
        pos_in_cls = torch.arange(n, device=device) - starts[cls_of_sorted]
        members = torch.full((len(counts), n_max), -1, dtype=torch.long, device=device)
        members[cls_of_sorted, pos_in_cls] = order
        cls_of_row = torch.empty_like(cls_of_sorted)
        cls_of_row[order] = cls_of_sorted
        pos = torch.empty_like(pos_in_cls)
        pos[order] = pos_in_cls
        members = members.clamp_min(0)
        index = members.index_select(0, cls_of_row)                   # [N, n_max]
        member = torch.arange(n_max, device=device) < counts[cls_of_row][:, None]
        mask = member & (index != torch.arange(n, device=device)[:, None])
        return cls(index=index, member=member, mask=mask, num_pos=counts[cls_of_row] - 1,
                   cls=cls_of_row, pos=pos, members=members)


def _no_autocast(x: Tensor):
    """Autocast off on ``x``'s device: under a caller's autocast the loss's matmuls would run in
    bf16 or fp16, tying distinct similarities and breaking the ranks."""
    return torch.autocast(x.device.type, enabled=False)


def _row_chunks(n: int, width: int, device: torch.device):
    step = max(1, _CHUNK_ELEMS.get(device.type, _CHUNK_ELEMS["cpu"]) // max(1, width))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def _ranks_in_block(sims: Tensor, off: Tensor) -> Tensor:
    """Ranks of each anchor's positives by descending ``sims`` (N, n_max); ``off`` (N, n_max)
    marks the rest, whose ranks are arbitrary."""
    return average_ranks(sims.masked_fill(off, float("-inf")))


def _distinct_rows_reference(x: Tensor) -> tuple[Tensor, Tensor]:
    """The distinct rows of ``x`` and the group of each row: the plain form of
    :func:`_distinct_rows`, ``torch.unique`` over rows (on a CPU it compares rows one by one)."""
    return torch.unique(x, dim=0, return_inverse=True)


def _distinct_rows(x: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`_distinct_rows_reference`'s grouping, found by sorting one number per row.

    Each row is reduced to one float64 number, its dot product with a fixed random direction.
    Bit-equal rows give bit-equal numbers (each row is reduced by the same kernel), so sorting
    the numbers puts the copies of a row together; different rows sharing a number is a
    coincidence, which the check ``uniq[inverse] == x`` catches, and then the reference decides.
    Buys little (``benchmarks/fastpath_bench.py``, CPU, 1 thread): 0.9 ms instead of 1.4 on
    the [2048, 128] cache rows of an N = 2048 batch, under 1% of a loss step; GPU unmeasured.

    Returns
    -------
    uniq : Tensor of shape (n_distinct, d)
        The first row of each group, groups in the order of their numbers (not of the rows).
    inverse : LongTensor of shape (N,)
        ``uniq[inverse] == x``.
    """
    direction = torch.randn(x.shape[1], generator=torch.Generator().manual_seed(0),
                            dtype=torch.float64).to(x.device)
    keys = (x.to(torch.float64) * direction).sum(dim=1)
    distinct, inverse = torch.unique(keys, return_inverse=True)
    first = torch.full((len(distinct),), x.shape[0], dtype=torch.long, device=x.device)
    first.scatter_reduce_(0, inverse, torch.arange(x.shape[0], device=x.device), reduce="amin")
    uniq = x[first]
    if not torch.equal(uniq[inverse], x):
        return _distinct_rows_reference(x)
    return uniq, inverse


def _cached_ranks_in_block(c: Tensor, block: PositiveBlock) -> Tensor:
    """Ranks of each anchor's positives by descending cached similarity ``c_i · c_j``.

    The views of one image share one cache row, so their similarities to an anchor tie, and
    anchors that share a row and a class rank the same columns. Both are used, not fought:
    a distinct (row, class) pair is one *group*, each class's groups are ranked once per
    group as a multiset (a group of k rows counts k times, so its k tied copies share their
    average rank without any comparison between bit-equal floats), the anchor itself included;
    each anchor then drops itself, which lowers the average rank of a column by 1 if the
    anchor's own similarity is larger, by 1/2 if it ties, and not at all otherwise.
    """
    _, inverse = _distinct_rows(c)
    _, group, size = torch.unique(inverse * len(block.members) + block.cls,
                                  return_inverse=True, return_counts=True)
    rep = torch.empty(len(size), dtype=torch.long, device=c.device)
    rep[group] = torch.arange(c.shape[0], device=c.device)  # any row of a group serves: all equal
    groups = PositiveBlock.from_labels(block.cls[rep])          # each group's class, by group
    reps = c[rep]
    (num_cls, width), num_groups = groups.members.shape, len(rep)
    if num_cls * width * width <= num_groups * num_groups:
        # Only same-class pairs are needed: one small Gram matrix per class, unless a class
        # far larger than the others pads this beyond the all-pairs product.
        per_class = reps[groups.members]                            # [C, width, d]
        sims = torch.bmm(per_class, per_class.transpose(1, 2))[groups.cls, groups.pos]
    else:
        sims = torch.empty(groups.index.shape, dtype=c.dtype, device=c.device)
        for rows in _row_chunks(num_groups, num_groups, c.device):
            sims[rows] = (reps[rows] @ reps.T).gather(1, groups.index[rows])
    sims = sims.masked_fill(~groups.member, float("-inf"))
    own = sims.gather(1, groups.pos[:, None])
    # Each class's column counts, per group row (padding gets some count too, harmlessly: it
    # is -inf and so ranked after every real entry).
    counts = size.to(sims.dtype)[groups.members].index_select(0, groups.cls)
    ranks = (average_ranks(sims, counts)
             - (own > sims).to(sims.dtype) - 0.5 * (own == sims).to(sims.dtype))
    # Anchor i's column j is group g(j) of i's class, found at column pos[g(j)] of row g(i):
    # reorder each group's row into its class's block columns, then give each anchor its group's.
    col = groups.pos[group[block.members]]
    return ranks.gather(1, col[groups.cls]).index_select(0, group)


@torch.no_grad()
def _similarity_pass(x: Tensor, block: PositiveBlock, temperature: float,
                     count_above: bool = False) -> tuple[Tensor, Tensor, Tensor | None]:
    """What the loss needs of ``s = x xᵀ``, computed a chunk of rows at a time.

    Returns
    -------
    lse : Tensor of shape (N,)
        ``log Σ_{a≠i} exp(s_ia / τ)``.
    pos : Tensor of shape (N, n_max)
        ``s`` at ``block.index`` (each anchor's class members, padding included).
    above : LongTensor of shape (N,) or None
        With ``count_above``: how many negatives of each anchor are more similar to it than its
        weakest positive (0 for anchors without positives).
    """
    n = x.shape[0]
    lse = x.new_empty(n)
    pos = x.new_empty(block.index.shape)
    above = torch.zeros(n, dtype=torch.long, device=x.device) if count_above else None
    for rows in _row_chunks(n, n, x.device):
        s = x[rows] @ x.T
        pos[rows] = s.gather(1, block.index[rows])
        s.diagonal(rows.start).fill_(float("-inf"))
        if above is not None:
            # Negatives above the weakest positive: every other sample above it, less the
            # positives above it (one N-wide comparison instead of three).
            mask = block.mask[rows]
            weakest = pos[rows].masked_fill(~mask, float("inf")).amin(1, keepdim=True)
            # (Bools summed into int32: on a CPU several times faster than torch's int64.)
            above[rows] = ((s > weakest).sum(1, dtype=torch.int32)
                           - ((pos[rows] > weakest) & mask).sum(1, dtype=torch.int32))
        lse[rows] = torch.logsumexp(s.div_(temperature), dim=1)
    return lse, pos, above


class _WeightedSupCon(torch.autograd.Function):
    """Per-anchor loss ``lse_i - Σ_j w_ij s_ij / τ``, its gradient recomputed chunk by chunk.

    The forward values come from ``_similarity_pass``; the backward rebuilds each chunk of rows
    of the softmax ``q`` from ``x`` and ``lse``. With ``M_ij = g_i (q_ij - w_ij) / τ`` the
    gradient of the loss in ``s`` (weights held fixed, as the spec's stop-gradient asks), and
    ``s = x xᵀ``, the gradient in ``x`` is ``M x + Mᵀ x``: one more matmul than autograd would
    spend, for memory O(chunk · N) instead of several N×N matrices.
    """

    @staticmethod
    def forward(ctx, x: Tensor, lse: Tensor, pos: Tensor, weights: Tensor, index: Tensor,
                temperature: float) -> Tensor:
        ctx.save_for_backward(x, lse, weights, index)
        ctx.temperature = temperature
        return lse - (weights * pos).sum(1) / temperature

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        x, lse, weights, index = ctx.saved_tensors
        tau, n = ctx.temperature, x.shape[0]
        gx = torch.zeros_like(x)
        # Recomputed in x's dtype against the forward's lse, also when backward() is called
        # inside an autocast region.
        with _no_autocast(x):
            # With one row there is no softmax (lse = -inf) and nothing to differentiate.
            for rows in _row_chunks(n, n, x.device) if n > 1 else ():
                m = x[rows] @ x.T
                m.diagonal(rows.start).fill_(float("-inf"))
                m.div_(tau).sub_(lse[rows, None]).exp_()
                m.scatter_add_(1, index[rows], -weights[rows])
                m.mul_(grad[rows, None] / tau)
                gx[rows] += m @ x
                gx.addmm_(m.T, x[rows])
        return gx, None, None, None, None, None


@dataclass
class WeightResult:
    """The weights of one batch in block form plus what the training log reports."""

    block: PositiveBlock
    weights: Tensor           # (N, n_max), row-stochastic over block.mask, 0 elsewhere
    fallback: Tensor          # (N,) bool, anchors that fell back to uniform
    drift: Tensor | None      # (N, n_max) δ_ij, 0 off the positives; None without a cache
    drift_valid: Tensor | None  # (N,) bool: the anchor and all its positives have cache rows


@torch.no_grad()
def _compute_weights(z: Tensor, block: PositiveBlock, source: str, cached: Tensor | None,
                     cached_valid: Tensor | None, sims: Tensor | None = None,
                     need_drift: bool = False) -> WeightResult:
    if source not in WEIGHT_SOURCES:
        raise RascalError(f"Unknown weight source {source!r}; choose one of "
                          f"{', '.join(WEIGHT_SOURCES)}.")
    if source in _CACHE_SOURCES and cached is None:
        raise RascalError(f"Weight source {source!r} needs cached rows and cached_valid "
                          "(from EmbeddingCache.lookup); pass them, or use 'current_rank'.")
    mask, num_pos = block.mask, block.num_pos
    work = z.detach().float() if z.dtype in (torch.float16, torch.bfloat16) else z.detach()
    if sims is None:
        sims = (work @ work.T).gather(1, block.index)
    denom = (num_pos - 1).clamp_min(1).to(work.dtype)[:, None]

    off = ~mask
    with_drift = cached is not None and (source in _CACHE_SOURCES or need_drift)
    # The current ranks, sorted once whether the weights, the drift or both need them.
    rho_t = _ranks_in_block(sims, off) if with_drift or source == "current_rank" else None
    drift = drift_valid = None
    if with_drift:
        rho_c = _cached_ranks_in_block(cached.detach().to(work.dtype), block)
        # δ_ij in [0, 1]; |P(i)| = 1 gives |0 - 0| / 1 = 0 as the spec asks.
        drift = rho_t.sub(rho_c).abs_().div_(denom).masked_fill_(off, 0)
        # An anchor uses its cache only when it and all its positives have a row, i.e. when
        # no row of its class is missing one.
        missing = torch.zeros(len(block.members), dtype=torch.long, device=z.device)
        missing.index_add_(0, block.cls, (~cached_valid).long())
        drift_valid = missing[block.cls] == 0

    if source == "uniform":
        raw = mask.to(work.dtype)
    elif source == "current_rank":
        raw = rho_t.div(-denom).add_(1)
    elif source == "current_similarity":
        raw = sims + 1
    elif source == "rank_agreement":
        raw = torch.sub(1, drift)
    else:  # rank_agreement_hard
        raw = (drift < 0.5).to(work.dtype)
    raw.masked_fill_(off, 0)

    total = raw.sum(dim=1)
    fallback = (total <= 0) & (num_pos > 0)
    if source in _CACHE_SOURCES:
        fallback |= ~drift_valid & (num_pos > 0)
    # A fallback row is its positives' mask over |P(i)|; raw is already 0 off the positives.
    raw = torch.where(fallback[:, None], mask.to(work.dtype), raw)
    total = torch.where(fallback, num_pos.to(work.dtype), total)
    weights = raw.div_(total.clamp_min(torch.finfo(work.dtype).tiny)[:, None])
    return WeightResult(block, weights, fallback, drift, drift_valid)


def rascal_weights(z: Tensor, labels: Tensor, cached: Tensor | None = None,
                   cached_valid: Tensor | None = None, source: str = "rank_agreement") -> Tensor:
    """The positive weights ``w_ij`` of RASCAL.md as a dense matrix.

    Parameters
    ----------
    z : Tensor of shape (N, d)
        L2-normalised projections of the batch (all views stacked).
    labels : LongTensor of shape (N,)
    cached : Tensor of shape (N, d), optional
        The cache row of each row's sample (views of one image share one row).
    cached_valid : BoolTensor of shape (N,), optional
        False where the sample has no cache row yet. Required with ``cached``.
    source : {"uniform", "current_rank", "current_similarity", "rank_agreement", \
"rank_agreement_hard"}, default="rank_agreement"

    Returns
    -------
    Tensor of shape (N, N), dtype of ``z`` (float32 for half inputs), no grad
        Row i sums to 1 over ``P(i)`` and is 0 elsewhere; rows of anchors without positives are 0.
    """
    _validate(z, labels, cached, cached_valid)
    with _no_autocast(z):
        res = _compute_weights(z, PositiveBlock.from_labels(labels), source, cached, cached_valid)
    dense = res.weights.new_zeros(z.shape[0], z.shape[0])
    return dense.scatter_add_(1, res.block.index, res.weights)


class RascalLoss(nn.Module):
    """RASCAL: supervised contrastive loss with a stability weight per positive.

    ``L_i = -Σ_{p∈P(i)} w_ip log q_i(p)``, averaged over the anchors that have at least one
    positive. With ``weights="uniform"`` this is SupCon's L_out (Khosla et al. 2020, Eq. 2).

    Parameters
    ----------
    temperature : float, default=0.1
        τ in ``q_i(a) ∝ exp(z_i·z_a / τ)``; must be in (0, inf).
    weights : str, default="rank_agreement"
        The weight source: one of ``WEIGHT_SOURCES``.
    track_stats : bool, default=True
        Compute the statistics RASCAL.md asks to log into ``self.last_stats`` (no grad).
    reduction : {"mean", "none"}, default="mean"
        ``"none"`` returns the per-anchor losses, shape (N,), NaN for anchors without a
        positive (they are not part of the loss).

    Notes
    -----
    Rows of ``z`` are used as given: they are expected to be L2-normalised (the projection head
    normalises them) and are *not* re-normalised or checked, so that a caller can study the
    loss on other inputs. Half-precision inputs are computed in float32 and the loss is
    returned in float32; gradients flow back in the input dtype. Autocast is switched off
    inside the loss (forward and backward), so calling it within a bf16 or fp16 autocast
    region gives the float32 result, not one with similarities rounded to 8 bits.

    ``last_stats`` holds 0-d detached tensors (no device sync): ``loss``, ``pos_per_anchor``,
    ``weight_entropy``, ``eff_positives``, ``uniform_fallback``, ``drift`` (mean δ over
    positive pairs whose anchor has valid cache rows; NaN without a cache), ``pos_sim``,
    ``neg_sim``, ``sim_gap``, ``margin_violation``, and ``weight_hist``: counts over
    ``HIST_BINS`` equal bins of [0, 1] of the stability ``1 - δ`` (RASCAL's raw weight) of
    those pairs, recorded for every source so runs can be compared.
    """

    def __init__(self, temperature: float = 0.1, weights: str = "rank_agreement",
                 track_stats: bool = True, reduction: str = "mean"):
        super().__init__()
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
                or not (0 < temperature < math.inf):
            raise RascalError("The 'temperature' parameter of RascalLoss must be a float in (0, "
                              f"inf). Got {temperature!r} instead.")
        if weights not in WEIGHT_SOURCES:
            raise RascalError(f"The 'weights' parameter of RascalLoss must be one of "
                              f"{', '.join(WEIGHT_SOURCES)}. Got {weights!r} instead.")
        if reduction not in ("mean", "none"):
            raise RascalError(f"The 'reduction' parameter of RascalLoss must be 'mean' or 'none'. "
                              f"Got {reduction!r} instead.")
        self.reduction = reduction
        self.temperature = float(temperature)
        self.weights = weights
        self.track_stats = track_stats
        self.last_stats: dict[str, Tensor] = {}

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, weights={self.weights!r}"

    def forward(self, z: Tensor, labels: Tensor, cached: Tensor | None = None,
                cached_valid: Tensor | None = None) -> Tensor:
        """Mean loss over anchors with a positive.

        Parameters
        ----------
        z : Tensor of shape (N, d), L2-normalised rows
        labels : LongTensor of shape (N,)
        cached : Tensor of shape (N, d), optional
        cached_valid : BoolTensor of shape (N,), optional

        Returns
        -------
        Tensor, 0-d (or shape (N,) with ``reduction="none"``)
            A batch without any positive gives 0 that still back-propagates (zero gradient).
        """
        _validate(z, labels, cached, cached_valid)
        with _no_autocast(z):
            return self._forward(z, labels, cached, cached_valid)

    def _forward(self, z: Tensor, labels: Tensor, cached: Tensor | None,
                 cached_valid: Tensor | None) -> Tensor:
        x = z.float() if z.dtype in (torch.float16, torch.bfloat16) else z
        block = PositiveBlock.from_labels(labels)
        lse, pos_sim, above = _similarity_pass(x.detach(), block, self.temperature,
                                               self.track_stats)
        res = _compute_weights(x, block, self.weights, cached, cached_valid,
                               sims=pos_sim, need_drift=self.track_stats)
        per_anchor = _WeightedSupCon.apply(x, lse, pos_sim, res.weights, block.index,
                                           self.temperature)
        has_pos = block.num_pos > 0
        if self.reduction == "none":
            loss = per_anchor.masked_fill(~has_pos, float("nan"))
        else:
            # The mean over anchors with a positive (with none, a zero that back-propagates),
            # written without a data-dependent branch, which would cost a GPU a sync.
            loss = torch.where(has_pos, per_anchor, 0).sum() / has_pos.sum().clamp_min(1)
        if self.track_stats:
            self.last_stats = _batch_stats(x.detach(), pos_sim, above, res, loss)
        return loss


@torch.no_grad()
def _batch_stats(x: Tensor, pos_sims: Tensor, above: Tensor, res: WeightResult,
                 loss: Tensor) -> dict[str, Tensor]:
    """The per-step statistics of RASCAL.md's logging section, as 0-d tensors.

    ``pos_sims`` (N, n_max) and ``above`` (N,) are what ``_similarity_pass`` returned.
    """
    block, w = res.block, res.weights
    mask, num_pos = block.mask, block.num_pos
    has_pos = num_pos > 0
    nan = x.new_tensor(float("nan"))

    # Ratios are NaN where nothing was counted; no branch on a value, so no GPU sync.
    def ratio(total: Tensor, count: Tensor) -> Tensor:
        return torch.where(count > 0, total / count.clamp_min(1), nan)

    def mean_over(values: Tensor, sel: Tensor) -> Tensor:
        return ratio(torch.where(sel, values, 0).sum(), sel.sum())

    plogp = torch.where(w > 0, w * w.clamp_min(torch.finfo(w.dtype).tiny).log(),
                        torch.zeros_like(w))
    entropy = -plogp.sum(1)
    eff = 1 / (w * w).sum(1).clamp_min(torch.finfo(w.dtype).tiny)

    n = x.shape[0]
    pos_total = pos_sims.masked_fill(~mask, 0).sum()
    col_sum = x.sum(0)
    all_total = col_sum @ col_sum - (x * x).sum()
    n_pos = num_pos.sum()
    n_neg = n * (n - 1) - n_pos
    pos_sim = ratio(pos_total, n_pos)
    neg_sim = ratio(all_total - pos_total, n_neg)

    # Margin violation: negatives more similar to the anchor than its weakest positive.
    violations = above.sum().to(x.dtype)
    n_neg_pos_anchor = ((n - 1 - num_pos) * has_pos).sum()

    stats = {
        "loss": (loss.nanmean() if loss.ndim else loss).detach().float(),
        "pos_per_anchor": mean_over(num_pos.to(x.dtype), has_pos),
        "weight_entropy": mean_over(entropy, has_pos),
        "eff_positives": mean_over(eff, has_pos),
        "uniform_fallback": mean_over(res.fallback.to(x.dtype), has_pos),
        "pos_sim": pos_sim,
        "neg_sim": neg_sim,
        "sim_gap": pos_sim - neg_sim,
        "margin_violation": ratio(violations, n_neg_pos_anchor),
    }
    if res.drift is not None:
        used = mask & res.drift_valid[:, None]
        stats["drift"] = mean_over(res.drift, used)
        # The bins of torch.histc over [0, 1] (1 falls in the last), without selecting the
        # pairs first: the others go to one extra bin, dropped.
        bins = torch.sub(1, res.drift).mul_(HIST_BINS).long().clamp_(max=HIST_BINS - 1)
        bins.masked_fill_(~used, HIST_BINS)
        counts = torch.bincount(bins.view(-1), minlength=HIST_BINS + 1)
        stats["weight_hist"] = counts[:HIST_BINS].float()
    else:
        stats["drift"] = nan
        stats["weight_hist"] = torch.zeros(HIST_BINS, device=x.device)
    return stats
