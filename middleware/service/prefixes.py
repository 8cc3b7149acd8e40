"""The prefixes a warm loads: each live program's context, and each agent's fixed prefix.

A ``Warm`` action names a program (kind ``resume``: its last request and the reply to it,
which the program's next request extends) or a workflow's agent (kind ``agent``: the
system message(s) and tools that every call of that agent starts with). The store keeps both
as OpenAI chat bodies, from chat calls as they finish. Both tables are LRUs bounded in
entries, and the program contexts also in characters in all (``total_chars``); a context
over ``max_chars`` is not kept. Programs leave with the program table.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from kvbaton.middleware.core.actions import Warm

__all__ = ["PrefixStore", "fixed_prefix", "warm_body"]

# Fields of a chat body that change the prompt the engine builds (and so the cache key), and
# ``tool_choice``, which decides whether an engine accepts the tools at all.
_PROMPT_FIELDS = (
    "model",
    "tools",
    "tool_choice",
    "chat_template",
    "chat_template_kwargs",
    "cache_salt",
    "extra_key",
    "lora_path",
)
_FIXED_ROLES = ("system", "developer")


def warm_body(body: dict[str, Any], messages: list[Any]) -> dict[str, Any]:
    """A chat body with ``body``'s prompt-shaping fields and ``messages``."""
    kept = {k: body[k] for k in _PROMPT_FIELDS if body.get(k) is not None}
    return {**kept, "messages": messages}


class PrefixStore:
    def __init__(
        self,
        programs_capacity: int = 10_000,
        agents_capacity: int = 1_000,
        max_chars: int = 1_000_000,
        total_chars: int = 64_000_000,
    ) -> None:
        self._programs: OrderedDict[str, tuple[dict[str, Any], int]] = OrderedDict()
        self._agents: OrderedDict[tuple[str | None, str], dict[str, Any]] = OrderedDict()
        self.programs_capacity = programs_capacity
        self.agents_capacity = agents_capacity
        self.max_chars = max_chars
        self.total_chars = total_chars
        self.chars = 0  # characters of program contexts held

    def remember(
        self,
        program_id: str,
        workflow: str | None,
        agent: str | None,
        body: dict[str, Any],
        reply: dict[str, Any] | None,
    ) -> None:
        """A chat call of ``program_id`` finished with assistant message ``reply``."""
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return
        context = [*messages, reply] if reply is not None else list(messages)
        self.forget(program_id)  # an older context is stale now, whatever happens next
        size = len(json.dumps(context, default=str))
        if size <= self.max_chars:
            self._programs[program_id] = (warm_body(body, context), size)
            self.chars += size
            while len(self._programs) > self.programs_capacity or self.chars > self.total_chars:
                self.chars -= self._programs.popitem(last=False)[1][1]
        fixed = fixed_prefix(messages)
        if agent is not None and fixed:
            key = (workflow, agent)
            self._agents[key] = warm_body(body, fixed)
            self._agents.move_to_end(key)
            while len(self._agents) > self.agents_capacity:
                self._agents.popitem(last=False)

    def forget(self, program_id: str) -> None:
        gone = self._programs.pop(program_id, None)
        if gone is not None:
            self.chars -= gone[1]

    def resume(self, program_id: str) -> dict[str, Any] | None:
        """The program's last request and reply, as a chat body."""
        found = self._programs.get(program_id)
        return found[0] if found is not None else None

    def agent(self, workflow: str | None, agent: str) -> dict[str, Any] | None:
        """The agent's fixed prefix (system messages and tools) in ``workflow``."""
        found = self._agents.get((workflow, agent))
        if found is not None:
            self._agents.move_to_end((workflow, agent))
        return found

    def body_for(self, warm: Warm) -> dict[str, Any] | None:
        """What ``warm`` loads, or None if the store has not seen it."""
        if warm.kind == "resume":
            return self.resume(warm.program_id)
        if warm.kind == "agent" and warm.agent is not None:
            return self.agent(warm.workflow, warm.agent)
        return None

    def __len__(self) -> int:
        return len(self._programs)


def fixed_prefix(messages: list[Any]) -> list[Any]:
    """The leading system/developer messages: what every call of an agent starts with (a
    chat body needs one message, so an agent without them has no fixed prefix to warm)."""
    fixed = []
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in _FIXED_ROLES:
            break
        fixed.append(message)
    return fixed
