"""The ``kvbaton`` command as a user runs it: real processes on loopback."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kvbaton.cli import build_parser
from kvbaton.middleware.core.policies import POLICIES
from kvbaton.middleware.settings import ProxySettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def kvbaton(*args: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kvbaton", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        assert proc.stdout and proc.stderr
        proc.stdout.close()
        proc.stderr.close()


def http(url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    return status, json.loads(raw) if raw else None


def wait_healthy(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if http(f"{url}/health")[0] == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"{url} never became healthy")


def test_serve_with_embedded_engine_answers_and_stops_cleanly() -> None:
    port = free_port()
    with kvbaton("serve", "--port", str(port), "--policy", "baseline") as proc:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url)
        status, _ = http(
            f"{url}/v1/chat/completions",
            {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3},
        )
        assert status == 200
        assert http(f"{url}/kvbaton/v1/programs")[1]["policy"] == "baseline"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


def test_engine_command_serves_sglang_api() -> None:
    port = free_port()
    with kvbaton("engine", "--port", str(port), "--kv-tokens", "5000"):
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url)
        info = http(f"{url}/server_info")[1]
        assert info["max_total_num_tokens"] == 5000
        assert info["engine"] == "kvbaton-embedded"


def test_unknown_policy_is_a_clear_error() -> None:
    with kvbaton("serve", "--port", str(free_port()), "--policy", "fastest") as proc:
        assert proc.wait(20) == 2
        assert proc.stderr is not None
        assert "unknown policy 'fastest'; available: baseline, program-fcfs" in proc.stderr.read()


def test_flags_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KVBATON_POLICY", "baseline")
    monkeypatch.setenv("KVBATON_PORT", "9001")
    assert (ProxySettings().policy, ProxySettings().port) == ("baseline", 9001)
    assert ProxySettings(port=9002).port == 9002  # what a --port flag becomes
    monkeypatch.setenv("KVBATON_MAX_INFLIGHT", "zero")
    with pytest.raises(ValueError, match="max_inflight"):
        ProxySettings()


def test_defaults_are_loopback_8000_and_30000() -> None:
    args = build_parser().parse_args(["serve"])
    assert args.port is None  # unset flags fall through to settings
    assert (ProxySettings().host, ProxySettings().port) == ("127.0.0.1", 8000)
    from kvbaton.middleware.embedded.settings import EngineSettings

    assert EngineSettings().port == 30000


def test_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kvbaton", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("kvbaton ")


def test_demo_prints_both_policies_side_by_side() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kvbaton", "demo", "--programs", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = [line.split() for line in out.stdout.splitlines()]
    by_policy = {row[0]: row for row in rows if row and row[0] in ("baseline", "program-fcfs")}
    assert set(by_policy) == {"baseline", "program-fcfs"}
    for row in by_policy.values():
        programs, calls, jct_mean = int(row[1]), int(row[2]), float(row[3])
        assert programs == 2 and calls >= 2 and jct_mean > 0


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kvbaton", *args], capture_output=True, text=True, timeout=120
    )


def test_trace_gen_then_bench_writes_the_results_format(tmp_path: Path) -> None:
    trace, out = tmp_path / "swe.jsonl", tmp_path / "results.json"
    gen = _run("trace", "gen", "swe", "--programs", "12", "--rate", "2", "-o", str(trace))
    assert gen.returncode == 0, gen.stderr
    assert "wrote 12 swe programs" in gen.stdout
    bench = _run("bench", "--trace", str(trace), "--json", str(out))
    assert bench.returncode == 0, bench.stderr
    assert "lower bound" in bench.stdout
    results = json.loads(out.read_text())
    assert set(results["policies"]) == set(POLICIES)
    assert results["policies"]["baseline"]["programs"] == 12
    assert results["lower_bound"]["jct_mean_s"] > 0


def test_bench_rejects_a_broken_trace_by_line_and_field(tmp_path: Path) -> None:
    trace = tmp_path / "bad.jsonl"
    trace.write_text('{"id": "p", "arrival": 0, "calls": [{"id": "c", "agent": "a"}]}\n')
    bench = _run("bench", "--trace", str(trace))
    assert bench.returncode == 2
    assert "line 1: calls.0.input_tokens" in bench.stderr


def test_bench_unknown_policy_lists_available(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    assert _run("trace", "gen", "tree", "--programs", "2", "-o", str(trace)).returncode == 0
    bench = _run("bench", "--trace", str(trace), "--policies", "baseline,magic")
    assert bench.returncode == 2
    assert "unknown policy magic; available: baseline, program-fcfs" in bench.stderr
