"""Options shared by the commands that run a checkpoint's encoder (analyze, embed, eval)."""

from __future__ import annotations

import click


def foreign_checkpoint_options(action: str):
    """``--dataset`` and ``--arch``: what a checkpoint written by other code may not say itself.

    ``action`` completes "Dataset to ..." in the help, e.g. ``"embed"`` or ``"evaluate on"``.
    """
    dataset = click.option(
        "--dataset", default=None,
        help=f"Dataset to {action} (default: the one the checkpoint names; needed for a "
             "torchvision state dict or a checkpoint of a dataset not read here).")
    arch = click.option(
        "--arch", default=None,
        help="Architecture of a foreign checkpoint whose weights do not say it "
             "(resnet18, resnet50, cifar_resnet18, cifar_resnet50).")
    return lambda command: dataset(arch(command))
