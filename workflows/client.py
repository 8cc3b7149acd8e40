"""``wrap(client)``: an OpenAI client whose requests carry the running program's headers.

The headers go on through the client's HTTP client (an httpx-style request event hook), so
nothing else about the client changes: the same object is returned, its copies
(``with_options``) share the hook, and requests made outside a workflow go out untouched.
The first request of a program through a client also sends the workflow's declared graph to
the proxy the client points at, unless ``configure(url=...)`` or ``$KVBATON_URL`` names
another.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol, TypeVar

from kvbaton.workflows import proxy
from kvbaton.workflows.context import Program, current_frame, headers

__all__ = ["wrap"]

C = TypeVar("C")

_RETRY_HEADER = "x-stainless-retry-count"  # set by the OpenAI SDK on each attempt


class _Request(Protocol):
    headers: Any


def wrap(client: C) -> C:
    """Add kvbaton's headers to the requests of ``client`` and return it.

    ``client``: an ``openai.OpenAI`` or ``openai.AsyncOpenAI`` (or any client built the same
    way: an httpx-style HTTP client in ``._client``), or an httpx-style ``Client`` or
    ``AsyncClient`` itself. Wrapping twice adds the hook once.
    """
    http = _http_client_of(client)
    base_url = getattr(client, "base_url", None) or getattr(http, "base_url", None)
    hook = _async_hook(str(base_url or "")) if _is_async(http) else _sync_hook(str(base_url or ""))
    hooks = {kind: list(items) for kind, items in http.event_hooks.items()}
    requests = hooks.setdefault("request", [])
    if not any(getattr(h, "__kvbaton_hook__", False) for h in requests):
        requests.append(hook)
        http.event_hooks = hooks
    return client


def _http_client_of(client: object) -> Any:
    for candidate in (client, getattr(client, "_client", None)):
        if isinstance(getattr(candidate, "event_hooks", None), dict):
            return candidate
    raise TypeError(
        f"wrap() takes an openai.OpenAI or openai.AsyncOpenAI client (or an httpx Client or "
        f"AsyncClient); got {type(client).__name__}. For any other client, send "
        "kvbaton.workflows.headers() with each LLM request"
    )


def _is_async(http: object) -> bool:
    return inspect.iscoroutinefunction(getattr(type(http), "send", None))


def _sync_hook(base_url: str) -> Any:
    def add_headers(request: _Request) -> None:
        frame = current_frame()
        if frame is None:
            return
        url = _proxy_for(frame.program, base_url)
        if url is not None:
            proxy.put_graph(url, frame.program.graph)
        request.headers.update(headers(retry=_is_retry(request)))

    add_headers.__kvbaton_hook__ = True  # type: ignore[attr-defined]
    return add_headers


def _async_hook(base_url: str) -> Any:
    async def add_headers(request: _Request) -> None:
        frame = current_frame()
        if frame is None:
            return
        url = _proxy_for(frame.program, base_url)
        if url is not None:
            await proxy.put_graph_async(url, frame.program.graph)
        request.headers.update(headers(retry=_is_retry(request)))

    add_headers.__kvbaton_hook__ = True  # type: ignore[attr-defined]
    return add_headers


def _proxy_for(program: Program, base_url: str) -> str | None:
    """The proxy this program reports to: fixed by its first request through a client."""
    with program.lock:
        if program.proxy_url is None:
            program.proxy_url = proxy.proxy_url_of(base_url or None)
        return program.proxy_url


def _is_retry(request: _Request) -> bool:
    value = str(request.headers.get(_RETRY_HEADER, "0")).strip()
    return value.isdecimal() and int(value) > 0
