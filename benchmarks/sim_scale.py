"""How fast the simulator runs a large trace: wall time and events per second.

Builds a synthetic agent trace in memory (SWE-agent-like chains: a fresh first call on one of
a few shared system prompts, then tool-result turns that extend the context, sometimes a
fresh reviewer call), then simulates it once per policy on the H100 profile.

    .venv/bin/python benchmarks/sim_scale.py [--programs 10000] [--calls 10] [--rate 2.0]
        [--policy baseline --policy program-fcfs] [--profile] [--check]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from kvbaton.middleware.bench.sim import simulate
from kvbaton.middleware.bench.trace import Call, Program
from kvbaton.middleware.engine import load_profile

SYSTEMS = {f"agent-v{i}": int(n) for i, n in enumerate((1200, 1800, 2400, 3000, 900, 1500))}


def synthetic_trace(programs: int, calls: int, rate: float, seed: int = 0) -> list[Program]:
    """``programs`` Poisson arrivals at ``rate`` per second, ``calls`` calls each."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1.0 / rate, programs))
    return [_program(rng, f"p{i:06d}", float(t), calls) for i, t in enumerate(arrivals)]


def _program(rng: np.random.Generator, pid: str, arrival: float, n: int) -> Program:
    system = str(rng.choice(list(SYSTEMS)))
    out: list[Call] = []
    for i in range(n):
        last = i == n - 1
        review = i > 0 and not last and rng.random() < 0.1
        out.append(
            Call(
                id=f"c{i}",
                agent="reviewer" if review else "coder",
                after=(f"c{i - 1}",) if i else (),
                context="fresh" if review or i == 0 else "continue",
                system="reviewer-v1" if review else system,
                system_tokens=1100 if review else SYSTEMS[system],
                input_tokens=int(rng.integers(300, 1500) if i == 0 else rng.integers(40, 600)),
                output_tokens=int(rng.integers(30, 160)),
                tool=None if last else "bash",
                tool_s=0.0 if last else float(rng.lognormal(-0.5, 1.0)),
            )
        )
    return Program(id=pid, arrival=arrival, calls=tuple(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--programs", type=int, default=10_000)
    ap.add_argument("--calls", type=int, default=10)
    ap.add_argument("--rate", type=float, default=2.0, help="program arrivals per second")
    ap.add_argument("--policy", action="append", help="repeatable (default: baseline)")
    ap.add_argument("--engine-profile", default="llama-3.1-8b-h100")
    ap.add_argument("--profile", action="store_true", help="print a cProfile summary")
    ap.add_argument("--check", action="store_true", help="check invariants every step")
    args = ap.parse_args()
    console = Console()
    t0 = time.perf_counter()
    trace = synthetic_trace(args.programs, args.calls, args.rate)
    console.print(f"built {len(trace)} programs in {time.perf_counter() - t0:.1f} s")
    profile = load_profile(args.engine_profile)
    table = Table("policy", "programs", "calls", "events", "steps", "wall s", "events/s",
                  "sim s", "mean JCT s", "preempt")  # fmt: skip
    for policy in args.policy or ["baseline"]:
        prof = cProfile.Profile() if args.profile else None
        t0 = time.perf_counter()
        if prof:
            prof.enable()
        result = simulate(trace, policy, profile, check=args.check)
        if prof:
            prof.disable()
        wall = time.perf_counter() - t0
        s = result.summary()
        table.add_row(
            policy, str(s["programs"]), str(s["calls"]), str(result.events), str(result.steps),
            f"{wall:.1f}", f"{result.events / wall:,.0f}", f"{result.end_s:,.0f}",
            f"{s['jct_mean_s']:.1f}", str(s["preemptions"]),
        )  # fmt: skip
        if prof:
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    console.print(table)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    console.print(f"peak RSS {peak_mb:.0f} MB (trace and records included)")


if __name__ == "__main__":
    main()
