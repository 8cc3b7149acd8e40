"""Which agent made a call, when nothing declares it: the agent is its instructions.

Agent frameworks give each agent its own system prompt (chat: the leading ``system`` or
``developer`` message; Responses: ``instructions``, or such a message among the input
items) and resend it unchanged on every call, while no framework tested here puts the
agent's name on the wire. So calls under the same instructions are one agent, named
``"system:<8 hex digits>"`` after a hash of the instructions' text; a call without
instructions has no agent. Declared agents (``x-kvbaton-agent`` and the conventions in
:mod:`.sources`) win over this.
"""

import hashlib
from typing import Any

from kvbaton.middleware.protocol.payloads import request_messages
from kvbaton.middleware.protocol.values import get, sequence

__all__ = ["AGENT_PREFIX", "instructions_agent", "instructions_of"]

AGENT_PREFIX = "system:"
_INSTRUCTION_ROLES = ("system", "developer")


def instructions_agent(route: str, body: Any) -> str | None:
    """The agent name for a request's instructions, or None when it has none."""
    instructions = instructions_of(route, body)
    if instructions is None:
        return None
    digest = hashlib.blake2b(instructions.encode("utf-8", "surrogatepass"), digest_size=4)
    return AGENT_PREFIX + digest.hexdigest()


def instructions_of(route: str, body: Any) -> str | None:
    """Responses ``instructions``, else the text of the first system/developer message."""
    instructions = get(body, "instructions")
    if not isinstance(instructions, str):
        first = sequence(request_messages(route, body))[:1]
        if not first or get(first[0], "role") not in _INSTRUCTION_ROLES:
            return None
        instructions = _content_text(get(first[0], "content"))
    return instructions.strip() or None


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = (get(part, "text") for part in sequence(content))
    return "".join(part for part in parts if isinstance(part, str))
