"""All workflows' graphs, and where each live program is in its own: the scheduler's view.

The scheduler calls the hooks (``arrived``, ``finished``, ``paused``, ``ended``,
``expired``) at its events, and anyone may call :meth:`WorkflowRegistry.predict` for a
live program; each costs O(1) dictionary work (plus, at a program's end, one pass over its
calls). A program's workflow is the one it declared (``x-kvbaton-workflow``, or inferred
by the driver, e.g. from its system prompt), else ``agent:<first agent>``, else
``default``. At most ``max_workflows`` graphs are kept, least recently used first out.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TypeVar

from kvbaton.middleware.core.graph import ToolPause
from kvbaton.middleware.core.programs import ProgramState
from kvbaton.middleware.core.types import CallOutcome, CallSpec
from kvbaton.middleware.core.workflows.declared import DeclaredWorkflow
from kvbaton.middleware.core.workflows.learned import WorkflowGraph
from kvbaton.middleware.core.workflows.outlook import CallRecord
from kvbaton.middleware.core.workflows.prediction import Estimate, Prediction

__all__ = ["DEFAULT_AGENT", "DEFAULT_WORKFLOW", "WorkflowRegistry"]

DEFAULT_WORKFLOW = "default"
DEFAULT_AGENT = "main"  # the agent of calls that name none
_NEXT_REPORTED = 4

K = TypeVar("K")
V = TypeVar("V")


@dataclass(slots=True)
class _Trace:
    """A live program's calls, as far as its workflow graph will learn from them."""

    workflow: str
    calls: int = 0
    records: OrderedDict[str, CallRecord] = field(default_factory=OrderedDict)
    steps: OrderedDict[str, str] = field(default_factory=OrderedDict)  # step -> call id
    last: CallRecord | None = None
    finished_call: str | None = None
    finished_at: float | None = None
    saw_last: bool = False
    service_mark: float = 0.0  # the program's service_s when its last call arrived


class WorkflowRegistry:
    """Workflow graphs by name (bounded, LRU) and the live programs' traces."""

    def __init__(
        self,
        *,
        max_workflows: int = 256,
        max_calls_kept: int = 1024,
        seed: int = 0,
    ) -> None:
        if max_workflows < 1 or max_calls_kept < 1:
            raise ValueError("max_workflows and max_calls_kept must be at least 1")
        self.max_workflows = max_workflows
        self.max_calls_kept = max_calls_kept
        self.seed = seed
        self._graphs: OrderedDict[str, WorkflowGraph] = OrderedDict()
        self._traces: dict[str, _Trace] = {}

    def __len__(self) -> int:
        return len(self._graphs)

    def names(self) -> list[str]:
        return list(self._graphs)

    def get(self, name: str) -> WorkflowGraph | None:
        return self._graphs.get(name)

    def declare(self, name: str, declared: DeclaredWorkflow) -> WorkflowGraph:
        """Seed workflow ``name`` from a declaration (what it learned so far stays)."""
        graph = self._touch(name)
        graph.declare(declared)
        return graph

    def workflow_of(self, program_id: str) -> str | None:
        trace = self._traces.get(program_id)
        return trace.workflow if trace is not None else None

    # -- hooks (the scheduler's events) -----------------------------------------------

    def arrived(self, program: ProgramState, spec: CallSpec, now: float) -> None:
        trace = self._traces.get(program.program_id)
        if trace is None:
            trace = self._traces[program.program_id] = _Trace(_name(program, spec))
        elif spec.retry and trace.last is not None:
            return  # the same step again
        graph = self._touch(trace.workflow)
        parent = self._parent(trace, spec)
        agent = graph.agent(spec.agent or DEFAULT_AGENT).name
        first = parent is None or agent not in parent.children
        graph.transition(parent.agent if parent is not None else None, agent, first=first)
        if parent is not None:
            parent.children[agent] = parent.children.get(agent, 0) + 1
        trace.calls += 1
        record = CallRecord(spec.call_id, agent, trace.calls, now)
        _put(trace.records, spec.call_id, record, self.max_calls_kept)
        if spec.step is not None:
            _put(trace.steps, spec.step, spec.call_id, self.max_calls_kept)
        trace.last = record
        trace.service_mark = program.service_s

    def finished(
        self,
        program: ProgramState,
        spec: CallSpec,
        outcome: CallOutcome,
        service_s: float,
        now: float,
    ) -> None:
        """A call ended; learns the program once its last step is done and nothing runs."""
        trace = self._traces.get(program.program_id)
        if trace is None:
            return
        record = trace.records.get(spec.call_id)
        if record is not None:
            record.service_s = service_s
            graph = self._touch(trace.workflow)
            graph.observe_call(
                record.agent, service_s, outcome.prompt_tokens, outcome.completion_tokens
            )
        trace.finished_call, trace.finished_at = spec.call_id, now
        trace.saw_last = trace.saw_last or (spec.last_step and outcome.ok)
        if trace.saw_last and not program.busy:
            self.ended(program.program_id, now)

    def tool_pause(self, program_id: str, spec: CallSpec, now: float) -> ToolPause | None:
        """The pause named by ``x-kvbaton-tool``: from the previous call's finish to now."""
        trace = self._traces.get(program_id)
        if not spec.tools or trace is None or trace.finished_at is None:
            return None
        after = trace.finished_call
        if after is None:
            return None
        trace.finished_call = None  # one pause per finished call
        started = trace.finished_at
        return ToolPause(spec.tools, started, max(0.0, now - started), after, spec.call_id)

    def paused(self, program_id: str, pause: ToolPause) -> None:
        trace = self._traces.get(program_id)
        record = trace.records.get(pause.after_call) if trace is not None else None
        if trace is None or record is None:
            return
        record.pause_after_s += pause.duration_s
        self._touch(trace.workflow).observe_pause(record.agent, pause.tools, pause.duration_s)

    def ended(self, program_id: str, now: float) -> bool:
        """The program is over (its last step, or it said so): its graph learns from it."""
        trace = self._traces.pop(program_id, None)
        if trace is None:
            return False
        self._touch(trace.workflow).learn_program(list(trace.records.values()), trace.calls, now)
        return True

    def expired(self, program_id: str) -> bool:
        """The program went idle and left the table: over since its last call finished."""
        trace = self._traces.get(program_id)
        if trace is None:
            return False
        last = trace.last.arrived_at if trace.last is not None else 0.0
        return self.ended(program_id, trace.finished_at if trace.finished_at is not None else last)

    # -- predictions ------------------------------------------------------------------

    def predict(self, program: ProgramState, now: float) -> Prediction | None:
        """The program's outlook from its workflow graph; ``None`` before its first call."""
        trace = self._traces.get(program.program_id)
        graph = self._graphs.get(trace.workflow) if trace is not None else None
        if trace is None or graph is None or trace.last is None:
            return None
        last = trace.last
        outlook, source = graph.remaining(last.agent, last.k)
        elapsed = now - last.arrived_at
        served = program.service_s - trace.service_mark
        tools = tuple(t.name for t in program.pending_tools.values())
        return Prediction(
            workflow=trace.workflow,
            agent=last.agent,
            calls=trace.calls,
            at=now,
            next_agents=graph.next_agents(last.agent, last.k)[:_NEXT_REPORTED],
            tool_pause=graph.pause_after(last.agent, tools),
            remaining_calls=Estimate.of(outlook.calls if outlook else None, source),
            remaining_service_s=Estimate.of(
                outlook.service_s if outlook else None, source, less=served
            ),
            remaining_pause_s=Estimate.of(outlook.pause_s if outlook else None, source),
            remaining_time_s=Estimate.of(outlook.time_s if outlook else None, source, less=elapsed),
        )

    def remaining_work(self, program: ProgramState, now: float) -> tuple[float, float] | None:
        """Predicted (engine seconds, wall seconds) left for the program: the means of
        :meth:`predict`, at a fraction of its cost, for priority keys. ``None`` when its
        workflow has not seen a program end."""
        trace = self._traces.get(program.program_id)
        graph = self._graphs.get(trace.workflow) if trace is not None else None
        if trace is None or graph is None or trace.last is None:
            return None
        outlook, _ = graph.remaining(trace.last.agent, trace.last.k)
        if outlook is None:
            return None
        served = program.service_s - trace.service_mark
        elapsed = now - trace.last.arrived_at
        return (
            max(0.0, outlook.service_s.mean - served),
            max(0.0, outlook.time_s.mean - elapsed),
        )

    # -- internals --------------------------------------------------------------------

    def _touch(self, name: str) -> WorkflowGraph:
        graph = self._graphs.get(name)
        if graph is not None:
            self._graphs.move_to_end(name)
            return graph
        if len(self._graphs) >= self.max_workflows:
            self._graphs.popitem(last=False)
        graph = self._graphs[name] = WorkflowGraph(name, seed=self.seed)
        return graph

    @staticmethod
    def _parent(trace: _Trace, spec: CallSpec) -> CallRecord | None:
        """The call this one follows: its declared parent step, else the program's last."""
        if spec.parent_step is not None:
            call_id = trace.steps.get(spec.parent_step)
            record = trace.records.get(call_id) if call_id is not None else None
            if record is not None:
                return record
        return trace.last


def _name(program: ProgramState, spec: CallSpec) -> str:
    if program.workflow is not None:
        return program.workflow
    return f"agent:{spec.agent}" if spec.agent else DEFAULT_WORKFLOW


def _put(table: OrderedDict[K, V], key: K, value: V, cap: int) -> None:
    table[key] = value
    if len(table) > cap:
        table.popitem(last=False)
