"""``run_bench``: the results format, the table, sweeps and plots, and the live path."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from kvbaton.middleware import launch
from kvbaton.middleware.bench import replay
from kvbaton.middleware.bench.records import RESULT_KEYS, CallRecord, ProgramRecord
from kvbaton.middleware.bench.runner import resolve_policies, run_bench
from kvbaton.middleware.bench.trace import Program, dump_trace
from kvbaton.middleware.core.policies import POLICIES
from kvbaton.middleware.settings import ProxySettings
from tests.bench.test_sim import chain_program, dag_program


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    path = tmp_path / "small.jsonl"
    dump_trace([chain_program(f"p{i}", 0.5 * i, turns=3) for i in range(6)], path)
    return path


def quiet() -> Console:
    return Console(record=True, width=220, force_terminal=False)


def test_results_have_exactly_the_format_keys(trace: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    returned = run_bench(trace, profile="demo-tiny", kv_tokens=6000, json_out=out, console=quiet())
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(returned))
    assert set(written) == {"trace", "engine", "engine_profile", "policies", "lower_bound"}
    assert written["engine"] == "sim" and written["trace"] == str(trace)
    assert list(written["policies"]) == list(POLICIES)
    for entry in written["policies"].values():
        assert list(entry) == [*RESULT_KEYS, "cache"]  # the simulator adds cache figures
        assert entry["programs"] == 6 and entry["calls"] == 18 and entry["failed_programs"] == 0
        cache = entry["cache"]
        assert set(cache) == {"pins", "pinned_token_s", "warms", "evicted_tokens"}
        assert cache["pins"]["consumed"] + cache["pins"]["expired"] <= cache["pins"]["granted"]
    retaining = written["policies"]["continuum"]["cache"]
    assert written["policies"]["baseline"]["cache"]["pins"]["granted"] == 0
    assert retaining["pinned_token_s"] >= 0
    assert set(written["lower_bound"]) == {"jct_mean_s"}
    profile = written["engine_profile"]
    assert profile["name"] == "demo-tiny" and profile["kv_tokens"] == 6000 and profile["sources"]


def test_lower_bound_row_and_bound_below_policies(trace: Path) -> None:
    console = quiet()
    results = run_bench(trace, policies=["baseline"], profile="demo-tiny", console=console)
    text = console.export_text()
    assert "lower bound" in text and "baseline" in text and "program-fcfs" not in text
    bound = results["lower_bound"]["jct_mean_s"]
    assert 0 < bound <= results["policies"]["baseline"]["jct_mean_s"]


def test_unknown_policy_lists_the_available_ones(trace: Path) -> None:
    with pytest.raises(ValueError, match=r"nope.*available: baseline, program-fcfs"):
        run_bench(trace, policies=["baseline", "nope"], console=quiet())
    assert resolve_policies(None) == list(POLICIES)


def test_unknown_engine_and_bad_rate_are_refused(trace: Path) -> None:
    with pytest.raises(ValueError, match="engine must be"):
        run_bench(trace, engine="gpu0", console=quiet())
    with pytest.raises(ValueError, match="positive"):
        run_bench(trace, sweep=[1.0, 0.0], console=quiet())


def test_sweep_writes_every_rate_and_a_png(trace: Path, tmp_path: Path) -> None:
    png, out = tmp_path / "jct.png", tmp_path / "r.json"
    console = quiet()
    results = run_bench(
        trace,
        profile="demo-tiny",
        kv_tokens=6000,
        sweep=[0.5, 1.0, 2.0],
        plot=png,
        json_out=out,
        console=console,
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sweep = json.loads(out.read_text())["sweep"]
    assert [s["rate_scale"] for s in sweep] == [0.5, 1.0, 2.0]
    assert all(set(s) == {"rate_scale", "policies"} for s in sweep)
    assert sweep[1]["policies"] == results["policies"]  # the main run is reused
    for s in sweep:
        assert all(list(e) == [*RESULT_KEYS, "cache"] for e in s["policies"].values())
    assert "by rate scale" in console.export_text()


def test_a_url_engine_replays_baseline_direct_and_others_through_the_proxy(
    trace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, float, int]] = []
    proxies: list[ProxySettings] = []

    async def fake_replay(
        url: str,
        programs: Sequence[Program],
        *,
        rate_scale: float,
        seed: int,
        on_program_done: Callable[[ProgramRecord], None],
        **_: Any,
    ) -> list[ProgramRecord]:
        seen.append((url, rate_scale, seed))
        records = []
        for p in programs:
            done = p.arrival / rate_scale + 2.0
            calls = [CallRecord(c.id, p.arrival, done - 1, done, 10, 2, 1) for c in p.calls]
            records.append(ProgramRecord(p.id, p.arrival / rate_scale, done, calls))
            on_program_done(records[-1])
        return records

    @contextlib.asynccontextmanager
    async def fake_proxy(settings: ProxySettings) -> AsyncIterator[tuple[str, str]]:
        proxies.append(settings)
        yield "http://proxy:1", settings.backend or ""

    monkeypatch.setattr(replay, "replay_trace", fake_replay)
    monkeypatch.setattr(launch, "running_proxy", fake_proxy)
    url = "http://engine:30000"
    policies = ["baseline", "program-fcfs"]
    results = run_bench(
        trace, policies=policies, engine=url, rate_scale=2.0, seed=3, console=quiet()
    )
    assert seen == [(url, 2.0, 3), ("http://proxy:1", 2.0, 3)]
    assert [(s.backend, s.policy, s.port) for s in proxies] == [(url, "program-fcfs", 0)]
    assert results["engine"] == url
    assert results["policies"]["baseline"]["jct_mean_s"] == pytest.approx(2.0)


def test_dag_trace_runs_through_the_runner(tmp_path: Path) -> None:
    path = tmp_path / "dag.jsonl"
    dump_trace([dag_program(f"d{i}", float(i)) for i in range(3)], path)
    results = run_bench(path, policies=["program-fcfs"], profile="demo-tiny", console=quiet())
    assert results["policies"]["program-fcfs"]["calls"] == 15
