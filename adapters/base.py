"""The engine protocol and its value types (cf. httpx transports).

The proxy asks a backend for its :class:`Capabilities`, never for its name. A backend
forwards one request at a time and hands back an :class:`UpstreamResponse` whose body
the caller streams or reads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from kvbaton.middleware.core.inflight import EngineLoad

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
    session_cache: bool = False  # SGLang --enable-session-radix-cache: session_id tags KV
    priority_eviction: bool = False  # SGLang --radix-eviction-policy priority
    lru_prefix_cache: bool = False  # an LRU prefix cache and no hold API (vLLM): re-touch
    max_running: int | None = None  # requests the engine batches at once, if known
    reports_load: bool = False  # answers load() (running and waiting requests): vLLM
    kv_tokens: int | None = None  # KV cache capacity, if known

    @property
    def holds_kv(self) -> bool:
        """The engine itself can keep a paused program's KV (a pin or a session reference);
        where it cannot, the proxy protects pins by admission control instead."""
        return self.native_pins or self.session_cache

    @property
    def can_warm(self) -> bool:
        """The engine caches prefixes, so a prefill-only (or one-token) request warms one."""
        return self.native_pins or self.native_generate or self.lru_prefix_cache


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
        seconds when it finishes, until the proxy re-times or releases the pin.

        Called by the call handler on the body it is about to forward (synchronously, so
        the body leaves with the hold on it)."""
        ...

    async def retime_pin(self, key: str, ttl_s: float, prefix: dict[str, Any] | None) -> int:
        """Keep pin ``key`` for ``ttl_s`` seconds from now; returns tokens held (0: none, or
        not known). ``prefix``: the program's context as a chat body (last request + reply),
        for engines that keep it by re-touching. Called by the dispatcher at a ``Pin``."""
        ...

    async def release_pin(self, key: str) -> None:
        """End pin ``key``. Called by the dispatcher at an ``Unpin``; it forgets the pin
        before its first ``await``, so a hold the next call asks for is a new one."""
        ...

    async def warm(self, body: dict[str, Any]) -> int | None:
        """Load ``body``'s prompt (an OpenAI chat body: model, messages, tools) into the
        engine's cache with the cheapest request the engine has; returns the prompt tokens
        that were already cached, or None if nothing was warmed (engine error, no way to
        warm). Never raises for engine errors. Called in the background by the dispatcher."""
        ...

    async def release_all(self) -> None:
        """End every pin and session this backend holds (at proxy shutdown)."""
        ...

    async def load(self) -> EngineLoad | None:
        """Requests the engine is running and holding waiting, or None if it does not say.
        Polled by the dispatcher where ``capabilities.reports_load``."""
        ...

    async def aclose(self) -> None: ...
