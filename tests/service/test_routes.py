"""Pass-through routes, metrics, and what reaches the engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from kvbaton.middleware.launch import running_proxy
from kvbaton.middleware.settings import ProxySettings
from tests.service.conftest import Stack

GOOD = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


@pytest.mark.parametrize(
    ("method", "path", "key"),
    [
        ("GET", "/v1/models", "data"),
        ("GET", "/model_info", "model_path"),
        ("GET", "/get_model_info", "model_path"),
        ("GET", "/server_info", "max_total_num_tokens"),
        ("GET", "/get_server_info", "max_total_num_tokens"),
    ],
)
async def test_engine_routes_pass_through(stack: Stack, method: str, path: str, key: str) -> None:
    async with stack.http.request(method, stack.proxy + path) as r:
        assert r.status == 200
        body = await r.json()
    assert key in body or key in body.get("internal_states", [{}])[0]


async def test_native_generate_through_proxy(stack: Stack) -> None:
    body = {"text": "a native prompt", "sampling_params": {"max_new_tokens": 5}}
    async with stack.http.post(stack.proxy + "/generate", json=body) as r:
        assert r.status == 200
        reply = await r.json()
    assert reply["meta_info"]["completion_tokens"] == 5
    async with stack.http.post(stack.proxy + "/generate", json={**body, "stream": True}) as r:
        assert r.status == 200 and r.content_type == "text/event-stream"
        raw = await r.read()
    assert raw.rstrip().endswith(b"data: [DONE]")


async def test_flush_cache_passes_through(stack: Stack) -> None:
    async with stack.http.post(stack.proxy + "/flush_cache") as r:
        assert r.status == 200


async def test_metrics_count_calls_without_program_labels(stack: Stack) -> None:
    async with stack.http.post(
        stack.proxy + "/v1/chat/completions",
        json=GOOD,
        headers={"x-kvbaton-program-id": "secret-program"},
    ) as r:
        assert r.status == 200
    async with stack.http.get(stack.proxy + "/metrics") as r:
        text = await r.text()
    assert 'kvbaton_requests_total{code="200",route="chat"} 1.0' in text
    assert "kvbaton_queue_depth 0.0" in text
    assert "secret-program" not in text


@pytest.fixture
async def recording_engine() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """An SGLang-shaped engine that records what reaches it (a fake for this layer only)."""
    seen: list[dict[str, Any]] = []

    async def server_info(request: web.Request) -> web.Response:
        return web.json_response({"enable_priority_scheduling": True, "max_running_requests": 8})

    async def chat(request: web.Request) -> web.Response:
        seen.append({"headers": dict(request.headers), "body": await request.json()})
        return web.json_response({"choices": [{"message": {"role": "assistant", "content": "x"}}]})

    app = web.Application()
    app.router.add_get("/server_info", server_info)
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    finally:
        await runner.cleanup()


async def test_own_fields_stripped_and_priority_in_sglang_convention(
    recording_engine: tuple[str, list[dict[str, Any]]],
) -> None:
    url, seen = recording_engine
    settings = ProxySettings(port=0, backend=url, policy="program-fcfs")
    async with running_proxy(settings) as (proxy, _), aiohttp.ClientSession() as http:
        for program in ("first", "second"):
            body = {**GOOD, "kvbaton": {"agent": "a"}}
            headers = {"x-kvbaton-program-id": program, "Authorization": "Bearer k"}
            async with http.post(proxy + "/v1/chat/completions", json=body, headers=headers) as r:
                assert r.status == 200
    assert [s["body"]["priority"] for s in seen] == [0, -1]  # SGLang: higher runs first
    for s in seen:
        assert "kvbaton" not in s["body"]
        assert not [h for h in s["headers"] if h.lower().startswith("x-kvbaton-")]
        assert s["headers"]["Authorization"] == "Bearer k"
        assert s["body"]["rid"]


async def test_baseline_sends_no_priority(
    recording_engine: tuple[str, list[dict[str, Any]]],
) -> None:
    url, seen = recording_engine
    settings = ProxySettings(port=0, backend=url, policy="baseline")
    async with (
        running_proxy(settings) as (proxy, _),
        aiohttp.ClientSession() as http,
        http.post(proxy + "/v1/chat/completions", json=GOOD) as r,
    ):
        assert r.status == 200
    assert "priority" not in seen[0]["body"]
