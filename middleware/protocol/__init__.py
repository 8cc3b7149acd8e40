"""Wire-format knowledge: who a request belongs to, what its reply asked for, what it cost.

Everything here is pure: no I/O, no clocks (times are passed in as ``now``), no asyncio,
aiohttp or opentelemetry. Inputs are untrusted JSON and headers; nothing here raises on a
malformed payload, it reads what it can and ignores the rest.
"""

from kvbaton.middleware.protocol.conversation import ContinuationIndex
from kvbaton.middleware.protocol.forwarding import HOP_BY_HOP, strip_own
from kvbaton.middleware.protocol.identity import Identity, identify
from kvbaton.middleware.protocol.payloads import (
    prompt_text,
    reply_message,
    reply_text,
    request_messages,
)
from kvbaton.middleware.protocol.routes import Route, route_of
from kvbaton.middleware.protocol.sse import StreamSummary
from kvbaton.middleware.protocol.tools import ToolCall, requested_tool_calls, returned_tool_call_ids
from kvbaton.middleware.protocol.usage import Usage, find_usage

__all__ = [
    "HOP_BY_HOP",
    "ContinuationIndex",
    "Identity",
    "Route",
    "StreamSummary",
    "ToolCall",
    "Usage",
    "find_usage",
    "identify",
    "prompt_text",
    "reply_message",
    "reply_text",
    "request_messages",
    "requested_tool_calls",
    "returned_tool_call_ids",
    "route_of",
    "strip_own",
]
