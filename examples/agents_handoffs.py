"""An OpenAI Agents SDK agent with handoffs: triage hands a customer to billing or shipping.

    python examples/agents_handoffs.py                     # embedded engine + proxy, started here
    python examples/agents_handoffs.py --base-url http://127.0.0.1:8000/v1   # a running proxy
    KVBATON_BASE_URL=http://127.0.0.1:8000/v1 python examples/agents_handoffs.py
    python examples/agents_handoffs.py --api chat          # OpenAIChatCompletionsModel instead

The `triage` agent hands the question to the `billing` or `shipping` agent (a handoff is a
tool call, `transfer_to_<agent>`, that the SDK answers by switching agents); billing looks up
invoices and issues refunds with function tools. Nothing here tells kvbaton about programs:
the proxy keeps the run whole by prefix continuation (across the handoff too), names each
agent after its instructions and sees each tool run as a pause. Its view of the run is
printed at the end. Tracing is switched off, so nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import urllib.request
from typing import Any

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")  # before the SDK is imported

from _proxy import proxy_arguments, proxy_for, proxy_root
from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    OpenAIProvider,
    RunConfig,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from openai import AsyncOpenAI

from kvbaton.middleware.protocol.agents import instructions_agent

TRIAGE = "You are the triage agent. Hand billing questions to billing, parcels to shipping."
BILLING = "You are the billing agent. Look up the invoice, then refund what was overcharged."
SHIPPING = "You are the shipping agent. Track parcels and explain delays."
INVOICES = {"INV-1001": [40.0, 40.0], "INV-1002": [12.5]}


@function_tool
async def lookup_invoice(invoice_id: str) -> str:
    """Find an invoice's charges by its id."""
    await asyncio.sleep(0.2)  # a database call
    charges = INVOICES.get(invoice_id, INVOICES["INV-1001"])
    return json.dumps({"invoice": invoice_id, "charges_eur": charges})


@function_tool
async def refund(invoice_id: str, amount_eur: float) -> str:
    """Refund part of an invoice."""
    await asyncio.sleep(0.3)  # a payment provider
    return json.dumps({"invoice": invoice_id, "refunded_eur": amount_eur, "status": "ok"})


@function_tool
async def track_parcel(parcel_id: str) -> str:
    """Where a parcel is now."""
    await asyncio.sleep(0.2)
    return json.dumps({"parcel": parcel_id, "where": "sorting centre", "eta_days": 2})


def build_agents(model: str | OpenAIChatCompletionsModel) -> Agent:
    billing = Agent(
        name="billing", instructions=BILLING, tools=[lookup_invoice, refund], model=model
    )
    shipping = Agent(name="shipping", instructions=SHIPPING, tools=[track_parcel], model=model)
    return Agent(name="triage", instructions=TRIAGE, handoffs=[billing, shipping], model=model)


async def serve_customer(client: AsyncOpenAI, model_name: str, api: str, question: str) -> str:
    """One run of the agents; returns the agent that answered."""
    set_tracing_disabled(True)
    model = model_name if api == "responses" else OpenAIChatCompletionsModel(model_name, client)
    config = RunConfig(model_provider=OpenAIProvider(openai_client=client), tracing_disabled=True)
    result = await Runner.run(build_agents(model), question, run_config=config)
    print(f"answered by {result.last_agent.name}: {str(result.final_output)[:70]}...")
    return result.last_agent.name


def program_view(base_url: str) -> dict[str, Any] | None:
    """The proxy's newest program that the triage agent took part in."""
    root = f"{proxy_root(base_url)}/kvbaton/v1/programs"
    triage = instructions_agent("", {"instructions": TRIAGE})
    try:
        with urllib.request.urlopen(root, timeout=5) as r:
            ours = [p for p in json.loads(r.read())["data"] if triage in p["agents"]]
        if not ours:
            return None
        newest = max(ours, key=lambda p: p["arrival"])
        with urllib.request.urlopen(f"{root}/{newest['program_id']}", timeout=5) as r:
            return dict(json.loads(r.read()))
    except OSError as e:
        print(f"  the proxy's program view is not available at {root}: {e}")
        return None


def show_program(view: dict[str, Any] | None) -> None:
    if view is None:
        print("proxy view: no program of these agents found")
        return
    names = {instructions_agent("", {"instructions": t}): n for n, t in _INSTRUCTIONS.items()}
    agents = [f"{names.get(a, a)} ({a})" for a in view["agents"]]
    print(
        f"proxy view: program {view['program_id']}, {view['calls']} calls, "
        f"{len(view['tool_pauses'])} tool pauses, cached "
        f"{view['cached_tokens']}/{view['prompt_tokens']} prompt tokens"
    )
    print(f"  agents in order: {', '.join(agents)}")
    for pause in view["tool_pauses"]:
        print(f"  tool pause: {', '.join(pause['tools'])} for {pause['duration_s']:.2f} s")


_INSTRUCTIONS = {"triage": TRIAGE, "billing": BILLING, "shipping": SHIPPING}


async def run(args: argparse.Namespace) -> int:
    async with proxy_for(args) as base_url:
        print(f"kvbaton proxy: {base_url}")
        async with AsyncOpenAI(base_url=base_url, api_key=args.api_key) as client:
            started = time.monotonic()
            await serve_customer(client, args.model, args.api, args.question)
            print(f"done in {time.monotonic() - started:.2f} s")
        await asyncio.sleep(0.1)  # the proxy accounts a reply just after its last byte
        show_program(await asyncio.to_thread(program_view, base_url))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    proxy_arguments(parser)
    parser.add_argument("--api", choices=["responses", "chat"], default="responses")
    parser.add_argument("--question", default="INV-1001 shows two charges; refund one.")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
