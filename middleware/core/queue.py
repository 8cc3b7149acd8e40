"""The proxy-side call queue: heaps ordered by the priority strategy's key."""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from kvbaton.middleware.core.fairness import TenantShares
from kvbaton.middleware.core.priority import QueuedCall

__all__ = ["CallQueue"]

_Key = tuple[float, ...]
_SOLE_LANE = ""


@dataclass(slots=True)
class _Entry:
    call: QueuedCall
    lane: str
    version: int  # heap and timer entries with another version are dead


class CallQueue:
    """Calls waiting for an engine slot: O(log n) push, pop, re-key and remove.

    Calls come out in key order, ties by ``seq`` (the order the core saw them). With
    ``shares``, each tenant has a lane of its own, the lane served next is the one
    :meth:`TenantShares.pick` names, and keys order calls within a lane.

    Re-keying and removal are lazy: a re-key pushes a fresh entry under a new version and
    the old one is skipped when it surfaces; a lane's heap is rebuilt once dead entries
    dominate it. A call may carry a wake-up time at which its key changes with time alone
    (anti-starvation, deadline slack): :meth:`due` hands such calls back for re-keying and
    :meth:`next_wake` says when the next one is due.
    """

    def __init__(self, shares: TenantShares | None = None) -> None:
        self.shares = shares
        self._entries: dict[str, _Entry] = {}
        self._lanes: dict[str, list[tuple[_Key, int, int, str]]] = {}
        self._lane_sizes: dict[str, int] = {}
        self._by_program: dict[str, dict[str, None]] = {}
        self._timers: list[tuple[float, int, str]] = []  # (wake at, version, call id)
        self._version = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._entries

    def push(self, call: QueuedCall, key: _Key, wake_at: float | None = None) -> None:
        call_id = call.spec.call_id
        if call_id in self._entries:
            raise ValueError(f"call {call_id!r} is already queued")
        lane = call.spec.tenant if self.shares is not None else _SOLE_LANE
        entry = _Entry(call, lane, 0)
        self._entries[call_id] = entry
        self._by_program.setdefault(call.spec.program_id, {})[call_id] = None
        size = self._lane_sizes.get(lane, 0)
        self._lane_sizes[lane] = size + 1
        if size == 0 and self.shares is not None:
            self.shares.set_backlogged(lane, True)
        self._place(entry, key, wake_at)

    def rekey(self, call_id: str, key: _Key, wake_at: float | None = None) -> None:
        """Give a queued call a new key (and wake-up time); unknown ids are ignored."""
        entry = self._entries.get(call_id)
        if entry is not None:
            self._place(entry, key, wake_at)

    def pop(self) -> QueuedCall | None:
        """The next call to dispatch, or ``None`` if the queue is empty."""
        lane = self._next_lane()
        heap = self._lanes.get(lane) if lane is not None else None
        while heap:
            _, _, version, call_id = heapq.heappop(heap)
            entry = self._entries.get(call_id)
            if entry is not None and entry.version == version:
                self._drop(entry)
                return entry.call
        return None

    def remove(self, call_id: str) -> QueuedCall | None:
        entry = self._entries.get(call_id)
        if entry is None:
            return None
        self._drop(entry)
        return entry.call

    def of_program(self, program_id: str) -> list[QueuedCall]:
        """The program's queued calls, in the order they were queued."""
        ids = self._by_program.get(program_id, {})
        return [self._entries[i].call for i in ids]

    def due(self, now: float) -> list[QueuedCall]:
        """Calls whose wake-up time has come (each once); re-key them to keep them live."""
        timers, calls = self._timers, []
        while timers and timers[0][0] <= now:
            _, version, call_id = heapq.heappop(timers)
            entry = self._entries.get(call_id)
            if entry is not None and entry.version == version:
                calls.append(entry.call)
        return calls

    def next_wake(self) -> float | None:
        """When :meth:`due` next returns something (``None``: no call has a wake-up time)."""
        timers = self._timers
        while timers:
            _, version, call_id = timers[0]
            entry = self._entries.get(call_id)
            if entry is not None and entry.version == version:
                return timers[0][0]
            heapq.heappop(timers)
        return None

    # -- internals --------------------------------------------------------------------

    def _next_lane(self) -> str | None:
        if self.shares is not None:
            return self.shares.pick()
        return _SOLE_LANE if self._entries else None

    def _place(self, entry: _Entry, key: _Key, wake_at: float | None) -> None:
        self._version += 1
        entry.version = self._version
        call_id = entry.call.spec.call_id
        heap = self._lanes.setdefault(entry.lane, [])
        heapq.heappush(heap, (key, entry.call.seq, entry.version, call_id))
        if len(heap) > 2 * self._lane_sizes[entry.lane] + 64:
            self._compact(entry.lane)
        if wake_at is not None:
            heapq.heappush(self._timers, (wake_at, entry.version, call_id))
            if len(self._timers) > 2 * len(self._entries) + 64:
                self._timers = [t for t in self._timers if self._live(t[2], t[1])]
                heapq.heapify(self._timers)

    def _drop(self, entry: _Entry) -> None:
        call = entry.call
        del self._entries[call.spec.call_id]
        calls = self._by_program[call.spec.program_id]
        del calls[call.spec.call_id]
        if not calls:
            del self._by_program[call.spec.program_id]
        left = self._lane_sizes[entry.lane] - 1
        if left:
            self._lane_sizes[entry.lane] = left
            if len(self._lanes[entry.lane]) > 2 * left + 64:
                self._compact(entry.lane)
            return
        # An empty lane holds only dead entries: drop it whole.
        del self._lane_sizes[entry.lane], self._lanes[entry.lane]
        if self.shares is not None:
            self.shares.set_backlogged(entry.lane, False)

    def _live(self, call_id: str, version: int) -> bool:
        entry = self._entries.get(call_id)
        return entry is not None and entry.version == version

    def _compact(self, lane: str) -> None:
        heap = [e for e in self._lanes[lane] if self._live(e[3], e[2])]
        heapq.heapify(heap)
        self._lanes[lane] = heap
