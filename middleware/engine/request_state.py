"""Scheduling state of one live request inside `EngineModel` (mutable, model-private)."""

from __future__ import annotations

import zlib

from .events import GenRequest
from .radix import RadixNode

__all__ = ["RequestState"]


class RequestState:
    """Mutable scheduling state of one live request."""

    __slots__ = (
        "cached",
        "computed",
        "key",
        "node",
        "order",
        "out",
        "private",
        "queued_at",
        "queued_s",
        "reported_cached",
        "req",
        "running",
        "seed",
        "seq",
        "target",
    )

    def __init__(self, req: GenRequest, order: int, key: tuple[float, ...], now: float) -> None:
        self.req = req
        self.order = order
        self.key = key
        out_len = len(req.output) if req.output is not None else req.max_new_tokens
        self.target = min(out_len, req.max_new_tokens)
        self.out: list[int] = []
        self.seq: tuple[int, ...] = ()  # prompt + outputs so far, at the current admission
        self.node: RadixNode | None = None  # locked cached prefix
        self.cached = 0  # tokens matched at the current admission
        self.computed = 0  # positions of seq with KV
        self.private = 0  # KV tokens owned outside the tree
        self.reported_cached: int | None = None
        self.queued_at = now  # when it last entered the waiting queue
        self.queued_s = 0.0  # time in the waiting queue, over all admissions so far
        self.running = False
        self.seed = zlib.crc32(req.rid.encode())

    def next_token(self) -> int:
        i = len(self.out)
        if self.req.output is not None:
            return int(self.req.output[i])
        return (self.seed + i) & 0x7FFFFFFF
