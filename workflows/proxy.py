"""Telling the proxy about workflows and finished programs, without ever breaking the caller.

Two requests: ``PUT /kvbaton/v1/workflows/{name}`` (the declared graph, once per workflow
and proxy in a process) and ``POST /kvbaton/v1/programs/{id}/end``. Both use the standard
library with a short timeout; the async forms run them in a worker thread so that the event
loop never waits on them. A failure is logged once per proxy and kind, as a warning, and
the program goes on: the proxy learns the same things, later, from the calls themselves.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from kvbaton.middleware.protocol import wire
from kvbaton.workflows.graph import WorkflowGraph

__all__ = [
    "Settings",
    "configure",
    "end_program",
    "end_program_async",
    "proxy_url_of",
    "put_graph",
    "put_graph_async",
    "settings",
]

log = logging.getLogger("kvbaton.workflows")

URL_ENV = "KVBATON_URL"


@dataclass(frozen=True, slots=True)
class Settings:
    """``url``: the proxy (``http://host:8000``), over any wrapped client's base URL;
    ``timeout_s``: the longest the SDK waits on the proxy for its own requests."""

    url: str | None = None
    timeout_s: float = 2.0


_settings = Settings()
_lock = threading.Lock()
_sent: set[tuple[str, str]] = set()
_warned: set[tuple[str, str]] = set()


def configure(*, url: str | None = None, timeout_s: float = 2.0) -> None:
    """Set the proxy URL (default: ``$KVBATON_URL``, else each wrapped client's base URL
    without its ``/v1``) and the timeout of the SDK's own requests to it."""
    global _settings
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    _settings = Settings(url.rstrip("/") if url else None, timeout_s)


def settings() -> Settings:
    return _settings


def proxy_url_of(base_url: str | None) -> str | None:
    """The proxy to report to: the configured one, else ``$KVBATON_URL``, else ``base_url``
    (an OpenAI base URL such as ``http://host:8000/v1``) without its ``/v1``."""
    chosen = _settings.url or os.environ.get(URL_ENV) or base_url
    if not chosen:
        return None
    chosen = chosen.rstrip("/")
    return chosen.removesuffix("/v1")


def put_graph(url: str, graph: WorkflowGraph) -> None:
    """Send ``graph`` to the proxy at ``url`` unless it was sent there before (or it
    declares no agent: the proxy then learns the workflow from its calls alone)."""
    if not graph.agents or not _claim(graph.name, url):
        return
    path = wire.PATH_WORKFLOW.format(name=urllib.parse.quote(graph.name, safe=""))
    _send("graph", url, "PUT", path, graph.model_dump_json(exclude_none=True).encode())


async def put_graph_async(url: str, graph: WorkflowGraph) -> None:
    if graph.agents and (graph.name, url) not in _sent:
        await asyncio.to_thread(put_graph, url, graph)


def end_program(url: str, program_id: str) -> None:
    """Tell the proxy that ``program_id`` is over, so that it releases the program's pins."""
    path = wire.PATH_PROGRAM_END.format(program_id=urllib.parse.quote(program_id, safe=""))
    _send("end", url, "POST", path, b"{}")


async def end_program_async(url: str, program_id: str) -> None:
    await asyncio.to_thread(end_program, url, program_id)


def _claim(name: str, url: str) -> bool:
    with _lock:
        if (name, url) in _sent:
            return False
        _sent.add((name, url))
        return True


def _send(kind: str, url: str, method: str, path: str, body: bytes) -> None:
    request = urllib.request.Request(
        url + path, data=body, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=_settings.timeout_s) as response:
            response.read()
    except urllib.error.HTTPError as e:
        _refused(kind, url, method, path, e)
    except (OSError, ValueError) as e:  # URLError, timeouts, refused connections, bad URLs
        _warn_once(
            kind,
            url,
            "kvbaton proxy at %s did not answer %s %s (%s); going on without it",
            url,
            method,
            path,
            e,
        )


def _refused(kind: str, url: str, method: str, path: str, error: urllib.error.HTTPError) -> None:
    message = _error_message(error)
    if kind == "end" and error.code == 404:
        # The program made no call the proxy saw, or it expired there: nothing to release.
        log.debug("kvbaton proxy at %s does not know the program at %s: %s", url, path, message)
    elif error.code == 400:
        log.warning("kvbaton proxy at %s rejected %s %s: %s", url, method, path, message)
    else:
        _warn_once(
            kind,
            url,
            "kvbaton proxy at %s answered %s %s with HTTP %s (%s); is it a kvbaton proxy "
            "of this version?",
            url,
            method,
            path,
            error.code,
            message,
        )


def _error_message(error: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(error.read() or b"{}")
        return str(body["error"]["message"])
    except (ValueError, KeyError, TypeError, OSError):
        return error.reason if isinstance(error.reason, str) else str(error)


def _warn_once(kind: str, url: str, message: str, *args: object) -> None:
    with _lock:
        if (kind, url) in _warned:
            return
        _warned.add((kind, url))
    log.warning(message, *args)
