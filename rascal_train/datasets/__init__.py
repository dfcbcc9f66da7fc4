"""Datasets by name: ``get_dataset("synthetic", split="train")``.

Importing this package registers every loader.
"""

from rascal_train.datasets.base import HierDataset, get_dataset, list_datasets, register_dataset

# Imported for their registrations.
from rascal_train.datasets import aircraft, cars, cifar, cub, folder, inat, synthetic  # noqa: E402,F401  isort: skip
from rascal_train.datasets.longtail import shot_groups, symmetric_noise  # noqa: E402

__all__ = ["HierDataset", "get_dataset", "list_datasets", "register_dataset", "shot_groups",
           "symmetric_noise"]
