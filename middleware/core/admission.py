"""Program-level admission: keep the KV that active programs need within the engine's pool.

ThunderAgent's program-level admission, event-driven rather than every 5 s.
A program is *active* or *parked*. An active program's footprint is what it has written
into the cache since it was admitted (its contexts as one prefix tree: :mod:`.footprint`)
plus a little headroom; a parked one's, the largest prompt among its waiting calls. Active
footprints together stay under the pool, so an LRU engine never has to
evict an active program's KV, paused for a tool or not. That is the lever that protects
retained KV on engines without a pin API. A parked program's calls wait in the proxy until
the program is admitted again.

Which program goes next is the caller's order (:class:`ParkedPrograms` takes a sort key),
and a program too large for the room left is passed over for smaller ones behind it
(best fit), but only while the head has waited less than ``max_bypass_s``: then it is
reserved the room as it frees, so no program waits for ever.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

__all__ = ["Admission", "AdmissionConfig", "ParkedPrograms"]

# Parked programs looked at per admission pass, after the head: bounds the cost of best fit.
_SCAN = 32


@dataclass(frozen=True, slots=True)
class AdmissionConfig:
    """``capacity_tokens``: the pool active programs may fill (the engine's KV times
    ``share``); ``headroom_tokens`` per active program covers the next call's new tokens."""

    capacity_tokens: int
    headroom_tokens: int = 100
    max_bypass_s: float = 60.0

    def __post_init__(self) -> None:
        if self.capacity_tokens < 1 or self.headroom_tokens < 0 or self.max_bypass_s < 0:
            raise ValueError("need capacity_tokens >= 1, headroom_tokens >= 0, max_bypass_s >= 0")


@dataclass(order=True, slots=True)
class _Parked:
    key: tuple[float, ...]
    seq: int
    program_id: str = field(compare=False)
    tokens: int = field(compare=False)
    since: float = field(compare=False)


class ParkedPrograms:
    """Programs waiting for admission, in the caller's key order (a lazy heap)."""

    def __init__(self) -> None:
        self._heap: list[_Parked] = []
        self._live: dict[str, _Parked] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, program_id: object) -> bool:
        return program_id in self._live

    def park(self, program_id: str, key: tuple[float, ...], tokens: int, now: float) -> None:
        """Park (or re-key) a program; a re-parked program keeps its first ``since``."""
        old = self._live.get(program_id)
        since = old.since if old is not None else now
        entry = _Parked(key, self._seq, program_id, tokens, since)
        self._seq += 1
        self._live[program_id] = entry
        heapq.heappush(self._heap, entry)

    def remove(self, program_id: str) -> None:
        self._live.pop(program_id, None)

    def head(self, n: int) -> list[_Parked]:
        """The best ``n`` live entries, best first, in O(n log size)."""
        taken: list[_Parked] = []
        heap = self._heap
        while heap and len(taken) < n:
            entry = heapq.heappop(heap)
            if self._live.get(entry.program_id) is entry:
                taken.append(entry)
        for entry in taken:
            heapq.heappush(heap, entry)
        if len(heap) > 2 * len(self._live) + 64:
            self._heap = [e for e in heap if self._live.get(e.program_id) is e]
            heapq.heapify(self._heap)
        return taken


class Admission:
    """Active programs and their footprints; which parked programs fit now."""

    def __init__(self, config: AdmissionConfig) -> None:
        self.config = config
        self.parked = ParkedPrograms()
        self._active: dict[str, int] = {}
        self._used = 0
        # The room left when a pass last admitted nothing more: until room grows or a
        # program that fits is parked, another pass would fail too, so it is skipped.
        self._failed_room: int | None = None

    @property
    def used_tokens(self) -> int:
        return self._used

    @property
    def room_tokens(self) -> int:
        """What is left of the pool (negative when over it)."""
        return self.config.capacity_tokens - self._used

    @property
    def active_programs(self) -> int:
        return len(self._active)

    def is_active(self, program_id: str) -> bool:
        return program_id in self._active

    def totals(self) -> dict[str, int]:
        """The pool's figures (JSON-ready)."""
        return {
            "capacity_tokens": self.config.capacity_tokens,
            "used_tokens": self._used,
            "active": len(self._active),
            "parked": len(self.parked),
        }

    def view(self, program_id: str) -> dict[str, object]:
        """One program's place: ``active`` with its footprint, ``parked``, or neither."""
        if program_id in self._active:
            return {"admission": "active", "footprint_tokens": self._active[program_id]}
        return {"admission": "parked" if program_id in self.parked else None}

    def footprint(self, program_id: str) -> int | None:
        return self._active.get(program_id)

    def grow(self, program_id: str, tokens: int) -> None:
        """An active program's context is now ``tokens`` (it only grows while active)."""
        old = self._active.get(program_id)
        if old is not None and tokens + self.config.headroom_tokens > old:
            new = tokens + self.config.headroom_tokens
            self._active[program_id] = new
            self._used += new - old

    def park(self, program_id: str, key: tuple[float, ...], tokens: int, now: float) -> None:
        """Park (or re-key) a program that needs ``tokens`` (see :class:`ParkedPrograms`)."""
        self.parked.park(program_id, key, tokens, now)
        if self._failed_room is not None and self.fits(tokens):
            self._failed_room = None

    def leave(self, program_id: str) -> bool:
        """The program's KV no longer counts (it ended, or its KV was let go)."""
        self.parked.remove(program_id)
        tokens = self._active.pop(program_id, None)
        if tokens is None:
            return False
        self._used -= tokens
        self._failed_room = None
        return True

    def fits(self, tokens: int) -> bool:
        # Shared prefixes count once per program: counting them once in all lets admission
        # overcommit (in the simulator, 20-100% higher mean JCT on swe, bfcl and multiagent).
        need = tokens + self.config.headroom_tokens
        # An engine with nothing active takes any program, however large: else it would stall.
        return not self._active or need <= self.room_tokens

    def activate(self, program_id: str, tokens: int) -> None:
        self.parked.remove(program_id)
        if program_id in self._active:
            return
        tokens += self.config.headroom_tokens
        self._active[program_id] = tokens
        self._used += tokens

    def admit(self, now: float) -> list[str]:
        """Activate parked programs that fit, best first; returns their ids in that order."""
        admitted: list[str] = []
        if self._failed_room is not None and self.room_tokens <= self._failed_room:
            return admitted
        while True:
            chosen = self._choose(now)
            if chosen is None:
                self._failed_room = self.room_tokens
                return admitted
            self.activate(chosen.program_id, chosen.tokens)
            admitted.append(chosen.program_id)

    def over_capacity(self) -> int:
        """Tokens the active set is over its pool by (0 when within it)."""
        return max(0, -self.room_tokens)

    def _choose(self, now: float) -> _Parked | None:
        for i, entry in enumerate(self.parked.head(_SCAN + 1)):
            if self.fits(entry.tokens):
                return entry
            if i == 0 and now - entry.since >= self.config.max_bypass_s:
                return None  # the head has waited long enough: the next room is its
        return None
