"""Prometheus metrics of the proxy, in a registry per app (no per-program labels)."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["ProxyMetrics"]

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class ProxyMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "kvbaton_requests", "LLM calls answered", ["route", "code"], registry=r
        )
        self.request_seconds = Histogram(
            "kvbaton_request_seconds",
            "time from arrival to last byte",
            ["route"],
            buckets=_LATENCY,
            registry=r,
        )
        self.queue_wait_seconds = Histogram(
            "kvbaton_queue_wait_seconds",
            "time a call waited in the proxy queue",
            buckets=_LATENCY,
            registry=r,
        )
        self.tool_pause_seconds = Histogram(
            "kvbaton_tool_pause_seconds",
            "tool pauses seen between calls of a program",
            buckets=_LATENCY,
            registry=r,
        )
        self.tokens = Counter(
            "kvbaton_tokens", "tokens reported by the engine", ["kind"], registry=r
        )
        self.upstream_errors = Counter(
            "kvbaton_upstream_errors", "engine failures", ["code"], registry=r
        )
        self.client_disconnects = Counter(
            "kvbaton_client_disconnects", "calls whose client went away", registry=r
        )
        self.pins = Counter(
            "kvbaton_pins", "KV pins set, and ended by reason", ["event"], registry=r
        )
        self.warms = Counter(
            "kvbaton_warms",
            "prefix warms by kind (resume, agent) and result (sent, failed, skipped)",
            ["kind", "result"],
            registry=r,
        )
        self.programs_expired = Counter(
            "kvbaton_programs_expired", "programs dropped from the table", registry=r
        )
        self._gauges: dict[str, Gauge] = {}

    def gauge(self, name: str, doc: str, read: Callable[[], float]) -> None:
        """A gauge read at scrape time (queue depth, programs, ...)."""
        gauge = Gauge(name, doc, registry=self.registry)
        gauge.set_function(read)
        self._gauges[name] = gauge

    async def handle(self, request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(self.registry))
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response
