"""Where a policy can beat the engine alone on the live bench's engine: the regime map
(load x KV pool) in the simulator, and kvbaton's ablation (each mechanism off in turn).

The engine is the profile of vLLM on one CPU core (``vllm-cpu-tiny-1core``, at most 8
sequences, which is also the proxy's in-flight limit there); the traces are the live
bench's families (``benchmarks/live_bench.py``), 80 programs, 3 seeds per cell. Each cell
gives each policy's mean JCT as a multiple of the engine alone's (above 1: faster), the mean
over seeds, and the lower bound's (every call alone on an idle engine with an infinite
cache), which no policy can beat.

    .venv/bin/python benchmarks/regimes.py [--families coder,longctx] [--out FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

from rich.progress import track

from kvbaton.middleware.bench.lower_bound import lower_bound
from kvbaton.middleware.bench.sim import SimulationError, simulate
from kvbaton.middleware.bench.trace import Program
from kvbaton.middleware.core.policies import Policy, make_policy
from kvbaton.middleware.engine import Profile, load_profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from live_bench import FAMILIES, family_trace

PROFILE = "vllm-cpu-tiny-1core"
POLICIES = ("program-fcfs", "continuum", "autellix", "thunderagent", "kvflow", "kvbaton")
LOADS = (0.3, 0.6, 0.8, 1.2)
POOLS = (8192, 16384, 32768)
SEEDS = (0, 1, 2)


def _without(**change: object) -> Callable[[], Policy]:
    return lambda: dataclasses.replace(make_policy("kvbaton"), **change)


ABLATION: dict[str, Callable[[], Policy]] = {
    "kvbaton": lambda: make_policy("kvbaton"),
    "no program admission": _without(programs=None),
    "no pins": _without(retention="none"),
    "no resume warms": _without(prefetch=frozenset()),
    "program-FCFS order, not SRPT": lambda: dataclasses.replace(
        make_policy("kvbaton"), priority=make_policy("program-fcfs").priority
    ),
}


def cell(family: str, load: float, pool: int, programs: int) -> dict[str, list[float]]:
    """Per policy (and ablation variant), baseline JCT / its JCT over the seeds."""
    profile = load_profile(PROFILE).with_overrides(kv_tokens=pool)
    out: dict[str, list[float]] = {}
    for seed in SEEDS:
        trace = family_trace(FAMILIES[family], programs, seed, rate_scale=load)
        base = simulate(trace, "baseline", profile).summary()["jct_mean_s"]
        out.setdefault("lower bound", []).append(base / lower_bound(trace, profile))
        out.setdefault("baseline recomputes %", []).append(
            100 * _recomputed_share(simulate(trace, "baseline", profile).summary())
        )
        for name in POLICIES:
            jct = simulate(trace, name, profile).summary()["jct_mean_s"]
            out.setdefault(name, []).append(base / jct)
        for name, make in ABLATION.items():
            if name == "kvbaton":
                continue
            out.setdefault(name, []).append(_ratio(trace, make(), profile, base))
    return out


def _ratio(trace: list[Program], policy: Policy, profile: Profile, base: float) -> float:
    """baseline JCT / the policy's; NaN where the simulation stalls (a known admission
    stall of variants that park without pinning, shown as "stall" in the table)."""
    try:
        return base / simulate(trace, policy, profile).summary()["jct_mean_s"]
    except SimulationError:
        return math.nan


def _recomputed_share(summary: dict[str, float]) -> float:
    return summary["recomputed_tokens"] / max(1, summary["prompt_tokens"])


def _shown(ratios: list[float]) -> str:
    return "stall" if any(math.isnan(x) for x in ratios) else f"{statistics.fmean(ratios):.2f}"


def tables(families: list[str], programs: int) -> str:
    cells = list(itertools.product(families, LOADS, POOLS))
    results = {
        key: cell(*key, programs) for key in track(cells, description="regimes", transient=True)
    }
    cols = ["lower bound", *POLICIES]
    lines = [
        "| family | load | KV pool | baseline recomputes | " + " | ".join(cols) + " |",
        "|---" * (len(cols) + 4) + "|",
    ]
    for (family, load, pool), r in results.items():
        means = [f"{statistics.fmean(r[c]):.2f}" for c in cols]
        share = statistics.fmean(r["baseline recomputes %"])
        lines.append(
            f"| {family} | x{load:g} | {pool:,} | {share:.0f}% | " + " | ".join(means) + " |"
        )
    names = list(ABLATION)
    ablation = [
        "| family | load | KV pool | " + " | ".join(names) + " |",
        "|---" * (len(names) + 3) + "|",
    ]
    for (family, load, pool), r in results.items():
        means = [_shown(r[n]) for n in names]
        ablation.append(f"| {family} | x{load:g} | {pool:,} | " + " | ".join(means) + " |")
    return (
        "\n".join(lines) + "\n\nkvbaton with one mechanism off at a time:\n\n" + "\n".join(ablation)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="coder,tools,longctx")
    parser.add_argument("--programs", type=int, default=80)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    text = tables(args.families.split(","), args.programs)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
