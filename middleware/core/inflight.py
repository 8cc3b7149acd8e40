"""How many calls the proxy keeps at the engine: the engine's own batch, learnt from its load.

A policy can order only the calls that wait in the proxy. An engine that takes more calls
than it runs at once (vLLM takes every request it is sent, and does not say its
``--max-num-seqs``) keeps the queue inside itself, in its own order, and the proxy's order
decides nothing. Live on vLLM with 8 sequences, program-level FCFS went from 0.85x the
engine alone's mean JCT (calls sent as they came, up to 256) to 1.09x (at most 8 at the
engine), the same as the simulator predicts for it.

So where the operator names no limit and the engine reports its load, the limit follows
it: when the engine has requests waiting, it is already running all it can, and the limit
comes down to what it runs; when the proxy has calls queued while the engine has none
waiting, the limit goes up by an eighth (at least one) per observation, to find room the
engine has gained: from 40 back to 256 in 16 observations.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EngineLoad", "InflightLimit"]


@dataclass(frozen=True, slots=True)
class EngineLoad:
    """What the engine says it is doing: requests in its batch and waiting to get in."""

    running: int
    waiting: int


class InflightLimit:
    """The most calls at the engine at once, between 1 and ``ceiling``.

    Fixed at ``ceiling`` unless ``adaptive``; then moved by :meth:`observe`.
    """

    def __init__(self, ceiling: int, *, adaptive: bool = False) -> None:
        if ceiling < 1:
            raise ValueError("ceiling must be at least 1")
        self.ceiling = ceiling
        self.adaptive = adaptive
        self.value = ceiling

    def observe(self, load: EngineLoad, *, inflight: int, queued: int) -> bool:
        """The engine's load, with the proxy's own calls at the engine and queued;
        returns whether the limit went up (queued calls may be dispatched now)."""
        if not self.adaptive:
            return False
        if load.waiting > 0 and load.running > 0:
            self.value = min(self.ceiling, load.running)
            return False
        if queued > 0 and inflight >= self.value and self.value < self.ceiling:
            self.value = min(self.ceiling, self.value + max(1, self.value // 8))
            return True
        return False
