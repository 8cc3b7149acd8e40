"""SGLang: soft holds in the session radix cache and chat-route warms, against the embedded
engine speaking SGLang's API (``session_id``, ``/close_session``, cache reports)."""

from __future__ import annotations

from typing import Any

from kvbaton.adapters.base import Capabilities
from kvbaton.adapters.sglang import SglangBackend
from tests.adapters.conftest import Engine, cached, recording_engine, settings, words

SESSIONS = Capabilities("sglang", native_generate=True, abort_endpoint=True, session_cache=True)
PLAIN = Capabilities("sglang", native_generate=True, abort_endpoint=True, lru_prefix_cache=True)


async def _held_turn(engine: Engine, backend: SglangBackend, messages: list[Any], key: str) -> Any:
    body: dict[str, Any] = {"model": "m", "messages": messages, "max_tokens": 4}
    backend.hold_at_finish(body, key, 5.0)
    return await engine.chat(
        body.pop("messages"), **{k: v for k, v in body.items() if k != "model"}
    )


async def _flood(engine: Engine, n: int) -> None:
    for i in range(n):
        await engine.chat([{"role": "user", "content": words(f"flood{i}x", 100)}])


async def _resume_hit(hold: bool) -> tuple[int, int]:
    """Prompt tokens of a program's first call, and cached tokens of its second call after
    other traffic went through the cache."""
    config = settings(kv_tokens=1000, enable_session_radix_cache=True)
    async with recording_engine(config) as engine:
        backend = SglangBackend(engine.url, SESSIONS)
        messages: list[Any] = [{"role": "user", "content": words("prog", 130)}]
        if hold:
            first = await _held_turn(engine, backend, messages, "p1")
        else:
            first = await engine.chat(messages)
        await _flood(engine, 8)
        messages += [first["choices"][0]["message"], {"role": "user", "content": "go on"}]
        second = await engine.chat(messages)
        await backend.release_all()
        await backend.aclose()
        return first["usage"]["prompt_tokens"], cached(second)


async def test_session_hold_keeps_a_paused_program_cached_where_lru_evicts_it() -> None:
    prompt, kept = await _resume_hit(hold=True)
    _, lost = await _resume_hit(hold=False)
    assert kept >= prompt, (kept, prompt)
    assert lost < prompt // 4, (lost, prompt)


async def test_session_requests_are_sglangs_and_sessions_close_at_release() -> None:
    config = settings(enable_session_radix_cache=True)
    async with recording_engine(config) as engine:
        backend = SglangBackend(engine.url, SESSIONS)
        messages: list[Any] = [{"role": "user", "content": words("a", 50)}]
        await _held_turn(engine, backend, messages, "p1")
        await _held_turn(engine, backend, messages, "p1")  # the same hold goes on
        sent = engine.sent("/v1/chat/completions")
        assert [b["session_id"] for b in sent] == ["kvbaton-p1-1", "kvbaton-p1-1"]
        holds = await engine.holds()
        assert list(holds) == ["session:kvbaton-p1-1"] and holds["session:kvbaton-p1-1"] > 50
        assert await backend.retime_pin("p1", 30.0, None) == 0  # the TTL is the proxy's
        await backend.release_pin("p1")
        assert engine.sent("/close_session") == [{"session_id": "kvbaton-p1-1"}]
        assert await engine.holds() == {}
        # A closed id is never reused: SGLang ignores tags from requests after a close.
        await _held_turn(engine, backend, messages, "p1")
        assert engine.sent("/v1/chat/completions")[-1]["session_id"] == "kvbaton-p1-2"
        await backend.release_all()
        assert engine.sent("/close_session")[-1] == {"session_id": "kvbaton-p1-2"}
        assert await engine.holds() == {} and backend.sessions == {}
        await backend.aclose()


async def test_without_the_session_cache_nothing_is_tagged() -> None:
    async with recording_engine(settings()) as engine:
        backend = SglangBackend(engine.url, PLAIN)
        body: dict[str, Any] = {"messages": []}
        backend.hold_at_finish(body, "p1", 5.0)
        assert "session_id" not in body
        await backend.release_pin("p1")
        assert engine.sent("/close_session") == []
        await backend.aclose()


async def test_warm_is_a_one_token_chat_and_the_next_call_hits_it() -> None:
    async with recording_engine(settings()) as engine:
        backend = SglangBackend(engine.url, SESSIONS)
        tools = [{"type": "function", "function": {"name": "bash", "parameters": {}}}]
        system = {"role": "system", "content": words("sys", 200)}
        body = {"model": "m", "messages": [system], "tools": tools}
        assert await backend.warm(body) == 0  # nothing was cached before
        assert engine.sent("/v1/chat/completions") == [
            {"model": "m", "messages": [system], "tools": tools, "max_tokens": 1, "stream": False}
        ]
        reply = await engine.chat([system, {"role": "user", "content": "hi"}], tools=tools)
        assert cached(reply) >= 200
        assert await backend.warm(body) >= 200  # warm again: all of it is cached now
        await backend.aclose()


async def test_warm_never_raises_on_a_dead_engine() -> None:
    backend = SglangBackend("http://127.0.0.1:9", SESSIONS, connect_timeout_s=0.5)
    assert (
        await backend.warm({"model": "m", "messages": [{"role": "user", "content": "x"}]}) is None
    )
    await backend.release_pin("nothing")
    await backend.aclose()


async def test_session_id_on_generate_and_not_with_session_params() -> None:
    async with recording_engine(settings(enable_session_radix_cache=True)) as engine:
        backend = SglangBackend(engine.url, SESSIONS)
        body: dict[str, Any] = {"text": words("g", 40), "sampling_params": {"max_new_tokens": 2}}
        backend.hold_at_finish(body, "p9", 5.0)
        async with engine.http.post(engine.url + "/generate", json=body) as r:
            assert r.status == 200
        assert list(await engine.holds()) == ["session:kvbaton-p9-1"]
        responses: dict[str, Any] = {"model": "m", "input": "hi"}
        backend.hold_at_finish(responses, "p8", 5.0)
        assert "session_id" not in responses  # a route whose body takes no session_id
        both = {**body, "session_params": {"id": "s"}}
        async with engine.http.post(engine.url + "/generate", json=both) as r:
            assert r.status == 400  # SGLang: session_id cannot be combined with session_params
        await backend.release_all()
        assert await engine.holds() == {}
        await backend.aclose()


async def test_closing_an_unknown_session_is_still_an_error() -> None:
    config = settings(enable_session_radix_cache=True)
    async with (
        recording_engine(config) as engine,
        engine.http.post(engine.url + "/close_session", json={"session_id": "x"}) as r,
    ):
        assert r.status == 400
