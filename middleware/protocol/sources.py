"""The conventions other frameworks and gateways use to say which session a request is in.

Each convention is a *claimer*: a function of the lower-cased headers and the JSON body that
returns a :class:`Claim` or None. :data:`CLAIMERS` lists them in precedence order
(kvbaton's own first, then the others'); the first claim wins. The claimer for "any
``x-<vendor>-session-id``" covers Dynamo's and Claude Code's headers, which are read with
their own rules first: Dynamo's (its canonical headers beat agent-native ones, as in Dynamo),
then Claude Code's, then any other vendor's. kvbaton's own headers
and body field (row 1) are read by :mod:`.identity`, which ranks them above all of these.

Program ids are namespaced, ``"<namespace>:<value>"``, so that equal values from unrelated
conventions never name the same program. The namespace is the source's name, except where
two sources carry the same id space: ``session`` (x-session-id, whether labelled opencode or
session-header), ``litellm`` (its headers and its body fields) and ``metadata``.
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kvbaton.middleware.protocol.values import get, mapping, text

__all__ = ["CLAIMERS", "Body", "Claim", "Claimer", "Headers"]

Headers = Mapping[str, str]
"""Request headers with lower-cased names."""
Body = Mapping[str, Any]
"""The request's JSON body (an empty mapping when it is not a JSON object)."""


@dataclass(frozen=True, slots=True)
class Claim:
    """What one convention says about a request: its program and, maybe, its place in it."""

    program_id: str
    source: str
    agent: str | None = None
    step: str | None = None
    parent_step: str | None = None
    parent_program: str | None = None
    parent_agent: str | None = None
    workflow: str | None = None


Claimer = Callable[[Headers, Body], Claim | None]


def _ns(namespace: str, value: str | None) -> str | None:
    return None if value is None else f"{namespace}:{value}"


# --- headers ------------------------------------------------------------------------------

_VENDOR_SESSION = re.compile(r"x-([a-z0-9][a-z0-9-]{0,62})-session-id")
_NOT_VENDORS = frozenset({"litellm", "kvbaton", "dynamo", "claude-code"})


def _litellm(h: Headers, b: Body) -> Claim | None:
    value = text(h.get("x-litellm-trace-id")) or text(h.get("x-litellm-session-id"))
    return None if value is None else Claim(f"litellm:{value}", "litellm")


def _vendor_session(h: Headers, b: Body) -> Claim | None:
    """Any other ``x-<vendor>-session-id`` (LiteLLM's rule), first by header name."""
    for name in sorted(h):
        match = _VENDOR_SESSION.fullmatch(name)
        if match is None or match[1] in _NOT_VENDORS or "parent" in match[1]:
            continue
        value = text(h[name])
        if value is not None:
            return Claim(f"{match[1]}:{value}", "vendor-session")
    return None


def _helicone(h: Headers, b: Body) -> Claim | None:
    value = text(h.get("helicone-session-id"))
    if value is None:
        return None
    agent, parent_agent, step, parent_step = _helicone_path(h.get("helicone-session-path"))
    return Claim(
        f"helicone:{value}",
        "helicone",
        agent=agent,
        parent_agent=parent_agent,
        step=step,
        parent_step=parent_step,
        workflow=text(h.get("helicone-session-name")),
    )


def _helicone_path(raw: Any) -> tuple[str | None, str | None, str | None, str | None]:
    """``/a/b``: agent b, child of agent a; the path is the step, ``/a`` its parent step."""
    path = text(raw)
    parts = [part for part in (path or "").split("/") if part]
    if path is None or not parts:
        return None, None, None, None
    parent = parts[:-1]
    return (
        text(parts[-1]),
        text(parent[-1]) if parent else None,
        path,
        text("/" + "/".join(parent)) if parent else None,
    )


def _portkey(h: Headers, b: Body) -> Claim | None:
    value = text(h.get("x-portkey-trace-id"))
    if value is None:
        return None
    return Claim(
        f"portkey:{value}",
        "portkey",
        agent=text(h.get("x-portkey-span-name")),
        step=text(h.get("x-portkey-span-id")),
        parent_step=text(h.get("x-portkey-parent-span-id")),
    )


def _session_header(h: Headers, b: Body) -> Claim | None:
    """``x-session-id`` / ``x-session-affinity``; OpenCode adds ``x-parent-session-id``."""
    value = text(h.get("x-session-id")) or text(h.get("x-session-affinity"))
    if value is None:
        return None
    parent = text(h.get("x-parent-session-id"))
    opencode = parent is not None or h.get("user-agent", "").lower().startswith("opencode")
    return Claim(
        f"session:{value}",
        "opencode" if opencode else "session-header",
        parent_program=_ns("session", parent),
    )


def _dynamo(h: Headers, b: Body) -> Claim | None:
    value = text(h.get("x-dynamo-session-id"))
    if value is None:
        return None
    parent = text(h.get("x-dynamo-parent-session-id"))
    return Claim(f"dynamo:{value}", "dynamo", parent_program=_ns("dynamo", parent))


def _claude_code(h: Headers, b: Body) -> Claim | None:
    """The root session is the program; sub-agents are its agents."""
    value = text(h.get("x-claude-code-session-id"))
    if value is None:
        return None
    return Claim(
        f"claude-code:{value}",
        "claude-code",
        agent=text(h.get("x-claude-code-agent-id")),
        parent_agent=text(h.get("x-claude-code-parent-agent-id")),
    )


def _codex(h: Headers, b: Body) -> Claim | None:
    value = text(h.get("session-id")) or text(h.get("session_id"))
    return None if value is None else Claim(f"codex:{value}", "codex")


_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")


def _traceparent(h: Headers, b: Body) -> Claim | None:
    """W3C trace context: the trace is the program, the caller's span the parent step."""
    raw = h.get("traceparent")
    match = _TRACEPARENT.fullmatch(raw.strip()) if isinstance(raw, str) else None
    if match is None:
        return None
    version, trace_id, span_id, _flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or not int(trace_id, 16):
        return None
    if not int(span_id, 16):
        return None
    return Claim(f"traceparent:{trace_id}", "traceparent", parent_step=span_id)


# --- body ---------------------------------------------------------------------------------


def _litellm_body(h: Headers, b: Body) -> Claim | None:
    value = text(b.get("litellm_trace_id")) or text(b.get("litellm_session_id"))
    return None if value is None else Claim(f"litellm:{value}", "litellm-body")


def _metadata_session(h: Headers, b: Body) -> Claim | None:
    value = text(get(b, "metadata", "session_id"))
    return None if value is None else Claim(f"metadata:{value}", "metadata")


def _openrouter(h: Headers, b: Body) -> Claim | None:
    trace = mapping(b.get("trace"))
    value = text(b.get("session_id")) or text(trace.get("trace_id"))
    if value is None:
        return None
    return Claim(
        f"openrouter:{value}",
        "openrouter",
        agent=text(trace.get("span_name")) or text(trace.get("generation_name")),
        parent_step=text(trace.get("parent_span_id")),
        workflow=text(trace.get("trace_name")),
    )


_METADATA_KEYS = ("thread_id", "conversation_id", "program_id", "trace_id")


def _metadata(h: Headers, b: Body) -> Claim | None:
    metadata = mapping(b.get("metadata"))
    for key in _METADATA_KEYS:
        value = text(metadata.get(key))
        if value is not None:
            return Claim(f"metadata:{value}", "metadata")
    return None


def _conversation(h: Headers, b: Body) -> Claim | None:
    """Responses API ``conversation``: an id or ``{"id": ...}``."""
    raw = b.get("conversation")
    value = text(raw) or text(get(raw, "id"))
    return None if value is None else Claim(f"conversation:{value}", "conversation")


def _prompt_cache_key(h: Headers, b: Body) -> Claim | None:
    value = text(b.get("prompt_cache_key"))
    return None if value is None else Claim(f"prompt-cache-key:{value}", "prompt-cache-key")


CLAIMERS: tuple[Claimer, ...] = (
    _litellm,
    _dynamo,
    _claude_code,
    _vendor_session,
    _helicone,
    _portkey,
    _session_header,
    _codex,
    _traceparent,
    _litellm_body,
    _metadata_session,
    _openrouter,
    _metadata,
    _conversation,
    _prompt_cache_key,
)
"""Every convention, highest precedence first."""
