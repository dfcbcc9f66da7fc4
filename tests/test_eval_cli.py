"""`rascal eval`: exit codes and one-line errors, and a checkpoint evaluated end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import rascal_train.engine
from rascal_cli.main import cli
from rascal_train.config import TrainConfig
from rascal_train.datasets.base import get_dataset
from rascal_train.files import atomic_torch_save, atomic_write_json
from rascal_train.models import CHECKPOINT_FORMAT, build_model


def run(*args):
    return CliRunner().invoke(cli, ["eval", *map(str, args)])


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.output


def test_missing_checkpoint(tmp_path):
    assert_one_line_error(run(tmp_path / "nope.pt"), "does not exist")


def test_non_checkpoint_files(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint\n")
    assert_one_line_error(run(text), str(text))
    other = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(3)}, other)
    assert_one_line_error(run(other), "rascal.ckpt/1")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory with an epoch-1 checkpoint of an untrained small CNN on synthetic data."""
    root = tmp_path_factory.mktemp("run")
    config = TrainConfig(dataset="synthetic", arch="small_cnn", loss="supcon", epochs=1,
                         num_classes=8, out=str(root)).validated().to_dict()
    ckpt = {"format": CHECKPOINT_FORMAT, "config": config, "epoch": 1,
            "model": build_model(config).state_dict(), "step": 1}
    atomic_write_json(root / "config.json", config)
    atomic_torch_save(ckpt, root / "checkpoints" / "epoch_0001.pt")
    return root


@pytest.fixture(scope="module")
def splits():
    """Long-tailed 8-class training split (110, 25, 5 x 6 images) and a 64-image test split."""
    train = get_dataset("synthetic", split="train")
    test = get_dataset("synthetic", split="test")
    keep = np.concatenate([np.flatnonzero(train.targets == c)[:n]
                           for c, n in enumerate([110, 25] + [5] * 6)])
    train = train.subset(np.sort(keep))
    return train, test.subset(np.arange(64))


@pytest.fixture
def small_splits(splits, monkeypatch):
    """`evaluate_checkpoint` sees :func:`splits` instead of the full synthetic set."""
    monkeypatch.setattr(rascal_train.engine, "load_datasets", lambda config: splits)
    return splits


def test_bad_flags(run_dir):
    ckpt = run_dir / "checkpoints" / "epoch_0001.pt"
    assert_one_line_error(run(ckpt, "--no-knn", "--no-linear"), "Nothing to evaluate")
    assert_one_line_error(run(ckpt, "--corruptions", "--no-linear"), "linear probe")
    bad = run(ckpt, "--protocol", "svm")
    assert bad.exit_code == 2 and "'svm' is not one of" in bad.output
    assert_one_line_error(run(ckpt, "--device", "tpu", "-q"), "Unknown device")


def test_eval_writes_run_eval_json(run_dir, small_splits):
    train, test = small_splits
    result = run(run_dir, "-q")  # a run directory means its checkpoints/last.pt ...
    assert result.exit_code == 1  # ... which this run does not have
    result = run(run_dir / "checkpoints" / "epoch_0001.pt", "-q", "--device", "cpu")
    assert result.exit_code == 0, result.output
    out = run_dir / "eval.json"
    assert result.output.strip() == str(out)
    data = json.loads(out.read_text())
    assert set(data) == {"protocol", "checkpoint", "epoch", "level", "knn", "linear", "shot_groups",
                         "corruptions", "checkpoint_layout", "preprocessing", "load"}
    assert (data["checkpoint_layout"] == "rascal"
            and data["preprocessing"]["mean"] == [0.485, 0.456, 0.406])
    card = data["protocol"]
    assert (card["split"], card["features"], card["epoch"], card["seed"]) == ("test", "backbone",
                                                                              1, 0)
    assert card["checkpoint"].endswith("epoch_0001.pt")
    assert card["knn"] == {"bank": "train split (training targets)", "k": 20, "temperature": 0.07}
    assert card["linear"]["protocol"] == "full_batch" and card["linear"]["weight_decay"] == 1e-4
    assert card["linear"]["max_iter"] == 100
    assert data["epoch"] == 1 and data["level"] == "family" and data["corruptions"] is None
    assert data["knn"]["k"] == 20 and data["linear"]["protocol"] == "full_batch"
    for name in ("knn", "linear"):
        assert 0 <= data[name]["top1"] <= data[name]["top5"] <= 1
    # Classes 0 (110 images) many, 1 (25) medium, 2-7 (5 each) few: the group accuracies,
    # weighted by their test counts, give back the overall top-1.
    labels = test.labels["family"]
    counts = np.array([(labels == 0).sum(), (labels == 1).sum(), (labels >= 2).sum()])
    groups = data["shot_groups"]
    overall = np.dot(counts, [groups["many"], groups["medium"], groups["few"]]) / counts.sum()
    assert overall == pytest.approx(data["linear"]["top1"])


def test_eval_out_and_supcon_protocol(run_dir, small_splits, tmp_path, monkeypatch):
    train, test = small_splits
    # The SupCon protocol augments every training image each epoch: 32 images keep this quick.
    monkeypatch.setattr(rascal_train.engine, "load_datasets",
                        lambda config: (train.subset(np.arange(0, len(train), 5)[:32]), test))
    out = tmp_path / "sub" / "e.json"
    result = run(run_dir / "checkpoints" / "epoch_0001.pt", "-q", "--device", "cpu", "--no-knn",
                 "--protocol", "supcon", "--probe-epochs", "1", "--out", out)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["knn"] is None and data["linear"]["protocol"] == "supcon"
    assert data["protocol"]["knn"] is None
    assert {k: data["protocol"]["linear"][k]
            for k in ("epochs", "lr", "momentum", "weight_decay")} == \
        {"epochs": 1, "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0}
    assert 0 <= data["linear"]["top1"] <= data["linear"]["top5"] <= 1
