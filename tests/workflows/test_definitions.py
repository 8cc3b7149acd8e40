"""Declared graphs, and the errors that say what to fix when a declaration is wrong."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

import kvbaton.workflows as kw
from kvbaton.workflows.graph import WorkflowSpec, build_graph

_modules = itertools.count()


def fresh_module() -> str:
    """A module name of its own, so each test declares into an empty namespace."""
    return f"tests.workflows.fake_module_{next(_modules)}"


def fn(module: str, name: str, is_async: bool = False) -> Callable[..., Any]:
    """A plain function that looks declared in ``module``."""

    async def async_body() -> str:
        return name

    def body() -> str:
        return name

    made = async_body if is_async else body
    made.__module__, made.__name__, made.__qualname__ = module, name, name
    return made


def graph_of(module: str, **spec: Any) -> dict[str, Any]:
    graph = build_graph(WorkflowSpec(name="g", module=module, **spec))
    return graph.model_dump(exclude_none=True)


def test_the_module_graph_with_agents_tools_and_edges() -> None:
    m = fresh_module()
    kw.tool("search", expected_duration_s=2.0)(fn(m, "search"))
    kw.agent("planner", next=["researcher"])(fn(m, "planner"))
    kw.agent("researcher", next=["search", "writer"], fan_out=3)(fn(m, "researcher"))
    kw.agent("writer", last=True)(fn(m, "writer"))
    assert graph_of(m) == {
        "name": "g",
        "entry": "planner",
        "agents": [
            {"name": "planner", "next": ["researcher"], "tools": [], "last": False},
            {
                "name": "researcher",
                "next": ["writer"],
                "tools": ["search"],
                "fan_out": 3,
                "last": False,
            },
            {"name": "writer", "next": [], "tools": [], "last": True},
        ],
        "tools": [{"name": "search", "expected_duration_s": 2.0}],
    }


def test_explicit_agents_reach_through_next_across_modules() -> None:
    shared, app = fresh_module(), fresh_module()
    writer = kw.agent("shared-writer")(fn(shared, "w"))
    kw.agent("app-planner", next=[writer])(fn(app, "p"))
    kw.agent("unrelated")(fn(app, "u"))
    graph = graph_of(app, agents=("app-planner",), entry="app-planner")
    assert [a["name"] for a in graph["agents"]] == ["app-planner", "shared-writer"]
    assert graph["entry"] == "app-planner"


def test_a_misspelt_next_is_named_with_a_suggestion() -> None:
    m = fresh_module()
    kw.agent("planner", next=["reseacher"])(fn(m, "planner"))
    kw.agent("researcher")(fn(m, "researcher"))
    with pytest.raises(
        kw.DefinitionError, match=r"next=\[\.\.\., 'reseacher'.*did you mean 'researcher'"
    ):
        graph_of(m)


async def test_the_first_workflow_call_raises_for_a_broken_graph() -> None:
    m = fresh_module()
    kw.agent("a", next=["nobody"])(fn(m, "a"))
    flow = kw.workflow("broken")(fn(m, "flow", is_async=True))
    with pytest.raises(kw.DefinitionError, match="'nobody'"):
        await flow()


def test_an_undeclared_tool_is_named() -> None:
    m = fresh_module()
    kw.agent("a", tools=["serch"])(fn(m, "a"))
    kw.tool("search")(fn(m, "search"))
    with pytest.raises(kw.DefinitionError, match=r"tools=\[\.\.\., 'serch'.*did you mean 'search'"):
        graph_of(m)


def test_an_entry_that_is_not_an_agent() -> None:
    m = fresh_module()
    kw.agent("a")(fn(m, "a"))
    with pytest.raises(kw.DefinitionError, match="entry='b'"):
        graph_of(m, entry="b")


def test_no_single_root_means_no_entry() -> None:
    m = fresh_module()
    kw.agent("x", next=["y"])(fn(m, "x"))
    kw.agent("y", next=["x"])(fn(m, "y"))
    assert "entry" not in graph_of(m)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: kw.agent("a,b"), "no commas"),
        (lambda: kw.agent(" a"), "leading or trailing spaces"),
        (lambda: kw.tool("plánner"), "printable ASCII"),
        (lambda: kw.agent(3), "takes a name"),  # type: ignore[call-overload]
        (lambda: kw.agent("a", next="b"), r"write next=\['b'\]"),
        (lambda: kw.agent("a", fan_out=0), "fan_out must be"),
        (lambda: kw.tool("t", expected_duration_s=-1), "positive number of seconds"),
        (lambda: kw.workflow("w", deadline_s=0), "positive number of seconds"),
    ],
)
def test_bad_arguments_are_refused_when_declared(make: Callable[[], Any], message: str) -> None:
    with pytest.raises(kw.DefinitionError, match=message):
        make()(fn(fresh_module(), "f"))


def test_decorating_something_that_is_not_a_function() -> None:
    with pytest.raises(TypeError, match=r"@agent decorates a function; got 42 \(int\)"):
        kw.agent("a")(42)


def test_generators_are_refused() -> None:
    def gen() -> Any:
        yield 1

    with pytest.raises(kw.DefinitionError, match="generator gen"):
        kw.tool(gen)


def test_one_name_twice_in_a_module() -> None:
    m = fresh_module()
    kw.agent("dup")(fn(m, "first"))
    with pytest.raises(kw.DefinitionError, match=r"declared twice.*by first and by second"):
        kw.agent("dup")(fn(m, "second"))
    with pytest.raises(kw.DefinitionError, match="both as an agent and as a tool"):
        kw.tool("dup")(fn(m, "third"))
    kw.agent("dup")(fn(m, "first"))  # the same function again (a reload) is fine


def test_the_same_name_in_two_modules_is_ambiguous_only_when_looked_up() -> None:
    a, b, c = fresh_module(), fresh_module(), fresh_module()
    kw.agent("common-writer")(fn(a, "w"))
    kw.agent("common-writer")(fn(b, "w"))
    kw.agent("lead", next=["common-writer"])(fn(c, "lead"))
    with pytest.raises(kw.DefinitionError, match="declared in several modules"):
        graph_of(c)


def test_bare_and_called_forms_agree() -> None:
    m = fresh_module()
    bare = kw.agent(fn(m, "alpha"))
    called = kw.agent()(fn(m, "beta"))
    assert (bare.__kvbaton__.name, called.__kvbaton__.name) == ("alpha", "beta")  # type: ignore[attr-defined]
    assert [a["name"] for a in graph_of(m)["agents"]] == ["alpha", "beta"]


def test_several_workflows_in_a_module_need_their_own_agents() -> None:
    m = fresh_module()
    kw.agent("a", next=["b"])(fn(m, "a"))
    kw.agent("b")(fn(m, "b"))
    kw.agent("c")(fn(m, "c"))
    kw.workflow("first")(fn(m, "first"))
    kw.workflow("second")(fn(m, "second"))
    with pytest.raises(kw.DefinitionError, match=r"several workflows \(first, second\).*entry="):
        build_graph(WorkflowSpec(name="first", module=m))
    by_entry = build_graph(WorkflowSpec(name="first", module=m, entry="a"))
    assert [a.name for a in by_entry.agents] == ["a", "b"]
    assert build_graph(WorkflowSpec(name="second", module=m, agents=())).agents == []
