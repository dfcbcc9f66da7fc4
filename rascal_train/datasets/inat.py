"""iNaturalist 2018: kingdom > phylum > class > order > family > genus > species.

Reads the COCO-style ``train2018.json`` / ``val2018.json``: ``images`` (``id``, ``file_name``
relative to the data root), ``annotations`` (``image_id``, ``category_id``) and ``categories``
(``id``, ``name`` (the species) and one field per taxonomic rank).
"""

from __future__ import annotations

import json

import numpy as np

from rascal_train.datasets.base import HierDataset, register_dataset
from rascal_train.datasets.folder import ImageFiles, find_root
from rascal_train.datasets.longtail import apply_train_options
from rascal_train.errors import RascalError

SOURCE = "https://github.com/visipedia/inat_comp/tree/master/2018 (train2018.json, val2018.json, train_val2018.tar.gz)"
RANKS = ("kingdom", "phylum", "class", "order", "family", "genus")
LEVELS = RANKS + ("species",)
# The public 2018 test set has no labels; papers report on val, so "test" reads val too.
FILES = {"train": "train2018.json", "val": "val2018.json", "test": "val2018.json"}


@register_dataset("inat")
def inat(root=None, split: str = "train", label_level: str | None = None, seed: int = 0,
         imbalance: float | None = None, label_noise: float = 0.0) -> HierDataset:
    """iNaturalist 2018 with its taxonomy as levels; trains on ``species``."""
    if split not in FILES:
        raise RascalError(f"iNaturalist 2018 has splits 'train', 'val' and 'test' (= val). Got {split!r} instead.")
    base = find_root(root, FILES[split], "inat2018", SOURCE)
    try:
        doc = json.loads((base / FILES[split]).read_text())
        categories = sorted(doc["categories"], key=lambda c: c["id"])
        file_of = {im["id"]: im["file_name"] for im in doc["images"]}
        annotations = doc["annotations"]
    except (json.JSONDecodeError, KeyError) as exc:
        raise RascalError(f"{base / FILES[split]} is not an iNaturalist JSON ({exc}); download it from {SOURCE}.") from None
    species_of = {c["id"]: i for i, c in enumerate(categories)}
    names = {"species": [c["name"] for c in categories]}
    per_species = {}
    for rank in RANKS:
        names[rank] = sorted({c[rank] for c in categories})
        index = {n: i for i, n in enumerate(names[rank])}
        per_species[rank] = np.array([index[c[rank]] for c in categories], dtype=np.int64)
    annotations = sorted(annotations, key=lambda a: a["image_id"])
    species = np.array([species_of[a["category_id"]] for a in annotations], dtype=np.int64)
    labels = {rank: per_species[rank][species] for rank in RANKS}
    labels["species"] = species
    ds = HierDataset(name="inat", split=split, levels=LEVELS, labels=labels, class_names=names,
                     train_level=label_level or "species",
                     load_image=ImageFiles([base / file_of[a["image_id"]] for a in annotations]),
                     meta={"root": str(base), "image_ids": np.array([a["image_id"] for a in annotations])})
    return apply_train_options(ds, imbalance, label_noise, seed)
