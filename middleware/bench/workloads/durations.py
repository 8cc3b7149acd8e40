"""Heavy-tailed sampling of tool durations and token counts.

Agent tool times are lognormal-like with long tails (Continuum: the slowest 10% of calls of a
tool hold half or more of its total delay), so each tool gets its own lognormal, given by its
mean rather than its median so that mixtures are easy to calibrate: the mixture's mean is the
weighted mean of the parts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["LogNormal", "ToolMix"]


@dataclass(frozen=True, slots=True)
class LogNormal:
    """A lognormal with the given ``mean`` and log-space ``sigma``, clipped at ``cap``.

    ``cap`` stands for a harness timeout; it keeps a few draws from dominating a small trace.
    """

    mean: float
    sigma: float
    cap: float = math.inf

    @property
    def median(self) -> float:
        return self.mean * math.exp(-(self.sigma**2) / 2)

    def draw(self, rng: np.random.Generator) -> float:
        return min(float(rng.lognormal(math.log(self.median), self.sigma)), self.cap)

    def tokens(self, rng: np.random.Generator, minimum: int = 0) -> int:
        """A draw rounded to a whole number of tokens, at least ``minimum``."""
        return max(minimum, round(self.draw(rng)))

    def scaled(self, factor: float) -> LogNormal:
        return LogNormal(self.mean * factor, self.sigma, self.cap * factor)


@dataclass(frozen=True, slots=True)
class ToolMix:
    """Tools picked with fixed weights, each with its own duration distribution."""

    names: tuple[str, ...]
    weights: tuple[float, ...]
    durations: tuple[LogNormal, ...]

    @classmethod
    def of(cls, tools: Mapping[str, tuple[float, LogNormal]]) -> ToolMix:
        """Build from ``{name: (weight, duration)}``; weights need not sum to one."""
        total = sum(weight for weight, _ in tools.values())
        return cls(
            tuple(tools),
            tuple(weight / total for weight, _ in tools.values()),
            tuple(duration for _, duration in tools.values()),
        )

    def pick(self, rng: np.random.Generator) -> str:
        return self.names[int(rng.choice(len(self.names), p=self.weights))]

    def duration(self, name: str) -> LogNormal:
        return self.durations[self.names.index(name)]

    @property
    def mean(self) -> float:
        """Mean duration over picks (ignoring caps)."""
        return sum(w * d.mean for w, d in zip(self.weights, self.durations, strict=True))
