"""The proxy in front of the real engine (``KVBATON_REAL_ENGINE_URL``), with the real
``openai`` client; see ``tests/real/vllm.py``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from openai import AsyncOpenAI

from kvbaton.middleware.launch import running_proxy
from kvbaton.middleware.settings import ProxySettings
from tests.real import vllm


@dataclass
class Proxied:
    proxy: str
    engine: str
    http: aiohttp.ClientSession
    client: AsyncOpenAI

    async def stats(self) -> dict[str, Any]:
        async with self.http.get(f"{self.proxy}/kvbaton/v1/programs") as r:
            assert r.status == 200
            body: dict[str, Any] = await r.json()
            return body


@contextlib.asynccontextmanager
async def proxied(engine: str, **settings: Any) -> AsyncIterator[Proxied]:
    """The proxy on a free port in front of ``engine``; vLLM schedules by priority when
    started with ``--scheduling-policy priority``, which it does not report, hence 'on'."""
    settings.setdefault("engine_priority", "on")
    proxy_settings = ProxySettings(port=0, backend=engine, **settings)
    async with running_proxy(proxy_settings) as (url, _), aiohttp.ClientSession() as http:
        client = AsyncOpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=120)
        try:
            yield Proxied(url, engine, http, client)
        finally:
            await client.close()


@pytest.fixture
async def stack() -> AsyncIterator[Proxied]:
    async with proxied(vllm.URL) as s:
        yield s
