"""What a benchmark run measured, per call and per program, and the figures made from it.

The simulator and the live replayer both fill in these records; :func:`summarize` turns
them into one policy's entry of the results format (``docs/trace-format.md``), and
:func:`decompose` into its optional ``decomposition``: where the calls' time went.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

__all__ = [
    "DECOMPOSITION_KEYS",
    "RESULT_KEYS",
    "CallRecord",
    "Decomposition",
    "ExtraRequests",
    "ProgramRecord",
    "decompose",
    "summarize",
]

RESULT_KEYS = (
    "programs", "calls", "jct_mean_s", "jct_p50_s", "jct_p95_s", "jct_p99_s", "makespan_s",
    "throughput_programs_per_s", "ttft_mean_s", "ttft_p99_s", "ttft_max_s", "prompt_tokens",
    "cached_tokens", "recomputed_tokens", "preemptions", "failed_programs",
)  # fmt: skip


@dataclass(slots=True)
class CallRecord:
    call_id: str
    sent_at: float
    first_token_at: float | None = None
    finished_at: float | None = None
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    recomputed_tokens: int = 0  # prefix tokens this program had computed before, prefilled again
    ok: bool = True
    # Where the engine side of the call went; filled only by a driver that can see it (the
    # simulator). dispatched_at - sent_at is the proxy's queue; the three spans below add
    # up to finished_at - dispatched_at.
    dispatched_at: float | None = None  # handed to the engine
    engine_queue_s: float = 0.0  # in the engine's waiting queue, re-waits after preemption too
    prefill_s: float = 0.0  # first admitted to first token, less re-waits before it
    decode_s: float = 0.0  # first token to finish, less re-waits after it

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.sent_at


@dataclass(slots=True)
class ProgramRecord:
    program_id: str
    arrival: float
    finished_at: float | None = None  # finish of its last call; None if it failed
    calls: list[CallRecord] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.finished_at is None or not all(c.ok for c in self.calls)

    @property
    def jct_s(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.arrival


def _pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else 0.0


def summarize(programs: Sequence[ProgramRecord], *, preemptions: int = 0) -> dict[str, Any]:
    """One policy's results, with exactly the keys of the results format."""
    done = [p for p in programs if not p.failed]
    jcts = [p.jct_s for p in done if p.jct_s is not None]
    calls = [c for p in programs for c in p.calls]
    ttfts = [c.ttft_s for c in calls if c.ttft_s is not None]
    start = min((p.arrival for p in programs), default=0.0)
    end = max((p.finished_at for p in done if p.finished_at is not None), default=start)
    makespan = end - start
    return {
        "programs": len(programs),
        "calls": len(calls),
        "jct_mean_s": float(np.mean(jcts)) if jcts else 0.0,
        "jct_p50_s": _pct(jcts, 50),
        "jct_p95_s": _pct(jcts, 95),
        "jct_p99_s": _pct(jcts, 99),
        "makespan_s": makespan,
        "throughput_programs_per_s": len(done) / makespan if makespan > 0 else 0.0,
        "ttft_mean_s": float(np.mean(ttfts)) if ttfts else 0.0,
        "ttft_p99_s": _pct(ttfts, 99),
        "ttft_max_s": max(ttfts, default=0.0),
        "prompt_tokens": sum(c.prompt_tokens for c in calls),
        "cached_tokens": sum(c.cached_tokens for c in calls),
        "recomputed_tokens": sum(c.recomputed_tokens for c in calls),
        "preemptions": preemptions,
        "failed_programs": len(programs) - len(done),
    }


@dataclass(slots=True)
class ExtraRequests:
    """Engine requests that are not trace calls (cache warms, touches): how many, and the
    engine seconds (queue + prefill + decode) they took."""

    requests: int = 0
    engine_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Decomposition:
    """Where one policy's run spent its calls' time, as totals over the run (the results
    entry's ``decomposition``; the table divides the spans by ``calls``)."""

    calls: int  # trace calls that ran on the engine
    proxy_queue_s: float  # queued or parked in the proxy before the engine got them
    engine_queue_s: float  # in the engine's waiting queue (re-waits after preemption too)
    prefill_s: float  # first scheduled to first token
    decode_s: float  # first token to finish
    extra_requests: int
    extra_engine_s: float
    prompt_tokens: int
    cached_tokens: int
    recomputed_tokens: int
    preemptions: int

    def to_json(self) -> dict[str, float | int]:
        return asdict(self)


DECOMPOSITION_KEYS = tuple(f.name for f in fields(Decomposition))


def decompose(
    programs: Sequence[ProgramRecord], extra: ExtraRequests, *, preemptions: int = 0
) -> Decomposition:
    """The decomposition of a run whose driver filled in the records' engine spans."""
    calls = [c for p in programs for c in p.calls]
    ran = [c for c in calls if c.dispatched_at is not None and c.finished_at is not None]
    return Decomposition(
        calls=len(ran),
        proxy_queue_s=sum(c.dispatched_at - c.sent_at for c in ran if c.dispatched_at is not None),
        engine_queue_s=sum(c.engine_queue_s for c in ran),
        prefill_s=sum(c.prefill_s for c in ran),
        decode_s=sum(c.decode_s for c in ran),
        extra_requests=extra.requests,
        extra_engine_s=extra.engine_s,
        prompt_tokens=sum(c.prompt_tokens for c in calls),
        cached_tokens=sum(c.cached_tokens for c in calls),
        recomputed_tokens=sum(c.recomputed_tokens for c in calls),
        preemptions=preemptions,
    )
