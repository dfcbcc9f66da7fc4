"""FGVC-Aircraft 2013b: manufacturer > family > variant, banner cropped.

Reads ``fgvc-aircraft-2013b/data/``: ``images_{level}_{split}.txt`` with lines ``ID LABEL``
where LABEL may hold spaces and slashes (so each line is split on its first space only), the
name lists ``manufacturers.txt``, ``families.txt``, ``variants.txt``, and ``images/<ID>.jpg``,
whose bottom 20 rows (the copyright banner) are cropped. Class counts come from the files.
"""

from __future__ import annotations

import numpy as np

from rascal_train.datasets.base import HierDataset, register_dataset
from rascal_train.datasets.folder import ImageFiles, find_root
from rascal_train.datasets.longtail import apply_train_options
from rascal_train.errors import RascalError

SOURCE = "https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/ (fgvc-aircraft-2013b.tar.gz)"
LEVELS = ("manufacturer", "family", "variant")
SPLITS = ("train", "val", "trainval", "test")
BANNER = 20


@register_dataset("aircraft")
def aircraft(root=None, split: str = "train", label_level: str | None = None, seed: int = 0,
             imbalance: float | None = None, label_noise: float = 0.0) -> HierDataset:
    """FGVC-Aircraft: levels ``("manufacturer", "family", "variant")``, trains on ``variant``."""
    if split not in SPLITS:
        raise RascalError(f"FGVC-Aircraft has splits {', '.join(SPLITS)}. Got {split!r} instead.")
    base = find_root(root, "data/variants.txt", "fgvc-aircraft-2013b", SOURCE) / "data"
    ids, labels, names = None, {}, {}
    for level in LEVELS:
        path = base / f"images_{level}_{split}.txt"
        if not path.exists():
            raise RascalError(f"Dataset root has no {path}; download FGVC-Aircraft from {SOURCE}.")
        rows = [line.split(" ", 1) for line in path.read_text().splitlines() if line.strip()]
        names[level] = [n.strip() for n in (base / f"{level}s.txt").read_text().splitlines() if n.strip()]
        index = {n: i for i, n in enumerate(names[level])}
        level_ids = [r[0] for r in rows]
        if ids is None:
            ids = level_ids
        elif level_ids != ids:
            raise RascalError(f"{path} lists other images than images_{LEVELS[0]}_{split}.txt; "
                              f"re-extract FGVC-Aircraft from {SOURCE}.")
        try:
            labels[level] = np.array([index[r[1].strip()] for r in rows], dtype=np.int64)
        except KeyError as exc:
            raise RascalError(f"{path} has label {exc.args[0]!r}, which {level}s.txt does not list; "
                              f"re-extract FGVC-Aircraft from {SOURCE}.") from None
    files = ImageFiles([base / "images" / f"{i}.jpg" for i in ids], crop_bottom=BANNER)
    ds = HierDataset(name="aircraft", split=split, levels=LEVELS, labels=labels, class_names=names,
                     train_level=label_level or "variant", load_image=files,
                     meta={"root": str(base.parent), "image_ids": ids})
    return apply_train_options(ds, imbalance, label_noise, seed)
