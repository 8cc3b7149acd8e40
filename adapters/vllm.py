"""vLLM: no pin API, so paused programs' prefixes are kept by re-touching, and warmed with
the smallest legal request.

vLLM's prefix cache keeps freed blocks in an LRU free queue; nothing lets a client hold them
(``session_id`` only labels KV events, priority does not touch eviction). Two things keep a
paused program's KV: the proxy's admission control holds back work that would push the
engine's KV past its capacity while pins are live (the scheduler's ``guard_pins``, set
because ``holds_kv`` is false), and this backend re-touches each pinned prefix (`Retoucher`)
until its TTL ends. A warm is a chat completion with ``max_tokens: 1`` (vLLM refuses 0);
``--enable-prompt-tokens-details`` makes it report the cached tokens.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from kvbaton.adapters.http import HttpBackend
from kvbaton.adapters.retouch import Retoucher
from kvbaton.middleware.core.inflight import EngineLoad

__all__ = ["RETOUCH_EVERY_S", "VllmBackend", "chat_warm", "vllm_kv_tokens", "vllm_load"]

# Seconds between touches of a pinned prefix: short next to a tool pause, long next to a warm.
RETOUCH_EVERY_S = 2.0


def chat_warm(body: dict[str, Any]) -> dict[str, Any]:
    """The chat body of a warm: the prompt as the program sends it, one output token."""
    return {**body, "max_tokens": 1, "stream": False}


def _families(metrics: str | None) -> list[Metric]:
    """The metric families of a ``/metrics`` scrape; none if it is missing or malformed."""
    if not metrics:
        return []
    try:
        return list(text_string_to_metric_families(metrics))
    except ValueError:
        return []


def vllm_kv_tokens(metrics: str | None) -> int | None:
    """vLLM's KV pool in tokens, from ``vllm:cache_config_info`` on its ``/metrics``
    (``num_gpu_blocks`` x ``block_size``); None where the scrape does not say."""
    for family in _families(metrics):
        if family.name != "vllm:cache_config_info":
            continue
        for sample in family.samples:
            blocks, size = sample.labels.get("num_gpu_blocks"), sample.labels.get("block_size")
            if blocks and size and blocks.isdigit() and size.isdigit():
                tokens = int(blocks) * int(size)
                return tokens if tokens > 0 else None
    return None


def vllm_load(metrics: str | None) -> EngineLoad | None:
    """Requests running and waiting, from vLLM's ``/metrics`` (summed over its engines);
    None where the scrape does not have both."""
    names = ("vllm:num_requests_running", "vllm:num_requests_waiting")
    found = {
        f.name: sum(sample.value for sample in f.samples)
        for f in _families(metrics)
        if f.name in names
    }
    if len(found) < len(names):
        return None
    return EngineLoad(int(found[names[0]]), int(found[names[1]]))


class VllmBackend(HttpBackend):
    def __init__(self, *args: Any, retouch_every_s: float = RETOUCH_EVERY_S, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.retouch = Retoucher(self.warm, retouch_every_s)

    async def retime_pin(self, key: str, ttl_s: float, prefix: dict[str, Any] | None) -> int:
        self.retouch.start(key, ttl_s, prefix)
        return 0  # vLLM does not say how much of it is still cached

    async def release_pin(self, key: str) -> None:
        self.retouch.stop(key)

    async def release_all(self) -> None:
        await self.retouch.stop_all()

    async def warm(self, body: dict[str, Any]) -> int | None:
        return await self._warm_with("/v1/chat/completions", chat_warm(body))

    async def load(self) -> EngineLoad | None:
        return vllm_load(await self.get_text("/metrics"))

    async def aclose(self) -> None:
        await self.retouch.stop_all()
        await super().aclose()
