"""`rascal report`: compare runs in one self-contained HTML page (and booktabs tables)."""

from __future__ import annotations

from pathlib import Path

import click

from rascal_cli.errors import user_errors
from rascal_cli.paths import OutputPath


@click.command("report")
@click.argument("inputs", nargs=-1, required=True, metavar="RUN_OR_METRICS...",
                type=click.Path(exists=True, path_type=Path))
@click.option("--baseline", metavar="NAME",
              help="Run group to compare against: a group name (run name without its seed suffix) "
                   "or a loss such as supcon. Default: the first group.")
@click.option("--out", "out_html", type=OutputPath(suffixes=(".html",)), default=None,
              help="HTML file to write. Default: reports/<runs>.html. Figures go to "
                   "<stem>_figures/ beside it.")
@click.option("--latex", "latex_dir", type=OutputPath(folder=True), default=None,
              help="Also write booktabs tables (headline, geometry, weights, config) as .tex files "
                   "here.")
@click.option("--name", "names", multiple=True, metavar="GROUP=NAME",
              help="Show a run group (or the one group of a loss) under this name in tables and "
                   "figures, e.g. --name rascal='RASCAL (ours)'. Repeatable. Default: CE, SupCon, "
                   "RASCAL (<weights>).")
@click.option("--similarity", "similarity_json", type=click.Path(exists=True, dir_okay=False,
                                                                 path_type=Path), default=None,
              help="The JSON of `rascal compare RUN_DIR ...` over these runs (a sweep writes it "
                   "as similarity.json): adds the runs' CKA heatmap and its mean within and "
                   "between configurations.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@user_errors
def command(inputs, baseline, out_html, latex_dir, names, similarity_json, quiet):
    """Compare runs (run directories or analysis JSON files) in one HTML report.

    Runs that differ only in seed are grouped: every number is mean ± std over seeds with n,
    and every difference from the baseline carries a 95% interval (paired t when seeds match,
    Welch t otherwise), marked when it contains 0.
    """
    from rascal_geom.report import default_report_name, render_report
    from rascal_geom.runs import read_json_object
    from rascal_train.files import check_output

    seen = {}
    for path in inputs:
        first = seen.setdefault(path.resolve(), path)
        if first is not path:
            raise click.ClickException(f"{path} is given twice (as {first}); one run counted twice "
                                       "would pass for two seeds, so list each run once.")
    mapping = {}
    for item in names:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise click.BadParameter(f"{item!r} is not GROUP=NAME; write e.g. "
                                     "--name supcon=SupCon.", param_hint="--name")
        mapping[key] = value
    if out_html is None:
        out_html = Path("reports") / f"{default_report_name(inputs)}.html"
    check_output(out_html, inputs=inputs, suffixes=(".html",))
    check_output(out_html.parent / f"{out_html.stem}_figures", folder=True, inputs=inputs)
    similarity = None if similarity_json is None else read_json_object(similarity_json)
    path = render_report(list(inputs), baseline=baseline, out_html=out_html, latex_dir=latex_dir,
                         progress=not quiet, names=mapping, similarity=similarity)
    click.echo(str(path))
