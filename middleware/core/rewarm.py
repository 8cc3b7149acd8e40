"""Re-warm a paused program's context shortly before its tool is expected back.

When a program's pin ends during a tool pause (it ran out, gave way, or the retention
rule never pinned), its KV may be evicted before the program returns, and the return then
pays a full prefill. If the tool's pauses are known, the program is expected back at the
median of the pauses longer than the one it is in; the rewarmer warms its context a reload
time before that (the warm is a prefill of the same prompt, so it takes about as long),
and not at all if the program comes back first. Cold tools (no samples yet) are not
guessed at.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from kvbaton.middleware.core.actions import Warm
from kvbaton.middleware.core.deadlines import Deadlines
from kvbaton.middleware.core.toolstats import ToolStats

__all__ = ["Rewarmer"]


class Rewarmer:
    """Scheduled re-warms, one per program at most; ``tick`` emits those that are due."""

    def __init__(self, tools: ToolStats, reload_s: Callable[[int], float]) -> None:
        self.tools = tools
        self.reload_s = reload_s
        self._due: Deadlines[int] = Deadlines()  # program -> when to warm, and its tokens
        self.scheduled = 0

    def __len__(self) -> int:
        return len(self._due)

    def pin_lost(
        self, program_id: str, tools: tuple[str, ...], paused_at: float, tokens: int, now: float
    ) -> None:
        """The program's KV is unprotected from ``now`` while its ``tools`` run (since
        ``paused_at``): plan a warm of its ``tokens`` before it is expected back."""
        back = self._expected_back(tools, now - paused_at)
        if back is None or tokens <= 0:
            return
        at = max(now, paused_at + back - self.reload_s(tokens))
        self._due.set(program_id, at, tokens)
        self.scheduled += 1

    def returned(self, program_id: str) -> None:
        """The program is back (or gone): its warm, if still planned, is not needed."""
        self._due.discard(program_id)

    def tick(self, now: float) -> list[Warm]:
        warms: list[Warm] = []
        while (due := self._due.pop_due(now)) is not None:
            warms.append(Warm("resume", *due))
        return warms

    def next_deadline(self) -> float | None:
        return self._due.first()

    def _expected_back(self, tools: tuple[str, ...], elapsed: float) -> float | None:
        """Median pause given that it has lasted ``elapsed``, for the slowest tool."""
        best: float | None = None
        for tool in tools or (None,):
            samples, _ = self.tools.samples(tool)
            if samples is None:
                return None
            longer = samples[np.searchsorted(samples, elapsed, side="right") :]
            if longer.size == 0:
                return None  # longer than every pause seen: no telling when it ends
            median = float(longer[longer.size // 2])
            best = median if best is None else max(best, median)
        return best
