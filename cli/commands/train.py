"""``rascal train``: pretrain an encoder with RASCAL, SupCon, SimCLR or cross-entropy."""

from __future__ import annotations

import os
from pathlib import Path

import click

from rascal_cli.errors import user_errors
from rascal_cli.paths import OutputPath
from rascal_train.config import MAX_SEED
from rascal_train.names import CACHE_POLICIES, LOSSES, PRECISIONS, WEIGHT_SOURCES


@click.command("train")
@click.option("--config", "config_file",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON or YAML file of config keys (flags given here win).")
@click.option("--dataset", help="Dataset name (default: synthetic).")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path),
              help="Directory that holds the dataset.")
@click.option("--label-level", help="Hierarchy level to train on (default: the dataset's).")
@click.option("--loss", type=click.Choice(LOSSES), help="Training loss (default: rascal).")
@click.option("--weights", type=click.Choice(WEIGHT_SOURCES),
              help="RASCAL's positive-weight source, the ablation axis (default: rank_agreement).")
@click.option("--cache", type=click.Choice(CACHE_POLICIES),
              help="RASCAL's embedding-cache policy (default: last_seen).")
@click.option("--arch",
              help="Encoder: small_cnn, cifar_resnet18, cifar_resnet50, resnet18, resnet50.")
@click.option("--epochs", type=click.IntRange(min=1), help="Training epochs (default: 100).")
@click.option("--batch-size", type=click.IntRange(min=2),
              help="Images per step over all processes (default: 256).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True),
              help="Peak learning rate (default: 0.125).")
@click.option("--warmup-epochs", type=click.FloatRange(min=0),
              help="Linear warm-up length in epochs (default: a tenth of the run, at most 10).")
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True),
              help="Softmax temperature (default: 0.1).")
@click.option("--limit", type=click.IntRange(min=1),
              help="Train on the first N training samples only.")
@click.option("--label-noise", type=click.FloatRange(0, 1, max_open=True),
              help="Symmetric label-noise rate.")
@click.option("--imbalance", type=click.FloatRange(min=1), help="Long-tail imbalance factor.")
@click.option("--device", help="auto (default), cpu, cuda or cuda:N.")
@click.option("--precision", type=click.Choice(PRECISIONS),
              help="Autocast on CUDA (default auto: bf16 from compute capability 8, else fp16 with "
                   "a gradient scaler); CPU trains in fp32.")
@click.option("--seed", type=click.IntRange(0, MAX_SEED),
              help="The one seed of the run (default: 0).")
@click.option("--out", type=OutputPath(folder=True),
              help="Run directory (default: runs/<dataset>-<loss>[-<weights>]-s<seed>).")
@click.option("--resume", type=click.Path(exists=True, path_type=Path),
              help="Continue a run: its checkpoint, or its run directory (meaning "
                   "checkpoints/last.pt). Running the same command again also continues a run.")
@click.option("--monitor/--no-monitor", default=None,
              help="Epoch-end kNN accuracy and rank stability (default: on).")
@click.option("--log-every", type=click.IntRange(min=1),
              help="Steps between step records in the log (default: 10).")
@click.option("--tensorboard", is_flag=True,
              help="Also write the log's scalars as TensorBoard events in <run>/tensorboard (needs "
                   "the tensorboard extra; train_log.jsonl stays the record).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@user_errors
def command(config_file, quiet, tensorboard, **flags):
    """Train an encoder; writes config.json, train_log.jsonl and checkpoints to a run directory.

    \b
    Examples:
      rascal train --dataset synthetic --loss rascal --epochs 20
      rascal train --config cifar100.yaml --weights current_rank --seed 1
      rascal train --resume runs/synthetic-rascal-rank_agreement-s0
      torchrun --nproc-per-node 4 --no-python rascal train --dataset cifar100 --data-root ~/data
    """
    from rascal_geom.monitor import GeometryMonitor
    from rascal_train.config import resolve_config
    from rascal_train.engine import train

    flags = {key: str(value) if isinstance(value, Path) else value for key, value in flags.items()}
    config = resolve_config(config_file, **flags)
    # The geometry monitor measures only when the config's `monitor` is on (--monitor, the default).
    run_dir = train(config, progress=not quiet, tensorboard=tensorboard,
                    callbacks=[GeometryMonitor()])
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 speaks
        click.echo(str(run_dir))
