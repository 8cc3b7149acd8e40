"""The embedded engine: kvbaton's native pins, and prefill-only warms.

A dispatched call carries ``kvbaton_hold: {key, ttl_s}``; the engine pins its prompt and
output under ``key`` when it finishes (atomically, so nothing is evicted in between), for a
short grace; the proxy then re-times the pin to the program's TTL (``/kvbaton/v1/hold``) or
releases it (``/kvbaton/v1/release``). A warm is SGLang's own: ``/generate`` with
``max_new_tokens: 0`` on the prompt rendered with the engine's chat template, which the
proxy knows for this engine (``kvbaton.middleware.engine.tokens``).
"""

from __future__ import annotations

from typing import Any

from kvbaton.adapters.http import HttpBackend
from kvbaton.middleware.engine.tokens import render_chat

__all__ = ["EmbeddedBackend"]


class EmbeddedBackend(HttpBackend):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._held: set[str] = set()  # keys the engine may still hold (released at shutdown)

    def hold_at_finish(self, body: dict[str, Any], key: str, grace_s: float) -> None:
        body["kvbaton_hold"] = {"key": key, "ttl_s": grace_s}
        self._held.add(key)

    async def retime_pin(self, key: str, ttl_s: float, prefix: dict[str, Any] | None) -> int:
        reply = await self._post_json("/kvbaton/v1/hold", {"key": key, "ttl_s": ttl_s})
        held = reply.get("held_tokens", 0) if isinstance(reply, dict) else 0
        return held if isinstance(held, int) else 0

    async def release_pin(self, key: str) -> None:
        self._held.discard(key)
        await self._post_json("/kvbaton/v1/release", {"key": key})

    async def release_all(self) -> None:
        keys, self._held = self._held, set()
        await self._post_each("/kvbaton/v1/release", [{"key": key} for key in keys])

    async def warm(self, body: dict[str, Any]) -> int | None:
        messages, tools = body.get("messages"), body.get("tools")
        if not isinstance(messages, list) or not messages:
            return None
        try:
            text = render_chat(messages, tools if isinstance(tools, list) else None)
        except (AttributeError, KeyError, TypeError, ValueError):
            return None  # not a chat body this engine's template can render
        request = {"text": text, "sampling_params": {"max_new_tokens": 0}}
        return await self._warm_with("/generate", request)
