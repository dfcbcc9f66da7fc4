"""Builders by name (timm's pattern): one decorator registers, an unknown name fails loudly.

Models, datasets and hierarchies are registries of this one shape.
"""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from rascal_train.errors import RascalError

F = TypeVar("F", bound=Callable)


class Registry(Generic[F]):
    """Builders of one kind of thing, by name.

    Parameters
    ----------
    kind : str
        What is registered, for messages (``"dataset"``, ``"architecture"``).
    choose : str
        How a user picks one, for the error on an unknown name (``"--arch"``).
    """

    def __init__(self, kind: str, choose: str):
        self.kind, self.choose = kind, choose
        self._builders: dict[str, F] = {}

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator recording ``fn`` under ``name``; a second builder for a name is a bug."""

        def deco(fn: F) -> F:
            if name in self._builders:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._builders[name] = fn
            return fn

        return deco

    def names(self) -> list[str]:
        return sorted(self._builders)

    def __contains__(self, name: str) -> bool:
        return name in self._builders

    def __getitem__(self, name: str) -> F:
        if name not in self._builders:
            raise RascalError(f"Unknown {self.kind} {name!r}; choose {self.choose} from "
                              f"{', '.join(self.names())}.")
        return self._builders[name]
