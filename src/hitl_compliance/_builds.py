"""Build options kept by a compiled graph's builder, so every copy of the graph finds them.

LangGraph's `copy()` and `with_config()` (and LangGraph Server, which copies
every graph it serves) make new compiled graph objects that share the original
`builder`; a registry keyed by it recognises them all, and forgets a build
once nothing holds its builder.
"""

from __future__ import annotations

import weakref
from typing import Any, Generic, TypeVar

__all__ = ["BuildRegistry"]

T = TypeVar("T")


class BuildRegistry(Generic[T]):
    """Options of the graphs one factory built, looked up by any copy of them."""

    def __init__(self) -> None:
        self._by_builder: weakref.WeakKeyDictionary[Any, T] = weakref.WeakKeyDictionary()

    def register(self, builder: Any, options: T) -> None:
        """Remember `options` for every graph compiled from `builder`."""
        self._by_builder[builder] = options

    def find(self, graph: Any) -> T | None:
        """The options of `graph` (or of what it is a copy of), or None."""
        try:
            return self._by_builder.get(getattr(graph, "builder", None))
        except TypeError:  # an unhashable or non-weakref-able builder: not one of ours
            return None
