"""The framework examples run in one command against the embedded engine they start."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str, *args: str) -> str:
    env = {**os.environ, "OPENAI_AGENTS_DISABLE_TRACING": "1", "LANGSMITH_TRACING": "false"}
    env.pop("KVBATON_BASE_URL", None)
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--time-scale", "0.05", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_langgraph_agent() -> None:
    out = run_example("langgraph_agent.py", "--thread", "t-1")
    view = re.search(
        r"proxy view: program (\S+), (\d+) calls, agents (\S+), (\d+) tool pauses", out
    )
    assert view is not None, out
    program, calls, agent, pauses = view.groups()
    assert program == "langgraph:t-1"
    assert agent.startswith("system:")
    assert int(pauses) == int(calls) - 2  # two questions, each ending in an answer
    assert out.count("tool pause: ") == int(pauses)


@pytest.mark.parametrize("api", ["responses", "chat"])
def test_agents_handoffs(api: str) -> None:
    out = run_example("agents_handoffs.py", "--api", api)
    assert "answered by billing" in out, out
    view = re.search(r"proxy view: program (\S+), (\d+) calls, (\d+) tool pauses", out)
    assert view is not None, out
    assert int(view[3]) == int(view[2]) - 1
    assert re.search(r"agents in order: triage \(system:\w+\), billing \(system:\w+\)", out)
    assert "tool pause: transfer_to_billing" in out
