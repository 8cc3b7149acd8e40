"""The embedded engine on loopback with a recorder in front of its handlers: each adapter is
tested over HTTP against the engine API it speaks, and the requests it sent are asserted."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from kvbaton.middleware.embedded.app import create_engine_app
from kvbaton.middleware.embedded.settings import EngineSettings
from kvbaton.middleware.service.app import make_runner


@dataclass(frozen=True)
class Sent:
    method: str
    path: str
    body: Any


@dataclass
class Engine:
    url: str
    http: aiohttp.ClientSession
    log: list[Sent] = field(default_factory=list)

    def sent(self, path: str) -> list[Any]:
        """Bodies of the requests sent to ``path``, in order."""
        return [s.body for s in self.log if s.path == path]

    async def holds(self) -> dict[str, int]:
        async with self.http.get(self.url + "/kvbaton/v1/holds") as r:
            holds: dict[str, int] = (await r.json())["holds"]
            return holds

    async def chat(self, messages: list[Any], **extra: Any) -> dict[str, Any]:
        body = {"model": "m", "messages": messages, "max_tokens": 4, **extra}
        async with self.http.post(self.url + "/v1/chat/completions", json=body) as r:
            assert r.status == 200, await r.text()
            reply: dict[str, Any] = await r.json()
            return reply

    async def flush(self) -> None:
        async with self.http.post(self.url + "/flush_cache") as r:
            assert r.status == 200, await r.text()


def cached(reply: dict[str, Any]) -> int:
    return int(reply["usage"]["prompt_tokens_details"]["cached_tokens"])


def settings(**overrides: Any) -> EngineSettings:
    base: dict[str, Any] = {"port": 0, "profile": "demo-tiny", "time_scale": 0.02}
    return EngineSettings(**{**base, **overrides})


@contextlib.asynccontextmanager
async def recording_engine(config: EngineSettings) -> AsyncIterator[Engine]:
    log: list[Sent] = []

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()  # cached: the handler reads it again
        body = json.loads(raw) if raw else None
        log.append(Sent(request.method, request.path, body))
        return await handler(request)

    app = create_engine_app(config)
    app.middlewares.insert(0, record)
    runner = make_runner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with aiohttp.ClientSession() as http:
            yield Engine(url, http, log)
    finally:
        await runner.cleanup()


def words(tag: str, n: int) -> str:
    """A prompt of about 2n tokens that shares nothing with other tags."""
    return " ".join(f"{tag}{i}" for i in range(n))
