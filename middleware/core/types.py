"""Values that cross the boundary between the core and its drivers."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["CallOutcome", "CallSpec", "ProgramStatus", "ToolCall"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool the model asked the client to run (OpenAI ``tool_calls[i]``)."""

    id: str
    name: str


@dataclass(frozen=True, slots=True)
class CallSpec:
    """One LLM call as the driver hands it to the core.

    ``prompt_tokens`` is an estimate made before the engine has seen the prompt; the
    engine's own count arrives later in :class:`CallOutcome`.
    """

    call_id: str
    program_id: str
    tenant: str = "default"
    agent: str | None = None
    step: str | None = None
    parent_step: str | None = None
    workflow: str | None = None
    prompt_tokens: int = 0
    last_step: bool = False
    retry: bool = False
    returned_tool_calls: tuple[str, ...] = ()
    deadline_s: float | None = None  # relative to this call's arrival
    # Tokens of the call's fixed prefix (system prompt and tools), the part every call of
    # its agent shares; 0 when unknown.
    prefix_tokens: int = 0
    tools: tuple[str, ...] = ()  # tools the client ran since the program's previous call


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """What the engine reported for a finished call (token counts are the engine's)."""

    ok: bool = True
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    tool_calls: tuple[ToolCall, ...] = field(default_factory=tuple)


class ProgramStatus(StrEnum):
    QUEUED = "queued"  # a call waits in the proxy queue
    RUNNING = "running"  # a call is at the engine
    TOOL = "tool"  # the model asked for a tool; the client is running it
    IDLE = "idle"  # between calls with no tool pending (user think time, or done)
    DONE = "done"  # the program said its last step finished
