"""One bounded, least-recently-used map for every in-memory cache of the service (each names its limit)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """A dict that keeps at most `limit` entries, dropping the least recently used (read or written) first."""

    def __init__(self, limit: int, on_evict: Callable[[K, V], None] | None = None) -> None:
        """`on_evict` is told of each entry dropped for room (not of those popped)."""
        if limit < 1:
            raise ValueError("a bounded cache needs a limit of at least 1")
        self.limit = limit
        self._items: OrderedDict[K, V] = OrderedDict()
        self._on_evict = on_evict

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def peek(self, key: K) -> V | None:
        """The entry, without counting as a use."""
        return self._items.get(key)

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.limit:
            evicted, old = self._items.popitem(last=False)
            if self._on_evict is not None:
                self._on_evict(evicted, old)

    def pop(self, key: K) -> V | None:
        return self._items.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def values(self) -> Iterator[V]:
        return iter(list(self._items.values()))

    def items(self) -> Iterator[tuple[K, V]]:
        """A snapshot, least recently used first: the cache may change while it is walked."""
        return iter(list(self._items.items()))
