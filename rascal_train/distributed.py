"""Data-parallel helpers: the loss sees the global batch through a gradient-carrying all-gather.

In a single process (``torch.distributed`` not initialised) every function here is the identity,
so the same training code runs with and without ``torchrun``.

Gradient bookkeeping: every rank computes the *same* global loss ``L`` on the gathered batch.
The backward of :func:`all_gather_with_grad` sums the incoming gradients over ranks, so rank r
receives ``W · ∂L/∂z_r`` for its own rows; DistributedDataParallel then averages parameter
gradients over the W ranks, which leaves exactly the gradient of one process on the
concatenated batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def is_main_process() -> bool:
    return rank() == 0


class _AllGatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.rank, ctx.n = dist.get_rank(), x.shape[0]
        out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(out, x.contiguous())
        return torch.cat(out, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n]


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` (shape ``(n, ...)``, the same n on every rank) over ranks, rank order.

    Gradients flow back to each rank's own rows. The identity in a single process.
    """
    if not is_distributed() or dist.get_world_size() == 1:
        return x
    return _AllGatherWithGrad.apply(x)


@torch.no_grad()
def all_gather_nograd(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` over ranks without gradient (labels, ids). The identity in one process."""
    if not is_distributed() or dist.get_world_size() == 1:
        return x
    out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out, dim=0)


def gather_batch(z: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor):
    """The global batch: ``(z [W·n, d] with grad, labels [W·n], ids [W·n])``.

    Parameters
    ----------
    z : Tensor of shape (n, d)
        This rank's embeddings (requires grad).
    labels, ids : Tensor of shape (n,), integer
        This rank's labels and sample ids. Every rank must hold the same n (use
        ``drop_last=True`` in the sampler); a mismatch raises in ``all_gather``.
    """
    return all_gather_with_grad(z), all_gather_nograd(labels), all_gather_nograd(ids)
