"""The embedded engine: native pins (``kvbaton_hold``, ``/kvbaton/v1/hold``, ``/release``)
and prefill-only warms (``/generate`` with ``max_new_tokens: 0``)."""

from __future__ import annotations

from typing import Any

from kvbaton.adapters.base import Capabilities
from kvbaton.adapters.embedded import EmbeddedBackend
from kvbaton.middleware.engine.tokens import render_chat
from tests.adapters.conftest import cached, recording_engine, settings, words

NATIVE = Capabilities("embedded", native_generate=True, abort_endpoint=True, native_pins=True)


async def test_native_pin_requests_and_release_at_shutdown() -> None:
    async with recording_engine(settings()) as engine:
        backend = EmbeddedBackend(engine.url, NATIVE)
        for key in ("p1", "p2"):
            body: dict[str, Any] = {"max_tokens": 4}
            backend.hold_at_finish(body, key, 5.0)
            assert body["kvbaton_hold"] == {"key": key, "ttl_s": 5.0}
            body.pop("max_tokens")
            await engine.chat([{"role": "user", "content": words(key, 50)}], **body)
        held = await backend.retime_pin("p1", 30.0, None)
        assert held > 50 and engine.sent("/kvbaton/v1/hold") == [{"key": "p1", "ttl_s": 30.0}]
        await backend.release_pin("p1")
        assert engine.sent("/kvbaton/v1/release") == [{"key": "p1"}]
        assert list(await engine.holds()) == ["p2"]
        await backend.release_all()
        assert await engine.holds() == {}
        await backend.aclose()


async def test_warm_is_prefill_only_and_the_next_call_hits_it() -> None:
    async with recording_engine(settings()) as engine:
        backend = EmbeddedBackend(engine.url, NATIVE)
        tools = [{"type": "function", "function": {"name": "bash", "parameters": {}}}]
        system = {"role": "system", "content": words("sys", 200)}
        assert await backend.warm({"model": "m", "messages": [system], "tools": tools}) == 0
        text = render_chat([system], tools)
        assert engine.sent("/generate") == [
            {"text": text, "sampling_params": {"max_new_tokens": 0}}
        ]
        reply = await engine.chat([system, {"role": "user", "content": "hi"}], tools=tools)
        assert cached(reply) >= 200
        await backend.aclose()


async def test_warm_of_a_body_without_messages_sends_nothing() -> None:
    async with recording_engine(settings()) as engine:
        backend = EmbeddedBackend(engine.url, NATIVE)
        assert await backend.warm({"model": "m"}) is None
        assert engine.log == []
        await backend.aclose()
