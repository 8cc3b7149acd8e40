"""Bad input, dead engines and vanished clients: clear errors, nothing leaked."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from kvbaton.middleware.embedded.settings import EngineSettings
from kvbaton.middleware.launch import running_engine, running_proxy
from kvbaton.middleware.settings import ProxySettings
from tests.service.conftest import Stack, start_stack

CHAT = "/v1/chat/completions"
GOOD = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}

BAD_INPUTS: list[tuple[str, str, Any, int, str | None]] = [
    ("POST", CHAT, b"{not json", 400, None),
    ("POST", CHAT, b"[1, 2]", 400, None),
    ("POST", CHAT, b"\xff\xfe", 400, None),
    ("POST", CHAT, {"model": "m"}, 400, "messages"),
    ("POST", CHAT, {"model": "m", "messages": []}, 400, "messages"),
    ("POST", CHAT, {"model": "m", "messages": "hi"}, 400, "messages"),
    ("POST", CHAT, {"model": "m", "messages": [{"content": "no role"}]}, 400, "messages.0.role"),
    ("POST", CHAT, {**GOOD, "stream": "yes"}, 400, "stream"),
    ("POST", CHAT, {**GOOD, "model": 7}, 400, "model"),
    ("POST", "/v1/completions", {"model": "m"}, 400, "prompt"),
    ("POST", "/v1/responses", {"model": "m", "input": 3}, 400, "input"),
    ("POST", "/generate", {"text": "a", "input_ids": [1]}, 400, None),
    ("POST", "/generate", {"sampling_params": {}}, 400, None),
    ("POST", "/v1/nope", GOOD, 404, None),
    ("GET", CHAT, None, 405, None),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "param"), BAD_INPUTS)
async def test_bad_input_gets_openai_error(
    stack: Stack, method: str, path: str, body: Any, status: int, param: str | None
) -> None:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    async with stack.http.request(method, stack.proxy + path, data=data) as r:
        assert r.status == status
        error = (await r.json())["error"]
    assert error["message"] and error["type"]
    if param:
        assert error["param"] == param
    stats = (await _programs(stack))["stats"]
    assert (stats["queued"], stats["inflight"]) == (0, 0)


async def test_oversized_body_is_413(stack: Stack) -> None:
    huge = json.dumps({**GOOD, "pad": "x" * (33 * 1024 * 1024)}).encode()
    async with stack.http.post(stack.proxy + CHAT, data=io.BytesIO(huge)) as r:
        assert r.status == 413
        assert (await r.json())["error"]["type"] == "invalid_request_error"


async def _programs(stack: Stack) -> dict[str, Any]:
    async with stack.http.get(f"{stack.proxy}/kvbaton/v1/programs") as r:
        body: dict[str, Any] = await r.json()
        return body


async def _engine_load(stack: Stack) -> tuple[int, int]:
    async with stack.http.get(f"{stack.engine}/server_info") as r:
        info = await r.json()
    state = info["internal_states"][0]
    return state["num_running_reqs"], state["num_waiting_reqs"]


async def _eventually(check: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.05)


async def test_client_disconnect_mid_stream_aborts_upstream() -> None:
    # A slow engine so that the stream is still running when the client leaves.
    async with start_stack(EngineSettings(port=0, time_scale=20.0)) as stack:
        body = {**GOOD, "stream": True, "max_tokens": 500}
        response = await stack.http.post(stack.proxy + CHAT, json=body)
        assert response.status == 200
        await response.content.readline()  # the stream has started
        assert await _engine_load(stack) == (1, 0)
        response.close()  # the client goes away

        async def drained() -> bool:
            stats = (await _programs(stack))["stats"]
            return stats["inflight"] == 0 and await _engine_load(stack) == (0, 0)

        await _eventually(drained)
        assert (await _programs(stack))["stats"]["cancelled"] == 1


async def test_queued_client_disconnect_leaves_the_queue() -> None:
    async with start_stack(EngineSettings(port=0, time_scale=20.0), max_inflight=1) as stack:
        slow = asyncio.create_task(
            stack.http.post(stack.proxy + CHAT, json={**GOOD, "max_tokens": 200})
        )

        async def one_inflight() -> bool:
            return (await _programs(stack))["stats"]["inflight"] == 1

        await _eventually(one_inflight)
        with pytest.raises(asyncio.TimeoutError):
            async with stack.http.post(
                stack.proxy + CHAT, json=GOOD, timeout=aiohttp.ClientTimeout(total=0.5)
            ):
                pass

        async def dequeued() -> bool:
            return (await _programs(stack))["stats"]["queued"] == 0

        await _eventually(dequeued)
        slow.cancel()
        await asyncio.gather(slow, return_exceptions=True)

        async def drained() -> bool:
            return (await _programs(stack))["stats"]["inflight"] == 0

        await _eventually(drained)


async def test_dead_engine_gets_503_then_recovers() -> None:
    engine = EngineSettings(port=0, time_scale=0.05)
    async with running_engine(engine) as url:
        port = int(url.rsplit(":", 1)[1])
    # The engine is gone; the proxy still starts and answers 503.
    settings = ProxySettings(port=0, backend=url, engine_kind="sglang")
    async with running_proxy(settings) as (proxy, _), aiohttp.ClientSession() as http:
        async with http.post(proxy + CHAT, json=GOOD) as r:
            assert r.status == 503
            assert (await r.json())["error"]["code"] == "engine_unavailable"
        async with http.get(proxy + "/health") as r:
            assert r.status == 503
        async with running_engine(EngineSettings(port=port, time_scale=0.05)):
            async with http.post(proxy + CHAT, json=GOOD) as r:
                assert r.status == 200, await r.text()
            async with http.get(proxy + "/health") as r:
                assert r.status == 200
        async with http.get(proxy + "/kvbaton/v1/programs") as r:
            stats = (await r.json())["stats"]
        assert (stats["queued"], stats["inflight"]) == (0, 0)


@contextlib.contextmanager
def engine_process(*args: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The embedded engine in its own process, so that a test can kill it outright."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "kvbaton", "engine", "--port", str(port), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            assert time.monotonic() < deadline and proc.poll() is None, "engine did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.kill()
        proc.wait(10)


async def _after_kill(proxy: str, http: aiohttp.ClientSession) -> None:
    async with http.get(proxy + "/kvbaton/v1/programs") as r:
        stats = (await r.json())["stats"]
    assert (stats["queued"], stats["inflight"]) == (0, 0)
    async with http.post(proxy + CHAT, json=GOOD) as r:  # the engine stays dead
        assert r.status == 503


async def test_engine_killed_mid_request_gets_502_and_frees_the_slot() -> None:
    with engine_process("--time-scale", "20") as (url, engine):
        settings = ProxySettings(port=0, backend=url)
        async with running_proxy(settings) as (proxy, _), aiohttp.ClientSession() as http:
            pending = asyncio.create_task(http.post(proxy + CHAT, json={**GOOD, "max_tokens": 300}))
            await asyncio.sleep(0.5)  # the request is at the engine
            engine.kill()
            async with await pending as r:
                # 503 once the proxy finds the engine gone; 502 had it answered in part
                assert r.status in (502, 503)
                assert (await r.json())["error"]["type"] == "upstream_error"
            await _after_kill(proxy, http)


async def test_stream_broken_by_killed_engine_is_broken_off_and_frees_the_slot() -> None:
    with engine_process("--time-scale", "20") as (url, engine):
        settings = ProxySettings(port=0, backend=url)
        async with running_proxy(settings) as (proxy, _), aiohttp.ClientSession() as http:
            body = {**GOOD, "max_tokens": 300, "stream": True}
            async with http.post(proxy + CHAT, json=body) as r:
                assert r.status == 200
                await r.content.readline()
                engine.kill()
                with pytest.raises(aiohttp.ClientPayloadError):
                    await r.read()  # the proxy cannot finish the stream, so it breaks it off
            await _after_kill(proxy, http)
