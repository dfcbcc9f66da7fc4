"""The training configuration: defaults (SupCon's recipe), validation, files, flags, resume.

A :class:`TrainConfig` is what ``rascal train`` runs and what every checkpoint carries (as
``to_dict()``). Values come from three layers, later ones winning: the defaults below, a
``--config`` file (JSON or YAML), and the flags given on the command line. With ``--resume``
the checkpoint's own config replaces the defaults, and a flag that contradicts it is an error
(see :func:`check_same_run`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from rascal_train.errors import RascalError
from rascal_train.names import CACHE_POLICIES, LOSSES, PRECISIONS, WEIGHT_SOURCES

# Keys that may differ between a checkpoint and the run that resumes it: where the run lives
# and how it is watched change nothing the weights depend on.
RESUME_FREE_KEYS = ("resume", "out", "device", "num_workers", "monitor", "log_every")
# Keys that `rascal train` has a flag for (the others are set in a --config file); a test keeps
# this equal to the command's options.
FLAG_KEYS = frozenset({
    "dataset", "data_root", "label_level", "loss", "weights", "cache", "arch", "epochs",
    "batch_size", "lr", "warmup_epochs", "temperature", "limit", "label_noise", "imbalance",
    "device", "precision", "seed", "out", "resume", "monitor", "log_every"})
# Seeds feed torch.manual_seed, which takes at most 64 bits; one bit less keeps it signed-safe.
MAX_SEED = 2**63 - 1
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


@dataclass
class TrainConfig:
    """Everything one training run depends on.

    Parameters
    ----------
    dataset : str, default="synthetic"
        A name from ``rascal_train.datasets.list_datasets()``.
    data_root : str, optional
        Where the dataset lives (not needed for ``synthetic``).
    label_level : str, optional
        The hierarchy level that trains; ``None`` is the dataset's default.
    arch : str, default="small_cnn"
        A name from ``rascal_train.models.list_models()``.
    loss : {"rascal", "supcon", "simclr", "ce"}, default="rascal"
    weights : str, optional
        RASCAL's weight source (only with ``loss="rascal"``; default ``"rank_agreement"``).
        ``supcon`` and ``simclr`` record ``"uniform"``.
    cache : {"last_seen", "epoch_end"}, optional
        The embedding-cache policy (only with ``loss="rascal"``; default ``"last_seen"``).
    epochs : int, default=100
    batch_size : int, default=256
        Images per optimiser step, over all processes (each image gives two views).
    lr : float, default=0.125
        Peak learning rate: SupCon's 0.5 at batch 1024, scaled linearly to batch 256.
    momentum : float, default=0.9
    weight_decay : float, default=1e-4
    warmup_epochs : float, optional
        Linear warm-up length; ``None`` is a tenth of the run, at most 10 epochs.
    final_lr_ratio : float, default=1e-3
        The cosine ends at ``lr · final_lr_ratio`` (SupCon: ``0.1³``).
    temperature : float, default=0.1
    seed : int, default=0
        Drives model initialisation, the data order and the augmentations.
    image_size : int, optional
        ``None``: the size of in-memory images, 224 for file-backed sets.
    num_classes : int, optional
        Filled in from the dataset by the engine.
    proj_dim : int, default=128
    head_bn : bool, default=False
    limit : int, optional
        Train on the first ``limit`` training samples only.
    label_noise : float, default=0.0
        Symmetric label-noise rate in [0, 1).
    imbalance : float, optional
        Long-tail imbalance factor (>= 1) for datasets that support it.
    device : str, default="auto"
        ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    precision : {"auto", "fp32", "bf16", "fp16"}, default="auto"
        Autocast dtype on CUDA (``auto``: bf16 from compute capability 8, fp16 with a gradient
        scaler before; :func:`rascal_train.devices.autocast_dtype`); CPU always trains in fp32.
    channels_last : bool, optional
        ``None``: channels-last memory format on CUDA only.
    out : str, optional
        Run directory; ``None`` is ``runs/<dataset>-<loss>[-<weights>]-s<seed>``.
    resume : str, optional
        A checkpoint (or a run directory, meaning its ``checkpoints/last.pt``) to continue.
    monitor : bool, default=True
        Epoch-end kNN accuracy on the test split and rank stability of a training probe set,
        measured by the geometry monitor that ``rascal train`` and the workflows pass to
        ``train`` (:class:`rascal_geom.monitor.GeometryMonitor`); ``train`` called without
        callbacks measures nothing at epoch end.
    log_every : int, default=10
        Steps between step records in ``train_log.jsonl``.
    num_workers : int, default=4
        DataLoader workers for file-backed datasets.
    """

    dataset: str = "synthetic"
    data_root: str | None = None
    label_level: str | None = None
    arch: str = "small_cnn"
    loss: str = "rascal"
    weights: str | None = None
    cache: str | None = None
    epochs: int = 100
    batch_size: int = 256
    lr: float = 0.125
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_epochs: float | None = None
    final_lr_ratio: float = 1e-3
    temperature: float = 0.1
    seed: int = 0
    image_size: int | None = None
    num_classes: int | None = None
    proj_dim: int = 128
    head_bn: bool = False
    limit: int | None = None
    label_noise: float = 0.0
    imbalance: float | None = None
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool | None = None
    out: str | None = None
    resume: str | None = None
    monitor: bool = True
    log_every: int = 10
    num_workers: int = 4

    # --- construction -----------------------------------------------------------------------

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "the config") -> "TrainConfig":
        """Build and validate a config; unknown keys are an error naming the valid ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise RascalError(f"Unknown key {unknown[0]!r} in {source}; valid keys are "
                              f"{', '.join(sorted(known))}.")
        return cls(**values).validated()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (for ``config.json`` and checkpoints)."""
        return dataclasses.asdict(self)

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes).validated()

    @property
    def run_name(self) -> str:
        parts = [self.dataset, self.loss] + ([self.weights] if self.loss == "rascal" else [])
        return "-".join(parts + [f"s{self.seed}"])

    @property
    def run_dir(self) -> Path:
        return Path(self.out) if self.out else Path("runs") / self.run_name

    @property
    def warmup(self) -> float:
        """Warm-up length in epochs, the default resolved."""
        return (min(10.0, self.epochs / 10) if self.warmup_epochs is None
                else float(self.warmup_epochs))

    # --- validation (one place, one-line errors that name the flag) -----------------------------

    def validated(self) -> "TrainConfig":
        """Check every value; fill the loss-dependent defaults. Returns a new config."""
        from rascal_train.models import list_models

        _choice("loss", self.loss, LOSSES)
        _choice("arch", self.arch, list_models())
        changes: dict[str, Any] = {}
        if self.loss == "rascal":
            _choice("weights", self.weights or "rank_agreement", WEIGHT_SOURCES)
            _choice("cache", self.cache or "last_seen", CACHE_POLICIES)
            changes.update(weights=self.weights or "rank_agreement",
                           cache=self.cache or "last_seen")
        else:
            implied = None if self.loss == "ce" else "uniform"
            if self.weights not in (None, implied):
                raise RascalError(f"--weights {self.weights} applies only to --loss rascal (got "
                                  f"--loss {self.loss}); drop --weights or use --loss rascal.")
            if self.cache is not None:
                raise RascalError("--cache applies only to --loss rascal (got --loss "
                                  f"{self.loss}); drop --cache or use --loss rascal.")
            changes["weights"] = implied
        _integer("epochs", self.epochs, 1)
        _integer("batch_size", self.batch_size, 2)
        _integer("seed", self.seed, 0, MAX_SEED)
        _integer("proj_dim", self.proj_dim, 1)
        _integer("log_every", self.log_every, 1)
        _integer("num_workers", self.num_workers, 0)
        for name, value in (("image_size", self.image_size), ("num_classes", self.num_classes),
                            ("limit", self.limit)):
            if value is not None:
                _integer(name, value, 1 if name != "image_size" else 8)
        _real("lr", self.lr, 0, math.inf, low_open=True, high_open=True)
        _real("momentum", self.momentum, 0, 1)
        _real("weight_decay", self.weight_decay, 0, math.inf, high_open=True)
        _real("final_lr_ratio", self.final_lr_ratio, 0, 1)
        _real("temperature", self.temperature, 0, math.inf, low_open=True, high_open=True)
        _real("label_noise", self.label_noise, 0, 1, high_open=True)
        if self.warmup_epochs is not None:
            _real("warmup_epochs", self.warmup_epochs, 0, self.epochs, high_open=True)
        if self.imbalance is not None:
            _real("imbalance", self.imbalance, 1, math.inf, high_open=True)
        _choice("precision", self.precision, PRECISIONS)
        for name in ("head_bn", "monitor"):
            if not isinstance(getattr(self, name), bool):
                raise RascalError(f"The '{name}' parameter must be true or false. Got "
                                  f"{getattr(self, name)!r} instead.")
        if self.channels_last is not None and not isinstance(self.channels_last, bool):
            raise RascalError("The 'channels_last' parameter must be true, false or null. Got "
                              f"{self.channels_last!r} instead.")
        check_device(self.device)
        for name in ("dataset", "data_root", "label_level", "out", "resume"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                changes[name] = str(value)
        return dataclasses.replace(self, **changes)


def check_device(name) -> str:
    """``name`` if it is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; else a one-line error."""
    if not isinstance(name, str) or not _DEVICE.fullmatch(name):
        raise RascalError("The 'device' parameter must be auto, cpu, cuda or cuda:N (N a GPU "
                          f"index). Got {name!r} instead.")
    return name


def config_key_hint(name: str) -> str:
    """Where a user sets config key ``name``: its flag, or the --config file for keys without
    one."""
    return "--" + name.replace("_", "-") if name in FLAG_KEYS else f"`{name}:` in the --config file"


def _choice(name: str, value, choices) -> None:
    if value not in choices:
        raise RascalError(f"The '{name}' parameter must be one of {', '.join(map(str, choices))}. "
                          f"Got {value!r} instead (set it with {config_key_hint(name)}).")


def _integer(name: str, value, low: int, high: int | None = None) -> None:
    if (isinstance(value, bool) or not isinstance(value, int) or value < low
            or (high is not None and value > high)):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise RascalError(f"The '{name}' parameter must be an int {bound}. Got {value!r} instead "
                          f"(set it with {config_key_hint(name)}).")


def _real(name: str, value, low: float, high: float, low_open: bool = False,
          high_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)
    if ok:
        ok = ((value > low if low_open else value >= low)
              and (value < high if high_open else value <= high))
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise RascalError(f"The '{name}' parameter must be a float in {interval}. Got {value!r} "
                          f"instead (set it with {config_key_hint(name)}).")


# --- files, flags, resume -----------------------------------------------------------------------

def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON (``.json``) or YAML (anything else) mapping of config keys.

    Dashes in keys are accepted for underscores, so a file may use the flag spellings.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise RascalError(f"Config file {path} does not exist; pass a JSON or YAML file to "
                          "--config.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RascalError(f"Config file {path} is not UTF-8 text; pass a JSON or YAML "
                          "file.") from None
    try:
        values = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise RascalError(f"Config file {path} is not valid "
                          f"{'JSON' if path.suffix == '.json' else 'YAML'} ({first}); fix the "
                          "file.") from None
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise RascalError(f"Config file {path} must hold a mapping of keys to values; got a "
                          f"{type(values).__name__}.")
    return {str(key).replace("-", "_"): value for key, value in values.items()}


def resume_path(path: str | Path) -> Path:
    """A checkpoint path; a run directory means its ``checkpoints/last.pt``."""
    path = Path(path)
    return path / "checkpoints" / "last.pt" if path.is_dir() else path


def resolve_config(config_file: str | Path | None = None, **flags) -> TrainConfig:
    """Merge defaults, a config file and the flags the user gave (``None`` = not given).

    With ``resume`` (in the file or the flags) the checkpoint's config is the base instead of
    the defaults, so ``rascal train --resume runs/x`` needs no other flag.
    """
    values = load_config_file(config_file) if config_file is not None else {}
    values.update({key: value for key, value in flags.items() if value is not None})
    source = str(config_file) if config_file is not None else "the flags"
    if values.get("resume"):
        from rascal_train.files import load_checkpoint
        from rascal_train.rundir import read_run_config, resume_source

        run_dir, ckpt_file = resume_source(values["resume"])
        if values.get("out") is not None and Path(values["out"]).resolve() != run_dir:
            raise RascalError(f"--out {values['out']} differs from the run being resumed "
                              f"({run_dir}); a resumed run stays in its own directory, so drop "
                              "--out.")
        if ckpt_file is not None:
            base = load_checkpoint(ckpt_file).get("config")
            if not isinstance(base, dict):
                raise RascalError(f"{ckpt_file} carries no run config; pass a checkpoint written "
                                  "by `rascal train`.")
        else:
            base = read_run_config(run_dir)
        check_same_run(values, base, ckpt_file or run_dir)
        values = {**base, **values}
    return TrainConfig.from_dict(values, source=source)


def check_same_run(values: dict[str, Any], ckpt_config: dict[str, Any], path: Path,
                   continuing: bool = False) -> None:
    """Raise unless every run-defining key in ``values`` equals the checkpoint's.

    The one rule of resuming: a run continues only with the config it was trained with, up to
    :data:`RESUME_FREE_KEYS`. ``values`` may be the flags a user gave (checked before anything
    loads) or a whole config (checked by the engine); a key the checkpoint's config lacks is
    ``None`` there. ``continuing``: the run was not asked to resume, but its directory already
    holds a run.
    """
    for key in sorted(values):
        if key in RESUME_FREE_KEYS or values[key] == ckpt_config.get(key):
            continue
        if continuing:
            raise RascalError(f"Run directory {path} already holds a run with "
                              f"{key}={ckpt_config.get(key)!r}, not {values[key]!r}; pass --resume "
                              f"{path} to continue that run, or choose another --out.")
        raise RascalError(f"Cannot resume {path}: it was trained with "
                          f"{key}={ckpt_config.get(key)!r}, not {values[key]!r}; drop "
                          f"{config_key_hint(key)} or start a new run with another --out.")
