"""SGLang: soft holds in the session radix cache, warms through the chat route.

Retention. SGLang 0.5 offers two session mechanisms; this backend uses the session radix
cache (``--enable-session-radix-cache``; eviction left at ``lru``, see docs/engines.md):
every call of a program that is to be held carries ``session_id``, with its prompt unchanged;
the engine tags the KV the call leaves in the radix tree with that session and evicts
untagged KV first. ``/close_session`` drops the tags: at every ``Unpin`` (the next call
consumed the pin and was not held again, the TTL expired, the program ended, a pin of an
earlier program displaced it) and at shutdown. The TTL is the proxy's: nothing to tell the
engine at a ``Pin``.

Streaming sessions (``/open_session`` + ``session_params`` with delta tokens) hold KV hard,
but each turn must send only the new tokens exactly as the chat template renders them (the
proxy has no tokenizer, and SGLang's OpenAI routes do not forward ``session_params``), allow
one request in flight and no edits of history (retries, forks and trimmed contexts break
them), and keep KV after a lost proxy until their timeout. The soft hold changes one field of
a request, works on the chat, completions and ``/generate`` routes, and under memory pressure
degrades to the engine's eviction order instead of refusing work.

A held program keeps one session id across its turns; SGLang remembers closed ids (so a
request that finishes after the close cannot tag again), so the next hold takes a fresh one.
Without the session cache, SGLang's radix cache is plain LRU: pinned prefixes are re-touched
as on vLLM, and the proxy guards pins by admission.

Warms: ``/generate`` with ``max_new_tokens: 0`` is prefill-only, but needs the prompt
rendered by the model's chat template, which only the engine has; the chat route renders it
and reads ``max_tokens: 0`` as "not set". So a warm is a chat completion with
``max_tokens: 1``: one decode step on top of the prefill.
"""

from __future__ import annotations

import itertools
from typing import Any

from kvbaton.adapters.http import HttpBackend
from kvbaton.adapters.retouch import Retoucher
from kvbaton.adapters.vllm import RETOUCH_EVERY_S, chat_warm

__all__ = ["SglangBackend", "session_id_for"]

# Bodies of the routes whose request models take ``session_id`` (chat, completions,
# /generate); a Responses body is left as it is.
_SESSION_BODIES = ("messages", "prompt", "text", "input_ids")


def session_id_for(key: str, n: int) -> str:
    return f"kvbaton-{key}-{n}"


class SglangBackend(HttpBackend):
    def __init__(self, *args: Any, retouch_every_s: float = RETOUCH_EVERY_S, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._sessions: dict[str, str] = {}  # hold key -> its open session id
        self._ids = itertools.count(1)
        self.retouch = Retoucher(self.warm, retouch_every_s)

    @property
    def sessions(self) -> dict[str, str]:
        """Held keys and their session ids (read-only view for tests and metrics)."""
        return dict(self._sessions)

    def hold_at_finish(self, body: dict[str, Any], key: str, grace_s: float) -> None:
        if not self.capabilities.session_cache or not any(f in body for f in _SESSION_BODIES):
            return
        sid = self._sessions.get(key)
        if sid is None:
            sid = self._sessions[key] = session_id_for(key, next(self._ids))
        body["session_id"] = sid

    async def retime_pin(self, key: str, ttl_s: float, prefix: dict[str, Any] | None) -> int:
        if not self.capabilities.session_cache:
            self.retouch.start(key, ttl_s, prefix)
        return 0  # SGLang does not say how much of a session's KV is still cached

    async def release_pin(self, key: str) -> None:
        self.retouch.stop(key)
        sid = self._sessions.pop(key, None)
        if sid is not None:
            await self._post_json("/close_session", {"session_id": sid})

    async def release_all(self) -> None:
        await self.retouch.stop_all()
        sessions, self._sessions = self._sessions, {}
        await self._post_each("/close_session", [{"session_id": s} for s in sessions.values()])

    async def warm(self, body: dict[str, Any]) -> int | None:
        return await self._warm_with("/v1/chat/completions", chat_warm(body))

    async def aclose(self) -> None:
        await self.retouch.stop_all()
        await super().aclose()
