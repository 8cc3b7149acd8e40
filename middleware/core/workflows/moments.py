"""Running mean and spread of a stream of numbers, in constant memory.

Welford's update while fewer than ``window`` values have been seen; after that each new
value gets weight ``1/window`` (an exponentially weighted mean and variance), so an
estimate follows a workload that drifts instead of averaging over all of history.
"""

from __future__ import annotations

import math

__all__ = ["Moments"]


class Moments:
    """Mean and standard deviation of the values offered, with ``count`` of them."""

    __slots__ = ("_m2", "count", "mean", "window")

    def __init__(self, window: int = 256) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.window = window
        self.count = 0
        self.mean = 0.0
        self._m2 = 0.0  # sum of squared deviations (Welford), or the EW variance times n

    def add(self, value: float, weight: int = 1) -> None:
        """Offer ``value`` (``weight`` times: a prior that counts as that many samples)."""
        if not math.isfinite(value):
            raise ValueError(f"value must be finite, got {value!r}")
        for _ in range(max(1, weight)):
            self.count += 1
            n = min(self.count, self.window)
            delta = value - self.mean
            self.mean += delta / n
            if self.count <= self.window:
                self._m2 += delta * (value - self.mean)
            else:  # exponentially weighted: the variance decays toward recent values
                self._m2 = (self._m2 / n) * (n - 1) + delta * (value - self.mean)

    @property
    def std(self) -> float:
        n = min(self.count, self.window)
        return math.sqrt(max(self._m2, 0.0) / n) if n > 1 else 0.0
