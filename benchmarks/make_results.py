"""Regenerate ``benchmarks/RESULTS.md``: every workload, every policy, side by side.

    .venv/bin/python benchmarks/make_results.py            # about a minute here

For each workload it writes a trace (``benchmarks/traces/``, not kept in git), runs
``kvbaton bench`` in the simulator at the listed load and at a sweep of rate scales, and
keeps the results JSON and the JCT-vs-load plot under ``benchmarks/results/``.
"""

from __future__ import annotations

import io
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from kvbaton.middleware.bench.runner import run_bench
from kvbaton.middleware.bench.trace import dump_trace
from kvbaton.middleware.bench.workloads import describe, generate

HERE = Path(__file__).resolve().parent
SWEEP = [0.25, 0.5, 1.0, 2.0]


@dataclass(frozen=True)
class Workload:
    kind: str
    programs: int
    rate: float  # programs per second at rate scale 1
    kv_tokens: int | None = None  # None: the profile's own pool
    note: str = ""
    name: str = ""  # the section and file name, when one workload is run twice

    @property
    def label(self) -> str:
        return self.name or self.kind


WORKLOADS = [
    Workload("swe", 300, 2.0, note="SWE-agent-like loops, Continuum's statistics"),
    Workload("bfcl", 300, 1.0, note="BFCL v4 multi-turn programs, Continuum's BFCL statistics"),
    # Chat and tree contexts are small next to an H100's pool: shrink it so that they contend.
    Workload("chat", 400, 32.0, 30_000, note="ShareGPT conversations with user think time"),
    Workload("multiagent", 200, 1.0, note="KVFlow-style planner/researchers/writer workflows"),
    # KVFlow's setting: a pool small enough that agents' fixed prefixes get evicted too.
    Workload(
        "multiagent",
        200,
        1.0,
        60_000,
        note="The same workflows on a 60k-token pool, where agents' prefixes are evicted",
        name="multiagent-60k",
    ),
    Workload("tree", 100, 4.0, 40_000, note="LATS-style high fan-out programs"),
]

COLUMNS = [
    ("JCT mean", "jct_mean_s", "{:.1f}"),
    ("p50", "jct_p50_s", "{:.1f}"),
    ("p95", "jct_p95_s", "{:.1f}"),
    ("p99", "jct_p99_s", "{:.1f}"),
    ("makespan", "makespan_s", "{:.0f}"),
    ("prog/s", "throughput_programs_per_s", "{:.3f}"),
    ("TTFT p99", "ttft_p99_s", "{:.2f}"),
    ("TTFT max", "ttft_max_s", "{:.2f}"),
    ("prompt tok", "prompt_tokens", "{:,}"),
    ("cached tok", "cached_tokens", "{:,}"),
    ("recomputed", "recomputed_tokens", "{:,}"),
    ("preempt", "preemptions", "{:,}"),
]


def markdown_table(results: dict[str, Any]) -> str:
    head = "| policy | " + " | ".join(c[0] for c in COLUMNS) + " |"
    rule = "|---" * (len(COLUMNS) + 1) + "|"
    rows = [
        f"| {name} | " + " | ".join(fmt.format(entry[key]) for _, key, fmt in COLUMNS) + " |"
        for name, entry in results["policies"].items()
    ]
    bound = results["lower_bound"]["jct_mean_s"]
    rows.append(f"| lower bound | {bound:.1f} |" + " - |" * (len(COLUMNS) - 1))
    return "\n".join([head, rule, *rows])


def sweep_table(results: dict[str, Any]) -> str:
    scales = [s["rate_scale"] for s in results["sweep"]]
    head = "| mean JCT (s) at rate x | " + " | ".join(f"{s:g}" for s in scales) + " |"
    rule = "|---" * (len(scales) + 1) + "|"
    rows = [
        f"| {name} | "
        + " | ".join(f"{s['policies'][name]['jct_mean_s']:.1f}" for s in results["sweep"])
        + " |"
        for name in results["policies"]
    ]
    return "\n".join([head, rule, *rows])


def summary_table(runs: list[tuple[Workload, dict[str, Any]]]) -> str:
    """Mean JCT of every policy on every workload at rate x1, kvbaton's ratio to each, and
    recomputed tokens against baseline."""
    names = list(runs[0][1]["policies"])
    head = (
        "| workload | "
        + " | ".join(names)
        + " | p99 (s): kvbaton / baseline | recomputed: kvbaton / baseline |"
    )
    rule = "|---" * (len(names) + 3) + "|"
    rows = []
    for w, results in runs:
        entries = results["policies"]
        best = min(e["jct_mean_s"] for e in entries.values())
        cells = [
            f"**{e['jct_mean_s']:.1f}**" if e["jct_mean_s"] == best else f"{e['jct_mean_s']:.1f}"
            for e in entries.values()
        ]
        base = entries["baseline"]["recomputed_tokens"]
        ratio = entries["kvbaton"]["recomputed_tokens"] / base if base else 0.0
        p99 = f"{entries['kvbaton']['jct_p99_s']:.1f} / {entries['baseline']['jct_p99_s']:.1f}"
        rows.append(f"| {w.label} | " + " | ".join(cells) + f" | {p99} | {ratio:.2f} |")
    return "\n".join([head, rule, *rows])


def run_workload(w: Workload, console: Console) -> tuple[str, float, dict[str, Any]]:
    traces, out = HERE / "traces", HERE / "results"
    traces.mkdir(exist_ok=True)
    out.mkdir(exist_ok=True)
    trace = traces / f"{w.label}.jsonl"
    programs = generate(w.kind, programs=w.programs, rate=w.rate, seed=0)
    dump_trace(programs, trace)
    stats = describe(programs)
    started = time.perf_counter()
    results = run_bench(
        trace,
        kv_tokens=w.kv_tokens,
        json_out=out / f"{w.label}.json",
        plot=out / f"{w.label}.png",
        sweep=SWEEP,
        console=console,
    )
    seconds = time.perf_counter() - started
    calls = sum(len(p.calls) for p in programs)
    section = f"""## {w.label}

{w.note}. {w.programs} programs ({calls:,} calls; {stats["tokens_mean"]:,.0f} prompt tokens
per program on average), Poisson arrivals at {w.rate:g} programs/s at rate x1, engine
`{results["engine_profile"]["name"]}` with {results["engine_profile"]["kv_tokens"]:,} KV tokens.

{markdown_table(results)}

{sweep_table(results)}

![{w.label}: mean JCT against load](results/{w.label}.png)

```bash
kvbaton trace gen {w.kind} --programs {w.programs} --rate {w.rate:g} --seed 0 -o {w.kind}.jsonl
kvbaton bench --trace {w.kind}.jsonl --sweep {",".join(f"{s:g}" for s in SWEEP)}"""
    if w.kv_tokens:
        section += f" --kv-tokens {w.kv_tokens}"
    section += "\n```\n"
    return section, seconds, results


def main() -> int:
    console = Console(file=io.StringIO(), width=200)  # the tables go to RESULTS.md instead
    sections, timings = [], []
    runs: list[tuple[Workload, dict[str, Any]]] = []
    for w in WORKLOADS:
        print(f"{w.label}: {w.programs} programs ...", flush=True)
        section, seconds, results = run_workload(w, console)
        sections.append(section)
        runs.append((w, results))
        timings.append(f"{w.label} {seconds:.0f} s")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
    ).stdout.strip()
    header = f"""# Benchmark results

Every policy on the same trace, in the discrete-event simulator (the same scheduling core and
engine model as the live proxy; simulated time). JCT is a program's completion time: the finish
of its last call minus its arrival. The lower bound runs every call alone on an idle engine
with an infinite prefix cache. Regenerate with:

```bash
.venv/bin/python benchmarks/make_results.py
```

Made at commit `{commit}` on {platform.machine()} / Python {platform.python_version()};
simulator wall time per workload (every policy at each of {len(SWEEP)} rate scales):
{", ".join(timings)}.

## Summary

Mean JCT (s) at rate x1, the best in bold; then kvbaton's p99 JCT beside baseline's, and
kvbaton's recomputed prompt tokens as a share of baseline's (the cost of evictions).

{summary_table(runs)}
"""
    # Sections that other scripts write (run them first to refresh them).
    predictions = HERE / "results" / "predictions.md"  # benchmarks/prediction_accuracy.py
    if predictions.exists():
        sections.append(predictions.read_text(encoding="utf-8"))
    autellix = HERE / "results" / "autellix.md"  # benchmarks/autellix_check.py
    if autellix.exists():
        sections.append(autellix.read_text(encoding="utf-8"))
    # The live vLLM bench (scripts/real_engine.sh --bench).
    real_engine = HERE / "results" / "real-engine.md"
    if real_engine.exists():
        sections.append(real_engine.read_text(encoding="utf-8"))
    (HERE / "RESULTS.md").write_text(header + "\n" + "\n".join(sections), encoding="utf-8")
    print(f"wrote {HERE / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
