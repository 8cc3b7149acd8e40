"""The OpenAI Agents SDK pointed at the proxy: function tools and a handoff between agents,
on the Responses API (its default) and on chat completions, run whole and streamed.

Tracing is switched off (``OPENAI_AGENTS_DISABLE_TRACING``, set in conftest, and
``set_tracing_disabled``), so nothing leaves the machine.
"""

from __future__ import annotations

import asyncio

import pytest
from agents import (
    Agent,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIProvider,
    RunConfig,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from openai import AsyncOpenAI

from kvbaton.middleware.protocol.agents import instructions_agent

from .conftest import MODEL, Stack, assert_tool_loop, call_nodes

TOOL_S = 0.05
TRIAGE = "You are the triage agent. Hand billing questions to the billing agent."
BILLING = "You are the billing agent. Look up invoices and issue refunds."
# The engine allows 1 + crc32(first user message) % 4 tool rounds (engine/replies.py): four
# here, the handoff included, so triage, then billing with three tool calls and an answer.
QUESTION = "Refund my double charge please"


@function_tool
async def lookup_invoice(invoice_id: str) -> str:
    """Find an invoice by id."""
    await asyncio.sleep(TOOL_S)
    return f"invoice {invoice_id}: 2 charges of 40 EUR"


@function_tool
async def refund(invoice_id: str, amount_eur: float) -> str:
    """Refund part of an invoice."""
    await asyncio.sleep(TOOL_S)
    return f"refunded {amount_eur} EUR on {invoice_id}"


def agents(model: str | OpenAIChatCompletionsModel) -> Agent:
    billing = Agent(
        name="Billing agent", instructions=BILLING, tools=[lookup_invoice, refund], model=model
    )
    return Agent(name="Triage agent", instructions=TRIAGE, handoffs=[billing], model=model)


async def run(client: AsyncOpenAI, api: str, streamed: bool) -> str:
    set_tracing_disabled(True)
    model = MODEL if api == "responses" else OpenAIChatCompletionsModel(MODEL, client)
    config = RunConfig(model_provider=OpenAIProvider(openai_client=client), tracing_disabled=True)
    triage = agents(model)
    if not streamed:
        result = await Runner.run(triage, QUESTION, run_config=config)
        return result.last_agent.name
    streaming = Runner.run_streamed(triage, QUESTION, run_config=config)
    async for _ in streaming.stream_events():
        pass
    return streaming.last_agent.name


@pytest.mark.parametrize("streamed", [False, True], ids=["run", "streamed"])
@pytest.mark.parametrize("api", ["responses", "chat"])
async def test_handoff_and_tools_are_one_program(stack: Stack, api: str, streamed: bool) -> None:
    async with AsyncOpenAI(base_url=stack.base_url, api_key="unused", max_retries=0) as client:
        last = await run(client, api, streamed)
    assert last == "Billing agent"
    program = await stack.only_program()
    assert_tool_loop(program, 5, {"transfer_to_billing_agent", "lookup_invoice", "refund"})
    triage = instructions_agent("", {"instructions": TRIAGE})
    billing = instructions_agent("", {"instructions": BILLING})
    assert program["agents"] == [triage, billing]
    assert [node["agent"] for node in call_nodes(program)] == [triage] + [billing] * 4
    pauses = program["tool_pauses"]
    assert pauses[0]["tools"] == ["transfer_to_billing_agent"]  # the handoff
    assert all(p["duration_s"] >= TOOL_S * 0.9 for p in pauses[1:])  # the billing tools


async def test_declared_names_win(stack: Stack) -> None:
    """Per-agent ``extra_headers`` name the agents; the run's program id rides along."""

    def settings(agent: str) -> ModelSettings:
        headers = {"x-kvbaton-program-id": "support-1", "x-kvbaton-agent": agent}
        return ModelSettings(extra_headers=headers)

    set_tracing_disabled(True)
    async with AsyncOpenAI(base_url=stack.base_url, api_key="unused", max_retries=0) as client:
        config = RunConfig(model_provider=OpenAIProvider(openai_client=client))
        billing = Agent(
            name="billing",
            instructions=BILLING,
            tools=[lookup_invoice, refund],
            model=MODEL,
            model_settings=settings("billing"),
        )
        triage = Agent(
            name="triage",
            instructions=TRIAGE,
            handoffs=[billing],
            model=MODEL,
            model_settings=settings("triage"),
        )
        await Runner.run(triage, QUESTION, run_config=config)
    program = await stack.only_program()
    assert program["program_id"] == "support-1"
    assert program["agents"] == ["triage", "billing"]
    assert program["calls"] == 5


async def test_nested_handoff_history_starts_a_new_program(stack: Stack) -> None:
    """With ``nest_handoff_history`` the SDK replaces the transcript by a summary message
    for the next agent: nothing on the wire links it to the first agent's calls."""
    set_tracing_disabled(True)
    async with AsyncOpenAI(base_url=stack.base_url, api_key="unused", max_retries=0) as client:
        config = RunConfig(
            model_provider=OpenAIProvider(openai_client=client), nest_handoff_history=True
        )
        await Runner.run(agents(MODEL), QUESTION, run_config=config)
    programs = sorted(await stack.settled(), key=lambda p: p["arrival"])
    assert [p["calls"] for p in programs][:1] == [1] and len(programs) == 2
    triage, billing = (p["agents"] for p in programs)
    assert triage == [instructions_agent("", {"instructions": TRIAGE})]
    assert billing == [instructions_agent("", {"instructions": BILLING})]
