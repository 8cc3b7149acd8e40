"""``/concate_and_append_request``, which SGLang's frontend language sends to join forks.

``RuntimeEndpoint.concatenate_and_append`` asks the server to append the KV of the forked
requests ``src_rids`` to request ``dst_rid`` (``s.join(mode="concate_and_append")``); the
frontend has already appended their text to ``dst_rid``'s own. The engine model caches by
token prefix and keeps no per-request KV to move, so there is nothing to do: the next call
of ``dst_rid`` sends the joined text, which hits the cache up to where it was computed
before. The route validates the body and answers as SGLang did (200, empty body).
SGLang 0.5's own server no longer has this route.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from .errors import read_json_object

__all__ = ["add_frontend_routes"]


class _ConcatenateAndAppend(BaseModel):
    model_config = ConfigDict(extra="ignore")
    src_rids: list[str] = Field(min_length=1)
    dst_rid: str


def add_frontend_routes(app: web.Application) -> None:
    app.router.add_post("/concate_and_append_request", concatenate_and_append)


async def concatenate_and_append(request: web.Request) -> web.Response:
    _ConcatenateAndAppend.model_validate(await read_json_object(request))
    return web.Response()
