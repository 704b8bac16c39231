"""Values kept per key and version within a budget, safe across threads.

A random entry makes room for a new one. Least-recently-used would drop every entry just
before it is asked for again when clients cycle through more keys than fit (a mirror or a
benchmark walking the index); random eviction keeps most of them.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class VersionedCache(Generic[K, V]):
    """Each key's value as of one version; values weigh ``weight(value)`` of *budget* in all.

    A value heavier than the whole budget is still kept, alone, until the next one comes.
    """

    def __init__(self, budget: int, weight: Callable[[V], int]) -> None:
        self.budget = budget
        self._weight = weight
        self._lock = threading.Lock()
        self._entries: dict[K, tuple[str, V, int]] = {}  # key -> (version, value, weight)
        self._keys: list[K] = []  # the same keys, for picking one at random
        self._slots: dict[K, int] = {}  # key -> its index in _keys
        self._held = 0
        self._random = random.Random(0)

    @property
    def held(self) -> int:
        """The weight of what is kept now."""
        return self._held

    def get(self, key: K, version: str) -> V | None:
        """The value kept for *key* if it is of *version*; takes no lock (one dict read)."""
        hit = self._entries.get(key)
        return hit[1] if hit is not None and hit[0] == version else None

    def put(self, key: K, version: str, value: V) -> None:
        weight = self._weight(value)
        with self._lock:
            self._drop(key)
            while self._keys and self._held + weight > self.budget:
                self._drop(self._keys[self._random.randrange(len(self._keys))])
            self._entries[key] = (version, value, weight)
            self._slots[key] = len(self._keys)
            self._keys.append(key)
            self._held += weight

    def _drop(self, key: K) -> None:
        old = self._entries.pop(key, None)
        if old is None:
            return
        self._held -= old[2]
        # Swap the last key into this one's slot: O(1) removal from the list.
        slot = self._slots.pop(key)
        last = self._keys.pop()
        if last != key:
            self._keys[slot] = last
            self._slots[last] = slot
