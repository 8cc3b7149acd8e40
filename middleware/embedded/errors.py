"""One error type for the server, rendered as OpenAI-style JSON in one middleware."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from .keys import Handler

__all__ = ["ApiError", "error_middleware", "error_response", "read_json_object"]


class ApiError(Exception):
    """A client-visible failure: HTTP ``status`` and an OpenAI error body."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        param: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.message, self.status, self.param, self.kind = message, status, param, kind

    @classmethod
    def from_validation(cls, exc: ValidationError) -> ApiError:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        return cls(f"{param}: {first['msg']}" if param else first["msg"], param=param)


def error_response(err: ApiError) -> web.Response:
    body = {"message": err.message, "type": err.kind, "param": err.param, "code": err.status}
    return web.json_response({"error": body}, status=err.status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(err)
    except ValidationError as exc:
        return error_response(ApiError.from_validation(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        kind = "not_found_error" if exc.status == 404 else "invalid_request_error"
        return error_response(ApiError(exc.reason, status=exc.status, kind=kind))


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 ApiError."""
    try:
        body = json.loads(await request.read() or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError("request body must be a JSON object")
    return body
