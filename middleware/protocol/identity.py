"""Which program a request belongs to, read from its headers and body.

Precedence: kvbaton's own headers, then kvbaton's body field,
then the other conventions in :data:`.sources.CLAIMERS` order. The winning convention alone
supplies the program and its agent/step/parent fields; kvbaton's own fields, where present,
override them. A request that declares nothing gets ``program_id=None``: the caller then
tries ``previous_response_id`` and prefix continuation (:mod:`.conversation`).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kvbaton.middleware.protocol import wire
from kvbaton.middleware.protocol.sources import CLAIMERS, Body, Claim, Headers
from kvbaton.middleware.protocol.values import flag, mapping, seconds, text

__all__ = ["Identity", "identify", "lower_headers"]


@dataclass(frozen=True, slots=True)
class Identity:
    """A request's place in its program, as far as its headers and body declare it.

    ``source`` names the convention that supplied ``program_id`` (``"none"`` when nothing
    did, ``"previous-response"`` when only ``previous_response_id`` hints at it).
    ``deadline_s`` is relative to the request's arrival. ``retry`` marks an SDK retry of an
    earlier attempt (``x-stainless-retry-count`` > 0), not a new step. ``tools`` names the
    tools the program ran since its previous LLM call (``x-kvbaton-tool``), when they were
    not LLM tool calls the proxy could see.
    """

    program_id: str | None = None
    source: str = "none"
    agent: str | None = None
    step: str | None = None
    parent_step: str | None = None
    parent_program: str | None = None
    parent_agent: str | None = None
    last_step: bool = False
    retry: bool = False
    tenant: str | None = None
    workflow: str | None = None
    deadline_s: float | None = None
    previous_response_id: str | None = None
    tools: tuple[str, ...] = ()


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names lower-cased (the last of repeated names wins); non-strings dropped."""
    try:
        items = list(headers.items())
    except (AttributeError, TypeError):
        return {}
    return {
        name.lower(): value
        for name, value in items
        if isinstance(name, str) and isinstance(value, str)
    }


def identify(headers: Mapping[str, str], body: Any) -> Identity:
    """Read a request's program identity; never raises on malformed input."""
    h = lower_headers(headers)
    b = mapping(body)
    own = _own_fields(h, b)
    claim = _winning_claim(own, h, b)
    previous = text(b.get("previous_response_id"))
    return Identity(
        program_id=claim.program_id if claim else None,
        source=claim.source if claim else ("previous-response" if previous else "none"),
        agent=text(own.get(wire.FIELD_AGENT)) or (claim.agent if claim else None),
        step=text(own.get(wire.FIELD_STEP)) or (claim.step if claim else None),
        parent_step=text(own.get(wire.FIELD_PARENT_STEP)) or (claim.parent_step if claim else None),
        parent_program=claim.parent_program if claim else None,
        parent_agent=claim.parent_agent if claim else None,
        last_step=flag(own.get(wire.FIELD_LAST_STEP)) or flag(h.get("x-dynamo-session-final")),
        retry=_is_retry(h.get("x-stainless-retry-count")),
        tenant=_tenant(own, b),
        workflow=text(own.get(wire.FIELD_WORKFLOW)) or (claim.workflow if claim else None),
        deadline_s=seconds(own.get(wire.FIELD_DEADLINE_S)),
        previous_response_id=previous,
        tools=_tools(own.get(wire.FIELD_TOOL)),
    )


def _own_fields(h: Headers, b: Body) -> dict[str, Any]:
    """kvbaton's fields, headers over the body field; only values that read as their type."""
    fields = dict(mapping(b.get(wire.BODY_FIELD)))
    for header, field in wire.HEADER_TO_FIELD.items():
        value = h.get(header)
        if _readable(field, value):
            fields[field] = value
    return fields


def _readable(field: str, value: Any) -> bool:
    if field == wire.FIELD_LAST_STEP:
        return isinstance(value, str) and bool(value.strip())
    if field == wire.FIELD_DEADLINE_S:
        return seconds(value) is not None
    return text(value) is not None


def _winning_claim(own: Mapping[str, Any], h: Headers, b: Body) -> Claim | None:
    program_id = text(own.get(wire.FIELD_PROGRAM_ID))
    if program_id is not None:
        return Claim(program_id, "kvbaton")
    for claimer in CLAIMERS:
        claim = claimer(h, b)
        if claim is not None:
            return claim
    return None


_MAX_TOOLS = 32  # names per call; a longer list is cut, not refused


def _tools(raw: Any) -> tuple[str, ...]:
    """Tool names from ``"a, b"`` (header) or ``["a", "b"]`` / ``"a"`` (body), deduplicated."""
    items = raw.split(",") if isinstance(raw, str) else raw if isinstance(raw, list) else []
    names = (text(item) for item in items[: _MAX_TOOLS * 4] if isinstance(item, str))
    return tuple(dict.fromkeys(n for n in names if n))[:_MAX_TOOLS]


def _is_retry(raw: str | None) -> bool:
    value = (raw or "").strip()
    return value.isdecimal() and len(value) <= 9 and int(value) > 0


def _tenant(own: Mapping[str, Any], b: Body) -> str | None:
    """Ours, else the end-user fields (a tiebreaker only, never a program id)."""
    return (
        text(own.get(wire.FIELD_TENANT)) or text(b.get("safety_identifier")) or text(b.get("user"))
    )
