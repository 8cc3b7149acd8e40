"""Per-node statistics of a workflow graph: one agent (LLM-call step) or one tool."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from kvbaton.middleware.core.toolstats import Reservoir
from kvbaton.middleware.core.workflows.declared import DeclaredAgent, DeclaredTool
from kvbaton.middleware.core.workflows.moments import Moments
from kvbaton.middleware.core.workflows.outlook import Outlook
from kvbaton.middleware.core.workflows.prediction import NextAgent

__all__ = ["AgentNode", "Durations", "ToolNode", "moments_json"]

_RESERVOIR = 128  # pause samples kept per node, for quantiles


class Durations:
    """Seconds: a bounded sample for quantiles plus running moments for the mean."""

    __slots__ = ("moments", "sample")

    def __init__(self, rng: random.Random) -> None:
        self.sample = Reservoir(_RESERVOIR, rng)
        self.moments = Moments()

    @property
    def count(self) -> int:
        return self.moments.count

    def add(self, seconds: float) -> None:
        self.sample.add(seconds)
        self.moments.add(seconds)

    def quantile(self, q: float) -> float:
        """Linear interpolation between order statistics (numpy's default), without
        numpy's per-call overhead: this is on the prediction path."""
        values = self.sample.sorted()
        if not len(values):
            return 0.0
        pos = q * (len(values) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(values) - 1)
        return float(values[lo] + (pos - lo) * (values[hi] - values[lo]))

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "mean_s": round(self.moments.mean, 6),
            "p50_s": round(self.quantile(0.5), 6),
            "p90_s": round(self.quantile(0.9), 6),
        }


def moments_json(m: Moments) -> dict[str, Any]:
    return {"count": m.count, "mean": round(m.mean, 6), "std": round(m.std, 6)}


@dataclass(slots=True)
class AgentNode:
    """An agent: how often it ran, how long its calls took, what followed it, what was left."""

    name: str
    rng: random.Random
    calls: int = 0
    finished: int = 0
    service_s: Moments = field(default_factory=Moments)
    prompt_tokens: Moments = field(default_factory=Moments)
    output_tokens: Moments = field(default_factory=Moments)
    outlook: Outlook = field(default_factory=Outlook)
    by_k: dict[int, Outlook] = field(default_factory=dict)
    declared: DeclaredAgent | None = None
    next_cache: tuple[NextAgent, ...] | None = None  # rebuilt after its out-edges change
    _pauses: Durations | None = None

    @property
    def pauses(self) -> Durations:
        """Tool pauses that followed this agent's calls."""
        if self._pauses is None:
            self._pauses = Durations(self.rng)
        return self._pauses

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "finished": self.finished,
            "service_s": moments_json(self.service_s),
            "prompt_tokens": moments_json(self.prompt_tokens),
            "output_tokens": moments_json(self.output_tokens),
            "pause_after": self.pauses.to_json(),
            "remaining_calls": moments_json(self.outlook.calls),
            "remaining_service_s": moments_json(self.outlook.service_s),
            "remaining_time_s": moments_json(self.outlook.time_s),
        }


@dataclass(slots=True)
class ToolNode:
    """A tool: the pauses it caused."""

    name: str
    pauses: Durations
    declared: DeclaredTool | None = None
