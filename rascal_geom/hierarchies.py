"""Label hierarchies by name: which levels a dataset has and which pairs are compared.

A :class:`Hierarchy`'s level names are exactly the ``levels`` of the dataset loader of the same
name (``rascal_train.datasets``), coarse to fine, so an analysis can pick labels by level name
from a checkpoint's dataset or from an embedding file that uses the same names.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

from rascal_train.registry import Registry


@dataclass(frozen=True)
class Hierarchy:
    """What an analysis reads and compares for one dataset.

    Attributes
    ----------
    name : str
        Registry name (also the dataset's registry name).
    levels : tuple of str
        Coarse to fine.
    default_level : str
        The level a model is trained on unless its config says otherwise.
    comparisons : tuple of (str, str)
        ``(coarse, fine)`` pairs for :func:`rascal_geom.metrics.hierarchy_retention`.
    """

    name: str
    levels: tuple[str, ...]
    default_level: str
    comparisons: tuple[tuple[str, str], ...]

    def attribute_groups(self, attribute_names):
        """Group of each attribute column: the part of ``"group::value"`` before ``::`` (else the
        name)."""
        return [str(n).split("::", 1)[0] for n in attribute_names]


_HIERARCHIES: Registry[Callable[[], Hierarchy]] = Registry("hierarchy", "--hierarchy")


def register_hierarchy(fn: Callable[[], Hierarchy]) -> Callable[[], Hierarchy]:
    """Decorator: record a builder under the name of the :class:`Hierarchy` it returns."""
    return _HIERARCHIES.register(fn().name)(fn)


def list_hierarchies() -> list[str]:
    return _HIERARCHIES.names()


def get_hierarchy(name: str) -> Hierarchy:
    """The hierarchy called ``name``; a one-line error listing the known names otherwise."""
    return _HIERARCHIES[name]()


def _consecutive(levels: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple(itertools.pairwise(levels))


@register_hierarchy
def synthetic() -> Hierarchy:
    levels = ("family", "variant")
    return Hierarchy("synthetic", levels, "family", _consecutive(levels))


@register_hierarchy
def cifar100() -> Hierarchy:
    levels = ("coarse", "fine")
    return Hierarchy("cifar100", levels, "fine", _consecutive(levels))


@register_hierarchy
def cifar100_lt() -> Hierarchy:
    levels = ("coarse", "fine")
    return Hierarchy("cifar100_lt", levels, "fine", _consecutive(levels))


@register_hierarchy
def aircraft() -> Hierarchy:
    levels = ("manufacturer", "family", "variant")
    return Hierarchy("aircraft", levels, "variant",
                     _consecutive(levels) + (("manufacturer", "variant"),))


@register_hierarchy
def cub() -> Hierarchy:
    return Hierarchy("cub", ("class",), "class", ())


@register_hierarchy
def cars() -> Hierarchy:
    levels = ("make", "model")
    return Hierarchy("cars", levels, "model", _consecutive(levels))


@register_hierarchy
def inat() -> Hierarchy:
    levels = ("kingdom", "phylum", "class", "order", "family", "genus", "species")
    return Hierarchy("inat", levels, "species", _consecutive(levels))


@register_hierarchy
def imagefolder() -> Hierarchy:
    # A parents file adds a "parent" level to the loader; the levels every folder has are these.
    return Hierarchy("imagefolder", ("class",), "class", ())
