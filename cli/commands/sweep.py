"""``rascal sweep``: a grid of training runs over seeds, then the comparison report."""

from __future__ import annotations

from pathlib import Path

import click

from rascal_cli.errors import user_errors
from rascal_cli.paths import OutputPath


@click.command("sweep")
@click.argument("grid", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=OutputPath(folder=True),
              help="Where the runs and report go (default: runs/sweeps/<grid name>).")
@click.option("--dry-run", is_flag=True, help="List the runs and their status; train nothing.")
@click.option("--print-commands", is_flag=True,
              help="Print one `rascal train` (or `torchrun`) command per unfinished run, for a job "
                   "array.")
@click.option("--array", is_flag=True,
              help="With --print-commands: every run, finished ones included, in grid order, so "
                   "line i is run i (a job array's task i); each line skips, resumes or starts its "
                   "run when it runs.")
@click.option("--no-analysis", is_flag=True,
              help="Train only; skip evaluation, analysis and the report.")
@click.option("--device", default=None,
              help="Where every run trains and is evaluated: auto, cpu, cuda or cuda:N "
                   "(default: the grid's `device`, else auto).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@user_errors
def command(grid, out, dry_run, print_commands, array, no_analysis, device, quiet):
    """Expand GRID.yaml into named runs and train them one after another.

    Finished runs are skipped and half-finished ones resumed, so running the same command again
    after an interruption continues the sweep. Afterwards each run is evaluated and analysed and
    the runs are compared in `<out>/report.html`, grouped over seeds with confidence intervals.
    The `--array` output suits a job array such as `examples/slurm/sweep_array.sbatch`.

    \b
    Examples:
      rascal sweep examples/weight_source.yaml
      rascal sweep examples/cache_policy.yaml --print-commands > jobs.txt
      rascal sweep examples/cache_policy.yaml --print-commands --array > jobs.txt
    """
    from rascal_train.files import check_output
    from rascal_train.sweep import array_command, expand_grid, load_grid, run_status, train_command

    spec = load_grid(grid)
    runs = expand_grid(spec)
    out = out or Path("runs") / "sweeps" / spec["name"]
    check_output(out, folder=True)
    if print_commands and array:
        for run in runs:
            click.echo(array_command(run, out / run.name, gpus=int(spec.get("gpus", 1))))
        return
    if print_commands:
        for run in runs:
            if run_status(out / run.name, run.options) != "done":
                click.echo(train_command(run, out / run.name, gpus=spec.get("gpus", 1)))
        return
    if dry_run:
        for run in runs:
            click.echo(f"{run_status(out / run.name, run.options):8s} {run.name}")
        click.echo(f"{len(runs)} runs in {out}")
        return
    if device is not None:
        from rascal_train.devices import resolve_device

        resolve_device(device)  # a bad --device fails here, before anything trains
    if not no_analysis:
        check_output(out / "report.html", suffixes=(".html",))
    # Imported here, so that --dry-run and --print-commands skip the analysis stack.
    from rascal_geom.workflows import run_sweep

    report = run_sweep(spec, out, progress=not quiet, analyze=not no_analysis, device=device)
    click.echo(f"Report: {report}" if report else f"Trained {len(runs)} runs in {out}")
