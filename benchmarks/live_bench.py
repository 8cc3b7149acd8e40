"""The live benchmark: agent traces replayed against a real engine, straight and through
``kvbaton serve`` under each policy, in alternating rounds, with the time of every call
taken apart.

    .venv/bin/python benchmarks/live_bench.py --engine http://127.0.0.1:PORT \\
        --policies baseline,program-fcfs,continuum,kvbaton --repeats 3 --label isolated

``scripts/real_engine.sh --bench`` starts vLLM on core 0 (``taskset``,
``VLLM_CPU_OMP_THREADS_BIND=0``) and runs this with the proxy and the replayer on core 1
(``--proxy-cpus 1 --client-cpus 1``), then again with everything on both cores. The proxy is
a process of its own (``kvbaton serve``), so its CPU time per call can be read from
``/proc``; the replayer is this process.

Each run scrapes the engine's ``/metrics`` before and after (vLLM: time queued, prefilling
and decoding per request, preemptions, prefix-cache hits, requests finished) and the
proxy's (time in its queue, warms, pins); the decomposition is the difference. Requests the
engine finished beyond the trace's calls are the proxy's own (warms and re-touches).

Traces come from :func:`family_trace`: chains of agent turns whose length, context growth,
tool pauses and load are the knobs; ``--family`` picks a named setting, and ``--seed``
draws a new trace of the same shape. Writes ``benchmarks/results/live-LABEL.json`` and
``.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from kvbaton.middleware.bench.records import summarize
from kvbaton.middleware.bench.replay import replay_trace
from kvbaton.middleware.bench.sim import simulate
from kvbaton.middleware.bench.trace import Call, Program
from kvbaton.middleware.engine import load_profile

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DIRECT = "direct"  # the engine alone: the replayer talks to it with no proxy in between


# -- traces ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Family:
    """The shape of a trace: how long programs run, how fast contexts grow, how tools pause."""

    turns_mean: float  # turns per program, geometric with this mean (at least 1)
    turns_max: int
    system_tokens: int  # one system prompt shared by every program of the workflow
    input_tokens: tuple[int, int]  # new tokens per turn (tool result or user turn), uniform
    output_tokens: tuple[int, int]
    tool_median_s: float  # tool pauses are lognormal around this median ...
    tool_sigma: float  # ... with this log-space spread (1.0: cv about 1.3; 1.5: cv about 2.9)
    rate: float  # program arrivals per second (Poisson)


FAMILIES: dict[str, Family] = {
    # A repair loop: few long programs, contexts growing to 2-3k tokens, short tools.
    "coder": Family(5.0, 10, 300, (60, 360), (48, 96), 0.4, 1.0, 2.0),
    # Many short chats with a heavy tool tail.
    "tools": Family(3.0, 8, 200, (40, 200), (48, 80), 0.6, 1.5, 3.0),
    # Held out: long contexts and long pauses, at a lighter rate.
    "longctx": Family(4.0, 8, 600, (150, 500), (48, 80), 1.0, 1.2, 1.2),
}


def family_trace(
    family: Family, programs: int, seed: int, *, rate_scale: float = 1.0, words: float = 1.0
) -> list[Program]:
    """``programs`` programs of ``family``; ``words`` < 1 turns token counts into words."""
    rng = random.Random(seed)
    out, clock = [], 0.0
    p_stop = 1 / family.turns_mean

    def scaled(tokens: int) -> int:
        return max(1, round(tokens * words))

    for p in range(programs):
        clock += rng.expovariate(family.rate * rate_scale)
        turns = 1
        while turns < family.turns_max and rng.random() > p_stop:
            turns += 1
        calls = []
        for t in range(turns):
            last = t == turns - 1
            pause = rng.lognormvariate(math.log(family.tool_median_s), family.tool_sigma)
            calls.append(
                Call(
                    id=f"c{t}", agent="agent", after=(f"c{t - 1}",) if t else (),
                    system="agent" if t == 0 else None,
                    system_tokens=scaled(family.system_tokens) if t == 0 else 0,
                    input_tokens=scaled(rng.randint(*family.input_tokens)),
                    output_tokens=rng.randint(*family.output_tokens),
                    tool=None if last else "tool", tool_s=0.0 if last else min(pause, 30.0),
                )
            )  # fmt: skip
        out.append(Program(id=f"p{p:03d}", arrival=round(clock, 3), calls=tuple(calls)))
    return out


# -- metrics --------------------------------------------------------------------------------


def scrape(url: str) -> dict[str, float]:
    """Every sample of a Prometheus endpoint, summed over labels (``name``) and per label
    value (``name|label=value``); {} if it cannot be read."""
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return {}
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                continue
            for key in (sample.name, *(f"{sample.name}|{k}={v}" for k, v in sample.labels.items())):
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def _delta(after: dict[str, float], before: dict[str, float], name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


def decomposition(
    engine: tuple[dict[str, float], dict[str, float]],
    proxy: tuple[dict[str, float], dict[str, float]] | None,
    summary: dict[str, Any],
) -> dict[str, float]:
    """Where the run's time went, from the two scrapes of each server (same keys as the
    simulator's ``decomposition``)."""
    before, after = engine
    requests = _delta(after, before, "vllm:request_success_total")
    calls = float(summary["calls"])
    out = {
        "calls": calls,
        "engine_requests": requests,
        "extra_requests": max(0.0, requests - calls),
        "engine_queue_s": _delta(after, before, "vllm:request_queue_time_seconds_sum"),
        "prefill_s": _delta(after, before, "vllm:request_prefill_time_seconds_sum"),
        "decode_s": _delta(after, before, "vllm:request_decode_time_seconds_sum"),
        "preemptions": _delta(after, before, "vllm:num_preemptions_total"),
        "engine_prompt_tokens": _delta(after, before, "vllm:prompt_tokens_total"),
        "engine_cached_tokens": _delta(after, before, "vllm:prefix_cache_hits_total"),
        "prompt_tokens": float(summary["prompt_tokens"]),
        "cached_tokens": float(summary["cached_tokens"]),
        "recomputed_tokens": float(summary["recomputed_tokens"]),
        "proxy_queue_s": 0.0,
        "warms_sent": 0.0,
        "pins": 0.0,
    }
    if proxy is not None:
        p0, p1 = proxy
        out["proxy_queue_s"] = _delta(p1, p0, "kvbaton_queue_wait_seconds_sum")
        out["warms_sent"] = _delta(p1, p0, "kvbaton_warms_total|result=sent")
        out["pins"] = _delta(p1, p0, "kvbaton_pins_total|event=pinned")
    return out


# -- processes ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(slots=True)
class Proxy:
    url: str
    process: subprocess.Popen[bytes]


@contextlib.contextmanager
def proxy_process(
    engine: str, policy: str, cpus: str | None, extra: Sequence[str]
) -> Iterator[Proxy]:
    """``kvbaton serve`` in front of ``engine`` as a process of its own, on ``cpus``."""
    port = _free_port()
    cmd = [sys.executable, "-m", "kvbaton", "serve", "--backend", engine, "--port", str(port),
           "--policy", policy, "--engine-kind", "vllm", "--engine-priority", "on",
           *extra]  # fmt: skip
    if cpus:
        cmd = ["taskset", "-c", cpus, *cmd]
    log = open(ROOT / ".real-engine" / f"proxy-{policy}.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not scrape(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"proxy did not start; see {log.name}")
            time.sleep(0.2)
        yield Proxy(url, process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


# -- runs -----------------------------------------------------------------------------------


def run_once(
    engine: str, name: str, trace: list[Program], seed: int, args: argparse.Namespace
) -> dict[str, Any]:
    """One replay of ``trace`` under ``name`` (``direct`` or a policy), with its figures."""
    e0 = scrape(engine)
    if name == DIRECT:
        started = time.perf_counter()
        records = asyncio.run(replay_trace(engine, trace, seed=seed, tool_calls=args.tool_calls))
        wall = time.perf_counter() - started
        summary = summarize(records)
        parts = decomposition((e0, scrape(engine)), None, summary)
        return summary | {"wall_s": wall, "proxy_cpu_ms_per_call": 0.0, "decomposition": parts}
    extra = ["--max-inflight", str(args.max_inflight)] if args.max_inflight else []
    with proxy_process(engine, name, args.proxy_cpus, extra) as proxy:
        p0, cpu0 = scrape(proxy.url), _cpu_s(proxy.process.pid)
        started = time.perf_counter()
        records = asyncio.run(replay_trace(proxy.url, trace, seed=seed, tool_calls=args.tool_calls))
        wall = time.perf_counter() - started
        cpu = _cpu_s(proxy.process.pid) - cpu0
        p1 = scrape(proxy.url)
    summary = summarize(records)
    calls = max(1, summary["calls"])
    parts = decomposition((e0, scrape(engine)), (p0, p1), summary)
    return summary | {"wall_s": wall, "proxy_cpu_ms_per_call": 1000 * cpu / calls,
                      "decomposition": parts}  # fmt: skip


def tokens_per_word(engine: str) -> float:
    """The engine tokenizer's tokens per replay word (the chat template cancels out)."""
    from kvbaton.middleware.bench.replay_text import call_text

    counts = []
    for words in (100, 1100):
        text = call_text("calibrate", str(words), words)
        body = {"model": _model(engine), "max_tokens": 1,
                "messages": [{"role": "user", "content": text}]}  # fmt: skip
        request = urllib.request.Request(
            f"{engine}/v1/chat/completions", json.dumps(body).encode(),
            {"content-type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=60) as response:
            counts.append(json.loads(response.read())["usage"]["prompt_tokens"])
    return (counts[1] - counts[0]) / 1000


def _model(engine: str) -> str:
    with urllib.request.urlopen(f"{engine}/v1/models", timeout=10) as response:
        return str(json.loads(response.read())["data"][0]["id"])


def bench(engine: str, args: argparse.Namespace) -> dict[str, Any]:
    """Every name ``args.repeats`` times, a round of all names at a time (a slow minute of
    the machine falls on all of them alike), each run with its own prompt text."""
    if args.client_cpus:
        os.sched_setaffinity(0, {int(c) for c in args.client_cpus.split(",")})
    words = 1 / tokens_per_word(engine)
    trace = family_trace(FAMILIES[args.family], args.programs, args.seed,
                         rate_scale=args.rate_scale, words=words)  # fmt: skip
    names = [DIRECT, *args.policies.split(",")]
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    salt = int(time.time())
    for r in range(args.repeats):
        for name in names if r % 2 == 0 else reversed(names):
            salt += 1
            result = run_once(engine, name, trace, salt, args)
            runs[name].append(result)
            print(f"  round {r + 1} {name:>14}: mean JCT {result['jct_mean_s']:.2f} s, "
                  f"p95 {result['jct_p95_s']:.2f} s, failed {result['failed_programs']}",
                  flush=True)  # fmt: skip
    kv = engine_kv_tokens(engine)
    return {"label": args.label, "family": args.family, "programs": args.programs,
            "kv_tokens": kv, "profile": args.profile, "sim": simulated(args, kv),
            "seed": args.seed, "rate_scale": args.rate_scale, "words_per_token": words,
            "proxy_cpus": args.proxy_cpus, "client_cpus": args.client_cpus,
            "calls": sum(len(p.calls) for p in trace), "runs": runs}  # fmt: skip


def simulated(args: argparse.Namespace, kv_tokens: int | None) -> dict[str, dict[str, Any]]:
    """The same trace (in tokens) in the simulator, each policy, with the engine's profile
    and its real KV pool; ``direct`` is the simulator's ``baseline`` (no proxy)."""
    profile = load_profile(args.profile).with_overrides(kv_tokens=kv_tokens)
    trace = family_trace(
        FAMILIES[args.family], args.programs, args.seed, rate_scale=args.rate_scale
    )
    out = {}
    for name in [DIRECT, *args.policies.split(",")]:
        policy = "baseline" if name == DIRECT else name
        out[name] = simulate(trace, policy, profile).summary()
    return out


def engine_kv_tokens(engine: str) -> int | None:
    from kvbaton.adapters.detect import vllm_kv_tokens

    try:
        with urllib.request.urlopen(f"{engine}/metrics", timeout=10) as response:
            return vllm_kv_tokens(response.read().decode())
    except OSError:
        return None


# -- tables ---------------------------------------------------------------------------------


def fidelity_table(result: dict[str, Any]) -> str:
    """Per policy: mean JCT over direct's, live (medians) and simulated; cached share."""
    live, sim = result["runs"], result["sim"]
    direct = statistics.median(r["jct_mean_s"] for r in live[DIRECT])
    lines = [
        "| | live: this / direct | sim: this / direct | sim ÷ live | live cached % "
        "| sim cached % | points apart |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rs in live.items():
        lr = statistics.median(r["jct_mean_s"] for r in rs) / direct
        sr = sim[name]["jct_mean_s"] / sim[DIRECT]["jct_mean_s"]
        lc = 100 * statistics.median(r["cached_tokens"] / max(1, r["prompt_tokens"]) for r in rs)
        sc = 100 * sim[name]["cached_tokens"] / max(1, sim[name]["prompt_tokens"])
        cells = (f"{lr:.3f}", f"{sr:.3f}", f"{sr / lr:.3f}", f"{lc:.1f}", f"{sc:.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {sc - lc:+.1f} |")
    return "\n".join(lines)


def _spread(values: list[float], fmt: str = "{:.2f}") -> str:
    return " / ".join(fmt.format(v) for v in (min(values), statistics.median(values), max(values)))


def jct_table(result: dict[str, Any]) -> str:
    runs = result["runs"]
    direct = statistics.median(r["jct_mean_s"] for r in runs[DIRECT])
    direct95 = statistics.median(r["jct_p95_s"] for r in runs[DIRECT])
    lines = [
        "| | mean JCT s (min / median / max) | p95 JCT s (min / median / max) | "
        "direct / this, mean | direct / this, p95 | proxy CPU ms/call | failed |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rs in runs.items():
        mean = [r["jct_mean_s"] for r in rs]
        p95 = [r["jct_p95_s"] for r in rs]
        cpu = statistics.median(r["proxy_cpu_ms_per_call"] for r in rs)
        failed = sum(r["failed_programs"] for r in rs)
        lines.append(
            f"| {name} | {_spread(mean)} | {_spread(p95)} "
            f"| {direct / statistics.median(mean):.3f} | {direct95 / statistics.median(p95):.3f} "
            f"| {cpu:.2f} | {failed} |"
        )
    return "\n".join(lines)


_PARTS = (
    ("proxy queue", "proxy_queue_s"), ("engine queue", "engine_queue_s"),
    ("prefill", "prefill_s"), ("decode", "decode_s"),
)  # fmt: skip


def parts_table(result: dict[str, Any]) -> str:
    """Medians over the repeats: seconds per trace call in each stage, and the counts."""
    lines = [
        "| | " + " | ".join(f"{label} s/call" for label, _ in _PARTS)
        + " | extra requests | warms | pins | cached % | recomputed tok | preemptions |",
        "|---" * (len(_PARTS) + 7) + "|",
    ]  # fmt: skip
    for name, rs in result["runs"].items():
        ds = [r["decomposition"] for r in rs]

        def med(key: str, ds: list[dict[str, float]] = ds) -> float:
            return statistics.median(d[key] for d in ds)

        calls = max(1.0, med("calls"))
        cached = 100 * med("cached_tokens") / max(1.0, med("prompt_tokens"))
        cells = [f"{med(key) / calls:.3f}" for _, key in _PARTS]
        counts = ("extra_requests", "warms_sent", "pins")
        cells += [f"{med(key):.0f}" for key in counts]
        cells += [f"{cached:.1f}", f"{med('recomputed_tokens'):,.0f}", f"{med('preemptions'):.0f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(result: dict[str, Any], command: str) -> str:
    cores = (
        f"proxy on CPU {result['proxy_cpus']}, replayer on CPU {result['client_cpus']}"
        if result["proxy_cpus"]
        else "engine, proxy and replayer sharing the cores"
    )
    return f"""### Live: `{result["family"]}` trace, {result["label"]} ({cores})

{result["programs"]} programs, {result["calls"]} calls, seed {result["seed"]},
rate x{result["rate_scale"]:g}; {len(result["runs"][DIRECT])} alternating rounds.
`direct` is the engine alone.

{jct_table(result)}

Where the time went (medians of the rounds; seconds per trace call):

{parts_table(result)}

The simulator on the same trace (profile `{result["profile"]}`, KV pool
{result["kv_tokens"]} tokens), policy over direct, beside the live medians:

{fidelity_table(result)}

```bash
{command}
```
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", required=True, help="the engine's URL (vLLM)")
    parser.add_argument("--policies", default="baseline,program-fcfs,continuum,kvbaton")
    parser.add_argument("--family", default="coder", choices=sorted(FAMILIES))
    parser.add_argument("--programs", type=int, default=40)
    parser.add_argument("--rate-scale", type=float, default=1.0, help="multiply arrival rates")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--proxy-cpus", help="taskset CPU list for the proxy, e.g. 1")
    parser.add_argument("--client-cpus", help="CPU list for the replayer (this process)")
    parser.add_argument("--max-inflight", type=int, help="passed to kvbaton serve")
    parser.add_argument("--label", default="run")
    parser.add_argument("--profile", default="vllm-cpu-tiny", help="simulator profile")
    parser.add_argument(
        "--no-tool-calls", dest="tool_calls", action="store_false",
        help="plain text replies (default: forced tool calls; the engine needs "
        "--enable-auto-tool-choice --tool-call-parser hermes)",
    )  # fmt: skip
    args = parser.parse_args()
    engine = args.engine.rstrip("/")
    result = bench(engine, args)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    stem = out / f"live-{args.label}-{args.family}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    command = "python benchmarks/live_bench.py " + " ".join(sys.argv[1:])
    section = report(result, command.replace(engine, "URL"))
    stem.with_suffix(".md").write_text(section, encoding="utf-8")
    print(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
