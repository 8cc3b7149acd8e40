"""One middleware maps every failure to an OpenAI-style JSON error."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from kvbaton.adapters.errors import ProxyError

__all__ = ["error_body", "error_middleware", "error_response"]

log = logging.getLogger("kvbaton.service")

_HTTP_TYPES = {
    400: "invalid_request_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
}


def error_body(message: str, type_: str, *, param: str | None = None, code: Any = None) -> Any:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_response(status: int, message: str, type_: str, **kw: Any) -> web.Response:
    return web.json_response(error_body(message, type_, **kw), status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except ProxyError as exc:
        return error_response(exc.status, exc.message, exc.type, param=exc.param, code=exc.code)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.text if exc.status != 404 else f"no route {request.method} {request.path}"
        return error_response(
            exc.status, message or exc.reason, _HTTP_TYPES.get(exc.status, "error")
        )
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal proxy error", "server_error")
