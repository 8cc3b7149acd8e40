"""Live replay against real servers on loopback: the embedded engine, the proxy, fakes."""

from __future__ import annotations

import itertools
import json
import re
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from kvbaton.middleware.bench.records import ProgramRecord
from kvbaton.middleware.bench.replay import _returned, _tool_call_body, replay_trace
from kvbaton.middleware.bench.replay_text import WORDS, call_text, system_text
from kvbaton.middleware.bench.trace import Program
from kvbaton.middleware.embedded.settings import EngineSettings
from kvbaton.middleware.engine import tokens
from kvbaton.middleware.launch import running_engine, running_proxy
from kvbaton.middleware.protocol.sse import StreamSummary
from kvbaton.middleware.settings import ProxySettings

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
Seen = list[tuple[dict[str, str], dict[str, Any]]]


def _program(pid: str, arrival: float, *calls: dict[str, Any]) -> Program:
    return Program.model_validate({"id": pid, "arrival": arrival, "calls": calls})


SYS_A = {"system": "sys-a", "system_tokens": 200}
TRACE = [
    _program(
        "chain",
        0.0,
        {"id": "c0", "agent": "coder", **SYS_A, "input_tokens": 60, "output_tokens": 8,
         "tool": "bash", "tool_s": 0.1},
        {"id": "c1", "agent": "coder", "after": ["c0"], "input_tokens": 30, "output_tokens": 6,
         "think_s": 0.05},
        {"id": "c2", "agent": "coder", "after": ["c1"], "input_tokens": 20, "output_tokens": 5},
    ),
    _program(
        "fork",
        0.05,
        {"id": "r", "agent": "planner", **SYS_A, "input_tokens": 40, "output_tokens": 6,
         "tool_s": 0.05},
        {"id": "a", "agent": "coder", "after": ["r"], "input_tokens": 25, "output_tokens": 7},
        {"id": "b", "agent": "reviewer", "after": ["r"], "context": "fresh", "system": "sys-b",
         "system_tokens": 80, "input_tokens": 30, "output_tokens": 3, "tool_s": 0.05},
        {"id": "j", "agent": "planner", "after": ["a", "b"], "input_tokens": 10,
         "output_tokens": 4},
    ),
    _program(
        "solo", 0.2, {"id": "s", "agent": "coder", **SYS_A, "input_tokens": 15, "output_tokens": 9}
    ),
    _program(
        "plain",
        0.1,
        {"id": "p0", "agent": "chat", "input_tokens": 12, "output_tokens": 5, "tool_s": 0.02},
        {"id": "p1", "agent": "chat", "after": ["p0"], "input_tokens": 12, "output_tokens": 5},
    ),
]  # fmt: skip


def _check_replay(trace: list[Program], records: list[ProgramRecord]) -> None:
    assert [r.program_id for r in records] == [p.id for p in trace]
    for program, record in zip(trace, records, strict=True):
        assert not record.failed, record
        assert record.arrival == program.arrival
        calls = {c.call_id: c for c in record.calls}
        assert [c.call_id for c in record.calls] == [c.id for c in program.calls]
        for call in program.calls:
            got = calls[call.id]
            assert got.ok and got.completion_tokens == call.output_tokens
            assert got.first_token_at is not None and got.finished_at is not None
            assert got.sent_at <= got.first_token_at <= got.finished_at
            assert got.sent_at >= program.arrival
            for parent in call.after:
                ready = calls[parent].finished_at + program_call(program, parent).tool_s
                assert got.sent_at >= ready + call.think_s - 1e-3
        assert record.finished_at == max(c.finished_at or 0 for c in record.calls)
    chain = {c.call_id: c for c in records[0].calls}
    assert chain["c1"].cached_tokens > 0 and chain["c2"].cached_tokens > chain["c1"].cached_tokens
    assert 0 <= chain["c1"].recomputed_tokens < chain["c0"].prompt_tokens // 4
    solo = records[2].calls[0]
    assert solo.cached_tokens >= 200  # the shared system prompt of "chain" and "fork"


def program_call(program: Program, call_id: str) -> Any:
    return next(c for c in program.calls if c.id == call_id)


async def test_replay_against_the_engine() -> None:
    done: list[str] = []
    async with running_engine(EngineSettings(port=0, time_scale=0.05)) as url:
        records = await replay_trace(
            url, TRACE, on_program_done=lambda r: done.append(r.program_id)
        )
    _check_replay(TRACE, records)
    assert sorted(done) == sorted(p.id for p in TRACE)


async def test_replay_through_the_proxy() -> None:
    async with running_engine(EngineSettings(port=0, time_scale=0.05)) as engine:
        settings = ProxySettings(port=0, backend=engine, policy="program-fcfs")
        async with running_proxy(settings) as (proxy, _):
            records = await replay_trace(proxy + "/v1", TRACE, model="kvbaton-tiny")
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"{proxy}/kvbaton/v1/programs") as response,
            ):
                listed = {p["program_id"]: p for p in (await response.json())["data"]}
    _check_replay(TRACE, records)
    assert {pid: p["calls"] for pid, p in listed.items()} == {p.id: len(p.calls) for p in TRACE}
    assert listed["fork"]["agents"] and listed["chain"]["status"] == "done"


async def test_rate_scale_halves_the_arrivals() -> None:
    trace = [
        _program("early", 0.0, {"id": "c", "agent": "a", "input_tokens": 5, "output_tokens": 2}),
        _program("late", 0.4, {"id": "c", "agent": "a", "input_tokens": 5, "output_tokens": 2}),
    ]
    async with running_engine(EngineSettings(port=0, time_scale=0.05)) as url:
        records = await replay_trace(url, trace, rate_scale=2.0)
    assert [r.arrival for r in records] == [0.0, 0.2]
    late = records[1].calls[0]
    assert 0.2 <= late.sent_at < 0.35


async def test_dead_endpoint_fails_programs_quickly() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done: list[ProgramRecord] = []
    start = time.monotonic()
    records = await replay_trace(f"http://127.0.0.1:{port}", TRACE, on_program_done=done.append)
    assert time.monotonic() - start < 2.0
    assert len(done) == len(TRACE) and all(r.failed for r in records)
    chain = records[0]
    assert [c.call_id for c in chain.calls] == ["c0"] and not chain.calls[0].ok  # c1 never sent


# -- a scripted endpoint: headers, refused extension fields, broken streams ---------------


def _sse(payload: Any) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def _fake_app(seen: Seen, break_step: str = "") -> web.Application:
    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        seen.append((dict(request.headers), body))
        if "min_tokens" in body:
            error = {"message": "min_tokens: Extra inputs are not permitted", "code": 400}
            return web.json_response({"error": error}, status=400)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for _ in range(body["max_tokens"]):
            await response.write(_sse({"choices": [{"index": 0, "delta": {"content": " w"}}]}))
        if request.headers.get("x-kvbaton-step") == break_step:
            return response  # cut off: no finish, no usage, no [DONE]
        finish = {"index": 0, "delta": {}, "finish_reason": "length"}
        await response.write(_sse({"choices": [finish]}))
        usage = {"prompt_tokens": 10, "completion_tokens": body["max_tokens"]}
        await response.write(_sse({"choices": [], "usage": usage}))
        await response.write(b"data: [DONE]\n\n")
        return response

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "fake-model"}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    return app


async def test_headers_and_a_refused_extension_field(aiohttp_server: ServerFactory) -> None:
    seen: Seen = []
    server = await aiohttp_server(_fake_app(seen))
    fork = TRACE[1]
    (record,) = await replay_trace(str(server.make_url("/")), [fork])
    assert not record.failed and record.calls[0].cached_tokens == 0
    # The first call is refused once, then min_tokens stays off for the rest of the replay.
    assert ["min_tokens" in body for _, body in seen] == [True] + [False] * 4
    sent = {h["x-kvbaton-step"]: (h, b) for h, b in seen[1:]}
    assert all(b["model"] == "fake-model" and b["ignore_eos"] for _, b in sent.values())
    assert {s for s, (h, _) in sent.items() if h.get("x-kvbaton-last-step") == "true"} == {"j"}
    assert sent["j"][0]["x-kvbaton-parent-step"] == "a"
    assert "x-kvbaton-parent-step" not in sent["r"][0]
    assert {h["x-kvbaton-program-id"] for h, _ in sent.values()} == {"fork"}
    assert sent["b"][0]["x-kvbaton-agent"] == "reviewer"
    assert sent["b"][1]["messages"][0]["content"] == system_text("sys-b", 80)
    # "j" continues "a": a's messages, a's reply, then j's own text.
    a_messages, j_messages = sent["a"][1]["messages"], sent["j"][1]["messages"]
    assert j_messages[: len(a_messages)] == a_messages
    assert j_messages[len(a_messages)] == {"role": "assistant", "content": " w" * 7}
    assert j_messages[-1] == {"role": "user", "content": call_text("fork", "j", 10)}


async def test_broken_stream_fails_the_program(aiohttp_server: ServerFactory) -> None:
    seen: Seen = []
    server = await aiohttp_server(_fake_app(seen, break_step="c1"))
    (record,) = await replay_trace(str(server.make_url("/")), [TRACE[0]], model="m")
    assert record.failed and record.finished_at is None
    assert [(c.call_id, c.ok) for c in record.calls] == [("c0", True), ("c1", False)]


def test_prompt_text_is_deterministic_and_one_token_per_word() -> None:
    text = system_text("sys-a", 500)
    assert text == system_text("sys-a", 500) and text != system_text("sys-b", 500)
    assert tokens.count(text) == 500 and tokens.count(call_text("p", "c", 123)) == 123
    assert call_text("p", "c", 50) != call_text("p", "d", 50) != call_text("q", "c", 50)
    assert call_text("p", "c", 50, seed=1) != call_text("p", "c", 50)
    assert all(w.isalpha() and w.islower() and len(w) <= 6 for w in WORDS)
    assert len(set(WORDS)) == len(WORDS) == 361
    assert system_text("empty", 0) == ""


@pytest.mark.parametrize("bad", [{"rate_scale": 0.0}, {"max_programs_in_flight": 0}])
async def test_bad_arguments(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        await replay_trace("http://127.0.0.1:9", TRACE, **bad)


async def test_max_programs_in_flight_runs_them_one_by_one() -> None:
    async with running_engine(EngineSettings(port=0, time_scale=0.05)) as url:
        records = await replay_trace(url, TRACE, max_programs_in_flight=1)
    spans = sorted((r.calls[0].sent_at, r.finished_at or 0.0) for r in records)
    assert all(not r.failed for r in records)
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(spans))


def test_a_forced_tool_call_body_names_the_tool_and_drops_exact_length() -> None:
    body = {"model": "m", "messages": [], "max_tokens": 80, "ignore_eos": True, "min_tokens": 80}
    forced = _tool_call_body(body, "run tests", 80)
    assert "ignore_eos" not in forced and "min_tokens" not in forced
    assert forced["tools"][0]["function"]["name"] == "run tests"
    regex = forced["structured_outputs"]["regex"]
    sample = (
        '<tool_call>\n{"name": "run tests", "arguments": {"input": "the of and"}}\n</tool_call>'
    )
    assert re.fullmatch(regex.replace("{24}", "{2}"), sample)  # 80 tokens: 25 words
    assert forced["max_tokens"] > 80


def test_a_tool_call_reply_comes_back_as_a_tool_message() -> None:
    summary = StreamSummary()
    summary.feed(
        b'data: {"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "t1", "function":'
        b' {"name": "bash", "arguments": "{}"}}]}, "finish_reason": "tool_calls"}]}\n\n'
    )
    summary.close()
    user = {"role": "user", "content": "out"}
    assistant, tool = _returned(summary, "out", user)
    assert assistant["tool_calls"][0]["id"] == "t1" and assistant["content"] is None
    assert tool == {"role": "tool", "tool_call_id": "t1", "content": "out"}
