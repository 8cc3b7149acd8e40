"""The tracing UI over HTTP, and its drawing functions fed a program view from a live proxy."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.service.conftest import Stack, start_stack, tool_loop

ROOT = Path(__file__).resolve().parents[2]
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")


async def test_the_ui_is_served_from_the_package(stack: Stack) -> None:
    async with stack.http.get(f"{stack.proxy}/kvbaton/ui", allow_redirects=False) as r:
        assert r.status == 302 and r.headers["Location"] == "/kvbaton/ui/"
    async with stack.http.get(f"{stack.proxy}/kvbaton/ui/") as r:
        assert r.status == 200 and r.content_type == "text/html"
        assert '<script type="module" src="app.js">' in await r.text()
    for name, kind in [("app.js", "text/javascript"), ("trace.js", "text/javascript")]:
        async with stack.http.get(f"{stack.proxy}/kvbaton/ui/{name}") as r:
            assert r.status == 200 and r.content_type == kind
            assert r.headers["Cache-Control"] == "no-cache"
    async with stack.http.get(f"{stack.proxy}/kvbaton/ui/style.css") as r:
        assert r.status == 200 and r.content_type == "text/css"
    async with stack.http.get(f"{stack.proxy}/kvbaton/ui/../app.py") as r:
        assert r.status == 404
    async with stack.http.get(f"{stack.proxy}/kvbaton/ui/secrets.txt") as r:
        assert r.status == 404
        body = await r.json()
        assert body["error"]["type"] == "not_found_error"


async def tool_loop_view(stack: Stack) -> dict[str, Any]:
    """A tool loop's program view (tool pauses of 0.1 s)."""
    await tool_loop(stack.client, rounds=4, tool_s=0.1)
    (program_id,) = await stack.programs()
    return await stack.program(program_id)


async def test_program_views_carry_the_times_the_timeline_draws(stack: Stack) -> None:
    view = await tool_loop_view(stack)
    assert view["now"] >= view["arrival"]
    nodes = view["graph"]["nodes"]
    calls = [n for n in nodes if n["kind"] == "call"]
    tools = [n for n in nodes if n["kind"] == "tool"]
    assert calls and tools, nodes
    for n in calls:
        assert view["arrival"] <= n["queued_at"] <= n["started_at"] <= n["finished_at"]
    for t in tools:
        assert t["started_at"] >= view["arrival"] and t["duration_s"] >= 0.1


@needs_node
async def test_the_timeline_of_a_live_program(stack: Stack, tmp_path: Path) -> None:
    view = await tool_loop_view(stack)
    (tmp_path / "view.json").write_text(json.dumps(view))
    script = tmp_path / "draw.mjs"
    trace_js = (ROOT / "middleware/service/ui/trace.js").as_uri()
    script.write_text(
        f'import {{ timeline, layers }} from "{trace_js}";\n'
        'import { readFileSync } from "node:fs";\n'
        "const view = JSON.parse(readFileSync(process.argv[2], 'utf8'));\n"
        "const t = timeline(view, view.now);\n"
        "const l = layers(view.graph);\n"
        "console.log(JSON.stringify({ t, rows: l.rows }));\n"
    )
    assert NODE is not None
    out = subprocess.run(
        [NODE, str(script), str(tmp_path / "view.json")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    drawn = json.loads(out.stdout)
    kinds = {item["kind"] for item in drawn["t"]["items"]}
    assert {"queued", "done", "tool"} <= kinds
    assert all(0 <= i["start"] <= i["end"] <= drawn["t"]["end"] for i in drawn["t"]["items"])
    # A tool loop is a chain: one node per layer, call, tool, call, ...
    assert [len(row) for row in drawn["rows"]] == [1] * len(view["graph"]["nodes"])


@needs_node
def test_the_ui_unit_tests_pass_under_node() -> None:
    assert NODE is not None
    out = subprocess.run([NODE, "--test", "tests/ui/"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "# fail 0" in out.stdout, out.stdout


@needs_node
def test_scripts_parse_under_node() -> None:
    assert NODE is not None
    for name in ("app.js", "trace.js"):
        path = ROOT / "middleware/service/ui" / name
        out = subprocess.run([NODE, "--check", str(path)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr


JSDOM = ROOT / "tests/ui/node_modules/jsdom"


@needs_node
@pytest.mark.skipif(not JSDOM.exists(), reason="jsdom is not installed (scripts/test.sh)")
async def test_the_page_draws_a_live_program(stack: Stack) -> None:
    view = await tool_loop_view(stack)
    page = f"{stack.proxy}/kvbaton/ui/?program={view['program_id']}"
    app_js = str(ROOT / "middleware/service/ui/app.js")
    assert NODE is not None
    proc = await asyncio.create_subprocess_exec(
        NODE, str(ROOT / "tests/ui/dom.mjs"), page, app_js,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    shown = json.loads(out)
    assert shown["error"] == "" and shown["policy"] == "policy program-fcfs"
    (row,) = shown["rows"]
    assert row[0] == view["program_id"] and row[2] == str(view["calls"])
    assert not shown["detailHidden"] and shown["title"].startswith(view["program_id"])
    calls = view["calls"]
    assert calls >= 2, "the embedded engine should ask for at least one tool"
    # Per call a queued bar and a done bar; per pause a tool bar.
    assert shown["bars"].count("done") == calls and shown["bars"].count("tool") == calls - 1
    assert shown["lanes"][:2] == [view["agents"][0], "tools"]
    assert shown["graphNodes"] == len(view["graph"]["nodes"])
    assert shown["graphEdges"] == len(view["graph"]["edges"])
    assert shown["outlook"].startswith("No prediction yet")


async def test_program_views_show_the_admission_pool_under_kvbaton() -> None:
    async with start_stack(policy="kvbaton") as s:
        await s.client.chat.completions.create(
            model="kvbaton-tiny",
            messages=[{"role": "user", "content": "hello"}],
            max_tokens=8,
            extra_headers={"x-kvbaton-program-id": "p1"},
        )
        async with s.http.get(f"{s.proxy}/kvbaton/v1/programs") as r:
            listing = await r.json()
        pool = listing["stats"]["admission"]
        assert pool["active"] == 1 and pool["parked"] == 0
        (program,) = listing["data"]
        assert program["admission"] == "active"
        assert 0 < program["footprint_tokens"] == pool["used_tokens"] <= pool["capacity_tokens"]
        assert (await s.program("p1"))["admission"] == "active"
    async with start_stack() as s:  # program-fcfs admits no programs
        assert (await s.programs()) == {}
        async with s.http.get(f"{s.proxy}/kvbaton/v1/programs") as r:
            assert (await r.json())["stats"]["admission"] is None
