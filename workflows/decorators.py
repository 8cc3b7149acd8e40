"""``@workflow``, ``@agent`` and ``@tool``: bare or with arguments, on plain or async functions.

A call of a ``@workflow`` function is one program (a fresh program id). ``@agent`` makes the
LLM calls inside it carry the agent's name; ``@tool`` times the tool and names it on the
program's next LLM call. The decorated functions keep their signatures and return values.
"""

from __future__ import annotations

import functools
import inspect
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast, overload

from kvbaton.workflows import proxy
from kvbaton.workflows.context import Frame, Program, ToolRun, current_frame, entered
from kvbaton.workflows.declarations import (
    AgentSpec,
    ToolSpec,
    check_name,
    declare,
    declare_workflow,
    names_of,
)
from kvbaton.workflows.errors import DefinitionError, OutsideWorkflowError
from kvbaton.workflows.graph import WorkflowGraph, WorkflowSpec, build_graph

__all__ = ["agent", "tool", "workflow"]

F = TypeVar("F", bound=Callable[..., Any])
Names = Iterable[str | Callable[..., Any]]

_MAX_FAN_OUT = 1024  # the proxy's limit


# -- @workflow --------------------------------------------------------------------------


@overload
def workflow(fn: F, /) -> F: ...
@overload
def workflow(
    name: str | None = None,
    /,
    *,
    agents: Names | None = None,
    entry: str | None = None,
    tenant: str | None = None,
    deadline_s: float | None = None,
) -> Callable[[F], F]: ...
def workflow(
    name: Any = None,
    /,
    *,
    agents: Names | None = None,
    entry: str | None = None,
    tenant: str | None = None,
    deadline_s: float | None = None,
) -> Any:
    """Each call of the decorated function is one program of workflow ``name``.

    Its declared graph: the ``agents`` given (names or ``@agent`` functions), else its
    ``entry`` agent, else every ``@agent`` of its module (which must then declare no other
    workflow), and all the agents their ``next`` lists reach. ``entry`` defaults to the one
    agent no other hands over to. ``tenant`` and ``deadline_s`` (seconds from the call) go
    on every LLM call of the program.
    """

    def decorate(fn: F) -> F:
        spec = WorkflowSpec(
            name=check_name("workflow", name if isinstance(name, str) else _name_of(fn)),
            module=fn.__module__,
            agents=names_of("agents", agents) if agents is not None else None,
            entry=check_name("entry", entry) if entry is not None else None,
            tenant=check_name("tenant", tenant) if tenant is not None else None,
            deadline_s=_positive("deadline_s", deadline_s),
        )
        declare_workflow(spec.module, spec.name)
        return _Workflow(spec).decorate(fn)

    return _apply("workflow", name, decorate)


class _Workflow:
    """One ``@workflow``: builds its graph at the first call and starts and ends programs."""

    def __init__(self, spec: WorkflowSpec) -> None:
        self.spec = spec
        self._graph: WorkflowGraph | None = None

    def decorate(self, fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                program = self._start()
                if program.proxy_url is not None:
                    await proxy.put_graph_async(program.proxy_url, program.graph)
                try:
                    with entered(Frame(program)):
                        return await fn(*args, **kwargs)
                finally:
                    if program.proxy_url is not None and program.steps:
                        await proxy.end_program_async(program.proxy_url, program.program_id)

            return _mark(run_async, self.spec, fn)

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            program = self._start()
            if program.proxy_url is not None:
                proxy.put_graph(program.proxy_url, program.graph)
            try:
                with entered(Frame(program)):
                    return fn(*args, **kwargs)
            finally:
                if program.proxy_url is not None and program.steps:
                    proxy.end_program(program.proxy_url, program.program_id)

        return _mark(run, self.spec, fn)

    def _start(self) -> Program:
        if self._graph is None:
            self._graph = build_graph(self.spec)
        program_id = f"{self.spec.name}-{uuid.uuid4().hex[:12]}"
        return Program(program_id, self.spec, self._graph, proxy_url=proxy.proxy_url_of(None))


# -- @agent -----------------------------------------------------------------------------


@overload
def agent(fn: F, /) -> F: ...
@overload
def agent(
    name: str | None = None,
    /,
    *,
    next: Names | None = None,
    tools: Names | None = None,
    fan_out: int | None = None,
    expected_duration_s: float | None = None,
    last: bool = False,
) -> Callable[[F], F]: ...
def agent(
    name: Any = None,
    /,
    *,
    next: Names | None = None,
    tools: Names | None = None,
    fan_out: int | None = None,
    expected_duration_s: float | None = None,
    last: bool = False,
) -> Any:
    """LLM calls made inside the decorated function belong to agent ``name``.

    ``next``: the agents (or tools) it hands over to; ``tools``: the tools it runs;
    ``fan_out``: how many copies of it usually run at once; ``last``: nothing follows it.
    These are hints the proxy uses before it has seen the workflow run.
    """

    def decorate(fn: F) -> F:
        spec = AgentSpec(
            name=check_name("agent", name if isinstance(name, str) else _name_of(fn)),
            module=fn.__module__,
            qualname=fn.__qualname__,
            next=names_of("next", next),
            tools=names_of("tools", tools),
            fan_out=_fan_out(fan_out),
            expected_duration_s=_positive("expected_duration_s", expected_duration_s),
            last=bool(last),
        )
        declare(spec)
        return _wrap(fn, spec, lambda: _enter_agent(spec))

    return _apply("agent", name, decorate)


def _enter_agent(spec: AgentSpec) -> Any:
    frame = current_frame()
    if frame is None:
        raise OutsideWorkflowError(
            f"agent {spec.name!r} ({spec.qualname}) ran outside a workflow: call it from a "
            "function decorated with @kvbaton.workflows.workflow, whose every call is one "
            "program (in a thread of your own? start it with kvbaton.workflows.in_context(fn); "
            "in async code, use kvbaton.workflows.to_thread)"
        )
    return entered(frame.child(spec.name))


# -- @tool ------------------------------------------------------------------------------


@overload
def tool(fn: F, /) -> F: ...
@overload
def tool(
    name: str | None = None, /, *, expected_duration_s: float | None = None
) -> Callable[[F], F]: ...
def tool(name: Any = None, /, *, expected_duration_s: float | None = None) -> Any:
    """Time the decorated function as tool ``name``; the program's next LLM call names it.

    Outside a workflow the function runs as it is, untimed.
    """

    def decorate(fn: F) -> F:
        spec = ToolSpec(
            name=check_name("tool", name if isinstance(name, str) else _name_of(fn)),
            module=fn.__module__,
            qualname=fn.__qualname__,
            expected_duration_s=_positive("expected_duration_s", expected_duration_s),
        )
        declare(spec)
        return _wrap(fn, spec, lambda: _ToolTimer(spec.name))

    return _apply("tool", name, decorate)


class _ToolTimer:
    def __init__(self, name: str) -> None:
        self.name = name
        self.frame = current_frame()
        self.started_at = 0.0

    def __enter__(self) -> None:
        self.started_at = time.monotonic()

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if self.frame is not None:
            run = ToolRun(
                self.name, self.frame.agent_name(), time.monotonic() - self.started_at, kind is None
            )
            self.frame.record_tool(run)


# -- shared -----------------------------------------------------------------------------


def _apply(kind: str, target: Any, decorate: Callable[[F], F]) -> Any:
    """``@kind`` (bare: ``target`` is the function) or ``@kind(...)`` (returns ``decorate``)."""
    if target is None or isinstance(target, str):
        return lambda fn: decorate(_checked(kind, fn))
    if callable(target):
        return decorate(_checked(kind, target))
    raise DefinitionError(
        f"@{kind} takes a name (a string) or decorates a function directly; got {target!r}"
    )


def _checked(kind: str, fn: Any) -> Any:
    if not callable(fn):
        raise TypeError(f"@{kind} decorates a function; got {fn!r} ({type(fn).__name__})")
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise DefinitionError(
            f"@{kind} cannot decorate the generator {_name_of(fn)}: its body runs after the "
            "call has returned, outside the program; decorate the function that consumes it"
        )
    return fn


def _wrap(fn: F, spec: AgentSpec | ToolSpec, scope: Callable[[], Any]) -> F:
    """``fn`` run inside the context manager that ``scope()`` returns at each call."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            with scope():
                return await fn(*args, **kwargs)

        return _mark(run_async, spec, fn)

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        with scope():
            return fn(*args, **kwargs)

    return _mark(run, spec, fn)


def _mark(wrapper: Callable[..., Any], spec: object, like: F) -> F:
    """``wrapper`` with its declaration attached, typed as the function it wraps."""
    wrapper.__kvbaton__ = spec  # type: ignore[attr-defined]
    return cast(F, wrapper)


def _name_of(fn: Any) -> str:
    return str(getattr(fn, "__name__", type(fn).__name__))


def _positive(what: str, value: float | None) -> float | None:
    if value is not None and not value > 0:
        raise DefinitionError(f"{what} must be a positive number of seconds, got {value!r}")
    return None if value is None else float(value)


def _fan_out(value: int | None) -> int | None:
    if value is not None and (not isinstance(value, int) or not 1 <= value <= _MAX_FAN_OUT):
        raise DefinitionError(
            f"fan_out must be a whole number from 1 to {_MAX_FAN_OUT}, got {value!r}"
        )
    return value
