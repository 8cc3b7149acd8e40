"""The embedded engine model: a pure, deterministic stand-in for SGLang.

No asyncio, aiohttp, time or opentelemetry here: every operation takes ``now`` (seconds)
explicitly, so the real-time HTTP server (`kvbaton.middleware.embedded`) and the
discrete-event simulator drive the same code.
"""

from .costs import DEFAULT_PROFILE, Profile, UnknownProfileError, load_profile, profile_names
from .events import (
    EngineStats,
    Event,
    Finished,
    GenRequest,
    Preempted,
    PrefillDone,
    Step,
    TokenOut,
)
from .model import EngineModel, RequestTooLongError
from .radix import RadixCache
from .replies import Reply, ToolCall, chat_reply, text_reply

__all__ = [
    "DEFAULT_PROFILE",
    "EngineModel",
    "EngineStats",
    "Event",
    "Finished",
    "GenRequest",
    "Preempted",
    "PrefillDone",
    "Profile",
    "RadixCache",
    "Reply",
    "RequestTooLongError",
    "Step",
    "TokenOut",
    "ToolCall",
    "UnknownProfileError",
    "chat_reply",
    "load_profile",
    "profile_names",
    "text_reply",
]
