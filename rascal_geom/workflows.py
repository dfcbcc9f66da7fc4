"""Workflows that train, evaluate, analyse and report: the sweep, the demo, eval + analysis.

They span both sides, so they live here, in the layer that may import everything; what
training itself needs of a sweep (grid expansion, run names, run status) stays in
:mod:`rascal_train.sweep`. Every run they train gets the geometry monitor
(:class:`rascal_geom.monitor.GeometryMonitor`), switched by its config's ``monitor``.
"""

from __future__ import annotations

import json
from pathlib import Path

from rascal_geom.analysis import analyze
from rascal_geom.compare import compare
from rascal_geom.evaluation import evaluate_checkpoint
from rascal_geom.monitor import GeometryMonitor
from rascal_geom.report import render_analysis, render_report
from rascal_train.config import TrainConfig
from rascal_train.devices import device_scope, resolve_device
from rascal_train.engine import train
from rascal_train.files import atomic_write_json, load_checkpoint
from rascal_train.progress import console
from rascal_train.sweep import expand_grid, run_status

# --- evaluation and analysis of one run --------------------------------------------------------


def _epoch_of(doc_path: Path, key) -> int | None:
    try:
        return key(json.loads(doc_path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def evaluate_and_analyze(run_dir: str | Path, progress: bool = True,
                         device=None) -> tuple[Path, Path]:
    """Write ``<run>/eval.json`` and ``<run>/analysis.json`` (+ ``analysis.html``) if stale.

    What ``rascal eval RUN`` followed by ``rascal analyze RUN`` do, minus the work whose results
    are already on disk for the run's last epoch.

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
    device = resolve_device(device)
    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoints" / "last.pt"
    epoch = int(load_checkpoint(ckpt)["epoch"])
    eval_path, analysis_path = run_dir / "eval.json", run_dir / "analysis.json"
    with device_scope(device):
        if _epoch_of(eval_path, lambda d: d["epoch"]) != epoch:
            result = evaluate_checkpoint(ckpt, progress=progress, device=device)
            atomic_write_json(eval_path, result)
        if _epoch_of(analysis_path, lambda d: d["source"]["epoch"]) != epoch:
            result = analyze(run_dir, progress=progress, device=device)
            atomic_write_json(analysis_path, result)
            render_analysis(result, run_dir / "analysis.html")
    return eval_path, analysis_path


# --- the sweep ---------------------------------------------------------------------------------

def run_sweep(spec: dict, out_dir: str | Path, progress: bool = True, analyze: bool = True,
              report_html: str | Path | None = None, device: str | None = None) -> Path | None:
    """Train every run of ``spec`` one after another, then evaluate, analyse and report.

    ``device`` (auto, cpu, cuda, cuda:N), when given, is where every run trains and is
    evaluated, overriding a ``device`` in the spec.

    Finished runs are skipped and half-finished ones resumed, so an interrupted sweep continues
    where it stopped. With several runs, their pairwise similarity
    (:func:`~rascal_geom.compare.compare`) goes to ``<out_dir>/similarity.json`` and into the
    report. Returns the path of the comparison report (``report_html``, by default
    ``<out_dir>/report.html``), or ``None`` with ``analyze=False`` (training only).
    """
    out_dir = Path(out_dir)
    runs = expand_grid(spec)
    atomic_write_json(out_dir / "sweep.json", {"spec": spec, "runs": [r.name for r in runs]})
    run_dirs = []
    for i, run in enumerate(runs, 1):
        run_dir = out_dir / run.name
        status = run_status(run_dir, run.options)
        if progress:
            console.print(f"[bold]run {i}/{len(runs)}[/] {run.name}: "
                          + {"done": "finished, skipped", "partial": "resuming",
                             "new": "training"}[status])
        if status != "done":
            config = TrainConfig.from_dict({
                **run.options, **({"device": device} if device else {}), "out": str(run_dir),
                "resume": str(run_dir) if status == "partial" else None})
            train(config, progress=progress, callbacks=[GeometryMonitor()])
        run_dirs.append(run_dir)
    if not analyze:
        return None
    device = resolve_device(device or (spec.get("base") or {}).get("device"))
    for run_dir in run_dirs:
        evaluate_and_analyze(run_dir, progress=progress, device=device)
    similarity = None
    if len(run_dirs) > 1:
        # The test-split embeddings of every run, cached by the analyses: seeds against methods.
        with device_scope(device):
            similarity = compare(run_dirs, device=device, progress=progress)
        atomic_write_json(out_dir / "similarity.json", similarity)
    return render_report(run_dirs, baseline=spec.get("baseline"), names=spec.get("display_names"),
                         out_html=Path(report_html or out_dir / "report.html"), progress=progress,
                         similarity=similarity)


# --- the demo ----------------------------------------------------------------------------------

# One budget for every loss, sized so the default demo finishes in a few minutes on 2 CPU cores.
DEMO_BUDGET = {"dataset": "synthetic", "arch": "small_cnn", "epochs": 5, "batch_size": 128,
               "lr": 0.1, "device": "auto"}
QUICK_BUDGET = {**DEMO_BUDGET, "epochs": 3, "limit": 768}


def demo_spec(quick: bool = False, seeds: int = 1) -> dict:
    """The demo's sweep: CE, SupCon and RASCAL on the synthetic set over ``seeds`` seeds."""
    return {"name": "demo", "baseline": "supcon",
            "base": dict(QUICK_BUDGET if quick else DEMO_BUDGET),
            "grid": {"loss": ["ce", "supcon", "rascal"], "seed": list(range(seeds))}}


def seeds_note(seeds: int) -> str:
    """What a demo with ``seeds`` seeds per loss allows one to conclude."""
    if seeds == 1:
        return ("Ran 1 seed per loss: the report gives each loss's numbers, but with one seed no "
                "difference between losses can be told apart from seed-to-seed variation, so "
                "none is claimed. `rascal demo --seeds 3` gives 95% intervals for every "
                "difference.")
    return (f"Ran {seeds} seeds per loss: a difference counts only where its 95% interval "
            f"(paired t over the {seeds} seeds) excludes 0, and the report marks the others "
            f"'≈ 0'. With {seeds} seeds the intervals are wide; a difference not marked is not "
            "evidence of none.")


def run_demo(out_dir: str | Path = "runs/demo", report_html: str | Path = "reports/demo.html",
             quick: bool = False, seeds: int = 1, progress: bool = True,
             device: str = "auto") -> Path:
    """Train, evaluate, analyse and report the demo's sweep; returns the report's path.

    A quick demo and a full one keep their runs apart (``<out_dir>/quick``), since their
    budgets differ and a finished run is never retrained. ``device`` (auto, cpu, cuda, cuda:N)
    is where the runs train, are evaluated and are analysed.
    """
    out_dir = Path(out_dir) / ("quick" if quick else "full")
    return run_sweep(demo_spec(quick, seeds), out_dir, progress=progress, report_html=report_html,
                     device=device)
