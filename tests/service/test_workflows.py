"""The workflow API over HTTP, against the proxy in front of the embedded engine."""

from __future__ import annotations

from typing import Any

import pytest

from kvbaton.middleware.embedded.settings import EngineSettings
from tests.service.conftest import Stack, start_stack
from tests.service.test_retention import _holds, _settle, _turn

RESEARCH: dict[str, Any] = {
    "name": "research",
    "entry": "planner",
    "agents": [
        {"name": "planner", "next": ["researcher"], "tools": ["search"], "fan_out": 1},
        {"name": "researcher", "next": ["writer"], "expected_duration_s": 3.0},
        {"name": "writer", "last": True},
    ],
    "tools": [{"name": "search", "expected_duration_s": 2.0}],
}


async def _put(stack: Stack, name: str, body: Any) -> tuple[int, Any]:
    async with stack.http.put(f"{stack.proxy}/kvbaton/v1/workflows/{name}", json=body) as r:
        return r.status, await r.json()


async def _get(stack: Stack, path: str) -> tuple[int, Any]:
    async with stack.http.get(stack.proxy + path) as r:
        return r.status, await r.json()


async def _chat(stack: Stack, program: str, **headers: str) -> Any:
    return await stack.client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "hello " * 20}],
        max_tokens=8,
        extra_headers={"x-kvbaton-program-id": program, **headers},
    )


async def test_put_then_get_returns_the_merged_graph(stack: Stack) -> None:
    status, body = await _put(stack, "research", RESEARCH)
    assert status == 200, body
    assert body["name"] == "research" and body["declared"] and body["entry"] == "planner"
    planner = next(a for a in body["agents"] if a["name"] == "planner")
    assert planner["next"] == [{"agent": "researcher", "probability": 1.0, "samples": 0}]
    assert planner["tools"] == ["search"]
    # Calls of the workflow refine it: planner -> writer was not declared.
    for agent in ("planner", "writer"):
        await _chat(stack, "r1", **{"x-kvbaton-workflow": "research", "x-kvbaton-agent": agent})
    status, merged = await _get(stack, "/kvbaton/v1/workflows/research")
    assert status == 200
    planner = next(a for a in merged["agents"] if a["name"] == "planner")
    probabilities = {n["agent"]: n["probability"] for n in planner["next"]}
    assert probabilities == {"researcher": 0.5, "writer": 0.5}
    assert planner["learned"]["calls"] == 1 and planner["learned"]["service_s"]["count"] >= 1
    status, link = await _get(stack, "/kvbaton/v1/workflows/research?format=node-link")
    assert status == 200 and link["directed"]
    assert {"agent:planner", "agent:writer", "tool:search"} <= {n["id"] for n in link["nodes"]}
    edge = next(
        e for e in link["edges"] if (e["source"], e["target"]) == ("agent:planner", "agent:writer")
    )
    assert edge["count"] == 1 and edge["probability"] == 0.5
    status, listing = await _get(stack, "/kvbaton/v1/workflows")
    assert status == 200
    assert {"name": "research", "declared": True}.items() <= listing["data"][0].items()


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"agents": [{"name": "a", "next": ["ghost"]}]}, "ghost"),
        ({"agents": [{"name": "a", "tools": ["t"]}]}, "not in tools"),
        ({"name": "other", "agents": [{"name": "a"}]}, "does not match"),
        ({"agents": [{"name": "a"}, {"name": "a"}]}, "declared twice"),
        ({"agents": "planner"}, "agents"),
        ([1, 2], "body"),
    ],
)
async def test_invalid_graphs_get_an_openai_style_400(stack: Stack, body: Any, needle: str) -> None:
    status, error = await _put(stack, "w", body)
    assert status == 400
    assert error["error"]["type"] == "invalid_request_error"
    assert needle in error["error"]["message"]
    assert set(error["error"]) == {"message", "type", "param", "code"}


async def test_malformed_json_and_bad_format_are_400(stack: Stack) -> None:
    url = f"{stack.proxy}/kvbaton/v1/workflows/w"
    async with stack.http.put(url, data=b"{not json") as r:
        assert r.status == 400
        assert "not valid JSON" in (await r.json())["error"]["message"]
    await _put(stack, "w", {"agents": [{"name": "a"}]})
    status, error = await _get(stack, "/kvbaton/v1/workflows/w?format=dot")
    assert status == 400 and error["error"]["param"] == "format"


async def test_oversized_graph_is_413(stack: Stack) -> None:
    agents = [{"name": f"a{i}"} for i in range(10_000)]
    status, error = await _put(stack, "huge", {"agents": agents})
    assert status == 413
    assert error["error"]["code"] == "workflow_too_large"
    status, _ = await _get(stack, "/kvbaton/v1/workflows/huge")
    assert status == 404


async def test_unknown_workflow_and_program_are_404(stack: Stack) -> None:
    status, error = await _get(stack, "/kvbaton/v1/workflows/nope")
    assert status == 404 and error["error"]["type"] == "not_found_error"
    async with stack.http.post(f"{stack.proxy}/kvbaton/v1/programs/nope/end") as r:
        assert r.status == 404
        assert (await r.json())["error"]["param"] == "program_id"


async def test_program_view_carries_a_prediction(stack: Stack) -> None:
    headers = {"x-kvbaton-workflow": "loop", "x-kvbaton-agent": "coder"}
    for i in range(6):  # five finished programs make the per-agent tables answer
        await _chat(stack, f"done{i}", **headers)
        await _chat(stack, f"done{i}", **headers, **{"x-kvbaton-last-step": "true"})
    await _chat(stack, "live", **headers)
    view = await stack.program("live")
    prediction = view["prediction"]
    assert prediction["workflow"] == "loop" and prediction["agent"] == "coder"
    # Every program went on after its first call: the k-th call's table says so.
    assert [(n["agent"], n["probability"]) for n in prediction["next_agents"]] == [("coder", 1.0)]
    assert prediction["remaining_calls"]["mean"] == pytest.approx(1.0)
    assert prediction["remaining_calls"]["source"] == "agent+k"
    assert prediction["remaining_calls"]["samples"] == 6


async def test_tool_header_records_the_pause() -> None:
    async with start_stack() as stack:
        await _chat(stack, "t1")
        await _chat(stack, "t1", **{"x-kvbaton-tool": "pytest, git"})
        view = await stack.program("t1")
        (pause,) = view["tool_pauses"]
        assert pause["tools"] == ["pytest", "git"] and pause["duration_s"] >= 0
        tools = [n["tools"] for n in view["graph"]["nodes"] if n["kind"] == "tool"]
        assert tools == [["pytest", "git"]]


async def test_program_end_releases_its_pin() -> None:
    engine = EngineSettings(port=0, time_scale=0.05)
    async with start_stack(engine, policy="continuum", retention="static-ttl") as stack:
        messages: list[Any] = [{"role": "user", "content": "fix the bug " * 40}]
        first = await _turn(stack, messages, "p1", **{"x-kvbaton-workflow": "fix"})
        assert first.choices[0].message.tool_calls
        await _settle(stack)
        assert (await _holds(stack)).get("p1", 0) > 0
        async with stack.http.post(f"{stack.proxy}/kvbaton/v1/programs/p1/end") as r:
            assert r.status == 200
            assert await r.json() == {"program_id": "p1", "ended": True}
        await _settle(stack)
        assert "p1" not in await _holds(stack)
        view = await stack.program("p1")
        assert view["status"] == "done" and view["pinned_tokens"] == 0
        assert view["prediction"] is None
        status, graph = await _get(stack, "/kvbaton/v1/workflows/fix")
        assert status == 200 and graph["learned"]["programs"] == 1
