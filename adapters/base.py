"""The engine protocol and its value types (cf. httpx transports).

The proxy asks a backend for its :class:`Capabilities`, never for its name. A backend
forwards one request at a time and hands back an :class:`UpstreamResponse` whose body
the caller streams or reads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Backend", "Capabilities", "UpstreamRequest", "UpstreamResponse"]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an engine can do beyond forwarding requests."""

    kind: str  # for display and metrics only; behaviour follows the flags below
    priority: bool = False  # schedules by a request ``priority`` field
    higher_first: bool = True  # convention of that field (SGLang: higher first)
    native_generate: bool = False  # serves SGLang's /generate and friends
    abort_endpoint: bool = False  # POST /abort_request {rid} (SGLang)
    native_pins: bool = (
        False  # kvbaton's pin API (the embedded engine): kvbaton_hold + /kvbaton/v1/hold
    )
    max_running: int | None = None  # requests the engine batches at once, if known
    kv_tokens: int | None = None  # KV cache capacity, if known


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    method: str
    path: str  # path and query, e.g. "/v1/chat/completions"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None


class UpstreamResponse(Protocol):
    status: int
    headers: Mapping[str, str]

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, unbuffered."""
        ...

    async def read(self) -> bytes: ...

    def close(self) -> None:
        """Drop the connection (aborts the request at engines that watch disconnects)."""
        ...


class Backend(Protocol):
    capabilities: Capabilities

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        """Send a request; returns once the response headers have arrived.

        Raises ``BackendUnavailable`` when the engine cannot be reached and
        ``BackendTimeout`` when it does not answer in time.
        """
        ...

    def set_priority(self, body: dict[str, Any], rank: int) -> None:
        """Write the call's rank (lower = sooner) in this engine's convention."""
        ...

    async def abort(self, rid: str) -> None:
        """Abort request ``rid`` at the engine, where it has an endpoint for that."""
        ...

    def hold_at_finish(self, body: dict[str, Any], key: str, grace_s: float) -> None:
        """Ask the engine to pin this request's prompt + output under ``key`` for ``grace_s``
        seconds when it finishes, until the proxy re-times or releases the pin."""
        ...

    async def retime_pin(self, key: str, ttl_s: float) -> int:
        """Keep pin ``key`` for ``ttl_s`` seconds from now; returns tokens held (0: none)."""
        ...

    async def release_pin(self, key: str) -> None: ...

    async def aclose(self) -> None: ...
