"""``kvbaton demo``: tool-using agent programs through the proxy, one run per policy.

Each run starts a fresh embedded engine (the ``demo-tiny`` profile: a small KV cache and
a few batch slots, so that programs compete) and a proxy in front of it, then replays
the same programs with the OpenAI client: a shared system prompt, a task, and a loop of
model calls and tool pauses until the model answers. The table compares program
completion times and cached prompt tokens across policies.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
from dataclasses import dataclass, field
from typing import Any

from openai import AsyncOpenAI
from rich import box
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from kvbaton.middleware.embedded.settings import EngineSettings
from kvbaton.middleware.launch import running_engine, running_proxy
from kvbaton.middleware.settings import ProxySettings

__all__ = ["run_demo"]

ENGINE_SLOTS = 4  # requests the demo engine batches at once: few, so programs queue
MAX_CALLS = 8
ARRIVAL_GAP_S = 0.35
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": doc,
            "parameters": {
                "type": "object",
                "properties": {arg: {"type": "string"}},
                "required": [arg],
            },
        },
    }
    for name, doc, arg in (
        ("bash", "run a shell command", "command"),
        ("read_file", "read a file of the repository", "path"),
        ("run_tests", "run the test suite", "selector"),
    )
]


@dataclass(frozen=True, slots=True)
class ProgramPlan:
    """What one demo program does, fixed by the seed so every policy sees the same work."""

    index: int
    arrival_s: float
    task: str
    tool_s: tuple[float, ...]
    tool_output_words: int


@dataclass(slots=True)
class ProgramResult:
    jct_s: float = 0.0
    calls: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0


@dataclass(slots=True)
class PolicyResult:
    policy: str
    programs: list[ProgramResult] = field(default_factory=list)


def _words(rng: random.Random, n: int) -> str:
    return " ".join(f"w{rng.randrange(5000)}" for _ in range(n))


def plan_programs(n: int, seed: int) -> list[ProgramPlan]:
    rng = random.Random(seed)
    return [
        ProgramPlan(
            index=i,
            arrival_s=i * ARRIVAL_GAP_S,
            task=f"Task {i}: fix the failing test. Context: {_words(rng, 900)}",
            tool_s=tuple(round(rng.lognormvariate(-0.7, 0.8), 3) for _ in range(MAX_CALLS)),
            tool_output_words=rng.randrange(150, 400),
        )
        for i in range(n)
    ]


SYSTEM_PROMPT = "You are a coding agent. Use the tools to inspect and fix the repository. " + (
    " ".join(f"rule{i}" for i in range(700))
)


async def run_program(client: AsyncOpenAI, plan: ProgramPlan, run_id: str) -> ProgramResult:
    await asyncio.sleep(plan.arrival_s)
    loop = asyncio.get_running_loop()
    started = loop.time()
    messages: list[Any] = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": plan.task},
    ]
    result = ProgramResult()
    headers = {"x-kvbaton-program-id": f"{run_id}-{plan.index}", "x-kvbaton-agent": "coder"}
    for step in range(MAX_CALLS):
        reply = await client.chat.completions.create(
            model="kvbaton-tiny",
            messages=messages,
            tools=TOOLS,
            max_tokens=64,
            extra_headers={**headers, "x-kvbaton-step": str(step)},
        )
        result.calls += 1
        if reply.usage is not None:
            result.prompt_tokens += reply.usage.prompt_tokens
            details = reply.usage.prompt_tokens_details
            result.cached_tokens += (details.cached_tokens or 0) if details else 0
        message = reply.choices[0].message
        if not message.tool_calls:
            break
        messages.append(message.model_dump(exclude_none=True))
        await asyncio.sleep(plan.tool_s[step])  # the tool runs on the client side
        rng = random.Random(f"{plan.index}-{step}")
        for call in message.tool_calls:
            output = _words(rng, plan.tool_output_words)
            messages.append({"role": "tool", "tool_call_id": call.id, "content": output})
    result.jct_s = loop.time() - started
    return result


async def run_policy(
    policy: str, plans: list[ProgramPlan], progress: Progress, task: Any
) -> PolicyResult:
    engine = EngineSettings(port=0, profile="demo-tiny", max_running=ENGINE_SLOTS)
    async with running_engine(engine) as engine_url:
        proxy = ProxySettings(port=0, backend=engine_url, policy=policy)
        async with running_proxy(proxy) as (proxy_url, _):
            client = AsyncOpenAI(base_url=f"{proxy_url}/v1", api_key="demo", max_retries=0)
            try:

                async def one(plan: ProgramPlan) -> ProgramResult:
                    result = await run_program(client, plan, policy)
                    progress.advance(task)
                    return result

                results = await asyncio.gather(*(one(p) for p in plans))
            finally:
                await client.close()
    return PolicyResult(policy, list(results))


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def render(results: list[PolicyResult]) -> Table:
    table = Table(
        title="the same agent programs under each policy (JCT: program completion time)",
        box=box.SIMPLE_HEAD,
    )
    columns = ("policy", "progs", "calls", "JCT mean s", "JCT p95 s", "prompt tok", "cached tok")
    for column in (*columns, "hit %"):
        table.add_column(column, justify="left" if column == "policy" else "right", no_wrap=True)
    for r in results:
        jcts = [p.jct_s for p in r.programs]
        prompt = sum(p.prompt_tokens for p in r.programs)
        cached = sum(p.cached_tokens for p in r.programs)
        table.add_row(
            r.policy,
            str(len(r.programs)),
            str(sum(p.calls for p in r.programs)),
            f"{statistics.fmean(jcts):.2f}",
            f"{_p95(jcts):.2f}",
            f"{prompt:,}",
            f"{cached:,}",
            f"{100 * cached / prompt:.1f}" if prompt else "-",
        )
    return table


async def _run(programs: int, seed: int, policies: list[str]) -> list[PolicyResult]:
    plans = plan_programs(programs, seed)
    results = []
    with Progress(transient=False) as progress:
        for policy in policies:
            task = progress.add_task(f"{policy:>13}", total=len(plans))
            results.append(await run_policy(policy, plans, progress, task))
    return results


def run_demo(*, programs: int = 12, seed: int = 0, policies: list[str] | None = None) -> int:
    # Piped output gets rich's 80 columns, too narrow for the table.
    console = Console() if sys.stdout.isatty() else Console(width=110)
    chosen = policies or ["baseline", "program-fcfs"]
    console.print(
        f"[bold]kvbaton demo[/]: {programs} tool-using agent programs per policy, "
        f"embedded engine (demo-tiny, {ENGINE_SLOTS} batch slots); output text is synthetic."
    )
    results = asyncio.run(_run(programs, seed, chosen))
    console.print(render(results))
    return 0
