"""The OpenAI client against the proxy against the embedded engine, over HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from tests.service.conftest import Stack, tool_loop


def _user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


async def test_plain_chat_passes_through(stack: Stack) -> None:
    reply = await stack.client.chat.completions.create(
        model="kvbaton-tiny", messages=_user("hello there"), max_tokens=12
    )
    assert reply.choices[0].message.content
    assert reply.usage is not None and reply.usage.completion_tokens <= 12
    assert reply.usage.prompt_tokens > 0


async def test_streamed_chat_matches_whole_reply(stack: Stack) -> None:
    messages = _user("stream me a reply")
    whole = await stack.client.chat.completions.create(
        model="kvbaton-tiny", messages=messages, max_tokens=16
    )
    stream = await stack.client.chat.completions.create(
        model="kvbaton-tiny",
        messages=messages,
        max_tokens=16,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, usage = [], None
    async for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
        usage = chunk.usage or usage
    assert "".join(pieces) == whole.choices[0].message.content
    assert usage is not None and usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]


async def test_tool_loop_is_seen_as_one_program_with_pauses(stack: Stack) -> None:
    calls = await tool_loop(stack.client)
    assert calls >= 2, "the embedded engine should ask for at least one tool"
    programs = await stack.programs()
    assert len(programs) == 1, programs  # found by prefix continuation alone
    (program,) = programs.values()
    assert program["calls"] == calls
    assert len(program["tool_pauses"]) == calls - 1
    for pause in program["tool_pauses"]:
        assert pause["tools"] == ["bash"] and pause["duration_s"] >= 0.2
    detail = await stack.program(program["program_id"])
    kinds = [n["kind"] for n in detail["graph"]["nodes"]]
    assert kinds.count("call") == calls and kinds.count("tool") == calls - 1


async def test_second_turn_reports_cached_tokens(stack: Stack) -> None:
    messages: list[Any] = [{"role": "user", "content": "word " * 400}]
    first = await stack.client.chat.completions.create(
        model="kvbaton-tiny", messages=messages, max_tokens=8
    )
    messages += [first.choices[0].message.model_dump(exclude_none=True), *_user("and then?")]
    second = await stack.client.chat.completions.create(
        model="kvbaton-tiny", messages=messages, max_tokens=8
    )
    details = second.usage.prompt_tokens_details  # type: ignore[union-attr]
    assert details is not None and details.cached_tokens is not None
    assert details.cached_tokens >= first.usage.prompt_tokens  # type: ignore[union-attr]
    (program,) = (await stack.programs()).values()
    assert program["cached_tokens"] == details.cached_tokens


HEADER_FAMILIES = [
    ({"x-kvbaton-program-id": "p-own", "x-kvbaton-agent": "planner"}, {}, "p-own", "planner"),
    ({"x-litellm-session-id": "s1"}, {}, "litellm:s1", None),
    (
        {"Helicone-Session-Id": "h1", "Helicone-Session-Path": "/plan/code"},
        {},
        "helicone:h1",
        "code",
    ),
    ({"x-portkey-trace-id": "t1", "x-portkey-span-name": "writer"}, {}, "portkey:t1", "writer"),
    ({"X-Dynamo-Session-ID": "d1"}, {}, "dynamo:d1", None),
    (
        {"x-claude-code-session-id": "c1", "x-claude-code-agent-id": "sub"},
        {},
        "claude-code:c1",
        "sub",
    ),
    ({"session-id": "x1"}, {}, "codex:x1", None),
    ({"x-session-id": "o1"}, {}, "session:o1", None),
    (
        {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
        {},
        "traceparent:4bf92f3577b34da6a3ce929d0e0e4736",
        None,
    ),
    ({}, {"metadata": {"session_id": "m1"}}, "metadata:m1", None),
    ({}, {"litellm_session_id": "l2"}, "litellm:l2", None),
    ({}, {"prompt_cache_key": "k1"}, "prompt-cache-key:k1", None),
    ({}, {"kvbaton": {"program_id": "p-body", "agent": "a"}}, "p-body", "a"),
]


@pytest.mark.parametrize(("headers", "body", "program_id", "agent"), HEADER_FAMILIES)
async def test_program_identified_from_each_family(
    stack: Stack, headers: dict[str, str], body: dict[str, Any], program_id: str, agent: str | None
) -> None:
    await stack.client.chat.completions.create(
        model="kvbaton-tiny",
        messages=_user(f"who am I {program_id}"),
        max_tokens=4,
        extra_headers=headers,
        extra_body=body,
    )
    program = await stack.program(program_id)
    assert program["calls"] == 1
    assert program["agents"] == ([agent] if agent else [])


async def test_retry_is_the_same_step(stack: Stack) -> None:
    for retry in ("0", "1"):
        await stack.client.chat.completions.create(
            model="kvbaton-tiny",
            messages=_user("retry me"),
            max_tokens=4,
            extra_headers={"x-kvbaton-program-id": "r1", "x-stainless-retry-count": retry},
        )
    program = await stack.program("r1")
    assert (program["calls"], program["retries"]) == (1, 1)


async def test_last_step_marks_program_done(stack: Stack) -> None:
    await stack.client.chat.completions.create(
        model="kvbaton-tiny",
        messages=_user("finish"),
        max_tokens=4,
        extra_headers={"x-kvbaton-program-id": "fin", "x-kvbaton-last-step": "true"},
    )
    assert (await stack.program("fin"))["status"] == "done"


async def test_unknown_program_is_a_json_404(stack: Stack) -> None:
    async with stack.http.get(f"{stack.proxy}/kvbaton/v1/programs/nope") as r:
        assert r.status == 404
        assert (await r.json())["error"]["type"] == "not_found_error"


async def test_streams_are_counted_even_when_the_client_asks_for_no_usage(stack: Stack) -> None:
    stream = await stack.client.chat.completions.create(
        model="kvbaton-tiny",
        messages=_user("count me"),
        max_tokens=6,
        stream=True,
        extra_headers={"x-kvbaton-program-id": "quiet"},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks and all(chunk.choices and chunk.usage is None for chunk in chunks)
    program = await stack.program("quiet")
    assert program["prompt_tokens"] > 0 and program["completion_tokens"] == 6
