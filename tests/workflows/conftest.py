"""Servers for the SDK's tests, each on its own thread so that sync clients can call them.

``live``: the real proxy in front of the embedded engine, its event loop on a thread.
``recorder``: a stand-in proxy that records the SDK's own requests (graph, program end) and
answers as told; it is a fake of one layer, for the SDK's unit tests only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from kvbaton.middleware.launch import running_proxy
from kvbaton.middleware.settings import ProxySettings


@dataclass
class Live:
    """A proxy and embedded engine served from a background thread."""

    proxy: str
    engine: str

    def get(self, path: str) -> tuple[int, Any]:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(self.proxy + path, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def program(self, program_id: str) -> dict[str, Any]:
        status, body = self.get(f"/kvbaton/v1/programs/{program_id}")
        assert status == 200, body
        return dict(body)


@contextlib.contextmanager
def live_stack(**proxy: Any) -> Iterator[Live]:
    ready: list[Live] = []
    started = threading.Event()
    stop: list[asyncio.Event] = []
    loop_box: list[asyncio.AbstractEventLoop] = []

    async def serve() -> None:
        settings = ProxySettings(
            port=0, engine_profile="llama-3.1-8b-h100", engine_time_scale=0.05, **proxy
        )
        async with running_proxy(settings) as (proxy_url, engine_url):
            stop.append(asyncio.Event())
            loop_box.append(asyncio.get_running_loop())
            ready.append(Live(proxy_url, engine_url))
            started.set()
            await stop[0].wait()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    assert started.wait(30), "the proxy did not start"
    try:
        yield ready[0]
    finally:
        loop_box[0].call_soon_threadsafe(stop[0].set)
        thread.join(30)


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    with live_stack() as stack:
        yield stack


@dataclass
class Recorder:
    """What the stand-in proxy received, and how it answers."""

    url: str = ""
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    status: int = 200
    delay_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def of(self, method: str) -> list[tuple[str, Any]]:
        with self.lock:
            return [(path, body) for m, path, body in self.requests if m == method]


def _handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            size = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(size) or b"null")
            with recorder.lock:
                recorder.requests.append((self.command, self.path, body))
                recorder.headers.append({k.lower(): v for k, v in self.headers.items()})
            time.sleep(recorder.delay_s)
            reply = {"ok": True}
            if recorder.status >= 400:
                reply = {
                    "error": {
                        "message": "agents[0].next names 'x'",
                        "type": "invalid_request_error",
                    }
                }
            data = json.dumps(reply).encode()
            self.send_response(recorder.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Retry-After-Ms", "10")  # OpenAI clients retry at once
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_PUT = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(rec))
    rec.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=lambda: server.serve_forever(poll_interval=0.05), daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
