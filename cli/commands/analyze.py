"""`rascal analyze`: structure diagnostics of a checkpoint, a run directory or an embedding file."""

from __future__ import annotations

from pathlib import Path

import click
from rascal_cli.errors import user_errors
from rascal_cli.options import foreign_checkpoint_options
from rascal_cli.paths import OutputPath
from rascal_geom.hierarchies import list_hierarchies
from rascal_train.names import EMBEDDINGS


def _default_name(source: Path) -> str:
    """reports/<name>.html: the run's name for checkpoints inside a run, else the file's stem."""
    if source.is_dir():
        return source.resolve().name
    parent = source.resolve().parent
    run = parent.parent if parent.name == "checkpoints" else parent
    if source.suffix == ".pt" and (run / "config.json").is_file():
        return f"{run.name}_{source.stem}"
    return source.stem


@click.command("analyze")
@click.argument("source", metavar="CKPT_OR_EMBEDDINGS",
                type=click.Path(exists=True, path_type=Path))
@click.option("--hierarchy", type=click.Choice(list_hierarchies()), default=None,
              help="Which label levels exist and which are compared. Default: the checkpoint's "
                   "dataset, or the embedding file's own levels.")
@click.option("--data-root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None,
              help="Where the checkpoint's dataset lives, if not where it was trained.")
@click.option("--split", default="test", show_default=True,
              help="Split to embed (checkpoints only).")
@foreign_checkpoint_options("embed a checkpoint on")
@click.option("--layer", default=None,
              help="Analyse the pooled output of this named module of the encoder "
                   "(e.g. layer3); an unknown name lists the available ones.")
@click.option("--compare", "compare", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Another checkpoint (or .npz) of the same samples; repeat it. Gives the "
                   "rank-stability curve over training. A run directory uses its per-epoch "
                   "checkpoints by default.")
@click.option("--out", "out_html", type=OutputPath(suffixes=(".html",)), default=None,
              help="HTML page to write; NAME.json goes beside it. Default: reports/<name>.html.")
@click.option("--k", type=click.IntRange(min=1), default=20, show_default=True,
              help="Neighbours for kNN, hierarchy retention and attribute consistency.")
@click.option("--embedding", type=click.Choice(EMBEDDINGS), default="projection",
              show_default=True,
              help="Analyse the projection head's output or the backbone features.")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
              help="Seed of every subsample.")
@click.option("--no-umap", is_flag=True,
              help="Skip the 2-D UMAP map (saves ~10 s, most of it numba compiling UMAP).")
@click.option("--no-cache", is_flag=True,
              help="Run the model again even if its embeddings are cached.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--knn", type=click.Choice(["auto", "exact", "approx"]), default="auto",
              show_default=True,
              help="Neighbour search over all rows: exact, approximate (IVF, checked against exact "
                   "search on 1,000 seeded queries: recall and metric moves in the JSON and the "
                   "report), or auto (approximate from 100,000 rows on).")
@click.option("--device", default="auto", show_default=True,
              help="Where a checkpoint's encoder and the neighbour search run: auto, cpu, cuda or "
                   "cuda:N.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@user_errors
def command(source, hierarchy, data_root, split, dataset, arch, layer, compare, out_html, k,
            embedding, seed, no_umap, no_cache, batch_size, knn, device, quiet):
    """Measure the structure inside classes of CKPT_OR_EMBEDDINGS.

    CKPT_OR_EMBEDDINGS is a checkpoint (.pt written by `rascal train`; a SupContrast .pth, a
    Lightning / solo-learn .ckpt or a torchvision ResNet state dict, preprocessed as their code
    does), a run directory, or an embedding file (.npz with `embeddings`, `labels` or one
    `labels_<level>` array per level, optional `levels`, `class_names_<level>`, `attributes`,
    `attribute_names`, `features`). Writes NAME.json (every number, with the settings that produced
    it) and NAME.html; for a checkpoint of a run, also <run>/analysis.json.
    """
    from rascal_geom.analysis import analyze
    from rascal_geom.neighbors import backend_note
    from rascal_geom.report import render_analysis
    from rascal_train.devices import device_scope, resolve_device
    from rascal_train.files import atomic_write_json, check_output

    if out_html is None:
        out_html = Path("reports") / f"{_default_name(source)}.html"
    inputs = [source, *compare]
    # Both outputs are checked before the work (minutes of embedding, kNN and UMAP), not after it.
    check_output(out_html, inputs=inputs, suffixes=(".html",))
    check_output(out_html.with_suffix(".json"), inputs=inputs, suffixes=(".json",))
    knn_ks = tuple(sorted({1, k, 200}))
    resolved = resolve_device(device)
    with device_scope(resolved):
        # The option as given: unpinned ("auto", "cuda"), the neighbour search may use every GPU.
        result = analyze(source, hierarchy=hierarchy, data_root=data_root, split=split,
                         compare=compare, k=k, knn_ks=knn_ks, seed=seed, embedding=embedding,
                         umap=not no_umap, use_cache=not no_cache, batch_size=batch_size,
                         progress=not quiet, device=device, knn=knn, dataset=dataset, arch=arch,
                         layer=layer)
    # Said after the work: a bad input must end in its one error line, nothing before it.
    click.echo(backend_note(device=resolved), err=True)
    if result["source"]["load"]:
        click.echo(result["source"]["load"], err=True)
    json_path = atomic_write_json(out_html.with_suffix(".json"), result)
    run_dir = result["source"]["run_dir"]
    if run_dir is not None:
        atomic_write_json(Path(run_dir) / "analysis.json", result)
    html = render_analysis(result, out_html)
    head = result["headline"]
    shown = {f"kNN top-1 ({result['settings']['level']})": head["knn_top1"],
             "geodesic variance": head["geodesic_variance"],
             "collapse ratio": head["collapse_ratio"], "rank stability": head["rank_stability"]}
    click.echo("  ".join(f"{name}: {value:.4f}" for name, value in shown.items()
                         if value is not None), err=True)
    for warning in result["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    click.echo(str(json_path))
    click.echo(str(html))
