"""Ablation sweeps: a grid over ``rascal train`` options, expanded to named, resumable runs.

This module names and expands the runs; :func:`rascal_geom.workflows.run_sweep` trains,
evaluates and reports them.

A grid file (YAML or JSON)::

    name: weight_source              # optional; the default is the file's stem
    base:                            # options every run shares (any `rascal train` option)
      dataset: synthetic
      epochs: 20
    grid:                            # the cross product of these lists, in this key order
      weights: [uniform, current_rank, rank_agreement]
      seed: [0, 1, 2]
    include:                         # extra runs outside the product (e.g. a CE baseline)
      - {loss: ce, seed: 0}
    gpus: 1                          # > 1: each run is a `torchrun --nproc-per-node G` job
    display_names:                   # optional: the report's name for a run group or loss
      rascal: RASCAL (ours)

Run names are built from the options that vary across the sweep, in grid order with the seed
last (``weights=rank_agreement,seed=1``), so a name never changes when an unrelated run is added to
``include``; runs with the same name and different options, or an option the trainer does not
know, are one-line errors.
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from rascal_train.errors import RascalError

# Options a sweep must not set: it owns where each run lives and how it is resumed.
_RESERVED = ("out", "resume")
_SPEC_KEYS = ("name", "base", "grid", "include", "gpus", "baseline", "display_names")
_FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
#: A seed suffix on a run name (``rascal_s0``, ``supcon-seed1``, a sweep's ``loss=rascal,seed=2``):
#: a run's name without it names its group of repeats.
SEED_SUFFIX = re.compile(r"[-_.,](seed|s)[-_=]?\d+$", re.IGNORECASE)


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: its stable name and the ``rascal train`` options it sets."""

    name: str
    options: dict[str, Any]


def load_grid(path: str | Path) -> dict:
    """Read a grid file (YAML or JSON) into a dict, with one-line errors for unreadable files."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise RascalError(f"Grid file {path} does not exist; pass a YAML file with `base:` and "
                          "`grid:` (see examples/).")
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML
    except UnicodeDecodeError:
        raise RascalError(f"Grid file {path} is not UTF-8 text; pass a YAML file.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise RascalError(f"Grid file {path} is not valid YAML{where}; fix the syntax.") from None
    if not isinstance(spec, dict):
        raise RascalError(f"Grid file {path} must hold a mapping with `base:` and `grid:`; got "
                          f"{type(spec).__name__}.")
    spec.setdefault("name", path.stem)
    return spec


def _train_option_names() -> set[str]:
    from rascal_train.config import TrainConfig

    return {f.name for f in fields(TrainConfig)} - set(_RESERVED)


def _check_options(options: dict, where: str, known: set[str]) -> None:
    for key in options:
        if key in _RESERVED:
            raise RascalError(f"{where} sets {key!r}, which the sweep chooses itself; remove it.")
        if key not in known:
            raise RascalError(f"{where} has unknown option {key!r}; valid options are "
                              f"{', '.join(sorted(known))}.")


def _slug(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_",
                  str(value).lower() if isinstance(value, bool) else str(value))


def expand_grid(spec: dict) -> list[SweepRun]:
    """The runs of a grid spec, in a stable order: the product first, then ``include``.

    Parameters
    ----------
    spec : dict
        As read by :func:`load_grid`.

    Returns
    -------
    list of SweepRun
        Every run's options are validated by ``TrainConfig`` (so a bad value fails here, before
        any run starts); identical runs listed twice appear once.
    """
    from rascal_train.config import TrainConfig

    unknown = sorted(set(spec) - set(_SPEC_KEYS))
    if unknown:
        raise RascalError(f"Grid has unknown top-level key {unknown[0]!r}; use "
                          f"{', '.join(_SPEC_KEYS)}.")
    name, gpus = spec.get("name", "sweep"), spec.get("gpus", 1)
    if not isinstance(name, str) or not _FOLDER_NAME.fullmatch(name):
        raise RascalError(f"Grid `name` {name!r} must be one folder name of letters, digits, '.', "
                          "'_' and '-'; fix `name:` in the grid.")
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
        raise RascalError(f"Grid `gpus` must be an int >= 1; got {gpus!r}.")
    known = _train_option_names()
    base = spec.get("base") or {}
    grid = spec.get("grid") or {}
    include = spec.get("include") or []
    if not isinstance(base, dict) or not isinstance(grid, dict) or not isinstance(include, list):
        raise RascalError("Grid `base` and `grid` must be mappings and `include` a list of "
                          "mappings.")
    _check_options(base, "Grid `base`", known)
    _check_options(grid, "Grid `grid`", known)
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise RascalError(f"Grid option {key!r} must be a non-empty list of values; got "
                              f"{values!r}.")
    for i, extra in enumerate(include):
        if not isinstance(extra, dict):
            raise RascalError(f"Grid `include` entry {i + 1} must be a mapping of options.")
        _check_options(extra, f"Grid `include` entry {i + 1}", known)

    points = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]
    points += [dict(extra) for extra in include]
    if not points:
        points = [{}]
    # Keys that vary name the runs: grid keys with several values, then include's own keys.
    varying = [k for k, v in grid.items() if len(v) > 1]
    for key in (k for extra in include for k in extra):
        if key not in varying:
            varying.append(key)
    if "seed" in varying:  # last, so that the report's group of a run is its name minus the seed
        varying.append(varying.pop(varying.index("seed")))

    runs: dict[str, SweepRun] = {}
    for point in points:
        options = {**base, **point}
        try:
            TrainConfig.from_dict(options, source="the grid")
        except RascalError as exc:
            raise RascalError(f"Grid run {point}: {exc}") from None
        name = ",".join(f"{k}={_slug(options[k])}" for k in varying if k in options) or "run"
        if name in runs:
            if runs[name].options != options:
                raise RascalError(f"Grid runs {runs[name].options} and {options} both get the name "
                                  f"{name!r}; make them differ in a grid key.")
            continue
        runs[name] = SweepRun(name, options)
    _check_datasets(runs.values())
    _check_baseline(spec.get("baseline"), list(runs.values()))
    _check_display_names(spec.get("display_names"))
    return list(runs.values())


def _check_datasets(runs) -> None:
    import rascal_train.datasets  # noqa: F401  (registers every loader)
    from rascal_train.datasets.base import list_datasets

    known = list_datasets()
    for run in runs:
        dataset = run.options.get("dataset", "synthetic")
        if dataset not in known:
            raise RascalError(f"Grid run {run.name} has dataset {dataset!r}, which does not exist; "
                              f"choose one of {', '.join(known)}.")


def _check_baseline(baseline, runs: list[SweepRun]) -> None:
    """The report's baseline must name a run group (a run name without its seed) or a loss, checked
    before anything trains rather than after everything has."""
    from rascal_train.config import TrainConfig

    if baseline is None:
        return
    names = {run.name for run in runs} | {SEED_SUFFIX.sub("", run.name) for run in runs}
    names |= {TrainConfig.from_dict(run.options).loss for run in runs}
    if not isinstance(baseline, str) or baseline not in names:
        raise RascalError(f"Grid `baseline` {baseline!r} names no run group or loss of this sweep; "
                          f"choose one of {', '.join(sorted(names))}.")


def _check_display_names(names) -> None:
    """``display_names:`` maps a run group or loss to the name the report prints (checked there
    against the groups, as ``rascal report --name``); here only its shape."""
    if names is None:
        return
    shaped = isinstance(names, dict) and all(
        isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in names.items())
    if not shaped:
        raise RascalError(f"Grid `display_names` must map run groups or losses to non-empty names "
                          f"(e.g. {{rascal: RASCAL (ours)}}); got {names!r}.")


def _flag(key: str, value: Any) -> list[str]:
    flag = "--" + key.replace("_", "-")
    if isinstance(value, bool):
        return [flag if value else "--no-" + key.replace("_", "-")]
    return [flag, str(value)]


def train_command(run: SweepRun, run_dir: Path, gpus: int = 1, resume: bool | None = None) -> str:
    """The shell command that trains (or resumes) ``run`` in ``run_dir``.

    ``resume=None`` resumes when the run is partial now; True or False decide it.
    """
    args = ["train", *itertools.chain.from_iterable(_flag(k, v) for k, v in run.options.items()),
            "--out", str(run_dir)]
    if resume or (resume is None and run_status(run_dir, run.options) == "partial"):
        args += ["--resume", str(run_dir)]
    prefix = (["torchrun", f"--nproc-per-node={gpus}", "--no-python", "rascal"] if gpus > 1
              else ["rascal"])
    return shlex.join(prefix + args)


def array_command(run: SweepRun, run_dir: Path, gpus: int = 1) -> str:
    """A job-array line for ``run``: decides when it runs, not when printed, whether the run is done
    (nothing to do), partial (resume) or new, so one printed list serves every resubmission."""
    from rascal_train.config import TrainConfig

    ckpts = Path(run_dir) / "checkpoints"
    done = shlex.quote(str(ckpts / f"epoch_{TrainConfig.from_dict(run.options).epochs:04d}.pt"))
    last = shlex.quote(str(ckpts / "last.pt"))
    return (f"test -f {done} || if test -f {last}; then "
            f"{train_command(run, run_dir, gpus, resume=True)}; else "
            f"{train_command(run, run_dir, gpus, resume=False)}; fi")


def run_status(run_dir: Path, options: dict) -> str:
    """``"done"`` (the final epoch's checkpoint exists), ``"partial"`` (a checkpoint or a config) or
    ``"new"``."""
    from rascal_train.config import TrainConfig

    epochs = TrainConfig.from_dict(options).epochs
    ckpts = Path(run_dir) / "checkpoints"
    if (ckpts / f"epoch_{epochs:04d}.pt").is_file():
        return "done"
    # A run killed before its first checkpoint has only its config: it restarts from epoch 0.
    return ("partial" if (ckpts / "last.pt").is_file() or (Path(run_dir) / "config.json").is_file()
            else "new")


def describe(runs: list[SweepRun]) -> str:
    """A JSON listing of the runs, for ``--dry-run``."""
    return json.dumps([{"name": r.name, "options": r.options} for r in runs], indent=2)
