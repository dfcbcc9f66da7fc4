"""`rascal embed`: a checkpoint's embeddings of a split, written as the `.npz` that `rascal analyze`
reads."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from rascal_cli.errors import user_errors
from rascal_cli.options import foreign_checkpoint_options
from rascal_cli.paths import OutputPath
from rascal_train.names import EMBEDDINGS


@click.command("embed")
@click.argument("checkpoint", metavar="CKPT", type=click.Path(exists=True, path_type=Path))
@foreign_checkpoint_options("embed")
@click.option("--data-root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None,
              help="Where the dataset lives, if not where the checkpoint was trained.")
@click.option("--split", default="test", show_default=True, help="Split to embed.")
@click.option("--embedding", type=click.Choice(EMBEDDINGS), default="projection", show_default=True,
              help="The rows written as `embeddings`: the projection head's output or the backbone "
                   "features (the features are written as `features` either way).")
@click.option("--layer", default=None,
              help="Embed the pooled output of this named module of the encoder (e.g. "
                   "layer3) instead; an unknown name lists the available ones.")
@click.option("--out", "out", required=True, type=OutputPath(suffixes=(".npz",)),
              help="The .npz file to write (an existing .npz there is replaced).")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--no-cache", is_flag=True,
              help="Run the model again even if its embeddings are cached.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@user_errors
def command(checkpoint, dataset, data_root, split, embedding, layer, arch, out, batch_size,
            no_cache, quiet):
    """Write the embeddings of CKPT over a split to an .npz file, in split order.

    CKPT is a checkpoint of `rascal train` (or its run directory), a SupContrast .pth, a Lightning /
    solo-learn .ckpt or a torchvision ResNet state dict. The file holds `embeddings`, `features`,
    one `labels_<level>` and `class_names_<level>` per level, `levels` (coarse to fine) and, where
    the dataset has them, `attributes`: `rascal analyze FILE.npz` reads it back.
    """
    from rascal_geom.embeddings import extract_embeddings, save_npz
    from rascal_train.config import resume_path
    from rascal_train.files import check_output

    if out.suffix != ".npz":
        raise click.BadParameter(f"{out} must end in .npz (the format `rascal analyze` reads).",
                                 param_hint="--out")
    path = resume_path(checkpoint)
    check_output(out, inputs=[checkpoint, path], suffixes=(".npz",))  # before the work, not after
    emb = extract_embeddings(path, split=split, data_root=data_root, batch_size=batch_size,
                             use_cache=not no_cache, progress=not quiet, dataset=dataset, arch=arch,
                             layer=layer)
    if embedding == "feature":
        emb = dataclasses.replace(emb, embeddings=emb.features,
                                  source={**emb.source, "embedding": "feature"})
    click.echo(emb.source["load"], err=True)
    click.echo(str(save_npz(out, emb)))
