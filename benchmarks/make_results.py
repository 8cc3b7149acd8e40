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


WORKLOADS = [
    Workload("swe", 300, 2.0, note="SWE-agent-like loops, Continuum's statistics"),
    Workload("bfcl", 300, 1.0, note="BFCL v4 multi-turn programs, Continuum's BFCL statistics"),
    # Chat and tree contexts are small next to an H100's pool: shrink it so that they contend.
    Workload("chat", 400, 32.0, 30_000, note="ShareGPT conversations with user think time"),
    Workload("multiagent", 200, 1.0, note="KVFlow-style planner/researchers/writer workflows"),
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


def run_workload(w: Workload, console: Console) -> tuple[str, float]:
    traces, out = HERE / "traces", HERE / "results"
    traces.mkdir(exist_ok=True)
    out.mkdir(exist_ok=True)
    trace = traces / f"{w.kind}.jsonl"
    programs = generate(w.kind, programs=w.programs, rate=w.rate, seed=0)
    dump_trace(programs, trace)
    stats = describe(programs)
    started = time.perf_counter()
    results = run_bench(
        trace,
        kv_tokens=w.kv_tokens,
        json_out=out / f"{w.kind}.json",
        plot=out / f"{w.kind}.png",
        sweep=SWEEP,
        console=console,
    )
    seconds = time.perf_counter() - started
    calls = sum(len(p.calls) for p in programs)
    section = f"""## {w.kind}

{w.note}. {w.programs} programs ({calls:,} calls; {stats["tokens_mean"]:,.0f} prompt tokens
per program on average), Poisson arrivals at {w.rate:g} programs/s at rate x1, engine
`{results["engine_profile"]["name"]}` with {results["engine_profile"]["kv_tokens"]:,} KV tokens.

{markdown_table(results)}

{sweep_table(results)}

![{w.kind}: mean JCT against load](results/{w.kind}.png)

```bash
kvbaton trace gen {w.kind} --programs {w.programs} --rate {w.rate:g} --seed 0 -o {w.kind}.jsonl
kvbaton bench --trace {w.kind}.jsonl --sweep {",".join(f"{s:g}" for s in SWEEP)}"""
    if w.kv_tokens:
        section += f" --kv-tokens {w.kv_tokens}"
    section += "\n```\n"
    return section, seconds


def main() -> int:
    console = Console(file=io.StringIO(), width=200)  # the tables go to RESULTS.md instead
    sections, timings = [], []
    for w in WORKLOADS:
        print(f"{w.kind}: {w.programs} programs ...", flush=True)
        section, seconds = run_workload(w, console)
        sections.append(section)
        timings.append(f"{w.kind} {seconds:.0f} s")
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
"""
    (HERE / "RESULTS.md").write_text(header + "\n" + "\n".join(sections), encoding="utf-8")
    print(f"wrote {HERE / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
