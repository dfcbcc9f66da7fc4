"""Exact resume: a run stopped after epoch 1 and resumed ends bit-identical to a straight run."""

import json

import pytest
import torch

from rascal_train import engine
from rascal_train.files import load_checkpoint
from test_train import _stop_after_first_epoch, tiny_config



@pytest.mark.parametrize("cache", ["last_seen", "epoch_end"])
def test_resumed_run_is_bit_identical(tmp_path, monkeypatch, cache):
    straight = engine.train(tiny_config(tmp_path / "a", loss="rascal", cache=cache, limit=32),
                            progress=False)

    config = tiny_config(tmp_path / "b", loss="rascal", cache=cache, limit=32)
    with monkeypatch.context() as m:
        _stop_after_first_epoch(m)
        with pytest.raises(KeyboardInterrupt):
            engine.train(config, progress=False)
    run_dir = tmp_path / "b" / "run"
    # a killed run may leave step records of the epoch in progress and a torn line
    with open(run_dir / "train_log.jsonl", "a") as fh:
        fh.write(json.dumps({"kind": "step", "epoch": 2, "step": 3, "loss": 9.0})
                 + "\n{\"kind\": \"st")
    resumed = engine.train(config.replace(resume=str(run_dir)), progress=False)
    assert resumed == run_dir

    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(resumed / "last.pt")
    assert a["epoch"] == b["epoch"] == 2 and a["step"] == b["step"]
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    for key in ("rows", "valid"):
        assert torch.equal(a["cache"][key], b["cache"][key])
    momentum_a = [s["momentum_buffer"] for s in a["optimizer"]["state"].values()]
    momentum_b = [s["momentum_buffer"] for s in b["optimizer"]["state"].values()]
    assert all(torch.equal(x, y) for x, y in zip(momentum_a, momentum_b))
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"]

    def records(run):
        return [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]

    log_a, log_b = records(straight), records(resumed)
    assert ([(r["kind"], r["epoch"], r["step"]) for r in log_a]
            == [(r["kind"], r["epoch"], r["step"]) for r in log_b])
    assert [r["loss"] for r in log_a] == [r["loss"] for r in log_b]


def test_the_monitor_state_resumes_exactly(tmp_path, monkeypatch):
    # The monitor's state (the previous epoch's probe embeddings) travels in the checkpoint, so
    # a resumed run's epoch-2 rank stability compares with epoch 1, as a straight run's does.
    from rascal_geom.monitor import GeometryMonitor

    def monitored(run):
        return [(r["knn_acc"], r["rank_stability"])
                for r in map(json.loads, (run / "train_log.jsonl").open())
                if r["kind"] == "epoch"]

    straight = engine.train(tiny_config(tmp_path / "a", loss="supcon", monitor=True),
                            progress=False, callbacks=[GeometryMonitor()])
    config = tiny_config(tmp_path / "b", loss="supcon", monitor=True)
    with monkeypatch.context() as m:
        _stop_after_first_epoch(m)
        with pytest.raises(KeyboardInterrupt):
            engine.train(config, progress=False, callbacks=[GeometryMonitor()])
    resumed = engine.train(config.replace(resume=str(tmp_path / "b" / "run")), progress=False,
                           callbacks=[GeometryMonitor()])
    assert monitored(resumed) == monitored(straight)
    assert monitored(resumed)[1][1] is not None
