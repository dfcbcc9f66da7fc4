"""The training loop behind ``rascal train`` and ``rascal demo``: :func:`train` runs one config.

What one run does, in order: build the data, model, loss, cache, optimiser and schedule; restore
all of it from a checkpoint on ``resume``; then per epoch: reseed, stream augmented two-view
batches, take SGD steps (the loss sees the global batch under DDP), log, monitor, and save an
atomic checkpoint. Randomness is reseeded at every epoch start from ``(seed, epoch, rank)``, and
the data order is a seeded permutation per epoch, so a run resumed after epoch k continues
exactly as if it had never stopped (bit-identical weights on CPU) without carrying RNG states.

Data path: in-memory sets (``dataset.images is not None``) keep their uint8 array on the training
device and are augmented there in batches (``GpuTwoViewAugment``); file-backed sets go through a
DataLoader with the PIL two-view transform.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rascal_train import distributed as dist_utils
from rascal_train.config import RESUME_FREE_KEYS, TrainConfig, config_key_hint
from rascal_train.datasets.base import HierDataset
from rascal_train.devices import autocast_dtype, describe, device_scope, resolve_device
from rascal_train.errors import RascalError
from rascal_train.files import (atomic_torch_save, atomic_write_json, atomic_write_text, load_checkpoint,
                             read_jsonl, sweep_stale_temps)
from rascal_train.models import CHECKPOINT_FORMAT, RascalModel, build_model
from rascal_train.rundir import last_checkpoint, lock_run_dir, read_run_config, resume_source

LOG_NAME = "train_log.jsonl"
# Epoch-end monitor sizes: enough for a stable number, small next to an epoch of training.
MONITOR_BANK = 10_000
MONITOR_QUERIES = 5_000
PROBE_SIZE = 1_000


# --- data ---------------------------------------------------------------------------------------

def load_datasets(config: TrainConfig) -> tuple[HierDataset, HierDataset | None]:
    """The training split (noise, imbalance and ``limit`` applied) and, for monitoring, the test split."""
    import rascal_train.datasets  # noqa: F401  (registers every loader)
    from rascal_train.datasets.base import get_dataset

    options = {}
    if config.imbalance is not None:
        options["imbalance"] = config.imbalance
    if config.label_noise > 0:
        options["label_noise"] = config.label_noise
    train_set = get_dataset(config.dataset, root=config.data_root, split="train",
                            label_level=config.label_level, **options)
    if config.imbalance is not None:
        present = len(np.unique(train_set.targets))
        if present < train_set.num_classes:
            raise RascalError(f"--imbalance {config.imbalance:g} leaves {train_set.num_classes - present} of the "
                              f"{train_set.num_classes} classes without a training image; lower --imbalance "
                              "(long-tail benchmarks use 10 to 100).")
    if config.limit is not None and config.limit < len(train_set):
        train_set = train_set.subset(np.arange(config.limit))
    test_set = None
    if config.monitor:
        test_set = get_dataset(config.dataset, root=config.data_root, split="test",
                               label_level=train_set.train_level)
    return train_set, test_set


def epoch_seed(seed: int, epoch: int, *stream: int) -> int:
    """A 63-bit seed that is a pure function of ``(seed, epoch, *stream)``."""
    return int(np.random.SeedSequence([seed, epoch, *stream]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def epoch_order(num_samples: int, seed: int, epoch: int) -> Tensor:
    """The sample order of ``epoch`` (0-based): a seeded permutation, the same on every rank."""
    gen = torch.Generator().manual_seed(epoch_seed(seed, epoch, 0))
    return torch.randperm(num_samples, generator=gen)


def _reseed(seed: int, epoch: int, rank: int) -> None:
    import random

    s = epoch_seed(seed, epoch, 1, rank)
    torch.manual_seed(s)  # also seeds every CUDA device
    np.random.seed(s % 2**32)
    random.seed(s)


class _Batches:
    """Two-view training batches of one rank: ``(v1, v2, targets, ids)`` on the device.

    Every global batch is ``batch_size`` consecutive entries of the epoch order; rank r takes
    its r-th slice, so the ranks' rows concatenated in rank order are that global batch.
    """

    def __init__(self, dataset: HierDataset, config: TrainConfig, device: torch.device,
                 world: int, rank: int):
        self.dataset, self.config, self.device = dataset, config, device
        self.world, self.rank = world, rank
        self.local = config.batch_size // world
        self.steps = len(dataset) // config.batch_size
        self.targets = torch.as_tensor(dataset.targets, dtype=torch.long)
        self.ids = torch.as_tensor(dataset.ids, dtype=torch.long)
        if dataset.images is not None:
            self.images = torch.from_numpy(np.ascontiguousarray(dataset.images)).to(device)
            self.targets, self.ids = self.targets.to(device), self.ids.to(device)

    def _local_indices(self, epoch: int) -> Tensor:
        order = epoch_order(len(self.dataset), self.config.seed, epoch)[: self.steps * self.config.batch_size]
        return order.view(self.steps, self.world, self.local)[:, self.rank].reshape(-1)

    def epoch(self, epoch: int):
        index = self._local_indices(epoch)
        seed = epoch_seed(self.config.seed, epoch, 2, self.rank)
        if self.dataset.images is not None:
            from rascal_train.transforms import GpuTwoViewAugment

            augment, gen = GpuTwoViewAugment(self.config.image_size), torch.Generator().manual_seed(seed)
            index = index.to(self.device)
            for step in range(self.steps):
                idx = index[step * self.local:(step + 1) * self.local]
                v1, v2 = augment(self.images[idx], generator=gen)
                yield v1, v2, self.targets[idx], self.ids[idx]
            return
        from rascal_train.transforms import two_view_transform

        views = dataclasses.replace(self.dataset, transform=two_view_transform(self.config.image_size))
        loader = torch.utils.data.DataLoader(
            views, batch_size=self.local, sampler=index.tolist(), drop_last=True,
            num_workers=self.config.num_workers, pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(seed))
        for (v1, v2), targets, ids in loader:
            yield (v1.to(self.device, non_blocking=True), v2.to(self.device, non_blocking=True),
                   targets.to(self.device), ids.to(self.device))


# --- one step -----------------------------------------------------------------------------------

def _view_major(x: Tensor, world: int) -> Tensor:
    """Rank-ordered ``[rank][view][row]`` gathered rows → global view-major ``[view][rank, row]``."""
    if world == 1:
        return x
    n = x.shape[0] // (2 * world)
    return x.reshape(world, 2, n, *x.shape[1:]).transpose(0, 1).reshape(x.shape)


def contrastive_loss(model: nn.Module, loss_fn: nn.Module, v1: Tensor, v2: Tensor, labels: Tensor,
                     ids: Tensor, cache=None, simclr: bool = False,
                     autocast_dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """The contrastive loss of one step on the global batch.

    Parameters
    ----------
    model : nn.Module
        ``model(x [2b, 3, H, W]) -> z [2b, d]`` L2-normalised (a ``RascalModel``, DDP-wrapped or not).
    loss_fn : RascalLoss
    v1, v2 : Tensor of shape (b, 3, H, W)
        This rank's two views.
    labels, ids : LongTensor of shape (b,)
    cache : EmbeddingCache, optional
        Looked up for the global batch's rows before the loss (not updated here).
    simclr : bool, default=False
        Positives are only the other view of the same image: the ids serve as labels.
    autocast_dtype : torch.dtype, optional
        Autocast the forward pass (CUDA); the loss always runs in float32.

    Returns
    -------
    loss : Tensor, 0-d
    z : Tensor of shape (2·W·b, d), detached
        The global batch, view-major: rows ``[0, W·b)`` are the first views.
    ids : LongTensor of shape (2·W·b,)
    """
    x = torch.cat([v1, v2])
    if x.device.type == "cuda" and next(model.parameters()).is_contiguous(memory_format=torch.channels_last):
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast(x.device.type, dtype=autocast_dtype or torch.float32,
                        enabled=autocast_dtype is not None):
        z = model(x)
    world = dist_utils.world_size()
    z, labels, ids = dist_utils.gather_batch(z.float(), labels.repeat(2), ids.repeat(2))
    z, labels, ids = (_view_major(t, world) for t in (z, labels, ids))
    cached = valid = None
    if cache is not None:
        cached, valid = cache.lookup(ids)
    loss = loss_fn(z, ids if simclr else labels, cached, valid)
    return loss, z.detach(), ids


def ce_loss(model: nn.Module, v1: Tensor, targets: Tensor,
            autocast_dtype: torch.dtype | None = None) -> Tensor:
    """Cross-entropy of one view (DDP averages the ranks' gradients into the global batch's)."""
    if v1.device.type == "cuda" and next(model.parameters()).is_contiguous(memory_format=torch.channels_last):
        v1 = v1.contiguous(memory_format=torch.channels_last)
    with torch.autocast(v1.device.type, dtype=autocast_dtype or torch.float32,
                        enabled=autocast_dtype is not None):
        logits = model(v1)
    return F.cross_entropy(logits.float(), targets)


# --- statistics ---------------------------------------------------------------------------------

class _Meter:
    """Sums step statistics on the device (no sync per step); ``means()`` reads them once.

    ``loss`` is summed raw, so a NaN or Inf in any step shows in its mean; the other statistics
    average over the steps where they are finite (``drift`` is undefined before the cache fills).
    ``weight_hist`` counts are summed.
    """

    def __init__(self):
        self.sums: dict[str, Tensor] = {}
        self.counts: dict[str, Tensor] = {}
        self.steps = 0

    def add(self, stats: dict[str, Tensor]) -> None:
        self.steps += 1
        for key, value in stats.items():
            value = value.detach().float()
            if key == "weight_hist" or key == "loss":
                counted = torch.ones((), device=value.device)
            else:
                counted = torch.isfinite(value).float()
                value = torch.where(counted.bool(), value, torch.zeros_like(value))
            if key in self.sums:
                self.sums[key] = self.sums[key] + value
                self.counts[key] = self.counts[key] + counted
            else:
                self.sums[key], self.counts[key] = value, counted

    def means(self) -> dict:
        """Floats (``None`` where never finite); ``weight_hist`` as a list of int counts."""
        out: dict = {}
        for key in self.sums:
            if key == "weight_hist":
                out[key] = [int(round(c)) for c in self.sums[key].tolist()]
                continue
            total, count = float(self.sums[key]), float(self.counts[key])
            out[key] = total / count if count else None
        return out


# --- checkpoints and the run directory ----------------------------------------------------------

def _unwrap(model: nn.Module) -> RascalModel:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def checkpoint_path(run_dir: Path, epoch: int) -> Path:
    return run_dir / "checkpoints" / f"epoch_{epoch:04d}.pt"


def _save_checkpoint(run_dir: Path, state: dict) -> Path:
    """Write ``checkpoints/epoch_NNNN.pt`` atomically, then point ``checkpoints/last.pt`` at it.

    ``last.pt`` is a hard link swapped in with ``os.replace`` (atomic, no second copy); the run
    directory's ``last.pt`` is a relative symlink to it, made once.
    """
    path = atomic_torch_save(state, checkpoint_path(run_dir, state["epoch"]))
    last = path.parent / "last.pt"
    tmp = path.parent / f".last.pt.{os.getpid()}.link.tmp"
    tmp.unlink(missing_ok=True)
    try:
        os.link(path, tmp)
        os.replace(tmp, last)
    except OSError:  # file systems without hard links: a full atomic copy instead
        tmp.unlink(missing_ok=True)
        atomic_torch_save(state, last)
    top = run_dir / "last.pt"
    if not top.is_symlink() and not top.exists():
        top.symlink_to(Path("checkpoints") / "last.pt")
    return path


def _truncate_log(path: Path, epoch: int) -> None:
    """Keep the records of epochs ``<= epoch``: the ones the checkpoint being resumed saw."""
    kept = [r for r in read_jsonl(path) if int(r.get("epoch", 0)) <= epoch]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


def _load_run_checkpoint(path: Path) -> dict:
    ckpt = load_checkpoint(path)
    if ckpt.get("format") != CHECKPOINT_FORMAT or not isinstance(ckpt.get("config"), dict):
        raise RascalError(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint; pass one written by `rascal train`.")
    return ckpt


def _claim_run_dir(config: TrainConfig, ckpt: dict | None, held: contextlib.ExitStack,
                   main: bool) -> tuple[Path, dict | None]:
    """Lock the run directory, clear what killed writers left, and find where the run starts.

    Without ``resume``, a directory that already holds this same run (killed at any moment,
    or finished) is continued from its last checkpoint, or from epoch 0 if it has none; one
    that holds another run is refused. Returns ``(run_dir, checkpoint to resume or None)``.
    """
    run_dir = config.run_dir
    if main:
        held.enter_context(lock_run_dir(run_dir))
        for folder in (run_dir, run_dir / "checkpoints"):
            sweep_stale_temps(folder)
    if config.resume:
        return run_dir, ckpt
    saved = read_run_config(run_dir)
    if saved is None:
        if (run_dir / LOG_NAME).exists() or (run_dir / "checkpoints").exists():
            raise RascalError(f"{run_dir} holds a training log or checkpoints but no config.json; it is not a "
                              "run this command can continue, choose another --out.")
        return run_dir, None
    _check_same_run(config, saved, run_dir, continuing=True)
    last = last_checkpoint(run_dir)
    if last is None:
        return run_dir, None
    ckpt = _load_run_checkpoint(last)
    _check_same_run(config, ckpt["config"], run_dir, continuing=True)
    return run_dir, ckpt


def _check_same_setting(ckpt: dict, config: TrainConfig, device: torch.device, world: int,
                        file_backed: bool, path: Path) -> None:
    """Refuse to resume under a setting that changes the trajectory but not the config.

    The device type decides the precision (CPU fp32, CUDA autocast), the world size how the
    batch is split and seeded, and for file-backed sets the worker count which worker (and so
    which seed) augments each sample.
    """
    saved = ckpt.get("rng") or {}
    if int(saved.get("world_size", world)) != world:
        raise RascalError(f"Cannot resume {path}: it was trained by {saved['world_size']} process(es), not "
                          f"{world}; resume it with torchrun --nproc-per-node {saved['world_size']}.")
    if saved.get("device_type", device.type) != device.type:
        raise RascalError(f"Cannot resume {path}: it was trained on {saved['device_type']}, not {device.type} "
                          f"(the precision differs); resume it with --device {saved['device_type']}.")
    workers = ckpt["config"].get("num_workers", config.num_workers)
    if file_backed and workers != config.num_workers:
        raise RascalError(f"Cannot resume {path}: it was trained with num_workers={workers}, not "
                          f"{config.num_workers} (each worker seeds its own augmentations); set num_workers: "
                          f"{workers} in the --config file.")


# --- the run --------------------------------------------------------------------------------------

def _init_distributed(device: torch.device) -> bool:
    """Join the process group ``torchrun`` describes; ``True`` if this call created it."""
    import torch.distributed as dist

    if device.type == "cuda":
        # Also in one process: FAISS, pinned memory and NCCL use the current device, not ours.
        torch.cuda.set_device(device)
    if dist.is_initialized() or int(os.environ.get("WORLD_SIZE", 1)) <= 1:
        return False
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return True


def _monitor(model: RascalModel, train_set: HierDataset, test_set: HierDataset | None,
             config: TrainConfig, device: torch.device, probe_prev: Tensor | None):
    """Epoch-end kNN top-1 on the test split and rank stability of the fixed probe set.

    Returns ``(knn_acc, rank_stability, probe_embeddings)``.
    """
    from rascal_geom.metrics import knn_accuracy, rank_stability
    from rascal_geom.metrics.knn import KNN_K
    from rascal_train.features import extract_features

    def embed(ds: HierDataset, n: int):
        gen = torch.Generator().manual_seed(epoch_seed(config.seed, 0, 3))
        part = ds.subset(torch.randperm(len(ds), generator=gen)[:n].numpy())
        return extract_features(model, part, device=device, progress=False, image_size=config.image_size), part

    bank, bank_set = embed(train_set, MONITOR_BANK)
    knn = None
    if test_set is not None:
        queries, query_set = embed(test_set, MONITOR_QUERIES)
        # The torch search, not FAISS's GPU build: FAISS would reserve memory outside torch's
        # allocator in the middle of training, when torch's cache holds the epoch's peak.
        knn = float(knn_accuracy(bank["features"], bank_set.targets, queries["features"],
                                 query_set.labels[query_set.train_level], k=KNN_K, backend="torch"))
    # The probe set is the bank's first rows: a fixed random sample, embedded with the bank.
    probe = torch.from_numpy(bank["projections"][:PROBE_SIZE])
    stability = None
    if probe_prev is not None:
        stability = float(rank_stability(probe_prev.numpy(), probe.numpy(),
                                          bank_set.targets[:PROBE_SIZE])["spearman"])
    return knn, stability, probe


def train(config: TrainConfig | dict, progress: bool = True, tensorboard: bool = False) -> Path:
    """Run (or resume) one training run; returns its run directory.

    Parameters
    ----------
    config : TrainConfig or dict
        A dict is read with :meth:`TrainConfig.from_dict`.
    progress : bool, default=True
        Show a progress bar (on the main process) with loss and images/s.
    tensorboard : bool, default=False
        Also write the log's scalars as TensorBoard events in ``<run_dir>/tensorboard``
        (:mod:`rascal_train.tensorboard`; needs the ``tensorboard`` package).

    Returns
    -------
    Path
        The run directory, holding ``config.json``, ``train_log.jsonl``,
        ``checkpoints/epoch_NNNN.pt``, ``checkpoints/last.pt`` and ``last.pt``.

    Raises
    ------
    RascalError
        For a bad config, a dataset or level that does not exist, a checkpoint of another
        config, or a loss that became NaN/Inf (the last good checkpoint is kept).
    """
    config = TrainConfig.from_dict(config) if isinstance(config, dict) else config.validated()
    device = resolve_device(config.device)
    created_group = _init_distributed(device)
    try:
        with device_scope(device), contextlib.ExitStack() as held:
            return _train(config, device, progress, held, tensorboard)
    finally:
        if created_group:
            torch.distributed.destroy_process_group()


def _train(config: TrainConfig, device: torch.device, progress: bool, held: contextlib.ExitStack,
           tensorboard: bool = False) -> Path:
    from rascal_train.cache import EmbeddingCache
    from rascal_train.losses import RascalLoss
    from rascal_train.progress import make_progress
    from rich.progress import TextColumn

    world, rank, main = dist_utils.world_size(), dist_utils.rank(), dist_utils.is_main_process()
    if config.batch_size % world:
        raise RascalError(f"--batch-size {config.batch_size} must be a multiple of the {world} processes; "
                          "change --batch-size or --nproc-per-node.")
    ckpt = saved = None
    if config.resume:
        run_dir, ckpt_file = resume_source(config.resume)
        ckpt = _load_run_checkpoint(ckpt_file) if ckpt_file is not None else None
        saved = ckpt["config"] if ckpt is not None else read_run_config(run_dir)
        config = config.replace(out=str(run_dir))

    train_set, test_set = load_datasets(config)
    if config.num_classes not in (None, train_set.num_classes):
        raise RascalError(f"The config sets num_classes={config.num_classes}, but {config.dataset} has "
                          f"{train_set.num_classes} classes at level {train_set.train_level!r}; remove "
                          "num_classes (it is read from the dataset).")
    native = train_set.images.shape[1] if train_set.images is not None else 224
    config = config.replace(image_size=config.image_size or native, num_classes=train_set.num_classes,
                            label_level=train_set.train_level)
    if saved is not None:
        _check_same_run(config, saved, Path(config.resume))
    steps_per_epoch = len(train_set) // config.batch_size
    if steps_per_epoch == 0:
        raise RascalError(f"--batch-size {config.batch_size} is larger than the {len(train_set)} training "
                          "samples; lower --batch-size (or raise --limit).")
    run_dir, ckpt = _claim_run_dir(config, ckpt, held, main)
    if ckpt is not None:
        _check_same_setting(ckpt, config, device, world, train_set.images is None, run_dir)

    torch.manual_seed(config.seed)
    model = build_model(config.to_dict()).to(device)
    channels_last = device.type == "cuda" if config.channels_last is None else config.channels_last
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    amp = autocast_dtype(config.precision, device)
    if progress and main:
        from rascal_train.progress import console

        console.print(f"device: {describe(device, amp)}")
    contrastive = config.loss != "ce"
    loss_fn = RascalLoss(config.temperature, config.weights) if contrastive else None
    cache = EmbeddingCache(len(train_set), config.proj_dim, config.cache, device=device) \
        if config.loss == "rascal" else None
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    from rascal_train.schedule import WarmupCosineLR

    scheduler = WarmupCosineLR(optimizer, config.epochs * steps_per_epoch,
                               round(config.warmup * steps_per_epoch), config.final_lr_ratio)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    start_epoch, step, probe_prev, last_good = 0, 0, None, None
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt["scaler"]:
            scaler.load_state_dict(ckpt["scaler"])
        # else the run was saved without a scaler (on a CPU, or in bf16): an fp16 continuation
        # starts from GradScaler's initial scale, which it recalibrates in a few steps.
        if cache is not None:
            cache.load_state_dict(ckpt["cache"])
        start_epoch, step = int(ckpt["epoch"]), int(ckpt["step"])
        probe_prev = (ckpt.get("monitor") or {}).get("probe")
        last_good = checkpoint_path(run_dir, start_epoch)
        del ckpt
    if world > 1:
        if device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)

    log_path = run_dir / LOG_NAME
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run_dir / "config.json", config.to_dict())
        if log_path.exists():  # a killed run's records past its checkpoint (all, if it has none)
            _truncate_log(log_path, start_epoch)
    batches = _Batches(train_set, config, device, world, rank)
    images_per_step = config.batch_size
    board = None
    if tensorboard and main:
        from rascal_train.tensorboard import LOG_DIR, TensorBoardLog

        board = TensorBoardLog(run_dir / LOG_DIR)

    def write(record: dict) -> None:
        if main:
            with open(log_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
            if board is not None:
                board.add(record)

    def check_finite(meter: _Meter, epoch: int) -> None:
        loss = meter.means()["loss"]
        if loss is not None and not math.isfinite(loss):
            where = (f"{last_good} (epoch {int(last_good.stem.split('_')[-1])}) is the last good checkpoint"
                     if last_good is not None else "no checkpoint had been written yet")
            raise RascalError(f"The loss became {loss} in epoch {epoch}; training stopped and {where}. "
                              f"Lower --lr (now {config.lr}) or raise --temperature (now {config.temperature}).")

    columns = (TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[ips]} img/s"))
    with make_progress(*columns, disable=not (progress and main)) as bar:
        task = bar.add_task(f"epoch {start_epoch + 1}/{config.epochs}", total=config.epochs * steps_per_epoch,
                            completed=start_epoch * steps_per_epoch, loss="-", ips="-")
        for epoch in range(start_epoch, config.epochs):
            _reseed(config.seed, epoch, rank)
            model.train()
            bar.update(task, description=f"epoch {epoch + 1}/{config.epochs}")
            epoch_meter, window = _Meter(), _Meter()
            epoch_start = window_start = time.perf_counter()
            for v1, v2, targets, ids in batches.epoch(epoch):
                lr = optimizer.param_groups[0]["lr"]
                if contrastive:
                    loss, z, gids = contrastive_loss(model, loss_fn, v1, v2, targets, ids, cache,
                                                     simclr=config.loss == "simclr", autocast_dtype=amp)
                    stats = dict(loss_fn.last_stats)
                    # Wang & Isola's alignment: z is view-major, so row i and row i + half are the
                    # two views of one image (pos_sim mixes in every same-class pair).
                    half = z.shape[0] // 2
                    stats["alignment"] = (z[:half] - z[half:]).pow(2).sum(1).mean()
                else:
                    loss = ce_loss(model, v1, targets, amp)
                    stats = {"loss": loss.detach()}
                    if world > 1:
                        stats["loss"] = stats["loss"] / world
                        torch.distributed.all_reduce(stats["loss"])
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                if cache is not None:
                    cache.update(gids, z)
                step += 1
                epoch_meter.add(stats)
                window.add(stats)
                if window.steps == config.log_every:
                    check_finite(window, epoch + 1)
                    values = window.means()
                    values.pop("weight_hist", None)
                    now = time.perf_counter()
                    ips = images_per_step * window.steps / (now - window_start)
                    write({"kind": "step", "epoch": epoch + 1, "step": step, "lr": lr,
                           **values, "images_per_s": ips})
                    bar.update(task, loss=f"{values['loss']:.4f}", ips=f"{ips:.0f}")
                    window, window_start = _Meter(), now
                bar.advance(task)
            check_finite(epoch_meter, epoch + 1)
            train_time = time.perf_counter() - epoch_start
            if cache is not None:
                cache.end_epoch()
            knn = stability = None
            if config.monitor and main:
                knn, stability, probe_prev = _monitor(_unwrap(model), train_set, test_set, config, device,
                                                      probe_prev)
            values = epoch_meter.means()
            write({"kind": "epoch", "epoch": epoch + 1, "step": step, "lr": lr,
                   **values, "images_per_s": images_per_step * steps_per_epoch / train_time,
                   "time_s": time.perf_counter() - epoch_start, "knn_acc": knn, "rank_stability": stability})
            if main:
                last_good = _save_checkpoint(run_dir, {
                    "format": CHECKPOINT_FORMAT, "config": config.to_dict(), "epoch": epoch + 1, "step": step,
                    "model": _unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                    "cache": cache.state_dict() if cache is not None else None,
                    "rng": {"seed": config.seed, "reseeded_per_epoch": True, "world_size": world,
                            "device_type": device.type},
                    "monitor": {"probe": probe_prev},
                })
            else:
                last_good = checkpoint_path(run_dir, epoch + 1)
    if board is not None:
        board.close()
    return run_dir


def _check_same_run(config: TrainConfig, ckpt_config: dict, path: Path, continuing: bool = False) -> None:
    """A resumed run must have the checkpoint's config, up to :data:`RESUME_FREE_KEYS`.

    ``continuing``: the run was not asked to resume but its directory already holds a run.
    """
    mine = config.to_dict()
    for key in sorted(set(mine) | set(ckpt_config)):
        if key in RESUME_FREE_KEYS:
            continue
        if mine.get(key) != ckpt_config.get(key):
            if continuing:
                raise RascalError(f"Run directory {path} already holds a run with {key}={ckpt_config.get(key)!r}, "
                                  f"not {mine.get(key)!r}; pass --resume {path} to continue that run, or "
                                  "choose another --out.")
            raise RascalError(f"Cannot resume {path}: it was trained with {key}={ckpt_config.get(key)!r}, "
                              f"not {mine.get(key)!r}; drop {config_key_hint(key)} or start a new run with "
                              "another --out.")
