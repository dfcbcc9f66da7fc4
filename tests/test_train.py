"""`rascal train` and the engine: config, schedule, tiny CPU runs of every loss, the run directory,
the NaN guard, and the one-line errors of bad flags."""

import json
import math

import pytest
import torch
from click.testing import CliRunner

from rascal_geom.monitor import GeometryMonitor
from rascal_train.config import TrainConfig, load_config_file, resolve_config
from rascal_train.datasets.base import get_dataset, list_datasets, register_dataset
from rascal_train.errors import RascalError
from rascal_train.files import load_checkpoint
from rascal_train.models import model_from_checkpoint
from rascal_train.schedule import WarmupCosineLR, warmup_cosine

# The synthetic set at 16 px with 96 training images: a run of a few steps takes seconds.
TINY = "h3_tiny_synthetic"
#: `rascal train` on the tiny set in about a second: the CLI tests' one spelling of it.
TINY_TRAIN = ["train", "--dataset", TINY, "--epochs", "1", "--batch-size", "16", "--limit", "32",
              "--no-monitor", "--device", "cpu", "-q"]
if TINY not in list_datasets():
    @register_dataset(TINY)
    def _tiny(root=None, split="train", label_level=None, **options):
        return get_dataset("synthetic", split=split, label_level=label_level, size=96,
                           image_size=16, **options)


def tiny_config(tmp_path, **changes) -> TrainConfig:
    # device="cpu": the expectations here are CPU facts (see conftest.py); GPU tests pass device.
    values = dict(dataset=TINY, epochs=2, batch_size=16, limit=48, lr=0.05, monitor=False,
                  log_every=1, device="cpu", out=str(tmp_path / "run"))
    values.update(changes)
    return TrainConfig.from_dict(values)


def read_log(run_dir):
    return [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]


# --- schedule ---------------------------------------------------------------------------------

def test_warmup_cosine_closed_form():
    base, final, warm, total = 0.5, 0.0005, 4, 20
    lrs = [warmup_cosine(s, total, warm, base, final) for s in range(total)]
    assert lrs[:4] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert lrs[4] == pytest.approx(base)
    mid = warm + (total - warm) // 2
    assert lrs[mid] == pytest.approx(final + (base - final) * 0.5)  # cos(π/2) = 0
    assert warmup_cosine(total, total, warm, base, final) == pytest.approx(final)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))


def test_scheduler_follows_the_function_and_round_trips():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.2)
    sched = WarmupCosineLR(opt, total_steps=10, warmup_steps=3, final_lr_ratio=0.01)
    seen = []
    for _ in range(6):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([warmup_cosine(s, 10, 3, 0.2, 0.002) for s in range(6)])
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.2)
    sched2 = WarmupCosineLR(opt2, total_steps=10, warmup_steps=3, final_lr_ratio=0.01)
    sched2.load_state_dict(sched.state_dict())
    opt2.load_state_dict(opt.state_dict())
    opt.step(), sched.step(), opt2.step(), sched2.step()
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"] == pytest.approx(
        warmup_cosine(7, 10, 3, 0.2, 0.002))


# --- config -----------------------------------------------------------------------------------

def test_config_defaults_follow_the_loss():
    assert TrainConfig().validated().weights == "rank_agreement"
    assert TrainConfig().validated().cache == "last_seen"
    assert TrainConfig(loss="supcon").validated().weights == "uniform"
    assert TrainConfig(loss="ce").validated().weights is None
    assert TrainConfig(epochs=20).warmup == 2.0 and TrainConfig(epochs=1000).warmup == 10.0
    assert TrainConfig(loss="supcon", seed=3).validated().run_name == "synthetic-supcon-s3"


@pytest.mark.parametrize("values, message", [
    ({"lr": -1.0}, r"'lr' parameter must be a float in \(0, inf\)\. Got -1.0"),
    ({"lr": math.inf}, r"'lr' parameter must be a float in \(0, inf\)\. Got inf"),
    ({"weight_decay": math.inf},
     r"'weight_decay' parameter must be a float in \[0, inf\)\. Got inf instead "
     r"\(set it with `weight_decay:` in the --config file\)"),
    ({"momentum": 2.0}, r"\(set it with `momentum:` in the --config file\)"),
    ({"seed": 10**20}, r"'seed' parameter must be an int in \[0, 9223372036854775807\]"),
    ({"device": "cuda:abc"}, "'device' parameter must be auto, cpu, cuda or cuda:N"),
    ({"loss": "triplet"}, "'loss' parameter must be one of ce, supcon, rascal, simclr"),
    ({"arch": "vgg"}, "'arch' parameter must be one of"),
    ({"loss": "supcon", "weights": "rank_agreement"},
     "--weights rank_agreement applies only to --loss rascal"),
    ({"loss": "ce", "cache": "epoch_end"}, "--cache applies only to --loss rascal"),
    ({"batch_size": 1}, "'batch_size' parameter must be an int >= 2"),
    ({"label_noise": 1.0}, r"'label_noise' parameter must be a float in \[0, 1\)"),
    ({"epoch": 3}, "Unknown key 'epoch'"),
])
def test_config_errors_are_one_line(values, message):
    with pytest.raises(RascalError, match=message) as info:
        TrainConfig.from_dict(values)
    assert "\n" not in str(info.value)


def test_config_file_then_flags(tmp_path):
    (tmp_path / "c.yaml").write_text("loss: supcon\nbatch-size: 64\nlr: 0.3\n")
    (tmp_path / "c.json").write_text(json.dumps({"loss": "ce", "epochs": 7}))
    assert load_config_file(tmp_path / "c.yaml") == {"loss": "supcon", "batch_size": 64, "lr": 0.3}
    config = resolve_config(tmp_path / "c.yaml", lr=0.7, epochs=None)
    assert (config.loss, config.batch_size, config.lr, config.epochs) == ("supcon", 64, 0.7, 100)
    assert resolve_config(tmp_path / "c.json").epochs == 7
    (tmp_path / "bad.yaml").write_text("- a\n- b\n")
    with pytest.raises(RascalError, match="must hold a mapping"):
        load_config_file(tmp_path / "bad.yaml")


# --- tiny runs --------------------------------------------------------------------------------

STAT_KEYS = ("pos_per_anchor", "weight_entropy", "eff_positives", "uniform_fallback", "drift",
             "pos_sim", "neg_sim", "sim_gap", "margin_violation")


@pytest.mark.parametrize("loss", ["ce", "supcon", "rascal", "simclr"])
def test_tiny_run_learns_and_writes_a_reloadable_run(tmp_path, loss):
    from rascal_train.engine import train

    config = tiny_config(tmp_path, loss=loss, epochs=3, limit=32)
    run_dir = train(config, progress=False)
    log = read_log(run_dir)
    epochs = [r for r in log if r["kind"] == "epoch"]
    steps = [r for r in log if r["kind"] == "step"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3]
    assert ([r["step"] for r in steps] == list(range(1, 7))
            and [r["epoch"] for r in steps] == [1, 1, 2, 2, 3, 3])
    assert epochs[-1]["loss"] < epochs[0]["loss"]
    # the epoch loss is the mean of its step losses (log_every=1)
    assert epochs[0]["loss"] == pytest.approx((steps[0]["loss"] + steps[1]["loss"]) / 2, rel=1e-6)
    assert all(r["images_per_s"] > 0 and r["lr"] > 0 for r in log)
    if loss != "ce":
        assert set(STAT_KEYS) <= set(epochs[0])
        assert len(epochs[0]["weight_hist"]) == 20
        # 16 images × 2 views; simclr's only positive is the other view
        if loss == "simclr":
            assert epochs[0]["pos_per_anchor"] == pytest.approx(1.0)
            # Its one positive is the other view, so two-view alignment is 2 - 2 pos_sim exactly.
            for r in steps:
                assert r["alignment"] == pytest.approx(2 - 2 * r["pos_sim"], rel=1e-5)
        else:
            # views agree more than classes
            assert 0 < epochs[0]["alignment"] < 2 - 2 * epochs[0]["pos_sim"]
    if loss == "rascal":
        assert epochs[0]["uniform_fallback"] > epochs[-1]["uniform_fallback"]  # the cache fills
        assert epochs[-1]["drift"] is not None and 0 <= epochs[-1]["drift"] <= 1
        assert sum(epochs[-1]["weight_hist"]) > 0

    config_json = json.loads((run_dir / "config.json").read_text())
    assert (config_json["loss"] == loss and config_json["num_classes"] == 8
            and config_json["image_size"] == 16)
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == ["epoch_0001.pt", "epoch_0002.pt", "epoch_0003.pt", "last.pt"]
    ckpt = load_checkpoint(run_dir / "last.pt")  # weights_only=True
    assert ckpt["epoch"] == 3 and ckpt["step"] == 6 and ckpt["config"] == config_json
    assert (ckpt["cache"] is not None) == (loss == "rascal")
    model, _ = model_from_checkpoint(ckpt)
    epoch3, _ = model_from_checkpoint(load_checkpoint(run_dir / "checkpoints" / "epoch_0003.pt"))
    for a, b in zip(model.state_dict().values(), epoch3.state_dict().values()):
        assert torch.equal(a, b)


def test_rascal_with_uniform_weights_trains_supcon_bit_for_bit_and_logs_drift(tmp_path):
    from rascal_train.engine import train

    runs = {}
    for name, changes in {"supcon": dict(loss="supcon"),
                          "uniform": dict(loss="rascal", weights="uniform")}.items():
        run_dir = train(tiny_config(tmp_path / name, **changes), progress=False)
        runs[name] = (load_checkpoint(run_dir / "last.pt"), read_log(run_dir))
    (sup, sup_log), (uni, uni_log) = runs["supcon"], runs["uniform"]
    for key, value in sup["model"].items():
        assert torch.equal(value, uni["model"][key]), key
    assert [r["loss"] for r in sup_log] == [r["loss"] for r in uni_log]
    assert sup_log[-1]["drift"] is None and 0 <= uni_log[-1]["drift"] <= 1


def test_monitor_logs_knn_and_rank_stability(tmp_path):
    from rascal_geom.metrics import knn_accuracy
    from rascal_train.engine import train
    from rascal_train.features import extract_features

    run_dir = train(tiny_config(tmp_path, loss="supcon", monitor=True), progress=False,
                    callbacks=[GeometryMonitor()])
    epochs = [r for r in read_log(run_dir) if r["kind"] == "epoch"]
    assert epochs[0]["rank_stability"] is None and -1 <= epochs[1]["rank_stability"] <= 1
    # the logged kNN accuracy is the one of the final weights on the whole (small) splits
    model, config = model_from_checkpoint(load_checkpoint(run_dir / "last.pt"))
    from rascal_train.engine import load_datasets

    train_set, test_set = load_datasets(TrainConfig.from_dict(config))
    bank = extract_features(model, train_set, progress=False)
    queries = extract_features(model, test_set, progress=False)
    expected = knn_accuracy(bank["features"], train_set.targets, queries["features"],
                            test_set.labels["family"], k=20)
    assert epochs[1]["knn_acc"] == pytest.approx(expected, abs=1e-6)


def test_callbacks_set_up_once_measure_each_epoch_and_join_its_record(tmp_path):
    from rascal_train.callbacks import Callback
    from rascal_train.engine import train

    class Count(Callback):
        def __init__(self):
            self.setups, self.epochs = 0, []

        def setup(self, config, train_set, device):
            self.setups += 1

        def on_epoch_end(self, model, epoch):
            self.epochs.append(epoch)
            return {"counted": len(self.epochs)}

    count = Count()
    run_dir = train(tiny_config(tmp_path, loss="supcon"), progress=False, callbacks=[count])
    assert count.setups == 1 and count.epochs == [1, 2]
    records = read_log(run_dir)
    assert [r["counted"] for r in records if r["kind"] == "epoch"] == [1, 2]
    assert all("counted" not in r for r in records if r["kind"] == "step")
    # without callbacks nothing is measured at epoch end, whatever config.monitor says
    plain = train(tiny_config(tmp_path / "plain", loss="supcon", monitor=True), progress=False)
    assert all("knn_acc" not in r for r in read_log(plain))


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from rascal_train import engine, losses

    forward = losses.RascalLoss.forward
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):
        calls["n"] += 1
        loss = forward(self, *args, **kwargs)
        return loss * math.nan if calls["n"] > 3 else loss  # epoch 1 has 3 steps

    monkeypatch.setattr(losses.RascalLoss, "forward", poisoned)
    config = tiny_config(tmp_path, loss="supcon", epochs=3, log_every=10)
    with pytest.raises(RascalError, match=r"loss became nan in epoch 2.*epoch_0001\.pt "
                                          r"\(epoch 1\) is the last good"):
        engine.train(config, progress=False)
    run_dir = tmp_path / "run"
    assert (sorted(p.name for p in (run_dir / "checkpoints").iterdir())
            == ["epoch_0001.pt", "last.pt"])
    ckpt = load_checkpoint(run_dir / "last.pt")
    assert ckpt["epoch"] == 1 and all(torch.isfinite(t).all() for t in ckpt["model"].values())


# --- the command line -------------------------------------------------------------------------

def invoke(*args):
    from rascal_cli.main import cli

    return CliRunner().invoke(cli, ["train", *args])


def test_cli_trains_a_run(tmp_path):
    out = tmp_path / "cli_run"
    result = invoke("--dataset", TINY, "--loss", "rascal", "--weights", "current_rank", "--epochs",
                    "1", "--batch-size", "16", "--limit", "32", "--no-monitor", "--quiet", "--out",
                    str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    config = json.loads((out / "config.json").read_text())
    assert ((config["weights"], config["cache"], config["limit"])
            == ("current_rank", "last_seen", 32))
    assert load_checkpoint(out / "last.pt")["step"] == 2


@pytest.mark.parametrize("args, message", [
    (["--dataset", "imagenet21k"], "Unknown dataset 'imagenet21k'; choose --dataset from"),
    (["--dataset", TINY, "--label-level", "species"],
     "has no label level 'species'; choose --label-level from family, variant"),
    (["--dataset", TINY, "--loss", "supcon", "--weights", "rank_agreement"],
     "applies only to --loss rascal"),
    (["--dataset", TINY, "--batch-size", "512"],
     "--batch-size 512 is larger than the 96 training samples"),
])
def test_cli_bad_flags_give_one_line_and_exit_1(tmp_path, args, message):
    result = invoke(*args, "--no-monitor", "--quiet", "--out", str(tmp_path / "bad"))
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()  # nothing written for a mistake found up front


def test_cli_refuses_to_overwrite_or_resume_another_config(tmp_path):
    out = tmp_path / "r"
    base = ["--dataset", TINY, "--loss", "supcon", "--epochs", "2", "--batch-size", "16", "--limit",
            "16", "--no-monitor", "--quiet", "--out", str(out)]
    assert invoke(*base).exit_code == 0
    stamp = (out / "checkpoints" / "epoch_0002.pt").stat().st_mtime_ns
    again = invoke(*base)  # the same command continues the run: finished, so nothing is redone
    assert (again.exit_code == 0
            and (out / "checkpoints" / "epoch_0002.pt").stat().st_mtime_ns == stamp)
    changed = invoke(*base, "--lr", "0.9")
    assert (changed.exit_code == 1
            and "already holds a run with lr=0.125, not 0.9; pass --resume" in changed.output)
    other = invoke("--resume", str(out), "--lr", "0.9", "--quiet")
    assert other.exit_code == 1
    assert ("Cannot resume" in other.output and "lr=0.125" in other.output
            and "not 0.9" in other.output)
    loss = invoke("--resume", str(out / "checkpoints" / "epoch_0001.pt"), "--loss", "ce", "--quiet")
    assert loss.exit_code == 1 and "trained with loss='supcon'" in loss.output


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("loss", ["ce", "rascal"])
def test_cuda_bf16_run_is_finite_and_reloads_on_cpu(tmp_path, loss):
    from rascal_train.engine import train

    run_dir = train(tiny_config(tmp_path, loss=loss, device="cuda", precision="bf16"),
                    progress=False)
    epochs = [r for r in read_log(run_dir) if r["kind"] == "epoch"]
    assert all(math.isfinite(r["loss"]) for r in epochs)
    ckpt = load_checkpoint(run_dir / "last.pt", map_location="cpu")
    model, _ = model_from_checkpoint(ckpt)
    assert all(p.device.type == "cpu" for p in model.parameters())


@pytest.mark.parametrize("loss", ["ce", "rascal"])
def test_bf16_channels_last_step_recipe_runs_on_cpu_autocast(loss):
    # The GPU recipe (bf16 autocast, channels-last weights) through the engine's step functions,
    # on CPU autocast: the loss stays float32, close to the fp32 step, and every parameter gets a
    # finite float32 gradient.
    from rascal_train.engine import ce_loss, contrastive_loss
    from rascal_train.losses import RascalLoss
    from rascal_train.models import build_model

    torch.manual_seed(0)
    model = build_model({"arch": "small_cnn", "loss": loss, "num_classes": 3})
    model = model.to(memory_format=torch.channels_last)
    v1, v2 = torch.rand(8, 3, 16, 16), torch.rand(8, 3, 16, 16)
    labels, ids = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]), torch.arange(8)

    def step(dtype):
        model.zero_grad()
        if loss == "ce":
            out = ce_loss(model, v1, labels, autocast_dtype=dtype)
        else:
            out = contrastive_loss(model, RascalLoss(weights="current_rank"), v1, v2, labels, ids,
                                   autocast_dtype=dtype)[0]
        out.backward()
        return out

    fp32 = step(None).item()
    bf16 = step(torch.bfloat16)
    assert bf16.dtype == torch.float32 and bf16.item() == pytest.approx(fp32, rel=5e-2)
    for p in model.parameters():
        assert p.grad is not None and p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all()


# --- on a GPU (gpu-marked: run by `make gpu-check`) -----------------------------------------------

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _stop_after_first_epoch(monkeypatch):
    """Kill the run as epoch 2 starts (after epoch 1's checkpoint), as a Ctrl-C would."""
    from rascal_train import engine

    reseed = engine._reseed

    def reseed_or_stop(seed, epoch, rank):
        if epoch == 1:
            raise KeyboardInterrupt
        reseed(seed, epoch, rank)

    monkeypatch.setattr(engine, "_reseed", reseed_or_stop)


@pytest.mark.gpu
@cuda
def test_cuda_run_with_the_monitor_and_analysis_of_its_checkpoint(tmp_path):
    # The monitor extracts features on the GPU (the path that crashed with a model left on the
    # CPU); then `rascal analyze` and `rascal eval` of the checkpoint on CUDA.
    from rascal_cli.main import cli
    from rascal_train.engine import train

    run_dir = train(tiny_config(tmp_path, loss="rascal", device="cuda", monitor=True),
                    progress=False, callbacks=[GeometryMonitor()])
    epochs = [r for r in read_log(run_dir) if r["kind"] == "epoch"]
    assert 0 <= epochs[1]["knn_acc"] <= 1 and -1 <= epochs[1]["rank_stability"] <= 1
    env = {"RASCAL_CACHE_DIR": str(tmp_path / "cache")}
    res = CliRunner(env=env).invoke(cli, ["analyze", str(run_dir), "--device", "cuda", "--no-umap",
                                          "-q", "--out", str(tmp_path / "a.html")])
    assert res.exit_code == 0, res.output
    assert ("neighbour search: torch on cuda" in res.output
            or "neighbour search: FAISS" in res.output)
    res = CliRunner().invoke(cli, ["eval", str(run_dir), "--device", "cuda", "-q", "--out",
                                   str(tmp_path / "e.json")])
    assert res.exit_code == 0, res.output
    # Evaluation is float32 on every device: the GPU's kNN accuracy is the CPU's (up to ties).
    on_cpu = CliRunner().invoke(cli, ["eval", str(run_dir), "--device", "cpu", "-q", "--out",
                                      str(tmp_path / "c.json")])
    assert on_cpu.exit_code == 0, on_cpu.output
    gpu, cpu = (json.loads((tmp_path / f).read_text()) for f in ("e.json", "c.json"))
    assert gpu["knn"]["top1"] == pytest.approx(cpu["knn"]["top1"], abs=0.03)


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_resume_continues_the_run(tmp_path, monkeypatch, precision):
    from rascal_train import engine

    straight = engine.train(tiny_config(tmp_path / "a", loss="rascal", device="cuda",
                                        precision=precision),
                            progress=False)
    config = tiny_config(tmp_path / "b", loss="rascal", device="cuda", precision=precision)
    with monkeypatch.context() as m:
        _stop_after_first_epoch(m)
        with pytest.raises(KeyboardInterrupt):
            engine.train(config, progress=False)
    resumed = engine.train(config.replace(resume=str(tmp_path / "b" / "run")), progress=False)
    a, b = ([r for r in read_log(d) if r["kind"] == "epoch"] for d in (straight, resumed))
    assert [r["step"] for r in a] == [r["step"] for r in b] == [3, 6]
    # Not bit-identical on a GPU (README: atomics in cuDNN and scatter/index_add backward), but
    # the same run up to float noise.
    assert b[1]["loss"] == pytest.approx(a[1]["loss"], rel=0.05)
    ckpt = load_checkpoint(resumed / "last.pt")
    assert (ckpt["scaler"] != {}) == (precision == "fp16")


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("first, then", [("cpu", "cuda"), ("cuda", "cpu")])
def test_resume_across_devices(tmp_path, monkeypatch, first, then):
    # fp16: saved on the CPU the scaler is disabled ({}); resumed on CUDA it is enabled.
    from rascal_train import engine

    config = tiny_config(tmp_path, loss="rascal", device=first, precision="fp16")
    with monkeypatch.context() as m:
        _stop_after_first_epoch(m)
        with pytest.raises(KeyboardInterrupt):
            engine.train(config, progress=False)
    run_dir = engine.train(config.replace(resume=str(tmp_path / "run"), device=then),
                           progress=False)
    epochs = [r for r in read_log(run_dir) if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2] and all(math.isfinite(r["loss"]) for r in epochs)
    ckpt = load_checkpoint(run_dir / "last.pt")
    assert all(t.device.type == "cpu" and torch.isfinite(t).all() for t in ckpt["model"].values()
               if t.is_floating_point())


FILES = "h3_tiny_files"
if FILES not in list_datasets():
    @register_dataset(FILES)
    def _tiny_files(root=None, split="train", label_level=None, **options):
        import dataclasses

        from PIL import Image

        ds = get_dataset(TINY, split=split, label_level=label_level, **options)
        images = ds.images
        return dataclasses.replace(ds, images=None, load_image=lambda i: Image.fromarray(images[i]))


@pytest.mark.gpu
@cuda
def test_cuda_run_through_the_dataloader(tmp_path):
    # File-backed sets go through a DataLoader with workers and pinned memory on the GPU.
    from rascal_train.engine import train

    run_dir = train(tiny_config(tmp_path, dataset=FILES, loss="supcon", device="cuda",
                                num_workers=2, monitor=True), progress=False,
                    callbacks=[GeometryMonitor()])
    epochs = [r for r in read_log(run_dir) if r["kind"] == "epoch"]
    assert len(epochs) == 2 and all(math.isfinite(r["loss"]) for r in epochs)


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_second_gpu_is_used_for_everything(tmp_path):
    from rascal_train.engine import train

    before = torch.cuda.memory_allocated(0)
    run_dir = train(tiny_config(tmp_path, loss="rascal", device="cuda:1", monitor=True),
                    progress=False, callbacks=[GeometryMonitor()])
    assert load_checkpoint(run_dir / "last.pt")["epoch"] == 2
    assert torch.cuda.max_memory_allocated(1) > 0 and torch.cuda.memory_allocated(0) == before
