"""The user-facing names are defined once (``rascal_train.names``): the CLI offers them, every
validator accepts them, and listing them costs no torch import."""

import subprocess
import sys

import click
import pytest
import torch

from rascal_cli.main import cli
from rascal_geom.hierarchies import list_hierarchies
from rascal_train import names
from rascal_train.cache import EmbeddingCache
from rascal_train.config import TrainConfig
from rascal_train.devices import autocast_dtype
from rascal_train.losses import RascalLoss
from rascal_train.models import build_model


def _choices(command: str, option: str) -> tuple[str, ...]:
    cmd = cli.get_command(None, command)
    param = next(p for p in cmd.params if f"--{option}" in p.opts)
    assert isinstance(param.type, click.Choice)
    return tuple(param.type.choices)


@pytest.mark.parametrize("command, option, expected", [
    ("train", "loss", names.LOSSES),
    ("train", "weights", names.WEIGHT_SOURCES),
    ("train", "cache", names.CACHE_POLICIES),
    ("train", "precision", names.PRECISIONS),
    ("analyze", "embedding", names.EMBEDDINGS),
    ("embed", "embedding", names.EMBEDDINGS),
    ("eval", "protocol", names.PROBE_PROTOCOLS),
    ("analyze", "hierarchy", tuple(list_hierarchies())),
])
def test_cli_choices_are_the_defined_names(command, option, expected):
    assert _choices(command, option) == expected


@pytest.mark.parametrize("loss", names.LOSSES)
def test_every_loss_builds_a_model_and_a_config(loss):
    config = TrainConfig(loss=loss).validated()
    model = build_model({**config.to_dict(), "num_classes": 3})
    assert model.loss == loss
    assert (model.head is None) == (loss == "ce")


@pytest.mark.parametrize("source", names.WEIGHT_SOURCES)
def test_every_weight_source_is_a_loss_and_a_config(source):
    assert TrainConfig(loss="rascal", weights=source).validated().weights == source
    z = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    z = torch.nn.functional.normalize(z, dim=1)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2])
    cached = torch.nn.functional.normalize(z + 0.1, dim=1)
    loss = RascalLoss(weights=source)(z, labels, cached, torch.ones(8, dtype=torch.bool))
    assert torch.isfinite(loss)


@pytest.mark.parametrize("policy", names.CACHE_POLICIES)
def test_every_cache_policy_is_a_cache_and_a_config(policy):
    assert EmbeddingCache(4, 2, policy=policy).policy == policy
    assert TrainConfig(loss="rascal", cache=policy).validated().cache == policy


@pytest.mark.parametrize("precision", names.PRECISIONS)
def test_every_precision_is_accepted(precision):
    assert TrainConfig(precision=precision).validated().precision == precision
    assert autocast_dtype(precision, torch.device("cpu")) is None  # a CPU trains in fp32


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["analyze", "--help"]])
def test_help_imports_no_torch(args):
    # A fresh interpreter: this test process has torch loaded already.
    code = ("import sys; from click.testing import CliRunner; from rascal_cli.main import cli; "
            f"r = CliRunner().invoke(cli, {args!r}); assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
