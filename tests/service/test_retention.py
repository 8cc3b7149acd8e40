"""Tool-aware pins through the proxy, carried out by the embedded engine's native pins."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kvbaton.middleware.embedded.settings import EngineSettings
from tests.service.conftest import BASH_TOOLS as TOOLS
from tests.service.conftest import Stack, start_stack


async def _holds(stack: Stack) -> dict[str, int]:
    async with stack.http.get(stack.engine + "/kvbaton/v1/holds") as r:
        holds: dict[str, int] = (await r.json())["holds"]
        return holds


async def _settle(stack: Stack) -> None:
    # Pins are re-timed by background control calls right after each reply.
    for _ in range(50):
        if not any(not t.done() for t in asyncio.all_tasks() if "pin" in repr(t.get_coro())):
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)


async def _turn(stack: Stack, messages: list[Any], program: str, **headers: str) -> Any:
    reply = await stack.client.chat.completions.create(
        model="m",
        messages=messages,
        tools=TOOLS,
        max_tokens=64,
        extra_headers={"x-kvbaton-program-id": program, **headers},
    )
    message = reply.choices[0].message
    messages.append(message.model_dump(exclude_none=True))
    for call in message.tool_calls or []:
        messages.append({"role": "tool", "tool_call_id": call.id, "content": "out " * 50})
    return reply


@pytest.mark.parametrize("policy", ["continuum", "kvbaton"])
async def test_paused_program_is_pinned_then_released_at_its_last_step(policy: str) -> None:
    # A static TTL pins every short tool; the tool-aware rule would rightly decline on an
    # idle engine where a reload costs milliseconds (tested in tests/core).
    engine = EngineSettings(port=0, time_scale=0.05)
    async with start_stack(engine, policy=policy, retention="static-ttl") as stack:
        messages: list[Any] = [{"role": "user", "content": "fix the bug " * 40}]
        first = await _turn(stack, messages, "p1")
        assert first.choices[0].message.tool_calls, "the engine should ask for a tool first"
        await _settle(stack)
        held = (await _holds(stack)).get("p1", 0)
        assert held >= first.usage.prompt_tokens
        view = await stack.program("p1")
        assert view["pinned_tokens"] == first.usage.total_tokens
        assert 0 < view["pin_expires_in_s"] <= 2.0 and view["pins"]["granted"] == 1
        await _turn(stack, messages, "p1", **{"x-kvbaton-last-step": "true"})
        await _settle(stack)
        assert "p1" not in await _holds(stack)
        view = await stack.program("p1")
        assert (view["pinned_tokens"], view["pins"]["consumed"]) == (0, 1)
        async with stack.http.get(stack.proxy + "/kvbaton/v1/programs") as r:
            pins = (await r.json())["stats"]["pins"]
        assert pins["granted"] == 1 and pins["token_s"] > 0


async def test_baseline_pins_nothing(stack: Stack) -> None:
    await _turn(stack, [{"role": "user", "content": "list files"}], "p2")
    await _settle(stack)
    assert await _holds(stack) == {}


async def test_a_pin_keeps_a_paused_programs_cache_under_pressure() -> None:
    """A pool that fits two conversations: newcomers evict a paused program's KV unless the
    proxy pinned it."""
    cached = {}
    for retention in ("none", "static-ttl"):
        engine = EngineSettings(port=0, time_scale=0.05, kv_tokens=2500)
        async with start_stack(engine, policy="continuum", retention=retention) as stack:
            messages: list[Any] = [{"role": "user", "content": "alpha " * 600}]
            await _turn(stack, messages, "paused")
            await _settle(stack)
            for word in ("beta", "gamma"):  # newcomers fill the pool; LRU would evict alpha
                await stack.client.chat.completions.create(
                    model="m",
                    messages=[{"role": "user", "content": f"{word} " * 900}],
                    max_tokens=4,
                )
            again = await _turn(stack, messages, "paused")
            cached[retention] = again.usage.prompt_tokens_details.cached_tokens
    assert cached["static-ttl"] >= 600 > cached["none"]


async def test_unknown_retention_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown retention 'forever'"):
        async with start_stack(retention="forever"):
            pass
