"""Building blocks shared by the generators: random streams, ids and sequential chains."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from kvbaton.middleware.bench.trace import Call, Program

__all__ = ["Step", "chain", "content_rng", "make_programs"]


def content_rng(seed: int, kind: str) -> np.random.Generator:
    """The random stream for a workload's program contents.

    Keyed by the kind too (crc32, stable across runs, unlike ``hash``) so that two kinds with
    one seed do not draw the same numbers, and kept apart from the arrival stream.
    """
    return np.random.default_rng([seed, 1, zlib.crc32(kind.encode())])


def make_programs(
    kind: str,
    arrivals: Sequence[float],
    build: Callable[[], list[Call]],
) -> list[Program]:
    """One program per arrival, ids ``{kind}-0000``..., calls from ``build()`` in order."""
    return [
        Program(id=f"{kind}-{index:04d}", arrival=arrival, calls=tuple(build()))
        for index, arrival in enumerate(arrivals)
    ]


@dataclass(frozen=True, slots=True)
class Step:
    """One call of a single-agent chain: its new tokens, reply, and what happens after it."""

    input_tokens: int
    output_tokens: int
    tool: str | None = None
    tool_s: float = 0.0
    think_s: float = 0.0


def chain(
    agent: str, system: str, system_tokens: int, steps: Sequence[Step], prefix: str = "c"
) -> list[Call]:
    """A chain of calls: the first starts fresh on ``system``, each next one continues the
    previous call's context with its ``input_tokens`` (a tool result or a user turn)."""
    calls: list[Call] = []
    for index, step in enumerate(steps):
        first = index == 0
        calls.append(
            Call(
                id=f"{prefix}{index}",
                agent=agent,
                after=() if first else (calls[-1].id,),
                context="fresh" if first else "continue",
                system=system if first else None,
                system_tokens=system_tokens if first else 0,
                input_tokens=step.input_tokens,
                output_tokens=max(1, step.output_tokens),
                tool=step.tool,
                tool_s=round(step.tool_s, 4) if step.tool else 0.0,
                think_s=round(step.think_s, 3),
            )
        )
    return calls
