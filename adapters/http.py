"""The HTTP transport every engine shares: forwarding, abort, priority, control calls.

`HttpBackend` on its own is a plain OpenAI-compatible server: it forwards, and it can neither
hold KV nor warm a prefix. The engines that can subclass it (`sglang`, `vllm`, `embedded`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
from yarl import URL

from kvbaton.adapters.base import Capabilities, UpstreamRequest
from kvbaton.adapters.errors import BackendError, BackendTimeout, BackendUnavailable
from kvbaton.middleware.core.inflight import EngineLoad
from kvbaton.middleware.protocol.usage import find_usage

__all__ = ["HttpBackend", "HttpResponse"]

log = logging.getLogger(__name__)

_CONTROL_CONCURRENCY = 16


class HttpResponse:
    """An engine's response whose body has not been read yet."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
            raise BackendError(f"engine broke off its response: {exc}") from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise BackendTimeout("engine stopped sending its response") from exc
        finally:
            self._response.release()

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    def close(self) -> None:
        self._response.close()


class HttpBackend:
    """Forwards requests to an engine at ``base_url`` over one pooled client session."""

    def __init__(
        self,
        base_url: str,
        capabilities: Capabilities,
        *,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 600.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.capabilities = capabilities
        self._connect_timeout_s = connect_timeout_s
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout_s, sock_read=read_timeout_s
        )
        # The proxy does its own admission control, so the pool must not queue requests.
        self._session = aiohttp.ClientSession(
            timeout=timeout, connector=aiohttp.TCPConnector(limit=0), auto_decompress=False
        )

    async def send(self, request: UpstreamRequest) -> HttpResponse:
        try:
            return await self._send(request)
        except aiohttp.ClientConnectorError as exc:
            raise BackendUnavailable(f"engine at {self.base_url} is unreachable: {exc}") from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            # Most often a pooled keep-alive connection the engine had closed: it restarted,
            # or died. A fresh connection tells which; only a live engine gets a second try.
            if not await self._reachable():
                raise BackendUnavailable(f"engine at {self.base_url} went away") from exc
            try:
                return await self._send(request)
            except (TimeoutError, aiohttp.ClientError) as again:
                raise BackendError(f"engine at {self.base_url} failed: {again!r}") from again
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise BackendTimeout(f"engine at {self.base_url} did not answer in time") from exc
        except aiohttp.ClientError as exc:
            raise BackendError(f"engine at {self.base_url} failed: {exc}") from exc

    async def _reachable(self) -> bool:
        url = URL(self.base_url)
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(url.host, url.port), self._connect_timeout_s
            )
        except (OSError, TimeoutError):
            return False
        writer.close()
        await writer.wait_closed()
        return True

    async def _send(self, request: UpstreamRequest) -> HttpResponse:
        response = await self._session.request(
            request.method,
            self.base_url + request.path,
            headers=dict(request.headers),
            data=request.body,
        )
        return HttpResponse(response)

    def set_priority(self, body: dict[str, Any], rank: int) -> None:
        if self.capabilities.priority:
            body["priority"] = -rank if self.capabilities.higher_first else rank

    async def abort(self, rid: str) -> None:
        if not self.capabilities.abort_endpoint:
            return
        try:
            async with self._session.post(
                self.base_url + "/abort_request", json={"rid": rid}
            ) as response:
                await response.read()
        except (TimeoutError, aiohttp.ClientError):
            pass  # best effort: the closed connection aborts it too

    # -- retention and warming: none on a plain OpenAI-compatible server ------------------

    def hold_at_finish(self, body: dict[str, Any], key: str, grace_s: float) -> None:
        return None

    async def retime_pin(self, key: str, ttl_s: float, prefix: dict[str, Any] | None) -> int:
        return 0

    async def release_pin(self, key: str) -> None:
        return None

    async def warm(self, body: dict[str, Any]) -> int | None:
        return None

    async def release_all(self) -> None:
        return None

    # -- control calls ---------------------------------------------------------------------

    async def _post_json(self, path: str, body: Any) -> Any:
        """POST a control call; ``None`` if it failed. A failed control call is not an error for
        any request: a pin not set costs a cache miss, a pin not dropped expires by itself."""
        try:
            async with self._session.post(self.base_url + path, json=body) as response:
                if response.status >= 400:
                    log.warning("%s %s answered %s", self.base_url, path, response.status)
                    return None
                return await response.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            log.warning("%s %s failed: %r", self.base_url, path, exc)
            return None

    async def _post_each(self, path: str, bodies: list[Any]) -> None:
        """POST one control call per body, a few at a time (shutdown: many sessions, an
        engine that may be gone)."""
        gate = asyncio.Semaphore(_CONTROL_CONCURRENCY)

        async def post(body: Any) -> None:
            async with gate:
                await self._post_json(path, body)

        await asyncio.gather(*(post(body) for body in bodies))

    async def _warm_with(self, path: str, body: dict[str, Any]) -> int | None:
        """Send a warm request; the cached prompt tokens it reports (0 if it reports none),
        or None if the engine refused it or could not be reached."""
        reply = await self._post_json(path, body)
        if reply is None:
            return None
        usage = find_usage(reply)
        return usage.cached_tokens or 0 if usage is not None else 0

    async def get_json(self, path: str) -> Any:
        """GET ``path`` and decode JSON; ``None`` if the engine has no such route."""
        try:
            async with self._session.get(self.base_url + path) as response:
                if response.status != 200:
                    return None
                return await response.json(content_type=None)
        except aiohttp.ClientConnectorError as exc:
            raise BackendUnavailable(f"engine at {self.base_url} is unreachable: {exc}") from exc
        except (TimeoutError, aiohttp.ClientError, ValueError):
            return None

    async def load(self) -> EngineLoad | None:
        """The engine's load, where it reports one (a plain OpenAI server does not)."""
        return None

    async def get_text(self, path: str) -> str | None:
        """GET ``path`` as text (a Prometheus scrape); ``None`` if it failed."""
        try:
            async with self._session.get(self.base_url + path) as response:
                return await response.text() if response.status == 200 else None
        except (TimeoutError, aiohttp.ClientError, UnicodeDecodeError):
            return None

    async def aclose(self) -> None:
        await self._session.close()
