"""The ``kvbaton`` command: serve, engine, demo, bench, trace, profile."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kvbaton import __version__

__all__ = ["main"]


def _flags(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """Flags the user gave; the rest fall through to ``KVBATON_*`` variables and defaults."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


_SERVE_FLAGS = (
    "host", "port", "backend", "engine_kind", "engine_priority", "policy", "retention",
    "max_inflight",
    "engine_profile", "engine_kv_tokens", "engine_time_scale",
)  # fmt: skip
_ENGINE_FLAGS = (
    "host", "port", "profile", "kv_tokens", "max_running", "time_scale", "model_name",
    "radix_eviction_policy",
)  # fmt: skip


def _serve_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the proxy in front of an engine")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default 8000)")
    p.add_argument("--backend", help="engine URL, e.g. http://gpu-host:30000 (default: embedded)")
    p.add_argument("--engine-kind", choices=["auto", "sglang", "vllm", "openai", "embedded"])
    p.add_argument(
        "--engine-priority",
        choices=["auto", "on", "off"],
        help="send call priority to the engine (vLLM: only with --scheduling-policy priority)",
    )
    p.add_argument(
        "--policy",
        help="scheduling policy: baseline, program-fcfs, continuum, autellix, kvbaton",
    )
    p.add_argument(
        "--retention", help="override the policy's KV retention: none, tool-ttl, static-ttl"
    )
    p.add_argument("--max-inflight", type=int, help="calls at the engine at once")
    p.add_argument("--engine-profile", help="embedded engine cost profile")
    p.add_argument("--engine-kv-tokens", type=int, help="embedded engine KV capacity in tokens")
    p.add_argument("--engine-time-scale", type=float, help="embedded engine slow-down factor")


def _engine_parser(sub: Any) -> None:
    p = sub.add_parser("engine", help="run the embedded engine alone (SGLang/OpenAI API)")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default 30000)")
    p.add_argument("--profile", help="cost profile (default llama-3.1-8b-h100)")
    p.add_argument("--kv-tokens", type=int, help="KV cache capacity in tokens")
    p.add_argument("--max-running", type=int, help="requests batched at once")
    p.add_argument("--time-scale", type=float, help="real seconds per model second")
    p.add_argument("--model-name", help="model name served (default kvbaton-tiny)")
    p.add_argument(
        "--radix-eviction-policy",
        choices=["lru", "priority"],
        help="cache eviction order, as SGLang's flag (default lru)",
    )


def _demo_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="agent programs through the proxy, baseline vs program-fcfs")
    p.add_argument("--programs", type=int, default=12, help="agent programs per policy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--policies", default="baseline,program-fcfs")


def _bench_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="run policies side by side on an agent-program trace")
    p.add_argument("--trace", required=True, type=Path, help="trace file (JSON Lines, format v1)")
    p.add_argument("--policies", help="comma-separated (default: every available policy)")
    p.add_argument("--engine", default="sim", help="'sim' (default) or an engine URL to replay on")
    p.add_argument("--profile", help="engine cost profile (default llama-3.1-8b-h100)")
    p.add_argument("--kv-tokens", type=int, help="override the engine's KV capacity in tokens")
    p.add_argument("--rate-scale", type=float, default=1.0, help="multiply arrival rates")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, dest="json_out", help="write the results JSON here")
    p.add_argument("--plot", type=Path, help="write a JCT-vs-load PNG here (with --sweep)")
    p.add_argument("--sweep", help="comma-separated rate scales, e.g. 0.5,1,2,4")


def _trace_parser(sub: Any) -> None:
    p = sub.add_parser("trace", help="agent-program traces")
    trace_sub = p.add_subparsers(dest="trace_command", required=True)
    gen = trace_sub.add_parser("gen", help="generate a workload trace")
    gen.add_argument("kind", help="swe, bfcl, chat, multiagent or tree")
    gen.add_argument("--programs", type=int, default=100)
    gen.add_argument("--rate", type=float, default=0.5, help="program arrivals per second")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("-o", "--output", type=Path, required=True)


def _profile_parser(sub: Any) -> None:
    p = sub.add_parser("profile", help="measure a live engine and write an engine profile")
    p.add_argument("--engine", required=True, help="engine URL (OpenAI-compatible)")
    p.add_argument("--name", required=True, help="profile name, e.g. vllm-cpu-tiny")
    p.add_argument("-o", "--output", type=Path, help="profile file (default NAME.json)")
    p.add_argument("--description", default="")
    p.add_argument("--hardware", default="", help="what the engine runs on (the 'gpu' field)")
    p.add_argument("--model", help="model to ask for (default: the first of /v1/models)")
    p.add_argument("--prompt-tokens", default="64,256,512,1024,2048", help="prefill lengths")
    p.add_argument("--batches", default="1,2,4,8", help="decode batch sizes")
    p.add_argument("--decode-contexts", default="128,1024", help="decode prompt lengths")
    p.add_argument("--decode-tokens", type=int, default=48, help="tokens per decode probe")
    p.add_argument("--repeats", type=int, default=3, help="runs per point (median kept)")
    for figure in _CAPACITY_FLAGS:
        p.add_argument(f"--{figure.replace('_', '-')}", type=int, help="(default: as reported)")


_CAPACITY_FLAGS = ("kv_bytes_per_token", "kv_tokens", "max_running", "chunk_tokens", "page_size")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kvbaton", description="Program-level serving middleware for LLM agents."
    )
    parser.add_argument("--version", action="version", version=f"kvbaton {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    _engine_parser(sub)
    _demo_parser(sub)
    _bench_parser(sub)
    _trace_parser(sub)
    _profile_parser(sub)
    return parser


async def _serve(args: argparse.Namespace) -> None:
    from kvbaton.middleware.launch import running_proxy, serve_until_stopped
    from kvbaton.middleware.settings import ProxySettings

    settings = ProxySettings(**_flags(args, _SERVE_FLAGS))
    async with running_proxy(settings) as (proxy, engine):
        print(f"kvbaton proxy on {proxy} -> engine {engine} (policy {settings.policy})")
        print(f"tracing UI: {proxy}/kvbaton/ui/")
        await serve_until_stopped()


async def _engine(args: argparse.Namespace) -> None:
    from kvbaton.middleware.embedded.settings import EngineSettings
    from kvbaton.middleware.launch import running_engine, serve_until_stopped

    settings = EngineSettings(**_flags(args, _ENGINE_FLAGS))
    async with running_engine(settings) as url:
        print(f"kvbaton embedded engine on {url} (profile {settings.profile})")
        await serve_until_stopped()


def _demo(args: argparse.Namespace) -> int:
    from kvbaton.demo import run_demo

    return run_demo(programs=args.programs, seed=args.seed, policies=args.policies.split(","))


def _bench(args: argparse.Namespace) -> int:
    from rich.console import Console

    from kvbaton.middleware.bench.runner import run_bench

    run_bench(
        args.trace,
        policies=args.policies.split(",") if args.policies else None,
        engine=args.engine,
        profile=args.profile,
        kv_tokens=args.kv_tokens,
        rate_scale=args.rate_scale,
        seed=args.seed,
        json_out=args.json_out,
        plot=args.plot,
        sweep=[float(x) for x in args.sweep.split(",")] if args.sweep else None,
        # Piped output gets rich's 80 columns, too narrow for the table.
        console=Console() if sys.stdout.isatty() else Console(width=180),
    )
    return 0


def _trace(args: argparse.Namespace) -> int:
    from kvbaton.middleware.bench.trace import dump_trace
    from kvbaton.middleware.bench.workloads import describe, generate

    programs = generate(args.kind, programs=args.programs, rate=args.rate, seed=args.seed)
    dump_trace(programs, args.output)
    stats = describe(programs)
    calls = sum(len(p.calls) for p in programs)
    print(
        f"wrote {len(programs)} {args.kind} programs ({calls} calls) to {args.output}; "
        f"turns {stats.get('turns_mean', 0):.1f}, tokens/program {stats.get('tokens_mean', 0):,.0f}"
    )
    return 0


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(","))


def _profile(args: argparse.Namespace) -> int:
    from rich.console import Console

    from kvbaton.middleware.bench.profile import ProbePlan, run_profile

    plan = ProbePlan(
        prompt_tokens=_ints(args.prompt_tokens),
        batches=_ints(args.batches),
        decode_contexts=_ints(args.decode_contexts),
        decode_tokens=args.decode_tokens,
        repeats=args.repeats,
    )
    run_profile(
        args.engine,
        name=args.name,
        out=args.output or Path(f"{args.name}.json"),
        plan=plan,
        capacity={figure: getattr(args, figure) for figure in _CAPACITY_FLAGS},
        description=args.description,
        hardware=args.hardware,
        model=args.model,
        console=Console() if sys.stdout.isatty() else Console(width=120),
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    try:
        if args.command == "serve":
            asyncio.run(_serve(args))
        elif args.command == "engine":
            asyncio.run(_engine(args))
        elif args.command == "demo":
            return _demo(args)
        elif args.command == "bench":
            return _bench(args)
        elif args.command == "trace":
            return _trace(args)
        elif args.command == "profile":
            return _profile(args)
    except (ValidationError, ValueError, RuntimeError) as exc:
        print(f"kvbaton {args.command}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"kvbaton {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0
