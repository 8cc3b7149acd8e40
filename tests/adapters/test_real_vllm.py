"""The vLLM adapter against a real vLLM (``scripts/real_engine.sh`` sets
``KVBATON_REAL_ENGINE_URL``; skipped without it): the exact warm request is accepted and
loads the prefix, and re-touching keeps a paused program's blocks in an 8,192-token cache
that other programs' prompts would otherwise take."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from kvbaton.adapters.base import Capabilities
from kvbaton.adapters.vllm import VllmBackend
from kvbaton.middleware.bench.replay_text import call_text
from tests.real.vllm import BLOCK, URL, needs_real_engine

pytestmark = needs_real_engine

VLLM = Capabilities("vllm", higher_first=False, lru_prefix_cache=True)


async def _chat(http: aiohttp.ClientSession, messages: list[Any]) -> dict[str, Any]:
    body = {"model": "tiny", "messages": messages, "max_tokens": 8, "ignore_eos": True}
    async with http.post(URL + "/v1/chat/completions", json=body) as r:
        assert r.status == 200, await r.text()
        reply: dict[str, Any] = await r.json()
        return reply


def _cached(reply: dict[str, Any]) -> int:
    return int(reply["usage"]["prompt_tokens_details"]["cached_tokens"] or 0)


async def test_a_warm_is_accepted_and_the_next_call_hits_it() -> None:
    system = {"role": "system", "content": call_text("warm-sys", "c0", 1000)}
    backend = VllmBackend(URL, VLLM)
    try:
        assert await backend.warm({"model": "tiny", "messages": [system]}) is not None
        async with aiohttp.ClientSession() as http:
            reply = await _chat(http, [system, {"role": "user", "content": "go"}])
        assert _cached(reply) >= 4 * BLOCK, reply["usage"]
    finally:
        await backend.aclose()


async def test_retouch_keeps_a_paused_program_in_a_small_cache() -> None:
    # The same pressure as tests/real/test_vllm_cache.py, where LRU loses the program.
    backend = VllmBackend(URL, VLLM, retouch_every_s=0.2)
    messages: list[Any] = [{"role": "user", "content": call_text("touched", "c0", 1000)}]
    try:
        async with aiohttp.ClientSession() as http:
            first = await _chat(http, messages)
            messages.append(first["choices"][0]["message"])
            await backend.retime_pin("touched", 600.0, {"model": "tiny", "messages": messages})
            for i in range(3):
                other = [{"role": "user", "content": call_text(f"touched-other-{i}", "c0", 2000)}]
                await _chat(http, other)
                await asyncio.sleep(0.3)  # a touch goes in between
            await backend.release_pin("touched")
            messages.append({"role": "user", "content": call_text("touched", "c1", 50)})
            second = await _chat(http, messages)
        prompt = first["usage"]["prompt_tokens"]
        assert backend.retouch.touches >= 3
        assert _cached(second) >= (prompt // BLOCK - 1) * BLOCK, (_cached(second), prompt)
    finally:
        await backend.aclose()
