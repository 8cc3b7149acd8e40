"""Work out which engine sits at a URL and what it can do, and build its backend.

SGLang (and the embedded engine) answer ``/server_info`` with their resolved arguments;
vLLM answers ``/version``. Anything else is treated as a plain OpenAI-compatible server.
The backend class follows from the capabilities found (`backend_for`).
"""

from __future__ import annotations

from typing import Any, Literal

from kvbaton.adapters.base import Capabilities
from kvbaton.adapters.embedded import EmbeddedBackend
from kvbaton.adapters.http import HttpBackend
from kvbaton.adapters.sglang import SglangBackend
from kvbaton.adapters.vllm import VllmBackend, vllm_kv_tokens

__all__ = [
    "EngineKind",
    "backend_for",
    "capabilities_from_server_info",
    "connect",
    "vllm_kv_tokens",
]

EngineKind = Literal["auto", "sglang", "vllm", "openai", "embedded"]
PriorityMode = Literal["auto", "on", "off"]

# vLLM's default --max-num-seqs; its scheduler batches at most this many requests. vLLM does
# not say its own, so the proxy starts from this and follows the load vLLM reports.
VLLM_DEFAULT_MAX_RUNNING = 256


def _find(info: Any, key: str) -> Any:
    """``key`` at the top of SGLang's server_info or in its first internal state."""
    if not isinstance(info, dict):
        return None
    if key in info:
        return info[key]
    states = info.get("internal_states")
    if isinstance(states, list) and states and isinstance(states[0], dict):
        return states[0].get(key)
    return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def capabilities_from_server_info(info: Any, priority: PriorityMode = "auto") -> Capabilities:
    """Capabilities of an SGLang-API engine (SGLang itself or the embedded engine)."""
    embedded = _find(info, "engine") == "kvbaton-embedded"
    scheduled = bool(_find(info, "enable_priority_scheduling")) or embedded
    low_first = bool(_find(info, "schedule_low_priority_values_first"))
    sessions = bool(_find(info, "enable_session_radix_cache"))
    return Capabilities(
        kind="embedded" if embedded else "sglang",
        priority=priority == "on" or (priority == "auto" and scheduled),
        higher_first=not low_first,
        native_generate=True,
        abort_endpoint=True,
        native_pins=embedded,
        session_cache=sessions and not embedded,
        priority_eviction=_find(info, "radix_eviction_policy") == "priority",
        lru_prefix_cache=not embedded and not sessions,
        max_running=_int(_find(info, "max_running_requests")),
        kv_tokens=_int(_find(info, "max_total_num_tokens")),
    )


def _vllm(priority: PriorityMode, kv_tokens: int | None = None) -> Capabilities:
    # vLLM rejects a non-zero priority unless started with --scheduling-policy priority,
    # which it does not report, so the operator says so.
    return Capabilities(
        kind="vllm",
        priority=priority == "on",
        higher_first=False,
        lru_prefix_cache=True,
        max_running=VLLM_DEFAULT_MAX_RUNNING,
        kv_tokens=kv_tokens,
        reports_load=True,
    )


def backend_for(url: str, capabilities: Capabilities, **http: float) -> HttpBackend:
    """The backend that carries out what ``capabilities`` say the engine can do."""
    if capabilities.native_pins:
        return EmbeddedBackend(url, capabilities, **http)
    if capabilities.native_generate:
        return SglangBackend(url, capabilities, **http)
    if capabilities.lru_prefix_cache:
        return VllmBackend(url, capabilities, **http)
    return HttpBackend(url, capabilities, **http)


async def connect(
    url: str,
    kind: EngineKind = "auto",
    *,
    priority: PriorityMode = "auto",
    connect_timeout_s: float = 5.0,
    read_timeout_s: float = 600.0,
) -> HttpBackend:
    """A backend for the engine at ``url``, probing it when ``kind`` is ``auto``.

    An unreachable engine is not an error here: the proxy starts anyway and answers 503
    until the engine is up, with the capabilities the operator named (or none).
    """
    http = {"connect_timeout_s": connect_timeout_s, "read_timeout_s": read_timeout_s}
    probe = HttpBackend(url, Capabilities(kind="openai"), **http)
    try:
        capabilities = await _probe(probe, kind, priority)
    finally:
        await probe.aclose()
    return backend_for(url, capabilities, **http)


async def _probe(backend: HttpBackend, kind: EngineKind, priority: PriorityMode) -> Capabilities:
    if kind == "vllm":
        return _vllm(priority, vllm_kv_tokens(await backend.get_text("/metrics")))
    if kind == "openai":
        return Capabilities(kind="openai")
    try:
        info = await backend.get_json("/server_info")
        if info is None and kind == "auto" and await backend.get_json("/version") is not None:
            return _vllm(priority, vllm_kv_tokens(await backend.get_text("/metrics")))
    except Exception:  # an engine that is down is probed as what the operator named
        info = None
    if info is None and kind == "auto":
        return Capabilities(kind="openai")
    return capabilities_from_server_info(info or {}, priority)
