"""kvbaton's native pins on the embedded engine: pinned at finish, re-timed, released."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from kvbaton.middleware.embedded.settings import EngineSettings
from kvbaton.middleware.launch import running_engine

CHAT = "/v1/chat/completions"


@pytest.fixture
async def engine() -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    # A pool so small that one other conversation evicts an unpinned one.
    settings = EngineSettings(port=0, time_scale=0.02, kv_tokens=1200)
    async with running_engine(settings) as url, aiohttp.ClientSession() as http:
        yield url, http


def _chat(text: str, **extra: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": text}]
    return {"model": "m", "messages": messages, "max_tokens": 8, **extra}


async def _post(http: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    async with http.post(url, json=body) as r:
        return r.status, await r.json()


async def _cached(http: aiohttp.ClientSession, url: str, text: str) -> int:
    status, reply = await _post(http, url + CHAT, _chat(text))
    assert status == 200, reply
    cached: int = reply["usage"]["prompt_tokens_details"]["cached_tokens"]
    return cached


async def test_a_pinned_conversation_survives_pressure_an_unpinned_one_does_not(
    engine: tuple[str, aiohttp.ClientSession],
) -> None:
    url, http = engine
    pinned, plain, other = "alpha " * 300, "beta " * 300, "gamma " * 700
    status, _ = await _post(http, url + CHAT, _chat(pinned, kvbaton_hold={"key": "p", "ttl_s": 60}))
    assert status == 200
    await _post(http, url + CHAT, _chat(plain))
    await _post(http, url + CHAT, _chat(other))  # pressure: evicts what is not pinned
    assert await _cached(http, url, pinned) >= 300
    assert await _cached(http, url, plain) < 20  # only the chat template's first tokens


async def test_retime_release_and_expiry(engine: tuple[str, aiohttp.ClientSession]) -> None:
    url, http = engine
    await _post(http, url + CHAT, _chat("delta " * 100, kvbaton_hold={"key": "k", "ttl_s": 60}))
    async with http.get(url + "/kvbaton/v1/holds") as r:
        held = (await r.json())["holds"]["k"]
    assert held > 100
    status, body = await _post(http, url + "/kvbaton/v1/hold", {"key": "k", "ttl_s": 0.2})
    assert (status, body["held_tokens"]) == (200, held)
    await asyncio.sleep(0.4)  # the new, shorter TTL runs out
    async with http.get(url + "/kvbaton/v1/holds") as r:
        assert (await r.json())["holds"] == {}
    status, body = await _post(http, url + "/kvbaton/v1/hold", {"key": "k", "ttl_s": 5})
    assert status == 404 and body["error"]["param"] == "key"
    status, body = await _post(http, url + "/kvbaton/v1/release", {"key": "k"})
    assert (status, body["released"]) == (200, False)


@pytest.mark.parametrize(
    "body", [{"key": "", "ttl_s": 1}, {"key": "k", "ttl_s": -1}, {"key": "k"}, {"ttl_s": 1}]
)
async def test_bad_hold_requests_are_400(
    engine: tuple[str, aiohttp.ClientSession], body: dict[str, Any]
) -> None:
    url, http = engine
    status, reply = await _post(http, url + "/kvbaton/v1/hold", body)
    assert status == 400 and reply["error"]["type"] == "invalid_request_error"
