"""The SDK's examples, run as their users run them: one command each."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from .conftest import Live

ROOT = Path(__file__).resolve().parents[2]


def run_example(name: str, *args: str, env: dict[str, str] | None = None) -> str:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KVBATON_")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), "--time-scale", "0.1", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environ | (env or {}),
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def check_coding_agent(out: str) -> None:
    assert re.search(r"coder: (list_files|read_file|run_python|run_tests)\(", out), out
    assert "proxy view: workflow coding-agent" in out
    assert "agents coder, reviewer, status done" in out
    calls = int(re.search(r"program coding-agent-\w{12}: (\d+) LLM calls", out)[1])  # type: ignore[index]
    assert f"{calls} calls" in out  # the proxy counted every call the program made
    assert "tool pauses seen by the proxy: none" not in out


def check_research_team(out: str) -> None:
    assert out.count("notes written") == 3
    assert "proxy view: workflow research-team" in out
    assert "agents planner, researcher, writer, status done" in out
    assert "fork after planner step 1" in out
    assert "'planner': 1" in out and "'writer': 1" in out


def test_coding_agent_starts_its_own_engine_and_proxy() -> None:
    check_coding_agent(run_example("coding_agent.py"))


def test_research_team_starts_its_own_engine_and_proxy() -> None:
    check_research_team(run_example("research_team.py"))


def test_coding_agent_uses_a_running_proxy_given_by_flag(live: Live) -> None:
    base_url = f"{live.proxy}/v1"
    out = run_example("coding_agent.py", "--base-url", base_url)
    assert f"kvbaton proxy: {base_url}" in out
    check_coding_agent(out)


def test_research_team_uses_a_running_proxy_given_by_env(live: Live) -> None:
    base_url = f"{live.proxy}/v1"
    out = run_example("research_team.py", env={"KVBATON_BASE_URL": base_url})
    assert f"kvbaton proxy: {base_url}" in out
    check_research_team(out)


def test_a_proxy_given_without_v1_is_used_with_it(live: Live) -> None:
    out = run_example("coding_agent.py", "--base-url", f"{live.proxy}/")
    assert f"kvbaton proxy: {live.proxy}/v1\n" in out
    check_coding_agent(out)
