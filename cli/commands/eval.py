"""``rascal eval``: kNN and linear-probe accuracy, shot groups and corruption robustness of a
checkpoint."""

from __future__ import annotations

from pathlib import Path

import click

from rascal_cli.errors import user_errors
from rascal_cli.options import foreign_checkpoint_options
from rascal_cli.paths import OutputPath
from rascal_train.names import PROBE_PROTOCOLS


@click.command("eval")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--linear/--no-linear", default=True, show_default=True,
              help="Linear probe on the frozen encoder's features (top-1, top-5).")
@click.option("--knn/--no-knn", default=True, show_default=True,
              help="Weighted cosine kNN (k=20) of test features against training features.")
@click.option("--corruptions", is_flag=True,
              help="Accuracy of the linear probe under each of the 15 corruptions and 5 "
                   "severities, and the mean corruption error (CIFAR-sized test splits: "
                   "CIFAR-100-C files where present, else generated; ImageNet-style splits: "
                   "ImageNet-C, also reporting AlexNet-normalised mCE).")
@click.option("--corruptions-root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="CIFAR-100-C folder (default: <data-root>/CIFAR-100-C when it exists, else "
                   "generate), or for ImageNet-style splits the ImageNet-C folder of "
                   "<corruption>/<severity>/<wnid>/*.JPEG (default: <data-root>/ImageNet-C; "
                   "required).")
@click.option("--protocol", type=click.Choice(PROBE_PROTOCOLS), default="full_batch",
              show_default=True,
              help="full_batch: L-BFGS logistic regression on features extracted once; supcon: SGD "
                   "on augmented views of the frozen encoder (SupCon's protocol, slower).")
@click.option("--probe-epochs", type=click.IntRange(min=1), default=10, show_default=True,
              help="Epochs of the supcon-protocol probe.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True,
              help="Images per forward pass.")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path),
              help="Dataset directory (default: the one recorded in the checkpoint).")
@foreign_checkpoint_options("evaluate on")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--out", type=OutputPath(suffixes=(".json",)),
              help="Output JSON (default: <run_dir>/eval.json for a checkpoint of a run "
                   "directory).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@user_errors
def command(checkpoint, linear, knn, corruptions, corruptions_root, protocol, probe_epochs,
            batch_size, data_root, dataset, arch, device, out, quiet):
    """Evaluate CHECKPOINT (a .pt file of `rascal train`, or its run directory; or a SupContrast
    .pth, a Lightning / solo-learn .ckpt, a torchvision ResNet state dict) on frozen features.

    Writes the results as JSON and prints the file's path.

    \b
    Examples:
      rascal eval runs/synthetic-rascal-rank_agreement-s0
      rascal eval runs/cifar/checkpoints/epoch_0100.pt --corruptions --data-root ~/data
      rascal eval runs/cifar/last.pt --protocol supcon --no-knn --out supcon_eval.json
    """
    from rascal_geom.evaluation import default_eval_path, evaluate_checkpoint
    from rascal_train.config import resume_path
    from rascal_train.devices import device_scope, resolve_device
    from rascal_train.files import atomic_write_json, check_output
    from rascal_train.progress import console

    if corruptions_root is not None and not any(p.suffix == ".npy" or p.is_dir()
                                                for p in corruptions_root.iterdir()):
        raise click.ClickException(f"--corruptions-root {corruptions_root} holds no CIFAR-100-C "
                                   ".npy files and no ImageNet-C folders; pass the extracted "
                                   "folder, or drop the option to generate the corruptions.")
    path = resume_path(checkpoint)
    target = out if out is not None else default_eval_path(path)
    # before the work, not after
    check_output(target, inputs=[checkpoint, path], suffixes=(".json",))
    with device_scope(resolve_device(device)) as device:  # the kNN search follows --device too
        result = evaluate_checkpoint(path, data_root=data_root, linear=linear, knn=knn,
                                     corruptions=corruptions, protocol=protocol, device=device,
                                     progress=not quiet, batch_size=batch_size,
                                     probe_epochs=probe_epochs, corruptions_root=corruptions_root,
                                     dataset=dataset, arch=arch)
    atomic_write_json(target, result)
    if not quiet:
        click.echo(result["load"], err=True)
        console.print(_summary(result))
    click.echo(str(target))


def _summary(result: dict):
    """A rich table of the headline numbers (to stderr; stdout carries only the output path)."""
    from rich.table import Table

    table = Table(title=f"epoch {result['epoch']}, level {result['level']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name in ("knn", "linear"):
        if result[name] is not None:
            for key in ("top1", "top5"):
                table.add_row(f"{name} {key}", f"{result[name][key]:.4f}")
    for group, acc in (result["shot_groups"] or {}).items():
        table.add_row(f"{group}-shot top1", "n/a" if acc is None else f"{acc:.4f}")
    if result["corruptions"] is not None:
        table.add_row("corruption mean accuracy", f"{result['corruptions']['mean_accuracy']:.4f}")
        table.add_row("mean corruption error",
                      f"{result['corruptions']['mean_corruption_error']:.4f}")
        if result["corruptions"].get("mean_corruption_error_alexnet") is not None:
            table.add_row("mCE (AlexNet-normalised)",
                          f"{result['corruptions']['mean_corruption_error_alexnet']:.4f}")
    return table
