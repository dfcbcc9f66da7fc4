"""The geometry monitor: kNN accuracy and rank stability at every epoch end of training.

A :class:`~rascal_train.callbacks.Callback` that ``rascal train``, the sweep and the demo pass
to :func:`rascal_train.engine.train`. At each epoch end it embeds a fixed random sample of the
training split (the bank, whose first rows are the probe set) and of the test split, and logs

- ``knn_acc``: kNN top-1 of the test sample against the bank (backbone features);
- ``rank_stability``: Spearman agreement of the probe set's neighbour ranks (projections)
  between the previous epoch and this one (``None`` at the first epoch).

With ``config.monitor`` false it measures nothing and logs both as ``None``. The previous
epoch's probe embeddings are its state, saved in every checkpoint as ``{"probe": ...}``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rascal_geom.metrics import knn_accuracy, rank_stability
from rascal_geom.metrics.knn import KNN_K
from rascal_train.callbacks import Callback
from rascal_train.config import TrainConfig
from rascal_train.datasets.base import HierDataset
from rascal_train.engine import epoch_seed, load_test_set
from rascal_train.features import extract_features

# Sizes: enough for a stable number, small next to an epoch of training.
MONITOR_BANK = 10_000
MONITOR_QUERIES = 5_000
PROBE_SIZE = 1_000


class GeometryMonitor(Callback):
    """Epoch-end kNN top-1 on the test split and rank stability of a fixed probe set."""

    def __init__(self):
        self.probe: Tensor | None = None

    def setup(self, config: TrainConfig, train_set: HierDataset, device: torch.device) -> None:
        self.enabled, self.config, self.device = config.monitor, config, device
        self.train_set, self.probe = train_set, None  # a resumed run loads its probe after this
        # Read at the start, so a missing test split fails before the first epoch, not after it.
        self.test_set = load_test_set(config, train_set.train_level) if config.monitor else None

    def on_epoch_end(self, model: nn.Module, epoch: int) -> dict:
        if not self.enabled:
            return {"knn_acc": None, "rank_stability": None}
        bank, bank_set = self._embed(model, self.train_set, MONITOR_BANK)
        queries, query_set = self._embed(model, self.test_set, MONITOR_QUERIES)
        # The torch search, not FAISS's GPU build: FAISS would reserve memory outside torch's
        # allocator in the middle of training, when torch's cache holds the epoch's peak.
        knn = float(knn_accuracy(bank["features"], bank_set.targets, queries["features"],
                                 query_set.labels[query_set.train_level], k=KNN_K,
                                 backend="torch"))
        # The probe set is the bank's first rows: a fixed random sample, embedded with the bank.
        probe = torch.from_numpy(bank["projections"][:PROBE_SIZE])
        stability = None
        if self.probe is not None:
            stability = float(rank_stability(self.probe.numpy(), probe.numpy(),
                                             bank_set.targets[:PROBE_SIZE])["spearman"])
        self.probe = probe
        return {"knn_acc": knn, "rank_stability": stability}

    def _embed(self, model: nn.Module, dataset: HierDataset, n: int):
        """Features of the same ``n`` random samples of ``dataset`` at every epoch."""
        gen = torch.Generator().manual_seed(epoch_seed(self.config.seed, 0, 3))
        part = dataset.subset(torch.randperm(len(dataset), generator=gen)[:n].numpy())
        return extract_features(model, part, device=self.device, progress=False,
                                image_size=self.config.image_size), part

    def state_dict(self) -> dict:
        return {"probe": self.probe}

    def load_state_dict(self, state: dict) -> None:
        self.probe = state.get("probe")
