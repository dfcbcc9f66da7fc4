"""The demo: CE, SupCon and RASCAL on the synthetic set with one budget, as a small sweep."""

from __future__ import annotations

from pathlib import Path

# One budget for every loss, sized so the default demo finishes in a few minutes on 2 CPU cores.
DEMO_BUDGET = {"dataset": "synthetic", "arch": "small_cnn", "epochs": 5, "batch_size": 128,
               "lr": 0.1, "device": "auto"}
QUICK_BUDGET = {**DEMO_BUDGET, "epochs": 3, "limit": 768}


def demo_spec(quick: bool = False, seeds: int = 1) -> dict:
    """The demo's sweep: the three losses of the proposal over ``seeds`` seeds."""
    return {"name": "demo", "baseline": "supcon", "base": dict(QUICK_BUDGET if quick else DEMO_BUDGET),
            "grid": {"loss": ["ce", "supcon", "rascal"], "seed": list(range(seeds))}}


def seeds_note(seeds: int) -> str:
    """What a demo with ``seeds`` seeds per loss allows one to conclude."""
    if seeds == 1:
        return ("Ran 1 seed per loss: the report gives each loss's numbers, but with one seed no "
                "difference between losses can be told apart from seed-to-seed variation, so none is "
                "claimed. `rascal demo --seeds 3` gives 95% intervals for every difference.")
    return (f"Ran {seeds} seeds per loss: a difference counts only where its 95% interval (paired t "
            f"over the {seeds} seeds) excludes 0, and the report marks the others '≈ 0'. With "
            f"{seeds} seeds the intervals are wide; a difference not marked is not evidence of none.")


def run_demo(out_dir: str | Path = "runs/demo", report_html: str | Path = "reports/demo.html",
             quick: bool = False, seeds: int = 1, progress: bool = True, device: str = "auto") -> Path:
    """Train, evaluate, analyse and report; returns the report's path.

    A quick demo and a full one keep their runs apart (``<out_dir>/quick``), since their
    budgets differ and a finished run is never retrained. ``device`` (auto, cpu, cuda, cuda:N)
    is where the runs train, are evaluated and are analysed.
    """
    from rascal_train.sweep import run_sweep

    out_dir = Path(out_dir) / ("quick" if quick else "full")
    return run_sweep(demo_spec(quick, seeds), out_dir, progress=progress, report_html=report_html, device=device)
