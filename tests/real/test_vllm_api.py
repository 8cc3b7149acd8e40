"""The OpenAI API of a real vLLM, through the proxy: what clients see is what vLLM says."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kvbaton.middleware.bench.replay_text import call_text
from tests.real.conftest import Proxied
from tests.real.vllm import BLOCK, needs_real_engine

pytestmark = needs_real_engine

EXACT = {"ignore_eos": True}  # random weights: stop only at max_tokens


def _program(program: str, step: str, **more: str) -> dict[str, str]:
    return {"x-kvbaton-program-id": program, "x-kvbaton-step": step, **more}


async def test_chat_reaches_vllm_and_counts_come_back(stack: Proxied) -> None:
    reply = await stack.client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "the quick brown fox"}],
        max_tokens=12,
        extra_body=EXACT,
        extra_headers=_program("chat-1", "s0"),
    )
    assert reply.model == "tiny"
    assert reply.system_fingerprint and reply.system_fingerprint.startswith("vllm-0.32.0")
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage and reply.usage.completion_tokens == 12 and reply.usage.prompt_tokens > 4
    program = (await stack.stats())["data"]
    assert [p["program_id"] for p in program] == ["chat-1"]


async def test_completions_reach_vllm(stack: Proxied) -> None:
    reply = await stack.client.completions.create(
        model="tiny", prompt="def main():", max_tokens=7, extra_body=EXACT
    )
    assert reply.object == "text_completion"
    assert reply.usage and reply.usage.completion_tokens == 7
    assert reply.choices[0].finish_reason == "length"


@pytest.mark.parametrize("include_usage", [True, False])
async def test_stream_is_relayed_with_usage_only_when_asked(
    stack: Proxied, include_usage: bool
) -> None:
    # The proxy always asks vLLM for usage (it sizes pins from it) and drops the usage-only
    # event again for a client that did not ask: vLLM's own stream format must survive that.
    stream = await stack.client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "stream me"}],
        max_tokens=16,
        stream=True,
        stream_options={"include_usage": True} if include_usage else None,
        extra_body=EXACT,
    )
    chunks = [chunk async for chunk in stream]
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "length" and finishes.count("length") == 1
    usage = [c.usage for c in chunks if c.usage is not None]
    if include_usage:
        assert len(usage) == 1 and usage[0].completion_tokens == 16
        assert chunks[-1].usage is not None and not chunks[-1].choices
    else:
        assert usage == []
    stats = (await stack.stats())["stats"]
    assert (stats["inflight"], stats["finished"]) == (0, 1)


async def test_second_call_of_a_program_hits_vllm_prefix_cache(stack: Proxied) -> None:
    messages: list[Any] = [{"role": "user", "content": call_text("cache", "c0", 700)}]
    first = await stack.client.chat.completions.create(
        model="tiny", messages=messages, max_tokens=8, extra_body=EXACT,
        extra_headers=_program("cache", "c0"),
    )  # fmt: skip
    assert first.usage is not None
    messages += [
        {"role": "assistant", "content": first.choices[0].message.content or ""},
        {"role": "user", "content": call_text("cache", "c1", 100)},
    ]
    second = await stack.client.chat.completions.create(
        model="tiny", messages=messages, max_tokens=8, extra_body=EXACT,
        extra_headers=_program("cache", "c1", **{"x-kvbaton-parent-step": "c0"}),
    )  # fmt: skip
    assert second.usage and second.usage.prompt_tokens_details
    cached = second.usage.prompt_tokens_details.cached_tokens or 0
    # vLLM caches whole 128-token blocks and never the prompt's last one; the retokenized
    # boundary after "assistant: " may cost one more block.
    assert cached % BLOCK == 0
    assert cached >= (first.usage.prompt_tokens // BLOCK - 1) * BLOCK > 0
    program = (await stack.stats())["data"][0]
    assert program["program_id"] == "cache" and program["calls"] == 2, json.dumps(program)
