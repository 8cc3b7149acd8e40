"""Reading and validating client requests for the LLM routes."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kvbaton.adapters.errors import BadRequest
from kvbaton.middleware.protocol.routes import Route

__all__ = ["read_call_body"]


class _Lenient(BaseModel):
    # Engines accept many more fields than these; the proxy checks only what it reads.
    model_config = ConfigDict(extra="allow", strict=True)

    stream: bool | None = None


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    role: str


class _Chat(_Lenient):
    messages: list[_Message] = Field(min_length=1)
    model: str | None = None


class _Completion(_Lenient):
    prompt: str | list[Any]
    model: str | None = None


class _Responses(_Lenient):
    input: str | list[Any]
    model: str | None = None


class _Generate(_Lenient):
    text: str | list[str] | None = None
    input_ids: list[int] | list[list[int]] | None = None
    sampling_params: dict[str, Any] | list[dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _one_input(self) -> _Generate:
        if (self.text is None) == (self.input_ids is None):
            raise ValueError("give exactly one of 'text' and 'input_ids'")
        return self


_MODELS: dict[Route, type[_Lenient]] = {
    Route.CHAT: _Chat,
    Route.COMPLETIONS: _Completion,
    Route.RESPONSES: _Responses,
    Route.GENERATE: _Generate,
}


async def read_call_body(request: web.Request, route: Route) -> dict[str, Any]:
    """The request's JSON object, checked for the fields the proxy relies on."""
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    try:
        _MODELS[route].model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = _param(body, first["loc"])
        raise BadRequest(f"{param or 'body'}: {first['msg']}", param=param) from exc
    return body


def _param(body: Any, loc: tuple[int | str, ...]) -> str | None:
    """The dotted path of the offending field, without pydantic's union-branch names."""
    path: list[str] = []
    for part in loc:
        child = _child(body, part)
        if child is _MISSING:
            if not path or isinstance(body, dict):
                path.append(str(part))  # a missing field: name it, then stop
            break
        body = child
        path.append(str(part))
    return ".".join(path) or None


_MISSING = object()


def _child(value: Any, part: int | str) -> Any:
    if isinstance(value, dict):
        return value.get(part, _MISSING)
    if isinstance(value, list) and isinstance(part, int) and part < len(value):
        return value[part]
    return _MISSING
