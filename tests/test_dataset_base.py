"""HierDataset itself: subsets keep every per-sample field aligned; registry errors."""

import numpy as np
import pytest

from rascal_train.datasets import HierDataset, get_dataset
from rascal_train.errors import RascalError


def _files_dataset():
    images = np.arange(6 * 2 * 2 * 3, dtype=np.uint8).reshape(6, 2, 2, 3)
    return HierDataset(
        name="toy", split="train", levels=("coarse", "fine"),
        labels={"coarse": np.array([0, 0, 1, 1, 2, 2]), "fine": np.arange(6)},
        class_names={"coarse": ["a", "b", "c"], "fine": list("uvwxyz")}, train_level="coarse",
        load_image=lambda i: images[i], attributes=np.eye(6, dtype=bool),
        noisy_targets=np.array([1, 0, 1, 2, 2, 0]),
        meta={"image_ids": np.array([10, 11, 12, 13, 14, 15]), "root": "/data",
              "shape": np.array([2, 2])},
    ), images


def test_subset_keeps_labels_images_attributes_and_per_sample_meta_aligned():
    ds, images = _files_dataset()
    keep = np.array([4, 1, 5])
    sub = ds.subset(keep)
    assert sub.ids.tolist() == [0, 1, 2]
    assert sub.labels["fine"].tolist() == [4, 1, 5] and sub.targets.tolist() == [2, 0, 0]
    assert np.array_equal(sub.attributes, np.eye(6, dtype=bool)[keep])
    assert sub.meta["image_ids"].tolist() == [14, 11, 15]
    assert sub.meta["shape"].tolist() == [2, 2] and sub.meta["root"] == "/data"  # not per-sample
    assert sub.meta["source_indices"].tolist() == [4, 1, 5]
    assert np.array_equal(sub.raw_image(2), images[5])
    again = sub.subset([2, 0])  # source indices compose
    assert again.meta["source_indices"].tolist() == [5, 4]
    assert np.array_equal(again.raw_image(0), images[5])


def test_unknown_dataset_and_level_are_one_line_errors():
    with pytest.raises(RascalError, match="Unknown dataset 'imagenet21k'"):
        get_dataset("imagenet21k")
    with pytest.raises(RascalError, match="no label level 'species'"):
        get_dataset("synthetic", split="test", label_level="species", size=64)
