"""Call-priority strategies, in a plain registry.

A strategy turns a queued call and its program into a sort key (lower runs sooner) and,
for engines that schedule by priority, into an integer rank (lower runs sooner; adapters
flip it for engines where higher runs first). Keys are computed when a call is queued and
again whenever the scheduler re-keys it: after a call of the same program ends, and at the
call's wake-up time if its key changes with time alone.

Ranks must stay small and must not grow with time: an engine that also evicts its cache
by priority keeps each node's best priority forever, so ever-growing ranks would make new
programs' caches go first. ``program-fcfs`` is the exception (its rank is the program's
arrival number, unbounded): any bounded integer that is monotone in arrival order is
eventually constant, so exact program-FCFS at the engine cannot be bounded. Run it with
LRU eviction (the engine model's default).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from kvbaton.middleware.core.fairness import TenantShares
from kvbaton.middleware.core.mlfq import MlfqConfig, MlfqPriority
from kvbaton.middleware.core.programs import ProgramState
from kvbaton.middleware.core.srpt import FairSrpt
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
    """Orders calls waiting in the proxy queue; the scheduler is its only caller.

    Per call: :meth:`queued`, then :meth:`key` and :meth:`wake_at`, when it is submitted;
    :meth:`key` and :meth:`wake_at` again at each re-key; :meth:`started` and :meth:`rank`
    when it is dispatched; :meth:`ended` when it leaves, dispatched or not. Per program:
    :meth:`forget` when it expires from the table. Times are seconds on the driver's clock.
    """

    shares: TenantShares | None
    """Tenant shares the queue serves its per-tenant lanes by, or None for one lane."""

    def key(self, call: QueuedCall, program: ProgramState, now: float) -> tuple[float, ...]:
        """Sort key at ``now``; lower runs sooner. Ties are broken by the call's ``seq``."""
        ...

    def wake_at(self, call: QueuedCall, program: ProgramState, now: float) -> float | None:
        """When the key next changes with time alone (after ``now``), or None if it won't."""
        ...

    def rank(self, call: QueuedCall, program: ProgramState, now: float) -> int | None:
        """Engine priority (small, lower sooner), or None to leave the engine's order alone."""
        ...

    def queued(self, call: QueuedCall, program: ProgramState, now: float) -> None:
        """The call entered the queue (before its first key)."""
        ...

    def started(self, call: QueuedCall, program: ProgramState, now: float) -> None:
        """The call was dispatched (before its rank)."""
        ...

    def ended(
        self, call: QueuedCall, program: ProgramState, ran_s: float | None, now: float
    ) -> bool:
        """The call left: after ``ran_s`` seconds at the engine, or never dispatched (None).

        Called after the program's accounting (``service_s``) is updated. Returns True when
        the keys of the program's other queued calls may have changed.
        """
        ...

    def forget(self, program_id: str) -> None:
        """The program left the table: drop whatever is kept about it."""
        ...


class _FixedKeys:
    """Hooks for strategies whose keys never change once computed."""

    shares: TenantShares | None = None

    def wake_at(self, call: QueuedCall, program: ProgramState, now: float) -> float | None:
        return None

    def queued(self, call: QueuedCall, program: ProgramState, now: float) -> None:
        pass

    def started(self, call: QueuedCall, program: ProgramState, now: float) -> None:
        pass

    def ended(
        self, call: QueuedCall, program: ProgramState, ran_s: float | None, now: float
    ) -> bool:
        return False

    def forget(self, program_id: str) -> None:
        pass


class ArrivalOrder(_FixedKeys):
    """Calls in the order they arrive, and no engine priority: what engines do today."""

    def key(self, call: QueuedCall, program: ProgramState, now: float) -> tuple[float, ...]:
        return (call.queued_at,)

    def rank(self, call: QueuedCall, program: ProgramState, now: float) -> int | None:
        return None


class ProgramFcfs(_FixedKeys):
    """Program-level first-come-first-served (Continuum §4.3).

    A call inherits the arrival of its program's first call, so a program that comes
    back from a tool goes ahead of programs that started after it. Its engine rank is the
    program's arrival number, which grows without bound (see the module docstring).
    """

    def key(self, call: QueuedCall, program: ProgramState, now: float) -> tuple[float, ...]:
        return (program.arrival, program.seq)

    def rank(self, call: QueuedCall, program: ProgramState, now: float) -> int | None:
        return program.seq


class PriorityName(StrEnum):
    ARRIVAL = "arrival"
    PROGRAM_FCFS = "program-fcfs"
    PLAS = "plas"
    ATLAS = "atlas"
    PROGRAM_SRPT = "program-srpt"


PRIORITIES: dict[str, Callable[[], PriorityStrategy]] = {
    PriorityName.ARRIVAL: ArrivalOrder,
    PriorityName.PROGRAM_FCFS: ProgramFcfs,
    PriorityName.PLAS: lambda: MlfqPriority(MlfqConfig(critical_path=False)),
    PriorityName.ATLAS: lambda: MlfqPriority(MlfqConfig(critical_path=True)),
    PriorityName.PROGRAM_SRPT: FairSrpt,
}


def make_priority(name: str) -> PriorityStrategy:
    try:
        return PRIORITIES[name]()
    except KeyError:
        known = ", ".join(sorted(PRIORITIES))
        raise ValueError(f"unknown priority strategy {name!r}; known: {known}") from None
