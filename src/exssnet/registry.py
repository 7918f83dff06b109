"""A name -> factory registry (models, benchmarks, methods) with metadata and a clear error for unknown names."""

from __future__ import annotations

import difflib
from typing import Any, Callable, Generic, Iterable, TypeVar

from exssnet.errors import ExssnetError

T = TypeVar("T")


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' did you mean X?' for the closest of `choices` to a misspelt `name` (difflib), or "" when none is close."""
    close = difflib.get_close_matches(name, list(choices), n=2, cutoff=0.75)
    return f" did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


class Registry(Generic[T]):
    """Maps names to factories; `register(name, **metadata)` is a decorator (metadata: e.g. `input_kind`)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._metadata: dict[str, dict[str, Any]] = {}

    def register(self, name: str, **metadata: Any) -> Callable[[T], T]:
        def decorate(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = item
            self._metadata[name] = dict(metadata)
            return item

        return decorate

    def names(self) -> list[str]:
        return sorted(self._items)

    def unregister(self, name: str) -> T:
        """Remove `name` (tests and notebooks that register a throwaway entry); returns what was registered."""
        item = self.get(name)
        del self._items[name]
        self._metadata.pop(name, None)
        return item

    def metadata(self, name: str) -> dict[str, Any]:
        """What `name` was registered with (empty when nothing was given)."""
        self.get(name)
        return dict(self._metadata.get(name, {}))

    def get(self, name: str) -> T:
        if name not in self._items:
            hint = did_you_mean(str(name), self.names())  # one short line when the name is a near miss
            known = hint or f" known {self.kind}s: {', '.join(self.names())}"
            raise ExssnetError(f"unknown {self.kind} {name!r};{known}")
        return self._items[name]
