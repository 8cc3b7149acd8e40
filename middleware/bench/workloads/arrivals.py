"""When programs arrive: a Poisson process, as in Continuum's and Autellix's replays."""

from __future__ import annotations

import numpy as np

__all__ = ["poisson_arrivals"]

# Arrivals get their own random stream so that changing the rate only rescales the times and
# leaves every program's content (drawn from another stream) unchanged.
_STREAM = 0


def poisson_arrivals(programs: int, rate: float, seed: int) -> list[float]:
    """Arrival times in seconds of ``programs`` programs arriving at ``rate`` per second.

    Inter-arrival gaps are exponential with mean ``1 / rate``; the first program arrives one
    gap after the trace starts. Times are rounded to microseconds.
    """
    if programs < 0:
        raise ValueError(f"programs must be >= 0, got {programs}")
    if not rate > 0:
        raise ValueError(f"rate must be > 0 programs per second, got {rate}")
    gaps = np.random.default_rng([seed, _STREAM]).standard_exponential(programs) / rate
    return [round(float(t), 6) for t in np.cumsum(gaps)]
