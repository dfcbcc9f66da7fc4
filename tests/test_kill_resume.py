"""Runs killed at any moment (SIGKILL or SIGTERM) continue bit-identically, with `--resume RUN_DIR`
or with the same command; one writer per run directory; resume refuses a changed setting."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from rascal_cli.main import cli
from rascal_train.files import atomic_torch_save, load_checkpoint
from test_train import TINY

TESTS = Path(__file__).parent
ARGS = ["train", "--dataset", TINY, "--loss", "rascal", "--epochs", "2", "--batch-size", "16",
        "--limit", "48", "--log-every", "1", "--no-monitor", "--device", "cpu", "--quiet"]

# Runs `rascal` in a child process. STOP_AT makes the kill point deterministic: the child touches
# READY and sleeps where it stops (just before epoch 1's checkpoint is written, or with that
# checkpoint's bytes complete in its temporary file but not yet renamed into place).
CHILD = f"""
import os, sys, time
sys.path.insert(0, {str(TESTS)!r})
import test_train  # registers the tiny dataset
from rascal_train import engine

def park():
    open(os.environ["READY"], "w").close()
    time.sleep(120)

stop_at = os.environ.get("STOP_AT")
if stop_at == "before_checkpoint":
    engine.save_checkpoint = lambda *a, **k: park()
elif stop_at == "mid_checkpoint":
    rename = os.replace
    def replace(src, dst):
        if str(dst).endswith("epoch_0001.pt"):
            park()
        rename(src, dst)
    os.replace = replace
from rascal_cli.main import cli
cli(sys.argv[1:], prog_name="rascal")
"""


def _child(args, stop_at=None, ready=None):
    env = dict(os.environ, STOP_AT=stop_at or "", READY=str(ready or ""))
    return subprocess.Popen([sys.executable, "-c", CHILD, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _kill_when_parked(proc, ready: Path, signum) -> str:
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the child never reached its stop point"
        time.sleep(0.02)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    return err


def _same_run(a: Path, b: Path) -> None:
    ca, cb = load_checkpoint(a / "last.pt"), load_checkpoint(b / "last.pt")
    assert ca["epoch"] == cb["epoch"] == 2 and ca["step"] == cb["step"]
    for name, tensor in ca["model"].items():
        assert torch.equal(tensor, cb["model"][name]), name
    for key in ("rows", "valid"):
        assert torch.equal(ca["cache"][key], cb["cache"][key])
    for sa, sb in zip(ca["optimizer"]["state"].values(), cb["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])

    def log(run):
        return [(r["kind"], r["epoch"], r["step"], r["loss"]) for r in
                map(json.loads, (run / "train_log.jsonl").read_text().splitlines())]

    assert log(a) == log(b)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    out = tmp_path_factory.mktemp("straight") / "run"
    result = CliRunner().invoke(cli, [*ARGS, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("signum, stop_at, again", [
    (signal.SIGKILL, "before_checkpoint", "resume"),
    (signal.SIGTERM, "before_checkpoint", "same"),
    (signal.SIGKILL, "mid_checkpoint", "same"),
    (signal.SIGTERM, "mid_checkpoint", "resume"),
])
def test_killed_first_epoch_continues_bit_identically(tmp_path, straight, signum, stop_at, again):
    out = tmp_path / "run"
    err = _kill_when_parked(_child([*ARGS, "--out", str(out)], stop_at, tmp_path / "ready"),
                            tmp_path / "ready", signum)
    # killed before any checkpoint existed
    assert not (out / "checkpoints" / "epoch_0001.pt").exists()
    assert ([r["kind"] for r in map(json.loads, (out / "train_log.jsonl").read_text().splitlines())]
            [:3] == ["step"] * 3)
    if signum == signal.SIGTERM:
        assert err.strip().splitlines() == ["Error: Interrupted; files already written are "
                                            "complete (writes are atomic), and the same command "
                                            "continues from there."]
    if stop_at == "mid_checkpoint" and signum == signal.SIGKILL:
        # the killed writer's partial file
        assert list((out / "checkpoints").glob(".epoch_0001.pt.*.tmp"))

    args = (["train", "--resume", str(out), "--quiet"] if again == "resume"
            else [*ARGS, "--out", str(out)])
    proc = _child(args)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert stdout.strip() == str(out.resolve() if again == "resume" else out)
    _same_run(straight, out)
    assert not list(out.rglob("*.tmp"))


def test_second_writer_is_refused_with_the_holder(tmp_path):
    out = tmp_path / "run"
    first = _child([*ARGS, "--out", str(out)], "before_checkpoint", tmp_path / "ready")
    try:
        while not (tmp_path / "ready").exists():
            assert first.poll() is None, first.communicate()
            time.sleep(0.02)
        log_before = (out / "train_log.jsonl").read_bytes()
        for args in ([*ARGS, "--out", str(out)], ["train", "--resume", str(out), "--quiet"]):
            result = CliRunner().invoke(cli, args)
            assert result.exit_code == 1
            assert result.output.strip().splitlines() == [
                f"Error: Run directory {out if '--out' in args else out.resolve()} is being "
                f"written by pid {first.pid} on {os.uname().nodename}; wait for it to finish or "
                "choose another --out."]
        assert (out / "train_log.jsonl").read_bytes() == log_before
    finally:
        first.kill()
        first.communicate()


@pytest.mark.parametrize("key, value, message", [
    ("world_size", 2,
     "it was trained by 2 process(es), not 1; resume it with torchrun --nproc-per-node 2"),
    ("device_type", "cuda",
     "it was trained on cuda, not cpu (the precision differs); resume it with --device cuda"),
])
def test_resume_refuses_a_changed_setting(tmp_path, straight, key, value, message):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text((straight / "config.json").read_text())
    ckpt = load_checkpoint(straight / "checkpoints" / "epoch_0001.pt")
    ckpt["rng"][key] = value
    atomic_torch_save(ckpt, run / "checkpoints" / "epoch_0001.pt")
    atomic_torch_save(ckpt, run / "checkpoints" / "last.pt")
    result = CliRunner().invoke(cli, ["train", "--resume", str(run), "--epochs", "2", "--quiet"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: Cannot resume {run.resolve()}: {message}."]
    assert not (run / "checkpoints" / "epoch_0002.pt").exists()


def test_resume_of_a_file_backed_run_refuses_other_num_workers(tmp_path):
    from PIL import Image

    for cls in ("n01", "n02"):
        for i in range(4):
            path = tmp_path / "data" / "train" / cls / f"{i}.JPEG"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (40 * i, 100, 0)).save(path)
    config = tmp_path / "c.yaml"
    config.write_text("num_workers: 0\nimage_size: 8\n")
    run = tmp_path / "run"
    args = ["train", "--dataset", "imagefolder", "--data-root", str(tmp_path / "data"), "--loss",
            "supcon", "--epochs", "2", "--batch-size", "4", "--no-monitor", "--device", "cpu", "-q",
            "--out", str(run)]
    first = CliRunner().invoke(cli, [*args, "--config", str(config)])
    assert first.exit_code == 0, first.output
    # Make the run half-finished: its last checkpoint is epoch 1's.
    (run / "checkpoints" / "epoch_0002.pt").unlink()
    atomic_torch_save(load_checkpoint(run / "checkpoints" / "epoch_0001.pt"),
                      run / "checkpoints" / "last.pt")
    config.write_text("num_workers: 1\nimage_size: 8\n")
    result = CliRunner().invoke(cli, ["train", "--resume", str(run), "--config", str(config), "-q"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: Cannot resume {run.resolve()}: it was trained with num_workers=0, not 1 (each "
        "worker seeds its own augmentations); set num_workers: 0 in the --config file."]
    assert not (run / "checkpoints" / "epoch_0002.pt").exists()


def test_under_torchrun_only_rank_0_prints_the_run_directory(straight):
    # The finished run continued by its own command: nothing to train, the path is the output.
    args = [*ARGS, "--out", str(straight)]
    assert CliRunner(env={"RANK": "0"}).invoke(cli, args).stdout == f"{straight}\n"
    other = CliRunner(env={"RANK": "1"}).invoke(cli, args)
    assert other.exit_code == 0 and other.stdout == ""
