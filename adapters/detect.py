"""Work out which engine sits at a URL and what it can do.

SGLang (and the embedded engine) answer ``/server_info`` with their resolved arguments;
vLLM answers ``/version``. Anything else is treated as a plain OpenAI-compatible server.
"""

from __future__ import annotations

from typing import Any, Literal

from kvbaton.adapters.base import Capabilities
from kvbaton.adapters.http import HttpBackend

__all__ = ["EngineKind", "capabilities_from_server_info", "connect"]

EngineKind = Literal["auto", "sglang", "vllm", "openai", "embedded"]
PriorityMode = Literal["auto", "on", "off"]

# vLLM's default --max-num-seqs; its scheduler batches at most this many requests.
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
    return Capabilities(
        kind="embedded" if embedded else "sglang",
        priority=priority == "on" or (priority == "auto" and scheduled),
        higher_first=not low_first,
        native_generate=True,
        abort_endpoint=True,
        native_pins=embedded,
        max_running=_int(_find(info, "max_running_requests")),
        kv_tokens=_int(_find(info, "max_total_num_tokens")),
    )


def _vllm(priority: PriorityMode) -> Capabilities:
    # vLLM rejects a non-zero priority unless started with --scheduling-policy priority,
    # which it does not report, so the operator says so.
    return Capabilities(
        kind="vllm",
        priority=priority == "on",
        higher_first=False,
        max_running=VLLM_DEFAULT_MAX_RUNNING,
    )


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
    backend = HttpBackend(
        url,
        Capabilities(kind="openai"),
        connect_timeout_s=connect_timeout_s,
        read_timeout_s=read_timeout_s,
    )
    backend.capabilities = await _probe(backend, kind, priority)
    return backend


async def _probe(backend: HttpBackend, kind: EngineKind, priority: PriorityMode) -> Capabilities:
    if kind == "vllm":
        return _vllm(priority)
    if kind == "openai":
        return Capabilities(kind="openai")
    try:
        info = await backend.get_json("/server_info")
        if info is None and kind == "auto" and await backend.get_json("/version") is not None:
            return _vllm(priority)
    except Exception:  # an engine that is down is probed as what the operator named
        info = None
    if info is None and kind == "auto":
        return Capabilities(kind="openai")
    return capabilities_from_server_info(info or {}, priority)
