"""A workflow's graph as a client declares it (``PUT /kvbaton/v1/workflows/{name}``).

Validated with pydantic; every error says which field is wrong and how to fix it. Sizes are
capped: a declaration past :data:`MAX_AGENTS` agents or :data:`MAX_TOOLS` tools raises
:class:`WorkflowTooLarge` (the service answers 413) rather than a validation error.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "MAX_AGENTS",
    "MAX_NAME_CHARS",
    "MAX_TOOLS",
    "DeclaredAgent",
    "DeclaredTool",
    "DeclaredWorkflow",
    "WorkflowTooLarge",
    "parse_declared",
]

MAX_AGENTS = 256
MAX_TOOLS = 256
MAX_NAME_CHARS = 128
MAX_FAN_OUT = 1024

_Name = Field(min_length=1, max_length=MAX_NAME_CHARS)


class WorkflowTooLarge(ValueError):
    """The declaration names more agents or tools than a workflow may have."""


class DeclaredTool(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = _Name
    expected_duration_s: float | None = Field(None, ge=0, le=86_400)


class DeclaredAgent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = _Name
    next: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    fan_out: int = Field(1, ge=1, le=MAX_FAN_OUT)
    expected_duration_s: float | None = Field(None, ge=0, le=86_400)
    last: bool = False


class DeclaredWorkflow(BaseModel):
    """Agents (LLM-call steps), the tools they run, and which agent may follow which."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(None, min_length=1, max_length=MAX_NAME_CHARS)
    entry: str | None = Field(None, min_length=1, max_length=MAX_NAME_CHARS)
    agents: tuple[DeclaredAgent, ...] = ()
    tools: tuple[DeclaredTool, ...] = ()

    @model_validator(mode="after")
    def _references(self) -> DeclaredWorkflow:
        agents = _unique("agents", [a.name for a in self.agents])
        tools = _unique("tools", [t.name for t in self.tools])
        if self.entry is not None and self.entry not in agents:
            raise ValueError(f"entry {self.entry!r} is not a declared agent; declare it in agents")
        for i, agent in enumerate(self.agents):
            for target in agent.next:
                if target not in agents:
                    raise ValueError(
                        f"agents[{i}].next names {target!r}, which is not a declared agent"
                    )
            for tool in agent.tools:
                if tool not in tools:
                    raise ValueError(
                        f"agents[{i}].tools names {tool!r}, which is not in tools; declare it there"
                    )
        return self


_RESERVED = frozenset({"(start)", "(end)", "(other)"})


def _unique(field: str, names: list[str]) -> set[str]:
    seen: set[str] = set()
    for name in names:
        if name in _RESERVED:
            raise ValueError(f"{field}: {name!r} is a reserved name; choose another")
        if name in seen:
            raise ValueError(f"{field}: name {name!r} is declared twice; names must be unique")
        seen.add(name)
    return seen


def parse_declared(body: Any, name: str) -> DeclaredWorkflow:
    """Validate a declaration for workflow ``name`` (the path's name).

    Raises :class:`WorkflowTooLarge` past the caps (checked before any other validation, so
    that an absurd body costs little), or ``ValueError`` with a message that names the field.
    """
    if isinstance(body, dict):
        for field, cap in (("agents", MAX_AGENTS), ("tools", MAX_TOOLS)):
            items = body.get(field)
            if isinstance(items, list) and len(items) > cap:
                raise WorkflowTooLarge(f"{field}: {len(items)} given, at most {cap} allowed")
    try:
        declared = DeclaredWorkflow.model_validate(body)
    except ValidationError as exc:
        raise ValueError(_message(exc)) from None
    if declared.name is not None and declared.name != name:
        raise ValueError(f"name {declared.name!r} in the body does not match {name!r} in the path")
    return declared


def _message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    message = str(first["msg"]).removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {message}{more}"
