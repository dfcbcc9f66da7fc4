"""Evaluation of a trained encoder on frozen features: kNN, linear probe, shot groups, corruptions.

Features are extracted once per split (:func:`rascal_train.features.extract_features`) and every
classifier reads them: the kNN monitor (:func:`rascal_geom.metrics.knn_accuracy`), the fast
full-batch linear probe (:func:`rascal_geom.metrics.fit_linear_probe`) and, for robustness, the
same probe applied to the features of corrupted test images (read by
:mod:`rascal_train.datasets.corrupted`). The SupCon paper's protocol — a linear layer trained
with SGD on augmented views of the frozen encoder for some epochs — is
:func:`rascal_train.probe.linear_probe_supcon`. :func:`evaluate_checkpoint` returns the
``eval.json`` dictionary (see the contracts).
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import numpy as np
import torch

from rascal_geom.metrics import fit_linear_probe, knn_accuracy
from rascal_geom.metrics.knn import KNN_K, KNN_TEMPERATURE
from rascal_train.corruptions import CORRUPTIONS, SEVERITIES
from rascal_train.datasets.base import HierDataset
from rascal_train.datasets.corrupted import (CIFAR_C_DIRNAME, IMAGENET_C_DIRNAME,
                                             corrupted_test_sets, imagenet_c_test_sets,
                                             imagenet_c_transform)
from rascal_train.devices import resolve_device
from rascal_train.errors import RascalError
from rascal_train.features import extract_features
from rascal_train.names import PROBE_PROTOCOLS
from rascal_train.probe import linear_probe_supcon
from rascal_train.progress import track

SHOT_GROUPS = ("many", "medium", "few")
#: AlexNet's corruption errors on ImageNet-C, the normaliser of mCE (hendrycks/robustness).
ALEXNET_ERRORS = {
    "gaussian_noise": 0.886428, "shot_noise": 0.894468, "impulse_noise": 0.922640,
    "defocus_blur": 0.819880, "glass_blur": 0.826268, "motion_blur": 0.785948,
    "zoom_blur": 0.798360, "snow": 0.866816, "frost": 0.826572, "fog": 0.819324,
    "brightness": 0.564592, "contrast": 0.853204, "elastic_transform": 0.646056,
    "pixelate": 0.717840, "jpeg_compression": 0.606500,
}


def topk_accuracy(logits, labels, ks=(1, 5)) -> dict[int, float]:
    """Fraction of rows whose label is among the ``k`` largest logits, for each ``k`` in ``ks``.

    Parameters
    ----------
    logits : Tensor or ndarray of shape (n_samples, n_classes)
    labels : Tensor or ndarray of shape (n_samples,), int
    ks : tuple of int, default=(1, 5)
        Each ``k`` is capped at ``n_classes`` (so top-5 of a 3-class problem is 1.0).

    Returns
    -------
    dict of int to float
    """
    logits = torch.as_tensor(logits)
    labels = torch.as_tensor(labels, device=logits.device).long()
    if len(labels) == 0:
        return {k: float("nan") for k in ks}
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices
    hit = top == labels[:, None]
    return {k: hit[:, :min(k, kmax)].any(dim=1).double().mean().item() for k in ks}


def knn_topk(bank, bank_labels, queries, query_labels, k: int = KNN_K) -> dict:
    """Top-1 and top-5 weighted-vote cosine kNN accuracy of ``queries`` against ``bank``.

    Parameters
    ----------
    bank : ndarray of shape (n_bank, dim), float
    bank_labels : ndarray of shape (n_bank,), int
    queries : ndarray of shape (n_queries, dim), float
    query_labels : ndarray of shape (n_queries,), int
    k : int, default=20

    Returns
    -------
    dict
        ``{"top1": float, "top5": float, "k": k}`` (the ``knn`` entry of ``eval.json``).
    """
    acc = {t: knn_accuracy(bank, bank_labels, queries, query_labels, k=k, topk=t) for t in (1, 5)}
    return {"top1": acc[1], "top5": acc[5], "k": k}


def shot_group_accuracy(accuracy_on, test_labels, groups) -> dict | None:
    """Accuracy on the test samples of each shot group.

    Parameters
    ----------
    accuracy_on : callable (bool ndarray of shape (n_test,) -> float)
        Accuracy of the classifier on the test samples a mask selects.
    test_labels : ndarray of shape (n_test,), int
    groups : ndarray of shape (n_classes,), str
        ``"many"``, ``"medium"`` or ``"few"`` per class, from the training split's counts
        (:func:`rascal_train.datasets.longtail.shot_groups`).

    Returns
    -------
    dict of str to float or None, or None
        Accuracy per group (``None`` for a group with no test sample); ``None`` overall when every
        class falls in one group, where the split says nothing a plain accuracy does not.
    """
    groups = np.asarray(groups)
    if len(set(groups.tolist())) < 2:
        return None
    group_of_sample = groups[np.asarray(test_labels)]
    return {g: (float(accuracy_on(group_of_sample == g)) if (group_of_sample == g).any() else None)
            for g in SHOT_GROUPS}


def mean_corruption_error(per: dict, normalize: str = "none") -> float:
    """Mean corruption error from accuracies ``per[corruption][severity]`` in [0, 1].

    ``normalize="none"`` (CIFAR-C): the mean over corruptions of the mean error over severities.
    ``normalize="alexnet"`` (ImageNet-C mCE): each corruption's mean error is divided by
    AlexNet's (:data:`ALEXNET_ERRORS`) before averaging.
    """
    if normalize not in ("none", "alexnet"):
        raise ValueError("The 'normalize' parameter must be 'none' or 'alexnet'. "
                         f"Got {normalize!r} instead.")
    ces = []
    for name, by_severity in per.items():
        err = float(np.mean([1.0 - float(a) for a in by_severity.values()]))
        if normalize == "alexnet":
            if name not in ALEXNET_ERRORS:
                raise ValueError(f"AlexNet has no error for corruption {name!r}; mCE covers the 15 "
                                 "benchmark ones.")
            err /= ALEXNET_ERRORS[name]
        ces.append(err)
    return float(np.mean(ces))


def corruption_accuracy(model, classify, test_set: HierDataset, root=None, corruptions=None,
                        severities=None, batch_size: int = 256, device=None,
                        image_size: int | None = None, seed: int = 0,
                        progress: bool = True) -> dict:
    """Accuracy of a classifier on frozen features under each corruption and severity.

    Parameters
    ----------
    model : nn.Module
        The frozen encoder's model (``encoder``, ``project``).
    classify : callable (features ndarray of shape (n, F) -> logits ndarray of shape (n, C))
        The classifier trained on clean features (the linear probe).
    test_set : HierDataset
        The test split; accuracy is on its ``train_level`` labels. In-memory (CIFAR-sized) splits
        are corrupted in memory or read from CIFAR-C; file-backed (ImageNet-style) splits are
        scored on ImageNet-C.
    root : str or Path, default=None
        In-memory split: a CIFAR-100-C folder; a corruption with ``<root>/<corruption>.npy`` is
        read from it (its rows must be this test split in order, checked against the finest-level
        labels), any other is generated with :func:`rascal_train.corruptions.corrupt`.
        File-backed split: the ImageNet-C root ``<root>/<corruption>/<severity>/<wnid>/*.JPEG``
        (required), read by :func:`rascal_train.datasets.corrupted.imagenet_c_test_sets`; the
        images go through :func:`rascal_train.datasets.corrupted.imagenet_c_transform`.
    corruptions : sequence of str, default=None
        The 15 benchmark corruptions when ``None``.
    severities : sequence of int, default=None
        1-5 when ``None``.
    batch_size, device, image_size, progress
        As in :func:`rascal_train.features.extract_features`.
    seed : int, default=0
        Seeds the generated corruptions.

    Returns
    -------
    dict
        ``"per"``: {corruption: {str(severity): accuracy}}; ``"mean_accuracy"``: mean over all;
        ``"mean_corruption_error"``: mean over corruptions of the mean top-1 error over
        severities, unnormalised (the CIFAR-C convention); ``"source"``: ``"file"``,
        ``"generated"`` or ``"mixed"`` (generated sets approximate the published ones, see
        :mod:`rascal_train.corruptions`). ImageNet-C adds ``"mean_corruption_error_alexnet"``:
        the published mCE, each corruption's mean error divided by AlexNet's before averaging,
        over the benchmark corruptions evaluated (``None`` when none is; ``source`` is
        ``"file"``).
    """
    corruptions = CORRUPTIONS if corruptions is None else tuple(corruptions)
    severities = SEVERITIES if severities is None else tuple(severities)
    if test_set.images is None:
        return _imagenet_c_accuracy(model, classify, test_set, root, corruptions, severities,
                                    batch_size, device, image_size, progress)
    labels = test_set.labels[test_set.train_level]
    finest = test_set.labels[test_set.levels[-1]]
    per: dict[str, dict[str, float]] = {}
    sources = set()
    versions = corrupted_test_sets(test_set.images, finest, root, corruptions, severities, seed)
    for item in track(versions, "corruptions", total=len(corruptions) * len(severities),
                      disable=not progress):
        if item["source"] == "file" and not np.array_equal(item["labels"], finest):
            raise RascalError(f"{Path(root) / (item['corruption'] + '.npy')} does not hold this "
                              f"test split ({len(item['labels'])} rows per severity, labels "
                              f"differing from the {test_set.levels[-1]!r} labels of "
                              f"{len(finest)} test images); pass the CIFAR-C folder of the same "
                              "dataset.")
        corrupted = dataclasses.replace(test_set, images=item["images"])
        features = extract_features(model, corrupted, batch_size, device, False,
                                    image_size)["features"]
        accuracy = float(np.mean(np.asarray(classify(features)).argmax(1) == labels))
        per.setdefault(item["corruption"], {})[str(item["severity"])] = accuracy
        sources.add(item["source"])
    return {"mean_accuracy": float(np.mean([a for by_s in per.values() for a in by_s.values()])),
            "mean_corruption_error": mean_corruption_error(per), "per": per,
            "source": sources.pop() if len(sources) == 1 else "mixed"}


def _imagenet_c_accuracy(model, classify, test_set: HierDataset, root, corruptions, severities,
                         batch_size, device, image_size, progress) -> dict:
    """The ImageNet-C branch of :func:`corruption_accuracy` (file-backed test splits)."""
    sets = imagenet_c_test_sets(test_set, root, corruptions, severities)
    level = test_set.train_level
    transform = imagenet_c_transform(image_size or 224)
    per: dict[str, dict[str, float]] = {}
    for (name, s), corrupted in track(sets.items(), "ImageNet-C", total=len(sets),
                                      disable=not progress):
        features = extract_features(model, corrupted, batch_size, device, False, image_size,
                                    transform=transform)["features"]
        labels = corrupted.labels[level]
        per.setdefault(name, {})[str(s)] = float(
            np.mean(np.asarray(classify(features)).argmax(1) == labels))
    benchmark = {name: by_s for name, by_s in per.items() if name in ALEXNET_ERRORS}
    return {"mean_accuracy": float(np.mean([a for by_s in per.values() for a in by_s.values()])),
            "mean_corruption_error": mean_corruption_error(per),
            "mean_corruption_error_alexnet": (mean_corruption_error(benchmark, "alexnet")
                                              if benchmark else None),
            "per": per, "source": "file"}


def _fit_probe(protocol: str, model, train_set: HierDataset, train: dict, train_targets, *,
               device, seed: int, image_size, batch_size: int, epochs: int, progress: bool):
    """Train the linear probe of ``protocol``; returns ``features ndarray -> logits ndarray``."""
    if protocol == "supcon":
        layer = linear_probe_supcon(model, train_set, epochs=epochs, batch_size=batch_size,
                                    image_size=image_size, device=device, seed=seed,
                                    progress=progress)

        def classify(features):
            with torch.inference_mode():
                x = torch.from_numpy(np.ascontiguousarray(features)).to(device)
                return layer(x).float().cpu().numpy()

        return classify
    return fit_linear_probe(train["features"], train_targets, num_classes=train_set.num_classes,
                            device=device).logits


def probe_settings(protocol: str, probe_epochs: int, batch_size: int) -> dict:
    """The linear probe's settings as a reviewer asks for them (``eval.json``'s
    ``protocol.linear``).

    Optimiser constants are read from the probe functions' own defaults, so they cannot drift
    apart.
    """
    def defaults(fn, names):
        return {k: v.default for k, v in inspect.signature(fn).parameters.items() if k in names}

    if protocol == "supcon":
        return {"protocol": "supcon", "optimizer": "SGD with momentum, cosine schedule",
                "epochs": probe_epochs, "batch_size": batch_size, "augmented": True,
                **defaults(linear_probe_supcon, ("lr", "momentum", "weight_decay"))}
    return {"protocol": "full_batch",
            "optimizer": "L-BFGS (strong Wolfe), full batch, standardised features",
            "augmented": False, **defaults(fit_linear_probe, ("weight_decay", "max_iter"))}


def evaluate_checkpoint(ckpt_path, data_root=None, linear: bool = True, knn: bool = True,
                        corruptions: bool = False, protocol: str = "full_batch", device=None,
                        progress: bool = True, batch_size: int = 256, probe_epochs: int = 10,
                        corruptions_root=None, dataset: str | None = None,
                        arch: str | None = None) -> dict:
    """Evaluate a checkpoint on frozen features; the ``eval.json`` dictionary.

    The training split (with the run's imbalance, label noise and ``limit``) and the test split
    are rebuilt from the checkpoint's config and embedded once with the encoder. Classifiers use
    the training targets (noisy where the run had label noise) and are scored against the clean
    test labels at the training level.

    Parameters
    ----------
    ckpt_path : str or Path
        A checkpoint of ``rascal train``, SupContrast, Lightning / solo-learn or torchvision
        (:func:`rascal_train.checkpoint_formats.load_model`; a foreign one is preprocessed as its
        origin's test transform).
    data_root : str or Path, default=None
        Overrides the data root stored in the checkpoint's config.
    dataset : str, default=None
        A registered dataset to evaluate on instead of the config's (needed where the checkpoint
        names none).
    arch : str, default=None
        Architecture of a foreign checkpoint whose weights do not say it.
    linear : bool, default=True
        Train and score a linear probe on the encoder's features.
    knn : bool, default=True
        Weighted-vote cosine kNN (k=20) of test features against training features.
    corruptions : bool, default=False
        Score the linear probe (trained on clean features) on each corruption and severity of the
        test split (:func:`corruption_accuracy`). Needs ``linear=True``.
    protocol : {"full_batch", "supcon"}, default="full_batch"
        ``"full_batch"``: :func:`rascal_geom.metrics.fit_linear_probe` on the extracted features;
        ``"supcon"``: :func:`rascal_train.probe.linear_probe_supcon` for ``probe_epochs``
        augmented epochs.
    device : str or torch.device, default=None
        CUDA when present, else CPU.
    progress : bool, default=True
    batch_size : int, default=256
        Images per forward pass (and per SGD step of the SupCon probe).
    probe_epochs : int, default=10
        Epochs of the SupCon-protocol probe.
    corruptions_root : str or Path, default=None
        For an in-memory test split a CIFAR-100-C folder; ``None`` uses ``<data_root>/CIFAR-100-C``
        when it exists, else the corruptions are generated. For a file-backed split the ImageNet-C
        folder; ``None`` uses ``<data_root>/ImageNet-C`` when it exists, else fails.

    Returns
    -------
    dict
        ``protocol`` (split, checkpoint, features, kNN bank/k/temperature, probe settings, seed),
        ``checkpoint``, ``epoch``, ``level``, ``checkpoint_layout``, ``preprocessing`` and ``load``
        (what was read, how its images were normalised, the one-line load report), ``knn`` ({top1,
        top5, k} or None), ``linear``
        ({top1, top5, protocol} or None), ``shot_groups`` ({many, medium, few} or None; from the
        linear probe, else from kNN), ``corruptions`` ({mean_accuracy, mean_corruption_error,
        per, source} and, on ImageNet-C, mean_corruption_error_alexnet; or None). The mean
        corruption error is the mean top-1 error over all corruptions and severities, not
        normalised by a reference model; the AlexNet-normalised one is ImageNet-C's published mCE.
    """
    from rascal_train.checkpoint_formats import load_model
    from rascal_train.config import TrainConfig
    from rascal_train.datasets.longtail import shot_groups
    from rascal_train.engine import load_datasets

    if protocol not in PROBE_PROTOCOLS:
        raise RascalError(f"Unknown linear-probe protocol {protocol!r}; choose one of "
                          f"{', '.join(PROBE_PROTOCOLS)}.")
    if corruptions and not linear:
        raise RascalError("Corruption accuracy is measured with the linear probe; drop --no-linear "
                          "or --corruptions.")
    if not (linear or knn):
        raise RascalError("Nothing to evaluate: both the linear probe and kNN are off; enable "
                          "--linear or --knn.")
    device = resolve_device(device)
    loaded = load_model(ckpt_path, arch=arch)
    model, config = loaded.model, loaded.config
    if dataset is not None:
        config = {**config, "dataset": dataset, "label_level": None}
    if loaded.layout != "rascal":
        if config.get("dataset") is None:
            raise RascalError(f"{ckpt_path} ({loaded.layout}) names no dataset read here; "
                              "pass --dataset and --data-root.")
        # A foreign checkpoint's config holds only what rebuilding its data needs.
        config = {k: config[k] for k in ("dataset", "data_root", "image_size", "label_level")
                  if config.get(k) is not None}
    model.to(device)
    changes = {"monitor": True,
               "data_root": str(data_root) if data_root is not None else config.get("data_root")}
    train_config = TrainConfig.from_dict({**config, **changes},
                                         source=f"the config of {ckpt_path}")
    train_set, test_set = load_datasets(train_config)
    level = train_set.train_level
    image_size = train_config.image_size

    train = extract_features(model, train_set, batch_size, device, progress, image_size,
                             "features (train)")
    test = extract_features(model, test_set, batch_size, device, progress, image_size,
                            "features (test)")
    train_targets, test_labels = np.asarray(train_set.targets), test["labels"][level]

    protocol_card = {
        "split": "test", "level": level, "checkpoint": str(ckpt_path), "epoch": loaded.epoch or 0,
        "features": "backbone",
        "knn": ({"bank": "train split (training targets)", "k": KNN_K,
                 "temperature": KNN_TEMPERATURE} if knn else None),
        "linear": probe_settings(protocol, probe_epochs, batch_size) if linear else None,
        "seed": train_config.seed}
    result = {"protocol": protocol_card, "checkpoint": str(ckpt_path), "epoch": loaded.epoch or 0,
              "level": level, "checkpoint_layout": loaded.layout,
              "preprocessing": loaded.preprocessing, "load": loaded.summary(),
              "knn": (knn_topk(train["features"], train_targets, test["features"], test_labels)
                      if knn else None),
              "linear": None, "shot_groups": None, "corruptions": None}
    groups = shot_groups(train_targets, train_set.num_classes)
    if linear:
        classify = _fit_probe(protocol, model, train_set, train, train_targets, device=device,
                              seed=train_config.seed, image_size=image_size,
                              batch_size=batch_size, epochs=probe_epochs, progress=progress)
        logits = classify(test["features"])
        acc = topk_accuracy(logits, test_labels)
        result["linear"] = {"top1": acc[1], "top5": acc[5], "protocol": protocol}
        correct = logits.argmax(1) == test_labels
        result["shot_groups"] = shot_group_accuracy(lambda mask: correct[mask].mean(),
                                                    test_labels, groups)
        if corruptions:
            if corruptions_root is None and train_config.data_root is not None:
                dirname = CIFAR_C_DIRNAME if test_set.images is not None else IMAGENET_C_DIRNAME
                candidate = Path(train_config.data_root) / dirname
                corruptions_root = candidate if candidate.is_dir() else None
            result["corruptions"] = corruption_accuracy(
                model, classify, test_set, root=corruptions_root, batch_size=batch_size,
                device=device, image_size=image_size, seed=train_config.seed, progress=progress)
    else:
        result["shot_groups"] = shot_group_accuracy(
            lambda mask: knn_accuracy(train["features"], train_targets, test["features"][mask],
                                      test_labels[mask], k=KNN_K), test_labels, groups)
    return result


def default_eval_path(ckpt_path) -> Path:
    """Where ``rascal eval`` writes by default.

    ``<run_dir>/eval.json`` for a checkpoint of a run (in ``<run_dir>/checkpoints/`` or the run
    directory's ``last.pt``), else ``<ckpt>.eval.json``.
    """
    ckpt_path = Path(ckpt_path)
    parent = ckpt_path.parent
    if parent.name == "checkpoints":
        return parent.parent / "eval.json"
    if (parent / "config.json").is_file():
        return parent / "eval.json"
    return ckpt_path.with_suffix(".eval.json")
