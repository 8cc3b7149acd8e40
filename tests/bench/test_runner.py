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
from kvbaton.middleware.bench import replay, runner
from kvbaton.middleware.bench.records import (
    DECOMPOSITION_KEYS,
    RESULT_KEYS,
    CallRecord,
    Decomposition,
    ProgramRecord,
)
from kvbaton.middleware.bench.runner import decomposition_table, resolve_policies, run_bench
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
        # The simulator adds its cache figures and where the time went.
        assert list(entry) == [*RESULT_KEYS, "cache", "decomposition"]
        assert entry["programs"] == 6 and entry["calls"] == 18 and entry["failed_programs"] == 0
        assert list(entry["decomposition"]) == list(DECOMPOSITION_KEYS)
        assert entry["decomposition"]["calls"] == 18
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
        keys = [*RESULT_KEYS, "cache", "decomposition"]
        assert all(list(e) == keys for e in s["policies"].values())
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


def test_the_decomposition_is_printed_per_call() -> None:
    decomposition = Decomposition(
        calls=4, proxy_queue_s=2.0, engine_queue_s=1.0, prefill_s=0.4, decode_s=8.0,
        extra_requests=3, extra_engine_s=0.25, prompt_tokens=1000, cached_tokens=250,
        recomputed_tokens=120, preemptions=1,
    )  # fmt: skip
    # A live run's figures may be floats, and leave out what its engine cannot tell.
    live = {k: float(v) for k, v in decomposition.to_json().items() if k != "extra_engine_s"}
    results = {
        "policies": {
            "kvbaton": {"decomposition": decomposition.to_json()},
            "baseline": {},  # a live run without one: no row
            "live": {"decomposition": live},
        }
    }
    console = quiet()
    console.print(decomposition_table(results))
    text = console.export_text()
    assert "baseline" not in text
    rows = {cells[0]: cells for cells in map(table_cells, text.splitlines()) if cells}
    assert rows["kvbaton"] == ["kvbaton", "4", "0.500", "0.250", "0.100", "2.000", "3", "0.25",
                               "25.0", "120", "1"]  # fmt: skip
    assert rows["live"] == ["live", *rows["kvbaton"][1:7], "-", *rows["kvbaton"][8:]]


def table_cells(line: str) -> list[str]:
    """The cells of one body row of a rendered rich table ([] for any other line)."""
    if not line.startswith("│"):
        return []
    return [c.strip() for c in line.strip("│ ").split("│")]


def test_the_simulators_table_has_a_decomposition(trace: Path) -> None:
    console = quiet()
    run_bench(trace, policies=["baseline", "kvbaton"], profile="demo-tiny", console=console)
    text = console.export_text()
    assert "where the time went" in text and "engine queue s/call" in text
    assert text.index("where the time went") > text.index("lower bound")


def fake_records(programs: Sequence[Program]) -> list[ProgramRecord]:
    records = []
    for p in programs:
        calls = [CallRecord(c.id, p.arrival, p.arrival + 1, p.arrival + 2, 10, 2) for c in p.calls]
        records.append(ProgramRecord(p.id, p.arrival, p.arrival + 2, calls))
    return records


@pytest.mark.parametrize("as_json", [False, True])
def test_a_live_replay_passes_its_decomposition_through(
    trace: Path, monkeypatch: pytest.MonkeyPatch, as_json: bool
) -> None:
    live = Decomposition(18, 1.0, 2.0, 3.0, 4.0, 5, 6.0, 180, 36, 0, 0)
    # The JSON form may carry more than the format's keys: it goes through as it is.
    extended = live.to_json() | {"engine_requests": 23.0}

    async def fake_replay_one(
        url: str, policy: str, programs: list[Program], *_: Any
    ) -> runner.Replayed:
        records = fake_records(programs)
        if policy == "baseline":
            return records  # as today's replayer: records only
        return records, extended if as_json else live

    monkeypatch.setattr(runner, "_replay_one", fake_replay_one)
    console = quiet()
    results = run_bench(
        trace, policies=["baseline", "kvbaton"], engine="http://engine:1", console=console
    )
    assert "decomposition" not in results["policies"]["baseline"]
    assert list(results["policies"]["baseline"]) == list(RESULT_KEYS)
    kvbaton = results["policies"]["kvbaton"]
    assert list(kvbaton) == [*RESULT_KEYS, "decomposition"]
    assert kvbaton["decomposition"] == (extended if as_json else live.to_json())
    assert "where the time went" in console.export_text()


def test_a_live_run_without_decompositions_prints_no_table(
    trace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def fake_replay_one(
        url: str, policy: str, programs: list[Program], *_: Any
    ) -> runner.Replayed:
        return fake_records(programs)

    monkeypatch.setattr(runner, "_replay_one", fake_replay_one)
    console = quiet()
    run_bench(trace, policies=["baseline"], engine="http://engine:1", console=console)
    assert "where the time went" not in console.export_text()
