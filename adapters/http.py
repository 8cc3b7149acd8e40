"""One HTTP transport for every engine; capabilities decide what differs between them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from kvbaton.adapters.base import Capabilities, UpstreamRequest
from kvbaton.adapters.errors import BackendError, BackendTimeout, BackendUnavailable

__all__ = ["HttpBackend", "HttpResponse"]


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
        except aiohttp.ServerDisconnectedError:
            # A pooled keep-alive connection the engine had closed (it restarted, or died):
            # try once more on a fresh connection, which tells a dead engine from a live one.
            return await self._send(request)

    async def _send(self, request: UpstreamRequest) -> HttpResponse:
        url = self.base_url + request.path
        try:
            response = await self._session.request(
                request.method, url, headers=dict(request.headers), data=request.body
            )
        except aiohttp.ServerDisconnectedError:
            raise
        except aiohttp.ClientConnectorError as exc:
            raise BackendUnavailable(f"engine at {self.base_url} is unreachable: {exc}") from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise BackendTimeout(f"engine at {self.base_url} did not answer in time") from exc
        except aiohttp.ClientError as exc:
            raise BackendError(f"engine at {self.base_url} failed: {exc}") from exc
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

    async def aclose(self) -> None:
        await self._session.close()
