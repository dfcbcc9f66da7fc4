"""The GPU paths a CPU can check: device resolution, the precision choice, the model following its
inputs, resuming an fp16 run saved without a scaler, CUDA's capabilities mocked where needed."""

import inspect

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from rascal_train import devices, engine, features, probe
from rascal_train.devices import autocast_dtype, resolve_device
from rascal_train.errors import RascalError
from rascal_train.files import load_checkpoint
from test_evaluate import TinyModel, make_dataset
from test_train import tiny_config


@pytest.fixture
def two_gpus(monkeypatch):
    """A machine with two visible GPUs: cuda:0 an H100 (9.0), cuda:1 a T4 (7.5)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    capability = {0: (9, 0), 1: (7, 5)}
    monkeypatch.setattr(torch.cuda, "get_device_capability",
                        lambda device=None: capability[torch.device(device).index])
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    return monkeypatch


def test_resolve_device_makes_the_gpu_explicit(two_gpus):
    assert (resolve_device("auto") == resolve_device(None) == resolve_device("cuda")
            == torch.device("cuda", 0))
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(RascalError,
                       match=r"--device cuda:2 names a GPU that does not exist: 2 visible") as info:
        resolve_device("cuda:2")
    assert "\n" not in str(info.value)
    with pytest.raises(RascalError, match="Unknown device 'tpu'"):
        resolve_device("tpu")


def test_resolve_device_under_torchrun(two_gpus):
    two_gpus.setenv("WORLD_SIZE", "4")
    two_gpus.setenv("LOCAL_RANK", "1")
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda", 1)
    # what the engine resolved is passed on (to the monitor's extraction) and resolves to itself
    assert resolve_device(resolve_device("cuda")) == torch.device("cuda", 1)
    with pytest.raises(RascalError, match="under torchrun would put every process on one GPU"):
        resolve_device("cuda:0")
    two_gpus.setenv("LOCAL_RANK", "3")
    with pytest.raises(RascalError,
                       match=r"LOCAL_RANK=3 names a GPU that does not exist: 2 visible"):
        resolve_device("auto")


def test_no_cuda_is_one_line():
    with pytest.raises(RascalError, match="no CUDA device is visible; pass --device cpu"):
        resolve_device("cuda:0")


def test_auto_precision_follows_the_chosen_gpus_capability(two_gpus):
    assert autocast_dtype("auto", torch.device("cuda", 0)) == torch.bfloat16
    # pre-Ampere: no emulated bf16
    assert autocast_dtype("auto", torch.device("cuda", 1)) == torch.float16
    assert autocast_dtype("fp32", torch.device("cuda", 0)) is None
    assert autocast_dtype("fp16", torch.device("cuda", 0)) == torch.float16
    assert autocast_dtype("auto", torch.device("cpu")) is None
    with pytest.warns(UserWarning, match="no bf16 tensor cores"):
        assert autocast_dtype("bf16", torch.device("cuda", 1)) == torch.bfloat16


def test_evaluation_is_float32_on_a_gpu_unless_asked(two_gpus):
    # (torch.autocast itself would initialise CUDA: record what it is asked for instead.)
    two_gpus.setattr(torch, "autocast",
                     lambda device_type, dtype, enabled: (device_type, dtype, enabled))

    def evaluation_autocast(device, precision):  # what extraction and the SupCon probe enter
        return devices.autocast(device, autocast_dtype(precision, device))

    assert evaluation_autocast(torch.device("cuda", 0), "fp32") == ("cuda", torch.float32, False)
    assert evaluation_autocast(torch.device("cuda", 0), "auto") == ("cuda", torch.bfloat16, True)
    assert evaluation_autocast(torch.device("cuda", 1), "auto") == ("cuda", torch.float16, True)
    for fn in (features.extract_features, probe.linear_probe_supcon):
        assert inspect.signature(fn).parameters["precision"].default == "fp32"


class ElsewhereModel(TinyModel):
    """A model whose weights are 'elsewhere' until moved: running it on inputs of another device
    fails as a CPU model fed CUDA batches does."""

    def __init__(self):
        super().__init__()
        self.on = "elsewhere"
        self.encoder.register_forward_pre_hook(self._check)

    def to(self, *args, **kwargs):
        self.on = torch.device(args[0]) if args else kwargs["device"]
        return super().to(*args, **kwargs)

    def _check(self, module, args):
        if self.on != args[0].device:
            raise RuntimeError("Expected all tensors to be on the same device: weights on "
                               f"{self.on}, input on {args[0].device}")


def test_extract_features_moves_the_model_where_its_inputs_go():
    images = np.random.default_rng(0).integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    model = ElsewhereModel()
    out = features.extract_features(model, make_dataset(images, np.arange(6) % 2), batch_size=4,
                                    device="cpu", progress=False)
    assert model.on == torch.device("cpu") and out["features"].shape == (6, TinyModel().feature_dim)
    np.testing.assert_allclose(out["features"], features.extract_features(
        TinyModel(), make_dataset(images, np.arange(6) % 2), device="cpu",
        progress=False)["features"])


def test_supcon_probe_moves_the_model_too():
    images = np.random.default_rng(1).integers(0, 256, (16, 8, 8, 3), dtype=np.uint8)
    layer = probe.linear_probe_supcon(ElsewhereModel(), make_dataset(images, np.arange(16) % 2),
                                      epochs=1, batch_size=8, device="cpu", progress=False)
    assert layer.weight.device.type == "cpu"


def test_checkpoint_embeddings_follow_the_device(tmp_path, monkeypatch):
    from rascal_geom import embeddings
    from rascal_train import checkpoint_formats
    from rascal_train.engine import train

    run_dir = train(tiny_config(tmp_path, loss="supcon", epochs=1), progress=False)
    # what load_model builds a rascal checkpoint with
    build = checkpoint_formats.model_from_checkpoint
    moved = []

    def elsewhere(ckpt):
        model, config = build(ckpt)
        real_to = model.to

        def to(*args, **kwargs):
            moved.append(args[0] if args else kwargs["device"])
            return real_to(*args, **kwargs)

        model.to = to
        return model, config

    monkeypatch.setattr(checkpoint_formats, "model_from_checkpoint", elsewhere)
    emb = embeddings.extract_embeddings(run_dir / "last.pt", cache_dir=tmp_path / "cache",
                                        device="cpu", progress=False)
    assert moved == [torch.device("cpu")] and emb.embeddings.shape[0] > 0


def test_analyze_and_demo_take_a_device(tmp_path):
    from rascal_cli.main import cli

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "e.npz", embeddings=rng.standard_normal((60, 8)).astype(np.float32),
             labels=np.arange(60) % 3)
    (tmp_path / "grid.yaml").write_text("base: {dataset: synthetic, epochs: 1}\n")
    ok = CliRunner().invoke(cli, ["analyze", str(tmp_path / "e.npz"), "--device", "cpu",
                                  "--no-umap", "-q", "--out", str(tmp_path / "r.html")])
    assert ok.exit_code == 0, ok.output
    assert "neighbour search: torch on cpu" in ok.output
    for command in (["analyze", str(tmp_path / "e.npz")],
                    ["demo", "--quick", "--out", str(tmp_path / "d")],
                    ["sweep", str(tmp_path / "grid.yaml"), "--out", str(tmp_path / "s")]):
        bad = CliRunner().invoke(cli, [*command, "--device", "cuda:1", "-q"])
        assert (bad.exit_code == 1
                and "no CUDA device is visible; pass --device cpu" in bad.output), bad.output
        assert len(bad.output.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists() and not (tmp_path / "s").exists()


def test_fp16_resume_of_a_run_saved_without_a_scaler(tmp_path, monkeypatch):
    # A CPU (or bf16) run saves the disabled scaler's state, {}; continuing it where the scaler is
    # enabled (fp16 on a GPU; here an enabled CPU scaler) must start from a fresh scale, not fail
    # with GradScaler's "The source state dict is empty".
    config = tiny_config(tmp_path, loss="supcon", epochs=2)
    reseed = engine._reseed

    def stop_at_epoch_2(seed, epoch, rank):
        if epoch == 1:
            raise KeyboardInterrupt
        reseed(seed, epoch, rank)

    with monkeypatch.context() as m:
        m.setattr(engine, "_reseed", stop_at_epoch_2)
        with pytest.raises(KeyboardInterrupt):
            engine.train(config, progress=False)
    run_dir = tmp_path / "run"
    assert load_checkpoint(run_dir / "last.pt")["scaler"] == {}

    real = torch.amp.GradScaler
    monkeypatch.setattr(torch.amp, "GradScaler",
                        lambda device, enabled=True: real(device, enabled=True))
    engine.train(config.replace(resume=str(run_dir)), progress=False)
    ckpt = load_checkpoint(run_dir / "last.pt")
    assert ckpt["epoch"] == 2 and ckpt["scaler"]["scale"] > 0
    assert all(torch.isfinite(t).all() for t in ckpt["model"].values())


def test_a_commands_device_is_what_none_means_inside_it(two_gpus):
    # `--device cpu` on a GPU machine keeps the searches and probes that take no device on the CPU.
    with devices.device_scope(torch.device("cpu")):
        assert resolve_device(None) == torch.device("cpu")
        assert resolve_device("auto") == torch.device("cuda", 0)  # explicit auto is still auto
        from rascal_geom.metrics import fit_linear_probe

        probe = fit_linear_probe(np.eye(4, dtype=np.float32), np.arange(4) % 2, max_iter=2)
        assert probe.weight.device.type == "cpu"
    assert resolve_device(None) == torch.device("cuda", 0)


def test_cpu_tests_are_pinned_to_the_cpu(tmp_path):
    # conftest.py hides CUDA from unmarked tests, and the tiny runs name the CPU themselves.
    assert torch.cuda.is_available() is False
    assert tiny_config(tmp_path).device == "cpu" and resolve_device(None) == torch.device("cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_auto_precision_on_this_gpu_is_bf16_only_with_bf16_tensor_cores():
    device = resolve_device("cuda")
    native = torch.cuda.is_bf16_supported(including_emulation=False)  # the current device: ours
    assert device == torch.device("cuda", torch.cuda.current_device())
    assert autocast_dtype("auto", device) == (torch.bfloat16 if native else torch.float16)
