"""Failures around a real vLLM, through the proxy: a client that leaves, and an engine that
dies and comes back. Also priority: the proxy's ranks decide vLLM's order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from kvbaton.middleware.launch import running_proxy
from kvbaton.middleware.settings import ProxySettings
from tests.real import vllm
from tests.real.conftest import Proxied, proxied
from tests.real.vllm import OwnEngine, metric, needs_real_engine

pytestmark = needs_real_engine

EXACT = {"ignore_eos": True}
LOG_DIR = Path(__file__).resolve().parents[2] / ".real-engine"


async def _until(check: Any, what: str = "", timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        await asyncio.sleep(0.05)


def _running(url: str) -> float:
    return metric(url, "vllm:num_requests_running") + metric(url, "vllm:num_requests_waiting")


async def test_client_disconnect_aborts_the_vllm_request(stack: Proxied) -> None:
    generated = metric(stack.engine, "vllm:generation_tokens_total")
    stream = await stack.client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "a long answer please"}],
        max_tokens=3000,
        stream=True,
        extra_body=EXACT,
    )
    seen = 0
    async for _ in stream:
        seen += 1
        if seen == 5:
            break
    await stream.close()
    # vLLM drops the request (vLLM counts aborts in no finish reason), long before its
    # 3,000 tokens, and nothing stays queued anywhere.
    await _until(lambda: _running(stack.engine) == 0)
    await asyncio.sleep(0.5)  # a request still decoding would add tokens meanwhile
    assert _running(stack.engine) == 0
    assert metric(stack.engine, "vllm:generation_tokens_total") - generated < 1000
    stats = (await stack.stats())["stats"]
    assert (stats["queued"], stats["inflight"]) == (0, 0)


# -- an engine of the tests' own, one sequence at a time ------------------------------------


@pytest.fixture(scope="module")
def own() -> Iterator[OwnEngine]:
    if not vllm.PYTHON or not vllm.MODEL:
        pytest.skip("KVBATON_REAL_ENGINE_PYTHON/MODEL unset: cannot start a second engine")
    with vllm.own_engine(LOG_DIR, "--max-num-seqs", "1") as engine:
        yield engine


async def _call(stack: Proxied, program: str, max_tokens: int, done: dict[str, float]) -> None:
    reply = await stack.client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": f"program {program}"}],
        max_tokens=max_tokens,
        extra_body=EXACT,
        extra_headers={"x-kvbaton-program-id": program.split(":")[0]},
    )
    assert reply.usage and reply.usage.completion_tokens == max_tokens
    done[program] = time.monotonic()


@pytest.mark.parametrize(
    ("engine_priority", "order"),
    [
        ("on", ["busy:2", "old:2", "new1", "new2", "new3"]),
        ("off", ["busy:2", "new1", "new2", "new3", "old:2"]),
    ],
)
async def test_priority_reaches_vllm(
    own: OwnEngine, engine_priority: str, order: list[str]
) -> None:
    # program-fcfs ranks a call by its program's arrival. 'old' started before new1..3, so
    # its second call, sent last, goes first at vLLM when the rank reaches it ('on');
    # without it vLLM serves the queue first come, first served ('off'). Arrival order comes
    # from spacing the sends, not from polling vLLM's /metrics, which answers seconds late
    # while the engine decodes flat out.
    for _ in range(3):
        done, queued_at = await _queue_behind_busy(own, engine_priority)
        # On a loaded machine the client can stall past busy:2's end before the queue forms;
        # then the scenario did not happen and is run again (a wrong order is never retried).
        if done["busy:2"] > queued_at:
            assert sorted(done, key=done.__getitem__)[2:] == order
            return
    pytest.fail("busy:2 ended before the queue formed behind it, three times")


async def _queue_behind_busy(
    own: OwnEngine, engine_priority: str
) -> tuple[dict[str, float], float]:
    done: dict[str, float] = {}
    # A fixed in-flight limit above the queue: the adaptive one would hold new3 and old:2 in
    # the proxy once vLLM reports a queue, and the proxy's order would decide, not vLLM's.
    async with proxied(own.url, engine_priority=engine_priority, max_inflight=64) as stack:
        await _call(stack, "busy:1", 1, done)
        await _call(stack, "old:1", 1, done)
        async with asyncio.TaskGroup() as group:
            group.create_task(_call(stack, "busy:2", 4000, done))  # holds the one slot
            for name in ["new1", "new2", "new3", "old:2"]:
                await asyncio.sleep(0.2)
                group.create_task(_call(stack, name, 4, done))
            queued_at = time.monotonic()
    return done, queued_at


async def test_engine_killed_then_restarted(own: OwnEngine) -> None:
    settings = ProxySettings(port=0, backend=own.url, engine_kind="vllm", engine_priority="on")
    async with running_proxy(settings) as (url, _):
        client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=60)
        chat: dict[str, Any] = {
            "model": "tiny",
            "messages": [{"role": "user", "content": "hello"}],
            "extra_body": EXACT,
        }
        stream = await client.chat.completions.create(**chat, max_tokens=3000, stream=True)
        await anext(aiter(stream))
        own.kill()  # SIGKILL mid-stream: API server, EngineCore and worker at once
        with pytest.raises(openai.APIError):
            async for _ in stream:
                pass
        # While it is down: a clean OpenAI-style 502/503, quickly, not a hang.
        with pytest.raises(openai.APIStatusError) as down:
            await client.chat.completions.create(**chat, max_tokens=4)
        assert down.value.status_code in (502, 503)
        assert isinstance(down.value.body, dict) and down.value.body.get("message")
        await asyncio.to_thread(own.start)
        reply = await client.chat.completions.create(**chat, max_tokens=4)
        assert reply.usage and reply.usage.completion_tokens == 4
        programs = await client.get("/../kvbaton/v1/programs", cast_to=object)
        await client.close()
    assert isinstance(programs, dict)
    assert (programs["stats"]["queued"], programs["stats"]["inflight"]) == (0, 0)
