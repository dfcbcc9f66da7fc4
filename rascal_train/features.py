"""Features of a frozen encoder over a split: one pass, eval mode, no gradients.

:func:`extract_features` is what every reader of frozen features starts from: the epoch-end
monitor, ``rascal eval``, the embeddings ``rascal analyze`` caches. In-memory (CIFAR-sized)
splits are batched straight from their uint8 array on the device; file-backed ones go through a
DataLoader (:class:`FileImages`), which the SupCon-protocol probe (:mod:`rascal_train.probe`)
shares.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from rascal_train.datasets.base import HierDataset
from rascal_train.devices import autocast, autocast_dtype, device_scope, resolve_device
from rascal_train.errors import RascalError
from rascal_train.progress import track
from rascal_train.transforms import eval_transform, normalize_batch


class FileImages(torch.utils.data.Dataset):
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


def loader_workers() -> int:
    """DataLoader workers for reading a file-backed split."""
    return min(4, os.cpu_count() or 1)


def uint8_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """An in-memory split's uint8 images (n, H, W, 3) as a tensor on ``device``."""
    # A copy: the array may be a read-only memory map (CIFAR-C files), which torch cannot wrap.
    return torch.from_numpy(np.array(images, dtype=np.uint8)).to(device)


def _image_batches(dataset: HierDataset, batch_size: int, device: torch.device,
                   image_size: int | None, progress: bool, description: str, transform=None):
    """Yield normalised float batches ``[B, 3, S, S]`` on ``device`` covering the split in order."""
    n = len(dataset)
    if dataset.images is not None:
        starts = range(0, n, batch_size)
        for start in track(starts, description, total=len(starts), disable=not progress):
            raw = uint8_tensor(dataset.images[start:start + batch_size], device)
            x = normalize_batch(raw)
            if image_size is not None and x.shape[-1] != image_size:
                x = F.interpolate(x, size=(image_size, image_size), mode="bilinear",
                                  antialias=True, align_corners=False)
            yield x
        return
    loader = torch.utils.data.DataLoader(
        FileImages(dataset, transform or eval_transform(image_size or 224)),
        batch_size=batch_size, shuffle=False, num_workers=loader_workers(),
        pin_memory=device.type == "cuda")
    with device_scope(device):  # the pinning thread serves the GPU current when it starts
        batches = iter(loader)
    for x, _ in track(batches, description, total=len(loader), disable=not progress):
        yield x.to(device, non_blocking=True)


def extract_features(model, dataset: HierDataset, batch_size: int = 256, device=None,
                     progress: bool = True, image_size: int | None = None,
                     description: str = "features", transform=None,
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
        when ``None`` (ImageNet-C uses
        :func:`rascal_train.datasets.corrupted.imagenet_c_transform`).
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
        raise RascalError("The 'batch_size' parameter of extract_features must be an int >= 1. "
                          f"Got {batch_size} instead.")
    device = resolve_device(device)
    model.to(device)
    was_training = model.training
    model.eval()
    features, projections = [], []
    try:
        # Autocast on a GPU only, and only when asked: by default evaluation is float32
        # everywhere, so that kNN, probe and rank-stability numbers do not depend on the machine.
        with torch.inference_mode(), autocast(device, autocast_dtype(precision, device)):
            for x in _image_batches(dataset, batch_size, device, image_size, progress, description,
                                    transform):
                f = model.encoder(x)
                z = model.project(f)
                features.append(f.float().cpu())
                projections.append(F.normalize(z.float(), dim=1).cpu())
    finally:
        model.train(was_training)
    return {
        "features": torch.cat(features).numpy(),
        "projections": torch.cat(projections).numpy(),
        "labels": {level: np.asarray(dataset.labels[level], dtype=np.int64)
                   for level in dataset.levels},
        "ids": np.asarray(dataset.ids, dtype=np.int64),
    }
