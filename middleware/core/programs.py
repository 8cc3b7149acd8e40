"""The program table: what the core knows about each live agent program."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kvbaton.middleware.core.graph import ExecutionGraph, ToolPause
from kvbaton.middleware.core.types import ProgramStatus, ToolCall

__all__ = ["ProgramState", "ProgramTable"]

# Keep the most recent pauses per program for the API; the graph keeps them all.
_RECENT_PAUSES = 32


@dataclass(slots=True)
class ProgramState:
    """One program: its arrival, its service so far, and where it is now."""

    program_id: str
    seq: int  # order of arrival among all programs; breaks ties deterministically
    arrival: float
    tenant: str = "default"
    workflow: str | None = None
    calls: int = 0
    retries: int = 0
    queued: int = 0
    inflight: int = 0
    service_s: float = 0.0  # engine time received (sum of in-flight time of finished calls)
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    context_tokens: int = 0  # prompt + output of its last finished call: the KV it built
    status: ProgramStatus = ProgramStatus.IDLE
    last_activity: float = 0.0
    deadline_at: float | None = None
    pending_tools: dict[str, ToolCall] = field(default_factory=dict)
    tool_wait_since: float | None = None
    tool_after_call: str | None = None
    pauses: deque[ToolPause] = field(default_factory=lambda: deque(maxlen=_RECENT_PAUSES))
    graph: ExecutionGraph = field(default_factory=ExecutionGraph)

    @property
    def busy(self) -> bool:
        return self.queued > 0 or self.inflight > 0

    def refresh_status(self) -> None:
        if self.inflight:
            self.status = ProgramStatus.RUNNING
        elif self.queued:
            self.status = ProgramStatus.QUEUED
        elif self.status is not ProgramStatus.DONE:
            self.status = ProgramStatus.TOOL if self.pending_tools else ProgramStatus.IDLE

    def summary(self) -> dict[str, Any]:
        """A JSON-ready view of the program (for ``/kvbaton/v1/programs``)."""
        return {
            "program_id": self.program_id,
            "tenant": self.tenant,
            "workflow": self.workflow,
            "status": self.status.value,
            "arrival": self.arrival,
            "last_activity": self.last_activity,
            "calls": self.calls,
            "retries": self.retries,
            "queued": self.queued,
            "inflight": self.inflight,
            "service_s": self.service_s,
            "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens,
            "completion_tokens": self.completion_tokens,
            "agents": self.graph.agents(),
            "pending_tools": [t.name for t in self.pending_tools.values()],
            "tool_pauses": [
                {"tools": list(p.tools), "started_at": p.started_at, "duration_s": p.duration_s}
                for p in self.pauses
            ],
        }


class ProgramTable:
    """Live programs, bounded in number; idle programs expire.

    Kept in order of last activity so that expiry looks only at the oldest entries.
    """

    def __init__(self, *, capacity: int = 100_000, idle_ttl_s: float = 600.0) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.idle_ttl_s = idle_ttl_s
        self._programs: OrderedDict[str, ProgramState] = OrderedDict()
        self._next_seq = 0

    def __len__(self) -> int:
        return len(self._programs)

    def __iter__(self) -> Iterator[ProgramState]:
        return iter(self._programs.values())

    def get(self, program_id: str) -> ProgramState | None:
        return self._programs.get(program_id)

    def touch(self, program_id: str, now: float, *, tenant: str = "default") -> ProgramState:
        """The program with this id, created on its first call; marks it active."""
        program = self._programs.get(program_id)
        if program is None:
            program = ProgramState(program_id, self._next_seq, now, tenant=tenant)
            self._next_seq += 1
            self._programs[program_id] = program
        else:
            self._programs.move_to_end(program_id)
        program.last_activity = now
        return program

    def expire(self, now: float) -> list[str]:
        """Drop idle programs past their TTL, and the oldest idle ones over capacity."""
        # Walk from the least recently active and stop at the first one that stays, so a
        # tick costs what it expires (plus busy programs at the front), not the table size.
        expired: list[str] = []
        for program in self._programs.values():
            over = len(self._programs) - len(expired) > self.capacity
            if not over and now - program.last_activity < self.idle_ttl_s:
                break  # the rest are more recent
            if not program.busy:
                expired.append(program.program_id)
        for program_id in expired:
            del self._programs[program_id]
        return expired

    def next_expiry(self) -> float | None:
        """When the oldest idle program could next expire (``None`` if none can)."""
        for program in self._programs.values():
            if not program.busy:
                return program.last_activity + self.idle_ttl_s
        return None
