"""What ``@agent`` and ``@tool`` declare, kept per module so that graphs can be built from it.

Names travel in HTTP headers (``x-kvbaton-agent``, and comma-separated in
``x-kvbaton-tool``), so they are printable ASCII without commas. Two workflows in different
modules may each have an agent called ``writer``: declarations are keyed by (module, name).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kvbaton.workflows.errors import DefinitionError

__all__ = [
    "AgentSpec",
    "ToolSpec",
    "agents_in",
    "check_name",
    "declare",
    "declare_workflow",
    "find_agent",
    "find_tool",
    "names_of",
    "suggest",
    "tools_in",
    "workflows_in",
]

_MAX_NAME = 128


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """One ``@agent``: its name, the agents it may hand over to, the tools it may run."""

    name: str
    module: str
    qualname: str
    next: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    fan_out: int | None = None
    expected_duration_s: float | None = None
    last: bool = False


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One ``@tool``: its name and, if declared, how long it is expected to run."""

    name: str
    module: str
    qualname: str
    expected_duration_s: float | None = None


Spec = AgentSpec | ToolSpec

_AGENTS: dict[tuple[str, str], AgentSpec] = {}
_TOOLS: dict[tuple[str, str], ToolSpec] = {}
_WORKFLOWS: dict[str, dict[str, None]] = {}


def check_name(kind: str, name: object) -> str:
    """``name`` if it can be an agent/tool/workflow name, else a DefinitionError."""
    if not isinstance(name, str):
        raise DefinitionError(f"{kind} name must be a string, got {name!r}")
    ok = 0 < len(name) <= _MAX_NAME and name.isprintable() and name.isascii()
    if not ok or "," in name or name != name.strip():
        raise DefinitionError(
            f"{kind} name {name!r} cannot be sent in an HTTP header: use 1-{_MAX_NAME} printable "
            "ASCII characters, no commas and no leading or trailing spaces"
        )
    return name


def names_of(kind: str, items: Iterable[str | Callable[..., Any]] | None) -> tuple[str, ...]:
    """Names from a list of names or decorated functions (``next=[writer]`` works too)."""
    if items is None:
        return ()
    if isinstance(items, str):
        raise DefinitionError(f"{kind} takes a list of names: write {kind}=[{items!r}]")
    names = []
    for item in items:
        spec = getattr(item, "__kvbaton__", None)
        if isinstance(spec, AgentSpec | ToolSpec):
            names.append(spec.name)
        else:
            names.append(check_name(kind, item))
    return tuple(names)


def declare(spec: Spec) -> None:
    """Record a declaration; the same function declared again (a reload) replaces itself."""
    table: dict[tuple[str, str], Any] = _AGENTS if isinstance(spec, AgentSpec) else _TOOLS
    other: dict[tuple[str, str], Any] = _TOOLS if isinstance(spec, AgentSpec) else _AGENTS
    kind = "agent" if isinstance(spec, AgentSpec) else "tool"
    key = (spec.module, spec.name)
    held = table.get(key)
    if held is not None and held.qualname != spec.qualname:
        raise DefinitionError(
            f"{kind} {spec.name!r} is declared twice in {spec.module}: by {held.qualname} and by "
            f"{spec.qualname}; give one of them another name"
        )
    if key in other:
        raise DefinitionError(
            f"{spec.name!r} in {spec.module} is declared both as an agent and as a tool; "
            "graph nodes need distinct names"
        )
    table[key] = spec


def declare_workflow(module: str, name: str) -> None:
    _WORKFLOWS.setdefault(module, {})[name] = None


def workflows_in(module: str) -> list[str]:
    return list(_WORKFLOWS.get(module, ()))


def agents_in(module: str) -> list[AgentSpec]:
    return [spec for (mod, _), spec in _AGENTS.items() if mod == module]


def tools_in(module: str) -> list[ToolSpec]:
    return [spec for (mod, _), spec in _TOOLS.items() if mod == module]


def find_agent(name: str, near: str) -> AgentSpec | None:
    """The agent called ``name``: the one in module ``near``, else the only one anywhere."""
    found = _find(_AGENTS, "agent", name, near)
    return found if isinstance(found, AgentSpec) else None


def find_tool(name: str, near: str) -> ToolSpec | None:
    found = _find(_TOOLS, "tool", name, near)
    return found if isinstance(found, ToolSpec) else None


def _find(table: dict[tuple[str, str], Any], kind: str, name: str, near: str) -> object:
    if (near, name) in table:
        return table[(near, name)]
    found = [spec for (_, n), spec in table.items() if n == name]
    if len(found) > 1:
        modules = ", ".join(sorted(spec.module for spec in found))
        raise DefinitionError(
            f"{kind} {name!r} is declared in several modules ({modules}); pass the functions "
            "themselves (agents=[...] on @workflow, next=[...] on @agent) to pick one"
        )
    return found[0] if found else None


def suggest(name: str, known: Iterable[str]) -> str:
    """A hint for a misspelt name: ``did you mean 'x'?`` or the list of known names."""
    pool = sorted(set(known))
    close = difflib.get_close_matches(name, pool, n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"declared: {', '.join(pool)}" if pool else "nothing is declared yet"
