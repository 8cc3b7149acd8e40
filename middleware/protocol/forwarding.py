"""What to remove from a request before it goes upstream."""

from collections.abc import Mapping
from typing import Any

from kvbaton.middleware.protocol import wire

__all__ = ["HOP_BY_HOP", "is_hop_by_hop", "strip_own"]

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "host",
        "content-length",
    }
)
"""Headers that describe one connection (RFC 9110 7.6.1) or one body encoding; the
forwarding client sets its own. ``host`` and ``content-length`` are here because the
upstream differs and the body may change."""


def is_hop_by_hop(name: str) -> bool:
    lowered = name.lower()
    return lowered in HOP_BY_HOP or lowered.startswith("proxy-")


def strip_own(headers: Mapping[str, str], body: Any) -> tuple[dict[str, str], Any]:
    """New headers and body without kvbaton's fields and without hop-by-hop headers.

    Also drops the headers that ``Connection`` names; a repeated name keeps its last value.
    The inputs are not mutated: a JSON object body comes back as a new (shallow) dict, any
    other body as it is.
    """
    named = _connection_tokens(headers)
    kept = {
        name: value
        for name, value in headers.items()
        if not name.lower().startswith(wire.HEADER_PREFIX)
        and not is_hop_by_hop(name)
        and name.lower() not in named
    }
    if isinstance(body, Mapping):
        body = {key: value for key, value in body.items() if key != wire.BODY_FIELD}
    return kept, body


def _connection_tokens(headers: Mapping[str, str]) -> frozenset[str]:
    tokens: set[str] = set()
    for name, value in headers.items():
        if name.lower() == "connection" and isinstance(value, str):
            tokens.update(token.strip().lower() for token in value.split(","))
    return frozenset(tokens)
