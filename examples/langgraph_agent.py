"""A LangGraph ReAct agent on ChatOpenAI, its thread id carried to kvbaton as the program id.

    python examples/langgraph_agent.py                     # embedded engine + proxy, started here
    python examples/langgraph_agent.py --base-url http://127.0.0.1:8000/v1   # a running proxy
    KVBATON_BASE_URL=http://127.0.0.1:8000/v1 python examples/langgraph_agent.py

A trip-planning agent (``langchain.agents.create_agent``, LangGraph's ReAct agent) with three
tools and a checkpointer answers two questions on one thread. ``ThreadAsProgram``, a
ten-line agent middleware, sends the LangGraph thread id as ``x-kvbaton-program-id`` so
that the thread is one program in the proxy's view (without it the proxy still keeps each
thread whole by prefix continuation, under a generated id). The proxy names the agent after
its system prompt and sees each tool run as a pause; its view is printed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from typing import Any

os.environ.setdefault("LANGSMITH_TRACING", "false")  # nothing leaves the machine

from _proxy import program_view, proxy_arguments, proxy_for
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, ModelRequest
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.config import get_config

SYSTEM = "You plan trips. Check the weather and trains before you answer."
QUESTIONS = ["Plan a day trip from Zurich to Lucerne.", "And what if it rains?"]


class ThreadAsProgram(AgentMiddleware):  # type: ignore[type-arg]
    """Send the LangGraph thread id to kvbaton as the program id."""

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


@tool
async def weather(city: str) -> str:
    """Today's weather in a city."""
    await asyncio.sleep(0.2)  # a weather service
    return json.dumps({"city": city, "sky": "showers", "high_c": 14})


@tool
async def trains(origin: str, destination: str) -> str:
    """Train departures between two cities."""
    await asyncio.sleep(0.3)  # a timetable service
    return json.dumps({"from": origin, "to": destination, "departures": ["08:05", "09:05"]})


@tool
async def museums(city: str) -> str:
    """Indoor sights in a city."""
    await asyncio.sleep(0.1)
    return json.dumps({"city": city, "museums": ["Transport Museum", "Rosengart"]})


async def plan(base_url: str, model: str, api_key: str, thread: str) -> None:
    llm = ChatOpenAI(model=model, base_url=base_url, api_key=api_key)
    agent = create_agent(
        llm,
        [weather, trains, museums],
        system_prompt=SYSTEM,
        middleware=[ThreadAsProgram()],
        checkpointer=InMemorySaver(),
    )
    config = {"configurable": {"thread_id": thread}}
    for question in QUESTIONS:
        state = await agent.ainvoke({"messages": [("user", question)]}, config)
        tools = [m.name for m in state["messages"] if m.type == "tool"]
        print(f"> {question}\n  tools so far: {', '.join(tools)}")
        print(f"  {str(state['messages'][-1].content)[:70]}...")


def show_program(view: dict[str, Any] | None) -> None:
    if view is None:
        return
    print(
        f"proxy view: program {view['program_id']}, {view['calls']} calls, agents "
        f"{', '.join(view['agents'])}, {len(view['tool_pauses'])} tool pauses, cached "
        f"{view['cached_tokens']}/{view['prompt_tokens']} prompt tokens"
    )
    for pause in view["tool_pauses"]:
        print(f"  tool pause: {', '.join(pause['tools'])} for {pause['duration_s']:.2f} s")


async def run(args: argparse.Namespace) -> int:
    async with proxy_for(args) as base_url:
        print(f"kvbaton proxy: {base_url}")
        thread = args.thread or f"trip-{uuid.uuid4().hex[:8]}"
        started = time.monotonic()
        await plan(base_url, args.model, args.api_key, thread)
        print(f"done in {time.monotonic() - started:.2f} s")
        await asyncio.sleep(0.1)  # the proxy accounts a reply just after its last byte
        show_program(await asyncio.to_thread(program_view, base_url, f"langgraph:{thread}"))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    proxy_arguments(parser)
    parser.add_argument("--thread", help="the LangGraph thread id (default: a new one)")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
