"""``rascal demo``: the whole pipeline on the built-in synthetic set, on a laptop CPU."""

from __future__ import annotations

from pathlib import Path

import click

from rascal_cli.errors import user_errors
from rascal_cli.paths import OutputPath


@click.command("demo")
@click.option("--out", type=OutputPath(folder=True), default=Path("runs/demo"),
              show_default=True, help="Where the demo's runs go.")
@click.option("--report", "report_html", type=OutputPath(suffixes=(".html",)),
              default=Path("reports/demo.html"), show_default=True,
              help="The HTML report to write.")
@click.option("--quick", is_flag=True,
              help="A smaller set and fewer epochs (about a minute); for a smoke test.")
@click.option("--seeds", type=click.IntRange(1, 10), default=1, show_default=True,
              help="Seeds per loss; differences need several to be told apart from seed noise.")
@click.option("--device", default="auto", show_default=True,
              help="Where the runs train and are evaluated: auto, cpu, cuda or cuda:N.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@user_errors
def command(out, report_html, quick, seeds, device, quiet):
    """Train CE, SupCon and RASCAL on the synthetic set with one budget, analyse, and report.

    The synthetic set has families (the training labels) made of visually distinct variants and
    per-image attributes, so the report can show whether each loss keeps the variants and
    attributes apart inside a family. Interrupted, it resumes where it stopped.
    """
    from rascal_geom.workflows import run_demo, seeds_note
    from rascal_train.devices import resolve_device

    resolve_device(device)  # a bad --device fails here, before anything trains
    report = run_demo(out, report_html, quick=quick, seeds=seeds, progress=not quiet, device=device)
    click.echo(seeds_note(seeds), err=True)
    click.echo(f"Report: {report.resolve()}")
