"""Evaluation on frozen features: extraction, top-k, kNN, probes, shot groups, corruptions, mCE."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.metrics import top_k_accuracy_score
from sklearn.neighbors import KNeighborsClassifier
from torch import nn

from rascal_geom.evaluation import (ALEXNET_ERRORS, corruption_accuracy, knn_topk,
                                    mean_corruption_error, shot_group_accuracy, topk_accuracy)
from rascal_train.corruptions import corrupt
from rascal_train.datasets.base import HierDataset
from rascal_train.datasets.longtail import shot_groups
from rascal_train.errors import RascalError
from rascal_train.features import extract_features
from rascal_train.probe import linear_probe_supcon
from rascal_train.transforms import MEAN, STD


class TinyModel(nn.Module):
    """Flatten + linear encoder on 8-px images, linear projection head."""

    feature_dim = 6

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, self.feature_dim))
        self.head = nn.Linear(self.feature_dim, 128)

    def project(self, features):
        return F.normalize(self.head(features), dim=1)


class MeanPoolModel(nn.Module):
    """Encoder = per-channel mean of the normalised image (features of shape (B, 3))."""

    feature_dim = 3

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def project(self, features):
        return F.normalize(features, dim=1)


def make_dataset(images, labels, fine=None, file_backed=False, noisy=None):
    labels = np.asarray(labels)
    fine = labels if fine is None else np.asarray(fine)
    num = int(labels.max()) + 1
    kwargs = ({"load_image": lambda i: Image.fromarray(images[i])} if file_backed
              else {"images": images})
    return HierDataset(name="toy", split="train", levels=("coarse", "fine"),
                       labels={"coarse": labels, "fine": fine},
                       class_names={"coarse": [str(c) for c in range(num)],
                                    "fine": [str(c) for c in range(int(fine.max()) + 1)]},
                       train_level="coarse", noisy_targets=noisy, **kwargs)


def reference_features(model, images):
    """float64 restatement: (x / 255 - mean) / std, NCHW, then the encoder in float64."""
    x = images.astype(np.float64) / 255.0
    x = (x - np.array(MEAN)) / np.array(STD)
    x = torch.from_numpy(x).permute(0, 3, 1, 2)
    enc = model.encoder.double()
    with torch.no_grad():
        f = enc(x)
        z = F.normalize(model.head.double()(f), dim=1)
    model.float()
    return f.numpy(), z.numpy()


def test_extract_features_matches_float64_restatement_and_restores_mode():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(10, 8, 8, 3), dtype=np.uint8)
    ds = make_dataset(images, [0, 1] * 5, fine=np.arange(10) % 3)
    model = TinyModel().train()
    out = extract_features(model, ds, batch_size=3, device="cpu", progress=False)
    assert model.training
    f64, z64 = reference_features(model, images)
    assert out["features"].dtype == np.float32 and out["features"].shape == (10, 6)
    assert out["projections"].dtype == np.float32 and out["projections"].shape == (10, 128)
    np.testing.assert_allclose(out["features"], f64, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["projections"], z64, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out["labels"]["fine"], np.arange(10) % 3)
    np.testing.assert_array_equal(out["labels"]["coarse"], [0, 1] * 5)
    np.testing.assert_array_equal(out["ids"], np.arange(10))


def test_extract_features_file_backed_equals_in_memory():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(7, 8, 8, 3), dtype=np.uint8)
    model = TinyModel(1)
    mem = extract_features(model, make_dataset(images, np.arange(7) % 2), batch_size=4,
                           device="cpu", progress=False)
    files = extract_features(model, make_dataset(images, np.arange(7) % 2, file_backed=True),
                             batch_size=4, device="cpu", progress=False, image_size=8)
    np.testing.assert_allclose(files["features"], mem["features"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(files["projections"], mem["projections"], rtol=1e-5, atol=1e-5)


def test_extract_features_rejects_bad_batch_size():
    ds = make_dataset(np.zeros((2, 8, 8, 3), np.uint8), [0, 1])
    with pytest.raises(RascalError, match="batch_size"):
        extract_features(TinyModel(), ds, batch_size=0, device="cpu", progress=False)


def test_topk_accuracy_matches_sklearn():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(200, 12))
    labels = rng.integers(0, 12, size=200)
    acc = topk_accuracy(torch.from_numpy(logits), labels, ks=(1, 5))
    for k in (1, 5):
        assert acc[k] == pytest.approx(top_k_accuracy_score(labels, logits, k=k,
                                                            labels=np.arange(12)))
    # k above the number of classes is capped: every label is among all 3 classes.
    assert topk_accuracy(logits[:, :3], rng.integers(0, 3, size=200), ks=(5,))[5] == 1.0


def test_knn_top1_top5_match_sklearn_kneighbors():
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(8, 16))
    bank_y = rng.integers(0, 8, size=300)
    query_y = rng.integers(0, 8, size=120)
    bank = centres[bank_y] + 2.5 * rng.normal(size=(300, 16))
    queries = centres[query_y] + 2.5 * rng.normal(size=(120, 16))
    result = knn_topk(bank, bank_y, queries, query_y)

    # the kNN monitor's vote weight exp(cos / T) = exp(-cosine distance / T) up to a constant
    temperature = 0.07
    clf = KNeighborsClassifier(n_neighbors=20, metric="cosine", algorithm="brute",
                               weights=lambda d: np.exp(-d / temperature)).fit(bank, bank_y)
    proba = clf.predict_proba(queries)
    # Top-5 is ambiguous only where the true class got no vote and fewer than 5 classes did (the
    # zero-vote classes then tie); the data are drawn so that this never happens.
    true_voted = proba[np.arange(len(query_y)), np.searchsorted(clf.classes_, query_y)] > 0
    assert (true_voted | ((proba > 0).sum(axis=1) >= 5)).all()
    order = np.argsort(-proba, axis=1)
    expected = {k: float((clf.classes_[order[:, :k]] == query_y[:, None]).any(axis=1).mean())
                for k in (1, 5)}
    assert result == {"top1": pytest.approx(expected[1]), "top5": pytest.approx(expected[5]),
                      "k": 20}
    assert 0 < expected[1] < expected[5] < 1


def test_shot_group_accuracy_by_hand():
    # Training counts: class 0 -> 150 (many), 1 -> 50 (medium), 2 -> 5 (few), 3 -> 120 (many).
    train_targets = np.repeat([0, 1, 2, 3], [150, 50, 5, 120])
    groups = shot_groups(train_targets, 4)
    assert groups.tolist() == ["many", "medium", "few", "many"]
    test_labels = np.array([0, 0, 3, 3, 3, 1, 1, 2, 2, 2])
    correct = np.array([1, 0, 1, 1, 0, 1, 1, 0, 0, 1], dtype=bool)
    got = shot_group_accuracy(lambda mask: correct[mask].mean(), test_labels, groups)
    # many: samples 0-4 -> 3 of 5; medium: samples 5-6 -> 2 of 2; few: samples 7-9 -> 1 of 3.
    assert got == {"many": pytest.approx(3 / 5), "medium": 1.0, "few": pytest.approx(1 / 3)}


def test_shot_groups_absent_or_empty():
    balanced = shot_groups(np.repeat([0, 1], 200), 2)
    assert shot_group_accuracy(lambda mask: 1.0, np.array([0, 1]), balanced) is None
    groups = shot_groups(np.repeat([0, 1], [200, 3]), 2)  # many and few, no medium class
    got = shot_group_accuracy(lambda mask: float(mask.sum()), np.array([0, 0, 1]), groups)
    assert got == {"many": 2.0, "medium": None, "few": 1.0}


def test_mean_corruption_error():
    per = {"fog": {1: 0.9, 2: 0.7}, "snow": {1: 0.5, 2: 0.5}}
    assert mean_corruption_error(per) == pytest.approx((0.2 + 0.5) / 2)
    assert mean_corruption_error(per, "alexnet") == pytest.approx(
        (0.2 / ALEXNET_ERRORS["fog"] + 0.5 / ALEXNET_ERRORS["snow"]) / 2)


def separable_images(n, rng):
    """Gray images: class 0 dark (20-60), class 1 bright (200-240); the mean intensity separates
    them under every colour jitter the SupCon augmentation draws (brightness factor 0.6-1.4)."""
    labels = np.arange(n) % 2
    level = np.where(labels == 0, rng.integers(20, 61, n), rng.integers(200, 241, n))
    noise = rng.integers(-10, 11, size=(n, 8, 8, 1))
    images = np.clip(level[:, None, None, None] + noise, 0, 255).repeat(3, axis=3).astype(np.uint8)
    return images, labels


def test_linear_probe_supcon_separable_data_and_seeded():
    rng = np.random.default_rng(4)
    train_images, train_labels = separable_images(64, rng)
    test_images, test_labels = separable_images(40, rng)
    model = MeanPoolModel()
    train_set = make_dataset(train_images, train_labels)
    layer = linear_probe_supcon(model, train_set, epochs=3, batch_size=32, device="cpu", seed=0,
                                progress=False)
    again = linear_probe_supcon(model, train_set, epochs=3, batch_size=32, device="cpu", seed=0,
                                progress=False)
    assert torch.equal(layer.weight, again.weight) and torch.equal(layer.bias, again.bias)
    test = extract_features(model, make_dataset(test_images, test_labels), device="cpu",
                            progress=False)
    with torch.no_grad():
        logits = layer(torch.from_numpy(test["features"]))
    assert topk_accuracy(logits, test_labels, ks=(1,))[1] == 1.0


def test_linear_probe_supcon_rejects_bad_parameters():
    ds = make_dataset(np.zeros((4, 8, 8, 3), np.uint8), [0, 1, 0, 1])
    with pytest.raises(RascalError, match="'lr'"):
        linear_probe_supcon(MeanPoolModel(), ds, lr=-1.0, device="cpu", progress=False)


def fitted_probe(model, train_set):
    from rascal_geom.metrics import fit_linear_probe

    train = extract_features(model, train_set, device="cpu", progress=False)
    return fit_linear_probe(train["features"], train_set.targets, num_classes=2,
                            device="cpu").logits


def test_corruption_accuracy_reads_cifar_c_files(tmp_path):
    rng = np.random.default_rng(5)
    train_images, train_labels = separable_images(40, rng)
    test_images, test_labels = separable_images(20, rng)
    model = MeanPoolModel()
    classify = fitted_probe(model, make_dataset(train_images, train_labels))
    test_set = make_dataset(test_images, test_labels)
    # Severities 1-2 hold the clean test images, 3-5 the images of the other class (same labels):
    # accuracy 1, 1, 0, 0, 0.
    swapped = np.empty_like(test_images)
    swapped[test_labels == 0] = test_images[test_labels == 1]
    swapped[test_labels == 1] = test_images[test_labels == 0]
    rows = np.concatenate([test_images, test_images, swapped, swapped, swapped])
    np.save(tmp_path / "gaussian_noise.npy", rows)
    np.save(tmp_path / "labels.npy", np.tile(test_labels, 5))
    got = corruption_accuracy(model, classify, test_set, root=tmp_path,
                              corruptions=["gaussian_noise"], device="cpu", progress=False)
    assert got["per"] == {"gaussian_noise": {"1": 1.0, "2": 1.0, "3": 0.0, "4": 0.0, "5": 0.0}}
    assert got["mean_accuracy"] == pytest.approx(0.4)
    assert got["mean_corruption_error"] == pytest.approx(0.6)
    assert got["source"] == "file"

    np.save(tmp_path / "labels.npy", np.tile(1 - test_labels, 5))
    with pytest.raises(RascalError, match="does not hold this test split"):
        corruption_accuracy(model, classify, test_set, root=tmp_path,
                            corruptions=["gaussian_noise"], device="cpu", progress=False)


def test_corruption_accuracy_generated_brightness():
    rng = np.random.default_rng(6)
    train_images, train_labels = separable_images(40, rng)
    test_images, test_labels = separable_images(20, rng)
    model = MeanPoolModel()
    classify = fitted_probe(model, make_dataset(train_images, train_labels))
    test_set = make_dataset(test_images, test_labels)
    got = corruption_accuracy(model, classify, test_set, corruptions=["brightness", "contrast"],
                              severities=[1, 5], device="cpu", progress=False)
    assert got["source"] == "generated"
    # The same numbers restated: corrupt, embed, classify.
    expected = {}
    for name in ("brightness", "contrast"):
        for s in (1, 5):
            feats = extract_features(model,
                                     make_dataset(corrupt(test_images, name, s), test_labels),
                                     device="cpu", progress=False)["features"]
            expected.setdefault(name, {})[str(s)] = float(
                np.mean(classify(feats).argmax(1) == test_labels))
    assert got["per"] == expected
    accs = [a for by_s in expected.values() for a in by_s.values()]
    assert got["mean_accuracy"] == pytest.approx(np.mean(accs))
    assert got["mean_corruption_error"] == pytest.approx(1 - np.mean(accs))
    # Brightness adds to every pixel: dark images move toward the bright class as severity grows.
    assert expected["brightness"]["5"] < expected["brightness"]["1"]


WNIDS = ("n01440764", "n01443537")  # class 0 (dark images), class 1 (bright images)


def gray_jpeg(path, level):
    """A 16x16 uniform gray JPEG; JPEG keeps a flat image's value, so its class is known."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((16, 16, 3), level, np.uint8)).save(path, quality=95)


def brightness_classify(features):
    """Logits (-m, m) of the mean normalised intensity m: dark -> class 0, bright -> class 1."""
    m = features.mean(axis=1)
    return np.stack([-m, m], axis=1)


@pytest.fixture
def imagenet_val(tmp_path):
    """An ``imagefolder`` val split: 3 dark images of WNIDS[0], 3 bright ones of WNIDS[1]."""
    from rascal_train.datasets import get_dataset

    for wnid, level in zip(WNIDS, (40, 210)):
        for i in range(3):
            gray_jpeg(tmp_path / "data" / "val" / wnid / f"ILSVRC2012_val_{wnid}_{i}.JPEG", level)
    return get_dataset("imagefolder", root=tmp_path / "data", split="val")


def write_imagenet_c(root, levels):
    """``levels[corruption][severity][wnid]``: the gray levels of that folder's images."""
    for name, by_severity in levels.items():
        for s, by_wnid in by_severity.items():
            for wnid, values in by_wnid.items():
                for i, level in enumerate(values):
                    gray_jpeg(root / name / str(s) / wnid / f"{i}.JPEG", level)


def test_corruption_accuracy_reads_imagenet_c(imagenet_val, tmp_path):
    assert imagenet_val.load_image is not None and imagenet_val.class_names["class"] == list(WNIDS)
    dark, bright = 40, 210
    clean = {WNIDS[0]: [dark] * 3, WNIDS[1]: [bright] * 3}
    root = tmp_path / "ImageNet-C"
    write_imagenet_c(root, {
        # Severity 1 is the clean images; severity 2 makes one of the class-0 images bright.
        "gaussian_noise": {1: clean, 2: {WNIDS[0]: [dark, bright, dark], WNIDS[1]: [bright] * 3}},
        # Severity 1 swaps class 0's images only (4 of 7 wrong), severity 2 swaps both classes.
        "contrast": {1: {WNIDS[0]: [bright] * 4, WNIDS[1]: [bright] * 3},
                     2: {WNIDS[0]: [bright] * 3, WNIDS[1]: [dark] * 3}},
    })
    model = MeanPoolModel()
    # The clean split itself is classified perfectly by the hand-made classifier.
    clean_feats = extract_features(model, imagenet_val, device="cpu", progress=False,
                                   image_size=16)["features"]
    np.testing.assert_array_equal(brightness_classify(clean_feats).argmax(1), [0, 0, 0, 1, 1, 1])

    got = corruption_accuracy(model, brightness_classify, imagenet_val, root=root,
                              corruptions=["gaussian_noise", "contrast"], severities=[1, 2],
                              batch_size=4, device="cpu", image_size=16, progress=False)
    per = {"gaussian_noise": {"1": 1.0, "2": 5 / 6}, "contrast": {"1": 3 / 7, "2": 0.0}}
    assert got["per"].keys() == per.keys()
    for name, by_severity in per.items():
        assert got["per"][name] == pytest.approx(by_severity)
    assert got["mean_accuracy"] == pytest.approx((1 + 5 / 6 + 3 / 7 + 0) / 4)
    errors = {"gaussian_noise": (0 + 1 / 6) / 2, "contrast": (4 / 7 + 1) / 2}
    assert got["mean_corruption_error"] == pytest.approx(
        (errors["gaussian_noise"] + errors["contrast"]) / 2)
    # AlexNet's published ImageNet-C errors (hendrycks/robustness):
    # gaussian_noise 0.886428, contrast 0.853204.
    assert got["mean_corruption_error_alexnet"] == pytest.approx(
        (errors["gaussian_noise"] / 0.886428 + errors["contrast"] / 0.853204) / 2)
    assert got["source"] == "file"


def test_imagenet_c_errors(imagenet_val, tmp_path):
    model = MeanPoolModel()
    kwargs = {"corruptions": ["gaussian_noise"], "severities": [1], "device": "cpu",
              "image_size": 16, "progress": False}
    with pytest.raises(RascalError,
                       match="pass --corruptions-root pointing at the ImageNet-C") as err:
        corruption_accuracy(model, brightness_classify, imagenet_val, **kwargs)
    assert "\n" not in str(err.value)

    root = tmp_path / "ImageNet-C"
    write_imagenet_c(root, {"gaussian_noise": {1: {WNIDS[0]: [40], "n99999999": [210]}}})
    with pytest.raises(RascalError, match="n99999999") as err:
        corruption_accuracy(model, brightness_classify, imagenet_val, root=root, **kwargs)
    assert "\n" not in str(err.value) and "--corruptions-root" in str(err.value)

    # A corruption folder that is missing is named, with where ImageNet-C comes from.
    with pytest.raises(RascalError, match="has no contrast/1/") as err:
        corruption_accuracy(model, brightness_classify, imagenet_val, root=root,
                            corruptions=["contrast"],
                            **{k: v for k, v in kwargs.items() if k != "corruptions"})
    assert "\n" not in str(err.value) and "zenodo" in str(err.value)
