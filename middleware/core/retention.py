"""KV retention: how long to pin a paused program's KV cache (Continuum's TTL rule).

The decision is one number per tool pause, the TTL in seconds (0 = do not pin). Pinning
for τ costs τ of memory time; it pays off if the program comes back within τ, saving the
reload (prefill) of its context and, through η, the queueing delay T that an evicted
program would add to the programs behind it (Continuum §4.1)::

    τ* = argmax_τ  P(pause ≤ τ) · (T·η + reload)  -  τ,   τ ∈ {0} | samples

Strategies follow :mod:`priority`: a Protocol, a few classes and a plain registry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

import numpy as np

from kvbaton.middleware.core.toolstats import (
    FloatArray,
    ProgramLengths,
    QueueingDelay,
    ToolStats,
)

__all__ = [
    "RETENTIONS",
    "NoRetention",
    "RetentionContext",
    "RetentionDeps",
    "RetentionName",
    "RetentionStrategy",
    "StaticTtl",
    "ToolTtl",
    "make_retention",
    "reload_from_profile",
    "ttl_default",
    "ttl_for",
]

STATIC_TTL_S = 2.0  # Continuum's public preview (vllm/v1/core/estimate_with_func.py)


def ttl_for(
    samples: Sequence[float] | FloatArray | None, *, t: float, eta: float, reload_s: float
) -> float:
    """Continuum's τ* in seconds, from pause samples (seconds, finite, any order).

    ``t`` is the queueing delay T (seconds), ``eta`` is η, ``reload_s`` the time to
    rebuild the KV if it is evicted. With ``samples=None`` (cold start) use
    :func:`ttl_default`. Ties go to the shorter TTL; a best value ≤ 0 means no pin.
    """
    if samples is None:
        return ttl_default(t=t, reload_s=reload_s)
    benefit = t * eta + reload_s
    pauses = np.sort(np.maximum(np.asarray(samples, dtype=np.float64), 0.0))
    if benefit <= 0 or pauses.size == 0:
        return 0.0  # the objective is ≤ 0 for every τ ≥ 0
    # At a run of equal values only the last position has the full CDF, and the others
    # score lower with the same τ, so the max over all positions is the max over
    # unique(samples); candidate 0 scores 0 unless a sample is 0, which covers it.
    cdf = np.arange(1, pauses.size + 1, dtype=np.float64) / pauses.size
    gain = cdf * benefit - pauses
    best = int(np.argmax(gain))
    return float(pauses[best]) if gain[best] > 0 else 0.0


def ttl_default(*, t: float, reload_s: float) -> float:
    """τ* (seconds) with no samples: Continuum's T_default, pauses ~ Exp(1 s) and η = 1.

    With B = T + reload, maximise g(τ) = (1 - e^-τ)·B - τ: g'(τ) = B·e^-τ - 1 vanishes at
    τ = ln B and g is concave, so τ* = ln B when B > 1 (where g(ln B) = B - 1 - ln B > 0)
    and 0 otherwise (g' ≤ 0 everywhere).
    """
    benefit = t + reload_s
    return math.log(benefit) if benefit > 1.0 else 0.0


@dataclass(frozen=True, slots=True)
class RetentionContext:
    """A call of a program just finished and the program is about to pause.

    ``tools`` are the tools the call asked for (empty when it named none);
    ``prompt_tokens`` is the program's context after the call (prompt + output), the
    KV that a pin would keep. ``reload_s`` overrides the deps' reload model when the
    caller knows better (e.g. a measured offload bandwidth).
    """

    tools: tuple[str, ...]
    prompt_tokens: int
    now: float
    last_step: bool = False
    reload_s: float | None = None


class RetentionStrategy(Protocol):
    """Decides KV retention for pausing programs. Called by the scheduler once per
    finished call that is not the program's last, right before the program pauses."""

    def ttl(self, ctx: RetentionContext) -> float:
        """Seconds to pin the program's KV; 0 = do not pin."""
        ...


class _Prefill(Protocol):
    def prefill_s(self, new_tokens: int, context_tokens: int = 0) -> float: ...


def reload_from_profile(profile: _Prefill) -> Callable[[int], float]:
    """Reload cost (seconds) of ``tokens`` evicted tokens: a full prefill from scratch."""
    return lambda tokens: profile.prefill_s(tokens, 0)


@dataclass(frozen=True, slots=True)
class RetentionDeps:
    """The shared statistics strategies read; the scheduler feeds them."""

    reload_s: Callable[[int], float]  # seconds to rebuild the KV of that many tokens
    tools: ToolStats = field(default_factory=ToolStats)
    lengths: ProgramLengths = field(default_factory=ProgramLengths)
    delay: QueueingDelay = field(default_factory=QueueingDelay)

    def reload_for(self, ctx: RetentionContext) -> float:
        return ctx.reload_s if ctx.reload_s is not None else self.reload_s(ctx.prompt_tokens)


class NoRetention:
    """Never pin: the engine's own LRU decides, as engines do today."""

    def ttl(self, ctx: RetentionContext) -> float:
        return 0.0


class ToolTtl:
    """Continuum's TTL from each tool's pause distribution, T, η and the reload cost.

    With several tools in one pause (parallel calls) the program returns only when the
    slowest is done, so the pin must cover the slowest tool: take the max of the tools'
    τ*. (The exact rule would use the distribution of the max; each tool's samples are
    whole pauses already, so the max of τ* is close and needs no joint statistics.)
    """

    def __init__(self, deps: RetentionDeps) -> None:
        self.deps = deps

    def ttl(self, ctx: RetentionContext) -> float:
        if ctx.last_step:
            return 0.0  # nothing comes back to use the KV
        t, eta = self.deps.delay.mean(), self.deps.lengths.eta()
        reload_s = self.deps.reload_for(ctx)
        tools: tuple[str | None, ...] = ctx.tools or (None,)
        return max(
            ttl_for(self.deps.tools.samples(tool)[0], t=t, eta=eta, reload_s=reload_s)
            for tool in tools
        )


class StaticTtl:
    """Continuum's public preview: pin for a fixed TTL if the tool is usually quick.

    Pins for ``ttl_s`` when every tool's running mean pause is ≤ ``ttl_s`` or the tool
    is unseen (as is a call that names no tool); otherwise no pin.
    """

    def __init__(self, deps: RetentionDeps, ttl_s: float = STATIC_TTL_S) -> None:
        self.deps = deps
        self.ttl_s = ttl_s

    def ttl(self, ctx: RetentionContext) -> float:
        if ctx.last_step:
            return 0.0
        for tool in ctx.tools:
            mean = self.deps.tools.mean(tool)
            if mean is not None and mean > self.ttl_s:
                return 0.0
        return self.ttl_s


class RetentionName(StrEnum):
    NONE = "none"
    TOOL_TTL = "tool-ttl"
    STATIC_TTL = "static-ttl"


def _none(deps: RetentionDeps) -> RetentionStrategy:
    return NoRetention()


RETENTIONS: dict[str, Callable[[RetentionDeps], RetentionStrategy]] = {
    RetentionName.NONE: _none,
    RetentionName.TOOL_TTL: ToolTtl,
    RetentionName.STATIC_TTL: StaticTtl,
}


def make_retention(name: str, deps: RetentionDeps) -> RetentionStrategy:
    try:
        factory = RETENTIONS[name]
    except KeyError:
        known = ", ".join(sorted(RETENTIONS))
        raise ValueError(f"unknown retention strategy {name!r}; known: {known}") from None
    return factory(deps)
