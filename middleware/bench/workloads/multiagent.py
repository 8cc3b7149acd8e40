"""``multiagent``: KVFlow-style workflows of agents with long fixed system prompts.

KVFlow (arXiv 2507.07400) studies workflows whose agents each start from a long fixed prompt
(up to 8k tokens) shared by every run of the workflow, followed by a short dynamic part; the
cache question is which agent's prefix to keep or prefetch next. A program here is

    planner -> researcher x k (fork, k in 2..4) -> writer (join) -> reviewer [-> writer]

Every agent's first call starts ``fresh`` on its own system prompt (``mas-researcher-v1``
...; the prefix shared across programs) with the hand-off as new tokens. A researcher then
loops over tools (``web_search``, ``fetch_url``, ``python``), each call continuing its own
context. The writer waits for every researcher (a join: several parents). With probability
``REVISION_P`` the reviewer asks for changes and the writer's revision continues the writer's
own context with the review as new tokens (its first parent is the writer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kvbaton.middleware.bench.trace import Call, Program
from kvbaton.middleware.bench.workloads.arrivals import poisson_arrivals
from kvbaton.middleware.bench.workloads.durations import LogNormal, ToolMix
from kvbaton.middleware.bench.workloads.shapes import content_rng, make_programs

__all__ = ["AGENTS", "Agent", "generate"]


@dataclass(frozen=True, slots=True)
class Agent:
    """A workflow role: its fixed system prompt and the size of its replies."""

    name: str
    system_tokens: int
    output: LogNormal

    @property
    def system(self) -> str:
        return f"mas-{self.name}-v1"


AGENTS = {
    agent.name: agent
    for agent in (
        Agent("planner", 3000, LogNormal(350, 0.4)),
        Agent("researcher", 6000, LogNormal(180, 0.5)),
        Agent("writer", 4500, LogNormal(900, 0.4)),
        Agent("reviewer", 2500, LogNormal(200, 0.5)),
    )
}
RESEARCHERS = (2, 4)  # inclusive range of the fork's width
RESEARCH_STEPS = (1, 4)  # tool calls per researcher, inclusive
REVISION_P = 0.4
TOOLS = ToolMix.of(
    {
        "web_search": (0.5, LogNormal(1.2, 0.6, 60)),
        "fetch_url": (0.35, LogNormal(2.0, 1.0, 120)),
        "python": (0.15, LogNormal(1.5, 0.9, 120)),
    }
)
_OBSERVATION = LogNormal(900, 0.7)
_TASK = LogNormal(250, 0.5)


class _Builder:
    """Accumulates one program's calls; ids are ``{agent}{n}``, n counting all its calls."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.calls: list[Call] = []

    def call(
        self,
        agent: Agent,
        after: tuple[str, ...],
        new_tokens: int,
        *,
        fresh: bool,
        tool: str | None = None,
    ) -> Call:
        tool_s = TOOLS.duration(tool).draw(self.rng) if tool else 0.0
        call = Call(
            id=f"{agent.name}{len(self.calls)}",
            agent=agent.name,
            after=after,
            context="fresh" if fresh else "continue",
            system=agent.system if fresh else None,
            system_tokens=agent.system_tokens if fresh else 0,
            input_tokens=new_tokens,
            output_tokens=agent.output.tokens(self.rng, 1),
            tool=tool,
            tool_s=round(tool_s, 4),
        )
        self.calls.append(call)
        return call

    def research(self, plan: Call) -> Call:
        """One researcher: a fresh call on the plan, then a tool loop; returns its last call."""
        agent, rng = AGENTS["researcher"], self.rng
        steps = int(rng.integers(RESEARCH_STEPS[0], RESEARCH_STEPS[1] + 1))
        last = self.call(agent, (plan.id,), plan.output_tokens, fresh=True, tool=TOOLS.pick(rng))
        for step in range(1, steps + 1):
            tool = TOOLS.pick(rng) if step < steps else None
            last = self.call(agent, (last.id,), _OBSERVATION.tokens(rng, 1), fresh=False, tool=tool)
        return last


def _calls(rng: np.random.Generator) -> list[Call]:
    b = _Builder(rng)
    plan = b.call(AGENTS["planner"], (), _TASK.tokens(rng, 1), fresh=True)
    width = int(rng.integers(RESEARCHERS[0], RESEARCHERS[1] + 1))
    notes = [b.research(plan) for _ in range(width)]
    writer, reviewer = AGENTS["writer"], AGENTS["reviewer"]
    findings = sum(n.output_tokens for n in notes) + plan.output_tokens
    draft = b.call(writer, tuple(n.id for n in notes), findings, fresh=True)
    review = b.call(reviewer, (draft.id,), draft.output_tokens, fresh=True)
    if rng.random() < REVISION_P:
        b.call(writer, (draft.id, review.id), review.output_tokens, fresh=False)
    return b.calls


def generate(*, programs: int, rate: float, seed: int) -> list[Program]:
    """``programs`` planner/researchers/writer/reviewer workflows at ``rate`` per second."""
    arrivals = poisson_arrivals(programs, rate, seed)
    rng = content_rng(seed, "multiagent")
    return make_programs("multiagent", arrivals, lambda: _calls(rng))
