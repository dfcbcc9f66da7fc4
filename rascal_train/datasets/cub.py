"""CUB-200-2011: 200 bird classes with 312 binary attributes in 28 groups.

Reads ``CUB_200_2011/``: ``images.txt`` (``id path``), ``image_class_labels.txt``,
``train_test_split.txt``, ``classes.txt``, ``bounding_boxes.txt`` (``id x y w h``) and
``attributes/image_attribute_labels.txt`` (``image_id attribute_id is_present certainty_id
time``; some lines carry extra fields, so only the first four are read). The attribute names
(``id group::value``) are in ``attributes.txt``, which the official archive puts beside the
``CUB_200_2011`` folder, and some copies under ``attributes/``. Certainties (1 not visible,
2 guessing, 3 probably, 4 definitely) are kept in ``meta["attribute_certainty"]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rascal_train.datasets.base import HierDataset, register_dataset
from rascal_train.datasets.folder import ImageFiles, find_root
from rascal_train.datasets.longtail import apply_train_options
from rascal_train.errors import RascalError

SOURCE = "https://www.vision.caltech.edu/datasets/cub_200_2011/ (CUB_200_2011.tgz)"


def _table(path: Path, columns: int) -> list[list[str]]:
    if not path.exists():
        raise RascalError(f"Dataset root has no {path}; download CUB-200-2011 from {SOURCE}.")
    return [line.split(None, columns - 1) for line in path.read_text().splitlines() if line.strip()]


def read_attributes(base: Path, num_images: int) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    """``(is_present bool [n_images, n_attr], certainty int8 [n_images, n_attr], names)``.

    Rows are indexed by image id - 1. ``None`` when the archive has no attribute labels.
    """
    labels_path = base / "attributes" / "image_attribute_labels.txt"
    if not labels_path.exists():
        return None
    names_path = next((p for p in (base.parent / "attributes.txt",
                                   base / "attributes" / "attributes.txt", base / "attributes.txt")
                       if p.exists()), None)
    if names_path is None:
        raise RascalError(f"Found {labels_path} but no attributes.txt beside {base} or in "
                          f"{base / 'attributes'}; extract it from CUB_200_2011.tgz ({SOURCE}).")
    names = [row[1].strip() for row in _table(names_path, 2)]
    rows = np.array([line.split()[:4] for line in labels_path.read_text().splitlines()
                     if line.strip()],
                    dtype=np.int64)
    present = np.zeros((num_images, len(names)), dtype=bool)
    certainty = np.zeros((num_images, len(names)), dtype=np.int8)
    present[rows[:, 0] - 1, rows[:, 1] - 1] = rows[:, 2] == 1
    certainty[rows[:, 0] - 1, rows[:, 1] - 1] = rows[:, 3]
    return present, certainty, names


@register_dataset("cub")
def cub(root=None, split: str = "train", label_level: str | None = None, seed: int = 0,
        imbalance: float | None = None, label_noise: float = 0.0,
        bbox_crop: bool = False) -> HierDataset:
    """CUB-200-2011: level ``("class",)``, attributes per image; ``bbox_crop`` crops to the bird."""
    if split not in ("train", "test"):
        raise RascalError(f"CUB-200-2011 has splits 'train' and 'test'. Got {split!r} instead.")
    base = find_root(root, "images.txt", "CUB_200_2011", SOURCE)
    images = _table(base / "images.txt", 2)
    ids = np.array([int(r[0]) for r in images])
    paths = {int(r[0]): r[1].strip() for r in images}
    label_of = {int(r[0]): int(r[1]) - 1 for r in _table(base / "image_class_labels.txt", 2)}
    is_train = {int(r[0]): r[1].strip() == "1" for r in _table(base / "train_test_split.txt", 2)}
    class_names = [r[1].strip() for r in _table(base / "classes.txt", 2)]
    keep = np.array([i for i in ids if is_train[i] == (split == "train")], dtype=np.int64)

    boxes = None
    if bbox_crop:
        xywh = {int(r[0]): [float(v) for v in r[1].split()[:4]]
                for r in _table(base / "bounding_boxes.txt", 2)}
        boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (xywh[i] for i in keep)])
    attrs = read_attributes(base, int(ids.max()))
    meta = {"root": str(base), "image_ids": keep}
    present = names = None
    if attrs is not None:
        present, certainty, names = attrs[0][keep - 1], attrs[1][keep - 1], attrs[2]
        meta["attribute_certainty"] = certainty
    ds = HierDataset(name="cub", split=split, levels=("class",),
                     labels={"class": np.array([label_of[i] for i in keep], dtype=np.int64)},
                     class_names={"class": class_names}, train_level=label_level or "class",
                     load_image=ImageFiles([base / "images" / paths[i] for i in keep], boxes),
                     attributes=present, attribute_names=names, meta=meta)
    return apply_train_options(ds, imbalance, label_noise, seed)
