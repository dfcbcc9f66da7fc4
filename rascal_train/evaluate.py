"""Evaluation of a trained encoder on frozen features: kNN, linear probe, shot groups, corruptions.

Features are extracted once per split (one pass, eval mode, no gradients) and every classifier
reads them: the kNN monitor (:func:`rascal_geom.metrics.knn_accuracy`), the fast full-batch
linear probe (:func:`rascal_geom.metrics.fit_linear_probe`) and, for robustness, the same probe
applied to the features of corrupted test images. The SupCon paper's protocol — a linear layer trained with SGD
on augmented views of the frozen encoder for some epochs — is :func:`linear_probe_supcon`.
:func:`evaluate_checkpoint` returns the ``eval.json`` dictionary (see the contracts).
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rascal_train.datasets.base import HierDataset
from rascal_train.devices import autocast_dtype, device_scope, resolve_device
from rascal_train.errors import RascalError
from rascal_train.names import PROBE_PROTOCOLS
from rascal_train.progress import track

KNN_K = 20
SHOT_GROUPS = ("many", "medium", "few")
#: The folder names of CIFAR-100-C and ImageNet-C as extracted from their archives, looked for
#: under the data root (CIFAR-100-C for in-memory test splits, ImageNet-C for file-backed ones).
CIFAR_C_DIRNAME = "CIFAR-100-C"
IMAGENET_C_DIRNAME = "ImageNet-C"


class _FileImages(torch.utils.data.Dataset):
    """A file-backed split as ``(transformed image, index or training target)`` for a DataLoader."""

    def __init__(self, dataset: HierDataset, transform, with_target: bool = False):
        self.dataset = dataset
        self.transform = transform
        self.with_target = with_target

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        second = int(self.dataset.targets[index]) if self.with_target else index
        return self.transform(self.dataset.raw_image(index)), second


def _loader_workers() -> int:
    return min(4, os.cpu_count() or 1)


def _autocast(device: torch.device, precision: str):
    # Autocast on a GPU only, and only when asked: by default evaluation is float32 everywhere, so
    # that kNN, probe and rank-stability numbers do not depend on the machine they came from.
    dtype = autocast_dtype(precision, device)
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def _uint8_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    # A copy: the array may be a read-only memory map (CIFAR-C files), which torch cannot wrap.
    return torch.from_numpy(np.array(images, dtype=np.uint8)).to(device)


def _image_batches(dataset: HierDataset, batch_size: int, device: torch.device, image_size: int | None,
                   progress: bool, description: str, transform=None):
    """Yield normalised float batches ``[B, 3, S, S]`` on ``device`` covering the split in order."""
    from rascal_train.transforms import eval_transform, normalize_batch

    n = len(dataset)
    if dataset.images is not None:
        starts = range(0, n, batch_size)
        for start in track(starts, description, total=len(starts), disable=not progress):
            raw = _uint8_tensor(dataset.images[start:start + batch_size], device)
            x = normalize_batch(raw)
            if image_size is not None and x.shape[-1] != image_size:
                x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True,
                                  align_corners=False)
            yield x
        return
    loader = torch.utils.data.DataLoader(
        _FileImages(dataset, transform or eval_transform(image_size or 224)), batch_size=batch_size, shuffle=False,
        num_workers=_loader_workers(), pin_memory=device.type == "cuda")
    with device_scope(device):  # the pinning thread serves the GPU current when it starts
        batches = iter(loader)
    for x, _ in track(batches, description, total=len(loader), disable=not progress):
        yield x.to(device, non_blocking=True)


def extract_features(model, dataset: HierDataset, batch_size: int = 256, device=None, progress: bool = True,
                     image_size: int | None = None, description: str = "features", transform=None,
                     precision: str = "fp32") -> dict:
    """Run the frozen encoder once over a split.

    Parameters
    ----------
    model : nn.Module
        Exposes ``encoder(x) -> features`` and ``project(features) -> z``. Moved to ``device``
        (in place, as ``model.to`` does) when it is elsewhere.
    dataset : HierDataset
        In-memory sets are batched straight from their uint8 array with ``normalize_batch``;
        file-backed sets go through a DataLoader with ``eval_transform(image_size)``.
    batch_size : int, default=256
    device : str or torch.device, default=None
        As ``--device`` takes it (:func:`rascal_train.devices.resolve_device`): a GPU when
        present, else the CPU.
    progress : bool, default=True
    image_size : int, default=None
        Side of the images the encoder sees. ``None`` keeps in-memory images at their own size and
        uses 224 for file-backed sets; in-memory images of another size are resized (bilinear).
    description : str, default="features"
        Progress-bar label.
    transform : callable (PIL image -> float32 Tensor of shape (3, S, S)), default=None
        File-backed sets only: the test-time transform; ``eval_transform(image_size or 224)``
        when ``None`` (ImageNet-C uses :func:`imagenet_c_transform`).
    precision : {"fp32", "auto", "bf16", "fp16"}, default="fp32"
        Autocast on a GPU (:func:`rascal_train.devices.autocast_dtype`); float32 by default,
        so that the numbers are the same on a CPU and a GPU machine up to float noise.

    Returns
    -------
    dict
        ``"features"``: float32 ndarray of shape (n_samples, feature_dim); ``"projections"``:
        float32 ndarray of shape (n_samples, proj_dim), L2-normalised rows; ``"labels"``: dict of
        level -> int64 ndarray of shape (n_samples,) (clean labels); ``"ids"``: int64 ndarray of
        shape (n_samples,).
    """
    if batch_size < 1:
        raise RascalError(f"The 'batch_size' parameter of extract_features must be an int >= 1. Got {batch_size} instead.")
    device = resolve_device(device)
    model.to(device)
    was_training = model.training
    model.eval()
    features, projections = [], []
    try:
        with torch.inference_mode(), _autocast(device, precision):
            for x in _image_batches(dataset, batch_size, device, image_size, progress, description, transform):
                f = model.encoder(x)
                z = model.project(f)
                features.append(f.float().cpu())
                projections.append(F.normalize(z.float(), dim=1).cpu())
    finally:
        model.train(was_training)
    return {
        "features": torch.cat(features).numpy(),
        "projections": torch.cat(projections).numpy(),
        "labels": {level: np.asarray(dataset.labels[level], dtype=np.int64) for level in dataset.levels},
        "ids": np.asarray(dataset.ids, dtype=np.int64),
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


def linear_probe_supcon(model, train_dataset: HierDataset, *, epochs: int = 10, batch_size: int = 256,
                        lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 0.0,
                        image_size: int | None = None, device=None, seed: int = 0,
                        progress: bool = True, precision: str = "fp32") -> torch.nn.Linear:
    """The SupCon linear-evaluation protocol: SGD on augmented views of the frozen encoder.

    The encoder stays in eval mode (batch-norm statistics frozen) and receives no gradient; a
    linear layer on its features is trained with cross-entropy on the training targets, SGD with
    momentum and a cosine learning-rate schedule over all steps. Each batch is augmented with the
    training two-view augmentation and both views are used as samples.

    Parameters
    ----------
    model : nn.Module
        Exposes ``encoder`` and ``feature_dim``; moved to ``device`` (in place).
    train_dataset : HierDataset
        Targets are ``train_dataset.targets`` (noisy where label noise was applied: the labels a
        user of that training set would have).
    epochs : int, default=10
    batch_size : int, default=256
    lr : float, default=0.1
    momentum : float, default=0.9
    weight_decay : float, default=0.0
    image_size : int, default=None
        Crop side; ``None`` uses the in-memory images' own size (224 for file-backed sets).
    device : str or torch.device, default=None
    seed : int, default=0
        Seeds the data order, the augmentation and the layer's initialisation.
    progress : bool, default=True
    precision : {"fp32", "auto", "bf16", "fp16"}, default="fp32"
        Autocast of the frozen encoder's forward pass on a GPU.

    Returns
    -------
    torch.nn.Linear
        The trained classifier (in eval mode, on ``device``), mapping features to class logits.
    """
    for name, value, ok in (("epochs", epochs, isinstance(epochs, int) and epochs >= 1),
                            ("batch_size", batch_size, isinstance(batch_size, int) and batch_size >= 1),
                            ("lr", lr, lr > 0), ("momentum", momentum, 0 <= momentum < 1),
                            ("weight_decay", weight_decay, weight_decay >= 0)):
        if not ok:
            raise RascalError(f"The {name!r} parameter of linear_probe_supcon is out of range. Got {value} instead.")
    from rascal_train.transforms import GpuTwoViewAugment, two_view_transform

    device = resolve_device(device)
    model.to(device)
    generator = torch.Generator().manual_seed(seed)
    targets = torch.as_tensor(np.asarray(train_dataset.targets), dtype=torch.long)
    n = len(train_dataset)
    if image_size is None:
        image_size = train_dataset.images.shape[1] if train_dataset.images is not None else 224
    was_training = model.training
    model.eval()

    if train_dataset.images is not None:
        images = _uint8_tensor(train_dataset.images, device)
        augment = GpuTwoViewAugment(image_size)
        steps_per_epoch = math.ceil(n / batch_size)

        def batches():
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                yield augment(images[idx.to(device)], generator), targets[idx]
    else:
        loader = torch.utils.data.DataLoader(
            _FileImages(train_dataset, two_view_transform(image_size), with_target=True), batch_size=batch_size, shuffle=True,
            generator=generator, num_workers=_loader_workers(), pin_memory=device.type == "cuda")
        steps_per_epoch = len(loader)

        def batches():
            with device_scope(device):  # the pinning thread serves the GPU current when it starts
                views = iter(loader)
            for (v1, v2), y in views:
                yield (v1.to(device, non_blocking=True), v2.to(device, non_blocking=True)), y

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        classifier = torch.nn.Linear(model.feature_dim, train_dataset.num_classes)
    classifier.to(device)
    optimizer = torch.optim.SGD(classifier.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    total_steps = epochs * steps_per_epoch
    try:
        for epoch in track(range(epochs), "SupCon linear probe", total=epochs, disable=not progress):
            for step, ((v1, v2), y) in enumerate(batches()):
                with torch.no_grad(), _autocast(device, precision):
                    feats = model.encoder(torch.cat([v1, v2])).float()
                for group in optimizer.param_groups:
                    group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * (epoch * steps_per_epoch + step) / total_steps))
                loss = F.cross_entropy(classifier(feats), torch.cat([y, y]).to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    finally:
        model.train(was_training)
    return classifier.eval()


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


def corruption_accuracy(model, classify, test_set: HierDataset, root=None, corruptions=None, severities=None,
                        batch_size: int = 256, device=None, image_size: int | None = None, seed: int = 0,
                        progress: bool = True) -> dict:
    """Accuracy of a classifier on frozen features under each corruption and severity of the test split.

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
        (required). Each ``wnid`` folder is matched to a class name of the split's finest level
        (for ``imagefolder``, the class folder names) and scored at that class's ``train_level``
        label; the images go through :func:`imagenet_c_transform`.
    corruptions : sequence of str, default=None
        The 15 benchmark corruptions when ``None``.
    severities : sequence of int, default=None
        1-5 when ``None``.
    batch_size, device, image_size, progress
        As in :func:`extract_features`.
    seed : int, default=0
        Seeds the generated corruptions.

    Returns
    -------
    dict
        ``"per"``: {corruption: {str(severity): accuracy}}; ``"mean_accuracy"``: mean over all;
        ``"mean_corruption_error"``: mean over corruptions of the mean top-1 error over severities,
        unnormalised (the CIFAR-C convention); ``"source"``: ``"file"``, ``"generated"`` or
        ``"mixed"`` (generated sets approximate the published ones, see :mod:`rascal_train.corruptions`).
        ImageNet-C adds ``"mean_corruption_error_alexnet"``: the published mCE, each corruption's
        mean error divided by AlexNet's before averaging, over the benchmark corruptions
        evaluated (``None`` when none is; ``source`` is ``"file"``).
    """
    from rascal_train.corruptions import CORRUPTIONS, SEVERITIES, corrupted_test_sets, mean_corruption_error

    corruptions = CORRUPTIONS if corruptions is None else tuple(corruptions)
    severities = SEVERITIES if severities is None else tuple(severities)
    if test_set.images is None:
        return _imagenet_c_accuracy(model, classify, test_set, root, corruptions, severities, batch_size, device,
                                    image_size, progress)
    labels = test_set.labels[test_set.train_level]
    finest = test_set.labels[test_set.levels[-1]]
    per: dict[str, dict[str, float]] = {}
    sources = set()
    versions = corrupted_test_sets(test_set.images, finest, root, corruptions, severities, seed)
    for item in track(versions, "corruptions", total=len(corruptions) * len(severities), disable=not progress):
        if item["source"] == "file" and not np.array_equal(item["labels"], finest):
            raise RascalError(f"{Path(root) / (item['corruption'] + '.npy')} does not hold this test split "
                              f"({len(item['labels'])} rows per severity, labels differing from the "
                              f"{test_set.levels[-1]!r} labels of {len(finest)} test images); pass the "
                              "CIFAR-C folder of the same dataset.")
        corrupted = dataclasses.replace(test_set, images=item["images"])
        features = extract_features(model, corrupted, batch_size, device, False, image_size)["features"]
        accuracy = float(np.mean(np.asarray(classify(features)).argmax(1) == labels))
        per.setdefault(item["corruption"], {})[str(item["severity"])] = accuracy
        sources.add(item["source"])
    return {"mean_accuracy": float(np.mean([a for by_s in per.values() for a in by_s.values()])),
            "mean_corruption_error": mean_corruption_error(per), "per": per,
            "source": sources.pop() if len(sources) == 1 else "mixed"}


def imagenet_c_transform(image_size: int):
    """Test-time transform of ImageNet-C images: PIL image -> float32 tensor (3, image_size, image_size).

    ImageNet-C images are already the 224-px centre crops of the validation images (resize 256,
    crop 224), so :func:`rascal_train.transforms.eval_transform` would crop them a second time.
    They are only resized (shorter side to ``image_size``; a no-op at 224, the published
    protocol), centre-cropped and normalised, which frames them as the clean images are framed.
    """
    from torchvision import transforms as T

    from rascal_train.transforms import MEAN, STD

    return T.Compose([T.Resize(image_size), T.CenterCrop(image_size), T.ToTensor(), T.Normalize(MEAN, STD)])


def _imagenet_c_accuracy(model, classify, test_set: HierDataset, root, corruptions, severities, batch_size, device,
                         image_size, progress) -> dict:
    """The ImageNet-C branch of :func:`corruption_accuracy` (file-backed test splits)."""
    from rascal_train.corruptions import ALEXNET_ERRORS, imagenet_c_files, mean_corruption_error
    from rascal_train.datasets.folder import ImageFiles

    if root is None:
        raise RascalError(f"Corruption accuracy of the file-backed test split of {test_set.name!r} is measured on "
                          "ImageNet-C; pass --corruptions-root pointing at the ImageNet-C folder "
                          f"(<corruption>/<severity>/<wnid>/*.JPEG) or put it at <data-root>/{IMAGENET_C_DIRNAME}.")
    level, fine = test_set.train_level, test_set.levels[-1]
    class_index = {name: i for i, name in enumerate(test_set.class_names[fine])}
    # Class folders name finest-level classes; their train-level label is read off the test split.
    to_train = np.full(len(class_index), -1, dtype=np.int64)
    to_train[test_set.labels[fine]] = test_set.labels[level]
    # Every folder is listed and matched before any image is embedded, so that a missing or foreign
    # folder fails at once rather than after hours of feature extraction.
    sets = {}
    for name in corruptions:
        for s in severities:
            files = imagenet_c_files(root, name, s)
            folder = Path(root) / name / str(s)
            if not files:
                raise RascalError(f"ImageNet-C folder {folder} holds no images; expected {folder}/<wnid>/*.JPEG. "
                                  "Re-extract ImageNet-C (https://github.com/hendrycks/robustness).")
            labels = np.array([to_train[class_index[w]] if w in class_index else -1 for _, w in files], dtype=np.int64)
            if (labels < 0).any():
                wnid = files[int(np.argmax(labels < 0))][1]
                raise RascalError(f"ImageNet-C folder {folder / wnid} is class {wnid!r}, which is not a {fine!r} "
                                  f"class with test images in {test_set.name!r}; pass as --corruptions-root an "
                                  "ImageNet-C holding only the test split's classes.")
            sets[name, s] = HierDataset(name=f"{test_set.name}-c", split=test_set.split, levels=(level,),
                                        labels={level: labels}, class_names={level: test_set.class_names[level]},
                                        train_level=level, load_image=ImageFiles([p for p, _ in files]),
                                        meta={"source": str(folder)})
    transform = imagenet_c_transform(image_size or 224)
    per: dict[str, dict[str, float]] = {}
    for (name, s), corrupted in track(sets.items(), "ImageNet-C", total=len(sets), disable=not progress):
        features = extract_features(model, corrupted, batch_size, device, False, image_size,
                                    transform=transform)["features"]
        labels = corrupted.labels[level]
        per.setdefault(name, {})[str(s)] = float(np.mean(np.asarray(classify(features)).argmax(1) == labels))
    benchmark = {name: by_s for name, by_s in per.items() if name in ALEXNET_ERRORS}
    return {"mean_accuracy": float(np.mean([a for by_s in per.values() for a in by_s.values()])),
            "mean_corruption_error": mean_corruption_error(per),
            "mean_corruption_error_alexnet": mean_corruption_error(benchmark, "alexnet") if benchmark else None,
            "per": per, "source": "file"}


def _fit_probe(protocol: str, model, train_set: HierDataset, train: dict, train_targets, *, device, seed: int,
               image_size, batch_size: int, epochs: int, progress: bool):
    """Train the linear probe of ``protocol``; returns ``features ndarray -> logits ndarray``."""
    if protocol == "supcon":
        layer = linear_probe_supcon(model, train_set, epochs=epochs, batch_size=batch_size, image_size=image_size,
                                    device=device, seed=seed, progress=progress)

        def classify(features):
            with torch.inference_mode():
                return layer(torch.from_numpy(np.ascontiguousarray(features)).to(device)).float().cpu().numpy()

        return classify
    from rascal_geom.metrics import fit_linear_probe

    return fit_linear_probe(train["features"], train_targets, num_classes=train_set.num_classes, device=device).logits


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
    from rascal_geom.metrics import knn_accuracy

    acc = {t: knn_accuracy(bank, bank_labels, queries, query_labels, k=k, topk=t) for t in (1, 5)}
    return {"top1": acc[1], "top5": acc[5], "k": k}


def probe_settings(protocol: str, probe_epochs: int, batch_size: int) -> dict:
    """The linear probe's settings as a reviewer asks for them (``eval.json``'s ``protocol.linear``).

    Optimiser constants are read from the probe functions' own defaults, so they cannot drift apart.
    """
    import inspect

    from rascal_geom.metrics import fit_linear_probe

    def defaults(fn, names):
        return {k: v.default for k, v in inspect.signature(fn).parameters.items() if k in names}

    if protocol == "supcon":
        return {"protocol": "supcon", "optimizer": "SGD with momentum, cosine schedule", "epochs": probe_epochs,
                "batch_size": batch_size, "augmented": True,
                **defaults(linear_probe_supcon, ("lr", "momentum", "weight_decay"))}
    return {"protocol": "full_batch", "optimizer": "L-BFGS (strong Wolfe), full batch, standardised features",
            "augmented": False, **defaults(fit_linear_probe, ("weight_decay", "max_iter"))}


def evaluate_checkpoint(ckpt_path, data_root=None, linear: bool = True, knn: bool = True,
                        corruptions: bool = False, protocol: str = "full_batch", device=None,
                        progress: bool = True, batch_size: int = 256, probe_epochs: int = 10,
                        corruptions_root=None, dataset: str | None = None, arch: str | None = None) -> dict:
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
        A registered dataset to evaluate on instead of the config's (needed where the checkpoint names none).
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
        ``"supcon"``: :func:`linear_probe_supcon` for ``probe_epochs`` augmented epochs.
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
        raise RascalError(f"Unknown linear-probe protocol {protocol!r}; choose one of {', '.join(PROBE_PROTOCOLS)}.")
    if corruptions and not linear:
        raise RascalError("Corruption accuracy is measured with the linear probe; drop --no-linear or --corruptions.")
    if not (linear or knn):
        raise RascalError("Nothing to evaluate: both the linear probe and kNN are off; enable --linear or --knn.")
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
    changes = {"monitor": True, "data_root": str(data_root) if data_root is not None else config.get("data_root")}
    train_config = TrainConfig.from_dict({**config, **changes}, source=f"the config of {ckpt_path}")
    train_set, test_set = load_datasets(train_config)
    level = train_set.train_level
    image_size = train_config.image_size

    train = extract_features(model, train_set, batch_size, device, progress, image_size, "features (train)")
    test = extract_features(model, test_set, batch_size, device, progress, image_size, "features (test)")
    train_targets, test_labels = np.asarray(train_set.targets), test["labels"][level]

    from rascal_geom.metrics.knn import KNN_TEMPERATURE

    protocol_card = {
        "split": "test", "level": level, "checkpoint": str(ckpt_path), "epoch": loaded.epoch or 0,
        "features": "backbone",
        "knn": {"bank": "train split (training targets)", "k": KNN_K, "temperature": KNN_TEMPERATURE} if knn else None,
        "linear": probe_settings(protocol, probe_epochs, batch_size) if linear else None,
        "seed": train_config.seed}
    result = {"protocol": protocol_card, "checkpoint": str(ckpt_path), "epoch": loaded.epoch or 0,
              "level": level, "checkpoint_layout": loaded.layout, "preprocessing": loaded.preprocessing,
              "load": loaded.summary(),
              "knn": knn_topk(train["features"], train_targets, test["features"], test_labels) if knn else None,
              "linear": None, "shot_groups": None, "corruptions": None}
    groups = shot_groups(train_targets, train_set.num_classes)
    if linear:
        classify = _fit_probe(protocol, model, train_set, train, train_targets, device=device, seed=train_config.seed,
                              image_size=image_size, batch_size=batch_size, epochs=probe_epochs, progress=progress)
        logits = classify(test["features"])
        acc = topk_accuracy(logits, test_labels)
        result["linear"] = {"top1": acc[1], "top5": acc[5], "protocol": protocol}
        correct = logits.argmax(1) == test_labels
        result["shot_groups"] = shot_group_accuracy(lambda mask: correct[mask].mean(), test_labels, groups)
        if corruptions:
            if corruptions_root is None and train_config.data_root is not None:
                dirname = CIFAR_C_DIRNAME if test_set.images is not None else IMAGENET_C_DIRNAME
                candidate = Path(train_config.data_root) / dirname
                corruptions_root = candidate if candidate.is_dir() else None
            result["corruptions"] = corruption_accuracy(
                model, classify, test_set, root=corruptions_root, batch_size=batch_size, device=device,
                image_size=image_size, seed=train_config.seed, progress=progress)
    else:
        from rascal_geom.metrics import knn_accuracy

        result["shot_groups"] = shot_group_accuracy(
            lambda mask: knn_accuracy(train["features"], train_targets, test["features"][mask], test_labels[mask],
                                      k=KNN_K), test_labels, groups)
    return result


def default_eval_path(ckpt_path) -> Path:
    """Where ``rascal eval`` writes by default: ``<run_dir>/eval.json`` for a checkpoint of a run
    (in ``<run_dir>/checkpoints/`` or the run directory's ``last.pt``), else ``<ckpt>.eval.json``."""
    ckpt_path = Path(ckpt_path)
    parent = ckpt_path.parent
    if parent.name == "checkpoints":
        return parent.parent / "eval.json"
    if (parent / "config.json").is_file():
        return parent / "eval.json"
    return ckpt_path.with_suffix(".eval.json")
