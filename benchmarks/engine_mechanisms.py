"""Each engine's retention and warming mechanism, carried out by its adapter over HTTP.

One embedded engine per row (``demo-tiny``, a small KV pool), driven through the adapter of
the engine whose API it speaks: a program makes a call, pauses for its tool while other
programs' calls pass through the pool, then resumes; the table shows how much of
its context was still cached. Then the same for a warm: an agent's fixed prefix, evicted by
other traffic, is warmed (or not) before a new program of that agent calls.

    .venv/bin/python benchmarks/engine_mechanisms.py [--kv-tokens 2000] [--flood 12]
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
from rich.console import Console
from rich.table import Table

from kvbaton.adapters.base import Capabilities
from kvbaton.adapters.embedded import EmbeddedBackend
from kvbaton.adapters.http import HttpBackend
from kvbaton.adapters.sglang import SglangBackend
from kvbaton.adapters.vllm import VllmBackend
from kvbaton.middleware.embedded.settings import EngineSettings
from kvbaton.middleware.launch import running_engine

GAP_S = 0.15  # between other programs' calls while the program waits for its tool
TOUCH_S = 0.05
SGLANG = Capabilities("sglang", native_generate=True, session_cache=True)
VLLM = Capabilities("vllm", higher_first=False, lru_prefix_cache=True)
EMBEDDED = Capabilities("embedded", native_generate=True, native_pins=True)
PLAIN = Capabilities("openai")

Make = Callable[[str], HttpBackend]
ROWS: list[tuple[str, Make, bool]] = [
    ("LRU only (no mechanism)", lambda url: HttpBackend(url, PLAIN), False),
    ("embedded: native pin", lambda url: EmbeddedBackend(url, EMBEDDED), False),
    ("SGLang: session radix cache", lambda url: SglangBackend(url, SGLANG), True),
    ("vLLM: re-touch", lambda url: VllmBackend(url, VLLM, retouch_every_s=TOUCH_S), False),
]


def words(tag: str, n: int) -> str:
    return " ".join(f"{tag}{i}" for i in range(n))


async def chat(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> dict[str, Any]:
    async with http.post(url + "/v1/chat/completions", json={"max_tokens": 4, **body}) as r:
        reply: dict[str, Any] = await r.json()
        return reply


def cached(reply: dict[str, Any]) -> int:
    return int(reply["usage"]["prompt_tokens_details"]["cached_tokens"])


async def flood(http: aiohttp.ClientSession, url: str, n: int, tag: str) -> None:
    for i in range(n):
        await chat(
            http,
            url,
            {"model": "m", "messages": [{"role": "user", "content": words(f"{tag}{i}x", 150)}]},
        )
        await asyncio.sleep(GAP_S)


async def pause(args: argparse.Namespace, make: Make, sessions: bool) -> tuple[int, int, int]:
    engine = EngineSettings(
        port=0,
        profile="demo-tiny",
        time_scale=0.02,
        kv_tokens=args.kv_tokens,
        enable_session_radix_cache=sessions,
    )
    async with running_engine(engine) as url, aiohttp.ClientSession() as http:
        backend = make(url)
        body: dict[str, Any] = {
            "model": "m",
            "messages": [{"role": "user", "content": words("prog", 250)}],
        }
        backend.hold_at_finish(body, "p1", 5.0)
        first = await chat(http, url, body)
        context = {"model": "m", "messages": [*body["messages"], first["choices"][0]["message"]]}
        await backend.retime_pin("p1", 600.0, context)
        await flood(http, url, args.flood, "f")
        await backend.release_pin("p1")
        extra = getattr(getattr(backend, "retouch", None), "touches", 0)
        resumed = await chat(
            http,
            url,
            {
                "model": "m",
                "messages": [*context["messages"], {"role": "user", "content": "go on"}],
            },
        )
        await backend.aclose()
        return resumed["usage"]["prompt_tokens"], cached(resumed), extra


async def warm(args: argparse.Namespace, make: Make, do_warm: bool) -> tuple[int, int]:
    engine = EngineSettings(port=0, profile="demo-tiny", time_scale=0.02, kv_tokens=args.kv_tokens)
    system = {"role": "system", "content": words("agent", 300)}
    async with running_engine(engine) as url, aiohttp.ClientSession() as http:
        backend = make(url)
        await chat(
            http, url, {"model": "m", "messages": [system, {"role": "user", "content": "a"}]}
        )
        await flood(http, url, args.flood, "w")
        if do_warm:
            await backend.warm({"model": "m", "messages": [system]})
        reply = await chat(
            http, url, {"model": "m", "messages": [system, {"role": "user", "content": "b"}]}
        )
        await backend.aclose()
        return reply["usage"]["prompt_tokens"], cached(reply)


async def main(args: argparse.Namespace) -> None:
    console = Console()
    table = Table(
        title=f"A paused program resumes after {args.flood} other calls "
        f"(KV pool {args.kv_tokens} tokens)"
    )
    for column in (
        "mechanism",
        "resume prompt tokens",
        "cached on resume",
        "share",
        "extra engine requests",
    ):
        table.add_column(column)
    for name, make, sessions in ROWS:
        prompt, hit, extra = await pause(args, make, sessions)
        table.add_row(name, str(prompt), str(hit), f"{hit / prompt:.0%}", str(extra))
    console.print(table)
    table = Table(title="New program of an agent whose fixed prefix was evicted")
    for column in ("warm", "prompt tokens", "cached", "share"):
        table.add_column(column)
    for name, make, do_warm in (
        ("none", ROWS[0][1], False),
        ("embedded: /generate max_new_tokens 0", ROWS[1][1], True),
        ("SGLang / vLLM: chat max_tokens 1", ROWS[3][1], True),
    ):
        prompt, hit = await warm(args, make, do_warm)
        table.add_row(name, str(prompt), str(hit), f"{hit / prompt:.0%}")
    console.print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kv-tokens", type=int, default=2000)
    parser.add_argument("--flood", type=int, default=12)
    asyncio.run(main(parser.parse_args()))
