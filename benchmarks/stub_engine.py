"""A zero-cost OpenAI-compatible engine: answers at once, so that only the proxy is measured.

python benchmarks/stub_engine.py --port 30001
"""

from __future__ import annotations

import argparse
import json

from aiohttp import web

_REPLY = {
    "id": "chatcmpl-stub",
    "object": "chat.completion",
    "created": 0,
    "model": "stub",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "ok"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 8, "completion_tokens": 1, "total_tokens": 9},
}
_BODY = json.dumps(_REPLY).encode()
_CHUNKS = [
    b'data: {"id":"chatcmpl-stub","object":"chat.completion.chunk","choices":'
    + json.dumps([{"index": 0, "delta": {"content": w}, "finish_reason": None}]).encode()
    + b"}\n\n"
    for w in ("o", "k", "!", ".")
] + [b"data: [DONE]\n\n"]


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    if not body.get("stream"):
        return web.Response(body=_BODY, content_type="application/json")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for chunk in _CHUNKS:
        await response.write(chunk)
    await response.write_eof()
    return response


async def ok(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_stub_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/health", ok)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=30001)
    args = parser.parse_args()
    web.run_app(create_stub_app(), host=args.host, port=args.port, print=None, access_log=None)
