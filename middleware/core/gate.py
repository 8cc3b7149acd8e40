"""The scheduler's admission gate: which programs' calls may queue for the engine now.

It puts :mod:`.admission`'s pool in front of the proxy queue. A call of an active program
passes; a call of any other program is parked with its program until the program is
admitted, then queued in its turn. Programs leave the pool when they end, when the keeper
lets their KV go, and, to make room for a parked program, when they have waited on their
client past a grace with no pin: idle ones (a user's think time, or a program that ended
without saying so) after ``idle_grace_s``, ones in an unpinned tool pause after
``tool_grace_s``. ``best_fit`` is ThunderAgent's order: parked programs best fit, and
tool-running programs also leave, smallest first, when the pool overflows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kvbaton.middleware.core.actions import Action, Pin, Unpin
from kvbaton.middleware.core.admission import Admission
from kvbaton.middleware.core.deadlines import Deadlines
from kvbaton.middleware.core.footprint import Footprints
from kvbaton.middleware.core.priority import PriorityStrategy, QueuedCall
from kvbaton.middleware.core.programs import ProgramState, ProgramTable
from kvbaton.middleware.core.types import CallOutcome, CallSpec

__all__ = ["GateConfig", "ProgramGate"]

# Unpin reasons after which a paused program's KV is as good as gone. A program that pauses
# without a pin ("not-pinned", "released", "denied") keeps its room for its grace: its KV
# stays in the engine's cache until room is needed, and admission sees to it that none is.
_GONE = frozenset({"expired", "displaced", "program-ended", "cancelled", "program-expired"})


@dataclass(frozen=True, slots=True)
class GateConfig:
    best_fit: bool = False
    idle_grace_s: float = 2.0
    tool_grace_s: float = 30.0


class ProgramGate:
    """Parks, admits and lets go of programs; every method takes ``now`` where time counts."""

    def __init__(
        self, admission: Admission, priority: PriorityStrategy, config: GateConfig
    ) -> None:
        self.admission = admission
        self.priority = priority
        self.config = config
        # Programs waiting on their client with no pin, by when their grace ends.
        self.graces: Deadlines[None] = Deadlines()
        self._calls: dict[str, list[QueuedCall]] = {}  # parked calls per program
        self.footprints = Footprints()  # what each program holds, branches included

    def passes(self, call: QueuedCall, program: ProgramState, now: float) -> bool:
        """True if the call may queue now; else it is parked with its program."""
        pid = program.program_id
        self.graces.discard(pid)
        if self.admission.is_active(pid):
            self.admission.grow(pid, self.footprints.observe(call.spec, call.spec.prompt_tokens))
            return True
        parked = self._calls.setdefault(pid, [])
        parked.append(call)
        tokens = max(c.spec.prompt_tokens for c in parked)
        self.admission.park(pid, self._key(parked[0], program, tokens, now), tokens, now)
        return False

    def admit(self, now: float, *, engine_underused: bool = False) -> list[QueuedCall]:
        """Parked calls whose programs are admitted now, in admission order. An underused
        engine (fewer calls than ``SchedulerConfig.min_batch``) takes the first parked
        program even over the pool: parking is worth an eviction only while the engine has
        enough other work to run."""
        if not self.admission.parked:
            return []
        self._make_room(now)
        admitted = self.admission.admit(now)
        if not admitted and engine_underused:
            head = self.admission.parked.head(1)
            self.admission.activate(head[0].program_id, head[0].tokens)
            admitted = [head[0].program_id]
        calls: list[QueuedCall] = []
        for pid in admitted:
            calls += self._calls.pop(pid, [])
        return calls

    def unpark(self, call: QueuedCall) -> bool:
        """Drop a parked call (its client went away); False if it was not parked."""
        pid = call.spec.program_id
        parked = self._calls.get(pid, [])
        if call not in parked:
            return False
        parked.remove(call)
        if not parked:
            del self._calls[pid]
            self.admission.parked.remove(pid)
        return True

    def finished(
        self,
        program: ProgramState,
        spec: CallSpec,
        outcome: CallOutcome,
        actions: list[Action],
        programs: ProgramTable,
        now: float,
    ) -> None:
        """A call ended: the program's context grew; the keeper's verdicts take effect."""
        pid = program.program_id
        context = outcome.prompt_tokens + outcome.completion_tokens
        self.admission.grow(pid, self.footprints.observe(spec, context))
        if spec.last_step or not outcome.ok:
            self.leave(pid)
        self.let_go(actions, programs)
        pinned = any(isinstance(a, Pin) and a.key == pid for a in actions)
        if not program.busy and self.admission.is_active(pid) and not pinned:
            tool = bool(program.pending_tools)
            grace = self.config.tool_grace_s if tool else self.config.idle_grace_s
            self.graces.set(pid, now + grace, None)
        if self.admission.over_capacity():
            self._shed(programs)

    def let_go(self, actions: Iterable[Action], programs: ProgramTable) -> None:
        """Programs whose KV the keeper let go leave the pool, unless they are busy."""
        for action in actions:
            if isinstance(action, Unpin) and action.reason in _GONE:
                program = programs.get(action.key)
                if program is None or not program.busy:
                    self.leave(action.key)

    def leave(self, program_id: str) -> None:
        """The program's room is free. Should it come back, it counts afresh from its next
        call's context: what it wrote before may have been evicted since."""
        self.admission.leave(program_id)
        self.graces.discard(program_id)
        self.footprints.forget(program_id)

    def next_deadline(self) -> float | None:
        """When a parked program may next take a waiting program's room."""
        if not self.admission.parked:
            return None
        return self.graces.first()

    def _key(
        self, call: QueuedCall, program: ProgramState, tokens: int, now: float
    ) -> tuple[float, ...]:
        # Programs coming back go before new ones: they hold work done that waiting would
        # make them recompute. Then ThunderAgent's best fit (largest first), or the
        # priority strategy's order.
        returning = 0.0 if program.calls > 1 else 1.0
        if self.config.best_fit:
            return (returning, -float(tokens))
        return (returning, *self.priority.key(call, program, now))

    def _make_room(self, now: float) -> None:
        """Let programs whose grace has ended go until the first parked program fits."""
        head = self.admission.parked.head(1)
        while head and not self.admission.fits(head[0].tokens):
            due = self.graces.pop_due(now)
            if due is None:
                return
            self.leave(due[0])

    def _shed(self, programs: Iterable[ProgramState]) -> None:
        """Over the pool: tool-running programs leave, smallest first (ThunderAgent)."""
        admission = self.admission
        idle = sorted(
            (admission.footprint(p.program_id) or 0, p.seq, p.program_id)
            for p in programs
            if admission.is_active(p.program_id) and not p.busy
        )
        for _, _, pid in idle:
            if not admission.over_capacity():
                return
            self.leave(pid)
