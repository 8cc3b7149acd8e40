"""The proxy in front of the embedded engine on loopback, and its program view.

Each test points a real framework at ``stack.base_url`` and then reads what the proxy
recognised from ``/kvbaton/v1/programs``; nothing here tells the proxy about programs.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from kvbaton.middleware.embedded.settings import EngineSettings
from kvbaton.middleware.launch import running_engine, running_proxy
from kvbaton.middleware.settings import ProxySettings

# Nothing a framework does here may reach the internet: no tracing exports, no price lists.
os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LANGSMITH_TRACING", "false")

MODEL = "kvbaton-tiny"


@dataclass
class Stack:
    proxy: str
    http: aiohttp.ClientSession

    @property
    def base_url(self) -> str:
        return f"{self.proxy}/v1"

    async def programs(self) -> list[dict[str, Any]]:
        async with self.http.get(f"{self.proxy}/kvbaton/v1/programs") as r:
            assert r.status == 200
            body: dict[str, Any] = await r.json()
            return list(body["data"])

    async def program(self, program_id: str) -> dict[str, Any]:
        async with self.http.get(f"{self.proxy}/kvbaton/v1/programs/{program_id}") as r:
            assert r.status == 200, await r.text()
            body: dict[str, Any] = await r.json()
            return body

    async def settled(self) -> list[dict[str, Any]]:
        """The programs once no call is queued or in flight (a streamed reply is accounted
        just after its last byte, so a client can read the view a moment before)."""
        for _ in range(100):
            programs = await self.programs()
            if all(p["queued"] == 0 and p["inflight"] == 0 for p in programs):
                return programs
            await asyncio.sleep(0.02)
        raise AssertionError(f"calls still in flight: {programs}")

    async def only_program(self) -> dict[str, Any]:
        """The one program the proxy saw, with its execution graph."""
        programs = await self.settled()
        assert len(programs) == 1, [(p["program_id"], p["calls"]) for p in programs]
        return await self.program(programs[0]["program_id"])


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    engine = EngineSettings(port=0, profile="demo-tiny", time_scale=0.05, model_name=MODEL)
    async with running_engine(engine) as engine_url:
        settings = ProxySettings(port=0, backend=engine_url)
        async with running_proxy(settings) as (proxy_url, _), aiohttp.ClientSession() as http:
            yield Stack(proxy_url, http)


def call_nodes(program: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for n in program["graph"]["nodes"] if n["kind"] == "call"]


def assert_tool_loop(
    program: dict[str, Any], calls: int, tools: set[str], *, turns: int = 1
) -> None:
    """``calls`` LLM calls in ``turns`` user turns: every call but each turn's last is
    followed by a tool pause of the given tools, chained call → tool → call in the graph."""
    assert program["calls"] == calls
    assert len(call_nodes(program)) == calls
    pauses = program["tool_pauses"]
    assert len(pauses) == calls - turns
    assert {name for pause in pauses for name in pause["tools"]} <= tools
    assert all(pause["duration_s"] >= 0 for pause in pauses)
    tool_nodes = [n["id"] for n in program["graph"]["nodes"] if n["kind"] == "tool"]
    assert len(tool_nodes) == calls - turns
    edges = {(e["source"], e["target"]) for e in program["graph"]["edges"]}
    for node in tool_nodes:
        assert any(t == node for _, t in edges) and any(s == node for s, _ in edges)
