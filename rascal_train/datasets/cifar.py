"""CIFAR-100 (coarse > fine) read from the official Python pickles, and CIFAR-100-LT.

torchvision's ``CIFAR100`` drops the coarse labels and insists on its own md5 sums, so the
pickles (``cifar-100-python/{train,test,meta}``) are read directly. Their keys are bytes when
written by Python 2 (the official files) and str otherwise; both are accepted. Unpickling is
restricted to the NumPy array classes the format needs.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from rascal_train.datasets.base import HierDataset, register_dataset
from rascal_train.datasets.folder import find_root
from rascal_train.datasets.longtail import apply_train_options
from rascal_train.errors import RascalError

SOURCE = "https://www.cs.toronto.edu/~kriz/cifar.html (CIFAR-100 python version)"
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR pickle")
        return super().find_class(module, name)


def _text(v):
    return v.decode("latin1") if isinstance(v, bytes) else v


def read_pickle(path: Path) -> dict:
    """A CIFAR pickle as a dict with str keys (and str values where the file has bytes)."""
    try:
        with open(path, "rb") as fh:
            raw = _ArrayUnpickler(fh, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise RascalError(f"{path} is not a CIFAR-100 pickle ({exc}); download it again from "
                          f"{SOURCE}.") from exc
    out = {}
    for k, v in raw.items():
        out[_text(k)] = [_text(x) for x in v] if isinstance(v, list) else _text(v)
    return out


def read_cifar100(root, split: str) -> tuple[np.ndarray, dict, dict]:
    """Images (N, 32, 32, 3) uint8, labels {"coarse", "fine"} and class names of one split."""
    if split not in ("train", "test"):
        raise RascalError(f"CIFAR-100 has splits 'train' and 'test'. Got {split!r} instead.")
    base = find_root(root, split, "cifar-100-python", SOURCE)
    meta_path = base / "meta"
    if not meta_path.exists():
        raise RascalError(f"Dataset root has no {meta_path}; download CIFAR-100 from {SOURCE}.")
    data, meta = read_pickle(base / split), read_pickle(meta_path)
    for path, doc, keys in ((base / split, data, ("data", "fine_labels", "coarse_labels")),
                            (meta_path, meta, ("fine_label_names", "coarse_label_names"))):
        missing = [key for key in keys if key not in doc]
        if missing:
            raise RascalError(f"{path} has no {missing[0]!r} key (it has "
                              f"{', '.join(sorted(doc))}); the coarse > fine hierarchy needs the "
                              f"official CIFAR-100 python files from {SOURCE}.")
    images = np.asarray(data["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    labels = {level: np.asarray(data[f"{level}_labels"], dtype=np.int64)
              for level in ("coarse", "fine")}
    names = {level: list(meta[f"{level}_label_names"]) for level in ("coarse", "fine")}
    return np.ascontiguousarray(images), labels, names


@register_dataset("cifar100")
def cifar100(root=None, split: str = "train", label_level: str | None = None, seed: int = 0,
             imbalance: float | None = None, label_noise: float = 0.0) -> HierDataset:
    """CIFAR-100: levels ``("coarse", "fine")``, trains on ``fine`` by default."""
    images, labels, names = read_cifar100(root, split)
    ds = HierDataset(name="cifar100", split=split, levels=("coarse", "fine"), labels=labels,
                     class_names=names, train_level=label_level or "fine", images=images,
                     meta={"root": str(root)})
    return apply_train_options(ds, imbalance, label_noise, seed)


@register_dataset("cifar100_lt")
def cifar100_lt(root=None, split: str = "train", label_level: str | None = None, seed: int = 0,
                imbalance: float | None = 100, label_noise: float = 0.0) -> HierDataset:
    """CIFAR-100-LT: the training split cut to the exponential profile (default IF=100).

    ``n_i = int(500 * (1/IF) ** (i / 99))`` fine-class images, the first of a seeded shuffle;
    the test split stays balanced.
    """
    ds = cifar100(root, split, label_level, seed, imbalance or 100, label_noise)
    ds.name = "cifar100_lt"
    return ds
