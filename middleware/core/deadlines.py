"""Keyed deadlines, earliest first: what admission's graces and the resume warms wait on.

One entry per key: setting a key again replaces its deadline, discarding it drops it. A
lazy heap underneath (replaced and discarded entries are skipped when they surface, and
swept once they outnumber the live ones), so every operation is O(log n).
"""

from __future__ import annotations

import heapq
from typing import Generic, TypeVar

__all__ = ["Deadlines"]

V = TypeVar("V")


class Deadlines(Generic[V]):
    """Deadlines by key, each with a value handed back when it comes due."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, str]] = []
        self._live: dict[str, tuple[float, int, V]] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, key: object) -> bool:
        return key in self._live

    def set(self, key: str, at: float, value: V) -> None:
        self._live[key] = (at, self._seq, value)
        heapq.heappush(self._heap, (at, self._seq, key))
        self._seq += 1

    def discard(self, key: str) -> None:
        self._live.pop(key, None)

    def first(self) -> float | None:
        """The earliest deadline (``None``: there is none)."""
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> tuple[str, V] | None:
        """The key whose deadline came first, with its value, if it has come by ``now``."""
        self._drop_stale()
        if not self._heap or self._heap[0][0] > now:
            return None
        _, _, key = heapq.heappop(self._heap)
        return key, self._live.pop(key)[2]

    def _stale(self, entry: tuple[float, int, str]) -> bool:
        live = self._live.get(entry[2])
        return live is None or live[1] != entry[1]

    def _drop_stale(self) -> None:
        heap = self._heap
        while heap and self._stale(heap[0]):
            heapq.heappop(heap)
        if len(heap) > 2 * len(self._live) + 64:
            self._heap = [e for e in heap if not self._stale(e)]
            heapq.heapify(self._heap)
