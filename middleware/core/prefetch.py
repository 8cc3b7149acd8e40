"""Prefetch: warm what a program will need before it asks for it.

Two kinds, both as :class:`~.actions.Warm` actions that drivers carry out with a
prefill-only request that never evicts pinned or running KV:

- **next agent** (KVFlow): warm the fixed prefix of the agents a workflow runs next
  (:class:`NextAgents`);
- **resume**: re-warm a paused program's own context shortly before its tool is expected
  back, when its pin ended first or it had none (:class:`~.rewarm.Rewarmer`).

Per workflow, the prefetcher counts which agent follows which (within a program) and keeps
each agent's fixed prefix size (its system prompt and tools: ``CallSpec.prefix_tokens``).
When a call of agent ``A`` starts, the agents that followed ``A`` at least ``min_share`` of
the time (up to ``max_agents``, most likely first) are due next; their prefixes are warmed
so that they are in the engine's cache when their calls arrive, overlapped with ``A``'s
call. A prefix warmed in the last ``cooldown_s`` seconds is not warmed again: it is hot.

Memory is bounded: at most ``max_workflows`` workflows (least recently used go first),
``max_agents_per_workflow`` agents each, and one entry per live program.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from kvbaton.middleware.core.actions import Action, Pin, Unpin, Warm
from kvbaton.middleware.core.programs import ProgramState, ProgramTable
from kvbaton.middleware.core.rewarm import Rewarmer
from kvbaton.middleware.core.types import CallOutcome, CallSpec

__all__ = ["NextAgents", "PrefetchConfig", "Prefetcher"]


@dataclass(frozen=True, slots=True)
class PrefetchConfig:
    min_share: float = 0.25  # least share of A's successors an agent needs to be warmed
    max_agents: int = 2  # agents warmed after one call (KVFlow warms up to a cap)
    cooldown_s: float = 5.0
    max_workflows: int = 256
    max_agents_per_workflow: int = 64
    max_programs: int = 100_000

    def __post_init__(self) -> None:
        if not 0 < self.min_share <= 1 or self.max_agents < 1 or self.cooldown_s < 0:
            raise ValueError("need 0 < min_share <= 1, max_agents >= 1 and cooldown_s >= 0")


@dataclass(slots=True)
class _Workflow:
    successors: dict[str, Counter[str]] = field(default_factory=dict)
    prefix_tokens: dict[str, int] = field(default_factory=dict)
    warmed_at: dict[str, float] = field(default_factory=dict)


class NextAgents:
    """Learns agent successions per workflow; answers which prefixes to warm now."""

    def __init__(self, config: PrefetchConfig | None = None) -> None:
        self.config = config or PrefetchConfig()
        self._workflows: OrderedDict[str, _Workflow] = OrderedDict()
        self._last_agent: OrderedDict[str, str] = OrderedDict()  # program id -> agent
        self.warms = 0

    def started(self, spec: CallSpec, now: float) -> list[Warm]:
        """A call was dispatched: learn the succession, then warm what comes after it."""
        if spec.agent is None or spec.workflow is None:
            return []
        flow = self._workflow(spec.workflow)
        self._learn(flow, spec)
        return self._warms(flow, spec, now)

    def forget(self, program_id: str) -> None:
        self._last_agent.pop(program_id, None)

    def _workflow(self, name: str) -> _Workflow:
        flow = self._workflows.get(name)
        if flow is None:
            flow = self._workflows[name] = _Workflow()
            if len(self._workflows) > self.config.max_workflows:
                self._workflows.popitem(last=False)
        self._workflows.move_to_end(name)
        return flow

    def _learn(self, flow: _Workflow, spec: CallSpec) -> None:
        agent = spec.agent
        assert agent is not None
        room = len(flow.prefix_tokens) < self.config.max_agents_per_workflow
        if spec.prefix_tokens > 0 and (agent in flow.prefix_tokens or room):
            flow.prefix_tokens[agent] = spec.prefix_tokens
        previous = self._last_agent.pop(spec.program_id, None)
        self._last_agent[spec.program_id] = agent
        if len(self._last_agent) > self.config.max_programs:
            self._last_agent.popitem(last=False)
        if previous is None or previous == agent:
            return
        counts = flow.successors.get(previous)
        if counts is None:
            if len(flow.successors) >= self.config.max_agents_per_workflow:
                return
            counts = flow.successors[previous] = Counter()
        if agent in counts or len(counts) < self.config.max_agents_per_workflow:
            counts[agent] += 1

    def _warms(self, flow: _Workflow, spec: CallSpec, now: float) -> list[Warm]:
        counts = flow.successors.get(spec.agent or "")
        if not counts:
            return []
        total = sum(counts.values())
        warms: list[Warm] = []
        for agent, n in counts.most_common(self.config.max_agents):
            tokens = flow.prefix_tokens.get(agent, 0)
            if n / total < self.config.min_share or tokens <= 0:
                continue
            last = flow.warmed_at.get(agent)
            if last is not None and now - last < self.config.cooldown_s:
                continue
            flow.warmed_at[agent] = now
            warms.append(Warm("agent", spec.program_id, tokens, spec.workflow, agent))
        self.warms += len(warms)
        return warms


# Unpin reasons that leave a paused program's KV unprotected while its tool still runs.
_LOST = frozenset({"expired", "displaced", "denied", "not-pinned", "released"})


class Prefetcher:
    """The scheduler's prefetch: next-agent warms at dispatch, resume warms on time."""

    def __init__(
        self,
        config: PrefetchConfig | None = None,
        *,
        agents: bool = True,
        rewarm: Rewarmer | None = None,
    ) -> None:
        self.next_agents = NextAgents(config) if agents else None
        self.rewarm = rewarm

    def started(self, spec: CallSpec, now: float) -> list[Warm]:
        """A call was dispatched: warm the agents due after it."""
        return self.next_agents.started(spec, now) if self.next_agents is not None else []

    def arrived(self, program_id: str) -> None:
        if self.rewarm is not None:
            self.rewarm.returned(program_id)

    def finished(
        self,
        program: ProgramState,
        outcome: CallOutcome,
        actions: list[Action],
        programs: ProgramTable,
        now: float,
    ) -> None:
        """A call ended: pins the keeper ended go to :meth:`unpinned`; a tool pause the
        keeper said nothing of (no retention) is unprotected too."""
        self.unpinned(actions, programs, now)
        pid = program.program_id
        keeper_spoke = any(isinstance(a, Pin | Unpin) and a.key == pid for a in actions)
        if outcome.tool_calls and not keeper_spoke:
            self._lost(program, now)

    def unpinned(self, actions: list[Action], programs: ProgramTable, now: float) -> None:
        """Pins ended while their programs' tools run: plan to re-warm those."""
        for action in actions:
            if isinstance(action, Unpin) and action.reason in _LOST:
                program = programs.get(action.key)
                if program is not None and not program.busy:
                    self._lost(program, now)

    def tick(self, now: float) -> list[Warm]:
        return self.rewarm.tick(now) if self.rewarm is not None else []

    def next_deadline(self) -> float | None:
        return self.rewarm.next_deadline() if self.rewarm is not None else None

    def forget(self, program_id: str) -> None:
        if self.next_agents is not None:
            self.next_agents.forget(program_id)
        self.arrived(program_id)

    def _lost(self, program: ProgramState, now: float) -> None:
        if self.rewarm is None or program.tool_wait_since is None:
            return
        tools = tuple(t.name for t in program.pending_tools.values())
        self.rewarm.pin_lost(
            program.program_id, tools, program.tool_wait_since, program.context_tokens, now
        )
