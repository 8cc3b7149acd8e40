"""``swe``: SWE-agent-like single-agent loops calibrated to Continuum's SWE-bench statistics.

Continuum (arXiv 2511.02230, Table 2) replays 100 mini-swe-agent runs on SWE-bench: 10.9 ± 2.1
turns per program, tool calls 925 ± 3550 ms with the slowest 10% of calls holding about half
of the delay, and 70k ± 20k tokens per program. "Tokens per program" is taken as the total
context processed: the sum over the program's calls of each call's full prompt (system prompt
+ history + new tokens), see :mod:`.stats`.

A program is one chain: the first call starts fresh on the shared ``swe-agent-v1`` system
prompt with the issue as its new tokens; each next call continues the previous one with the
previous tool's observation. Tools are drawn independently from a per-tool lognormal mix
(``bash:cat`` is fast with big outputs, ``bash:pytest`` slow and heavy-tailed, ``bash:cd``
with a tiny median and the extreme tail Continuum reports for ``cd``). The second-to-last call runs
``submit``, which shows the diff for review as SWE-agent's review-on-submit does; the last
call confirms it and runs no tool.
"""

from __future__ import annotations

import numpy as np

from kvbaton.middleware.bench.trace import Call, Program
from kvbaton.middleware.bench.workloads.arrivals import poisson_arrivals
from kvbaton.middleware.bench.workloads.durations import LogNormal, ToolMix
from kvbaton.middleware.bench.workloads.shapes import Step, chain, content_rng, make_programs

__all__ = ["SYSTEM", "SYSTEM_TOKENS", "generate"]

SYSTEM = "swe-agent-v1"
SYSTEM_TOKENS = 2400
AGENT = "swe-agent"
TURNS_MEAN, TURNS_STD, MIN_TURNS = 10.9, 2.1, 3

# name: (weight, duration in seconds, observation tokens it returns)
_TOOLS: dict[str, tuple[float, LogNormal, LogNormal]] = {
    "bash:ls": (0.10, LogNormal(0.50, 0.5, 60), LogNormal(180, 0.5)),
    "bash:cd": (0.04, LogNormal(0.30, 1.8, 60), LogNormal(20, 0.3)),
    "bash:find": (0.06, LogNormal(0.70, 0.7, 60), LogNormal(260, 0.5)),
    "bash:grep": (0.14, LogNormal(0.65, 0.7, 60), LogNormal(450, 0.5)),
    "bash:cat": (0.16, LogNormal(0.45, 0.5, 60), LogNormal(1100, 0.5)),
    "bash:python": (0.10, LogNormal(1.6, 0.9, 300), LogNormal(400, 0.5)),
    "bash:pytest": (0.04, LogNormal(7.0, 1.6, 600), LogNormal(900, 0.5)),
    "str_replace_editor": (0.22, LogNormal(0.55, 0.5, 60), LogNormal(260, 0.5)),
}
_SUBMIT = ("submit", LogNormal(0.55, 0.5, 60), LogNormal(600, 0.5))
TOOLS = ToolMix.of({name: (weight, duration) for name, (weight, duration, _) in _TOOLS.items()})
_OBSERVATION = {name: obs for name, (_, _, obs) in _TOOLS.items()} | {_SUBMIT[0]: _SUBMIT[2]}
_DURATION = {name: TOOLS.duration(name) for name in TOOLS.names} | {_SUBMIT[0]: _SUBMIT[1]}
_TASK = LogNormal(700, 0.5)  # issue text + instance template
_OUTPUT = LogNormal(160, 0.5)  # thought + one bash block


def _calls(rng: np.random.Generator) -> list[Call]:
    turns = max(MIN_TURNS, round(rng.normal(TURNS_MEAN, TURNS_STD)))
    tools: list[str | None] = [TOOLS.pick(rng) for _ in range(turns - 2)]
    tools += [_SUBMIT[0], None]
    steps: list[Step] = []
    new_tokens = _TASK.tokens(rng, 1)
    for tool in tools:
        tool_s = _DURATION[tool].draw(rng) if tool else 0.0
        steps.append(Step(new_tokens, _OUTPUT.tokens(rng, 1), tool, tool_s))
        new_tokens = _OBSERVATION[tool].tokens(rng) if tool else 0
    return chain(AGENT, SYSTEM, SYSTEM_TOKENS, steps)


def generate(*, programs: int, rate: float, seed: int) -> list[Program]:
    """``programs`` SWE-agent-like programs arriving as a Poisson process of ``rate``/s."""
    arrivals = poisson_arrivals(programs, rate, seed)
    rng = content_rng(seed, "swe")
    return make_programs("swe", arrivals, lambda: _calls(rng))
