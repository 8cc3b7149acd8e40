"""Token counts from whichever usage shape a reply carries."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kvbaton.middleware.protocol.values import count, get

__all__ = ["Usage", "find_usage", "read_meta_info", "read_usage"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one call. ``cached_tokens`` is None when the engine did not report it
    (vLLM needs ``--enable-prompt-tokens-details``, SGLang ``--enable-cache-report`` for
    its OpenAI routes), which is not the same as no cache hit."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int | None = None


def read_usage(usage: Any) -> Usage | None:
    """An OpenAI ``usage`` object: chat/completions or Responses field names."""
    if not isinstance(usage, Mapping):
        return None
    if "input_tokens" in usage or "output_tokens" in usage:
        return Usage(
            count(usage.get("input_tokens")),
            count(usage.get("output_tokens")),
            _cached(get(usage, "input_tokens_details", "cached_tokens")),
        )
    return Usage(
        count(usage.get("prompt_tokens")),
        count(usage.get("completion_tokens")),
        _cached(get(usage, "prompt_tokens_details", "cached_tokens")),
    )


def read_meta_info(meta_info: Any) -> Usage | None:
    """SGLang's native ``meta_info``."""
    if not isinstance(meta_info, Mapping):
        return None
    return Usage(
        count(meta_info.get("prompt_tokens")),
        count(meta_info.get("completion_tokens")),
        _cached(meta_info.get("cached_tokens")),
    )


def find_usage(payload: Any) -> Usage | None:
    """Usage from a whole reply or stream event: ``usage``, ``meta_info``, ``response.usage``."""
    if not isinstance(payload, Mapping):
        return None
    return (
        read_usage(payload.get("usage"))
        or read_meta_info(payload.get("meta_info"))
        or read_usage(get(payload, "response", "usage"))
    )


def _cached(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return count(value)
