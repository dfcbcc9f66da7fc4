"""Long-tailed class profiles, shot groups and symmetric label noise, shared by every loader.

``get_dataset(..., imbalance=IF, label_noise=r)`` reaches :func:`apply_train_options`, which
subsamples the training split to the exponential profile of CIFAR-100-LT (Cao et al., 2019)
and then replaces the training targets of a fraction ``r`` of the images by another class.
The clean labels stay in ``HierDataset.labels`` so that evaluation never sees the noise.
"""

from __future__ import annotations


import numpy as np

from rascal_train.datasets.base import HierDataset
from rascal_train.errors import RascalError

#: Splits that training options change; evaluation splits stay balanced and clean.
TRAIN_SPLITS = ("train", "trainval")


def lt_counts(num_classes: int, max_count: int, imbalance: float) -> np.ndarray:
    """Images per class under the exponential long-tail profile.

    ``n_i = int(max_count * (1 / imbalance) ** (i / (num_classes - 1)))``: class 0 keeps
    ``max_count`` images and the last class ``int(max_count / imbalance)``.

    Parameters
    ----------
    num_classes : int
    max_count : int
        Images of the head class (500 for CIFAR-100).
    imbalance : float
        Imbalance factor ``n_max / n_min``, >= 1 (10, 50 or 100 in the literature).

    Returns
    -------
    ndarray of shape (num_classes,), dtype int64
    """
    if not imbalance >= 1:
        raise RascalError("The imbalance factor must be a number >= 1 (e.g. 10, 50, 100). Got "
                          f"{imbalance} instead.")
    if num_classes == 1:
        return np.array([max_count], dtype=np.int64)
    # Python floats, not numpy: int() of the same expression as the reference implementation.
    return np.array([int(max_count * (1.0 / imbalance) ** (i / (num_classes - 1)))
                     for i in range(num_classes)],
                    dtype=np.int64)


def lt_indices(targets: np.ndarray, num_classes: int, imbalance: float, seed: int = 0,
               max_count: int | None = None) -> np.ndarray:
    """Indices that keep, for class ``i``, the first ``n_i`` images of a seeded shuffle.

    Parameters
    ----------
    targets : ndarray of shape (n_samples,), dtype int
    num_classes : int
    imbalance : float
    seed : int, default=0
    max_count : int, optional
        Head-class size; defaults to the largest class in ``targets``. A class with fewer
        images than its profile asks for keeps all it has.

    Returns
    -------
    ndarray of shape (n_kept,), dtype int64
        Sorted indices into ``targets``.
    """
    targets = np.asarray(targets, dtype=np.int64)
    have = np.bincount(targets, minlength=num_classes)
    counts = lt_counts(num_classes, int(have.max() if max_count is None else max_count), imbalance)
    order = np.random.default_rng(seed).permutation(len(targets))
    shuffled = targets[order]
    keep = [order[shuffled == c][: counts[c]] for c in range(num_classes)]
    return np.sort(np.concatenate(keep)).astype(np.int64)


def shot_groups(train_targets: np.ndarray, num_classes: int) -> np.ndarray:
    """Shot group of every class from its number of training images.

    "many" for more than 100 images, "few" for fewer than 20, "medium" otherwise (20-100).

    Returns
    -------
    ndarray of shape (num_classes,), dtype str
    """
    counts = np.bincount(np.asarray(train_targets, dtype=np.int64), minlength=num_classes)
    return np.where(counts > 100, "many", np.where(counts < 20, "few", "medium"))


def symmetric_noise(targets: np.ndarray, num_classes: int, rate: float,
                    seed: int = 0) -> np.ndarray:
    """Symmetric label noise: ``round(rate * n)`` targets, drawn without replacement, each
    replaced by a class drawn uniformly from the ``num_classes - 1`` other classes.

    The realised noise rate is therefore exactly ``round(rate * n) / n``.

    Returns
    -------
    ndarray of shape (n_samples,), dtype int64
        A new array; ``targets`` is not modified.
    """
    if not 0.0 <= rate < 1.0:
        raise RascalError(f"The label-noise rate must be a float in [0, 1). Got {rate} instead.")
    if num_classes < 2 and rate > 0:
        raise RascalError("Label noise needs at least 2 classes; use a finer --label-level or "
                          "--label-noise 0.")
    noisy = np.array(targets, dtype=np.int64, copy=True)
    rng = np.random.default_rng(seed)
    flip = rng.permutation(len(noisy))[: int(round(rate * len(noisy)))]
    # An offset in 1..C-1 added modulo C is uniform over the other classes.
    noisy[flip] = (noisy[flip] + rng.integers(1, num_classes, size=len(flip))) % num_classes
    return noisy


def apply_train_options(ds: HierDataset, imbalance: float | None = None, label_noise: float = 0.0,
                        seed: int = 0) -> HierDataset:
    """Apply the long-tail profile and label noise to a training split (other splits unchanged).

    Both act on ``ds.train_level``; ``meta`` records ``imbalance``, ``label_noise`` and the
    realised ``noise_rate``.
    """
    if ds.split not in TRAIN_SPLITS:
        return ds
    if imbalance is not None and imbalance != 1:
        ds = ds.subset(lt_indices(ds.labels[ds.train_level], ds.num_classes, imbalance, seed))
        ds.meta["imbalance"] = float(imbalance)
    if label_noise:
        clean = ds.labels[ds.train_level]
        # A different stream from the LT shuffle so the two options do not interact.
        ds.noisy_targets = symmetric_noise(clean, ds.num_classes, label_noise, seed + 1)
        ds.meta["label_noise"] = float(label_noise)
        ds.meta["noise_rate"] = float(np.mean(ds.noisy_targets != clean))
    return ds
