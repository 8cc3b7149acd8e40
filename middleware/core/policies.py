"""Named policies: bundles of strategies that the proxy and the simulator both run.

A bundle names one strategy per decision (call priority, KV retention; prefetch and routing
as they arrive) plus whether the proxy holds calls back at all. ``baseline`` is
a pure pass-through, so that it measures the engine on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from kvbaton.middleware.core.priority import PriorityStrategy, make_priority

__all__ = ["POLICIES", "Policy", "PolicyName", "make_policy"]


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    priority: PriorityStrategy
    admission: bool  # hold calls in the proxy queue when the engine's slots are full
    description: str
    retention: str = "none"  # a name in core.retention.RETENTIONS: how paused KV is kept
    # Program-level admission (core.admission): None for none; "fit" admits parked programs
    # best fit (ThunderAgent), "priority" in the priority strategy's order.
    programs: str | None = None
    # What to warm ahead of need (core.prefetch): "agent", the next agents' fixed prefixes
    # (KVFlow); "resume", a paused program's context before its tool is expected back.
    prefetch: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.programs not in (None, "fit", "priority"):
            raise ValueError(f"unknown program admission {self.programs!r}; known: fit, priority")
        unknown = self.prefetch - {"agent", "resume"}
        if unknown:
            raise ValueError(f"unknown prefetch kinds {sorted(unknown)}; known: agent, resume")


class PolicyName(StrEnum):
    BASELINE = "baseline"
    PROGRAM_FCFS = "program-fcfs"
    CONTINUUM = "continuum"
    AUTELLIX = "autellix"
    THUNDERAGENT = "thunderagent"
    KVFLOW = "kvflow"
    KVBATON = "kvbaton"


def _baseline() -> Policy:
    return Policy(
        PolicyName.BASELINE,
        make_priority("arrival"),
        admission=False,
        description="pass-through: the engine's own FCFS order and LRU cache",
    )


def _program_fcfs() -> Policy:
    return Policy(
        PolicyName.PROGRAM_FCFS,
        make_priority("program-fcfs"),
        admission=True,
        description="program-level FCFS in the proxy queue, passed on as engine priority",
    )


def _continuum() -> Policy:
    return Policy(
        PolicyName.CONTINUUM,
        make_priority("program-fcfs"),
        admission=True,
        description="Continuum: program-level FCFS and tool-aware TTL pins of paused programs",
        retention="tool-ttl",
    )


def _autellix() -> Policy:
    # ATLAS equals PLAS on chains (each call the child of the last), so one strategy covers
    # single-threaded and DAG programs alike.
    return Policy(
        PolicyName.AUTELLIX,
        make_priority("atlas"),
        admission=True,
        description="Autellix: ATLAS service levels (discretised MLFQ, anti-starvation), "
        "the level passed on as engine priority",
    )


def _thunderagent() -> Policy:
    return Policy(
        PolicyName.THUNDERAGENT,
        make_priority("arrival"),
        admission=True,
        description="ThunderAgent: program-level admission that keeps active programs' KV "
        "within the engine's pool (parked programs wait, resumed best fit), FCFS otherwise",
        programs="fit",
    )


def _kvflow() -> Policy:
    return Policy(
        PolicyName.KVFLOW,
        make_priority("arrival"),
        admission=False,
        description="KVFlow: cache eviction by steps-to-execution of each agent's prefix and "
        "prefetch of the next agents' prefixes; LRU and FCFS otherwise",
        prefetch=frozenset({"agent"}),
    )


def _kvbaton() -> Policy:
    return Policy(
        PolicyName.KVBATON,
        make_priority("program-srpt"),
        admission=True,
        description="shortest predicted remaining program work first, with aging, EDF for "
        "feasible deadlines and weighted fair shares between tenants; tool-aware TTL pins",
        retention="tool-ttl",
        programs="priority",
        prefetch=frozenset({"resume"}),
    )


POLICIES: dict[str, Callable[[], Policy]] = {
    PolicyName.BASELINE: _baseline,
    PolicyName.PROGRAM_FCFS: _program_fcfs,
    PolicyName.CONTINUUM: _continuum,
    PolicyName.AUTELLIX: _autellix,
    PolicyName.THUNDERAGENT: _thunderagent,
    PolicyName.KVFLOW: _kvflow,
    PolicyName.KVBATON: _kvbaton,
}


def make_policy(name: str) -> Policy:
    try:
        return POLICIES[name]()
    except KeyError:
        known = ", ".join(POLICIES)
        raise ValueError(f"unknown policy {name!r}; available: {known}") from None
