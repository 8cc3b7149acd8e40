"""LiteLLM's Python SDK pointed at the proxy (an ``openai/`` model with ``api_base``).

What LiteLLM sends (checked against 1.110): its ``litellm_session_id``, ``litellm_trace_id``
and ``metadata`` arguments stay in LiteLLM's own logging and never reach the server, so a
plain call carries no session; the proxy keeps each tool loop whole by prefix continuation.
A session id reaches the proxy when it is sent as LiteLLM's gateway header,
``x-litellm-session-id``, through ``extra_headers``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import litellm
import pytest

from kvbaton.middleware.protocol.agents import instructions_agent

from .conftest import MODEL, Stack, assert_tool_loop

SYSTEM = "You are a shell agent."
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "run_shell",
            "description": "Run a shell command",
            "parameters": {
                "type": "object",
                "properties": {"command": {"type": "string"}},
                "required": ["command"],
            },
        },
    }
]
TOOL_S = 0.05
# LiteLLM's own types trip a pydantic warning when it first builds them (not ours to fix).
pytestmark = pytest.mark.filterwarnings("ignore:.*using the `ReadOnly` qualifier:UserWarning")


async def tool_loop(stack: Stack, task: str, **kwargs: Any) -> int:
    messages: list[Any] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": task}]
    for calls in range(1, 10):
        reply = await litellm.acompletion(
            model=f"openai/{MODEL}",
            api_base=stack.base_url,
            api_key="unused",
            messages=messages,
            tools=TOOLS,
            **kwargs,
        )
        if kwargs.get("stream"):
            reply = litellm.stream_chunk_builder([chunk async for chunk in reply])
        message = reply.choices[0].message
        tool_calls = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.function.name, "arguments": call.function.arguments},
            }
            for call in message.tool_calls or []
        ]
        messages.append({"role": "assistant", "content": message.content, "tool_calls": tool_calls})
        if not tool_calls:
            return calls
        for call in tool_calls:
            await asyncio.sleep(TOOL_S)
            command = json.loads(call["function"]["arguments"])["command"]
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": f"$ {command}"})
    raise AssertionError("the tool loop did not end")


@pytest.mark.parametrize("stream", [False, True])
async def test_plain_calls_are_one_program_by_continuation(stack: Stack, stream: bool) -> None:
    calls = await tool_loop(
        stack, "task D: fix lint", stream=stream, litellm_session_id="kept-by-litellm"
    )
    assert calls == 4  # three tool rounds for this task (engine/replies.py)
    program = await stack.only_program()
    assert program["program_id"].startswith("anon-")  # the session id never left LiteLLM
    assert_tool_loop(program, calls, {"run_shell"})
    assert program["agents"] == [instructions_agent("", {"instructions": SYSTEM})]


async def test_session_header_names_the_program(stack: Stack) -> None:
    headers = {"x-litellm-session-id": "s-7"}
    calls = await tool_loop(stack, "task C: write docs", extra_headers=headers)
    program = await stack.only_program()
    assert program["program_id"] == "litellm:s-7"
    assert_tool_loop(program, calls, {"run_shell"})
