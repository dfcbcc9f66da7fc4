"""Bring a run's evaluation and analysis up to date with its last checkpoint.

The sweep and the demo call this after training; it is what ``rascal eval RUN`` followed by
``rascal analyze RUN`` do, minus the work whose results are already on disk for the same epoch.
"""

from __future__ import annotations

import json
from pathlib import Path


def _epoch_of(doc_path: Path, key) -> int | None:
    try:
        return key(json.loads(doc_path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def evaluate_and_analyze(run_dir: str | Path, progress: bool = True, device=None) -> tuple[Path, Path]:
    """Write ``<run>/eval.json`` and ``<run>/analysis.json`` (+ ``analysis.html``) if stale.

    Parameters
    ----------
    run_dir : path
        A run directory written by ``rascal train``.
    device : str, torch.device or None
        Where the encoder runs (auto, cpu, cuda, cuda:N); the neighbour search follows it.

    Returns
    -------
    (eval_path, analysis_path)
    """
    from rascal_geom.analysis import analyze
    from rascal_geom.evaluation import evaluate_checkpoint
    from rascal_geom.report import render_analysis
    from rascal_train.devices import device_scope, resolve_device
    from rascal_train.files import atomic_write_json, load_checkpoint

    device = resolve_device(device)
    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoints" / "last.pt"
    epoch = int(load_checkpoint(ckpt)["epoch"])
    eval_path, analysis_path = run_dir / "eval.json", run_dir / "analysis.json"
    with device_scope(device):
        if _epoch_of(eval_path, lambda d: d["epoch"]) != epoch:
            atomic_write_json(eval_path, evaluate_checkpoint(ckpt, progress=progress, device=device))
        if _epoch_of(analysis_path, lambda d: d["source"]["epoch"]) != epoch:
            result = analyze(run_dir, progress=progress, device=device)
            atomic_write_json(analysis_path, result)
            render_analysis(result, run_dir / "analysis.html")
    return eval_path, analysis_path
