"""Epoch-end hooks: what a caller measures during :func:`rascal_train.engine.train`.

The training loop owns the step, the checkpoint and the log; whatever is measured at an epoch
end arrives as a :class:`Callback` the caller passes in (``callbacks=[...]``, as in Keras and
Lightning), so training imports no metric. ``rascal train`` and the workflows pass the geometry
monitor (:class:`rascal_geom.monitor.GeometryMonitor`); ``train(config)`` from Python with no
callbacks measures nothing at epoch end.
"""

from __future__ import annotations

import torch
from torch import nn

from rascal_train.config import TrainConfig
from rascal_train.datasets.base import HierDataset


class Callback:
    """A hook of the training loop; every method does nothing unless a subclass says otherwise.

    The loop calls :meth:`setup` on every process before the model is built,
    :meth:`on_epoch_end` on the main process only, and saves :meth:`state_dict` in every
    checkpoint (under ``"monitor"``, merged with the other callbacks' states, so the keys of
    different callbacks must differ), giving it back to :meth:`load_state_dict` on resume.
    """

    def setup(self, config: TrainConfig, train_set: HierDataset, device: torch.device) -> None:
        """Called once per run with the final config and the training split."""

    def on_epoch_end(self, model: nn.Module, epoch: int) -> dict:
        """Measure ``model`` (unwrapped, after ``epoch`` epochs, 1-based).

        Returns
        -------
        dict
            JSON-able values merged into the epoch's record in ``train_log.jsonl``.
        """
        return {}

    def state_dict(self) -> dict:
        """What a resumed run needs to continue exactly as an uninterrupted one."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore from the checkpoint's ``"monitor"`` dict (empty for a run saved without it)."""
