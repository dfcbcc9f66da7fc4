"""`rascal train --tensorboard`: the scalars of train_log.jsonl, as TensorBoard event files."""

import json
import sys

import pytest
from click.testing import CliRunner
from rascal_cli.main import cli

from test_train import TINY

pytest.importorskip("tensorboard")


def _train(out, *extra):
    return CliRunner().invoke(cli, ["train", "--dataset", TINY, "--loss", "supcon", "--epochs", "2",
                                    "--batch-size", "16", "--limit", "48", "--log-every", "1",
                                    "--quiet", "--out", str(out), *extra])


def test_tensorboard_events_hold_the_log_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = _train(tmp_path / "run", "--tensorboard")
    assert result.exit_code == 0, result.output
    log = [json.loads(line)
           for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    steps = [r for r in log if r["kind"] == "step"]
    loss = events.Scalars("step/loss")
    assert [e.step for e in loss] == [r["step"] for r in steps] == [1, 2, 3, 4, 5, 6]
    assert [e.value for e in loss] == pytest.approx([r["loss"] for r in steps], rel=1e-6)
    epoch_lr = events.Scalars("epoch/lr")
    assert [(e.step, e.value) for e in epoch_lr] == [(r["step"], pytest.approx(r["lr"], rel=1e-6))
                                                     for r in log if r["kind"] == "epoch"]
    epochs = [r for r in log if r["kind"] == "epoch"]
    assert [e.value for e in events.Scalars("epoch/knn_acc")] == pytest.approx(
        [r["knn_acc"] for r in epochs])
    # A null (no rank stability before the second epoch) is no point on the curve.
    assert epochs[0]["rank_stability"] is None
    assert [e.step for e in events.Scalars("epoch/rank_stability")] == [epochs[1]["step"]]


def test_without_tensorboard_installed_it_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    result = _train(tmp_path / "run", "--tensorboard")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines() == [
        "Error: --tensorboard needs the tensorboard package; install it with pip install "
        "'rascal[tensorboard]' (or pip install tensorboard), or drop --tensorboard."]
