"""Latency the proxy adds, and requests/s, direct to an engine vs through kvbaton.

Starts a zero-cost engine stub and a proxy (each in its own process, so the load client
does not share their event loop), then in one run measures, for plain and streamed chat
completions: sequential latency (p50/p99) direct and through the proxy, the difference,
and throughput at a fixed concurrency.

    .venv/bin/python benchmarks/proxy_overhead.py [--requests 2000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
BODY = {"model": "stub", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def process(args: list[str], url: str) -> Iterator[None]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                socket.create_connection(url.removeprefix("http://").split(":"), 0.2).close()
                break
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "exited")
            time.sleep(0.1)
        yield
    finally:
        proc.terminate()
        proc.wait(10)


async def one(session: aiohttp.ClientSession, url: str, stream: bool) -> float:
    started = time.perf_counter()
    async with session.post(f"{url}/v1/chat/completions", json={**BODY, "stream": stream}) as r:
        await r.read()
        if r.status != 200:
            raise RuntimeError(f"{url} answered {r.status}")
    return time.perf_counter() - started


async def latencies(url: str, stream: bool, n: int) -> list[float]:
    async with aiohttp.ClientSession() as session:
        for _ in range(50):  # warm up connections and code paths
            await one(session, url, stream)
        return sorted([await one(session, url, stream) for _ in range(n)])


async def throughput(url: str, stream: bool, concurrency: int, seconds: float) -> float:
    done = 0
    stop = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await one(session, url, stream)
            done += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return done / (time.perf_counter() - started)


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


async def measure(direct: str, proxy: str, args: argparse.Namespace) -> Table:
    table = Table(title=f"proxy overhead ({args.requests} sequential requests per cell)")
    for col in ("mode", "path", "p50 ms", "p99 ms", "added p50 ms", "added p99 ms", "req/s"):
        table.add_column(col, justify="left" if col in ("mode", "path") else "right")
    for stream in (False, True):
        mode = "stream" if stream else "plain"
        base = await latencies(direct, stream, args.requests)
        through = await latencies(proxy, stream, args.requests)
        for name, url, lat in (("direct", direct, base), ("kvbaton", proxy, through)):
            rps = await throughput(url, stream, args.concurrency, args.seconds)
            added = name == "kvbaton"
            table.add_row(
                mode,
                name,
                f"{pct(lat, 0.5):.2f}",
                f"{pct(lat, 0.99):.2f}",
                f"{pct(lat, 0.5) - pct(base, 0.5):.2f}" if added else "",
                f"{pct(lat, 0.99) - pct(base, 0.99):.2f}" if added else "",
                f"{rps:,.0f}",
            )
    return table


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--policy", default="program-fcfs")
    args = parser.parse_args()
    stub_port, proxy_port = free_port(), free_port()
    direct, proxy = f"http://127.0.0.1:{stub_port}", f"http://127.0.0.1:{proxy_port}"
    kvbaton = [sys.executable, "-m", "kvbaton", "serve", "--port", str(proxy_port)]
    kvbaton += ["--backend", direct, "--engine-kind", "openai", "--policy", args.policy]
    env_note = f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, policy {args.policy}"
    stub = [sys.executable, str(HERE / "stub_engine.py"), "--port", str(stub_port)]
    with process(stub, direct), process(kvbaton, proxy):
        table = asyncio.run(measure(direct, proxy, args))
    console = Console()
    console.print(table)
    console.print(f"[dim]{env_note}; client, proxy and stub share this machine[/]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
