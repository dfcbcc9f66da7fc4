"""iNaturalist: kingdom > phylum > class > order > family > genus > species.

Two layouts are read, whichever the data root holds:

- **2021, as torchvision's ``INaturalist`` lays it out**: ``<root>/2021_train/``,
  ``2021_train_mini/`` and ``2021_valid/``, one folder per category named
  ``NNNNN_Kingdom_Phylum_Class_Order_Family_Genus_species`` (``NNNNN`` = the category id, the
  folders' sorted position). The taxonomy comes from the folder names; every rank is numbered in
  order of first appearance over the sorted folders, as torchvision numbers it, and the species
  label is the category id. Files inside a folder are taken in sorted order.
- **2017-2019 COCO-style JSON** (``train2018.json`` / ``val2018.json``, likewise 2019 and 2017):
  ``images`` (``id``, ``file_name`` relative to the data root), ``annotations`` (``image_id``,
  ``category_id``) and ``categories`` (``id``, ``name`` (the species) and one field per rank);
  samples in image-id order. A ``file_name`` under ``train_val2018/`` is also found under
  ``2018/``, where torchvision's download renames that folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rascal_train.datasets.base import HierDataset, register_dataset
from rascal_train.datasets.folder import IMAGE_SUFFIXES, ImageFiles
from rascal_train.datasets.longtail import apply_train_options
from rascal_train.errors import RascalError

SOURCE = ("https://github.com/visipedia/inat_comp (2021: train.tar.gz / train_mini.tar.gz / "
          "val.tar.gz extracted as torchvision names them, 2021_train/, 2021_train_mini/, "
          "2021_valid/; 2017-2019: trainYYYY.json, valYYYY.json and the images)")
RANKS = ("kingdom", "phylum", "class", "order", "family", "genus")
LEVELS = RANKS + ("species",)
SPLITS = ("train", "train_mini", "val", "test")
# The public test sets have no labels; papers report on val, so "test" reads val too.
FOLDERS_2021 = {"train": ("2021_train", "2021_train_mini"), "train_mini": ("2021_train_mini",),
                "val": ("2021_valid",), "test": ("2021_valid",)}
YEARS = ("2019", "2018", "2017")
#: The image folder each year's archive extracts to, and the name torchvision's download
#: renames it to.
ARCHIVE_DIRS = {"2017": "train_val_images", "2018": "train_val2018", "2019": "train_val2019"}


@register_dataset("inat")
def inat(root=None, split: str = "train", label_level: str | None = None, seed: int = 0,
         imbalance: float | None = None, label_noise: float = 0.0) -> HierDataset:
    """iNaturalist 2021 (folders) or 2017-2019 (JSON) with its taxonomy as levels; trains on
    ``species``."""
    if split not in SPLITS:
        raise RascalError(f"iNaturalist has splits {', '.join(SPLITS)} (test = val). Got {split!r} "
                          "instead.")
    if root is None:
        raise RascalError(f"Dataset 'inat' needs --data-root; download iNaturalist from {SOURCE}.")
    root = Path(root).expanduser()
    bases = [root, root / "inat2021", root / "inat2018", root / "inat2019", root / "inat2017"]
    for base in bases:
        folder = next((base / f for f in FOLDERS_2021[split] if (base / f).is_dir()), None)
        if folder is not None:
            return apply_train_options(_read_2021(folder, split, label_level), imbalance,
                                       label_noise, seed)
        json_split = "train" if split.startswith("train") else "val"
        doc = next((base / f"{json_split}{y}.json" for y in YEARS
                    if (base / f"{json_split}{y}.json").is_file()), None)
        if doc is not None:
            return apply_train_options(_read_json(doc, split, label_level), imbalance, label_noise,
                                       seed)
    wanted = " or ".join(f"{root}/{f}" for f in FOLDERS_2021[split])
    raise RascalError(f"Dataset root {root} has neither {wanted} (iNaturalist 2021) nor "
                      f"{'train' if split.startswith('train') else 'val'}{YEARS[1]}.json "
                      f"(2017-2019); download iNaturalist from {SOURCE} and pass its folder as "
                      "--data-root.")


def _read_2021(folder: Path, split: str, label_level: str | None) -> HierDataset:
    categories = sorted(d.name for d in folder.iterdir() if d.is_dir())
    index = {rank: {} for rank in RANKS}
    per_category = {rank: [] for rank in RANKS}
    species_names = []
    for cid, name in enumerate(categories):
        pieces = name.split("_")
        if len(pieces) != 8 or pieces[0] != f"{cid:05d}":
            raise RascalError(f"{folder / name} is not an iNaturalist 2021 category folder "
                              "(expected "
                              f"{cid:05d}_Kingdom_Phylum_Class_Order_Family_Genus_species); "
                              f"re-extract it from {SOURCE}.")
        for rank, value in zip(RANKS, pieces[1:7]):
            per_category[rank].append(index[rank].setdefault(value, len(index[rank])))
        species_names.append(f"{pieces[6]} {pieces[7]}")
    paths, species = [], []
    for cid, name in enumerate(categories):
        files = sorted(f for f in (folder / name).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        paths += files
        species += [cid] * len(files)
    if not paths:
        raise RascalError(f"No images under {folder}; expected "
                          f"{folder}/NNNNN_Kingdom_..._species/<image>.jpg.")
    species = np.array(species, dtype=np.int64)
    labels = {rank: np.array(per_category[rank], dtype=np.int64)[species] for rank in RANKS}
    labels["species"] = species
    names = {rank: list(index[rank]) for rank in RANKS}
    names["species"] = species_names
    return HierDataset(name="inat", split=split, levels=LEVELS, labels=labels, class_names=names,
                       train_level=label_level or "species", load_image=ImageFiles(paths),
                       meta={"root": str(folder.parent), "layout": folder.name})


def _image_path(base: Path, file_name: str) -> Path:
    path = base / file_name
    if not path.exists():
        head, _, rest = file_name.partition("/")
        year = next((y for y, d in ARCHIVE_DIRS.items() if d == head), None)
        if year is not None and (base / year).is_dir():
            return base / year / rest
    return path


def _read_json(path: Path, split: str, label_level: str | None) -> HierDataset:
    base = path.parent
    try:
        doc = json.loads(path.read_text())
        categories = sorted(doc["categories"], key=lambda c: c["id"])
        file_of = {im["id"]: im["file_name"] for im in doc["images"]}
        annotations = doc["annotations"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise RascalError(f"{path} is not an iNaturalist JSON ({exc}); download it from "
                          f"{SOURCE}.") from None
    missing = [rank for rank in RANKS if categories and rank not in categories[0]]
    if missing:
        raise RascalError(f"The categories of {path} have no {missing[0]!r} field (iNaturalist "
                          "2017 lists only a supercategory); use the 2018, 2019 or 2021 release "
                          f"from {SOURCE}.")
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
    return HierDataset(name="inat", split=split, levels=LEVELS, labels=labels, class_names=names,
                       train_level=label_level or "species",
                       load_image=ImageFiles([_image_path(base, file_of[a["image_id"]])
                                              for a in annotations]),
                       meta={"root": str(base), "layout": path.name,
                             "image_ids": np.array([a["image_id"] for a in annotations])})
