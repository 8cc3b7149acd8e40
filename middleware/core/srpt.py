"""kvbaton's call priority: shortest predicted remaining program work, fair and on time.

Four rules; a decision costs O(log n) in queued calls (a finish, O(q log n) for the q
queued calls of the finishing program, which are re-keyed):

1. **Tenants** share engine time by weight (:class:`TenantShares`): the queue serves the
   backlogged tenant with the least virtual time.
2. **Deadlines**: within a tenant, calls of programs whose deadline is still feasible
   (``deadline_at - now > R``, the predicted remaining work) go first, earliest deadline
   first.
3. **Shortest remaining first**: the rest are ordered by ``program arrival + R/alpha``:
   shortest predicted remaining work first, older programs first among equals (alpha
   weighs one against the other), so a program back from a tool finds its place again.
4. **Aging**: a call that has waited ``R/alpha + G`` is due and goes ahead of every
   other call of its tenant except those due before it (first due, first served).

The remaining-work prediction is the mean residual number of calls of finished programs
given the calls this program has made, times their engine seconds per call: a
Gittins-style index from the program table's own history (:class:`ResidualWork`).
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kvbaton.middleware.core.fairness import FairShareConfig, TenantShares
from kvbaton.middleware.core.mlfq import Levels
from kvbaton.middleware.core.programs import ProgramState
from kvbaton.middleware.core.types import ProgramStatus

if TYPE_CHECKING:
    from kvbaton.middleware.core.priority import QueuedCall

__all__ = ["FairSrpt", "ResidualWork", "SrptConfig"]

# Engine ranks: 0 for urgent calls (aged or deadline); otherwise the bucket of R on a
# half-octave ladder from 0.25 s to 512 s, and within it the program's age on a
# quarter-octave ladder from 1 s to ~15 h, older first. At most 1 + 25·64 ranks.
_WORK_LADDER = Levels(24, 0.25, 2**0.5)
_AGE_LADDER = Levels(64, 1.0, 2**0.25)

_MAX_WORKFLOWS = 1024  # per-workflow histories kept; the least recently updated go first


@dataclass(frozen=True, slots=True)
class SrptConfig:
    """Aging, prediction and fairness settings for :class:`FairSrpt`.

    ``aging`` (alpha): a call with ``R`` seconds of predicted work left is due after
    waiting ``R/alpha + grace_s``; the same alpha converts predicted work into program age
    in the order before that (``arrival + R/alpha``). At alpha = 1 a call may wait about as
    long as its program still has to run. Smaller alpha means stricter SRPT and longer
    waits; in the simulator 0.5 and 1 were within noise of each other (tree, swe, chat,
    bfcl, multiagent). ``grace_s`` (G) is the least wait before a call is due, so that calls
    predicted to have little work left (every call, before any program has finished) do
    not overtake deadline calls, and the SRPT order, after a second. ``max_remaining_s``
    (``R_max``) caps predictions and with them the longest wait before a call is due.
    """

    aging: float = 1.0
    grace_s: float = 10.0
    max_remaining_s: float = 300.0
    window: int = 256  # finished programs remembered per workflow
    min_samples: int = 8  # fewer than this: fall back to the pool of all workflows
    fair: FairShareConfig = field(default_factory=FairShareConfig)

    def __post_init__(self) -> None:
        if self.aging <= 0 or self.grace_s < 0 or self.max_remaining_s <= 0:
            raise ValueError("need aging > 0, grace_s >= 0 and max_remaining_s > 0")
        if self.window < 1 or self.min_samples < 1:
            raise ValueError("window and min_samples must be at least 1")


class _Pool:
    """The last ``window`` finished programs' call counts, sorted, with suffix sums.

    Answers ``E[N - k | N >= k]`` (``N``: a program's total calls) in O(log m), and the
    mean engine time per call over the same programs.
    """

    def __init__(self, window: int) -> None:
        self.window = window
        self.recent: deque[tuple[int, float]] = deque()  # (calls, engine seconds)
        self.sorted: list[int] = []
        self.suffix: list[int] = [0]  # suffix[i] = sum(sorted[i:])
        self.calls = 0
        self.service_s = 0.0

    def __len__(self) -> int:
        return len(self.sorted)

    def add(self, calls: int, service_s: float) -> None:
        # O(m) with m <= window, once per finished program: far rarer than decisions.
        self.recent.append((calls, service_s))
        insort(self.sorted, calls)
        self.calls += calls
        self.service_s += service_s
        if len(self.recent) > self.window:
            old_calls, old_service = self.recent.popleft()
            del self.sorted[bisect_left(self.sorted, old_calls)]
            self.calls -= old_calls
            self.service_s -= old_service
        suffix = [0] * (len(self.sorted) + 1)
        for i in range(len(self.sorted) - 1, -1, -1):
            suffix[i] = suffix[i + 1] + self.sorted[i]
        self.suffix = suffix

    def calls_left(self, seen: int) -> float:
        """``E[N - seen | N >= seen]``; 0 once ``seen`` is past every sample."""
        i = bisect_left(self.sorted, seen)
        longer = len(self.sorted) - i
        return self.suffix[i] / longer - seen if longer else 0.0

    def seconds_per_call(self) -> float:
        return self.service_s / self.calls if self.calls else 0.0


class ResidualWork:
    """Predicts a program's remaining engine time from the programs that finished before it.

    ``remaining = (E[N - k | N >= k] + outstanding) · seconds per call``, where ``k`` is the
    calls the program has sent, ``outstanding`` those still queued or in flight, and the
    expectation and the engine seconds per call come from the last ``window`` finished
    programs of its workflow (of all workflows while its own has fewer than
    ``min_samples``). Counting calls rather than seconds keeps the shape of the
    distribution free of engine load: a call's engine time stretches with contention.

    The mean residual adapts to the workload: it shrinks with ``k`` when program lengths
    are regular (SRPT then serves programs near their end first, which is where agent
    workloads mostly are: Continuum's η > 0), is flat for memoryless lengths and grows for
    heavy tails (then it orders like least-attained-service). A program past every sample
    is predicted to be at its end, the limit of the residual as ``k`` nears the largest
    sample. With no history it answers the attained service: least attained first, the
    safe order when nothing is known about sizes.
    """

    def __init__(self, window: int = 256, min_samples: int = 8) -> None:
        self.window = window
        self.min_samples = min_samples
        self._all = _Pool(window)
        self._by_workflow: OrderedDict[str, _Pool] = OrderedDict()

    def observe(self, workflow: str | None, calls: int, service_s: float) -> None:
        """A program of ``workflow`` finished after ``calls`` calls and ``service_s``."""
        self._all.add(calls, service_s)
        if workflow is None:
            return
        pool = self._by_workflow.get(workflow)
        if pool is None:
            pool = self._by_workflow[workflow] = _Pool(self.window)
            if len(self._by_workflow) > _MAX_WORKFLOWS:
                self._by_workflow.popitem(last=False)
        self._by_workflow.move_to_end(workflow)
        pool.add(calls, service_s)

    def remaining(self, program: ProgramState) -> float:
        """Predicted engine seconds the program still needs, its outstanding calls included."""
        workflow = program.workflow
        pool = self._by_workflow.get(workflow) if workflow is not None else None
        if pool is None or len(pool) < self.min_samples:
            pool = self._all
        if len(pool) < self.min_samples:
            return program.service_s
        outstanding = program.queued + program.inflight
        return (pool.calls_left(program.calls) + outstanding) * pool.seconds_per_call()


class FairSrpt:
    """Tenant-fair, deadline-aware, shortest-remaining-first with aging (``program-srpt``).

    Key at time ``t`` of call ``c`` (queued at ``a_c``) of program ``p`` (arrived at
    ``A_p``), lower first, ties by ``seq``; ``R = min(R_p, R_max)`` and the due time
    ``u_c = a_c + R/alpha + G``:

    - ``(0, u_c)`` if ``t >= u_c`` (due),
    - ``(0, D_p)`` else if ``D_p - t > R`` (its deadline is feasible),
    - ``(1, A_p + R/alpha)`` otherwise.

    The key changes with time alone at ``u_c`` or when the slack ``D_p - t - R`` reaches 0;
    ``wake_at`` names that moment and the scheduler re-keys the call then (and whenever a
    call of ``p`` ends, as ``R_p`` moves). Due keys are ``<= t`` and feasible deadlines
    ``> t``, so in class 0 due calls come first, then EDF.

    Starvation bound (within a tenant). Let ``H = R_max/alpha + G``. *No call of c's tenant
    queued after* ``a_c + H`` *is dispatched before c.* Proof: whatever ``R`` a re-key
    brings, ``u_c <= a_c + H``, so from ``a_c + H`` on ``c`` is due with key ``(0, u_c)``.
    Take ``d`` queued at ``a_d > a_c + H``; it exists only from ``a_d`` on, when ``c`` is
    already due. If ``d`` is due its key is ``(0, u_d)`` with ``u_d >= a_d > u_c``; if its
    deadline is feasible, ``(0, D_d)`` with ``D_d > t >= a_d > u_c``; otherwise ``(1, ·)``.
    Every such ``d`` sorts after ``c``. So ``c`` waits at most for the calls of its tenant
    queued up to ``a_c + H`` (finitely many), plus, across tenants, the bounded number of
    other tenants' dispatches between two of its tenant's (:class:`TenantShares`). In
    wall time, with ``S`` slots and calls of at most ``L`` engine seconds (each slot frees
    at least once per ``L`` while calls wait): ``c`` is dispatched by
    ``a_c + H + L·ceil((n + 1)·(1 + B)/S)``, ``n`` being that number of calls and ``B`` the
    cross-tenant bound. Defaults (``R_max`` = 300 s, alpha = 1, ``G`` = 10 s):
    ``H`` = 310 s.

    Engine rank: 0 for class 0; else the bucket of ``R`` on a half-octave ladder, ties
    broken by the program's age on a quarter-octave ladder, older first. An engine holds a
    call's rank unchanged, so the rank cannot carry aging; the age buckets give programs of
    equal predicted work a consistent order there (the engine would otherwise interleave
    them by call arrival and spread its cache over all of them; in the simulator the age
    buckets cut mean JCT by 2-14% on tree, swe, bfcl and multiagent and cost 1.5% on
    chat). At most 1601 values whatever the run's length, so an engine that also evicts
    by priority never sees ranks grow with time.
    """

    def __init__(self, config: SrptConfig | None = None) -> None:
        self.config = config or SrptConfig()
        self.shares: TenantShares | None = TenantShares(self.config.fair)
        self.work = ResidualWork(self.config.window, self.config.min_samples)
        self._observed: set[str] = set()

    def key(self, call: QueuedCall, program: ProgramState, now: float) -> tuple[float, ...]:
        remaining = self._remaining(program)
        due = self._due(call, remaining)
        if now >= due:
            return (0.0, due)
        if program.deadline_at is not None and now < _latest_start(program, remaining):
            return (0.0, program.deadline_at)
        return (1.0, program.arrival + remaining / self.config.aging)

    def wake_at(self, call: QueuedCall, program: ProgramState, now: float) -> float | None:
        remaining = self._remaining(program)
        due = self._due(call, remaining)
        if now >= due:
            return None
        latest = _latest_start(program, remaining)
        return min(due, latest) if now < latest else due

    def rank(self, call: QueuedCall, program: ProgramState, now: float) -> int | None:
        if self.key(call, program, now)[0] == 0.0:
            return 0
        work = _WORK_LADDER.level_of(self._remaining(program))
        younger = len(_AGE_LADDER) - 1 - _AGE_LADDER.level_of(now - program.arrival)
        return 1 + work * len(_AGE_LADDER) + younger

    def queued(self, call: QueuedCall, program: ProgramState, now: float) -> None:
        pass

    def started(self, call: QueuedCall, program: ProgramState, now: float) -> None:
        if self.shares is not None:
            self.shares.started(call.spec.call_id, call.spec.tenant)

    def ended(
        self, call: QueuedCall, program: ProgramState, ran_s: float | None, now: float
    ) -> bool:
        if ran_s is None:
            return False
        if self.shares is not None:
            self.shares.ended(call.spec.call_id, ran_s)
        if program.status is ProgramStatus.DONE and program.program_id not in self._observed:
            self._observed.add(program.program_id)
            self.work.observe(program.workflow, program.calls, program.service_s)
        return True

    def forget(self, program_id: str) -> None:
        self._observed.discard(program_id)

    # -- internals --------------------------------------------------------------------

    def _remaining(self, program: ProgramState) -> float:
        predicted = self.work.remaining(program)
        return min(max(predicted, 0.0), self.config.max_remaining_s)

    def _due(self, call: QueuedCall, remaining: float) -> float:
        return call.queued_at + remaining / self.config.aging + self.config.grace_s


def _latest_start(program: ProgramState, remaining: float) -> float:
    """Until when the program's deadline is feasible; one expression for both the test
    and the wake-up time, so that rounding cannot make them disagree."""
    if program.deadline_at is None:
        return -math.inf
    return program.deadline_at - remaining
