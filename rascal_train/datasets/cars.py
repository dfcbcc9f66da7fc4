"""Stanford Cars: make > model-year (196 classes), in torchvision's layout.

``stanford_cars/devkit/cars_meta.mat`` (``class_names``), ``devkit/cars_train_annos.mat`` and
``cars_test_annos_withlabels.mat`` (``annotations`` with ``bbox_x1..bbox_y2``, ``class``
(1-based) and ``fname``), images in ``cars_train/`` and ``cars_test/``. Class names are
"Make Model [Type] Year"; makes can be several words ("Aston Martin", "AM General"), so the make
of a class is the longest known make its name starts with, and the first word otherwise.
"""

from __future__ import annotations

import numpy as np

from rascal_train.datasets.base import HierDataset, register_dataset
from rascal_train.datasets.folder import ImageFiles, find_root
from rascal_train.datasets.longtail import apply_train_options
from rascal_train.errors import RascalError

SOURCE = ("https://ai.stanford.edu/~jkrause/cars/car_dataset.html (torchvision StanfordCars "
          "layout: stanford_cars/devkit, cars_train, cars_test, cars_test_annos_withlabels.mat)")
#: The 49 makes of Stanford Cars.
MAKES = (
    "AM General", "Acura", "Aston Martin", "Audi", "BMW", "Bentley", "Bugatti", "Buick", "Cadillac",
    "Chevrolet", "Chrysler", "Daewoo", "Dodge", "Eagle", "FIAT", "Ferrari", "Fisker", "Ford", "GMC",
    "Geo", "HUMMER", "Honda", "Hyundai", "Infiniti", "Isuzu", "Jaguar", "Jeep", "Lamborghini",
    "Land Rover", "Lincoln", "MINI", "Maybach", "Mazda", "McLaren", "Mercedes-Benz", "Mitsubishi",
    "Nissan", "Plymouth", "Porsche", "Ram", "Rolls-Royce", "Scion", "Spyker", "Suzuki", "Tesla",
    "Toyota", "Volkswagen", "Volvo", "smart",
)


def make_of(class_name: str) -> str:
    """The make of a "Make Model [Type] Year" class name."""
    known = [m for m in MAKES if class_name == m or class_name.startswith(m + " ")]
    return max(known, key=len) if known else class_name.split(" ", 1)[0]


def _loadmat(path):
    from scipy.io import loadmat

    if not path.exists():
        raise RascalError(f"Dataset root has no {path}; download Stanford Cars from {SOURCE}.")
    return loadmat(str(path), squeeze_me=True)


@register_dataset("cars")
def cars(root=None, split: str = "train", label_level: str | None = None, seed: int = 0,
         imbalance: float | None = None, label_noise: float = 0.0,
         bbox_crop: bool = False) -> HierDataset:
    """Stanford Cars: levels ``("make", "model")``, trains on ``model``."""
    if split not in ("train", "test"):
        raise RascalError(f"Stanford Cars has splits 'train' and 'test'. Got {split!r} instead.")
    base = find_root(root, "devkit", "stanford_cars", SOURCE)
    model_names = [str(n).strip() for n in
                   np.atleast_1d(_loadmat(base / "devkit" / "cars_meta.mat")["class_names"])]
    annos_path = (base / "devkit" / "cars_train_annos.mat" if split == "train"
                  else base / "cars_test_annos_withlabels.mat")
    annos = np.atleast_1d(_loadmat(annos_path)["annotations"])
    model = np.array([int(a["class"]) - 1 for a in annos], dtype=np.int64)
    folder = base / f"cars_{split}"
    boxes = None
    if bbox_crop:
        boxes = np.array([[int(a[k]) for k in ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2")]
                          for a in annos])
    make_names = sorted({make_of(n) for n in model_names})
    make_of_model = np.array([make_names.index(make_of(n)) for n in model_names], dtype=np.int64)
    ds = HierDataset(name="cars", split=split, levels=("make", "model"),
                     labels={"make": make_of_model[model], "model": model},
                     class_names={"make": make_names, "model": model_names},
                     train_level=label_level or "model",
                     load_image=ImageFiles([folder / str(a["fname"]) for a in annos], boxes),
                     meta={"root": str(base)})
    return apply_train_options(ds, imbalance, label_noise, seed)
