"""A coding agent: an LLM tool loop over shell-like tools in a scratch workspace.

    python examples/coding_agent.py                      # embedded engine + proxy, started here
    python examples/coding_agent.py --base-url http://127.0.0.1:8000/v1   # a running proxy
    KVBATON_BASE_URL=http://127.0.0.1:8000/v1 python examples/coding_agent.py

The `coder` agent offers the model four tools (list the workspace, read a file, run a Python
snippet, run the workspace's unit tests) and runs every tool call the model makes, for real,
until the model answers; the `reviewer` agent then makes the program's last call. The
workflow SDK tells the proxy which program, agent and step each call is; the proxy's view of
the program is printed at the end. The embedded engine's replies are synthetic (tool calls
built from the tools' schemas), so with it the loop is driven by those replies.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _proxy import program_view, proxy_arguments, proxy_root
from openai import OpenAI

import kvbaton.workflows as kw

SNIPPETS = ["print(sum(range(10)))", "import platform; print(platform.python_version())"]
FILES = {
    "calc.py": "def add(a, b):\n    return a + b\n",
    "test_calc.py": (
        "import unittest\nfrom calc import add\n\n\nclass T(unittest.TestCase):\n"
        "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n"
    ),
}


def _function(name: str, description: str, **properties: Any) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": list(properties)}
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": schema},
    }


TOOLS = [
    _function("list_files", "List the files of the workspace"),
    _function("read_file", "Read a file", path={"type": "string", "enum": sorted(FILES)}),
    _function("run_python", "Run a Python snippet", code={"type": "string", "enum": SNIPPETS}),
    _function("run_tests", "Run the workspace's unit tests"),
]


class Workspace:
    """The tools, each a real operation on a scratch directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for name, text in FILES.items():
            (root / name).write_text(text)

    @kw.tool("list_files")
    def list_files(self) -> str:
        return "\n".join(sorted(p.name for p in self.root.iterdir()))

    @kw.tool("read_file")
    def read_file(self, path: str) -> str:
        target = (self.root / path).resolve()
        if target.parent != self.root.resolve():
            return f"error: {path} is outside the workspace"
        return target.read_text() if target.is_file() else f"error: no file {path}"

    @kw.tool("run_python", expected_duration_s=1.0)
    def run_python(self, code: str) -> str:
        return self._run([sys.executable, "-c", code])

    @kw.tool("run_tests", expected_duration_s=2.0)
    def run_tests(self) -> str:
        return self._run([sys.executable, "-m", "unittest", "-q"])

    def _run(self, argv: list[str]) -> str:
        done = subprocess.run(argv, cwd=self.root, capture_output=True, text=True, timeout=60)
        return f"{done.stdout}{done.stderr}(exit status {done.returncode})".strip()

    def call(self, name: str, arguments: str) -> str:
        tools: dict[str, Callable[..., str]] = {
            "list_files": self.list_files,
            "read_file": self.read_file,
            "run_python": self.run_python,
            "run_tests": self.run_tests,
        }
        if name not in tools:
            return f"error: no tool {name}"
        try:
            return tools[name](**json.loads(arguments or "{}"))
        except (TypeError, ValueError) as e:
            return f"error: bad arguments for {name}: {e}"


@kw.agent("coder", next=["reviewer"], tools=[t["function"]["name"] for t in TOOLS])
def coder(client: OpenAI, model: str, workspace: Workspace, task: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a careful coding agent. Use the tools."},
        {"role": "user", "content": task},
    ]
    for _ in range(12):
        reply = client.chat.completions.create(model=model, messages=messages, tools=TOOLS)  # type: ignore[arg-type]
        message = reply.choices[0].message
        messages.append(message.model_dump(exclude_none=True))
        if not message.tool_calls:
            print(f"  coder: answer: {(message.content or '').strip()[:70]}")
            return messages
        for call in message.tool_calls:
            fn = call.function  # type: ignore[union-attr]
            output = workspace.call(fn.name, fn.arguments)
            first = output.splitlines()[0] if output else ""
            print(f"  coder: {fn.name}({fn.arguments}) -> {first[:60]}")
            messages.append({"role": "tool", "tool_call_id": call.id, "content": output})
    print("  coder: stopped after 12 rounds")
    return messages


@kw.agent("reviewer", last=True)
def reviewer(client: OpenAI, model: str, transcript: list[dict[str, Any]]) -> str:
    steps = sum(1 for m in transcript if m["role"] == "tool")
    prompt = f"Review this agent run ({steps} tool results) in one sentence."
    with kw.last_step():  # nothing of the program is worth keeping after this call
        reply = client.chat.completions.create(
            model=model, messages=[*transcript, {"role": "user", "content": prompt}]
        )  # type: ignore[arg-type]
    text = (reply.choices[0].message.content or "").strip()
    print(f"  reviewer: {text[:70]}")
    return text


@kw.workflow("coding-agent")
def solve(client: OpenAI, model: str, task: str) -> kw.ProgramInfo:
    with tempfile.TemporaryDirectory(prefix="kvbaton-coding-") as root:
        workspace = Workspace(Path(root))
        transcript = coder(client, model, workspace, task)
        reviewer(client, model, transcript)
    info = kw.current_program()
    assert info is not None
    return info


@contextmanager
def local_proxy(time_scale: float) -> Iterator[str]:
    """The embedded engine and the proxy, on free ports, served from a background thread."""
    from kvbaton.middleware.launch import running_proxy
    from kvbaton.middleware.settings import ProxySettings

    started, urls, stop = threading.Event(), [], threading.Event()

    async def serve() -> None:
        settings = ProxySettings(port=0, engine_time_scale=time_scale)
        async with running_proxy(settings) as (proxy_url, _):
            urls.append(proxy_url)
            started.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    if not started.wait(60):
        raise SystemExit("the embedded engine and proxy did not start")
    try:
        yield f"{urls[0]}/v1"
    finally:
        stop.set()
        thread.join(30)


def show_program(base_url: str, info: kw.ProgramInfo) -> None:
    tools = ", ".join(f"{r.name} {r.duration_s * 1000:.0f} ms" for r in info.tool_runs) or "none"
    print(f"program {info.program_id}: {info.steps} LLM calls, agents {', '.join(info.agents)}")
    print(f"  tools run: {tools}")
    view = program_view(base_url, info.program_id)
    if view is None:
        return
    pauses = [
        f"{'+'.join(p['tools'])} {p['duration_s'] * 1000:.0f} ms" for p in view["tool_pauses"]
    ]
    print(
        f"proxy view: workflow {view['workflow']}, {view['calls']} calls, agents "
        f"{', '.join(view['agents'])}, status {view['status']}, "
        f"cached {view['cached_tokens']}/{view['prompt_tokens']} prompt tokens"
    )
    print(f"  tool pauses seen by the proxy: {', '.join(pauses) or 'none'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    proxy_arguments(parser)
    parser.add_argument("--task", default="Make the failing test in test_calc.py pass.")
    args = parser.parse_args()
    with (
        local_proxy(args.time_scale) if args.base_url is None else _given(args.base_url)
    ) as base_url:
        print(f"kvbaton proxy: {base_url}")
        client = kw.wrap(OpenAI(base_url=base_url, api_key=args.api_key))
        started = time.monotonic()
        info = solve(client, args.model, args.task)
        print(f"done in {time.monotonic() - started:.2f} s")
        show_program(base_url, info)
        client.close()
    return 0


@contextmanager
def _given(base_url: str) -> Iterator[str]:
    yield f"{proxy_root(base_url)}/v1"  # the proxy's root works as well


if __name__ == "__main__":
    sys.exit(main())
