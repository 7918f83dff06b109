"""A name -> factory registry (models, benchmarks, methods) with a clear error for unknown names."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from exssnet.errors import ExssnetError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories; `register(name)` is a decorator."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorate(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = item
            return item

        return decorate

    def names(self) -> list[str]:
        return sorted(self._items)

    def get(self, name: str) -> T:
        if name not in self._items:
            raise ExssnetError(f"unknown {self.kind} {name!r}; known {self.kind}s: {', '.join(self.names())}")
        return self._items[name]
