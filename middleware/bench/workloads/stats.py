"""The statistics workloads are calibrated against (Continuum Table 2, Autellix §2).

Definitions, per program unless stated:
- ``calls``: LLM calls. ``turns``: calls on the longest dependency path (for a single-agent
  chain, the number of calls, which is Continuum's "turns").
- ``tokens``: the total context processed, i.e. the sum over calls of each call's full prompt
  (system prompt + inherited context + new tokens, as FORMAT.md's ``context`` rules build it),
  as an engine without a prefix cache would prefill it. Outputs are counted apart.
- ``tool_s``: durations of calls that name a tool, pooled over the trace;
  ``tool_top10_share``: the share of the pooled tool time held by the slowest 10% of them.
- ``fanout``: children per call, over calls with at least one, counting a call as the child
  of its first parent only (the one whose context it continues, or the hand-off of a fresh
  call), so the extra parents of a join do not count; ``joins``: calls with several parents.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from kvbaton.middleware.bench.trace import Program

__all__ = ["describe", "prompt_tokens", "top_share"]


def prompt_tokens(program: Program) -> dict[str, int]:
    """Each call's full prompt length under FORMAT.md's ``continue``/``fresh`` rules."""
    prompts: dict[str, int] = {}
    outputs: dict[str, int] = {}
    for call in program.calls:
        if call.fresh:
            prompts[call.id] = call.system_tokens + call.input_tokens
        else:
            parent = call.after[0]
            prompts[call.id] = prompts[parent] + outputs[parent] + call.input_tokens
        outputs[call.id] = call.output_tokens
    return prompts


def top_share(values: Sequence[float], fraction: float = 0.1) -> float:
    """Share of the total held by the largest ``fraction`` of the values (at least one)."""
    total = float(sum(values))
    if not values or total <= 0:
        return 0.0
    count = max(1, math.ceil(fraction * len(values)))
    return float(sum(sorted(values, reverse=True)[:count])) / total


def _depth(program: Program) -> int:
    depth: dict[str, int] = {}
    for call in program.calls:
        depth[call.id] = 1 + max((depth[p] for p in call.after), default=0)
    return max(depth.values())


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    if not values:
        return 0.0, 0.0
    array = np.asarray(values, dtype=float)
    return float(array.mean()), float(array.std())


def describe(programs: Sequence[Program]) -> dict[str, float]:
    """Calibration statistics of a trace (definitions in this module's docstring)."""
    calls = [c for p in programs for c in p.calls]
    tool_s = [c.tool_s for c in calls if c.tool is not None]
    prompts = [prompt_tokens(p) for p in programs]
    children = Counter((p.id, c.after[0]) for p in programs for c in p.calls if c.after)
    stats = {"programs": float(len(programs)), "calls_total": float(len(calls))}
    series: dict[str, Sequence[float]] = {
        "calls": [len(p.calls) for p in programs],
        "turns": [_depth(p) for p in programs],
        "tokens": [sum(pp.values()) for pp in prompts],
        "output_tokens": [sum(c.output_tokens for c in p.calls) for p in programs],
        "prompt_per_call": [n for pp in prompts for n in pp.values()],
        "output_per_call": [c.output_tokens for c in calls],
        "tool_s": tool_s,
        "think_s": [c.think_s for c in calls if c.think_s > 0],
        "fanout": list(children.values()),
    }
    for name, values in series.items():
        stats[f"{name}_mean"], stats[f"{name}_std"] = _mean_std(values)
    stats["tool_calls_per_program"] = len(tool_s) / max(1, len(programs))
    stats["tool_top10_share"] = top_share(tool_s)
    stats["fanout_max"] = float(max(children.values(), default=0))
    stats["joins_per_program"] = sum(len(c.after) > 1 for c in calls) / max(1, len(programs))
    stats["systems"] = float(len({c.system for c in calls if c.fresh and c.system}))
    return stats
