"""Image files on disk: ImageNet-style class folders and long-tail list files (``imagefolder``).

Also home of :class:`ImageFiles`, the picklable image decoder every file-backed loader
(Aircraft, CUB, Cars, iNaturalist, folders) hands to :class:`HierDataset` as ``load_image``.

Layouts read by ``get_dataset("imagefolder", root, split)``:

- a list file ``root/<anything>_<split>.txt`` (ImageNet-LT, Places-LT: lines
  ``relative/path label``, paths relative to ``root``; the class name of a label is the folder
  of its first image), or an explicit ``list_file=``;
- otherwise class folders ``root/<split>/<class>/<image>`` (ImageNet as released and as
  torchvision's ``ImageNet`` / ``ImageFolder`` read it: classes are the sorted folder names,
  images found and ordered by torchvision's own ``make_dataset``).

ImageNet and Places-LT have no labelled test split: ``split="test"`` reads ``val`` where the
root has no ``test`` folder or list file (``meta["read_split"]`` says which was read), so
training monitors and ``rascal analyze`` work on the release as it is.

An optional ``parents=`` file with lines ``class parent`` (e.g. WordNet parents of ImageNet
classes) adds a coarse level ``"parent"`` above ``"class"``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rascal_train.datasets.base import HierDataset, register_dataset
from rascal_train.datasets.longtail import apply_train_options
from rascal_train.errors import RascalError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff")


class ImageFiles:
    """Decode image ``i`` of a list of files as an RGB PIL image, cropped.

    Parameters
    ----------
    paths : sequence of str
    boxes : ndarray of shape (n, 4), optional
        Per-image crop ``(left, top, right, bottom)`` in pixels (CUB, Cars bounding boxes).
    crop_bottom : int, default=0
        Pixels removed from the bottom of every image (FGVC-Aircraft's 20-pixel banner).
    """

    def __init__(self, paths, boxes: np.ndarray | None = None, crop_bottom: int = 0):
        self.paths = [str(p) for p in paths]
        self.boxes = boxes
        self.crop_bottom = crop_bottom

    def __len__(self) -> int:
        return len(self.paths)

    def __call__(self, index: int):
        from PIL import Image

        with Image.open(self.paths[index]) as img:
            img = img.convert("RGB")
        if self.crop_bottom:
            img = img.crop((0, 0, img.width, img.height - self.crop_bottom))
        if self.boxes is not None:
            img = img.crop(tuple(int(v) for v in self.boxes[index]))
        return img

    def subset(self, indices) -> "ImageFiles":
        return ImageFiles([self.paths[i] for i in indices],
                          None if self.boxes is None else self.boxes[indices], self.crop_bottom)


def require(path: Path, what: str, source: str) -> Path:
    """``path`` if it exists, else a one-line :class:`RascalError` naming it and the source."""
    if not path.exists():
        raise RascalError(f"Dataset root has no {path}; {what} Download it from {source} "
                          f"and pass its parent folder as --data-root.")
    return path


def find_root(root, marker: str, name: str, source: str) -> Path:
    """The folder holding ``marker`` among ``root`` and ``root/name`` (users pass either)."""
    if root is None:
        raise RascalError(f"Dataset {name!r} needs --data-root; download it from {source}.")
    root = Path(root).expanduser()
    for base in (root / name, root):
        if (base / marker).exists():
            return base
    raise RascalError(f"Dataset root {root} has no {name}/{marker}; download {name} from {source} "
                      f"and pass its parent folder as --data-root.")


def _read_parents(path, class_names):
    lines = dict(line.split(None, 1) for line in Path(path).read_text().splitlines()
                 if line.strip())
    missing = [c for c in class_names if c not in lines]
    if missing:
        raise RascalError(f"Parents file {path} has no line for class {missing[0]!r}; add a line "
                          f"'{missing[0]} PARENT' for every class.")
    parent_of = [lines[c].strip() for c in class_names]
    parents = sorted(set(parent_of))
    return parents, np.array([parents.index(p) for p in parent_of], dtype=np.int64)


def _readable_split(root: Path, split: str) -> str:
    """``split``, or ``"val"`` for a ``"test"`` the release does not have (ImageNet, Places-LT)."""
    has = lambda s: (root / s).is_dir() or any(root.glob(f"*_{s}.txt"))  # noqa: E731
    return "val" if split == "test" and not has("test") and has("val") else split


@register_dataset("imagefolder")
def imagefolder(root=None, split: str = "train", label_level: str | None = None, seed: int = 0,
                imbalance: float | None = None, label_noise: float = 0.0, list_file=None,
                parents=None) -> HierDataset:
    """ImageNet-style folders or LT list files; levels ``("class",)`` or ``("parent", "class")``."""
    if root is None:
        raise RascalError("Dataset 'imagefolder' needs --data-root: a folder of "
                          "<split>/<class>/<image> folders or of *_<split>.txt list files "
                          "(ImageNet-LT, Places-LT).")
    root = Path(root).expanduser()
    read_split = split
    if list_file is None:
        read_split = _readable_split(root, split)
        candidates = sorted(root.glob(f"*_{read_split}.txt"))
        list_file = candidates[0] if len(candidates) == 1 else None
    if list_file is not None:
        list_file = require(Path(list_file) if Path(list_file).is_absolute() else root / list_file,
                            "a list file of 'relative/path label' lines is expected.",
                            "the ImageNet-LT / Places-LT release "
                            "(https://github.com/zhmiao/OpenLongTailRecognition-OLTR)")
        rows = [line.rsplit(None, 1) for line in list_file.read_text().splitlines() if line.strip()]
        paths = [root / p.lstrip("/") for p, _ in rows]
        targets = np.array([int(lab) for _, lab in rows], dtype=np.int64)
        first = {}
        for p, t in zip(paths, targets.tolist()):
            first.setdefault(t, p.parent.name)
        class_names = [first.get(c, str(c)) for c in range(int(targets.max()) + 1)]
        source = str(list_file)
    else:
        from torchvision.datasets.folder import make_dataset

        split_dir = root / read_split
        if not split_dir.is_dir():
            stand_in = " (nor a val split to read instead)" if split == "test" else ""
            raise RascalError(f"Dataset root {root} has neither {split_dir} (class folders) nor "
                              f"one *_{split}.txt list file{stand_in}; point --data-root at an "
                              "ImageNet-style folder.")
        class_names = sorted(d.name for d in split_dir.iterdir() if d.is_dir())
        samples = make_dataset(split_dir, {c: i for i, c in enumerate(class_names)}, IMAGE_SUFFIXES,
                               allow_empty=True)
        if not samples:
            raise RascalError(f"No images under {split_dir}; expected "
                              f"{split_dir}/<class>/<image>.jpg.")
        paths = [Path(p) for p, _ in samples]
        targets = np.array([t for _, t in samples], dtype=np.int64)
        source = str(split_dir)
    levels, labels, names = ("class",), {"class": targets}, {"class": class_names}
    if parents is not None:
        parent_names, parent_of = _read_parents(parents, class_names)
        levels = ("parent", "class")
        labels["parent"], names["parent"] = parent_of[targets], parent_names
    ds = HierDataset(name="imagefolder", split=split, levels=levels, labels=labels,
                     class_names=names, train_level=label_level or "class",
                     load_image=ImageFiles(paths),
                     meta={"source": source, "read_split": read_split})
    return apply_train_options(ds, imbalance, label_noise, seed)
