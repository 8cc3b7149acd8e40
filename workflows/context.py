"""Where a running program is: the program, the agent frame, and the headers of its next call.

State lives in :mod:`contextvars`, so ``asyncio.gather`` / ``create_task`` branches inherit it
and each branch keeps its own agent. Frames are shared objects (a branch updates its parent's
last step when it returns), so their fields change only under the program's lock: branches
may run in threads (:func:`to_thread`, :func:`in_context`).

Steps are numbered per program. A call's parent step is the step before it in its agent; an
agent's first call follows the step its caller had reached, which is how fork and join edges
reach the proxy (the join follows whichever branch returned last).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from kvbaton.middleware.protocol import wire
from kvbaton.workflows.graph import WorkflowGraph, WorkflowSpec

__all__ = [
    "Frame",
    "Program",
    "ProgramInfo",
    "ToolRun",
    "current_frame",
    "current_program",
    "entered",
    "headers",
    "in_context",
    "last_step",
    "to_thread",
]

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ToolRun:
    """One run of a ``@tool`` inside a program."""

    name: str
    agent: str | None
    duration_s: float
    ok: bool


@dataclass(frozen=True, slots=True)
class ProgramInfo:
    """What a program has done so far (see :func:`current_program`)."""

    program_id: str
    workflow: str
    steps: int
    agents: tuple[str, ...]
    tool_runs: tuple[ToolRun, ...]


@dataclass(eq=False)
class Program:
    """One call of a ``@workflow`` function."""

    program_id: str
    spec: WorkflowSpec
    graph: WorkflowGraph
    started_at: float = field(default_factory=time.monotonic)
    proxy_url: str | None = None
    steps: int = 0
    agents: dict[str, None] = field(default_factory=dict)
    tool_runs: list[ToolRun] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def info(self) -> ProgramInfo:
        with self.lock:
            return ProgramInfo(
                self.program_id,
                self.spec.name,
                self.steps,
                tuple(self.agents),
                tuple(self.tool_runs),
            )


@dataclass(eq=False)
class Frame:
    """The workflow body (``agent=None``) or one running call of an ``@agent`` function."""

    program: Program
    agent: str | None = None
    parent: Frame | None = None
    last_step: str | None = None
    took_steps: bool = False
    pending_tools: list[str] = field(default_factory=list)
    last_headers: dict[str, str] | None = None

    def child(self, agent: str) -> Frame:
        with self.program.lock:
            return Frame(self.program, agent, self, self.last_step)

    def close(self) -> None:
        """Hand the last step and unreported tools back to the caller's frame."""
        if self.parent is None:
            return
        with self.program.lock:
            if self.took_steps:
                self.parent.last_step = self.last_step
                self.parent.took_steps = True
            self.parent.pending_tools.extend(self.pending_tools)
            self.pending_tools.clear()

    def record_tool(self, run: ToolRun) -> None:
        with self.program.lock:
            self.program.tool_runs.append(run)
            self.pending_tools.append(run.name)

    def agent_name(self) -> str | None:
        frame: Frame | None = self
        while frame is not None and frame.agent is None:
            frame = frame.parent
        return frame.agent if frame is not None else None


_FRAME: contextvars.ContextVar[Frame | None] = contextvars.ContextVar("kvbaton_frame", default=None)
_LAST: contextvars.ContextVar[bool] = contextvars.ContextVar("kvbaton_last_step", default=False)


def current_frame() -> Frame | None:
    return _FRAME.get()


@contextlib.contextmanager
def entered(frame: Frame) -> Iterator[Frame]:
    """Make ``frame`` the current one for the duration of the block."""
    token = _FRAME.set(frame)
    try:
        yield frame
    finally:
        _FRAME.reset(token)
        frame.close()


def current_program() -> ProgramInfo | None:
    """The running program's id, steps so far and tool runs; ``None`` outside a workflow."""
    frame = _FRAME.get()
    return frame.program.info() if frame is not None else None


@contextlib.contextmanager
def last_step() -> Iterator[None]:
    """Mark the LLM calls made inside the block as the program's last (``x-kvbaton-last-step``).

    The proxy then keeps nothing of the program once those calls are answered.
    """
    token = _LAST.set(True)
    try:
        yield
    finally:
        _LAST.reset(token)


def headers(*, retry: bool = False) -> dict[str, str]:
    """The kvbaton headers for the next LLM call of the running program.

    Call it once per request: each call takes a new step and reports (then forgets) the tools
    run since the program's previous call. ``retry=True`` repeats the headers of the frame's
    previous call (a retried request is the same step). Outside a workflow: ``{}``.
    """
    frame = _FRAME.get()
    if frame is None:
        return {}
    with frame.program.lock:
        if retry and frame.last_headers is not None:
            return dict(frame.last_headers)
        values = _take_step(frame)
        frame.last_headers = values
        return dict(values)


def _take_step(frame: Frame) -> dict[str, str]:
    program = frame.program
    program.steps += 1
    step = str(program.steps)
    values = {
        wire.HEADER_PROGRAM_ID: program.program_id,
        wire.HEADER_WORKFLOW: program.spec.name,
        wire.HEADER_STEP: step,
    }
    if frame.last_step is not None:
        values[wire.HEADER_PARENT_STEP] = frame.last_step
    agent = frame.agent_name()
    if agent is not None:
        values[wire.HEADER_AGENT] = agent
        program.agents.setdefault(agent, None)
    tools = _take_pending_tools(frame)
    if tools:
        values[wire.HEADER_TOOL] = ",".join(tools)
    if _LAST.get():
        values[wire.HEADER_LAST_STEP] = "true"
    if program.spec.tenant is not None:
        values[wire.HEADER_TENANT] = program.spec.tenant
    if program.spec.deadline_s is not None:
        left = program.spec.deadline_s - (time.monotonic() - program.started_at)
        values[wire.HEADER_DEADLINE] = f"{max(left, 0.0):.3f}"
    frame.last_step = step
    frame.took_steps = True
    return values


def _take_pending_tools(frame: Frame) -> list[str]:
    """Tools run in this frame and, before it was entered, in the frames around it."""
    chain: list[Frame] = []
    node: Frame | None = frame
    while node is not None:
        chain.append(node)
        node = node.parent
    tools: list[str] = []
    for node in reversed(chain):
        tools.extend(node.pending_tools)
        node.pending_tools.clear()
    return tools


async def to_thread(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``fn`` in a worker thread, inside the current program and agent."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def in_context(fn: Callable[P, T]) -> Callable[P, T]:
    """``fn`` bound to the current program and agent, for ``ThreadPoolExecutor.submit``,
    ``loop.run_in_executor`` or ``threading.Thread``, which do not carry context."""
    context = contextvars.copy_context()

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        # A Context cannot be entered twice at once; each run gets its own copy.
        return context.copy().run(fn, *args, **kwargs)

    return run
