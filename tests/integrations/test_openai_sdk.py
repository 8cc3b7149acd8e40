"""The OpenAI Python SDK pointed at the proxy: chat completions and the Responses API,
whole and streamed, each running a real tool loop."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from openai import AsyncOpenAI

from kvbaton.middleware.protocol.agents import instructions_agent

from .conftest import MODEL, Stack, assert_tool_loop, call_nodes

SYSTEM = "You are a careful coding agent. Use the tools."
CHAT_TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a file",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        },
    }
]
RESPONSES_TOOLS: list[Any] = [{"type": "function", **CHAT_TOOLS[0]["function"]}]
TOOL_S = 0.05


async def run_tool(name: str, arguments: str) -> str:
    await asyncio.sleep(TOOL_S)
    return f"{name}({sorted(json.loads(arguments))}) -> 12 lines"


async def chat_loop(client: AsyncOpenAI, task: str, *, stream: bool) -> int:
    messages: list[Any] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": task}]
    for calls in range(1, 10):
        message = await _chat_turn(client, messages, stream)
        messages.append(message)
        if not message.get("tool_calls"):
            return calls
        for call in message["tool_calls"]:
            output = await run_tool(call["function"]["name"], call["function"]["arguments"])
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": output})
    raise AssertionError("the tool loop did not end")


async def _chat_turn(client: AsyncOpenAI, messages: list[Any], stream: bool) -> dict[str, Any]:
    if not stream:
        reply = await client.chat.completions.create(
            model=MODEL, messages=messages, tools=CHAT_TOOLS
        )
        return reply.choices[0].message.model_dump(exclude_none=True)
    content, calls = "", {}
    async for chunk in await client.chat.completions.create(
        model=MODEL, messages=messages, tools=CHAT_TOOLS, stream=True
    ):
        delta = chunk.choices[0].delta if chunk.choices else None
        content += (delta.content or "") if delta else ""
        for part in (delta.tool_calls or []) if delta else []:
            call = calls.setdefault(part.index, {"type": "function", "function": {}})
            call["id"] = part.id or call.get("id")
            function = call["function"]
            if part.function and part.function.name:
                function["name"] = part.function.name
            if part.function and part.function.arguments:
                function["arguments"] = function.get("arguments", "") + part.function.arguments
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return message


async def responses_loop(client: AsyncOpenAI, task: str, *, stream: bool) -> int:
    items: list[Any] = [{"role": "user", "content": task}]
    for calls in range(1, 10):
        kwargs: dict[str, Any] = {"model": MODEL, "input": items, "instructions": SYSTEM}
        if stream:
            async with client.responses.stream(**kwargs, tools=RESPONSES_TOOLS) as events:
                async for _ in events:
                    pass
                response = await events.get_final_response()
        else:
            response = await client.responses.create(**kwargs, tools=RESPONSES_TOOLS)
        items += [item.model_dump(exclude_none=True) for item in response.output]
        function_calls = [item for item in response.output if item.type == "function_call"]
        if not function_calls:
            return calls
        for call in function_calls:
            output = await run_tool(call.name, call.arguments)
            items.append(
                {"type": "function_call_output", "call_id": call.call_id, "output": output}
            )
    raise AssertionError("the tool loop did not end")


LOOPS = {
    "chat": lambda c, t: chat_loop(c, t, stream=False),
    "chat-stream": lambda c, t: chat_loop(c, t, stream=True),
    "responses": lambda c, t: responses_loop(c, t, stream=False),
    "responses-stream": lambda c, t: responses_loop(c, t, stream=True),
}
# The embedded engine allows 1 + crc32(first user message) % 4 tool rounds (engine/replies.py):
# three for this task, so four calls.
TASK = "task D: fix lint"


@pytest.mark.parametrize("api", list(LOOPS))
async def test_tool_loop_is_one_program_with_its_agent_and_pauses(stack: Stack, api: str) -> None:
    async with AsyncOpenAI(base_url=stack.base_url, api_key="unused", max_retries=0) as client:
        calls = await LOOPS[api](client, TASK)
    assert calls == 4
    program = await stack.only_program()
    assert program["program_id"].startswith("anon-")  # found by prefix continuation alone
    assert_tool_loop(program, calls, {"read_file"})
    for pause in program["tool_pauses"]:
        assert pause["duration_s"] >= TOOL_S * 0.9
    agent = instructions_agent("/v1/chat/completions", {"instructions": SYSTEM})
    assert program["agents"] == [agent]
    assert {node["agent"] for node in call_nodes(program)} == {agent}
    assert program["cached_tokens"] > 0


async def test_concurrent_programs_stay_apart(stack: Stack) -> None:
    async with AsyncOpenAI(base_url=stack.base_url, api_key="unused", max_retries=0) as client:
        counts = await asyncio.gather(
            chat_loop(client, "task A: rename the module", stream=False),
            chat_loop(client, "task B: add a flag", stream=True),
            responses_loop(client, "task C: write docs", stream=False),
            responses_loop(client, "task D: fix lint", stream=True),
        )
    programs = await stack.settled()
    assert sorted(p["calls"] for p in programs) == sorted(counts)
    assert all(len(p["tool_pauses"]) == p["calls"] - 1 for p in programs)


async def test_previous_response_id_chain_is_one_program(stack: Stack) -> None:
    """Server-side state: each call sends only the tool results and the previous id."""
    async with AsyncOpenAI(base_url=stack.base_url, api_key="unused", max_retries=0) as client:
        kwargs: dict[str, Any] = {"model": MODEL, "tools": RESPONSES_TOOLS, "instructions": SYSTEM}
        response = await client.responses.create(input=TASK, **kwargs)
        calls = 1
        while calls_made := [i for i in response.output if i.type == "function_call"]:
            outputs = [
                {
                    "type": "function_call_output",
                    "call_id": c.call_id,
                    "output": await run_tool(c.name, c.arguments),
                }
                for c in calls_made
            ]
            response = await client.responses.create(
                input=outputs, previous_response_id=response.id, **kwargs
            )
            calls += 1
    assert calls == 4
    program = await stack.only_program()
    assert_tool_loop(program, calls, {"read_file"})
    assert program["cached_tokens"] > 0
