"""The proxy's error hierarchy. The service maps it to OpenAI-style JSON in one place."""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "BadRequest",
    "ProxyError",
]


class ProxyError(Exception):
    """Base of every error the proxy answers with a JSON error body."""

    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class BadRequest(ProxyError):
    status = 400
    type = "invalid_request_error"


class BackendError(ProxyError):
    """The engine answered with something the proxy could not use."""

    status = 502
    type = "upstream_error"
    code = "bad_gateway"


class BackendUnavailable(BackendError):
    """The engine could not be reached (down, restarting, refusing connections)."""

    status = 503
    code = "engine_unavailable"


class BackendTimeout(BackendError):
    """The engine did not answer in time."""

    status = 504
    code = "engine_timeout"
