"""Agent program traces, format v1 (``docs/trace-format.md``): JSON Lines, one program each.

This is a public interface: traces from outside the project are fed to the same reader, so
errors name the line and the field, and unknown optional fields are kept out of the way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = ["Call", "Program", "TraceError", "dump_trace", "load_trace", "read_trace"]


class TraceError(ValueError):
    """A trace line that breaks the format; the message names the line and the field."""

    def __init__(self, line: int, field: str, message: str) -> None:
        super().__init__(f"line {line}: {field}: {message}")
        self.line = line
        self.field = field


class Call(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    id: str = Field(min_length=1)
    agent: str = Field(min_length=1)
    after: tuple[str, ...] = ()
    context: Literal["continue", "fresh"] | None = None
    system: str | None = None
    system_tokens: int = Field(0, ge=0)
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=1)
    tool: str | None = None
    tool_s: float = Field(0.0, ge=0)
    think_s: float = Field(0.0, ge=0)

    @property
    def fresh(self) -> bool:
        """Whether the prompt starts anew (system prompt + new tokens) rather than extending
        the first parent's prompt and output."""
        if self.context is not None:
            return self.context == "fresh"
        return not self.after

    @model_validator(mode="after")
    def _fresh_needs_system(self) -> Call:
        if self.fresh and self.system is None and self.system_tokens:
            raise ValueError("a fresh call with system_tokens must name its system prompt")
        return self


class Program(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    id: str = Field(min_length=1)
    arrival: float = Field(ge=0)
    tenant: str = "default"
    calls: tuple[Call, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _dependencies(self) -> Program:
        seen: set[str] = set()
        for index, call in enumerate(self.calls):
            if call.id in seen:
                raise _FieldError(f"calls.{index}.id", f"duplicate call id {call.id!r}")
            for parent in call.after:
                if parent not in seen:
                    # Parents must come first, so an unknown or later parent is also a cycle.
                    raise _FieldError(
                        f"calls.{index}.after",
                        f"unknown parent {parent!r} (parents must be listed before the call)",
                    )
            seen.add(call.id)
        return self

    @property
    def total_tokens(self) -> int:
        return sum(c.input_tokens + c.output_tokens + c.system_tokens for c in self.calls)


class _FieldError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _field_of(exc: ValidationError) -> tuple[str, str]:
    first = exc.errors()[0]
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, _FieldError):
        return cause.field, str(cause)
    field = ".".join(str(p) for p in first["loc"]) or "program"
    return field, first["msg"]


def read_trace(lines: Iterable[str]) -> Iterator[Program]:
    """Programs from JSON lines (blank lines skipped), checked across lines too."""
    ids: set[str] = set()
    systems: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        program = _parse(number, line)
        if program.id in ids:
            raise TraceError(number, "id", f"duplicate program id {program.id!r}")
        ids.add(program.id)
        _check_systems(number, program, systems)
        yield program


def _parse(number: int, line: str) -> Program:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TraceError(number, "line", f"not valid JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise TraceError(number, "line", "a program must be a JSON object")
    try:
        return Program.model_validate(data)
    except ValidationError as exc:
        field, message = _field_of(exc)
        raise TraceError(number, field, message) from None


def _check_systems(number: int, program: Program, systems: dict[str, int]) -> None:
    for index, call in enumerate(program.calls):
        if call.system is None or not call.fresh:
            continue
        known = systems.setdefault(call.system, call.system_tokens)
        if known != call.system_tokens:
            raise TraceError(
                number,
                f"calls.{index}.system_tokens",
                f"system prompt {call.system!r} has {known} tokens elsewhere in the trace, "
                f"{call.system_tokens} here",
            )


def load_trace(path: str | Path) -> list[Program]:
    """Read and check a whole trace file, sorted by arrival (stable)."""
    with open(path, encoding="utf-8") as f:
        programs = list(read_trace(f))
    return sorted(programs, key=lambda p: p.arrival)


def dump_trace(programs: Iterable[Program], path: str | Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for program in programs:
            f.write(program.model_dump_json(exclude_defaults=True) + "\n")
