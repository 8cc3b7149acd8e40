"""Autellix's program-level scheduling: PLAS and ATLAS through a discretised MLFQ.

Autellix (arXiv 2502.13965, §4.2 and Alg. 1) gives each call its program's attained
service as priority, lower first: PLAS sums the engine time of the program's finished
calls; ATLAS takes the critical path, one scalar per program that each call inherits when
queued and that a finished call ``c`` raises to ``max(svc, c.svc + c.model_time)``. On a
chain (each call the child of the previous one) the two are equal.

Priorities are bucketed into ``K`` levels, FCFS within a level, and a call enters the level
of its program's current priority. The paper also demotes a running call when it uses up
its level's quantum; the proxy cannot preempt a call at the engine, so here demotion
happens between calls: a program moves down as its service crosses level boundaries.

Anti-starvation: a call moves to the first level when ``(W_p + W_c) / (T_p + T_c) >= β``,
where ``W_p`` is the time the program's finished calls waited in the proxy queue, ``T_p``
their engine time (the program's ``service_s``), ``W_c`` the call's own wait so far and
``T_c`` its own engine time, always 0 here as a queued call has not run. The rule is
checked as ``W_p + W_c >= β·T_p``, so a program with no service yet is at the first level
anyway.

Service is what the proxy sees: a call's time in flight. That is engine time while the
proxy's admission keeps the engine's own queue short; where the engine queues (the
simulator lets up to ``max_running`` calls through) it also counts waiting there.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kvbaton.middleware.core.programs import ProgramState

if TYPE_CHECKING:
    from kvbaton.middleware.core.fairness import TenantShares
    from kvbaton.middleware.core.priority import QueuedCall

__all__ = ["Levels", "MlfqConfig", "MlfqPriority", "promote_at"]


@dataclass(frozen=True, slots=True)
class MlfqConfig:
    """Level boundaries ``[0, first_s), [first_s, first_s·growth), ...``; the last is open.

    The paper states none of these. Defaults: ``first_s = 1`` s is about one agent call's
    engine time at moderate load (a few hundred prompt tokens and ~100 decoded ones on an
    8B model), so level 0 holds programs on their first call or two; ``growth = 2`` gives
    every doubling of service its own level, the usual geometric MLFQ ladder; ``levels = 10``
    puts the open last level at 256 s, beyond the longest agent programs we model (LATS at
    ~200 calls), so every program still moves through the ladder. ``β = 2``: a call is
    lifted once its program has waited twice as long as it has been served, i.e. its
    slowdown reached 3; at ``β = 1`` programs would be promoted as soon as waiting matched
    service, which under any backlog is nearly always and flattens the ladder into FCFS.
    """

    levels: int = 10
    first_s: float = 1.0
    growth: float = 2.0
    beta: float = 2.0
    critical_path: bool = True  # ATLAS; False: PLAS

    def __post_init__(self) -> None:
        if self.levels < 1 or self.first_s <= 0 or self.growth <= 1 or self.beta <= 0:
            raise ValueError("need levels >= 1, first_s > 0, growth > 1 and beta > 0")


class Levels:
    """A geometric ladder of service levels; ``level_of`` is O(log K)."""

    def __init__(self, levels: int, first_s: float, growth: float) -> None:
        self.bounds = [first_s * growth**i for i in range(levels - 1)]

    def __len__(self) -> int:
        return len(self.bounds) + 1

    def level_of(self, service_s: float) -> int:
        """The level ``i`` with ``bounds[i-1] <= service_s < bounds[i]``."""
        return bisect_right(self.bounds, service_s)


def promote_at(queued_at: float, wait_s: float, service_s: float, beta: float) -> float:
    """The time ``t`` at which ``W_p + W_c >= β·T_p`` for a call queued at ``queued_at``."""
    return queued_at + beta * service_s - wait_s


@dataclass(slots=True)
class _Program:
    svc: float = 0.0  # ATLAS: the program's critical-path service
    wait_s: float = 0.0  # W_p: proxy-queue wait of its finished calls


class MlfqPriority:
    """PLAS or ATLAS priorities through the discretised MLFQ; engine rank = the level.

    Key ``(level, queued_at)``: FCFS within a level. A call's level is re-read whenever the
    scheduler re-keys it: when a call of its program ends (service changed) and at its
    promotion time (``wake_at``).

    Starvation bound: a call ``c`` queued at ``a_c`` reaches level 0 by
    ``a_c + β·T̂_p - W_p``, where ``T̂_p`` is its program's service once the calls it had in
    flight at ``a_c`` have ended (its later calls queue behind ``c`` and promote after it).
    From then on only level-0 calls queued before ``a_c`` can go first, a set that no
    longer grows: no call queued after ``a_c + β·T̂_p`` is dispatched before ``c``.
    """

    shares: TenantShares | None = None

    def __init__(self, config: MlfqConfig | None = None) -> None:
        self.config = config or MlfqConfig()
        self.levels = Levels(self.config.levels, self.config.first_s, self.config.growth)
        self._programs: dict[str, _Program] = {}
        self._inherited: dict[str, float] = {}  # call id -> program svc when it was queued

    def key(self, call: QueuedCall, program: ProgramState, now: float) -> tuple[float, ...]:
        return (float(self._level(call, program, now)), call.queued_at)

    def wake_at(self, call: QueuedCall, program: ProgramState, now: float) -> float | None:
        at = self._promote_at(call, program)
        lifts = at > now and self.levels.level_of(self._priority(program)) > 0
        return at if lifts else None

    def rank(self, call: QueuedCall, program: ProgramState, now: float) -> int | None:
        return self._level(call, program, now)

    def queued(self, call: QueuedCall, program: ProgramState, now: float) -> None:
        if self.config.critical_path:
            self._inherited[call.spec.call_id] = self._state(program).svc

    def started(self, call: QueuedCall, program: ProgramState, now: float) -> None:
        pass

    def ended(
        self, call: QueuedCall, program: ProgramState, ran_s: float | None, now: float
    ) -> bool:
        inherited = self._inherited.pop(call.spec.call_id, 0.0)
        if ran_s is None:
            return False
        state = self._state(program)
        state.wait_s += max(0.0, now - ran_s - call.queued_at)
        state.svc = max(state.svc, inherited + ran_s)
        return True

    def forget(self, program_id: str) -> None:
        self._programs.pop(program_id, None)

    # -- internals --------------------------------------------------------------------

    def _state(self, program: ProgramState) -> _Program:
        state = self._programs.get(program.program_id)
        if state is None:
            state = self._programs[program.program_id] = _Program()
        return state

    def _priority(self, program: ProgramState) -> float:
        return self._state(program).svc if self.config.critical_path else program.service_s

    def _promote_at(self, call: QueuedCall, program: ProgramState) -> float:
        wait_s = self._state(program).wait_s
        return promote_at(call.queued_at, wait_s, program.service_s, self.config.beta)

    def _level(self, call: QueuedCall, program: ProgramState, now: float) -> int:
        if now >= self._promote_at(call, program):
            return 0
        return self.levels.level_of(self._priority(program))
