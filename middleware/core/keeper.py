"""The KV keeper: turns a retention strategy's TTLs into pins, and ends them on time.

It is the scheduler's half of tool-aware retention. When a call finishes and its program
pauses for a tool, the strategy names a TTL; the keeper asks the :class:`PinTable` for room
and returns ``Pin``/``Unpin`` actions. A pin ends when the program's next call has run
(the call then holds the KV itself), at its TTL, when the program ends, or when a pin of an
earlier program needs its room (Continuum: latest program first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kvbaton.middleware.core.actions import Action, Pin, Unpin
from kvbaton.middleware.core.graph import ToolPause
from kvbaton.middleware.core.pins import PinCounts, PinTable
from kvbaton.middleware.core.programs import ProgramState
from kvbaton.middleware.core.retention import (
    RetentionContext,
    RetentionDeps,
    RetentionStrategy,
)
from kvbaton.middleware.core.types import CallOutcome, CallSpec

__all__ = ["KvKeeper"]


@dataclass(slots=True)
class _Returning:
    """A call that came back from a tool: was its program's KV pinned meanwhile?"""

    pinned: bool


class KvKeeper:
    """Pins per program; every method takes ``now`` and returns the actions to carry out."""

    def __init__(
        self, strategy: RetentionStrategy, deps: RetentionDeps, pins: PinTable, *, active: bool
    ) -> None:
        self.strategy = strategy
        self.deps = deps
        self.pins = pins
        self.active = active  # False: nothing is ever pinned (no hold keys either)
        self._returning: dict[str, _Returning] = {}

    def hold_key(self, spec: CallSpec) -> str | None:
        """Key under which the engine should hold this call's KV at finish, if any."""
        return spec.program_id if self.active and not spec.last_step else None

    def arrived(self, program: ProgramState, spec: CallSpec, now: float) -> None:
        """A call arrived. A program back from a tool takes over its pin (if it has one)."""
        if not self.active or spec.retry or program.calls <= 1:
            return
        pin = self.pins.consume(spec.program_id, now)
        self._returning[spec.call_id] = _Returning(pinned=pin is not None)

    def dispatched(self, spec: CallSpec, queued_s: float) -> None:
        """Continuum's T: the queueing delay of programs that came back to an evicted cache."""
        returning = self._returning.pop(spec.call_id, None)
        if returning is not None and not returning.pinned:
            self.deps.delay.observe(queued_s)

    def paused(self, pause: ToolPause) -> None:
        self.deps.tools.observe_pause(pause.tools, pause.duration_s)

    def finished(
        self, program: ProgramState, spec: CallSpec, outcome: CallOutcome, now: float
    ) -> list[Action]:
        """A call ended: pin the program's KV through its tool, or let it go."""
        self._returning.pop(spec.call_id, None)
        if not self.active:
            return []
        if spec.last_step:
            return self.ended(program, now)
        tokens = outcome.prompt_tokens + outcome.completion_tokens
        ttl = 0.0
        if outcome.ok and outcome.tool_calls and tokens > 0:
            tools = tuple(t.name for t in outcome.tool_calls)
            ttl = self.strategy.ttl(RetentionContext(tools, tokens, now))
        if ttl <= 0:
            # No pin: the engine's hold from this call (and any older pin) goes now.
            released = self.pins.release(spec.program_id, now)
            return [Unpin(spec.program_id, "released" if released else "not-pinned")]
        decision = self.pins.pin(spec.program_id, tokens, now, ttl, program.arrival)
        actions: list[Action] = [Unpin(p.program_id, "displaced") for p in decision.displaced]
        if decision.pin is None or decision.pin.tokens < tokens:
            # The engine pins a whole prefix: a pin cut to the budget cannot be honoured.
            self.pins.release(spec.program_id, now)
            return [*actions, Unpin(spec.program_id, "denied")]
        return [*actions, Pin(spec.program_id, ttl, decision.pin.tokens)]

    def ended(self, program: ProgramState, now: float) -> list[Action]:
        """The program said this was its last step: learn its length, let its KV go."""
        self.deps.lengths.observe_program(program.calls)
        if not self.active:
            return []
        # Unpin even without a live pin here: a consumed pin is still held by the engine.
        self.pins.release(program.program_id, now)
        return [Unpin(program.program_id, "program-ended")]

    def cancelled(self, spec: CallSpec, now: float) -> list[Action]:
        """The client went away: whatever the engine holds for the program goes too."""
        self._returning.pop(spec.call_id, None)
        if not self.active:
            return []
        self.pins.release(spec.program_id, now)
        return [Unpin(spec.program_id, "cancelled")]

    def expired(self, program_id: str, now: float) -> list[Action]:
        """The program left the table (idle past its TTL): forget its pins."""
        pin = self.pins.release(program_id, now)
        self.pins.forget(program_id)
        return [Unpin(program_id, "program-expired")] if pin is not None else []

    def view(self, program_id: str, now: float) -> dict[str, Any]:
        """The program's pin, and how its pins began and ended (JSON-ready)."""
        pin = self.pins.get(program_id)
        counts = self.pins.program_stats(program_id) or PinCounts()
        return {
            "pinned_tokens": pin.tokens if pin is not None else 0,
            "pin_expires_in_s": max(0.0, pin.expires_at - now) if pin is not None else None,
            "pins": _counts(counts),
        }

    def totals(self, now: float) -> dict[str, Any]:
        """Table-wide pin figures (JSON-ready)."""
        return {
            "pinned_tokens": self.pins.pinned_tokens,
            "live": len(self.pins),
            **_counts(self.pins.stats(now)),
        }

    def tick(self, now: float) -> list[Action]:
        return [Unpin(p.program_id, "expired") for p in self.pins.expire(now)]

    def next_deadline(self) -> float | None:
        return self.pins.next_expiry()


def _counts(counts: PinCounts) -> dict[str, Any]:
    names = ("granted", "denied", "consumed", "expired", "displaced", "released", "replaced")
    return {**{n: getattr(counts, n) for n in names}, "token_s": round(counts.token_s, 3)}
