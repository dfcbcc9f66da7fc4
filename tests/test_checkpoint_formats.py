"""Checkpoints of other code: each layout written here from its description (key names, save
format), read by `load_model`, and its features checked against a forward pass of the same weights
under that code's own test transform."""

import argparse
import json
import os
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image
from rascal_cli.main import cli
from torch import nn
from torchvision import transforms as T

from rascal_geom.embeddings import extract_embeddings, load_npz
from rascal_train.checkpoint_formats import load_model
from rascal_train.errors import RascalError

# SupContrast's main_ce.py
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)
SOLO_MEAN, SOLO_STD = (0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)  # solo-learn's cifar pipeline
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# --- SupContrast's networks/resnet_big.py, as its state-dict keys describe it ---------------------

class _Block(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + self.shortcut(x))


class _SupConResNet18(nn.Module):
    """`encoder` (3×3 stem, no max-pool, BasicBlocks with `shortcut`) + `head`
    Linear-ReLU-Linear."""

    def __init__(self):
        super().__init__()
        enc = nn.Module()
        enc.conv1, enc.bn1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64)
        c_in = 64
        for i, (c, s) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2))):
            setattr(enc, f"layer{i + 1}", nn.Sequential(_Block(c_in, c, s), _Block(c, c, 1)))
            c_in = c
        self.encoder = enc
        self.head = nn.Sequential(nn.Linear(512, 512), nn.ReLU(inplace=True), nn.Linear(512, 128))

    def features(self, x):
        enc = self.encoder.module if isinstance(self.encoder, nn.DataParallel) else self.encoder
        out = F.relu(enc.bn1(enc.conv1(x)))
        for i in range(1, 5):
            out = getattr(enc, f"layer{i}")(out)
        return out.mean(dim=(2, 3))


def _randomise(model):
    """Random weights and batch-norm statistics, so that eval-mode BN is part of what is checked."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.dtype.is_floating_point:
                if name.endswith("running_var"):
                    t.copy_(0.5 + torch.rand(t.shape, generator=gen))
                else:
                    t.copy_(0.2 * torch.randn(t.shape, generator=gen))
    return model.eval()


def _cifar(root, n=20):
    base = root / "cifar-100-python"
    base.mkdir(parents=True)
    rng = np.random.default_rng(1)
    fine = np.arange(n) % 4
    for split in ("train", "test"):
        with open(base / split, "wb") as fh:
            pickle.dump({"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         "fine_labels": fine.tolist(), "coarse_labels": (fine // 2).tolist()}, fh)
    with open(base / "meta", "wb") as fh:
        pickle.dump({"fine_label_names": [f"f{i}" for i in range(4)],
                     "coarse_label_names": ["a", "b"]}, fh)
    with open(base / "test", "rb") as fh:
        data = pickle.load(fh)["data"]
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def _reference(images, mean, std, forward):
    tf = T.Compose([T.ToTensor(), T.Normalize(mean, std)])
    x = torch.stack([tf(Image.fromarray(im)) for im in images])
    with torch.no_grad():
        return forward(x).numpy()


def _supcontrast_ckpt(tmp_path, data_parallel=True):
    net = _randomise(_SupConResNet18())
    if data_parallel:  # main_supcon.set_model wraps the encoder when CUDA is there
        net.encoder = nn.DataParallel(net.encoder)
    opt = argparse.Namespace(model="resnet18", dataset="cifar100", data_folder=str(tmp_path),
                             size=32, method="SupCon", temp=0.07, lr_decay_epochs=[700, 800, 900],
                             mean=None, std=None)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    path = tmp_path / "ckpt_epoch_7.pth"
    torch.save({"opt": opt, "model": net.state_dict(), "optimizer": optimizer.state_dict(),
                "epoch": 7}, path)
    return path, net


def test_supcontrast_checkpoint_features_equal_its_own_forward(tmp_path):
    images = _cifar(tmp_path)
    path, net = _supcontrast_ckpt(tmp_path)
    assert any(k.startswith("encoder.module.layer1.0.shortcut")
               or k.startswith("encoder.module.layer2.0.shortcut")
               for k in net.state_dict())
    loaded = load_model(path)
    assert (loaded.layout, loaded.arch, loaded.epoch) == ("supcontrast", "resnet18 (cifar stem)", 7)
    assert loaded.missing == [] and loaded.unexpected == []
    assert (loaded.config["dataset"] == "cifar100"
            and loaded.preprocessing["mean"] == list(CIFAR100_MEAN))
    assert loaded.summary().startswith("supcontrast checkpoint, resnet18 (cifar stem), "
                                       "preprocessing: SupContrast cifar100 test transform") and \
        "missing keys: none; unexpected keys: none" in loaded.summary()
    emb = extract_embeddings(path, split="test", cache_dir=tmp_path / "cache", progress=False)
    ref = _reference(images, CIFAR100_MEAN, CIFAR100_STD, net.features)
    np.testing.assert_allclose(emb.features, ref, rtol=1e-4, atol=1e-5)
    proj = _reference(images, CIFAR100_MEAN, CIFAR100_STD,
                      lambda x: F.normalize(net.head(net.features(x)), dim=1))
    np.testing.assert_allclose(emb.embeddings, proj, rtol=1e-4, atol=1e-5)
    # The project's own normalisation would give other features: the preprocessing matters here.
    other = _reference(images, IMAGENET_MEAN, IMAGENET_STD, net.features)
    assert np.abs(other - ref).max() > 1e-2
    assert (emb.source["preprocessing"]["std"] == list(CIFAR100_STD)
            and emb.levels == ["coarse", "fine"])


def test_supce_checkpoint_reads_its_classifier(tmp_path):
    net = _randomise(_SupConResNet18())
    del net.head
    net.fc = nn.Linear(512, 100)
    net = nn.DataParallel(net)  # main_ce wraps the whole model: keys module.encoder.*, module.fc.*
    torch.save({"opt": argparse.Namespace(model="resnet18", dataset="cifar100"),
                "model": net.state_dict(), "optimizer": {}, "epoch": 1}, tmp_path / "ce.pth")
    loaded = load_model(tmp_path / "ce.pth")
    assert loaded.model.loss == "ce" and loaded.unexpected == []
    torch.testing.assert_close(loaded.model.classifier.weight, net.module.fc.weight)


def test_supcontrast_path_dataset_uses_its_own_mean_and_std(tmp_path):
    net = _randomise(_SupConResNet18())
    opt = argparse.Namespace(model="resnet18", dataset="path", mean="(0.5, 0.4, 0.3)",
                             std="(0.2, 0.25, 0.3)", size=64)
    torch.save({"opt": opt, "model": net.state_dict(), "epoch": 2}, tmp_path / "path.pth")
    loaded = load_model(tmp_path / "path.pth")
    assert (loaded.preprocessing["mean"] == [0.5, 0.4, 0.3]
            and loaded.preprocessing["std"] == [0.2, 0.25, 0.3])
    assert loaded.preprocessing["image_size"] == 64 and loaded.config["dataset"] is None
    x = torch.rand(2, 3, 64, 64)  # pixels in [0, 1]
    project = ((x - torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1))
               / torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1))
    own = ((x - torch.tensor((0.5, 0.4, 0.3)).view(1, 3, 1, 1))
           / torch.tensor((0.2, 0.25, 0.3)).view(1, 3, 1, 1))
    with torch.no_grad():
        torch.testing.assert_close(loaded.model.encoder(project), net.features(own), rtol=1e-4,
                                   atol=1e-5)
    opt.mean = "__import__('os')"
    torch.save({"opt": opt, "model": net.state_dict(), "epoch": 2}, tmp_path / "bad.pth")
    with pytest.raises(RascalError, match="has dataset 'path' without a readable mean and std"):
        load_model(tmp_path / "bad.pth")


def test_keys_not_used_are_reported_by_their_names_in_the_file(tmp_path):
    net = _randomise(_SupConResNet18())
    net.head = nn.Linear(512, 128)  # SupConResNet(head='linear'): not an MLP head, so not read
    state = {**net.state_dict(), "queue": torch.zeros(3)}
    torch.save({"opt": argparse.Namespace(model="resnet18", dataset="cifar100"), "model": state,
                "epoch": 1},
               tmp_path / "linear.pth")
    loaded = load_model(tmp_path / "linear.pth")
    assert loaded.unexpected == ["head.bias", "head.weight", "queue"] and loaded.model.head is None
    assert loaded.summary().endswith("unexpected keys: 3 (head.bias, head.weight, queue)")


class _SoloMethod(nn.Module):
    """solo-learn's BaseMethod as its state dict shows it: `backbone` (torchvision ResNet-18, CIFAR
    stem conv 3×3/1 padding 2, no max-pool, fc removed), `projector`, the online `classifier`."""

    def __init__(self):
        super().__init__()
        from torchvision.models import resnet18

        self.backbone = resnet18(weights=None)
        self.backbone.fc = nn.Identity()
        self.backbone.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2, bias=False)
        self.backbone.maxpool = nn.Identity()
        self.projector = nn.Sequential(nn.Linear(512, 2048), nn.ReLU(), nn.Linear(2048, 256))
        self.classifier = nn.Linear(512, 10)


def test_lightning_solo_learn_checkpoint_features_equal_its_own_forward(tmp_path):
    images = _cifar(tmp_path)
    net = _randomise(_SoloMethod())
    ckpt = {"epoch": 4, "global_step": 40, "pytorch-lightning_version": "2.1.3",
            "state_dict": net.state_dict(),
            "hyper_parameters": {"cfg": {"data": {"dataset": "cifar100", "num_classes": 100}}},
            "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]}],
            "lr_schedulers": [],
            "loops": {"fit_loop": {"epoch_progress": {"current": {"completed": 4}}}},
            "callbacks": {}}
    torch.save(ckpt, tmp_path / "solo.ckpt")
    loaded = load_model(tmp_path / "solo.ckpt")
    assert (loaded.layout, loaded.arch, loaded.epoch) == ("lightning",
                                                          "resnet18 (cifar_pad2 stem)", 4)
    assert (loaded.config["dataset"] == "cifar100"
            and loaded.unexpected == ["classifier.bias", "classifier.weight"])
    emb = extract_embeddings(tmp_path / "solo.ckpt", cache_dir=tmp_path / "cache", progress=False,
                             data_root=tmp_path)
    np.testing.assert_allclose(emb.features, _reference(images, SOLO_MEAN, SOLO_STD, net.backbone),
                               rtol=1e-4, atol=1e-5)
    proj = _reference(images, SOLO_MEAN, SOLO_STD,
                      lambda x: F.normalize(net.projector(net.backbone(x)), dim=1))
    np.testing.assert_allclose(emb.embeddings, proj, rtol=1e-4, atol=1e-5)


def _imagenet_folder(root):
    for c, wnid in enumerate(("n01440764", "n01443537")):
        for i in range(3):
            arr = np.random.default_rng(10 * c + i).integers(0, 256, (70 + 9 * i, 90, 3),
                                                             dtype=np.uint8)
            (root / "val" / wnid).mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(root / "val" / wnid / f"ILSVRC2012_val_{10 * c + i:08d}.JPEG",
                                      quality=95)


def _torchvision_ckpt(tmp_path):
    from torchvision.models import resnet18

    net = _randomise(resnet18(weights=None))
    torch.save(net.state_dict(), tmp_path / "resnet18.pth")
    return tmp_path / "resnet18.pth", net


def test_torchvision_state_dict_features_equal_its_own_forward(tmp_path):
    from torchvision.datasets import ImageFolder

    _imagenet_folder(tmp_path)
    path, net = _torchvision_ckpt(tmp_path)
    loaded = load_model(path)
    assert (loaded.layout, loaded.arch, loaded.model.loss) == ("torchvision",
                                                               "resnet18 (imagenet stem)", "ce")
    torch.testing.assert_close(loaded.model.classifier.weight, net.fc.weight)
    emb = extract_embeddings(path, split="test", dataset="imagefolder", data_root=tmp_path,
                             cache_dir=tmp_path / "cache", progress=False)
    tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                    T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    x = torch.stack([img for img, _ in ImageFolder(tmp_path / "val", transform=tf)])
    net.fc = nn.Identity()
    with torch.no_grad():
        ref = net(x).numpy()
    np.testing.assert_allclose(emb.features, ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(emb.embeddings, ref / np.linalg.norm(ref, axis=1, keepdims=True),
                               rtol=1e-4, atol=1e-6)


def test_missing_encoder_weight_and_wrong_arch_are_one_line(tmp_path):
    path, net = _torchvision_ckpt(tmp_path)
    state = net.state_dict()
    del state["layer4.1.bn2.weight"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(RascalError,
                       match=r"^The torchvision checkpoint lacks 1 encoder weight\(s\) of resnet18 "
                             r"\(imagenet stem\) \(first: encoder.layer4.1.bn2.weight\)"):
        load_model(tmp_path / "partial.pth")
    with pytest.raises(RascalError,
                       match=r"does not fit resnet50 \(imagenet stem\): size mismatch"):
        load_model(path, arch="resnet50")
    with pytest.raises(RascalError, match=r"--arch 'vit' cannot read a torchvision checkpoint"):
        load_model(path, arch="vit")


class _Evil:
    def __reduce__(self):
        return (os.system, ("true",))


def test_a_namespace_is_data_but_code_is_still_refused(tmp_path):
    path, _ = _supcontrast_ckpt(tmp_path, data_parallel=False)
    obj = torch.load(path, weights_only=False)
    obj["opt"].payload = _Evil()
    torch.save(obj, tmp_path / "evil.pth")
    with pytest.raises(RascalError,
                       match=r"^Checkpoint \S+evil.pth holds objects that a weights-only load "
                             r"refuses"):
        load_model(tmp_path / "evil.pth")


def test_cli_analyze_embed_and_eval_a_supcontrast_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("RASCAL_CACHE_DIR", str(tmp_path / "cache"))
    images = _cifar(tmp_path)
    path, net = _supcontrast_ckpt(tmp_path)
    runner = CliRunner()
    res = runner.invoke(cli, ["analyze", str(path), "--embedding", "feature", "--no-umap",
                              "--quiet", "--out", str(tmp_path / "a.html")])
    assert res.exit_code == 0, res.output
    assert "supcontrast checkpoint, resnet18 (cifar stem)" in res.stderr
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["source"]["layout"] == "supcontrast" and doc["settings"]["hierarchy"] == "cifar100"
    assert doc["source"]["preprocessing"]["mean"] == list(CIFAR100_MEAN)

    res = runner.invoke(cli, ["embed", str(path), "--embedding", "feature", "--quiet",
                              "--out", str(tmp_path / "e.npz")])
    assert res.exit_code == 0, res.output
    emb = load_npz(tmp_path / "e.npz")
    np.testing.assert_allclose(emb.embeddings,
                               _reference(images, CIFAR100_MEAN, CIFAR100_STD, net.features),
                               rtol=1e-4, atol=1e-5)
    assert (emb.levels == ["coarse", "fine"]
            and emb.labels["fine"].tolist() == (np.arange(20) % 4).tolist())
    res = runner.invoke(cli, ["analyze", str(tmp_path / "e.npz"), "--no-umap", "--quiet",
                              "--hierarchy", "cifar100", "--out", str(tmp_path / "b.html")])
    assert res.exit_code == 0, res.output
    # the written file analyses as the checkpoint did
    again = json.loads((tmp_path / "b.json").read_text())
    assert again["metrics"]["knn_accuracy"] == doc["metrics"]["knn_accuracy"]
    assert again["metrics"]["geodesic_variance"]["mean"] == pytest.approx(
        doc["metrics"]["geodesic_variance"]["mean"])

    res = runner.invoke(cli, ["eval", str(path), "--no-linear", "--out", str(tmp_path / "ev.json")])
    assert res.exit_code == 0, res.output
    ev = json.loads((tmp_path / "ev.json").read_text())
    assert (ev["checkpoint_layout"] == "supcontrast"
            and ev["preprocessing"]["std"] == list(CIFAR100_STD))
    assert ev["epoch"] == 7 and 0 <= ev["knn"]["top1"] <= 1
    assert ("supcontrast checkpoint, resnet18 (cifar stem), preprocessing: SupContrast cifar100"
            in res.stderr)


def test_cli_torchvision_state_dict_needs_a_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("RASCAL_CACHE_DIR", str(tmp_path / "cache"))
    _imagenet_folder(tmp_path)
    path, _ = _torchvision_ckpt(tmp_path)
    res = CliRunner().invoke(cli, ["analyze", str(path), "--no-umap", "--quiet", "--out",
                                   str(tmp_path / "t.html")])
    assert res.exit_code == 1 and "names no dataset read here; pass --dataset" in res.stderr
    assert "Traceback" not in res.output
    res = CliRunner().invoke(cli, ["embed", str(path), "--dataset", "imagefolder", "--data-root",
                                   str(tmp_path), "--layer", "layer3", "--quiet", "--out",
                                   str(tmp_path / "l3.npz")])
    assert res.exit_code == 0, res.output
    assert load_npz(tmp_path / "l3.npz").embeddings.shape == (6, 256)
    res = CliRunner().invoke(cli, ["embed", str(path), "--dataset", "imagefolder", "--data-root",
                                   str(tmp_path), "--layer", "layer9", "--quiet", "--out",
                                   str(tmp_path / "x.npz")])
    assert res.exit_code == 1 and "has no module 'layer9'; choose --layer from conv1, bn1, relu, " \
        "maxpool, layer1, layer1.0, layer1.0.conv1" in res.stderr


def test_cli_embeds_and_analyzes_a_lightning_checkpoint_and_a_torchvision_state_dict(
        tmp_path, monkeypatch):
    from torchvision.datasets import ImageFolder

    monkeypatch.setenv("RASCAL_CACHE_DIR", str(tmp_path / "cache"))
    runner = CliRunner()
    images = _cifar(tmp_path)
    solo = _randomise(_SoloMethod())
    torch.save({"epoch": 2, "pytorch-lightning_version": "2.1.3", "state_dict": solo.state_dict()},
               tmp_path / "solo.ckpt")
    _imagenet_folder(tmp_path)
    tv_path, tv = _torchvision_ckpt(tmp_path)
    tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                    T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    tv.fc = nn.Identity()
    with torch.no_grad():
        tv_ref = tv(torch.stack([img for img, _ in ImageFolder(tmp_path / "val",
                                                               transform=tf)])).numpy()
    cases = [("solo.ckpt", ["--dataset", "cifar100"], "lightning",
              _reference(images, SOLO_MEAN, SOLO_STD, solo.backbone)),
             ("resnet18.pth", ["--dataset", "imagefolder"], "torchvision", tv_ref)]
    for name, flags, layout, ref in cases:
        common = [str(tmp_path / name), *flags, "--data-root", str(tmp_path), "--quiet"]
        res = runner.invoke(cli, ["embed", *common, "--embedding", "feature", "--out",
                                  str(tmp_path / f"{layout}.npz")])
        assert res.exit_code == 0, res.output
        assert res.stderr.startswith(f"{layout} checkpoint, resnet18")
        np.testing.assert_allclose(load_npz(tmp_path / f"{layout}.npz").embeddings, ref, rtol=1e-4,
                                   atol=1e-5)
        res = runner.invoke(cli, ["analyze", *common, "--no-umap", "--out",
                                  str(tmp_path / f"{layout}.html")])
        assert res.exit_code == 0, res.output
        doc = json.loads((tmp_path / f"{layout}.json").read_text())
        assert doc["source"]["layout"] == layout and doc["source"]["preprocessing"]["origin"]
