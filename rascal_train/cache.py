"""RASCAL's embedding cache: one detached row per training sample, indexed by sample id.

A row is the L2-normalised mean of the sample's view projections the last time it was seen;
it is missing until the sample is first seen. Two read policies (RASCAL.md):

``last_seen``
    Reads return the latest row; ``update`` overwrites it right after the step that used the
    old value.
``epoch_end``
    Reads come from a snapshot frozen at the end of the previous epoch; writes go to the next
    snapshot, which ``end_epoch`` publishes. A sample not seen in an epoch keeps its old row.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rascal_train.errors import RascalError
from rascal_train.names import CACHE_POLICIES


class EmbeddingCache:
    """Detached per-sample embedding buffer (no parameters, training state).

    Parameters
    ----------
    num_samples : int
        Number of training samples; ids are ``0..num_samples-1``.
    dim : int
        Embedding dimension.
    policy : {"last_seen", "epoch_end"}, default="last_seen"
    device : torch.device or str, default="cpu"
    """

    def __init__(self, num_samples: int, dim: int, policy: str = "last_seen", device="cpu"):
        if policy not in CACHE_POLICIES:
            raise RascalError(f"The 'policy' parameter of EmbeddingCache must be one of "
                              f"{', '.join(CACHE_POLICIES)}. Got {policy!r} instead.")
        if num_samples < 1 or dim < 1:
            raise RascalError(f"EmbeddingCache needs num_samples >= 1 and dim >= 1; got "
                              f"{num_samples} and {dim}.")
        self.num_samples, self.dim, self.policy = int(num_samples), int(dim), policy
        self.rows = torch.zeros(num_samples, dim, device=device)
        self.valid = torch.zeros(num_samples, dtype=torch.bool, device=device)
        # epoch_end reads a frozen copy; last_seen reads the live buffer itself.
        if policy == "epoch_end":
            self.read_rows, self.read_valid = self.rows.clone(), self.valid.clone()
        else:
            self.read_rows, self.read_valid = self.rows, self.valid

    @property
    def device(self) -> torch.device:
        return self.rows.device

    def _check_ids(self, ids: Tensor) -> Tensor:
        ids = torch.as_tensor(ids, device=self.device)
        if ids.ndim != 1 or ids.dtype not in (torch.int32, torch.int64):
            raise RascalError(f"Cache ids must be a 1-D integer tensor; got {ids.dtype} "
                              f"{tuple(ids.shape)}.")
        if not ids.numel():
            return ids.long()
        if self.device.type != "cpu":
            # Checked on the device: reading min and max back would stall the step twice.
            torch._assert_async((ids.min() >= 0) & (ids.max() < self.num_samples),
                                f"Cache ids must lie in [0, {self.num_samples}). Use the dataset's "
                                "sample ids.")
        elif int(ids.min()) < 0 or int(ids.max()) >= self.num_samples:
            raise RascalError(f"Cache ids must lie in [0, {self.num_samples}); got "
                              f"[{int(ids.min())}, {int(ids.max())}]. Use the dataset's sample "
                              "ids.")
        return ids.long()

    @torch.no_grad()
    def lookup(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """Rows for ``ids`` (shape (n,)): ``(rows (n, dim) float32, valid (n,) bool)``."""
        ids = self._check_ids(ids)
        return self.read_rows[ids], self.read_valid[ids]

    @torch.no_grad()
    def update(self, ids: Tensor, z: Tensor) -> None:
        """Store the L2-normalised mean of the rows of ``z`` that share an id.

        Parameters
        ----------
        ids : LongTensor of shape (n,)
            May repeat: the V views of one image carry its id and are averaged.
        z : Tensor of shape (n, dim)
        """
        ids = self._check_ids(ids)
        if z.shape != (ids.shape[0], self.dim):
            raise RascalError(f"Cache update needs z of shape ({ids.shape[0]}, {self.dim}); got "
                              f"{tuple(z.shape)}.")
        uniq, inverse = torch.unique(ids, return_inverse=True)
        sums = torch.zeros(len(uniq), self.dim, device=self.device)
        sums.index_add_(0, inverse, z.detach().to(self.device, torch.float32))
        self.rows[uniq] = torch.nn.functional.normalize(sums, dim=1)
        self.valid[uniq] = True

    @torch.no_grad()
    def end_epoch(self) -> None:
        """Publish this epoch's rows to readers (a no-op under ``last_seen``)."""
        if self.policy == "epoch_end":
            self.read_rows.copy_(self.rows)
            self.read_valid.copy_(self.valid)

    def state_dict(self) -> dict:
        """Tensors and plain values only, so a checkpoint loads with ``weights_only=True``."""
        state = {"policy": self.policy, "num_samples": self.num_samples, "dim": self.dim,
                 "rows": self.rows.cpu(), "valid": self.valid.cpu()}
        if self.policy == "epoch_end":
            state.update(read_rows=self.read_rows.cpu(), read_valid=self.read_valid.cpu())
        return state

    def load_state_dict(self, state: dict) -> None:
        got = (state.get("policy"), state.get("num_samples"), state.get("dim"))
        if got != (self.policy, self.num_samples, self.dim):
            raise RascalError(f"Cache state is for (policy, num_samples, dim) = {got}, this cache "
                              f"is {(self.policy, self.num_samples, self.dim)}; resume with the "
                              "run's own config.")
        self.rows.copy_(state["rows"])
        self.valid.copy_(state["valid"])
        if self.policy == "epoch_end":
            self.read_rows.copy_(state["read_rows"])
            self.read_valid.copy_(state["read_valid"])
