"""``kvbaton bench``: every policy on the same trace, one table, one results file.

The engine is either ``"sim"`` (the discrete-event simulator over the engine model, in
simulated time) or the URL of a live engine: ``baseline`` replays straight against it, and
every other policy replays through an in-process proxy in front of it. The results JSON is
the format of ``docs/trace-format.md``; a sweep adds an optional ``sweep`` list with the
same per-policy entries at each rate scale, and can be drawn as mean JCT against load.
Beside the JCT table it prints each policy's ``decomposition`` (where its calls' time went:
proxy queue, engine queue, prefill, decode, extra requests), where the run reports one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from kvbaton.middleware.bench.lower_bound import lower_bound
from kvbaton.middleware.bench.records import Decomposition, ProgramRecord, summarize
from kvbaton.middleware.bench.sim import simulate
from kvbaton.middleware.bench.trace import Program, load_trace
from kvbaton.middleware.core.policies import POLICIES
from kvbaton.middleware.engine import DEFAULT_PROFILE, Profile, load_profile

__all__ = ["decomposition_table", "resolve_policies", "results_table", "run_bench"]

PolicyResults = dict[str, dict[str, Any]]
RunAt = Callable[[float], PolicyResults]  # rate scale -> {policy: results entry}
# A live replay's records, with its decomposition when the replayer can measure one (a
# Decomposition, or its JSON form: that may leave out figures a live engine cannot tell).
Replayed = list[ProgramRecord] | tuple[list[ProgramRecord], Decomposition | Mapping[str, Any]]


def resolve_policies(policies: Sequence[str] | None) -> list[str]:
    """The policies to run: all registered ones for None; ValueError for unknown names."""
    if policies is None:
        return list(POLICIES)
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        available = ", ".join(POLICIES)
        raise ValueError(f"unknown policy {', '.join(unknown)}; available: {available}")
    return list(dict.fromkeys(policies))


def run_bench(
    trace: str | Path,
    *,
    policies: list[str] | None = None,
    engine: str = "sim",
    profile: str | None = None,
    kv_tokens: int | None = None,
    rate_scale: float = 1.0,
    seed: int = 0,
    json_out: Path | None = None,
    plot: Path | None = None,
    sweep: list[float] | None = None,
    console: Console,
) -> dict[str, Any]:
    """Run ``policies`` on ``trace``, print the table, write the JSON/plot; return results.

    ``profile`` (default: the shipped default) is the engine model the simulator runs, with
    ``kv_tokens`` overriding its KV pool. For a URL engine it only supplies the cost model of
    the lower bound, and is reported as such in ``engine_profile``. ``sweep`` runs every
    policy again at each listed rate scale (arrivals divided by it). Synchronous: it runs
    its own event loop for a URL engine.
    """
    names = resolve_policies(policies)
    for scale in (rate_scale, *(sweep or ())):
        if scale <= 0:
            raise ValueError(f"rate scales must be positive, got {scale}")
    programs = load_trace(trace)
    cost = load_profile(profile or DEFAULT_PROFILE).with_overrides(kv_tokens=kv_tokens)
    run_at = _runner(engine, programs, names, cost, seed, console)
    main = run_at(rate_scale)
    results: dict[str, Any] = {
        "trace": str(trace),
        "engine": engine,
        "engine_profile": dataclasses.asdict(cost),
        "policies": main,
        "lower_bound": {"jct_mean_s": lower_bound(programs, cost)},
    }
    if sweep:
        runs = {s: main if s == rate_scale else run_at(s) for s in dict.fromkeys(sweep)}
        results["sweep"] = [{"rate_scale": s, "policies": p} for s, p in runs.items()]
    _report(results, rate_scale, console)
    if json_out is not None:
        json_out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if plot is not None:
        _plot(results, programs, rate_scale, plot)
    return results


# -- running ----------------------------------------------------------------------------


def _runner(
    engine: str,
    programs: list[Program],
    names: list[str],
    cost: Profile,
    seed: int,
    console: Console,
) -> RunAt:
    if engine == "sim":
        return lambda scale: _simulate_all(programs, names, cost, scale, seed, console)
    if engine.startswith(("http://", "https://")):
        return lambda scale: asyncio.run(_replay_all(engine, programs, names, scale, seed, console))
    raise ValueError(f"engine must be 'sim' or an http(s):// URL, got {engine!r}")


def _progress(console: Console) -> Progress:
    # Transient: the bar shows programs finished while a run lasts, then leaves the table.
    # Off when the output is not a terminal (logs and pipes get only the tables).
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("programs"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def _advancer(progress: Progress, task: TaskID) -> Callable[[ProgramRecord], None]:
    def advance(_: ProgramRecord) -> None:
        progress.advance(task)

    return advance


def _simulate_all(
    programs: list[Program],
    names: list[str],
    cost: Profile,
    rate_scale: float,
    seed: int,
    console: Console,
) -> PolicyResults:
    out: PolicyResults = {}
    with _progress(console) as progress:
        for name in names:
            task = progress.add_task(f"{name} x{rate_scale:g}", total=len(programs))
            result = simulate(
                programs,
                name,
                cost,
                rate_scale=rate_scale,
                seed=seed,
                on_program_done=_advancer(progress, task),
            )
            out[name] = result.summary()
    return out


async def _replay_all(
    url: str,
    programs: list[Program],
    names: list[str],
    rate_scale: float,
    seed: int,
    console: Console,
) -> PolicyResults:
    out: PolicyResults = {}
    with _progress(console) as progress:
        for name in names:
            task = progress.add_task(f"{name} x{rate_scale:g}", total=len(programs))
            replayed = await _replay_one(
                url, name, programs, rate_scale, seed, _advancer(progress, task)
            )
            out[name] = _live_entry(replayed)
    return out


def _live_entry(replayed: Replayed) -> dict[str, Any]:
    if not isinstance(replayed, tuple):
        return summarize(replayed)  # a live engine does not report preemptions
    records, decomposition = replayed
    if isinstance(decomposition, Decomposition):
        decomposition = decomposition.to_json()
    return {**summarize(records), "decomposition": dict(decomposition)}


async def _replay_one(
    url: str,
    policy: str,
    programs: list[Program],
    rate_scale: float,
    seed: int,
    done: Callable[[ProgramRecord], None],
) -> Replayed:
    # Imported here: the live path pulls in aiohttp and the proxy, the simulator needs neither.
    from kvbaton.middleware import launch
    from kvbaton.middleware.bench import replay
    from kvbaton.middleware.settings import ProxySettings

    kwargs: dict[str, Any] = {"rate_scale": rate_scale, "seed": seed, "on_program_done": done}
    if policy == "baseline":
        return await replay.replay_trace(url, programs, **kwargs)
    settings = ProxySettings(port=0, backend=url, policy=policy)
    async with launch.running_proxy(settings) as (proxy_url, _):
        return await replay.replay_trace(proxy_url, programs, **kwargs)


# -- reporting --------------------------------------------------------------------------

_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("JCT mean s", "jct_mean_s", "{:.2f}"),
    ("p50", "jct_p50_s", "{:.2f}"),
    ("p95", "jct_p95_s", "{:.2f}"),
    ("p99", "jct_p99_s", "{:.2f}"),
    ("makespan s", "makespan_s", "{:.1f}"),
    ("prog/s", "throughput_programs_per_s", "{:.3f}"),
    ("TTFT p99 s", "ttft_p99_s", "{:.3f}"),
    ("TTFT max s", "ttft_max_s", "{:.3f}"),
    ("prompt tok", "prompt_tokens", "{:,}"),
    ("cached tok", "cached_tokens", "{:,}"),
    ("recomp tok", "recomputed_tokens", "{:,}"),
    ("preempt", "preemptions", "{:,}"),
    ("failed", "failed_programs", "{:,}"),
)


def results_table(results: dict[str, Any], title: str) -> Table:
    """One row per policy, plus the lower bound as its own row."""
    table = Table("policy", *(c[0] for c in _COLUMNS), title=title)
    for column in table.columns[1:]:
        column.justify = "right"
    for name, entry in results["policies"].items():
        table.add_row(name, *(fmt.format(entry[key]) for _, key, fmt in _COLUMNS))
    bound = results["lower_bound"]["jct_mean_s"]
    table.add_row("lower bound", f"{bound:.2f}", *("-" for _ in _COLUMNS[1:]), style="dim")
    return table


def _sweep_table(results: dict[str, Any]) -> Table:
    table = Table("policy", *(f"x{s['rate_scale']:g}" for s in results["sweep"]))
    table.title = "mean JCT (s) by rate scale"
    for name in results["policies"]:
        row = [f"{s['policies'][name]['jct_mean_s']:.2f}" for s in results["sweep"]]
        table.add_row(name, *row)
    return table


_DECOMPOSITION_HEADERS = (
    "calls", "proxy queue s/call", "engine queue s/call", "prefill s/call", "decode s/call",
    "extra req", "extra engine s", "cached %", "recomputed tok", "preempt",
)  # fmt: skip
_SPANS = ("proxy_queue_s", "engine_queue_s", "prefill_s", "decode_s")  # shown per call


def decomposition_table(results: dict[str, Any]) -> Table:
    """One row per policy whose entry has a ``decomposition``: the time spans as means per
    call (so runs of different lengths, simulated or live, compare figure by figure); a
    figure the run did not report shows as "-"."""
    table = Table("policy", *_DECOMPOSITION_HEADERS, title="where the time went")
    for column in table.columns[1:]:
        column.justify = "right"
    for name, entry in results["policies"].items():
        if "decomposition" in entry:
            table.add_row(name, *_decomposition_row(entry["decomposition"]))
    return table


def _decomposition_row(d: Mapping[str, Any]) -> list[str]:
    # Counts may come as floats from a live run's metric deltas: shown without decimals.
    calls = max(d.get("calls") or 0, 1)  # no calls: zeros, not a division error
    cached, prompt = d.get("cached_tokens"), d.get("prompt_tokens")
    return [
        _cell(d.get("calls"), "{:,.0f}"),
        *(_cell(d.get(key), "{:.3f}", calls) for key in _SPANS),
        _cell(d.get("extra_requests"), "{:,.0f}"),
        _cell(d.get("extra_engine_s"), "{:.2f}"),
        _cell(100 * cached / prompt if cached is not None and prompt else None, "{:.1f}"),
        _cell(d.get("recomputed_tokens"), "{:,.0f}"),
        _cell(d.get("preemptions"), "{:,.0f}"),
    ]


def _cell(value: float | None, fmt: str, per: float = 1) -> str:
    return "-" if value is None else fmt.format(value / per)


def _report(results: dict[str, Any], rate_scale: float, console: Console) -> None:
    profile = results["engine_profile"]["name"]
    title = f"{results['trace']} · {results['engine']} · {profile} · rate x{rate_scale:g}"
    console.print(results_table(results, title))
    if any("decomposition" in entry for entry in results["policies"].values()):
        console.print(decomposition_table(results))
    if "sweep" in results:
        console.print(_sweep_table(results))


def _offered_rate(programs: Sequence[Program]) -> float | None:
    """Programs per second of the trace as written (None if they all arrive at once)."""
    if len(programs) < 2:
        return None
    span = max(p.arrival for p in programs) - min(p.arrival for p in programs)
    return len(programs) / span if span > 0 else None


def _plot(
    results: dict[str, Any], programs: Sequence[Program], rate_scale: float, path: Path
) -> None:
    # The object API with an explicit Agg canvas: no pyplot global state, no display.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    runs = results.get("sweep") or [{"rate_scale": rate_scale, "policies": results["policies"]}]
    base = _offered_rate(programs)
    xs = [r["rate_scale"] * base if base else r["rate_scale"] for r in runs]
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name in results["policies"]:
        ax.plot(xs, [r["policies"][name]["jct_mean_s"] for r in runs], marker="o", label=name)
    bound = results["lower_bound"]["jct_mean_s"]
    ax.axhline(bound, linestyle="--", color="grey", label="lower bound")
    ax.set_xlabel("offered load (programs/s)" if base else "rate scale")
    ax.set_ylabel("mean JCT (s)")
    ax.set_title(f"{Path(str(results['trace'])).name} · {results['engine_profile']['name']}")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=120)
