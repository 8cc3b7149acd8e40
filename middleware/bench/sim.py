"""A discrete-event simulator: a trace through the core scheduler and the engine model.

The two drivers of the same code: the live proxy runs ``core.Scheduler`` in front of an
engine, on the wall clock; this module runs the same ``Scheduler`` (with the same named
policy bundle) in front of the same ``EngineModel``, in simulated time, with simulated
clients that follow each program's dependencies. SimPy style: a heap of
``(time, seq, kind, payload)`` and a ``now``; the ``seq`` counter makes ties deterministic.

Event kinds: a program arrives (its root calls get their send times); a client sends a call
(the core decides when it reaches the engine); the engine plans a step (``kick``); a step
ends (its events are applied, then the next step is planned); the core's idle-expiry tick.

Memory stays bounded by the programs in flight: a program's per-call state is built when it
arrives and dropped when it finishes, and a call's token tuples are dropped as soon as the
engine has them and no child still has to build its prompt from them.
"""

from __future__ import annotations

import contextlib
import gc
import heapq
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from kvbaton.middleware.bench.prompts import Tokens, TokenSynth
from kvbaton.middleware.bench.records import (
    CallRecord,
    Decomposition,
    ExtraRequests,
    ProgramRecord,
    decompose,
    summarize,
)
from kvbaton.middleware.bench.trace import Call, Program
from kvbaton.middleware.core.actions import Action, Dispatch, Pin, Unpin, Warm
from kvbaton.middleware.core.policies import Policy, make_policy
from kvbaton.middleware.core.retention import reload_from_profile
from kvbaton.middleware.core.scheduler import Scheduler, SchedulerConfig
from kvbaton.middleware.core.types import CallOutcome, CallSpec, ToolCall
from kvbaton.middleware.engine import (
    EngineModel,
    EngineStats,
    Finished,
    GenRequest,
    Preempted,
    PrefillDone,
    Profile,
    Step,
)

__all__ = ["ProgramDone", "SimResult", "Simulation", "SimulationError", "simulate"]

ProgramDone = Callable[[ProgramRecord], None]
"""Called once per program when it finishes or fails (progress bars)."""

_ARRIVE, _SEND, _KICK, _STEP_END, _TICK = range(5)

# The core is ticked at its next deadline, as the proxy's ticker does (pin expiries,
# admission graces, resume warms), but at most once per 50 simulated milliseconds, so that
# a burst of deadlines costs one tick.
_TICK_MIN_S = 0.05

# A zero-length step only preempts; more of them in a row than any batch could need means
# the engine model is stuck, and the run would never end.
_MAX_IDLE_STEPS = 100_000

# A run allocates millions of short-lived objects while the engine's radix tree holds
# many long-lived ones; at the default gen-0 threshold (700) the collector's passes took
# about a fifth of the run time. Nothing here relies on the collector for memory.
_GC_THRESHOLD = (50_000, 20, 20)


@contextlib.contextmanager
def _relaxed_gc() -> Iterator[None]:
    old = gc.get_threshold()
    gc.set_threshold(*_GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*old)


class SimulationError(RuntimeError):
    """The simulation broke an invariant, or stopped with programs unfinished."""


@dataclass(frozen=True, slots=True)
class SimResult:
    """One policy's run: per-program records plus run-wide counters."""

    policy: str
    programs: list[ProgramRecord]
    preemptions: int
    steps: int  # engine steps
    events: int  # events popped from the heap
    engine: EngineStats
    end_s: float  # simulated time of the last event
    cache: dict[str, Any] = field(default_factory=dict)  # pins and warms (results "cache")
    extra: ExtraRequests = field(default_factory=ExtraRequests)  # warms sent to the engine

    def summary(self) -> dict[str, Any]:
        """The results-format entry for this policy (``records.RESULT_KEYS``, and the
        optional ``cache`` figures and ``decomposition``)."""
        entry = summarize(self.programs, preemptions=self.preemptions)
        if self.cache:
            entry["cache"] = self.cache
        entry["decomposition"] = self.decomposition().to_json()
        return entry

    def decomposition(self) -> Decomposition:
        return decompose(self.programs, self.extra, preemptions=self.preemptions)


class _ProgramState:
    __slots__ = ("arrival", "failed", "left", "program", "record", "systems", "unsent", "workflow")

    def __init__(self, program: Program, arrival: float) -> None:
        self.program = program
        self.arrival = arrival
        self.record = ProgramRecord(program.id, arrival)
        self.left = self.unsent = len(program.calls)
        self.failed = False
        self.systems: set[str] = set()  # system prompts this program has prefilled
        # As the proxy infers it without a declared name: from the first system prompt.
        self.workflow = program.calls[0].system or "default"


class _CallState:
    __slots__ = (
        "call",
        "children",
        "dispatched",
        "kv_len",
        "output",
        "parents",
        "prefix",
        "prior",
        "prog",
        "prompt",
        "ready_at",
        "record",
        "rid",
        "tool_id",
        "users",
        "waiting",
    )

    def __init__(self, prog: _ProgramState, call: Call, parents: list[_CallState]) -> None:
        self.prog = prog
        self.call = call
        self.rid = f"{prog.program.id}/{call.id}"
        self.parents = parents
        self.children: list[_CallState] = []
        self.waiting = len(parents)
        self.ready_at = prog.arrival
        self.record = CallRecord(call.id, sent_at=-1.0)
        self.tool_id = f"{self.rid}/tool" if call.tool else None
        self.prompt: Tokens | None = None
        self.output: Tokens | None = None
        self.users = 0  # continue-children that will build their prompt from our tokens
        self.dispatched = False
        self.kv_len = 0  # prompt + reply tokens with KV once we finish (the last has none)
        self.prior = 0  # prompt tokens this program had computed before we were sent
        # The fixed prefix (system prompt) this call's context starts with: shared by every
        # program that runs the same agent.
        self.prefix: int = call.system_tokens if call.fresh else parents[0].prefix


_HOLD_GRACE_S = 1.0


class Simulation:
    """One policy over one trace. Build it, call :meth:`run` once."""

    def __init__(
        self,
        programs: Sequence[Program],
        policy: str | Policy,
        profile: Profile,
        *,
        kv_tokens: int | None = None,
        rate_scale: float = 1.0,
        seed: int = 0,
        check: bool = False,
        on_program_done: ProgramDone | None = None,
    ) -> None:
        if rate_scale <= 0:
            raise ValueError("rate_scale must be positive")
        self.policy = make_policy(policy) if isinstance(policy, str) else policy
        self.engine = EngineModel(profile, kv_tokens=kv_tokens, token_events=False)
        config = SchedulerConfig(
            max_inflight=self.engine.profile.max_running, kv_tokens=self.engine.capacity
        )
        self.scheduler = Scheduler(
            self.policy, config, reload_s=reload_from_profile(self.engine.profile)
        )
        self.rate_scale = rate_scale
        self.check = check
        self.now = 0.0
        self._programs = sorted(programs, key=lambda p: p.arrival)
        self._records: list[ProgramRecord] = []
        self._synth = TokenSynth(seed)
        self._on_done = on_program_done
        self._heap: list[tuple[float, int, int, Any]] = []
        self._seq = 0
        self._next_program = 0
        self._unfinished = len(self._programs)
        self._live: dict[str, _CallState] = {}  # sent, not yet finished, by rid
        self._actions: deque[Action] = deque()
        self._draining = self._stepping = False
        self._tick_at: float | None = None
        self._events = self._steps = self._preemptions = 0
        self._idle_steps = 0  # zero-length steps in a row (preemptions that free room)
        self._prefixes: dict[tuple[str | None, str | None], Tokens] = {}  # agents' prefixes
        self._warm_rids: dict[str, float] = {}  # warms in the engine -> when sent
        self._extra = ExtraRequests()
        self._paused: dict[str, _CallState] = {}  # a paused program's last call, by program
        # Warms by outcome: sent (loaded tokens), touched (already cached: refreshed only),
        # skipped (no free room), used or wasted (the call they were for found them or not).
        self._warms: Counter[str] = Counter()
        # (kind, program or workflow, agent) -> tokens a warm loaded, until judged
        self._warmed: dict[tuple[str, str, str | None], int] = {}

    # -- the loop ---------------------------------------------------------------------

    def run(self) -> SimResult:
        """Run until every program has finished or failed; records are in arrival order."""
        if self._events:
            raise RuntimeError("a Simulation runs once; build another")
        handlers: tuple[Callable[[Any], None], ...] = (
            self._arrive,
            self._send,
            self._plan_step,
            self._step_end,
            self._tick,
        )
        heap, pop = self._heap, heapq.heappop
        self._push_next_program()
        with _relaxed_gc():
            while heap and self._unfinished:
                self.now, _, kind, payload = pop(heap)
                self._events += 1
                handlers[kind](payload)
        if self._unfinished:
            raise SimulationError(f"stalled at t={self.now:.3f}: {self._unfinished} unfinished")
        # Warms still in the engine when the last program ends count up to that end.
        self._extra.engine_s += sum(self.now - sent for sent in self._warm_rids.values())
        return SimResult(
            self.policy.name,
            self._records,
            self._preemptions,
            self._steps,
            self._events,
            self.engine.stats(),
            self.now,
            self._cache_figures(),
            self._extra,
        )

    def _cache_figures(self) -> dict[str, Any]:
        keeper = self.scheduler.keeper.totals(self.now)
        return {
            "pins": {k: keeper[k] for k in ("granted", "consumed", "expired", "displaced")},
            "pinned_token_s": keeper["token_s"],
            "warms": dict(self._warms),
            "evicted_tokens": self.engine.stats().evicted_tokens_total,
        }

    def _push(self, at: float, kind: int, payload: Any) -> None:
        heapq.heappush(self._heap, (at, self._seq, kind, payload))
        self._seq += 1

    # -- clients ----------------------------------------------------------------------

    def _push_next_program(self) -> None:
        # Programs enter the heap one at a time (they are sorted), so it stays small.
        if self._next_program < len(self._programs):
            program = self._programs[self._next_program]
            self._next_program += 1
            self._push(program.arrival / self.rate_scale, _ARRIVE, program)

    def _arrive(self, program: Program) -> None:
        prog = _ProgramState(program, self.now)
        self._records.append(prog.record)
        by_id: dict[str, _CallState] = {}
        for call in program.calls:
            cs = _CallState(prog, call, [by_id[p] for p in call.after])
            for parent in cs.parents:
                parent.children.append(cs)
            if not call.fresh:
                cs.parents[0].users += 1
            by_id[call.id] = cs
            prog.record.calls.append(cs.record)
            if not call.after:
                self._push(self.now + call.think_s, _SEND, cs)
        self._push_next_program()

    def _send(self, cs: _CallState) -> None:
        prog, call = cs.prog, cs.call
        if prog.failed:
            return
        if self.check:
            self._check_parents(cs)
        cs.record.sent_at = self.now
        self._paused.pop(prog.program.id, None)
        prompt = self._build_prompt(cs)
        prog.unsent -= 1
        spec = CallSpec(
            call_id=cs.rid,
            program_id=prog.program.id,
            tenant=prog.program.tenant,
            agent=call.agent,
            step=call.id,
            parent_step=call.after[0] if call.after else None,
            workflow=prog.workflow,
            prompt_tokens=len(prompt),
            prefix_tokens=cs.prefix,
            last_step=prog.unsent == 0,
            returned_tool_calls=tuple(p.tool_id for p in cs.parents if p.tool_id),
        )
        cs.parents = []  # not needed any more; breaks reference cycles early
        self._live[cs.rid] = cs
        self._run(self.scheduler.submit(spec, self.now))

    def _build_prompt(self, cs: _CallState) -> Tokens:
        prog, call = cs.prog, cs.call
        synth = self._synth
        new = synth.new_tokens(prog.program.id, call.id, call.input_tokens)
        if call.fresh:
            system = synth.system(call.system, call.system_tokens) if call.system else ()
            prompt = system + new
            prior = len(system) if call.system in prog.systems else 0
        else:
            parent = cs.parents[0]
            assert parent.prompt is not None and parent.output is not None
            prompt = parent.prompt + parent.output + new
            prior = parent.kv_len
            parent.users -= 1
            self._drop_tokens(parent)
        cs.prompt = prompt
        cs.output = synth.output(prog.program.id, call.id, call.output_tokens)
        cs.prior = min(prior, len(prompt) - 1)  # the last prompt token is always computed
        cs.kv_len = len(prompt) + call.output_tokens - 1
        return prompt

    @staticmethod
    def _drop_tokens(cs: _CallState) -> None:
        if cs.users == 0 and cs.dispatched:
            cs.prompt = cs.output = None

    def _release_children(self, cs: _CallState) -> None:
        done_at = self.now + cs.call.tool_s
        for child in cs.children:
            child.waiting -= 1
            child.ready_at = max(child.ready_at, done_at)
            if child.waiting == 0:
                self._push(child.ready_at + child.call.think_s, _SEND, child)
        cs.children = []

    def _program_over(self, prog: _ProgramState, *, failed: bool) -> None:
        if failed:
            prog.failed = True
        else:
            prog.record.finished_at = self.now
        self._unfinished -= 1
        if self._on_done is not None:
            self._on_done(prog.record)

    # -- the core's actions -----------------------------------------------------------

    def _run(self, actions: list[Action]) -> None:
        # A failed dispatch finishes its call at once, which can dispatch more: a queue,
        # not recursion, so a long run of failures cannot overflow the stack.
        self._actions.extend(actions)
        if self._draining:
            return
        self._draining = True
        try:
            while self._actions:
                action = self._actions.popleft()
                if isinstance(action, Dispatch):
                    self._dispatch(action)
                elif isinstance(action, Pin):
                    self.engine.retime(action.key, self.now + action.ttl_s)
                elif isinstance(action, Unpin):
                    self.engine.release(action.key)
                elif isinstance(action, Warm):
                    self._warm(action)
                # PauseObserved and ProgramExpired are observations: nothing to carry out.
        finally:
            self._draining = False
        self._wake_core()

    def _wake_core(self) -> None:
        """Tick the core at its next deadline, if that is sooner than the tick planned."""
        deadline = self.scheduler.next_deadline()
        if deadline is not None:
            self._schedule_tick(max(deadline, self.now + _TICK_MIN_S))

    def _dispatch(self, action: Dispatch) -> None:
        cs = self._live[action.call_id]
        assert cs.prompt is not None and cs.output is not None
        request = GenRequest(
            cs.rid,
            cs.prompt,
            cs.call.output_tokens,
            self.now,
            priority=0 if action.rank is None else -action.rank,  # engine: higher first
            output=cs.output,
            # Held at finish until the core re-times (Pin) or releases (Unpin) it, which it
            # does at that same instant: the grace only bounds a hold the core forgot.
            hold_key=action.hold_key,
            hold_ttl_s=_HOLD_GRACE_S,
        )
        try:
            self.engine.submit(request, self.now)
        except ValueError:  # RequestTooLongError, or an empty prompt
            self._fail(cs)
            return
        cs.dispatched = True
        cs.record.dispatched_at = self.now
        self._drop_tokens(cs)
        self._kick()

    def _warm(self, action: Warm) -> None:
        """Prefill a prefix ahead of the call that needs it (an agent's fixed prefix, or a
        paused program's own context): only into free room, or as a touch of a prefix
        that is already cached (it then stays longest under LRU)."""
        prefix = self._warm_tokens(action)
        if prefix is None:
            return
        cached, _ = self.engine.cache.match(prefix)
        free = self.engine.capacity - self.engine.used_tokens
        if cached < len(prefix) and free < len(prefix) - cached:
            self._warms[f"{action.kind}_skipped"] += 1
            return  # memory is tight: a warm must not evict anything
        loads = cached < len(prefix)
        self._warms[f"{action.kind}_{'sent' if loads else 'touched'}"] += 1
        if loads:
            scope = action.workflow if action.kind == "agent" else action.program_id
            self._warmed[_warm_key(action.kind, scope or "", action.agent)] = len(prefix)
        rid = f"warm-{action.kind}-{sum(self._warms.values())}"
        self._warm_rids[rid] = self.now
        self._extra.requests += 1
        self.engine.submit(GenRequest(rid, prefix, 0, self.now), self.now)
        self._kick()

    def _warm_tokens(self, action: Warm) -> Tokens | None:
        if action.kind == "agent":
            return self._prefixes.get((action.workflow, action.agent))
        cs = self._paused.get(action.program_id)
        if cs is None or cs.prompt is None or cs.output is None:
            return None
        return cs.prompt + cs.output[:-1]  # the KV the call left (its last token has none)

    def _fail(self, cs: _CallState) -> None:
        del self._live[cs.rid]
        cs.record.ok = False
        cs.record.finished_at = self.now
        if not cs.prog.failed:
            self._program_over(cs.prog, failed=True)
        self._run(self.scheduler.finish(cs.rid, CallOutcome(ok=False), self.now))

    # -- the engine -------------------------------------------------------------------

    def _kick(self) -> None:
        # Plan the next step after every event already due now, so that calls sent at the
        # same instant share a step.
        if not self._stepping:
            self._stepping = True
            self._push(self.now, _KICK, None)

    def _plan_step(self, _: None) -> None:
        step = self.engine.step(self.now)
        if step is None:
            self._stepping = False
            return
        if self.check:
            self._check_kv()
        self._idle_steps = 0 if step.duration_s > 0 else self._idle_steps + 1
        if self._idle_steps > _MAX_IDLE_STEPS:
            raise SimulationError(f"the engine made no progress at t={self.now}")
        self._push(self.now + step.duration_s, _STEP_END, step)

    def _step_end(self, step: Step) -> None:
        self._steps += 1
        for event in step.events:
            if event.rid in self._warm_rids:
                if isinstance(event, Finished):
                    self._extra.engine_s += self.now - self._warm_rids.pop(event.rid)
                continue
            if isinstance(event, Finished):
                self._finished(event)
            elif isinstance(event, PrefillDone):
                self._prefill_done(event)
            elif isinstance(event, Preempted):
                self._preempted(event)
        self._stepping = False
        self._kick()

    def _prefill_done(self, event: PrefillDone) -> None:
        cs = self._live[event.rid]
        record = cs.record
        record.first_token_at = self.now  # the step that ends the prefill yields token 1
        _time_prefill(record, event.queued_s)
        record.recomputed_tokens += max(0, cs.prior - event.cached_tokens)
        self._judge_warms(cs, event.cached_tokens)
        if cs.call.fresh and cs.call.system:
            cs.prog.systems.add(cs.call.system)
            key = (cs.prog.workflow, cs.call.agent)
            if key not in self._prefixes and cs.prompt is not None:
                self._prefixes[key] = cs.prompt[: cs.call.system_tokens]

    def _judge_warms(self, cs: _CallState, cached: int) -> None:
        """A warm was used if the first call it was for found the tokens it loaded."""
        keys = [_warm_key("resume", cs.prog.program.id, None)]
        if cs.call.fresh:
            keys.append(_warm_key("agent", cs.prog.workflow, cs.call.agent))
        for key in keys:
            tokens = self._warmed.pop(key, None)
            if tokens is not None:
                used = cached >= tokens - 1  # the last prompt token is always computed
                self._warms[f"{key[0]}_{'used' if used else 'wasted'}"] += 1

    def _preempted(self, event: Preempted) -> None:
        self._preemptions += 1
        self._live[event.rid].record.recomputed_tokens += event.recomputed_tokens

    def _finished(self, event: Finished) -> None:
        cs = self._live.pop(event.rid)
        record, prog = cs.record, cs.prog
        record.finished_at = self.now
        _time_decode(record, event.queued_s)
        record.prompt_tokens = event.prompt_tokens
        record.cached_tokens = event.cached_tokens
        record.completion_tokens = event.completion_tokens
        tools = (ToolCall(cs.tool_id, cs.call.tool or ""),) if cs.tool_id else ()
        outcome = CallOutcome(
            True, event.prompt_tokens, event.cached_tokens, event.completion_tokens, tools
        )
        self._run(self.scheduler.finish(event.rid, outcome, self.now))
        if prog.failed:
            return
        prog.left -= 1
        if cs.users:
            self._paused[prog.program.id] = cs
        self._release_children(cs)
        if prog.left == 0:
            self._program_over(prog, failed=False)

    # -- the core's clock -------------------------------------------------------------

    def _schedule_tick(self, at: float) -> None:
        if self._tick_at is None or at < self._tick_at:
            self._tick_at = at
            self._push(at, _TICK, at)

    def _tick(self, at: float) -> None:
        if at != self._tick_at:
            return  # superseded by an earlier tick
        self._tick_at = None
        self._run(self.scheduler.tick(self.now))

    # -- invariants (check mode) ------------------------------------------------------

    def _check_parents(self, cs: _CallState) -> None:
        for parent in cs.parents:
            done = parent.record.finished_at
            if done is None or self.now + 1e-9 < done + parent.call.tool_s:
                raise SimulationError(f"{cs.rid} sent at {self.now} before {parent.rid} returned")

    def _check_kv(self) -> None:
        stats = self.engine.stats()
        if stats.kv_used_tokens > stats.kv_capacity_tokens:
            raise SimulationError(
                f"KV over capacity at t={self.now}: "
                f"{stats.kv_used_tokens} > {stats.kv_capacity_tokens}"
            )


def _time_prefill(record: CallRecord, queued_s: float) -> None:
    """Split dispatch-to-first-token into the engine's queue and the prefill."""
    assert record.dispatched_at is not None and record.first_token_at is not None
    record.engine_queue_s = queued_s
    record.prefill_s = record.first_token_at - record.dispatched_at - queued_s


def _time_decode(record: CallRecord, queued_s: float) -> None:
    """First token to finish is decode, less any wait after a preemption while decoding
    (that is queue time)."""
    assert record.first_token_at is not None and record.finished_at is not None
    requeued = queued_s - record.engine_queue_s
    record.decode_s = record.finished_at - record.first_token_at - requeued
    record.engine_queue_s = queued_s


def _warm_key(kind: str, scope: str, agent: str | None) -> tuple[str, str, str | None]:
    """``scope`` is the workflow of an agent warm, the program of a resume warm."""
    return (kind, scope, agent if kind == "agent" else None)


def simulate(
    programs: Sequence[Program],
    policy: str | Policy,
    profile: Profile,
    *,
    kv_tokens: int | None = None,
    rate_scale: float = 1.0,
    seed: int = 0,
    check: bool = False,
    on_program_done: ProgramDone | None = None,
) -> SimResult:
    """Run one policy over ``programs`` in simulated time (see :class:`Simulation`)."""
    return Simulation(
        programs,
        policy,
        profile,
        kv_tokens=kv_tokens,
        rate_scale=rate_scale,
        seed=seed,
        check=check,
        on_program_done=on_program_done,
    ).run()
