"""The checkpoint of a training run: what it holds (:class:`TrainState`) and how it is written.

One :class:`TrainState` names every part a run resumes from (model, optimiser, schedule, gradient
scaler, embedding cache, the epoch-end callbacks' states, the epoch and step, and the setting it
ran under); :meth:`TrainState.state_dict` writes the checkpoint and
:meth:`TrainState.load_state_dict` reads it, so the layout lives in this one place. Key names
are those of every checkpoint written before, which therefore still resume.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from rascal_train.cache import EmbeddingCache
from rascal_train.callbacks import Callback
from rascal_train.config import TrainConfig
from rascal_train.errors import RascalError
from rascal_train.files import atomic_torch_save, load_checkpoint
from rascal_train.models import CHECKPOINT_FORMAT, RascalModel
from rascal_train.schedule import WarmupCosineLR


@dataclass
class TrainState:
    """Everything a run resumes from.

    ``model`` is the bare model (not DDP-wrapped); ``world`` and ``device_type`` are the setting
    the run trains under, recorded so a resume under another setting is refused
    (:func:`check_same_setting`). ``epoch`` counts finished epochs, ``step`` optimiser steps.
    """

    config: TrainConfig
    model: RascalModel
    optimizer: torch.optim.Optimizer
    scheduler: WarmupCosineLR
    scaler: torch.amp.GradScaler
    cache: EmbeddingCache | None
    callbacks: Sequence[Callback]
    world: int
    device_type: str
    epoch: int = 0
    step: int = 0

    def state_dict(self) -> dict:
        """The checkpoint: a dict of plain values and tensors, as :func:`torch.save` writes it."""
        return {
            "format": CHECKPOINT_FORMAT, "config": self.config.to_dict(), "epoch": self.epoch,
            "step": self.step, "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "cache": self.cache.state_dict() if self.cache is not None else None,
            # No RNG state: every epoch reseeds from (seed, epoch, rank), recorded here.
            "rng": {"seed": self.config.seed, "reseeded_per_epoch": True, "world_size": self.world,
                    "device_type": self.device_type},
            "monitor": {key: value for callback in self.callbacks
                        for key, value in callback.state_dict().items()},
        }

    def load_state_dict(self, ckpt: dict) -> None:
        """Continue from ``ckpt`` (checked by :func:`check_same_setting` first)."""
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt["scaler"]:
            self.scaler.load_state_dict(ckpt["scaler"])
        # else the run was saved without a scaler (on a CPU, or in bf16): an fp16 continuation
        # starts from GradScaler's initial scale, which it recalibrates in a few steps.
        if self.cache is not None:
            self.cache.load_state_dict(ckpt["cache"])
        self.epoch, self.step = int(ckpt["epoch"]), int(ckpt["step"])
        for callback in self.callbacks:
            callback.load_state_dict(ckpt.get("monitor") or {})


def checkpoint_path(run_dir: Path, epoch: int) -> Path:
    return run_dir / "checkpoints" / f"epoch_{epoch:04d}.pt"


def save_checkpoint(run_dir: Path, state: dict) -> Path:
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


def load_run_checkpoint(path: Path) -> dict:
    """A checkpoint written by ``rascal train``; anything else is a one-line error."""
    ckpt = load_checkpoint(path)
    if ckpt.get("format") != CHECKPOINT_FORMAT or not isinstance(ckpt.get("config"), dict):
        raise RascalError(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint; pass one written by "
                          "`rascal train`.")
    return ckpt


def check_same_setting(ckpt: dict, config: TrainConfig, device: torch.device, world: int,
                       file_backed: bool, path: Path) -> None:
    """Refuse to resume under a setting that changes the trajectory but not the config.

    The device type decides the precision (CPU fp32, CUDA autocast), the world size how the
    batch is split and seeded, and for file-backed sets the worker count which worker (and so
    which seed) augments each sample.
    """
    saved = ckpt.get("rng") or {}
    if int(saved.get("world_size", world)) != world:
        raise RascalError(f"Cannot resume {path}: it was trained by {saved['world_size']} "
                          f"process(es), not {world}; resume it with torchrun --nproc-per-node "
                          f"{saved['world_size']}.")
    if saved.get("device_type", device.type) != device.type:
        raise RascalError(f"Cannot resume {path}: it was trained on {saved['device_type']}, not "
                          f"{device.type} (the precision differs); resume it with --device "
                          f"{saved['device_type']}.")
    workers = ckpt["config"].get("num_workers", config.num_workers)
    if file_backed and workers != config.num_workers:
        raise RascalError(f"Cannot resume {path}: it was trained with num_workers={workers}, not "
                          f"{config.num_workers} (each worker seeds its own augmentations); set "
                          f"num_workers: {workers} in the --config file.")
