"""A name -> object registry that fails loudly (an unknown name lists the valid ones)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects; ``get`` of an unknown name raises ``KeyError`` listing the known names.

    Args:
        kind: what the registry holds, used in error messages ("model family", "task", ...).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T, *, exist_ok: bool = False) -> T:
        """Adds ``item`` under ``name``; registering a different object twice raises unless ``exist_ok``."""
        if name in self._items and self._items[name] is not item and not exist_ok:
            raise ValueError(f"{self.kind} {name!r} is already registered; pass exist_ok=True to replace it")
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        """Returns the object registered under ``name``."""
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise KeyError(f"unknown {self.kind} {name!r}; valid names: {known}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)
