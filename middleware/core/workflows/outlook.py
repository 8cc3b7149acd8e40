"""What was left of finished programs after each of their calls: the remaining-work tables.

At a program's end every call it made is replayed (:class:`CallRecord`): after the call
with index ``k`` (1-based) there were ``N - k`` calls left, the engine time of this call and
the later ones, the tool time after it, and the wall time from its arrival to the program's
end. Those go into :class:`Outlook` moments keyed by the call's agent and a bucket of ``k``,
so a live program's remaining work is read off the table in O(1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from kvbaton.middleware.core.workflows.moments import Moments

__all__ = ["MAX_K_BUCKET", "CallRecord", "Outlook", "k_bucket"]

_EXACT_K = 8  # the first calls each get a bucket; later ones share half-octave buckets
MAX_K_BUCKET = 40


def k_bucket(k: int) -> int:
    """``k`` itself up to 8, then half-octaves (9-11, 12-15, 16-22, ...), capped at 40."""
    if k <= _EXACT_K:
        return max(k, 1)
    return min(MAX_K_BUCKET, _EXACT_K + 1 + int(2 * math.log2(k / _EXACT_K)))


@dataclass(slots=True)
class CallRecord:
    """One call of a live program, as the workflow graph needs it at the program's end."""

    call_id: str
    agent: str
    k: int  # 1-based index among the program's calls
    arrived_at: float
    service_s: float = 0.0
    pause_after_s: float = 0.0
    children: dict[str, int] = field(default_factory=dict)  # agent -> calls that followed


@dataclass(slots=True)
class Outlook:
    """Remaining calls, engine seconds, tool seconds and wall seconds after a call."""

    calls: Moments = field(default_factory=Moments)
    service_s: Moments = field(default_factory=Moments)
    pause_s: Moments = field(default_factory=Moments)
    time_s: Moments = field(default_factory=Moments)
    leaves: int = 0  # calls that nothing followed (the program's ends, for this table)

    @property
    def count(self) -> int:
        return self.calls.count

    def add(self, calls: int, service_s: float, pause_s: float, time_s: float, leaf: bool) -> None:
        self.leaves += leaf
        self.calls.add(calls)
        self.service_s.add(service_s)
        self.pause_s.add(pause_s)
        self.time_s.add(max(0.0, time_s))
