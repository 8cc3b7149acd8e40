"""The service side of retention and warming: the prefix store fed by real calls, Warm
actions carried out at the engine, per-engine holds through the proxy, and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web
from openai import AsyncOpenAI

from kvbaton.adapters.base import Backend, Capabilities
from kvbaton.adapters.http import HttpBackend
from kvbaton.adapters.sglang import SglangBackend
from kvbaton.adapters.vllm import VllmBackend
from kvbaton.middleware.core.actions import Warm
from kvbaton.middleware.service.app import create_app, make_runner
from kvbaton.middleware.service.context import SERVICE, Service
from kvbaton.middleware.settings import ProxySettings
from tests.adapters.conftest import Engine, recording_engine, settings, words
from tests.service.conftest import BASH_TOOLS as TOOLS

SYSTEM = {"role": "system", "content": words("sys", 150)}


@contextlib.asynccontextmanager
async def proxy(
    url: str, backend: Backend | None = None, **options: Any
) -> AsyncIterator[tuple[AsyncOpenAI, web.Application, str]]:
    app = create_app(ProxySettings(port=0, backend=url, **options), backend=backend)
    runner = make_runner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with AsyncOpenAI(base_url=base + "/v1", api_key="t", max_retries=0) as client:
            yield client, app, base
    finally:
        await runner.cleanup()


async def _turn(
    client: AsyncOpenAI, messages: list[Any], program: str, *, stream: bool = False, **h: str
) -> Any:
    headers = {"x-kvbaton-program-id": program, "x-kvbaton-agent": "coder", **h}
    headers.setdefault("x-kvbaton-workflow", "wf")
    if stream:
        chunks = await client.chat.completions.create(
            model="m",
            messages=messages,
            tools=TOOLS,
            max_tokens=64,
            stream=True,
            extra_headers=headers,
        )
        async for _ in chunks:
            pass
        return None
    reply = await client.chat.completions.create(
        model="m", messages=messages, tools=TOOLS, max_tokens=64, extra_headers=headers
    )
    message = reply.choices[0].message
    messages.append(message.model_dump(exclude_none=True))
    for call in message.tool_calls or []:
        messages.append({"role": "tool", "tool_call_id": call.id, "content": "out " * 50})
    return reply


async def _settle(service: Service) -> None:
    for _ in range(200):
        if not service.background and not service.dispatcher.warms_in_flight:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("background work did not finish")


async def _metric(base: str, line_start: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(base + "/metrics") as r:
        for line in (await r.text()).splitlines():
            if line.startswith(line_start):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_calls_feed_the_prefix_store() -> None:
    async with recording_engine(settings()) as engine, proxy(engine.url) as (client, app, _):
        store = app[SERVICE].dispatcher.prefixes
        messages: list[Any] = [SYSTEM, {"role": "user", "content": "fix it"}]
        reply = await _turn(client, messages, "p1")
        context = store.resume("p1")
        assert context is not None and context["tools"] == TOOLS and context["model"] == "m"
        assert context["messages"][:2] == messages[:2]
        assert (
            context["messages"][2]["tool_calls"][0]["id"]
            == reply.choices[0].message.tool_calls[0].id
        )
        assert store.agent("wf", "coder") == {"model": "m", "tools": TOOLS, "messages": [SYSTEM]}
        await _turn(client, [SYSTEM, {"role": "user", "content": "again"}], "p2", stream=True)
        streamed = store.resume("p2")
        assert streamed is not None and streamed["messages"][-1]["role"] == "assistant"
        assert streamed["messages"][-1]["tool_calls"]


async def test_agent_warm_loads_the_fixed_prefix_for_the_next_program() -> None:
    async with recording_engine(settings()) as engine, proxy(engine.url) as (client, app, base):
        service = app[SERVICE]
        await _turn(client, [SYSTEM, {"role": "user", "content": "one"}], "p1")
        await _settle(service)
        await engine.flush()
        service.dispatcher.apply([Warm("agent", "p1", 150, "wf", "coder")])
        service.dispatcher.apply([Warm("resume", "never-seen", 10)])
        await _settle(service)
        assert engine.sent("/generate")[-1]["sampling_params"] == {"max_new_tokens": 0}
        reply = await _turn(client, [SYSTEM, {"role": "user", "content": "two"}], "p2")
        assert reply.usage.prompt_tokens_details.cached_tokens >= 150
        assert await _metric(base, 'kvbaton_warms_total{kind="agent",result="sent"}') == 1
        assert await _metric(base, 'kvbaton_warms_total{kind="resume",result="skipped"}') == 1


async def test_shutdown_cancels_warms_in_flight() -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers; returns when the proxy hangs up
        writer.close()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    backend = VllmBackend(url, Capabilities("vllm", lru_prefix_cache=True))
    try:
        async with proxy(url, backend) as (_, app, _):
            dispatcher = app[SERVICE].dispatcher
            dispatcher.prefixes.remember(
                "p1", None, None, {"model": "m", "messages": [SYSTEM]}, None
            )
            dispatcher.apply([Warm("resume", "p1", 150)])
            await asyncio.sleep(0.1)
            assert dispatcher.warms_in_flight == 1
            stopping = asyncio.get_running_loop().time()
        assert dispatcher.warms_in_flight == 0
        assert asyncio.get_running_loop().time() - stopping < 2.0
    finally:
        await backend.aclose()
        server.close()
        await server.wait_closed()


async def _pinned_turns(engine: Engine, backend: Backend, policy: str = "continuum") -> None:
    async with proxy(engine.url, backend, policy=policy, retention="static-ttl") as (
        client,
        app,
        _,
    ):
        service = app[SERVICE]
        messages: list[Any] = [SYSTEM, {"role": "user", "content": "fix the bug " * 20}]
        await _turn(client, messages, "p1")
        await _turn(client, [SYSTEM, {"role": "user", "content": "other"}], "p2")
        await _settle(service)
        await _turn(client, messages, "p1", **{"x-kvbaton-last-step": "true"})
        await _settle(service)
    # p2 was still pinned when the proxy stopped


async def test_sglang_sessions_through_the_proxy_close_at_program_end_and_shutdown() -> None:
    caps = Capabilities("sglang", native_generate=True, abort_endpoint=True, session_cache=True)
    async with recording_engine(settings(enable_session_radix_cache=True)) as engine:
        backend = SglangBackend(engine.url, caps)
        await _pinned_turns(engine, backend)
        calls = engine.sent("/v1/chat/completions")
        assert [c.get("session_id") for c in calls] == [
            "kvbaton-p1-1",
            "kvbaton-p2-2",
            None,  # a last step is not held
        ]
        closed = [b["session_id"] for b in engine.sent("/close_session")]
        assert sorted(closed) == ["kvbaton-p1-1", "kvbaton-p2-2"]
        assert await engine.holds() == {} and backend.sessions == {}
        await backend.aclose()


async def test_vllm_through_the_proxy_guards_pins_and_retouches_the_context() -> None:
    caps = Capabilities("vllm", higher_first=False, lru_prefix_cache=True)
    async with recording_engine(settings()) as engine:
        backend = VllmBackend(engine.url, caps, retouch_every_s=0.05)
        async with proxy(engine.url, backend, policy="continuum", retention="static-ttl") as (
            client,
            app,
            _,
        ):
            service = app[SERVICE]
            assert service.dispatcher.scheduler.config.guard_pins
            messages: list[Any] = [SYSTEM, {"role": "user", "content": "fix the bug " * 20}]
            await _turn(client, messages, "p1")
            await _settle(service)
            assert len(backend.retouch) == 1
            await asyncio.sleep(0.3)
            touches = [c for c in engine.sent("/v1/chat/completions") if c["max_tokens"] == 1]
            assert touches and touches[0]["messages"][:2] == messages[:2]
            reply = touches[0]["messages"][2]  # the context goes through the reply
            assert reply["tool_calls"][0]["id"] == messages[2]["tool_calls"][0]["id"]
            await _turn(client, messages, "p1", **{"x-kvbaton-last-step": "true"})
            await _settle(service)
            assert len(backend.retouch) == 0
        await backend.aclose()


async def test_sglang_session_closes_when_its_pin_expires() -> None:
    caps = Capabilities("sglang", native_generate=True, abort_endpoint=True, session_cache=True)
    async with recording_engine(settings(enable_session_radix_cache=True)) as engine:
        backend = SglangBackend(engine.url, caps)
        async with proxy(engine.url, backend, policy="continuum", retention="static-ttl") as (
            client,
            _,
            _,
        ):
            messages: list[Any] = [SYSTEM, {"role": "user", "content": "fix the bug " * 20}]
            await _turn(client, messages, "p1")
            assert list(await engine.holds()) == ["session:kvbaton-p1-1"]
            for _ in range(100):  # the static TTL is 2 s
                if engine.sent("/close_session"):
                    break
                await asyncio.sleep(0.05)
            assert engine.sent("/close_session") == [{"session_id": "kvbaton-p1-1"}]
            assert await engine.holds() == {} and backend.sessions == {}
        await backend.aclose()


async def test_kvflow_warms_the_next_agents_prefix_end_to_end() -> None:
    planner = {"role": "system", "content": words("plan", 80)}
    coder = {"role": "system", "content": words("code", 120)}

    async def call(client: AsyncOpenAI, program: str, agent: str, system: Any) -> None:
        await client.chat.completions.create(
            model="m",
            messages=[system, {"role": "user", "content": f"task of {program}"}],
            max_tokens=4,
            extra_headers={
                "x-kvbaton-program-id": program,
                "x-kvbaton-agent": agent,
                "x-kvbaton-workflow": "wf",
            },
        )

    async with (
        recording_engine(settings()) as engine,
        proxy(engine.url, policy="kvflow") as (client, app, base),
    ):
        await call(client, "p1", "planner", planner)
        await call(client, "p1", "coder", coder)
        await _settle(app[SERVICE])
        assert engine.sent("/generate") == []  # nothing learned yet
        await call(client, "p2", "planner", planner)  # the coder is predicted next
        await _settle(app[SERVICE])
        warms = engine.sent("/generate")
        assert len(warms) == 1 and "code0" in warms[0]["text"] and "plan0" not in warms[0]["text"]
        assert warms[0]["sampling_params"] == {"max_new_tokens": 0}
        assert await _metric(base, 'kvbaton_warms_total{kind="agent",result="sent"}') == 1


async def test_an_engine_that_cannot_warm_gets_no_warms() -> None:
    async with recording_engine(settings()) as engine:
        backend = HttpBackend(engine.url, Capabilities("openai"))
        async with proxy(engine.url, backend) as (client, app, base):
            await _turn(client, [SYSTEM, {"role": "user", "content": "one"}], "p1")
            app[SERVICE].dispatcher.apply([Warm("resume", "p1", 100)])
            await _settle(app[SERVICE])
            assert await _metric(base, 'kvbaton_warms_total{kind="resume",result="skipped"}') == 1
        assert all(b.get("max_tokens") != 1 for b in engine.sent("/v1/chat/completions"))
        await backend.aclose()
