"""Workload statistics that Continuum's TTL rule reads, in bounded memory.

Three estimators, each fed by the scheduler and read by :mod:`retention`:

- :class:`ToolStats`: tool pause durations (seconds) per tool and overall, as reservoirs,
  with Continuum's cold start (a tool's own samples only once it has more than K).
- :class:`ProgramLengths`: calls per finished program, giving η = -Corr(k, N-k).
- :class:`QueueingDelay`: T, the mean queueing delay (seconds) of calls whose program
  came back to an evicted cache.

Everything is deterministic: reservoirs draw from a seeded ``random.Random``.
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict, deque
from collections.abc import Iterable
from enum import StrEnum

import numpy as np
import numpy.typing as npt

__all__ = [
    "COLD_START_K",
    "FloatArray",
    "ProgramLengths",
    "QueueingDelay",
    "Reservoir",
    "SampleSource",
    "ToolStats",
]

FloatArray = npt.NDArray[np.float64]

COLD_START_K = 100  # Continuum §5.1: trust a distribution once it has more than K samples


class Reservoir:
    """A uniform sample of at most ``capacity`` of the values seen (Vitter's algorithm R).

    ``count`` is every value ever offered; the sample keeps ``min(count, capacity)``.
    """

    __slots__ = ("_rng", "_sorted", "_values", "capacity", "count")

    def __init__(self, capacity: int, rng: random.Random) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.count = 0
        self._rng = rng
        self._values: list[float] = []
        self._sorted: FloatArray | None = None

    def __len__(self) -> int:
        return len(self._values)

    def add(self, value: float) -> bool:
        """Offer one value; returns whether the sample changed."""
        self.count += 1
        if len(self._values) < self.capacity:
            self._values.append(value)
        else:
            slot = self._rng.randrange(self.count)
            if slot >= self.capacity:
                return False  # not kept: the sorted cache stays valid
            self._values[slot] = value
        self._sorted = None
        return True

    def sorted(self) -> FloatArray:
        """The sample in ascending order, read-only; cached until the sample changes."""
        if self._sorted is None:
            values = np.sort(np.asarray(self._values, dtype=np.float64))
            values.flags.writeable = False
            self._sorted = values
        return self._sorted


def _check_duration(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"duration must be finite, got {value!r}")
    return max(0.0, value)  # clock skew between drivers can make a tiny gap negative


class SampleSource(StrEnum):
    TOOL = "tool"  # the tool's own pauses
    GLOBAL = "global"  # all pauses: the tool is new or rare
    DEFAULT = "default"  # too few pauses of any kind: use the Exp(1) rule


class ToolStats:
    """Tool pause durations (seconds): a reservoir per tool plus one over all pauses.

    At most ``max_tools`` tools are kept; when a new one arrives the tool observed least
    recently is forgotten, since tool names come from clients and are unbounded.
    """

    def __init__(
        self,
        capacity_per_tool: int = 1000,
        max_tools: int = 1000,
        seed: int = 0,
        *,
        min_samples: int = COLD_START_K,
    ) -> None:
        if max_tools < 1:
            raise ValueError("max_tools must be at least 1")
        self.capacity_per_tool = capacity_per_tool
        self.max_tools = max_tools
        self.min_samples = min_samples
        self._rng = random.Random(seed)
        self._global = Reservoir(capacity_per_tool, self._rng)
        self._tools: OrderedDict[str, Reservoir] = OrderedDict()
        self._sums: dict[str, float] = {}

    def __len__(self) -> int:
        """Number of tools tracked."""
        return len(self._tools)

    def observe(self, tool: str, pause_s: float) -> None:
        """One pause of ``pause_s`` seconds after a call that asked for ``tool``."""
        self.observe_pause((tool,), pause_s)

    def observe_pause(self, tools: Iterable[str], pause_s: float) -> None:
        """One pause of ``pause_s`` seconds during which ``tools`` ran (maybe in parallel).

        The pause counts once in the global sample (it is one pause) and once for each
        distinct tool: the program came back only when all of them were done, so that
        is how long a pause that includes this tool lasted. Caller: the scheduler, when a
        program returns with its tools' results (``PauseObserved``).
        """
        pause_s = _check_duration(pause_s)
        self._global.add(pause_s)
        for tool in dict.fromkeys(tools):
            self._reservoir(tool).add(pause_s)
            self._sums[tool] += pause_s

    def samples(self, tool: str | None) -> tuple[FloatArray | None, SampleSource]:
        """Sorted pause samples (seconds) to decide a TTL for ``tool``, and their source.

        Continuum's cold start: the tool's own samples once it has more than K
        observations, else all pauses once there are more than K, else ``None``.
        ``tool=None`` (the call asked for no named tool) goes straight to all pauses.
        """
        own = self._tools.get(tool) if tool is not None else None
        if own is not None and own.count > self.min_samples:
            return own.sorted(), SampleSource.TOOL
        if self._global.count > self.min_samples:
            return self._global.sorted(), SampleSource.GLOBAL
        return None, SampleSource.DEFAULT

    def mean(self, tool: str) -> float | None:
        """Mean of every pause (seconds) seen for ``tool``; ``None`` if unseen."""
        reservoir = self._tools.get(tool)
        if reservoir is None:
            return None
        return self._sums[tool] / reservoir.count

    def count(self, tool: str | None = None) -> int:
        """Pauses seen for ``tool`` (all pauses when ``None``), kept or not."""
        if tool is None:
            return self._global.count
        reservoir = self._tools.get(tool)
        return reservoir.count if reservoir is not None else 0

    def _reservoir(self, tool: str) -> Reservoir:
        reservoir = self._tools.get(tool)
        if reservoir is not None:
            self._tools.move_to_end(tool)
            return reservoir
        if len(self._tools) >= self.max_tools:
            old, _ = self._tools.popitem(last=False)
            del self._sums[old]
        reservoir = self._tools[tool] = Reservoir(self.capacity_per_tool, self._rng)
        self._sums[tool] = 0.0
        return reservoir


class ProgramLengths:
    """Calls per finished program, N, and Continuum's η = -Corr(k, N-k).

    Definition used here: every finished program in the reservoir contributes the N
    pairs (k, N-k) for k = 1..N (k calls served so far, N-k still to come), and the
    Pearson correlation is taken over all pairs pooled. A fixed N makes N-k a linear
    function of k, so η = 1; a geometric N is memoryless (N-k given N ≥ k does not
    depend on k), so η ≈ 0. η < 0 is possible (longer programs also have more left).
    The pooled moments have closed forms per N, so this is one vectorised pass.
    """

    def __init__(self, capacity: int = 1000, seed: int = 0, *, min_programs: int = 20) -> None:
        self.min_programs = min_programs
        self._reservoir = Reservoir(capacity, random.Random(seed))
        self._eta: float | None = None

    def __len__(self) -> int:
        return len(self._reservoir)

    @property
    def count(self) -> int:
        return self._reservoir.count

    def observe_program(self, n_calls: int) -> None:
        """A program finished after ``n_calls`` calls (its last step included)."""
        if n_calls < 1:
            raise ValueError("a finished program has at least one call")
        if self._reservoir.add(float(n_calls)):
            self._eta = None

    def eta(self) -> float:
        """η in [-1, 1]; 1.0 (Continuum's fixed-length case) until ``min_programs`` finish."""
        if self._reservoir.count < self.min_programs:
            return 1.0
        if self._eta is None:
            self._eta = _eta_of(self._reservoir.sorted())
        return self._eta


def _eta_of(lengths: FloatArray) -> float:
    n = lengths
    pairs = n.sum()
    # Per program, over k = 1..N with x = k and y = N - k:
    sx = n * (n + 1) / 2
    sxx = n * (n + 1) * (2 * n + 1) / 6
    sy = n * (n - 1) / 2
    syy = (n - 1) * n * (2 * n - 1) / 6
    sxy = n * sx - sxx
    cov = sxy.sum() / pairs - (sx.sum() / pairs) * (sy.sum() / pairs)
    var_x = sxx.sum() / pairs - (sx.sum() / pairs) ** 2
    var_y = syy.sum() / pairs - (sy.sum() / pairs) ** 2
    if var_x <= 0 or var_y <= 0:
        return 1.0  # every program had one call: N is fixed
    return float(np.clip(-cov / math.sqrt(var_x * var_y), -1.0, 1.0))


class QueueingDelay:
    """T: mean queueing delay (seconds) over the last ``window`` evicted-then-returning calls.

    The caller decides which calls count (Continuum: calls whose program came back and
    found its KV evicted). Starts at 0, so with no evidence pins are worth only reload.
    """

    def __init__(self, window: int = 200) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self._delays: deque[float] = deque(maxlen=window)
        self._mean: float | None = 0.0

    def __len__(self) -> int:
        return len(self._delays)

    def observe(self, delay_s: float) -> None:
        self._delays.append(_check_duration(delay_s))
        self._mean = None

    def mean(self) -> float:
        if self._mean is None:
            # fsum over the window, not a running sum, so rounding cannot drift
            self._mean = math.fsum(self._delays) / len(self._delays)
        return self._mean
