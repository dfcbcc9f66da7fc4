"""The training loop behind ``rascal train`` and ``rascal demo``: :func:`train` runs one config.

What one run does, in order: build the data, model, loss, cache, optimiser and schedule (a
:class:`~rascal_train.train_state.TrainState`); restore all of it from a checkpoint on
``resume``; then per epoch: reseed, stream augmented two-view batches, take SGD steps (the loss
sees the global batch under DDP), log, call the epoch-end callbacks the caller passed
(:mod:`rascal_train.callbacks`), and save an atomic checkpoint. Randomness is reseeded at every
epoch start from ``(seed, epoch, rank)``, and the data order is a seeded permutation per epoch,
so a run resumed after epoch k continues exactly as if it had never stopped (bit-identical
weights on CPU) without carrying RNG states.

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
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rascal_train import distributed as dist_utils
from rascal_train.callbacks import Callback
from rascal_train.config import TrainConfig, check_same_run
from rascal_train.datasets.base import HierDataset
from rascal_train.devices import autocast, autocast_dtype, describe, device_scope, resolve_device
from rascal_train.errors import RascalError
from rascal_train.files import atomic_write_json, atomic_write_text, read_jsonl, sweep_stale_temps
from rascal_train.models import build_model
from rascal_train.rundir import last_checkpoint, lock_run_dir, read_run_config, resume_source
from rascal_train.train_state import (TrainState, check_same_setting, checkpoint_path,
                                      load_run_checkpoint, save_checkpoint)

LOG_NAME = "train_log.jsonl"


# --- data ---------------------------------------------------------------------------------------

def load_train_set(config: TrainConfig) -> HierDataset:
    """The training split, with label noise, imbalance and ``limit`` applied."""
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
            raise RascalError(f"--imbalance {config.imbalance:g} leaves "
                              f"{train_set.num_classes - present} of the {train_set.num_classes} "
                              "classes without a training image; lower --imbalance (long-tail "
                              "benchmarks use 10 to 100).")
    if config.limit is not None and config.limit < len(train_set):
        train_set = train_set.subset(np.arange(config.limit))
    return train_set


def load_test_set(config: TrainConfig, label_level: str) -> HierDataset:
    """The test split of the config's dataset, targets at ``label_level`` (the training split's)."""
    import rascal_train.datasets  # noqa: F401  (registers every loader)
    from rascal_train.datasets.base import get_dataset

    return get_dataset(config.dataset, root=config.data_root, split="test", label_level=label_level)


def load_datasets(config: TrainConfig) -> tuple[HierDataset, HierDataset]:
    """The training split (:func:`load_train_set`) and the test split at its label level."""
    train_set = load_train_set(config)
    return train_set, load_test_set(config, train_set.train_level)


def epoch_seed(seed: int, epoch: int, *stream: int) -> int:
    """A 63-bit seed that is a pure function of ``(seed, epoch, *stream)``."""
    state = np.random.SeedSequence([seed, epoch, *stream]).generate_state(2, np.uint64)
    return int(state[0] >> np.uint64(1))


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
        order = epoch_order(len(self.dataset), self.config.seed, epoch)
        order = order[: self.steps * self.config.batch_size]
        return order.view(self.steps, self.world, self.local)[:, self.rank].reshape(-1)

    def epoch(self, epoch: int):
        index = self._local_indices(epoch)
        seed = epoch_seed(self.config.seed, epoch, 2, self.rank)
        if self.dataset.images is not None:
            from rascal_train.transforms import GpuTwoViewAugment

            augment = GpuTwoViewAugment(self.config.image_size)
            gen = torch.Generator().manual_seed(seed)
            index = index.to(self.device)
            for step in range(self.steps):
                idx = index[step * self.local:(step + 1) * self.local]
                v1, v2 = augment(self.images[idx], generator=gen)
                yield v1, v2, self.targets[idx], self.ids[idx]
            return
        from rascal_train.transforms import two_view_transform

        views = dataclasses.replace(self.dataset,
                                    transform=two_view_transform(self.config.image_size))
        loader = torch.utils.data.DataLoader(
            views, batch_size=self.local, sampler=index.tolist(), drop_last=True,
            num_workers=self.config.num_workers, pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(seed))
        for (v1, v2), targets, ids in loader:
            yield (v1.to(self.device, non_blocking=True), v2.to(self.device, non_blocking=True),
                   targets.to(self.device), ids.to(self.device))


# --- one step -----------------------------------------------------------------------------------

def _view_major(x: Tensor, world: int) -> Tensor:
    """Rows gathered in rank order, ``[rank][view][row]``, → view-major ``[view][rank, row]``."""
    if world == 1:
        return x
    n = x.shape[0] // (2 * world)
    return x.reshape(world, 2, n, *x.shape[1:]).transpose(0, 1).reshape(x.shape)


def _channels_last(model: nn.Module) -> bool:
    return next(model.parameters()).is_contiguous(memory_format=torch.channels_last)


def contrastive_loss(model: nn.Module, loss_fn: nn.Module, v1: Tensor, v2: Tensor, labels: Tensor,
                     ids: Tensor, cache=None, simclr: bool = False,
                     autocast_dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """The contrastive loss of one step on the global batch.

    Parameters
    ----------
    model : nn.Module
        ``model(x [2b, 3, H, W]) -> z [2b, d]`` L2-normalised (a ``RascalModel``, DDP-wrapped
        or not).
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
    if x.device.type == "cuda" and _channels_last(model):
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(x.device, autocast_dtype):
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
    if v1.device.type == "cuda" and _channels_last(model):
        v1 = v1.contiguous(memory_format=torch.channels_last)
    with autocast(v1.device, autocast_dtype):
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


# --- the run directory and the log -------------------------------------------------------------

def _truncate_log(path: Path, epoch: int) -> None:
    """Keep the records of epochs ``<= epoch``: the ones the checkpoint being resumed saw."""
    kept = [r for r in read_jsonl(path) if int(r.get("epoch", 0)) <= epoch]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


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
            raise RascalError(f"{run_dir} holds a training log or checkpoints but no config.json; "
                              "it is not a run this command can continue, choose another --out.")
        return run_dir, None
    check_same_run(config.to_dict(), saved, run_dir, continuing=True)
    last = last_checkpoint(run_dir)
    if last is None:
        return run_dir, None
    ckpt = load_run_checkpoint(last)
    check_same_run(config.to_dict(), ckpt["config"], run_dir, continuing=True)
    return run_dir, ckpt


class _Log:
    """``train_log.jsonl`` and, with ``tensorboard``, its scalars as TensorBoard events.

    Only the main process writes; on the others :meth:`write` does nothing.
    """

    def __init__(self, run_dir: Path, main: bool, tensorboard: bool):
        self.path, self.main, self.board = run_dir / LOG_NAME, main, None
        if tensorboard and main:
            from rascal_train.tensorboard import LOG_DIR, TensorBoardLog

            self.board = TensorBoardLog(run_dir / LOG_DIR)

    def write(self, record: dict) -> None:
        if self.main:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
            if self.board is not None:
                self.board.add(record)

    def close(self) -> None:
        if self.board is not None:
            self.board.close()


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


def train(config: TrainConfig | dict, progress: bool = True, tensorboard: bool = False,
          callbacks: Sequence[Callback] = ()) -> Path:
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
    callbacks : sequence of Callback, default=()
        Epoch-end hooks (:class:`rascal_train.callbacks.Callback`): what they return joins the
        epoch's log record, their states the checkpoints. Without any, nothing is measured at
        epoch end, whatever ``config.monitor`` says: ``rascal train`` and the workflows pass
        :class:`rascal_geom.monitor.GeometryMonitor`, which reads ``config.monitor``.

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
            return _train(config, device, progress, held, tensorboard, tuple(callbacks))
    finally:
        if created_group:
            torch.distributed.destroy_process_group()


def _train(config: TrainConfig, device: torch.device, progress: bool, held: contextlib.ExitStack,
           tensorboard: bool, callbacks: tuple[Callback, ...]) -> Path:
    world, main = dist_utils.world_size(), dist_utils.is_main_process()
    if config.batch_size % world:
        raise RascalError(f"--batch-size {config.batch_size} must be a multiple of the {world} "
                          "processes; change --batch-size or --nproc-per-node.")
    config, train_set, run_dir, ckpt = _prepare(config, device, world, held, main, callbacks)
    amp = autocast_dtype(config.precision, device)
    state = _build_state(config, train_set, device, world, amp, callbacks)
    if progress and main:
        from rascal_train.progress import console

        console.print(f"device: {describe(device, amp)}")
    if ckpt is not None:
        state.load_state_dict(ckpt)
        del ckpt
    model: nn.Module = state.model
    if world > 1:
        if device.type == "cuda":
            model = state.model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device] if device.type == "cuda" else None)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run_dir / "config.json", config.to_dict())
        if (run_dir / LOG_NAME).exists():  # drop a killed run's records past its checkpoint
            _truncate_log(run_dir / LOG_NAME, state.epoch)
    log = _Log(run_dir, main, tensorboard)
    try:
        _Loop(state, model, _Batches(train_set, config, device, world, dist_utils.rank()), log,
              run_dir, amp, main).run(progress)
    finally:
        log.close()
    return run_dir


def _prepare(config: TrainConfig, device: torch.device, world: int, held: contextlib.ExitStack,
             main: bool, callbacks: tuple[Callback, ...]):
    """Read the data, complete the config from it, set up the callbacks and claim the run directory.

    Returns ``(config, train_set, run_dir, checkpoint to resume or None)``; every check that
    can refuse the run happens here, before a model is built.
    """
    ckpt = saved = None
    if config.resume:
        run_dir, ckpt_file = resume_source(config.resume)
        ckpt = load_run_checkpoint(ckpt_file) if ckpt_file is not None else None
        saved = ckpt["config"] if ckpt is not None else read_run_config(run_dir)
        config = config.replace(out=str(run_dir))
    train_set = load_train_set(config)
    if config.num_classes not in (None, train_set.num_classes):
        raise RascalError(f"The config sets num_classes={config.num_classes}, but "
                          f"{config.dataset} has {train_set.num_classes} classes at level "
                          f"{train_set.train_level!r}; remove num_classes (it is read from the "
                          "dataset).")
    native = train_set.images.shape[1] if train_set.images is not None else 224
    config = config.replace(image_size=config.image_size or native,
                            num_classes=train_set.num_classes, label_level=train_set.train_level)
    for callback in callbacks:
        callback.setup(config, train_set, device)
    if saved is not None:
        check_same_run(config.to_dict(), saved, Path(config.resume))
    if len(train_set) // config.batch_size == 0:
        raise RascalError(f"--batch-size {config.batch_size} is larger than the {len(train_set)} "
                          "training samples; lower --batch-size (or raise --limit).")
    run_dir, ckpt = _claim_run_dir(config, ckpt, held, main)
    if ckpt is not None:
        check_same_setting(ckpt, config, device, world, train_set.images is None, run_dir)
    return config, train_set, run_dir, ckpt


def _build_state(config: TrainConfig, train_set: HierDataset, device: torch.device, world: int,
                 amp: torch.dtype | None, callbacks: tuple[Callback, ...]) -> TrainState:
    """A fresh run's state: the model seeded from ``config.seed``, and what trains it."""
    from rascal_train.cache import EmbeddingCache
    from rascal_train.schedule import WarmupCosineLR

    steps_per_epoch = len(train_set) // config.batch_size
    torch.manual_seed(config.seed)
    model = build_model(config.to_dict()).to(device)
    channels_last = device.type == "cuda" if config.channels_last is None else config.channels_last
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    cache = EmbeddingCache(len(train_set), config.proj_dim, config.cache, device=device) \
        if config.loss == "rascal" else None
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    scheduler = WarmupCosineLR(optimizer, config.epochs * steps_per_epoch,
                               round(config.warmup * steps_per_epoch), config.final_lr_ratio)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    return TrainState(config, model, optimizer, scheduler, scaler, cache, callbacks, world,
                      device.type)


class _Loop:
    """The epochs of one run: steps, the log, the epoch-end callbacks and the checkpoints.

    ``model`` is what the steps call (``state.model``, DDP-wrapped under several processes).
    """

    def __init__(self, state: TrainState, model: nn.Module, batches: _Batches, log: _Log,
                 run_dir: Path, amp: torch.dtype | None, main: bool):
        from rascal_train.losses import RascalLoss

        self.state, self.model, self.batches, self.log = state, model, batches, log
        self.run_dir, self.amp, self.main = run_dir, amp, main
        config = state.config
        self.loss_fn = (None if config.loss == "ce"
                        else RascalLoss(config.temperature, config.weights))

    def run(self, progress: bool) -> None:
        from rich.progress import TextColumn

        from rascal_train.progress import make_progress

        config, steps = self.state.config, self.batches.steps
        columns = (TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[ips]} img/s"))
        with make_progress(*columns, disable=not (progress and self.main)) as bar:
            task = bar.add_task(f"epoch {self.state.epoch + 1}/{config.epochs}",
                                total=config.epochs * steps, completed=self.state.epoch * steps,
                                loss="-", ips="-")
            for epoch in range(self.state.epoch, config.epochs):
                bar.update(task, description=f"epoch {epoch + 1}/{config.epochs}")
                self._epoch(epoch, bar, task)

    def _epoch(self, epoch: int, bar, task) -> None:
        """Train epoch ``epoch`` (0-based), log it, run the callbacks and save the checkpoint."""
        state, config = self.state, self.state.config
        _reseed(config.seed, epoch, self.batches.rank)
        self.model.train()
        epoch_meter, window = _Meter(), _Meter()
        epoch_start = window_start = time.perf_counter()
        for batch in self.batches.epoch(epoch):
            lr = state.optimizer.param_groups[0]["lr"]
            stats = self._step(*batch)
            epoch_meter.add(stats)
            window.add(stats)
            if window.steps == config.log_every:
                self._check_finite(window, epoch + 1)
                values = window.means()
                values.pop("weight_hist", None)
                now = time.perf_counter()
                ips = config.batch_size * window.steps / (now - window_start)
                self.log.write({"kind": "step", "epoch": epoch + 1, "step": state.step, "lr": lr,
                                **values, "images_per_s": ips})
                bar.update(task, loss=f"{values['loss']:.4f}", ips=f"{ips:.0f}")
                window, window_start = _Meter(), now
            bar.advance(task)
        self._check_finite(epoch_meter, epoch + 1)
        train_time = time.perf_counter() - epoch_start
        if state.cache is not None:
            state.cache.end_epoch()
        measured = {}
        if self.main:
            for callback in state.callbacks:
                measured.update(callback.on_epoch_end(state.model, epoch + 1))
        state.epoch = epoch + 1
        self.log.write({"kind": "epoch", "epoch": epoch + 1, "step": state.step, "lr": lr,
                        **epoch_meter.means(),
                        "images_per_s": config.batch_size * self.batches.steps / train_time,
                        "time_s": time.perf_counter() - epoch_start, **measured})
        if self.main:
            save_checkpoint(self.run_dir, state.state_dict())

    def _step(self, v1: Tensor, v2: Tensor, targets: Tensor, ids: Tensor) -> dict[str, Tensor]:
        """One optimiser step on one batch; returns its statistics (tensors, not synced)."""
        state = self.state
        if self.loss_fn is not None:
            loss, z, gids = contrastive_loss(self.model, self.loss_fn, v1, v2, targets, ids,
                                             state.cache, simclr=state.config.loss == "simclr",
                                             autocast_dtype=self.amp)
            stats = dict(self.loss_fn.last_stats)
            # Wang & Isola's alignment: z is view-major, so row i and row i + half are the
            # two views of one image (pos_sim mixes in every same-class pair).
            half = z.shape[0] // 2
            stats["alignment"] = (z[:half] - z[half:]).pow(2).sum(1).mean()
        else:
            loss = ce_loss(self.model, v1, targets, self.amp)
            stats = {"loss": loss.detach()}
            if self.batches.world > 1:
                stats["loss"] = stats["loss"] / self.batches.world
                torch.distributed.all_reduce(stats["loss"])
        state.optimizer.zero_grad(set_to_none=True)
        state.scaler.scale(loss).backward()
        state.scaler.step(state.optimizer)
        state.scaler.update()
        state.scheduler.step()
        if state.cache is not None:
            state.cache.update(gids, z)
        state.step += 1
        return stats

    def _check_finite(self, meter: _Meter, epoch: int) -> None:
        """Stop on a NaN/Inf loss, naming the last good checkpoint (the one of ``state.epoch``)."""
        loss = meter.means()["loss"]
        if loss is None or math.isfinite(loss):
            return
        done, config = self.state.epoch, self.state.config
        where = (f"{checkpoint_path(self.run_dir, done)} (epoch {done}) is the last good checkpoint"
                 if done else "no checkpoint had been written yet")
        raise RascalError(f"The loss became {loss} in epoch {epoch}; training stopped and {where}. "
                          f"Lower --lr (now {config.lr}) or raise --temperature (now "
                          f"{config.temperature}).")
