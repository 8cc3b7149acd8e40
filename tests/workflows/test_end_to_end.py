"""The SDK with the real OpenAI client against the real proxy on the embedded engine.

Each test runs a workflow whose agents make LLM calls (tool loops driven by the engine's
replies) and reads the proxy's program view: the program, its workflow, agents, steps and
their edges, and its tool pauses.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from openai import AsyncOpenAI, OpenAI

import kvbaton.workflows as kw

from .conftest import Live

MODEL = "kvbaton-tiny"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name} in the sandbox",
            "parameters": {
                "type": "object",
                "properties": {"arg": {"type": "string", "enum": ["a", "b"]}},
                "required": ["arg"],
            },
        },
    }
    for name in ("grep", "test")
]


@pytest.fixture(autouse=True)
def no_configured_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KVBATON_URL", raising=False)
    kw.configure()


@pytest.fixture
def client(live: Live) -> Iterator[OpenAI]:
    with kw.wrap(OpenAI(base_url=f"{live.proxy}/v1", api_key="t", max_retries=0)) as c:
        yield c


@kw.tool("grep")
def grep(arg: str) -> str:
    return f"3 matches for {arg}"


@kw.tool("test")
def run_tests(arg: str) -> str:
    return f"ok: {arg}"


RUN = {"grep": grep, "test": run_tests}


def tool_loop(client: OpenAI, task: str, *, stream: bool) -> list[str]:
    """Call the model until it answers; run every tool it asks for. Returns the tools run."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": task}]
    ran: list[str] = []
    for _ in range(8):
        message = _stream(client, messages) if stream else _create(client, messages)
        messages.append(message)
        if not message.get("tool_calls"):
            return ran
        for call in message["tool_calls"]:
            name = call["function"]["name"]
            ran.append(name)
            output = RUN[name](**json.loads(call["function"]["arguments"]))
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": output})
    raise AssertionError("the tool loop did not end")


def _create(client: OpenAI, messages: list[dict[str, Any]]) -> dict[str, Any]:
    reply = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)  # type: ignore[arg-type]
    return reply.choices[0].message.model_dump(exclude_none=True)


def _stream(client: OpenAI, messages: list[dict[str, Any]]) -> dict[str, Any]:
    content, calls = "", {}  # type: ignore[var-annotated]
    stream = client.chat.completions.create(
        model=MODEL, messages=messages, tools=TOOLS, stream=True
    )  # type: ignore[call-overload]
    for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        content += delta.content or ""
        for tc in delta.tool_calls or []:
            entry = calls.setdefault(
                tc.index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
            )
            entry["id"] = tc.id or entry["id"]
            if tc.function is not None:
                entry["function"]["name"] += tc.function.name or ""
                entry["function"]["arguments"] += tc.function.arguments or ""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return message


@kw.agent("coder", next=["reviewer"], tools=["grep", "test"])
def coder(client: OpenAI, task: str, stream: bool) -> list[str]:
    return tool_loop(client, task, stream=stream)


@kw.agent("reviewer", last=True)
def reviewer(client: OpenAI, stream: bool) -> list[str]:
    with kw.last_step():
        return tool_loop(client, "review the change", stream=stream)


@kw.workflow("e2e-coding", entry="coder")
def coding(client: OpenAI, task: str, stream: bool) -> tuple[kw.ProgramInfo, list[list[str]]]:
    ran = [coder(client, task, stream), reviewer(client, stream)]
    info = kw.current_program()
    assert info is not None
    return info, ran


def steps_of(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["step"]: n for n in view["graph"]["nodes"] if n["kind"] == "call"}


def step_edges(view: dict[str, Any]) -> set[tuple[str, str]]:
    """Call → call edges by step, through tool-pause nodes."""
    nodes = {n["id"]: n for n in view["graph"]["nodes"]}
    after: dict[str, list[str]] = {}
    for e in view["graph"]["edges"]:
        after.setdefault(e["source"], []).append(e["target"])

    def calls_after(node: str) -> list[str]:
        found = []
        for target in after.get(node, []):
            found += [target] if nodes[target]["kind"] == "call" else calls_after(target)
        return found

    return {
        (n["step"], nodes[t]["step"])
        for n in nodes.values()
        if n["kind"] == "call"
        for t in calls_after(n["id"])
    }


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_sync_client_tool_loop(live: Live, client: OpenAI, stream: bool) -> None:
    info, (by_coder, by_reviewer) = coding(client, "fix the failing test in parser.py", stream)
    view = live.program(info.program_id)
    assert view["workflow"] == "e2e-coding"
    assert view["agents"] == ["coder", "reviewer"]
    # each tool loop: one call per tool round, plus the answer
    assert view["calls"] == info.steps == len(by_coder) + len(by_reviewer) + 2
    steps = steps_of(view)
    order = sorted(steps, key=int)
    assert order == [str(i) for i in range(1, info.steps + 1)]
    expected = ["coder"] * (len(by_coder) + 1) + ["reviewer"] * (len(by_reviewer) + 1)
    assert [steps[s]["agent"] for s in order] == expected
    assert step_edges(view) == {(str(i), str(i + 1)) for i in range(1, info.steps)}
    ran = by_coder + by_reviewer
    assert by_coder  # the engine asked for tools at least once
    assert [p["tools"] for p in view["tool_pauses"]] == [[name] for name in ran]
    assert [r.name for r in info.tool_runs] == ran
    assert view["status"] == "done"  # the reviewer's calls were marked as the last step


@kw.tool("search")
async def search(topic: str) -> str:
    await asyncio.sleep(0.02)
    return f"notes on {topic}"


@kw.agent("planner", next=["researcher"])
async def planner(client: AsyncOpenAI, task: str, stream: bool) -> list[str]:
    await _ask(client, f"plan: {task}", stream)
    return ["cache", "queue"]


@kw.agent("researcher", next=["writer"], tools=["search"], fan_out=2)
async def researcher(client: AsyncOpenAI, topic: str, stream: bool) -> str:
    notes = await search(topic)
    return await _ask(client, f"summarise {notes}", stream)


@kw.agent("writer", last=True)
async def writer(client: AsyncOpenAI, parts: list[str], stream: bool) -> str:
    with kw.last_step():
        return await _ask(client, " ".join(parts), stream)


@kw.workflow("e2e-research", entry="planner")
async def research(client: AsyncOpenAI, task: str, stream: bool) -> kw.ProgramInfo:
    topics = await planner(client, task, stream)
    parts = await asyncio.gather(*(researcher(client, t, stream) for t in topics))
    await writer(client, list(parts), stream)
    info = kw.current_program()
    assert info is not None
    return info


async def _ask(client: AsyncOpenAI, prompt: str, stream: bool) -> str:
    messages = [{"role": "user", "content": prompt}]
    if not stream:
        reply = await client.chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
        return reply.choices[0].message.content or ""
    text = ""
    async for chunk in await client.chat.completions.create(
        model=MODEL, messages=messages, stream=True
    ):  # type: ignore[arg-type]
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
    return text


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_async_client_fork_and_join(live: Live, stream: bool) -> None:
    async with kw.wrap(
        AsyncOpenAI(base_url=f"{live.proxy}/v1", api_key="t", max_retries=0)
    ) as client:
        info = await research(client, "why programs beat requests", stream)
    view = await asyncio.to_thread(live.program, info.program_id)
    assert view["workflow"] == "e2e-research"
    assert view["agents"] == ["planner", "researcher", "writer"]
    assert view["calls"] == info.steps == 4
    steps = steps_of(view)
    assert [steps[s]["agent"] for s in "1234"] == ["planner", "researcher", "researcher", "writer"]
    edges = step_edges(view)
    assert {("1", "2"), ("1", "3")} <= edges  # the fork: both researchers follow the planner
    assert len(edges & {("2", "4"), ("3", "4")}) == 1  # the join: the writer follows one
    assert view["status"] == "done"


@kw.agent("librarian")
async def librarian(client: AsyncOpenAI, topics: list[str]) -> None:
    for topic in topics:
        notes = await search(topic)
        await _ask(client, f"file {notes}", False)


@kw.workflow("e2e-library", agents=["librarian"])
async def library(client: AsyncOpenAI) -> kw.ProgramInfo:
    await _ask(client, "what should we look up?", False)
    await librarian(client, ["cache", "queue"])
    info = kw.current_program()
    assert info is not None
    return info


async def test_sdk_tools_name_the_pauses(live: Live) -> None:
    """Tools that are not LLM tool calls reach the proxy through ``x-kvbaton-tool``."""
    async with kw.wrap(
        AsyncOpenAI(base_url=f"{live.proxy}/v1", api_key="t", max_retries=0)
    ) as client:
        info = await library(client)
    view = await asyncio.to_thread(live.program, info.program_id)
    assert view["calls"] == 3
    assert [p["tools"] for p in view["tool_pauses"]] == [["search"], ["search"]]
    sdk_s = [r.duration_s for r in info.tool_runs]
    # the proxy's pause spans the tool run plus the client's own time around it
    assert all(p["duration_s"] >= s for p, s in zip(view["tool_pauses"], sdk_s, strict=True))
    # pauses sit between the calls they separate: 1 -> pause -> 2 -> pause -> 3
    assert step_edges(view) == {("1", "2"), ("2", "3")}


def test_the_declared_graph_reaches_the_proxy(live: Live, client: OpenAI) -> None:
    coding(client, "declare", False)
    status, body = live.get("/kvbaton/v1/workflows/e2e-coding")
    assert status == 200, body
    assert (body["declared"], body["entry"]) == (True, "coder")
    agents = {a["name"]: a for a in body["agents"]}
    assert set(agents) == {"coder", "reviewer"}
    assert agents["coder"]["tools"] == ["grep", "test"]
    assert "reviewer" in [n["agent"] for n in agents["coder"]["next"]]
    assert (agents["reviewer"]["last"], agents["coder"]["last"]) == (True, False)


def test_wrap_adds_headers_only_inside_a_workflow(client: OpenAI) -> None:
    def sent_headers() -> dict[str, str]:
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}]
        )
        return {
            k: v for k, v in raw.http_response.request.headers.items() if k.startswith("x-kvbaton-")
        }

    assert sent_headers() == {}
    inside = kw.workflow("e2e-raw", agents=())(sent_headers)()
    assert inside["x-kvbaton-workflow"] == "e2e-raw" and inside["x-kvbaton-step"] == "1"
    assert inside["x-kvbaton-program-id"].startswith("e2e-raw-")


def test_wrap_twice_and_copies_share_one_hook(live: Live, client: OpenAI) -> None:
    assert kw.wrap(client) is client
    hooks = client._client.event_hooks["request"]
    assert sum(getattr(h, "__kvbaton_hook__", False) for h in hooks) == 1
    copy = client.with_options(timeout=30)
    info, _ = coding(copy, "a copy of the client", False)
    assert live.program(info.program_id)["agents"] == ["coder", "reviewer"]


def test_wrap_refuses_other_objects() -> None:
    with pytest.raises(TypeError, match=r"wrap\(\) takes an openai.OpenAI.*headers\(\)"):
        kw.wrap(object())


async def test_headers_for_any_other_client(live: Live) -> None:
    """Without ``wrap``: a plain aiohttp request carrying ``headers()``."""
    import aiohttp

    @kw.agent("raw-asker")
    async def ask(http: aiohttp.ClientSession, n: int) -> None:
        body = {"model": MODEL, "messages": [{"role": "user", "content": f"question {n}"}]}
        async with http.post(
            f"{live.proxy}/v1/chat/completions", json=body, headers=kw.headers()
        ) as r:
            assert r.status == 200, await r.text()

    @kw.workflow("e2e-headers", agents=["raw-asker"])
    async def flow() -> kw.ProgramInfo:
        async with aiohttp.ClientSession() as http:
            await ask(http, 1)
            await ask(http, 2)
        info = kw.current_program()
        assert info is not None
        return info

    info = await flow()
    view = await asyncio.to_thread(live.program, info.program_id)
    assert (view["workflow"], view["agents"], view["calls"]) == ("e2e-headers", ["raw-asker"], 2)
    assert step_edges(view) == {("1", "2")}


async def test_the_program_ends_when_the_workflow_returns(live: Live) -> None:
    seen: dict[str, str] = {}

    @kw.agent("ender")
    async def one_call(client: AsyncOpenAI) -> None:
        await _ask(client, "only call", False)

    @kw.workflow("e2e-end", agents=[one_call])
    async def flow(client: AsyncOpenAI) -> str:
        await one_call(client)
        info = kw.current_program()
        assert info is not None
        seen["before"] = (await asyncio.to_thread(live.program, info.program_id))["status"]
        return info.program_id

    async with kw.wrap(
        AsyncOpenAI(base_url=f"{live.proxy}/v1", api_key="t", max_retries=0)
    ) as client:
        program_id = await flow(client)
    after = await asyncio.to_thread(live.program, program_id)
    assert (seen["before"], after["status"]) == ("idle", "done")  # no last_step(): the end said so


def test_wrap_takes_a_plain_httpx_client(live: Live) -> None:
    import httpx

    @kw.agent("httpx-caller")
    def call(http: httpx.Client) -> None:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "plain httpx"}]}
        http.post("/v1/chat/completions", json=body).raise_for_status()

    @kw.workflow("e2e-httpx", agents=[call])
    def flow(http: httpx.Client) -> str:
        call(http)
        info = kw.current_program()
        assert info is not None
        return info.program_id

    with kw.wrap(httpx.Client(base_url=live.proxy, timeout=30)) as http:
        program_id = flow(http)
    view = live.program(program_id)
    assert (view["agents"], view["calls"], view["status"]) == (["httpx-caller"], 1, "done")
    status, graph = live.get("/kvbaton/v1/workflows/e2e-httpx")  # sent to the client's base URL
    assert status == 200 and [a["name"] for a in graph["agents"]] == ["httpx-caller"]
