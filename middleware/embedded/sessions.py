"""SGLang-style sessions: a session keeps its previous prompt + output pinned in the cache.

``/open_session`` creates one; each ``/generate`` with ``session_params.id`` sends only the
new text or tokens, which are appended to the session's previous prompt and output. The KV is
held (an engine hold keyed by `hold_key`) until ``/close_session`` or until ``timeout``
seconds pass without a request.

With the session radix cache on, a request that carries ``session_id`` (no open needed; any
route) has the KV it leaves held under the same key until ``/close_session``: the table
only remembers such ids as *tagged*, so that closing one succeeds.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

__all__ = ["Session", "SessionTable", "hold_key"]


def hold_key(session_id: str) -> str:
    return f"session:{session_id}"


@dataclass(slots=True)
class Session:
    id: str
    timeout_s: float | None  # real seconds of inactivity before it closes
    last_active: float  # real (loop) seconds
    tokens: tuple[int, ...] = ()
    busy: bool = False

    def expired(self, now: float) -> bool:
        return not self.busy and now - self.last_active > (self.timeout_s or math.inf)


class SessionTable:
    """Open sessions by id; times are real (loop) seconds."""

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._tagged: set[str] = set()  # session_id seen on requests (session radix cache)

    def tag(self, session_id: str) -> None:
        self._tagged.add(session_id)

    def untag(self, session_id: str) -> bool:
        """Forget a tagged id; False if it was never tagged."""
        if session_id not in self._tagged:
            return False
        self._tagged.discard(session_id)
        return True

    def open(self, session_id: str | None, timeout_s: float | None, now: float) -> Session:
        """Open a session; raises ValueError if the id is already open."""
        sid = session_id or uuid.uuid4().hex
        if self.get(sid, now) is not None:
            raise ValueError(f"session {sid!r} is already open")
        session = Session(sid, timeout_s, now)
        self._sessions[sid] = session
        return session

    def get(self, session_id: str, now: float) -> Session | None:
        """The open session, or None (an expired one is dropped)."""
        session = self._sessions.get(session_id)
        if session is not None and session.expired(now):
            del self._sessions[session_id]
            return None
        return session

    def close(self, session_id: str) -> Session | None:
        return self._sessions.pop(session_id, None)

    def count(self, now: float) -> int:
        for sid in [s.id for s in self._sessions.values() if s.expired(now)]:
            del self._sessions[sid]
        return len(self._sessions)
