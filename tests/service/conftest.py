"""Real servers on loopback: the embedded engine over HTTP, and the proxy in front of it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from openai import AsyncOpenAI

from kvbaton.middleware.embedded.settings import EngineSettings
from kvbaton.middleware.launch import running_engine, running_proxy
from kvbaton.middleware.settings import ProxySettings

# One shell tool, for programs that pause in a tool.
BASH_TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "bash",
            "parameters": {
                "type": "object",
                "properties": {"command": {"type": "string"}},
                "required": ["command"],
            },
        },
    }
]


async def tool_loop(client: AsyncOpenAI, *, rounds: int = 6, tool_s: float = 0.2) -> int:
    """An agent that runs the model's shell commands until it stops asking (at most
    ``rounds`` calls) through ``client``; returns the calls it made."""
    messages: list[Any] = [
        {"role": "system", "content": "you are an agent"},
        {"role": "user", "content": "list the files"},
    ]
    for calls in range(1, rounds + 1):
        reply = await client.chat.completions.create(
            model="kvbaton-tiny", messages=messages, tools=BASH_TOOLS, max_tokens=64
        )
        message = reply.choices[0].message
        if not message.tool_calls:
            return calls
        messages.append(message.model_dump(exclude_none=True))
        await asyncio.sleep(tool_s)  # the tool runs
        for call in message.tool_calls:
            messages.append({"role": "tool", "tool_call_id": call.id, "content": "a.py b.py"})
    return rounds


@dataclass
class Stack:
    proxy: str
    engine: str
    http: aiohttp.ClientSession
    client: AsyncOpenAI

    async def programs(self) -> dict[str, Any]:
        async with self.http.get(f"{self.proxy}/kvbaton/v1/programs") as r:
            assert r.status == 200
            body: dict[str, Any] = await r.json()
            return {p["program_id"]: p for p in body["data"]}

    async def program(self, program_id: str) -> dict[str, Any]:
        async with self.http.get(f"{self.proxy}/kvbaton/v1/programs/{program_id}") as r:
            assert r.status == 200, await r.text()
            body: dict[str, Any] = await r.json()
            return body


@contextlib.asynccontextmanager
async def start_stack(engine: EngineSettings | None = None, **proxy: Any) -> AsyncIterator[Stack]:
    engine = engine or EngineSettings(port=0, time_scale=0.05)
    async with running_engine(engine) as engine_url:
        settings = ProxySettings(port=0, backend=engine_url, **proxy)
        async with running_proxy(settings) as (proxy_url, _), aiohttp.ClientSession() as http:
            client = AsyncOpenAI(base_url=f"{proxy_url}/v1", api_key="test", max_retries=0)
            try:
                yield Stack(proxy_url, engine_url, http, client)
            finally:
                await client.close()


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    async with start_stack() as s:
        yield s
