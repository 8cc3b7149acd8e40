"""The scheduler: program table + proxy queue + admission control, as one pure object.

Drivers call :meth:`Scheduler.submit` when a call arrives, :meth:`Scheduler.finish` or
:meth:`Scheduler.cancel` when it ends, and :meth:`Scheduler.tick` at
:meth:`Scheduler.next_deadline`. Each returns the actions to carry out. Because every
method is synchronous, each one is atomic on the driver's event loop: no locks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kvbaton.middleware.core.actions import (
    Action,
    Dispatch,
    PauseObserved,
    ProgramExpired,
    Warm,
)
from kvbaton.middleware.core.admission import Admission, AdmissionConfig
from kvbaton.middleware.core.gate import GateConfig, ProgramGate
from kvbaton.middleware.core.graph import ToolPause
from kvbaton.middleware.core.inflight import EngineLoad, InflightLimit
from kvbaton.middleware.core.keeper import KvKeeper
from kvbaton.middleware.core.pins import PinTable
from kvbaton.middleware.core.policies import Policy
from kvbaton.middleware.core.prefetch import Prefetcher
from kvbaton.middleware.core.priority import QueuedCall
from kvbaton.middleware.core.programs import ProgramState, ProgramTable
from kvbaton.middleware.core.queue import CallQueue
from kvbaton.middleware.core.retention import RetentionDeps, RetentionName, make_retention
from kvbaton.middleware.core.rewarm import Rewarmer
from kvbaton.middleware.core.types import CallOutcome, CallSpec, ProgramStatus
from kvbaton.middleware.core.workflows import WorkflowRegistry

__all__ = ["Scheduler", "SchedulerConfig", "SchedulerStats"]

# Reload cost when the driver names no engine profile: prefill of Llama-3.1-8B on one H100
# (the default profile's per-token figure), linear in the tokens lost.
_PREFILL_S_PER_TOKEN = 2.95e-5


def _default_reload(tokens: int) -> float:
    return tokens * _PREFILL_S_PER_TOKEN


def _gate(policy: Policy, config: SchedulerConfig) -> ProgramGate | None:
    guarded = config.guard_pins and policy.retention != RetentionName.NONE
    if policy.programs is None and not guarded:
        return None
    capacity = max(1, int(config.kv_tokens * config.admit_share))
    gate = GateConfig(policy.programs == "fit", config.idle_grace_s, config.tool_grace_s)
    return ProgramGate(Admission(AdmissionConfig(capacity)), policy.priority, gate)


def _prefetcher(policy: Policy, keeper: KvKeeper) -> Prefetcher | None:
    if not policy.prefetch:
        return None
    resume = Rewarmer(keeper.deps.tools, keeper.deps.reload_s)
    return Prefetcher(
        agents="agent" in policy.prefetch, rewarm=resume if "resume" in policy.prefetch else None
    )


def _keeper(policy: Policy, config: SchedulerConfig, reload_s: Callable[[int], float]) -> KvKeeper:
    deps = RetentionDeps(reload_s)
    pins = PinTable(config.kv_tokens, config.pin_share)
    strategy = make_retention(policy.retention, deps)
    return KvKeeper(strategy, deps, pins, active=policy.retention != RetentionName.NONE)


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    max_inflight: int = 64  # calls at the engine at once, when the policy holds calls back
    # Follow the engine's reported load below max_inflight (core.inflight): for engines
    # that do not say how many requests they batch.
    adaptive_inflight: bool = False
    programs_capacity: int = 100_000
    idle_ttl_s: float = 600.0
    kv_tokens: int = 444_500  # the engine's KV pool (pin budgets are a share of it)
    pin_share: float = 0.5  # most of the pool that pins of paused programs may hold
    admit_share: float = 0.9  # most of the pool that active programs' contexts may fill
    # The engine cannot hold KV itself (no pin API: vLLM): protect pins by program-level
    # admission, whatever the policy, wherever the policy retains KV.
    guard_pins: bool = False
    # An idle program (no call, no tool) keeps its room this long before a parked one may
    # take it: agents' own gaps between calls are shorter, people's think times longer.
    idle_grace_s: float = 2.0
    # The same for a program in a tool pause that the retention rule did not pin.
    tool_grace_s: float = 30.0
    # An engine with fewer calls than this (running or queued in the proxy) takes parked
    # programs even over the pool: so lightly loaded, it gains more from a larger batch
    # than it loses to eviction. In the simulator, 12 took multiagent on a 60k-token pool
    # from 505 s to 318 s mean JCT (3 seeds) and changed swe, bfcl, chat, multiagent and
    # tree by under 1%; 16 and more cost bfcl 6% and more.
    min_batch: int = 12

    def __post_init__(self) -> None:
        if self.max_inflight < 1 or self.min_batch < 1:
            raise ValueError("max_inflight and min_batch must be at least 1")


@dataclass(frozen=True, slots=True)
class SchedulerStats:
    queued: int
    inflight: int
    programs: int
    submitted: int
    finished: int
    cancelled: int


@dataclass(slots=True)
class _Running:
    call: QueuedCall
    node: str  # the call's node in its program's execution graph
    started_at: float | None = None


class Scheduler:
    """Orders calls per program and keeps at most ``limit.value`` of them at the engine."""

    def __init__(
        self,
        policy: Policy,
        config: SchedulerConfig | None = None,
        *,
        reload_s: Callable[[int], float] | None = None,
    ) -> None:
        """``reload_s(tokens)``: seconds to rebuild that much evicted KV (the engine profile's
        prefill time); it prices what a pin saves."""
        self.policy = policy
        self.config = config or SchedulerConfig()
        self.keeper = _keeper(policy, self.config, reload_s or _default_reload)
        self.programs = ProgramTable(
            capacity=self.config.programs_capacity, idle_ttl_s=self.config.idle_ttl_s
        )
        self.workflows = WorkflowRegistry()  # per-workflow graphs; predictions for programs
        self._queue = CallQueue(policy.priority.shares)
        self.gate = _gate(policy, self.config)
        self.prefetcher = _prefetcher(policy, self.keeper)
        self._calls: dict[str, _Running] = {}
        self.limit = InflightLimit(self.config.max_inflight, adaptive=self.config.adaptive_inflight)
        self._inflight = 0
        self._seq = 0
        self._submitted = self._finished = self._cancelled = 0

    # -- events from the driver -------------------------------------------------------

    def submit(self, spec: CallSpec, now: float) -> list[Action]:
        """A call arrived. Returns a ``Dispatch`` for it now or later (from ``finish``)."""
        if spec.call_id in self._calls:
            raise ValueError(f"call {spec.call_id!r} was already submitted")
        program = self.programs.touch(spec.program_id, now, tenant=spec.tenant)
        actions: list[Action] = self._note_arrival(program, spec, now)
        self.keeper.arrived(program, spec, now)
        self.workflows.arrived(program, spec, now)
        if self.prefetcher is not None:
            self.prefetcher.arrived(spec.program_id)
        call = QueuedCall(spec, self._seq, now)
        self._seq += 1
        self._submitted += 1
        node = self._graph_node(program, spec)
        program.graph.update_node(node, queued_at=now)
        self._calls[spec.call_id] = _Running(call, node)
        program.queued += 1
        self.policy.priority.queued(call, program, now)
        self._enqueue(call, program, now)
        actions += self._fill(now)
        program.refresh_status()
        return actions

    def finish(self, call_id: str, outcome: CallOutcome, now: float) -> list[Action]:
        """The engine finished (or failed) a dispatched call."""
        running = self._calls.pop(call_id, None)
        if running is None or running.started_at is None:
            raise KeyError(f"call {call_id!r} is not in flight")
        self._inflight -= 1
        self._finished += 1
        program = self.programs.touch(running.call.spec.program_id, now)
        program.inflight -= 1
        self._account(program, running, outcome, now)
        self._ended(running, program, now)
        actions = self.keeper.finished(program, running.call.spec, outcome, now)
        if self.gate is not None:
            self.gate.finished(program, running.call.spec, outcome, actions, self.programs, now)
        if self.prefetcher is not None:
            self.prefetcher.finished(program, outcome, actions, self.programs, now)
        actions += self._fill(now)
        program.refresh_status()
        return actions

    def cancel(self, call_id: str, now: float) -> list[Action]:
        """The client went away: drop a queued call, or free an in-flight call's slot."""
        running = self._calls.pop(call_id, None)
        if running is None:
            return []
        self._cancelled += 1
        program = self.programs.touch(running.call.spec.program_id, now)
        if running.started_at is None:
            if self._queue.remove(call_id) is None and self.gate is not None:
                self.gate.unpark(running.call)
            program.queued -= 1
        else:
            self._inflight -= 1
            program.inflight -= 1
        self._ended(running, program, now)
        program.graph.update_node(running.node, status="cancelled", finished_at=now)
        actions = self.keeper.cancelled(running.call.spec, now)
        if self.gate is not None:
            self.gate.let_go(actions, self.programs)
        actions += self._fill(now)
        program.refresh_status()
        return actions

    def tick(self, now: float) -> list[Action]:
        """Time passed: re-key calls whose priority changed with time; end pins past their
        TTL; expire idle programs."""
        self._rekey(self._queue.due(now), now)
        actions = self.keeper.tick(now)
        if self.gate is not None:
            self.gate.let_go(actions, self.programs)
        if self.prefetcher is not None:
            self.prefetcher.unpinned(actions, self.programs, now)
            actions += self._room_for(self.prefetcher.tick(now))
        for program_id in self.programs.expire(now):
            self.policy.priority.forget(program_id)
            if self.gate is not None:
                self.gate.leave(program_id)
            if self.prefetcher is not None:
                self.prefetcher.forget(program_id)
            actions += self.keeper.expired(program_id, now)
            self.workflows.expired(program_id)
            actions.append(ProgramExpired(program_id))
        if self.gate is not None and self.gate.admission.parked:
            actions += self._fill(now)
        return actions

    def engine_load(self, load: EngineLoad, now: float) -> list[Action]:
        """The engine reported its load: the in-flight limit follows it (if adaptive), and
        calls that now fit are dispatched."""
        raised = self.limit.observe(load, inflight=self._inflight, queued=len(self._queue))
        return self._fill(now) if raised else []

    def end_program(self, program_id: str, now: float) -> list[Action]:
        """The client says the program is over: what the engine holds for it goes, and its
        workflow graph learns from it. ``KeyError`` if the program is not live."""
        program = self.programs.get(program_id)
        if program is None:
            raise KeyError(program_id)
        program.status = ProgramStatus.DONE
        program.pending_tools.clear()
        self.workflows.ended(program_id, now)
        actions = self.keeper.ended(program, now)
        if self.gate is not None:
            self.gate.let_go(actions, self.programs)
            if not program.busy:
                self.gate.leave(program_id)
        actions += self._fill(now)
        program.refresh_status()
        return actions

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has something to do (``None``: nothing is scheduled)."""
        times = (
            self.programs.next_expiry(),
            self._queue.next_wake(),
            self.keeper.next_deadline(),
            self.gate.next_deadline() if self.gate is not None else None,
            self.prefetcher.next_deadline() if self.prefetcher is not None else None,
        )
        return min((t for t in times if t is not None), default=None)

    # -- views ------------------------------------------------------------------------

    @property
    def admission(self) -> Admission | None:
        """The pool of program-level admission, when the policy or the engine uses one."""
        return self.gate.admission if self.gate is not None else None

    def stats(self) -> SchedulerStats:
        return SchedulerStats(
            queued=len(self._queue),
            inflight=self._inflight,
            programs=len(self.programs),
            submitted=self._submitted,
            finished=self._finished,
            cancelled=self._cancelled,
        )

    def spec(self, call_id: str) -> CallSpec | None:
        running = self._calls.get(call_id)
        return running.call.spec if running else None

    # -- internals --------------------------------------------------------------------

    def _fill(self, now: float) -> list[Action]:
        """Dispatch queued calls while the policy and the engine's slots allow."""
        # Keys that changed with time are brought up to date first, so that every decision
        # sees them whether or not the driver ticked at their wake-up time.
        self._rekey(self._queue.due(now), now)
        self._admit(now)
        actions: list[Action] = []
        while self._queue and (not self.policy.admission or self._inflight < self.limit.value):
            call = self._queue.pop()
            if call is None:
                break
            actions.append(self._start(call, now))
            if self.prefetcher is not None:
                actions += self._room_for(self.prefetcher.started(call.spec, now))
        return actions

    def _start(self, call: QueuedCall, now: float) -> Dispatch:
        running = self._calls[call.spec.call_id]
        running.started_at = now
        self._inflight += 1
        program = self.programs.touch(call.spec.program_id, now)
        program.queued -= 1
        program.inflight += 1
        program.refresh_status()
        program.graph.update_node(running.node, status="running", started_at=now)
        self.policy.priority.started(call, program, now)
        self.keeper.dispatched(call.spec, now - call.queued_at)
        rank = self.policy.priority.rank(call, program, now)
        return Dispatch(call.spec.call_id, rank, self.keeper.hold_key(call.spec))

    # -- program-level admission ------------------------------------------------------

    def _room_for(self, warms: list[Warm]) -> list[Warm]:
        """Warms that fit the pool: prefetch stops when memory is tight. (A program still
        in the pool has its own room already; without a pool, the driver checks.)"""
        admission = self.admission
        if admission is None or not warms:
            return warms
        return [
            w
            for w in warms
            if (w.kind == "resume" and admission.is_active(w.program_id))
            or admission.used_tokens + w.tokens <= admission.config.capacity_tokens
        ]

    def _enqueue(self, call: QueuedCall, program: ProgramState, now: float) -> None:
        """Queue the call, or park it with its program until the program is admitted."""
        if self.gate is None or self.gate.passes(call, program, now):
            priority = self.policy.priority
            key, wake_at = priority.key(call, program, now), priority.wake_at(call, program, now)
            self._queue.push(call, key, wake_at)

    def _admit(self, now: float) -> None:
        if self.gate is not None:
            batch = min(self.config.min_batch, self.limit.value)
            underused = self._inflight + len(self._queue) < batch
            for call in self.gate.admit(now, engine_underused=underused):
                program = self.programs.get(call.spec.program_id)
                if program is not None:  # always: a program with parked calls never expires
                    self._enqueue(call, program, now)

    def _ended(self, running: _Running, program: ProgramState, now: float) -> None:
        """Tell the priority strategy; re-key the program's queued calls if it asks to."""
        started = running.started_at
        ran_s = None if started is None else now - started
        if self.policy.priority.ended(running.call, program, ran_s, now):
            self._rekey(self._queue.of_program(program.program_id), now)

    def _rekey(self, calls: Iterable[QueuedCall], now: float) -> None:
        priority = self.policy.priority
        for call in calls:
            program = self.programs.get(call.spec.program_id)
            if program is not None:  # always: a program with queued calls never expires
                key = priority.key(call, program, now)
                self._queue.rekey(call.spec.call_id, key, priority.wake_at(call, program, now))

    def _note_arrival(self, program: ProgramState, spec: CallSpec, now: float) -> list[Action]:
        if program.calls == 0 and program.workflow is None:
            program.workflow = spec.workflow
        if spec.deadline_s is not None:
            program.deadline_at = now + spec.deadline_s
        if spec.retry and program.graph.last_call is not None:
            program.retries += 1
            return []
        program.calls += 1
        return self._end_pause(program, spec, now)

    def _graph_node(self, program: ProgramState, spec: CallSpec) -> str:
        last = program.graph.last_call
        if spec.retry and last is not None:
            return last  # a retry re-runs the same step
        node = program.graph.add_call(
            spec.call_id, agent=spec.agent, step=spec.step, parent_step=spec.parent_step
        )
        self._link_pause(program, spec)
        return node

    def _end_pause(self, program: ProgramState, spec: CallSpec, now: float) -> list[Action]:
        # An LLM tool call answered, else tools the client names (x-kvbaton-tool).
        pause = self._llm_pause(program, spec, now) or self.workflows.tool_pause(
            program.program_id, spec, now
        )
        if pause is None:
            return []
        program.pauses.append(pause)
        self.keeper.paused(pause)
        self.workflows.paused(program.program_id, pause)
        return [PauseObserved(program.program_id, pause)]

    def _llm_pause(self, program: ProgramState, spec: CallSpec, now: float) -> ToolPause | None:
        returned = [
            program.pending_tools[i] for i in spec.returned_tool_calls if i in program.pending_tools
        ]
        if not returned or program.tool_wait_since is None or program.tool_after_call is None:
            return None
        pause = ToolPause(
            tools=tuple(dict.fromkeys((*(t.name for t in returned), *spec.tools))),
            started_at=program.tool_wait_since,
            duration_s=max(0.0, now - program.tool_wait_since),
            after_call=program.tool_after_call,
            before_call=spec.call_id,
        )
        program.pending_tools.clear()
        program.tool_wait_since = program.tool_after_call = None
        return pause

    def _link_pause(self, program: ProgramState, spec: CallSpec) -> None:
        if program.pauses and program.pauses[-1].before_call == spec.call_id:
            program.graph.add_pause(program.pauses[-1])

    def _account(
        self, program: ProgramState, running: _Running, outcome: CallOutcome, now: float
    ) -> None:
        started = running.started_at if running.started_at is not None else now
        program.service_s += now - started
        program.prompt_tokens += outcome.prompt_tokens
        program.cached_tokens += outcome.cached_tokens
        program.completion_tokens += outcome.completion_tokens
        if outcome.ok:
            program.context_tokens = outcome.prompt_tokens + outcome.completion_tokens
        program.graph.update_node(
            running.node,
            status="done" if outcome.ok else "failed",
            finished_at=now,
            prompt_tokens=outcome.prompt_tokens,
            cached_tokens=outcome.cached_tokens,
            completion_tokens=outcome.completion_tokens,
        )
        if outcome.tool_calls:
            program.pending_tools = {t.id: t for t in outcome.tool_calls}
            program.tool_wait_since = now
            program.tool_after_call = running.call.spec.call_id
        if running.call.spec.last_step and outcome.ok:
            program.status = ProgramStatus.DONE
        self.workflows.finished(program, running.call.spec, outcome, now - started, now)
