"""One dataset interface for every set the project reads, and the registry by name.

A :class:`HierDataset` is one split of one dataset: images (in memory as one uint8 array, or
decoded from files on access), the clean label at every hierarchy level, optional binary
attributes, sample ids, class names per level. Which level trains is chosen by
``train_level``; label noise replaces only the training targets (``targets``) and keeps the
clean labels for evaluation.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from rascal_train.errors import RascalError
from rascal_train.registry import Registry


@dataclass
class HierDataset:
    """One split of a hierarchical image dataset.

    Attributes
    ----------
    name : str
        Registry name (``"synthetic"``, ``"cifar100"``, ...).
    split : str
        ``"train"``, ``"test"``, ``"val"`` or ``"trainval"``.
    levels : tuple of str
        Hierarchy levels from coarsest to finest, e.g. ``("family", "variant")``.
    labels : dict of str to ndarray of shape (n_samples,), dtype int64
        The clean label at every level, values in ``[0, len(class_names[level]))``.
    class_names : dict of str to list of str
        Class names per level.
    train_level : str
        The level whose labels train the model (one of ``levels``).
    images : ndarray of shape (n_samples, H, W, 3), dtype uint8, or None
        In-memory images (CIFAR-sized and synthetic sets).
    load_image : callable (index -> PIL.Image.Image), or None
        For file-backed sets: decodes image ``index`` (crops already applied).
    attributes : ndarray of shape (n_samples, n_attributes), dtype bool, or None
    attribute_names : list of str, or None
        ``"group::value"`` names, one per attribute column.
    ids : ndarray of shape (n_samples,), dtype int64
        Sample ids, ``0..n_samples-1`` within the split; the views of one image share it.
    noisy_targets : ndarray of shape (n_samples,), dtype int64, or None
        Training targets after symmetric label noise; ``None`` when there is no noise.
    transform : callable (PIL image or HWC uint8 array -> Tensor or tuple of Tensors), or None
    meta : dict
        Anything else a loader records (imbalance factor, noise rate, source root, ...).
        NumPy arrays in it whose first dimension is ``n_samples`` are per-sample (image ids,
        attribute certainties) and follow the samples through :meth:`subset`.
    """

    name: str
    split: str
    levels: tuple[str, ...]
    labels: dict[str, np.ndarray]
    class_names: dict[str, list[str]]
    train_level: str
    images: np.ndarray | None = None
    load_image: Callable[[int], object] | None = None
    attributes: np.ndarray | None = None
    attribute_names: list[str] | None = None
    ids: np.ndarray | None = None
    noisy_targets: np.ndarray | None = None
    transform: Callable | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.train_level not in self.levels:
            raise RascalError(
                f"Dataset {self.name!r} has no label level {self.train_level!r}; "
                f"choose --label-level from {', '.join(self.levels)}."
            )
        n = len(self.labels[self.levels[0]])
        for level in self.levels:
            self.labels[level] = np.asarray(self.labels[level], dtype=np.int64)
            if len(self.labels[level]) != n:
                raise ValueError(f"level {level!r} has {len(self.labels[level])} labels, expected "
                                 f"{n}")
        if self.ids is None:
            self.ids = np.arange(n, dtype=np.int64)
        if (self.images is None) == (self.load_image is None):
            raise ValueError("exactly one of `images` and `load_image` must be given")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def targets(self) -> np.ndarray:
        """Training targets at ``train_level`` (noisy where label noise was applied)."""
        return (self.noisy_targets if self.noisy_targets is not None
                else self.labels[self.train_level])

    @property
    def num_classes(self) -> int:
        return len(self.class_names[self.train_level])

    def raw_image(self, index: int):
        """The untransformed image: an HWC uint8 array or a PIL image."""
        return self.images[index] if self.images is not None else self.load_image(index)

    def subset(self, indices) -> "HierDataset":
        """Samples ``indices`` as a new split with ids ``0..len(indices)-1``.

        ``meta["source_indices"]`` maps each kept sample to its index in the original split.
        """
        indices = np.asarray(indices, dtype=np.int64)
        n = len(self)
        if self.load_image is None:
            load_image = None
        elif hasattr(self.load_image, "subset"):  # picklable readers remap themselves
            load_image = self.load_image.subset(indices)
        else:
            load_image = functools.partial(_load_remapped, self.load_image, indices)
        meta = {k: v[indices] if isinstance(v, np.ndarray) and v.ndim and len(v) == n else v
                for k, v in self.meta.items()}
        meta["source_indices"] = np.asarray(self.meta.get("source_indices", np.arange(n)))[indices]
        pick = lambda a: None if a is None else a[indices]  # noqa: E731
        return dataclasses.replace(
            self, labels={level: values[indices] for level, values in self.labels.items()},
            images=pick(self.images), load_image=load_image, attributes=pick(self.attributes),
            noisy_targets=pick(self.noisy_targets), ids=None, meta=meta)

    def __getitem__(self, index: int):
        """Return ``(image_or_views, target, sample_id)`` for the training loop."""
        img = self.raw_image(index)
        if self.transform is not None:
            img = self.transform(img)
        return img, int(self.targets[index]), int(self.ids[index])


def _load_remapped(load_image: Callable[[int], object], indices: np.ndarray, i: int):
    return load_image(int(indices[i]))


# --- registry (timm-style: a builder per name, loud failure on an unknown one) ---------------

_DATASETS: Registry[Callable[..., HierDataset]] = Registry("dataset", "--dataset")


def register_dataset(name: str):
    """Decorator: record ``fn(root, split, label_level=None, **options) -> HierDataset``."""
    return _DATASETS.register(name)


def list_datasets() -> list[str]:
    return _DATASETS.names()


def get_dataset(name: str, root=None, split: str = "train", label_level: str | None = None,
                **options) -> HierDataset:
    """Build split ``split`` of dataset ``name``.

    ``label_level=None`` trains on the dataset's default level. Unknown names raise a
    :class:`RascalError` that lists the known ones.
    """
    return _DATASETS[name](root=root, split=split, label_level=label_level, **options)
