"""vLLM: re-touching pinned prefixes and one-token warms, against the embedded engine
speaking the OpenAI API as vLLM does (``max_tokens`` >= 1, cached tokens in usage)."""

from __future__ import annotations

import asyncio
from typing import Any

from kvbaton.adapters.base import Capabilities
from kvbaton.adapters.vllm import VllmBackend, vllm_load
from kvbaton.middleware.core.inflight import EngineLoad
from tests.adapters.conftest import Engine, cached, recording_engine, settings, words

VLLM = Capabilities("vllm", higher_first=False, lru_prefix_cache=True)
EVERY_S = 0.05


async def _first_turn(engine: Engine) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
    messages: list[Any] = [{"role": "user", "content": words("prog", 130)}]
    first = await engine.chat(messages)
    prefix = {"model": "m", "messages": [*messages, first["choices"][0]["message"]]}
    return messages, first, prefix


async def _resume_hit(retouch: bool) -> tuple[int, int]:
    async with recording_engine(settings(kv_tokens=1000)) as engine:
        backend = VllmBackend(engine.url, VLLM, retouch_every_s=EVERY_S)
        _, first, prefix = await _first_turn(engine)
        if retouch:
            await backend.retime_pin("p1", 60.0, prefix)
        for i in range(8):
            await engine.chat([{"role": "user", "content": words(f"flood{i}x", 100)}])
            await asyncio.sleep(6 * EVERY_S)  # tool time passes between other programs' calls
        await backend.release_pin("p1")
        second = await engine.chat([*prefix["messages"], {"role": "user", "content": "go on"}])
        await backend.aclose()
        return first["usage"]["prompt_tokens"], cached(second)


async def test_retouch_keeps_a_paused_program_cached_where_lru_evicts_it() -> None:
    prompt, kept = await _resume_hit(retouch=True)
    _, lost = await _resume_hit(retouch=False)
    assert kept >= prompt, (kept, prompt)
    assert lost < prompt // 4, (lost, prompt)


async def test_retouch_sends_one_token_chats_until_the_ttl_then_stops() -> None:
    async with recording_engine(settings()) as engine:
        backend = VllmBackend(engine.url, VLLM, retouch_every_s=EVERY_S)
        _, _, prefix = await _first_turn(engine)
        assert await backend.retime_pin("p1", 8 * EVERY_S, prefix) == 0
        for _ in range(100):
            if len(backend.retouch) == 0:  # the loop ends at its TTL
                break
            await asyncio.sleep(EVERY_S)
        touches = engine.sent("/v1/chat/completions")[1:]
        assert 1 <= len(touches) <= 8 and backend.retouch.touches == len(touches)
        assert all(t == {**prefix, "max_tokens": 1, "stream": False} for t in touches)
        await asyncio.sleep(3 * EVERY_S)
        assert len(engine.sent("/v1/chat/completions")) == len(touches) + 1
        await backend.aclose()


async def test_release_and_shutdown_stop_retouching() -> None:
    async with recording_engine(settings()) as engine:
        backend = VllmBackend(engine.url, VLLM, retouch_every_s=EVERY_S)
        _, _, prefix = await _first_turn(engine)
        await backend.retime_pin("p1", 60.0, prefix)
        await backend.retime_pin("p2", 60.0, prefix)
        await backend.retime_pin("p3", 60.0, None)  # no context known: nothing to touch
        assert len(backend.retouch) == 2
        await backend.release_pin("p1")
        assert len(backend.retouch) == 1
        await backend.aclose()
        assert len(backend.retouch) == 0
        count = len(engine.log)
        await asyncio.sleep(3 * EVERY_S)
        assert len(engine.log) == count


async def test_warm_makes_the_next_call_hit() -> None:
    async with recording_engine(settings()) as engine:
        backend = VllmBackend(engine.url, VLLM)
        system = {"role": "system", "content": words("sys", 200)}
        assert await backend.warm({"model": "m", "messages": [system]}) == 0
        assert engine.sent("/v1/chat/completions") == [
            {"model": "m", "messages": [system], "max_tokens": 1, "stream": False}
        ]
        reply = await engine.chat([system, {"role": "user", "content": "hi"}])
        assert cached(reply) >= 200
        await backend.aclose()


async def test_warm_refused_by_the_engine_is_none() -> None:
    async with recording_engine(settings()) as engine:
        backend = VllmBackend(engine.url, VLLM)
        assert await backend.warm({"model": "m", "messages": []}) is None  # a 400
        await backend.aclose()


def test_vllm_load_is_read_from_its_request_gauges() -> None:
    scrape = (
        "# TYPE vllm:num_requests_running gauge\n"
        'vllm:num_requests_running{engine="0",model_name="tiny"} 8.0\n'
        "# TYPE vllm:num_requests_waiting gauge\n"
        'vllm:num_requests_waiting{engine="0",model_name="tiny"} 3.0\n'
        'vllm:num_requests_waiting{engine="1",model_name="tiny"} 2.0\n'
    )
    assert vllm_load(scrape) == EngineLoad(running=8, waiting=5)
    assert vllm_load(scrape.split("# TYPE vllm:num_requests_waiting")[0]) is None
    assert vllm_load("garbage {") is None
    assert vllm_load(None) is None
