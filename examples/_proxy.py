"""What every example shares: where its proxy is, and the proxy's view of a program.

By default an example starts the embedded engine and a kvbaton proxy on free local ports;
``--base-url`` (or ``KVBATON_BASE_URL``) points it at a running proxy instead, in front of a
real engine.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any


def proxy_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every example takes: the proxy, the model, the key, the engine's speed."""
    parser.add_argument(
        "--base-url",
        default=os.environ.get("KVBATON_BASE_URL"),
        help="a running kvbaton proxy's URL, with or without /v1 (default: start the "
        "embedded engine and a proxy here); also KVBATON_BASE_URL",
    )
    parser.add_argument("--model", default=os.environ.get("KVBATON_MODEL", "kvbaton-tiny"))
    parser.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY", "unused"))
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="embedded engine speed (0.1 = 10x faster)"
    )


@asynccontextmanager
async def proxy_for(args: argparse.Namespace) -> AsyncIterator[str]:
    """The proxy's OpenAI base URL: the one given, or the embedded engine and a proxy on
    free ports, in this event loop, for as long as the block runs."""
    if args.base_url is not None:
        yield f"{proxy_root(args.base_url)}/v1"  # the proxy's root works as well
        return
    from kvbaton.middleware.launch import running_proxy
    from kvbaton.middleware.settings import ProxySettings

    settings = ProxySettings(port=0, engine_time_scale=args.time_scale)
    async with running_proxy(settings) as (url, _):
        yield f"{url}/v1"


def proxy_root(base_url: str) -> str:
    return base_url.rstrip("/").removesuffix("/v1")


def program_view(base_url: str, program_id: str) -> dict[str, Any] | None:
    """``GET /kvbaton/v1/programs/{id}`` from the proxy, or None (said why) if it fails."""
    url = f"{proxy_root(base_url)}/kvbaton/v1/programs/{program_id}"
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return dict(json.loads(r.read()))
    except OSError as e:
        print(f"  the proxy's program view is not available at {url}: {e}")
        return None
