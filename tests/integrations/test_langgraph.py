"""LangGraph / LangChain: a ReAct agent (``langchain.agents.create_agent``, the successor of
``langgraph.prebuilt.create_react_agent``) on ``ChatOpenAI`` pointed at the proxy, with
tools, a checkpointer, and the LangGraph thread id carried to the proxy as the program id.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, ModelRequest
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.config import get_config

from kvbaton.middleware.protocol.agents import instructions_agent

from .conftest import MODEL, Stack, assert_tool_loop, call_nodes

SYSTEM = "You are a research assistant. Search, then answer."
TOOL_S = 0.05


@tool
def search(query: str) -> str:
    """Search the web."""
    time.sleep(TOOL_S)
    return f"3 results for {query!r}"


@tool
def fetch(url: str) -> str:
    """Fetch a page."""
    time.sleep(TOOL_S)
    return f"<html>{url}</html>"


class ThreadAsProgram(AgentMiddleware):  # type: ignore[type-arg]
    """Send the LangGraph thread id as kvbaton's program id (the documented helper)."""

    def wrap_model_call(self, request: ModelRequest, handler: Any) -> Any:
        return handler(_with_thread(request))

    async def awrap_model_call(self, request: ModelRequest, handler: Any) -> Any:
        return await handler(_with_thread(request))


def _with_thread(request: ModelRequest) -> ModelRequest:
    thread = get_config().get("configurable", {}).get("thread_id")
    if thread is None:
        return request
    headers = {**request.model_settings.get("extra_headers", {})}
    headers["x-kvbaton-program-id"] = f"langgraph:{thread}"
    return request.override(model_settings={**request.model_settings, "extra_headers": headers})


def build(stack: Stack, middleware: list[Any]) -> Any:
    model = ChatOpenAI(model=MODEL, base_url=stack.base_url, api_key="unused", max_retries=0)
    return create_agent(
        model,
        [search, fetch],
        system_prompt=SYSTEM,
        middleware=middleware,
        checkpointer=InMemorySaver(),
    )


def llm_calls(state: dict[str, Any]) -> int:
    return sum(1 for m in state["messages"] if m.type == "ai")


async def test_thread_id_is_the_program(stack: Stack) -> None:
    agent = build(stack, [ThreadAsProgram()])
    config = {"configurable": {"thread_id": "t-42"}}
    # 1 + crc32(first user message) % 4 tool rounds (engine/replies.py): three here.
    first = await agent.ainvoke({"messages": [("user", "task D: fix lint")]}, config)
    calls_1 = llm_calls(first)
    assert calls_1 == 4
    # The second turn runs synchronously (in a thread, the servers run on this loop).
    turn = {"messages": [("user", "and now summarise")]}
    second = await asyncio.to_thread(agent.invoke, turn, config)
    calls = llm_calls(second)
    assert calls > calls_1  # the checkpointer kept the first turn
    program = await stack.only_program()
    assert program["program_id"] == "langgraph:t-42"
    assert_tool_loop(program, calls, {"search", "fetch"}, turns=2)
    assert all(p["duration_s"] >= TOOL_S * 0.9 for p in program["tool_pauses"][: calls_1 - 1])
    assert program["agents"] == [instructions_agent("", {"instructions": SYSTEM})]


async def test_threads_are_programs_even_without_the_helper(stack: Stack) -> None:
    """Without the middleware, prefix continuation still keeps each thread whole."""
    agent = build(stack, [])
    for thread in ("a", "b"):
        config = {"configurable": {"thread_id": thread}}
        await agent.ainvoke({"messages": [("user", f"task {thread}: look it up")]}, config)
    programs = await stack.settled()
    assert len(programs) == 2
    for program in programs:
        assert program["program_id"].startswith("anon-")
        detail = await stack.program(program["program_id"])
        assert_tool_loop(detail, program["calls"], {"search", "fetch"})
        assert len(call_nodes(detail)) >= 2
