"""Embeddings to analyse: from a checkpoint (run once over a split, cached on disk) or an `.npz`
file.

Embedding file format (``.npz``, read without pickle):

- ``embeddings``: float array (n_samples, dim), required; float32 or float16 (half the disk and
  memory, widened where a metric reads it); in an uncompressed ``.npz`` (``np.savez``) it and
  ``features`` are memory-mapped, read-only, not copied into memory;
- labels: either ``labels`` (int array (n_samples,), one level called ``"label"``) or one
  ``labels_<level>`` int array per level; optional ``levels`` (str array) gives their order from
  coarse to fine, otherwise levels are ordered by their number of classes;
- optional ``class_names_<level>`` (str array), ``attributes`` (bool or 0/1 array
  (n_samples, n_attributes)), ``attribute_names`` (str array, ``"group::value"``), ``features``
  (float array (n_samples, feature_dim): raw backbone rows).

The cache of checkpoint embeddings is keyed by everything that changes the rows
(:func:`cache_key`): the SHA-256 of the checkpoint file (its weights, and its config: dataset,
label level, image size, ``limit``, imbalance, label noise), the split, the data root read, the
device type and the precision. Extraction for analysis runs in float32 on every device: bf16
would add rank noise that depends on the device. Data files edited in place under the same
root are not detected; pass ``use_cache=False`` (``--no-cache``) after changing them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rascal_train.errors import RascalError
from rascal_train.files import atomic_write_bytes

# Without class names, labels may reach max(n_samples, this): ImageNet-21k has ~22k classes.
MAX_UNNAMED_CLASSES = 100_000


#: File suffixes read as checkpoints: rascal and torchvision ``.pt`` / ``.pth``, SupContrast
#: ``.pth``, Lightning ``.ckpt``.
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


@dataclass
class EmbeddingSet:
    """Embeddings of one split with labels at every hierarchy level.

    Attributes
    ----------
    embeddings : ndarray of shape (n_samples, dim), float32 or float16
        The rows analysed by default (a checkpoint's projections); from a large file, a
        read-only memory map.
    labels : dict of str to ndarray of shape (n_samples,), int64
        Coarse to fine (dict order).
    class_names : dict of str to list of str
    features : ndarray of shape (n_samples, feature_dim), float32 or float16, or None
        Raw backbone features (a checkpoint's encoder output).
    attributes : ndarray of shape (n_samples, n_attributes), bool, or None
    attribute_names : list of str, or None
    source : dict
        ``kind`` ("checkpoint" | "embeddings"), ``path``, ``run_dir``, ``epoch``, ``config``,
        ``split``.
    """

    embeddings: np.ndarray
    labels: dict[str, np.ndarray]
    class_names: dict[str, list[str]]
    features: np.ndarray | None = None
    attributes: np.ndarray | None = None
    attribute_names: list[str] | None = None
    source: dict = field(default_factory=dict)

    @property
    def levels(self) -> list[str]:
        return list(self.labels)

    def __len__(self) -> int:
        return len(self.embeddings)

    def rows(self, embedding: str = "projection") -> np.ndarray:
        """The rows a diagnostic reads: ``"projection"`` (``embeddings``) or ``"feature"``
        (``features``, a one-line error where the source has none)."""
        if embedding != "feature":
            return self.embeddings
        if self.features is None:
            raise RascalError(f"{self.source.get('path', 'The embeddings')} has no backbone "
                              "features; use --embedding projection.")
        return self.features


def _npz_error(path, what: str) -> RascalError:
    return RascalError(f"Embedding file {path} {what}; see `rascal analyze --help` for the .npz "
                       "format.")


#: The arrays of an embedding file that are memory-mapped when stored uncompressed.
MAPPED = ("embeddings", "features")


def _mapped_member(path: Path, info: zipfile.ZipInfo) -> np.memmap | None:
    """A stored (uncompressed) ``.npy`` member of a zip as a read-only memory map, else None.

    ``np.load`` reads every ``.npz`` member into memory; a stored member is a plain ``.npy``
    at a known offset of the file, so it can be mapped like a ``.npy`` file.
    """
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        local = fh.read(30)  # the zip local file header; its name and extra field lengths end it
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        fh.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(fh)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read_header(fh)
        offset = fh.tell()
    if dtype.hasobject:
        return None
    return np.memmap(path, dtype=dtype, mode="r", shape=shape, order="F" if fortran else "C",
                     offset=offset)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz``; :data:`MAPPED` ones memory-mapped when stored uncompressed."""
    with np.load(path, allow_pickle=False) as npz:
        data = {key: npz[key] for key in npz.files if key not in MAPPED}
        with zipfile.ZipFile(path) as zf:
            for key in MAPPED:
                if key in npz.files:
                    mapped = _mapped_member(path, zf.getinfo(f"{key}.npy"))
                    data[key] = npz[key] if mapped is None else mapped
    return data


def _floats(a: np.ndarray) -> np.ndarray:
    """float32 and float16 rows as stored (a memory map stays one); other dtypes as float32."""
    return a if a.dtype in (np.float32, np.float16) else np.asarray(a, dtype=np.float32)


def load_npz(path: str | os.PathLike) -> EmbeddingSet:
    """Read and validate an embedding file (format in the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise RascalError(f"Embedding file {path} does not exist; pass an .npz file or a "
                          "checkpoint.")
    try:
        data = _read_npz(path)
    except (ValueError, OSError, EOFError, KeyError, struct.error,
            zipfile.BadZipFile) as exc:  # EOFError: an empty file
        raise _npz_error(path, "is not a readable .npz without pickled objects "
                               f"({type(exc).__name__})") from None
    if "embeddings" not in data:
        raise _npz_error(path, "has no 'embeddings' array "
                               f"(found: {', '.join(sorted(data)) or 'nothing'})")
    emb = data["embeddings"]
    if emb.ndim != 2 or not np.issubdtype(emb.dtype, np.number) or len(emb) < 2 or emb.shape[1] < 1:
        raise _npz_error(path, f"has 'embeddings' of shape {emb.shape} and dtype {emb.dtype}; "
                               "expected a float array (n_samples >= 2, dim)")
    n = len(emb)
    raw_labels = {key[len("labels_"):]: data[key] for key in data if key.startswith("labels_")}
    if "labels" in data:
        if raw_labels:
            raise _npz_error(path, "has both 'labels' and 'labels_<level>' arrays; keep one form")
        raw_labels = {"label": data["labels"]}
    if not raw_labels:
        raise _npz_error(path, "has no labels; add 'labels' or one 'labels_<level>' array "
                               "per level")
    for level, y in raw_labels.items():
        if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
            raise _npz_error(path, f"has labels for level {level!r} of shape {y.shape} and dtype "
                                   f"{y.dtype}; expected non-negative integers of shape ({n},)")
        # Labels are class indices: every index below the largest is a class, so a stray huge
        # value would make billions of classes (and exhaust memory) unless names bound them.
        if f"class_names_{level}" not in data and y.max() >= max(n, MAX_UNNAMED_CLASSES):
            raise _npz_error(path, f"has a label {y.max()} at level {level!r} for {n} samples "
                                   f"and no class_names_{level}; labels are class indices 0..C-1, "
                                   "renumber them")
        if np.bincount(np.unique(y, return_inverse=True)[1]).max() < 2:
            raise _npz_error(path, f"has no class with two samples at level {level!r}; structure "
                                   "inside a class needs at least two of its samples")
    if "levels" in data:
        order = [str(v) for v in data["levels"].tolist()]
        if sorted(order) != sorted(raw_labels):
            raise _npz_error(path, f"lists levels {order} but holds labels for "
                                   f"{sorted(raw_labels)}")
    else:
        order = sorted(raw_labels, key=lambda lvl: len(np.unique(raw_labels[lvl])))
    labels = {lvl: raw_labels[lvl].astype(np.int64) for lvl in order}
    class_names = {}
    for lvl, y in labels.items():
        key = f"class_names_{lvl}"
        names = ([str(v) for v in data[key].tolist()] if key in data
                 else [str(c) for c in range(int(y.max()) + 1)])
        if len(names) <= y.max():
            raise _npz_error(path, f"names {len(names)} classes for level {lvl!r} but its labels "
                                   f"reach {y.max()}")
        class_names[lvl] = names
    attributes = data.get("attributes")
    if attributes is not None:
        if attributes.ndim != 2 or len(attributes) != n:
            raise _npz_error(path, f"has 'attributes' of shape {attributes.shape}; "
                                   f"expected ({n}, n_attributes)")
        attributes = attributes.astype(bool)
    attribute_names = ([str(v) for v in data["attribute_names"].tolist()]
                       if "attribute_names" in data else None)
    features = data.get("features")
    if features is not None and (features.ndim != 2 or len(features) != n):
        raise _npz_error(path, f"has 'features' of shape {features.shape}; "
                               f"expected ({n}, feature_dim)")
    source = json.loads(str(data["source_json"])) if "source_json" in data else {}
    source.setdefault("kind", "embeddings")
    source.setdefault("path", str(path))
    return EmbeddingSet(_floats(emb), labels, class_names,
                        None if features is None else _floats(features), attributes,
                        attribute_names, source)


def save_npz(path: str | os.PathLike, emb: EmbeddingSet) -> Path:
    """Write ``emb`` in the embedding-file format (atomically); :func:`load_npz` reads it back."""
    arrays = {"embeddings": emb.embeddings, "levels": np.array(emb.levels)}
    for lvl, y in emb.labels.items():
        arrays[f"labels_{lvl}"] = y
        arrays[f"class_names_{lvl}"] = np.array(emb.class_names[lvl])
    if emb.features is not None:
        arrays["features"] = emb.features
    if emb.attributes is not None:
        arrays["attributes"] = emb.attributes
    if emb.attribute_names is not None:
        arrays["attribute_names"] = np.array(emb.attribute_names)
    if emb.source:
        arrays["source_json"] = np.array(json.dumps(emb.source))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's content (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def default_cache_dir() -> Path:
    """``$RASCAL_CACHE_DIR``, else ``~/.cache/rascal/embeddings``."""
    return Path(os.environ.get("RASCAL_CACHE_DIR")
                or Path.home() / ".cache" / "rascal" / "embeddings")


#: Bumped whenever extraction itself changes what it produces (old cache files then miss).
EXTRACTION_VERSION = 2
#: Analysis embeddings are extracted without autocast.
EXTRACTION_PRECISION = "float32"


def cache_key(ckpt_path: str | os.PathLike, split: str, data_root=None, device=None) -> dict:
    """Everything that determines the rows :func:`extract_embeddings` would produce.

    Parameters
    ----------
    ckpt_path : path
    split : str
    data_root : path or None
        An override of the checkpoint config's data root (``None``: the config's, which the
        checkpoint digest covers); resolved to an absolute path.
    device : str, torch.device or None
        Only its type counts (``"cpu"`` or ``"cuda"``): kernels differ between the two even in
        float32 (TF32 convolutions, summation order), not between two GPUs of one machine.

    Returns
    -------
    dict
        JSON-able; :func:`cache_path` hashes it, and the cached file records it.
    """
    from rascal_train.devices import resolve_device

    return {"version": EXTRACTION_VERSION, "checkpoint_sha256": file_digest(ckpt_path),
            "split": split,
            "data_root": None if data_root is None else str(Path(data_root).resolve()),
            "device": resolve_device(device).type, "precision": EXTRACTION_PRECISION}


def cache_path(ckpt_path: str | os.PathLike, split: str, cache_dir: str | os.PathLike | None = None,
               data_root=None, device=None) -> Path:
    """Where the embeddings of ``split`` under checkpoint ``ckpt_path`` are cached (see
    :func:`cache_key`)."""
    return _path_for(cache_key(ckpt_path, split, data_root, device), cache_dir)


def _path_for(key: dict, cache_dir) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return Path(cache_dir or default_cache_dir()) / f"{digest[:32]}_{key['split']}.npz"


def run_dir_of(ckpt_path: str | os.PathLike) -> Path | None:
    """The run directory (the one holding ``config.json``) a checkpoint belongs to, if any."""
    p = Path(ckpt_path).resolve().parent
    for candidate in (p, p.parent):
        if (candidate / "config.json").is_file():
            return candidate
    return None


def extract_embeddings(ckpt_path: str | os.PathLike, split: str = "test", data_root=None,
                       batch_size: int = 256, device=None, cache_dir=None, use_cache: bool = True,
                       progress: bool = True, dataset: str | None = None,
                       arch: str | None = None, layer: str | None = None) -> EmbeddingSet:
    """Run a checkpoint's encoder once over a split of its own dataset; cache the result on disk.

    The model is rebuilt from the checkpoint, whatever its layout
    (:func:`rascal_train.checkpoint_formats.load_model`: ``rascal train``, SupContrast, Lightning /
    solo-learn, torchvision), with its origin's preprocessing; the dataset is the one its config
    names (``get_dataset(config["dataset"], ...)``) unless ``dataset`` is given.

    Parameters
    ----------
    ckpt_path : path
        A checkpoint of a layout in ``rascal_train.checkpoint_formats.LAYOUTS``.
    split : str, default="test"
    data_root : path or None
        Overrides the config's ``data_root`` (the data may have moved).
    dataset : str or None
        A registered dataset name; needed when the checkpoint names none read here.
    arch : str or None
        Architecture of a foreign checkpoint (``checkpoint_formats.ARCHS``); default: read off the
        weights.
    layer : str or None
        Embed the pooled output of this named module of the encoder (``rascal_geom.layers``)
        instead of the encoder's output; ``embeddings`` and ``features`` are then both that output.
    batch_size : int, default=256
    device : str or None
        CUDA when present, else CPU.
    cache_dir : path or None
        Default :func:`default_cache_dir`.
    use_cache : bool, default=True
        Read a cached extraction when there is one (a fresh one is always written).

    Returns
    -------
    EmbeddingSet
        ``embeddings`` = L2-normalised projections, ``features`` = backbone features (both
        extracted in float32), clean labels at every level of the dataset, its attributes;
        ``source`` has the checkpoint's epoch, config, layout, architecture and preprocessing and
        ``extraction`` (:func:`cache_key`).
    """
    import rascal_train.datasets  # noqa: F401  (registers every loader)
    from rascal_geom.layers import embedder
    from rascal_train.checkpoint_formats import load_model
    from rascal_train.datasets.base import get_dataset, list_datasets
    from rascal_train.features import extract_features

    key = cache_key(ckpt_path, split, data_root, device)
    # What is embedded beyond the checkpoint's own dataset and encoder output is part of the key.
    key.update({k: v for k, v in (("dataset", dataset), ("arch", arch), ("layer", layer))
                if v is not None})
    cached = _path_for(key, cache_dir)
    run_dir = run_dir_of(ckpt_path)
    if use_cache and cached.is_file():
        emb = load_npz(cached)
        # The same file may sit elsewhere now: describe where it was read from this time.
        emb.source.update(path=str(ckpt_path), run_dir=None if run_dir is None else str(run_dir))
        return emb
    loaded = load_model(ckpt_path, arch=arch)
    config = dict(loaded.config)
    name = dataset or config.get("dataset")
    if name is None:
        raise RascalError(f"{ckpt_path} ({loaded.layout}) names no dataset read here; pass "
                          f"--dataset ({', '.join(list_datasets())}) and --data-root.")
    if dataset is not None and dataset != config.get("dataset"):
        config.update(dataset=dataset, label_level=None)
    root = data_root if data_root is not None else config.get("data_root")
    data = get_dataset(name, root=root, split=split, label_level=config.get("label_level"))
    out = extract_features(embedder(loaded.model, layer), data, batch_size=batch_size,
                           device=device, progress=progress, image_size=config.get("image_size"),
                           description=f"embedding {split}", precision="fp32")
    emb = EmbeddingSet(
        embeddings=out["features"] if layer else out["projections"],
        labels={lvl: out["labels"][lvl] for lvl in data.levels},
        class_names={lvl: list(data.class_names[lvl]) for lvl in data.levels},
        features=out["features"], attributes=data.attributes, attribute_names=data.attribute_names,
        source={"kind": "checkpoint", "path": str(ckpt_path),
                "run_dir": None if run_dir is None else str(run_dir), "epoch": loaded.epoch,
                "config": config, "split": split, "layout": loaded.layout, "arch": loaded.arch,
                "preprocessing": loaded.preprocessing, "layer": layer, "load": loaded.summary(),
                "extraction": key})
    save_npz(cached, emb)
    return emb


def embed_model(model, data, layer: str | None = None, batch_size: int = 256, device=None,
                image_size: int | None = None, progress: bool = True) -> EmbeddingSet:
    """Embeddings of an in-memory model over a dataset or a DataLoader (the notebook path of
    ``analyze``).

    Parameters
    ----------
    model : nn.Module
        A ``rascal`` model (``encoder`` + ``project``), a model with an ``encoder``, or an encoder
        itself (its output is pooled to one row per image).
    data : HierDataset or torch.utils.data.DataLoader
        A dataset of ``rascal_train.datasets`` (labels at every level, its own test transform), or a
        DataLoader of ``(images, labels)`` batches already transformed, where ``labels`` is an int
        tensor (one level, ``"label"``) or a dict of level -> int tensor, coarse to fine.
    layer : str or None
        Embed the pooled output of this named module of the encoder.
    batch_size, device, image_size, progress
        As in ``rascal_train.features.extract_features`` (``batch_size`` and ``image_size``:
        datasets only).
    """
    import torch

    from rascal_geom.layers import embedder
    from rascal_train.datasets.base import HierDataset
    from rascal_train.devices import resolve_device
    from rascal_train.features import extract_features

    net = embedder(model, layer)
    if isinstance(data, HierDataset):
        out = extract_features(net, data, batch_size=batch_size, device=device, progress=progress,
                               image_size=image_size, description="embedding", precision="fp32")
        labels = {lvl: out["labels"][lvl] for lvl in data.levels}
        names = {lvl: list(data.class_names[lvl]) for lvl in data.levels}
        attributes, attribute_names = data.attributes, data.attribute_names
    elif isinstance(data, torch.utils.data.DataLoader):
        device = resolve_device(device)
        was_training = net.training
        net.eval().to(device)
        feats, projs, ys = [], [], []
        try:
            with torch.inference_mode():
                for x, y in data:
                    f = net.encoder(x.to(device))
                    feats.append(f.float().cpu())
                    projs.append(torch.nn.functional.normalize(net.project(f).float(), dim=1).cpu())
                    ys.append(y if isinstance(y, dict) else {"label": y})
        finally:
            net.train(was_training)
        out = {"features": torch.cat(feats).numpy(), "projections": torch.cat(projs).numpy()}
        labels = {lvl: torch.cat([torch.as_tensor(b[lvl]) for b in ys]).numpy().astype(np.int64)
                  for lvl in ys[0]}
        names = {lvl: [str(c) for c in range(int(y.max()) + 1)] for lvl, y in labels.items()}
        attributes = attribute_names = None
    else:
        raise RascalError(f"Cannot embed a {type(data).__name__}; pass a rascal dataset "
                          "(get_dataset(...)) or a torch DataLoader of (images, labels) batches.")
    return EmbeddingSet(out["features"] if layer else out["projections"], labels, names,
                        features=out["features"], attributes=attributes,
                        attribute_names=attribute_names,
                        source={"kind": "model", "path": None, "layer": layer,
                                "split": getattr(data, "split", None)})


def load_embeddings(path: str | os.PathLike, split: str = "test", **extract_kwargs) -> EmbeddingSet:
    """An :class:`EmbeddingSet` from an ``.npz`` file or a checkpoint (anything else: one-line
    error)."""
    path = Path(path)
    if path.suffix == ".npz":
        return load_npz(path)
    if path.suffix in CHECKPOINT_SUFFIXES:
        return extract_embeddings(path, split=split, **extract_kwargs)
    raise RascalError(f"{path} is neither an embedding file (.npz) nor a checkpoint "
                      f"({', '.join(CHECKPOINT_SUFFIXES)}); "
                      "pass one of those or a run directory.")
