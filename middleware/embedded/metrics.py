"""Prometheus metrics with SGLang's names, in a registry owned by one app (never the global).

Gauges and counters are read from the model at scrape time; latency histograms are observed
by the request handlers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..engine import EngineStats

__all__ = ["EngineMetrics"]

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, float("inf"))


class _StatsCollector(Collector):
    def __init__(self, stats: Callable[[], EngineStats], sessions: Callable[[], int], model: str):
        self._stats, self._sessions, self._model = stats, sessions, model

    def collect(self) -> Iterator[Metric]:
        s = self._stats()
        gauges = {
            "num_running_reqs": ("Running requests.", s.running),
            "num_queue_reqs": ("Waiting requests.", s.waiting),
            "token_usage": ("Fraction of the KV pool in use.", s.token_usage),
            "cache_hit_rate": ("Cached prompt tokens / prompt tokens.", s.cache_hit_rate),
            "kv_used_tokens": ("KV tokens in use.", s.kv_used_tokens),
            "kv_evictable_tokens": ("Cached KV tokens that may be evicted.", s.kv_evictable_tokens),
            "max_total_num_tokens": ("KV pool size in tokens.", s.kv_capacity_tokens),
            "num_streaming_sessions": ("Open sessions.", self._sessions()),
            "streaming_session_held_tokens": ("KV tokens pinned by holds.", s.kv_held_tokens),
        }
        for name, (doc, value) in gauges.items():
            yield self._gauge(name, doc, value)
        counters = {
            "prompt_tokens": ("Prompt tokens prefilled.", s.prompt_tokens_total),
            "generation_tokens": ("Tokens generated.", s.generated_tokens_total),
            "evicted_tokens": ("KV tokens evicted from the prefix cache.", s.evicted_tokens_total),
            "num_requests": ("Finished requests.", s.finished_total),
            "num_aborted_requests": ("Aborted requests.", s.aborted_total),
            "num_retractions": ("Preemptions (retractions).", s.preemptions_total),
            "retracted_tokens": ("Tokens recomputed after preemption.", s.recomputed_tokens_total),
        }
        for name, (doc, value) in counters.items():
            family = CounterMetricFamily(f"sglang:{name}", doc, labels=["model_name"])
            family.add_metric([self._model], value)
            yield family
        cached = CounterMetricFamily(
            "sglang:cached_tokens",
            "Prompt tokens served from the cache.",
            labels=["model_name", "cache_source"],
        )
        cached.add_metric([self._model, "device"], s.cached_tokens_total)
        yield cached

    def _gauge(self, name: str, doc: str, value: float) -> GaugeMetricFamily:
        family = GaugeMetricFamily(f"sglang:{name}", doc, labels=["model_name"])
        family.add_metric([self._model], value)
        return family


class EngineMetrics:
    """The app's registry: scrape-time engine gauges plus request latency histograms."""

    def __init__(
        self, stats: Callable[[], EngineStats], sessions: Callable[[], int], model: str
    ) -> None:
        self.model = model
        self.registry = CollectorRegistry()
        self.registry.register(_StatsCollector(stats, sessions, model))
        self.ttft = Histogram(
            "sglang:time_to_first_token_seconds",
            "Time to first token (real seconds).",
            ["model_name"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.e2e = Histogram(
            "sglang:e2e_request_latency_seconds",
            "End-to-end request latency (real seconds).",
            ["model_name"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe(self, ttft_s: float | None, e2e_s: float) -> None:
        if ttft_s is not None:
            self.ttft.labels(self.model).observe(ttft_s)
        self.e2e.labels(self.model).observe(e2e_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
