"""The common-corruption benchmarks' files: CIFAR-100-C and ImageNet-C as test splits.

CIFAR-100-C (https://zenodo.org/record/3555552): ``<corruption>.npy`` uint8 (50000, 32, 32, 3),
rows ``[10000 (s - 1), 10000 s)`` at severity ``s``, and ``labels.npy``; the rows are the CIFAR
test split in order. ImageNet-C (https://zenodo.org/record/2235448):
``<corruption>/<severity>/<wnid>/*.JPEG``, the 224-px centre crops of the validation images.
Where a CIFAR-C file is missing, :func:`corrupted_test_sets` generates that corruption with
:func:`rascal_train.corruptions.corrupt`; ImageNet-C is only read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from rascal_train.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from rascal_train.datasets.base import HierDataset
from rascal_train.datasets.folder import ImageFiles
from rascal_train.errors import RascalError
from rascal_train.transforms import MEAN, STD

#: The folder names of CIFAR-100-C and ImageNet-C as extracted from their archives, looked for
#: under the data root (CIFAR-100-C for in-memory test splits, ImageNet-C for file-backed ones).
CIFAR_C_DIRNAME = "CIFAR-100-C"
IMAGENET_C_DIRNAME = "ImageNet-C"
CIFAR_C_URL = "https://zenodo.org/record/3555552"
IMAGENET_C_URL = "https://zenodo.org/record/2235448"


def load_cifar_c(root, corruption: str, severity: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of severity ``severity`` of ``<root>/<corruption>.npy`` and their labels.

    Returns
    -------
    images : ndarray of shape (n, 32, 32, 3), dtype uint8
    labels : ndarray of shape (n,), dtype int64
    """
    root = Path(root)
    path, labels_path = root / f"{corruption}.npy", root / "labels.npy"
    for p in (path, labels_path):
        if not p.is_file():
            raise RascalError(f"CIFAR-C directory {root} has no {p.name}; download CIFAR-100-C "
                              f"from {CIFAR_C_URL} and pass the extracted CIFAR-100-C folder as "
                              "--corruptions-root.")
    data = np.load(path, mmap_mode="r")
    labels = np.load(labels_path)
    if len(data) % len(SEVERITIES) or len(labels) != len(data):
        raise RascalError(f"{path} has {len(data)} rows and {labels_path.name} {len(labels)}; "
                          "expected equal counts divisible by 5 (one block per severity). "
                          "Re-download CIFAR-100-C.")
    per = len(data) // len(SEVERITIES)
    rows = slice(per * (severity - 1), per * severity)
    return np.ascontiguousarray(data[rows]), labels[rows].astype(np.int64)


def corrupted_test_sets(images: np.ndarray, labels: np.ndarray, root=None,
                        corruptions=CORRUPTIONS, severities=SEVERITIES,
                        seed: int = 0) -> Iterator[dict]:
    """Every (corruption, severity) version of a CIFAR-sized test split.

    Reads ``root`` (a CIFAR-100-C folder) where it has ``<corruption>.npy``, else generates from
    ``images`` with :func:`rascal_train.corruptions.corrupt`.

    Yields
    ------
    dict
        ``corruption``, ``severity``, ``images`` (uint8 (n, H, W, 3)), ``labels`` (int64 (n,)),
        ``source`` (``"file"`` or ``"generated"``).
    """
    for name in corruptions:
        from_file = root is not None and (Path(root) / f"{name}.npy").is_file()
        for s in severities:
            if from_file:
                imgs, labs = load_cifar_c(root, name, s)
            else:
                imgs, labs = corrupt(images, name, s, seed), np.asarray(labels, dtype=np.int64)
            yield {"corruption": name, "severity": s, "images": imgs, "labels": labs,
                   "source": "file" if from_file else "generated"}


def imagenet_c_files(root, corruption: str, severity: int) -> list[tuple[Path, str]]:
    """``(path, wnid)`` of every image of ``<root>/<corruption>/<severity>/<wnid>/*.JPEG``,
    sorted."""
    folder = Path(root) / corruption / str(severity)
    if not folder.is_dir():
        raise RascalError(f"ImageNet-C directory {root} has no {corruption}/{severity}/; download "
                          f"ImageNet-C from {IMAGENET_C_URL} and pass its root as "
                          "--corruptions-root.")
    return [(p, p.parent.name) for p in sorted(folder.glob("*/*"))
            if p.suffix.lower() in (".jpeg", ".jpg", ".png")]


def imagenet_c_test_sets(test_set: HierDataset, root, corruptions=CORRUPTIONS,
                         severities=SEVERITIES) -> dict[tuple[str, int], HierDataset]:
    """The ImageNet-C images of a file-backed test split's classes, per (corruption, severity).

    Each ``wnid`` folder is matched to a class name of the split's finest level (for
    ``imagefolder``, the class folder names) and labelled with that class's ``train_level``
    label, read off the test split. Every folder is listed and matched before any image is
    read, so that a missing or foreign folder fails at once rather than after hours of feature
    extraction.

    Parameters
    ----------
    test_set : HierDataset
        A file-backed test split.
    root : str or Path or None
        The ImageNet-C root ``<root>/<corruption>/<severity>/<wnid>/*.JPEG`` (required).
    corruptions : sequence of str, default=CORRUPTIONS
    severities : sequence of int, default=SEVERITIES

    Returns
    -------
    dict of (str, int) to HierDataset
        One level, ``test_set.train_level``; images read from the files (use
        :func:`imagenet_c_transform`).
    """
    if root is None:
        raise RascalError(f"Corruption accuracy of the file-backed test split of {test_set.name!r} "
                          "is measured on ImageNet-C; pass --corruptions-root pointing at the "
                          "ImageNet-C folder (<corruption>/<severity>/<wnid>/*.JPEG) or put it at "
                          f"<data-root>/{IMAGENET_C_DIRNAME}.")
    level, fine = test_set.train_level, test_set.levels[-1]
    class_index = {name: i for i, name in enumerate(test_set.class_names[fine])}
    # Class folders name finest-level classes; their train-level label is read off the test split.
    to_train = np.full(len(class_index), -1, dtype=np.int64)
    to_train[test_set.labels[fine]] = test_set.labels[level]
    sets = {}
    for name in corruptions:
        for s in severities:
            files = imagenet_c_files(root, name, s)
            folder = Path(root) / name / str(s)
            if not files:
                raise RascalError(f"ImageNet-C folder {folder} holds no images; expected "
                                  f"{folder}/<wnid>/*.JPEG. Re-extract ImageNet-C "
                                  "(https://github.com/hendrycks/robustness).")
            labels = np.array([to_train[class_index[w]] if w in class_index else -1
                               for _, w in files], dtype=np.int64)
            if (labels < 0).any():
                wnid = files[int(np.argmax(labels < 0))][1]
                raise RascalError(f"ImageNet-C folder {folder / wnid} is class {wnid!r}, which is "
                                  f"not a {fine!r} class with test images in {test_set.name!r}; "
                                  "pass as --corruptions-root an ImageNet-C holding only the test "
                                  "split's classes.")
            sets[name, s] = HierDataset(
                name=f"{test_set.name}-c", split=test_set.split, levels=(level,),
                labels={level: labels}, class_names={level: test_set.class_names[level]},
                train_level=level, load_image=ImageFiles([p for p, _ in files]),
                meta={"source": str(folder)})
    return sets


def imagenet_c_transform(image_size: int):
    """Test-time transform of ImageNet-C images.

    PIL image -> float32 tensor of shape (3, image_size, image_size).

    ImageNet-C images are already the 224-px centre crops of the validation images (resize 256,
    crop 224), so :func:`rascal_train.transforms.eval_transform` would crop them a second time.
    They are only resized (shorter side to ``image_size``; a no-op at 224, the published
    protocol), centre-cropped and normalised, which frames them as the clean images are framed.
    """
    from torchvision import transforms as T

    return T.Compose([T.Resize(image_size), T.CenterCrop(image_size), T.ToTensor(),
                      T.Normalize(MEAN, STD)])
