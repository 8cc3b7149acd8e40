"""Decisions the core returns; the drivers carry them out.

The service's dispatcher is the one place where these meet I/O (see ``match`` there).
"""

from __future__ import annotations

from dataclasses import dataclass

from kvbaton.middleware.core.graph import ToolPause

__all__ = ["Action", "Dispatch", "PauseObserved", "Pin", "ProgramExpired", "Unpin", "Warm"]


@dataclass(frozen=True, slots=True)
class Dispatch:
    """Send call ``call_id`` to the engine now.

    ``rank`` is the call's engine priority where lower means sooner, or ``None`` when the
    policy leaves the engine's own order alone; adapters translate it to each engine's
    convention (SGLang: higher first, vLLM: lower first).
    """

    call_id: str
    rank: int | None = None
    hold_key: str | None = None  # pin this call's KV at finish under this key (retention on)


@dataclass(frozen=True, slots=True)
class ProgramExpired:
    """A program left the table (idle too long, or the table was full)."""

    program_id: str


@dataclass(frozen=True, slots=True)
class PauseObserved:
    """A tool pause ended: the program came back with its tools' results.

    An observation rather than a decision; drivers feed it to metrics and statistics.
    """

    program_id: str
    pause: ToolPause


@dataclass(frozen=True, slots=True)
class Pin:
    """Keep program ``key``'s KV (the prompt and output of its last call) for ``ttl_s``
    seconds from now: its tool is expected back within that time."""

    key: str
    ttl_s: float
    tokens: int


@dataclass(frozen=True, slots=True)
class Unpin:
    """Release program ``key``'s pinned KV (``reason``: consumed, expired, displaced, ...)."""

    key: str
    reason: str


@dataclass(frozen=True, slots=True)
class Warm:
    """Load a prefix into the engine's KV cache ahead of the call that will need it.

    ``kind`` is ``"resume"`` (re-warm program ``program_id``'s own context, its last prompt
    and output, shortly before its tool is expected back) or ``"agent"`` (the fixed prefix of
    ``agent`` in ``workflow``, the next agent the graph predicts: KVFlow). ``tokens`` is the
    size the core expects to load. Drivers warm with a prefill-only request and never let a
    warm displace pinned or running KV.
    """

    kind: str
    program_id: str
    tokens: int
    workflow: str | None = None
    agent: str | None = None


Action = Dispatch | ProgramExpired | PauseObserved | Pin | Unpin | Warm
