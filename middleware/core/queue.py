"""The proxy-side call queue: a heap ordered by the priority strategy's key."""

from __future__ import annotations

import heapq

from kvbaton.middleware.core.priority import QueuedCall

__all__ = ["CallQueue"]


class CallQueue:
    """Calls waiting for an engine slot. O(log n) push and pop; removal is lazy."""

    def __init__(self) -> None:
        self._heap: list[tuple[tuple[float, ...], int, str]] = []
        self._calls: dict[str, QueuedCall] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._calls

    def push(self, call: QueuedCall, key: tuple[float, ...]) -> None:
        self._calls[call.spec.call_id] = call
        heapq.heappush(self._heap, (key, call.seq, call.spec.call_id))

    def pop(self) -> QueuedCall | None:
        """The call with the lowest key (ties: the earliest seen), or ``None`` if empty."""
        while self._heap:
            _, _, call_id = heapq.heappop(self._heap)
            call = self._calls.pop(call_id, None)
            if call is not None:
                return call
        return None

    def remove(self, call_id: str) -> QueuedCall | None:
        call = self._calls.pop(call_id, None)
        if len(self._heap) > 2 * len(self._calls) + 64:
            self._compact()
        return call

    def _compact(self) -> None:
        # Lazy removal leaves dead heap entries; rebuild when they dominate.
        self._heap = [e for e in self._heap if e[2] in self._calls]
        heapq.heapify(self._heap)
