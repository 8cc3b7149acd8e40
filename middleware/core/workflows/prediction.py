"""What the workflow graph predicts for a live program, as plain values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kvbaton.middleware.core.workflows.moments import Moments

__all__ = ["Estimate", "NextAgent", "PausePrediction", "Prediction"]


@dataclass(frozen=True, slots=True)
class Estimate:
    """A predicted quantity: its mean, standard deviation, and how many samples back it.

    ``source`` says which table answered: ``agent+k`` (the call's agent at this point of the
    program), ``workflow+k``, ``agent``, ``workflow``, or ``none`` (nothing learned yet;
    ``mean`` is then 0).
    """

    mean: float
    std: float
    samples: int
    source: str

    @staticmethod
    def of(moments: Moments | None, source: str, *, less: float = 0.0) -> Estimate:
        """From ``moments``, less what already happened (``less``), never below 0."""
        if moments is None or moments.count == 0:
            return Estimate(0.0, 0.0, 0, "none")
        return Estimate(max(0.0, moments.mean - less), moments.std, moments.count, source)

    def to_json(self) -> dict[str, Any]:
        return {
            "mean": round(self.mean, 6),
            "std": round(self.std, 6),
            "samples": self.samples,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class NextAgent:
    """An agent that may follow the current call (``(end)``: the program ends)."""

    agent: str
    probability: float
    samples: int  # observed transitions (declared priors not counted)
    fan_out: float  # expected calls of that agent started from one call of this one


@dataclass(frozen=True, slots=True)
class PausePrediction:
    """The tool pause expected after the current call.

    ``probability``: that the call is followed by a tool pause at all (1 once the call
    asked for tools); ``mean_s`` and ``p90_s``: its length when it happens.
    """

    probability: float
    mean_s: float
    p90_s: float
    samples: int
    tools: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "probability": round(self.probability, 6),
            "mean_s": round(self.mean_s, 6),
            "p90_s": round(self.p90_s, 6),
            "samples": self.samples,
            "tools": list(self.tools),
        }


@dataclass(frozen=True, slots=True)
class Prediction:
    """A live program's outlook from its workflow's graph, made at ``at``.

    ``remaining_calls``: calls still to arrive; ``remaining_service_s``: engine seconds
    still to serve (the current call's included while it has not finished);
    ``remaining_pause_s``: tool seconds still to come; ``remaining_time_s``: wall seconds
    until the program ends, as observed in finished programs (queueing included).
    """

    workflow: str
    agent: str
    calls: int
    at: float
    next_agents: tuple[NextAgent, ...]
    tool_pause: PausePrediction
    remaining_calls: Estimate
    remaining_service_s: Estimate
    remaining_pause_s: Estimate
    remaining_time_s: Estimate

    @property
    def next_agent(self) -> str | None:
        return self.next_agents[0].agent if self.next_agents else None

    def to_json(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "agent": self.agent,
            "calls": self.calls,
            "at": self.at,
            "next_agents": [
                {
                    "agent": n.agent,
                    "probability": round(n.probability, 6),
                    "samples": n.samples,
                    "fan_out": round(n.fan_out, 3),
                }
                for n in self.next_agents
            ],
            "tool_pause": self.tool_pause.to_json(),
            "remaining_calls": self.remaining_calls.to_json(),
            "remaining_service_s": self.remaining_service_s.to_json(),
            "remaining_pause_s": self.remaining_pause_s.to_json(),
            "remaining_time_s": self.remaining_time_s.to_json(),
        }
