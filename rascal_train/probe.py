"""The SupCon paper's linear-evaluation protocol: a linear layer trained on a frozen encoder.

Unlike the full-batch probe of :mod:`rascal_geom.metrics.linear_probe`, which fits features
extracted once, this one trains: SGD with momentum on augmented views, for some epochs, with the
encoder in eval mode and no gradient reaching it (Khosla et al., 2020).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from rascal_train.datasets.base import HierDataset
from rascal_train.devices import autocast, autocast_dtype, device_scope, resolve_device
from rascal_train.errors import RascalError
from rascal_train.features import FileImages, loader_workers, uint8_tensor
from rascal_train.progress import track
from rascal_train.transforms import GpuTwoViewAugment, two_view_transform


def linear_probe_supcon(model, train_dataset: HierDataset, *, epochs: int = 10,
                        batch_size: int = 256, lr: float = 0.1, momentum: float = 0.9,
                        weight_decay: float = 0.0, image_size: int | None = None, device=None,
                        seed: int = 0, progress: bool = True,
                        precision: str = "fp32") -> torch.nn.Linear:
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
    for name, value, ok in (
            ("epochs", epochs, isinstance(epochs, int) and epochs >= 1),
            ("batch_size", batch_size, isinstance(batch_size, int) and batch_size >= 1),
            ("lr", lr, lr > 0), ("momentum", momentum, 0 <= momentum < 1),
            ("weight_decay", weight_decay, weight_decay >= 0)):
        if not ok:
            raise RascalError(f"The {name!r} parameter of linear_probe_supcon is out of range. "
                              f"Got {value} instead.")
    device = resolve_device(device)
    amp = autocast_dtype(precision, device)
    model.to(device)
    generator = torch.Generator().manual_seed(seed)
    targets = torch.as_tensor(np.asarray(train_dataset.targets), dtype=torch.long)
    n = len(train_dataset)
    if image_size is None:
        image_size = train_dataset.images.shape[1] if train_dataset.images is not None else 224
    was_training = model.training
    model.eval()

    if train_dataset.images is not None:
        images = uint8_tensor(train_dataset.images, device)
        augment = GpuTwoViewAugment(image_size)
        steps_per_epoch = math.ceil(n / batch_size)

        def batches():
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                yield augment(images[idx.to(device)], generator), targets[idx]
    else:
        loader = torch.utils.data.DataLoader(
            FileImages(train_dataset, two_view_transform(image_size), with_target=True),
            batch_size=batch_size, shuffle=True, generator=generator,
            num_workers=loader_workers(), pin_memory=device.type == "cuda")
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
    optimizer = torch.optim.SGD(classifier.parameters(), lr=lr, momentum=momentum,
                                weight_decay=weight_decay)
    total_steps = epochs * steps_per_epoch
    try:
        for epoch in track(range(epochs), "SupCon linear probe", total=epochs,
                           disable=not progress):
            for step, ((v1, v2), y) in enumerate(batches()):
                with torch.no_grad(), autocast(device, amp):
                    feats = model.encoder(torch.cat([v1, v2])).float()
                t = epoch * steps_per_epoch + step
                for group in optimizer.param_groups:
                    group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * t / total_steps))
                loss = F.cross_entropy(classifier(feats), torch.cat([y, y]).to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    finally:
        model.train(was_training)
    return classifier.eval()
