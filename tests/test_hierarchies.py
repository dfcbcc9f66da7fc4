import pytest

import rascal_train.datasets  # noqa: F401  (registers the loaders)
from rascal_geom.hierarchies import get_hierarchy, list_hierarchies
from rascal_train.datasets import get_dataset
from rascal_train.errors import RascalError


def test_known_names_and_structure():
    assert list_hierarchies() == ["aircraft", "cars", "cifar100", "cifar100_lt", "cub",
                                  "imagefolder", "inat", "synthetic"]
    for name in list_hierarchies():
        h = get_hierarchy(name)
        assert h.default_level in h.levels
        for coarse, fine in h.comparisons:
            assert h.levels.index(coarse) < h.levels.index(fine)
    assert get_hierarchy("aircraft").comparisons[:2] == (("manufacturer", "family"),
                                                         ("family", "variant"))
    assert (get_hierarchy("cub").attribute_groups(["has_bill_shape::dagger", "x"])
            == ["has_bill_shape", "x"])


@pytest.mark.parametrize("name,module,attr",
                         [("aircraft", "aircraft", "LEVELS"), ("inat", "inat", "LEVELS")])
def test_levels_match_the_loaders(name, module, attr):
    import importlib

    assert get_hierarchy(name).levels == getattr(
        importlib.import_module(f"rascal_train.datasets.{module}"), attr)


def test_synthetic_levels_match_the_dataset():
    ds = get_dataset("synthetic", split="test", size=64)
    h = get_hierarchy("synthetic")
    assert ds.levels == h.levels and ds.train_level == h.default_level and ds.attributes is not None


def test_unknown_name():
    with pytest.raises(RascalError, match="choose --hierarchy from aircraft"):
        get_hierarchy("imagenet")
