"""FGVC-Aircraft 2013b: manufacturer > family > variant, banner cropped.

Reads ``fgvc-aircraft-2013b/data/``: ``images_{level}_{split}.txt`` with lines ``ID LABEL``
where LABEL may hold spaces and slashes (so each line is split on its first space only), the
name lists ``manufacturers.txt``, ``families.txt``, ``variants.txt`` (the release's file names,
as its README and torchvision's ``FGVCAircraft`` spell them), and ``images/<ID>.jpg``, whose
bottom 20 rows (the copyright banner) are cropped. Samples are in the order of the variant
file; the family and manufacturer of each image are looked up by its id, so the three files
need not list images in the same order. Class counts come from the files.
"""

from __future__ import annotations

import numpy as np

from rascal_train.datasets.base import HierDataset, register_dataset
from rascal_train.datasets.folder import ImageFiles, find_root
from rascal_train.datasets.longtail import apply_train_options
from rascal_train.errors import RascalError

SOURCE = "https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/ (fgvc-aircraft-2013b.tar.gz)"
LEVELS = ("manufacturer", "family", "variant")
#: The class-name list of each level, as the release names it.
NAME_FILES = {"manufacturer": "manufacturers.txt", "family": "families.txt",
              "variant": "variants.txt"}
SPLITS = ("train", "val", "trainval", "test")
BANNER = 20


def _read_lines(path) -> list[str]:
    if not path.exists():
        raise RascalError(f"Dataset root has no {path}; download FGVC-Aircraft from {SOURCE}.")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


@register_dataset("aircraft")
def aircraft(root=None, split: str = "train", label_level: str | None = None, seed: int = 0,
             imbalance: float | None = None, label_noise: float = 0.0) -> HierDataset:
    """FGVC-Aircraft: levels ``("manufacturer", "family", "variant")``, trains on ``variant``."""
    if split not in SPLITS:
        raise RascalError(f"FGVC-Aircraft has splits {', '.join(SPLITS)}. Got {split!r} instead.")
    base = find_root(root, "data/variants.txt", "fgvc-aircraft-2013b", SOURCE) / "data"
    finest = LEVELS[-1]
    label_of = {}
    for level in LEVELS:
        rows = [line.split(" ", 1) for line in _read_lines(base / f"images_{level}_{split}.txt")]
        label_of[level] = {r[0]: r[1].strip() for r in rows}
        if level == finest:
            ids = [r[0] for r in rows]
    labels, names = {}, {}
    for level in LEVELS:
        path = base / f"images_{level}_{split}.txt"
        names[level] = _read_lines(base / NAME_FILES[level])
        index = {n: i for i, n in enumerate(names[level])}
        missing = next((i for i in ids if i not in label_of[level]), None)
        if missing is not None:
            raise RascalError(f"{path} has no line for image {missing}, which "
                              f"images_{finest}_{split}.txt lists; re-extract FGVC-Aircraft from "
                              f"{SOURCE}.")
        unknown = next((label_of[level][i] for i in ids if label_of[level][i] not in index), None)
        if unknown is not None:
            raise RascalError(f"{path} has label {unknown!r}, which {NAME_FILES[level]} does not "
                              f"list; re-extract FGVC-Aircraft from {SOURCE}.")
        labels[level] = np.array([index[label_of[level][i]] for i in ids], dtype=np.int64)
    files = ImageFiles([base / "images" / f"{i}.jpg" for i in ids], crop_bottom=BANNER)
    ds = HierDataset(name="aircraft", split=split, levels=LEVELS, labels=labels, class_names=names,
                     train_level=label_level or "variant", load_image=files,
                     meta={"root": str(base.parent), "image_ids": ids})
    return apply_train_options(ds, imbalance, label_noise, seed)
