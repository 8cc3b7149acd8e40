"""The pin table: which paused programs keep their KV cache, how much, and until when.

One pin per program, covering its context's first ``tokens`` tokens until ``expires_at``
(absolute seconds). Pinned tokens never exceed ``max_share * capacity_tokens``, so pins
cannot starve running calls. When room runs out, pins of the programs that arrived
latest go first (Continuum §5.2): under program-level FCFS those programs would be
served last anyway, so their KV is the cheapest to lose.

The table only decides; the caller tells the engine to pin or unpin. Every method that
changes the table takes ``now`` and integrates pinned token·seconds up to it.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import StrEnum

__all__ = ["Pin", "PinCounts", "PinDecision", "PinOutcome", "PinTable"]

# Rebuild the heaps once stale entries outnumber live pins by this much (lazy deletion).
_COMPACT_SLACK = 64


@dataclass(frozen=True, slots=True)
class Pin:
    """``tokens`` of a program's KV held from ``pinned_at`` until ``expires_at`` (seconds).

    ``arrival`` is the program's first arrival: it orders displacement and relief.
    """

    program_id: str
    tokens: int
    pinned_at: float
    expires_at: float
    arrival: float
    seq: int  # order of pinning; breaks arrival ties and tells stale heap entries apart


class PinOutcome(StrEnum):
    GRANTED = "granted"
    TRIMMED = "trimmed"  # granted, but only the budget's worth of tokens
    DENIED = "denied"


@dataclass(frozen=True, slots=True)
class PinDecision:
    """What :meth:`PinTable.pin` did. The caller unpins ``displaced`` and ``replaced``."""

    outcome: PinOutcome
    pin: Pin | None
    displaced: tuple[Pin, ...] = ()
    replaced: Pin | None = None  # the program's previous pin, ended by this request

    @property
    def granted(self) -> bool:
        return self.pin is not None


@dataclass(slots=True)
class PinCounts:
    """How pins began and ended, for the whole table or for one program.

    Every granted pin (trimmed ones included) ends exactly once, as consumed, expired,
    displaced, relieved, released or replaced, or is still live. ``token_s`` is pinned
    token·seconds: for one program, of its ended pins; for the table, up to ``now``.
    """

    granted: int = 0
    trimmed: int = 0
    denied: int = 0
    consumed: int = 0
    expired: int = 0
    displaced: int = 0
    relieved: int = 0
    released: int = 0
    replaced: int = 0
    token_s: float = 0.0

    @property
    def ended(self) -> int:
        return (
            self.consumed
            + self.expired
            + self.displaced
            + self.relieved
            + self.released
            + self.replaced
        )


_HeapEntry = tuple[float, int, str]


class PinTable:
    """Per-program KV pins under a token budget, with TTL expiry and arrival-order relief.

    ``expire`` is O(log n) per pin: a heap by deadline, with lazy deletion of pins that
    ended otherwise. Displacement and relief use a second heap, latest arrival on top.
    """

    def __init__(self, capacity_tokens: int, max_share: float = 0.5) -> None:
        if capacity_tokens < 0 or not 0.0 <= max_share <= 1.0:
            raise ValueError("need capacity_tokens >= 0 and 0 <= max_share <= 1")
        self.capacity_tokens = capacity_tokens
        self.max_share = max_share
        self.budget_tokens = int(max_share * capacity_tokens)
        self._pins: dict[str, Pin] = {}
        self._by_expiry: list[_HeapEntry] = []  # (expires_at, seq, program_id)
        self._by_arrival: list[_HeapEntry] = []  # (-arrival, -seq, program_id)
        self._pinned = 0
        self._seq = 0
        self._clock = -math.inf
        self._totals = PinCounts()
        self._programs: dict[str, PinCounts] = {}

    # -- views ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._pins)

    def __contains__(self, program_id: object) -> bool:
        return program_id in self._pins

    def __iter__(self) -> Iterator[Pin]:
        """Live pins in pinning order (a snapshot: safe to change the table meanwhile)."""
        return iter(list(self._pins.values()))

    def get(self, program_id: str) -> Pin | None:
        return self._pins.get(program_id)

    @property
    def pinned_tokens(self) -> int:
        return self._pinned

    @property
    def free_tokens(self) -> int:
        """Tokens that can still be pinned without displacing anything."""
        return self.budget_tokens - self._pinned

    def next_expiry(self) -> float | None:
        """The earliest live pin's ``expires_at`` (``None``: no pins); call ``expire`` then."""
        self._drop_stale(self._by_expiry)
        return self._by_expiry[0][0] if self._by_expiry else None

    def stats(self, now: float) -> PinCounts:
        """A snapshot of the table's counts, with token·seconds integrated up to ``now``."""
        live = self._pinned * max(0.0, now - self._clock) if self._pins else 0.0
        return replace(self._totals, token_s=self._totals.token_s + live)

    def program_stats(self, program_id: str) -> PinCounts | None:
        counts = self._programs.get(program_id)
        return replace(counts) if counts is not None else None

    def forget(self, program_id: str) -> PinCounts | None:
        """Drop a program's counts (it left); a live pin of it stays in the table."""
        return self._programs.pop(program_id, None)

    # -- changes ----------------------------------------------------------------------

    def pin(
        self, program_id: str, tokens: int, now: float, ttl_s: float, arrival: float
    ) -> PinDecision:
        """Pin ``tokens`` of the program's KV for ``ttl_s`` seconds from ``now``.

        Replaces the program's previous pin, if any (even when the new one is denied).
        A pin larger than the budget is trimmed to it. If it does not fit, pins of
        programs that arrived strictly after ``arrival`` are displaced, latest first,
        but only if that makes it fit; otherwise it is denied and nothing is displaced.
        """
        if tokens <= 0 or not ttl_s > 0 or not math.isfinite(ttl_s):
            raise ValueError(f"nothing to pin: tokens={tokens}, ttl_s={ttl_s}")
        now = self._advance(now)
        old = self._pins.get(program_id)
        if old is not None:
            self._end(old, now, "replaced")
        want = min(tokens, self.budget_tokens)
        displaced = self._make_room(want - self.free_tokens, arrival, now) if want > 0 else None
        if displaced is None:
            self._bump(program_id, "denied")
            return PinDecision(PinOutcome.DENIED, None, replaced=old)
        pin = Pin(program_id, want, now, now + ttl_s, arrival, self._seq)
        self._insert(pin)
        self._maybe_compact()
        self._bump(program_id, "granted")
        outcome = PinOutcome.GRANTED
        if want < tokens:
            self._bump(program_id, "trimmed")
            outcome = PinOutcome.TRIMMED
        return PinDecision(outcome, pin, tuple(displaced), old)

    def consume(self, program_id: str, now: float) -> Pin | None:
        """The program's next call arrived: hand its pin over (the caller unpins it once
        that call is at the engine). A pin past its deadline but not yet expired still
        counts: the engine has not been told to drop it."""
        return self._take(program_id, now, "consumed")

    def release(self, program_id: str, now: float) -> Pin | None:
        """Drop the program's pin (its last step finished, or it left)."""
        return self._take(program_id, now, "released")

    def expire(self, now: float) -> list[Pin]:
        """End every pin with ``expires_at <= now``, earliest deadline first."""
        now = self._advance(now)
        expired: list[Pin] = []
        while self._by_expiry and self._by_expiry[0][0] <= now:
            pin = self._live(heapq.heappop(self._by_expiry))
            if pin is not None:
                self._end(pin, now, "expired")
                expired.append(pin)
        self._maybe_compact()
        return expired

    def relieve(self, tokens_needed: int, now: float) -> list[Pin]:
        """Memory pressure: end pins, latest program arrival first, until at least
        ``tokens_needed`` tokens are freed or no pins are left."""
        now = self._advance(now)
        freed: list[Pin] = []
        tokens = 0
        while tokens < tokens_needed and self._by_arrival:
            pin = self._live(heapq.heappop(self._by_arrival))
            if pin is not None:
                self._end(pin, now, "relieved")
                freed.append(pin)
                tokens += pin.tokens
        self._maybe_compact()
        return freed

    # -- internals --------------------------------------------------------------------

    def _advance(self, now: float) -> float:
        # A driver's clock may hand us a stale `now`; never integrate backwards.
        now = max(now, self._clock)
        if self._pins:
            self._totals.token_s += self._pinned * (now - self._clock)
        self._clock = now
        return now

    def _make_room(self, need: int, arrival: float, now: float) -> list[Pin] | None:
        """Displace later-arriving pins to free ``need`` tokens; ``None`` if they cannot."""
        popped: list[_HeapEntry] = []
        victims: list[Pin] = []
        freed = 0
        while freed < need and self._by_arrival:
            entry = heapq.heappop(self._by_arrival)
            pin = self._live(entry)
            if pin is None:
                continue  # stale: it ended some other way
            popped.append(entry)
            if pin.arrival <= arrival:
                break  # every pin left arrived no later than the new one
            victims.append(pin)
            freed += pin.tokens
        if freed < need:  # displace nothing: put every live entry back
            for entry in popped:
                heapq.heappush(self._by_arrival, entry)
            return None
        for pin in victims:
            self._end(pin, now, "displaced")
        return victims

    def _take(self, program_id: str, now: float, how: str) -> Pin | None:
        now = self._advance(now)
        pin = self._pins.get(program_id)
        if pin is not None:
            self._end(pin, now, how)
            self._maybe_compact()
        return pin

    def _insert(self, pin: Pin) -> None:
        self._seq += 1
        self._pins[pin.program_id] = pin
        self._pinned += pin.tokens
        heapq.heappush(self._by_expiry, (pin.expires_at, pin.seq, pin.program_id))
        heapq.heappush(self._by_arrival, (-pin.arrival, -pin.seq, pin.program_id))

    def _end(self, pin: Pin, now: float, how: str) -> None:
        del self._pins[pin.program_id]
        self._pinned -= pin.tokens
        self._bump(pin.program_id, how)
        self._program(pin.program_id).token_s += pin.tokens * (now - pin.pinned_at)

    def _live(self, entry: _HeapEntry) -> Pin | None:
        pin = self._pins.get(entry[2])
        return pin if pin is not None and abs(entry[1]) == pin.seq else None

    def _drop_stale(self, heap: list[_HeapEntry]) -> None:
        while heap and self._live(heap[0]) is None:
            heapq.heappop(heap)

    def _maybe_compact(self) -> None:
        # Most pins end by being consumed, so stale entries pile up between expiries.
        live = len(self._pins)
        if len(self._by_expiry) + len(self._by_arrival) <= 4 * live + _COMPACT_SLACK:
            return
        pins = self._pins.values()
        self._by_expiry = [(p.expires_at, p.seq, p.program_id) for p in pins]
        self._by_arrival = [(-p.arrival, -p.seq, p.program_id) for p in pins]
        heapq.heapify(self._by_expiry)
        heapq.heapify(self._by_arrival)

    def _program(self, program_id: str) -> PinCounts:
        counts = self._programs.get(program_id)
        if counts is None:
            counts = self._programs[program_id] = PinCounts()
        return counts

    def _bump(self, program_id: str, field: str) -> None:
        for counts in (self._totals, self._program(program_id)):
            setattr(counts, field, getattr(counts, field) + 1)
