"""`rascal compare`: CKA and shape distances between representations of the same samples."""

from __future__ import annotations

from pathlib import Path

import click
from rascal_cli.errors import user_errors
from rascal_cli.paths import OutputPath

from rascal_train.names import EMBEDDINGS


@click.command("compare")
@click.argument(
    "sources",
    nargs=-1,
    required=True,
    metavar="A B [C ...]",
    type=click.Path(exists=True, path_type=Path),
)
@click.option(
    "--layers",
    default=None,
    metavar="NAME,NAME,...|all",
    help="Layer x layer CKA map between two models: named encoder modules (see `rascal analyze "
    "--layer`), or `all` for the encoder's top-level children (a ResNet's blocks).",
)
@click.option(
    "--out",
    "out_html",
    type=OutputPath(suffixes=(".html",)),
    default=None,
    help="HTML page to write; NAME.json goes beside it. Default: reports/compare_<inputs>.html.",
)
@click.option(
    "--split", default="test", show_default=True, help="Split to embed (checkpoints only)."
)
@click.option(
    "--data-root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Where the checkpoints' dataset lives, if it moved.",
)
@click.option(
    "--embedding",
    type=click.Choice(EMBEDDINGS),
    default="projection",
    show_default=True,
    help="Compare projection-head outputs or backbone features.",
)
@click.option(
    "--alpha",
    type=click.FloatRange(0.0, 1.0),
    default=1.0,
    show_default=True,
    help="Partial whitening of the shape distances (1: rotations only; 0: any linear map).",
)
@click.option(
    "--seed",
    type=click.IntRange(0, 2**32 - 1),
    default=0,
    show_default=True,
    help="Seed of the minibatch CKA shuffle (large sets only).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@user_errors
def command(
    sources, layers, out_html, split, data_root, embedding, alpha, seed, batch_size, device, quiet
):
    """Compare representations A B [C ...] of the same samples.

    Each input is a checkpoint, a run directory (its last checkpoint) or an .npz embedding file; all
    must hold the same samples with the same labels. Writes the matrices of linear CKA (biased and
    unbiased HSIC) and shape distances (angular, Procrustes) as NAME.json and as heatmaps in
    NAME.html.
    """
    from rascal_geom.compare import compare, render_comparison
    from rascal_geom.report import default_report_name
    from rascal_train.devices import device_scope, resolve_device
    from rascal_train.files import atomic_write_json, check_output

    if len(sources) < 2:
        raise click.UsageError("compare needs at least two inputs: A B [C ...].")
    if out_html is None:
        out_html = Path("reports") / f"compare_{default_report_name(sources)}.html"
    check_output(out_html, inputs=sources, suffixes=(".html",))
    check_output(out_html.with_suffix(".json"), inputs=sources, suffixes=(".json",))
    check_output(out_html.parent / f"{out_html.stem}_figures", folder=True, inputs=sources)
    device = resolve_device(device)
    with device_scope(device):
        result = compare(
            sources,
            layers=layers,
            split=split,
            data_root=data_root,
            embedding=embedding,
            alpha=alpha,
            seed=seed,
            batch_size=batch_size,
            device=device,
            progress=not quiet,
        )
    json_path = atomic_write_json(out_html.with_suffix(".json"), result)
    html = render_comparison(result, out_html)
    click.echo(str(json_path))
    click.echo(str(html))
