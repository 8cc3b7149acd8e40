"""A research team: a planner, researchers in parallel, a writer.

    python examples/research_team.py                     # embedded engine + proxy, started here
    python examples/research_team.py --base-url http://127.0.0.1:8000/v1  # a running proxy
    KVBATON_BASE_URL=http://127.0.0.1:8000/v1 python examples/research_team.py

The `planner` splits the question into topics; one `researcher` per topic runs at the same
time (asyncio.gather), each in an LLM tool loop over a `search` tool that scores the passages
of a small built-in library; the `writer` joins their notes in the program's last call.
The workflow SDK tells the proxy the team's graph before the first call and, on every call,
which program, agent and step it is; the fork and join show in the proxy's program view,
printed at the end. The embedded engine's replies are synthetic, so with it the plan falls
back to the default topics.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from typing import Any

from _proxy import program_view, proxy_arguments, proxy_for
from openai import AsyncOpenAI

import kvbaton.workflows as kw

LIBRARY = {
    "prefix caching": "Engines keep the KV cache of shared prompt prefixes so that a request "
    "that extends an earlier one skips recomputing it.",
    "tool pauses": "While an agent runs a tool the engine sees no request from it, and an LRU "
    "cache may evict the program's KV before the tool returns.",
    "program scheduling": "Ordering calls by program, not by request, finishes whole agent "
    "runs sooner: a program's next call does not queue behind newcomers.",
    "continuous batching": "Engines add and remove requests from the running batch at every "
    "decoding step, so short requests do not wait for long ones.",
}
DEFAULT_TOPICS = ["tool pauses", "prefix caching", "program scheduling"]
SEARCH = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the library for passages about a query",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "enum": sorted(LIBRARY)}},
            "required": ["query"],
        },
    },
}


@kw.tool("search", expected_duration_s=0.05)
async def search(query: str) -> str:
    """Passages ranked by how many words they share with the query."""
    await asyncio.sleep(0.02)  # a remote index would take a while
    words = set(re.findall(r"\w+", query.lower()))
    scored = sorted(
        LIBRARY.items(),
        key=lambda kv: -len(words & set(re.findall(r"\w+", (kv[0] + " " + kv[1]).lower()))),
    )
    return "\n".join(f"{title}: {text}" for title, text in scored[:2])


@kw.agent("planner", next=["researcher"])
async def planner(client: AsyncOpenAI, model: str, question: str, width: int) -> list[str]:
    prompt = f"List {width} research topics for: {question}. One per line, nothing else."
    reply = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}]
    )
    lines = [
        line.strip("-* ").strip() for line in (reply.choices[0].message.content or "").splitlines()
    ]
    topics = [t for t in lines if t and "synthetic" not in t][:width]
    if len(topics) < width:
        topics += [t for t in DEFAULT_TOPICS if t not in topics][: width - len(topics)]
    print(f"  planner: topics {topics}")
    return topics


@kw.agent("researcher", next=["writer"], tools=["search"], fan_out=3)
async def researcher(client: AsyncOpenAI, model: str, topic: str) -> str:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You research one topic. Search, then write notes."},
        {"role": "user", "content": f"Topic: {topic}"},
    ]
    for _ in range(8):
        reply = await client.chat.completions.create(model=model, messages=messages, tools=[SEARCH])  # type: ignore[arg-type]
        message = reply.choices[0].message
        messages.append(message.model_dump(exclude_none=True))
        if not message.tool_calls:
            print(f"  researcher [{topic}]: notes written")
            return message.content or ""
        for call in message.tool_calls:
            query = json.loads(call.function.arguments or "{}").get("query", topic)  # type: ignore[union-attr]
            found = await search(str(query))
            print(f"  researcher [{topic}]: search({query!r})")
            messages.append({"role": "tool", "tool_call_id": call.id, "content": found})
    return "no notes: too many searches"


@kw.agent("writer", last=True)
async def writer(client: AsyncOpenAI, model: str, question: str, notes: list[str]) -> str:
    joined = "\n\n".join(notes)
    with kw.last_step():
        reply = await client.chat.completions.create(
            model=model,
            messages=[
                {"role": "user", "content": f"Answer '{question}' from these notes:\n{joined}"}
            ],
        )
    text = (reply.choices[0].message.content or "").strip()
    print(f"  writer: {text[:70]}")
    return text


@kw.workflow("research-team")
async def research(client: AsyncOpenAI, model: str, question: str, width: int) -> kw.ProgramInfo:
    topics = await planner(client, model, question, width)
    notes = await asyncio.gather(*(researcher(client, model, t) for t in topics))
    await writer(client, model, question, list(notes))
    info = kw.current_program()
    assert info is not None
    return info


def show_program(info: kw.ProgramInfo, view: dict[str, Any] | None) -> None:
    print(f"program {info.program_id}: {info.steps} LLM calls, agents {', '.join(info.agents)}")
    print(f"  searches run: {sum(r.name == 'search' for r in info.tool_runs)}")
    if view is None:
        return
    nodes = {n["id"]: n for n in view["graph"]["nodes"]}
    calls = [n for n in nodes.values() if n["kind"] == "call"]
    # call -> call edges follow the declared parent steps (tool pauses sit on their own nodes)
    direct = [e for e in view["graph"]["edges"] if nodes[e["target"]]["kind"] == "call"]
    forks = [n for n in nodes if sum(e["source"] == n for e in direct) > 1]
    print(
        f"proxy view: workflow {view['workflow']}, {view['calls']} calls, agents "
        f"{', '.join(view['agents'])}, status {view['status']}, "
        f"{len(view['tool_pauses'])} tool pauses, cached "
        f"{view['cached_tokens']}/{view['prompt_tokens']} prompt tokens"
    )
    for fork in forks:
        print(f"  fork after {nodes[fork].get('agent')} step {nodes[fork].get('step')}")
    print(f"  calls by agent: { {a: sum(c['agent'] == a for c in calls) for a in view['agents']} }")


async def run(args: argparse.Namespace) -> int:
    async with proxy_for(args) as base_url:
        print(f"kvbaton proxy: {base_url}")
        async with kw.wrap(AsyncOpenAI(base_url=base_url, api_key=args.api_key)) as client:
            started = time.monotonic()
            info = await research(client, args.model, args.question, args.width)
            print(f"done in {time.monotonic() - started:.2f} s")
        view = await asyncio.to_thread(program_view, base_url, info.program_id)
        show_program(info, view)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    proxy_arguments(parser)
    parser.add_argument("--question", default="Why do agent programs lose their KV cache?")
    parser.add_argument("--width", type=int, default=3, help="researchers working at once")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
