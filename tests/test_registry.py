"""The one registry shape behind models, datasets and hierarchies."""

import pytest

from rascal_geom.hierarchies import list_hierarchies
from rascal_train.datasets import list_datasets
from rascal_train.errors import RascalError
from rascal_train.models import list_models
from rascal_train.registry import Registry


def test_register_lookup_and_loud_failures():
    reg = Registry("widget", "--widget")
    reg.register("b")(lambda: 2)
    reg.register("a")(lambda: 1)
    assert reg.names() == ["a", "b"] and "a" in reg and reg["b"]() == 2
    with pytest.raises(ValueError, match="widget 'a' registered twice"):
        reg.register("a")(lambda: 3)
    with pytest.raises(RascalError, match=r"^Unknown widget 'c'; choose --widget from a, b\.$"):
        reg["c"]


def test_the_project_registries_list_what_the_design_names():
    assert set(list_models()) == {"small_cnn", "cifar_resnet18", "cifar_resnet50", "resnet18",
                                  "resnet50"}
    assert {"synthetic", "cifar100", "cifar100_lt", "aircraft", "cub", "cars", "imagefolder",
            "inat"} <= set(list_datasets())
    # `rascal analyze --hierarchy` accepts every dataset: one hierarchy per loader of the project
    # (tests register loaders of their own).
    from rascal_train.datasets.base import _DATASETS

    assert list_hierarchies() == [n for n in list_datasets()
                                  if _DATASETS[n].__module__.startswith("rascal_train.")]
