"""Call-priority strategies, in a plain registry.

A strategy turns a queued call and its program into a sort key (lower runs sooner) and,
for engines that schedule by priority, into an integer rank (lower runs sooner; adapters
flip it for engines where higher runs first). Keys are computed when a call is queued.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from kvbaton.middleware.core.programs import ProgramState
from kvbaton.middleware.core.types import CallSpec

__all__ = [
    "PRIORITIES",
    "ArrivalOrder",
    "PriorityName",
    "PriorityStrategy",
    "ProgramFcfs",
    "QueuedCall",
    "make_priority",
]


@dataclass(frozen=True, slots=True)
class QueuedCall:
    spec: CallSpec
    seq: int  # order in which the core saw the call
    queued_at: float


class PriorityStrategy(Protocol):
    """Orders calls waiting in the proxy queue. Called once per call, when it is queued."""

    def key(self, call: QueuedCall, program: ProgramState, now: float) -> tuple[float, ...]:
        """Sort key; lower runs sooner. Ties are broken by the call's ``seq``."""
        ...

    def rank(self, call: QueuedCall, program: ProgramState) -> int | None:
        """Engine priority (lower sooner), or ``None`` to leave the engine's order alone."""
        ...


class ArrivalOrder:
    """Calls in the order they arrive, and no engine priority: what engines do today."""

    def key(self, call: QueuedCall, program: ProgramState, now: float) -> tuple[float, ...]:
        return (call.queued_at,)

    def rank(self, call: QueuedCall, program: ProgramState) -> int | None:
        return None


class ProgramFcfs:
    """Program-level first-come-first-served (Continuum §4.3).

    A call inherits the arrival of its program's first call, so a program that comes
    back from a tool goes ahead of programs that started after it.
    """

    def key(self, call: QueuedCall, program: ProgramState, now: float) -> tuple[float, ...]:
        return (program.arrival, program.seq)

    def rank(self, call: QueuedCall, program: ProgramState) -> int | None:
        return program.seq


class PriorityName(StrEnum):
    ARRIVAL = "arrival"
    PROGRAM_FCFS = "program-fcfs"


PRIORITIES: dict[str, Callable[[], PriorityStrategy]] = {
    PriorityName.ARRIVAL: ArrivalOrder,
    PriorityName.PROGRAM_FCFS: ProgramFcfs,
}


def make_priority(name: str) -> PriorityStrategy:
    try:
        return PRIORITIES[name]()
    except KeyError:
        known = ", ".join(sorted(PRIORITIES))
        raise ValueError(f"unknown priority strategy {name!r}; known: {known}") from None
