"""Datasets by name: ``get_dataset("synthetic", split="train")``.

Importing this package registers every loader.
"""

from rascal_train.datasets.base import HierDataset, get_dataset, list_datasets, register_dataset

__all__ = ["HierDataset", "get_dataset", "list_datasets", "register_dataset"]
