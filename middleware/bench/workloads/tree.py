"""``tree``: LATS-style tree searches, Autellix's high fan-out DAG workload.

Autellix (arXiv 2502.13965) runs LATS, Monte-Carlo tree search over ReAct
steps on HotpotQA: about 160 calls per program of 467 prompt and 73 decode tokens. Here a
program is a root call, then ``iterations`` expansions: each picks a node of the tree
(deeper nodes more likely, as UCT drifts down promising branches) and expands it into ``k``
parallel children (``k`` in 3..5, fixed per program). Each child continues its parent's
context with the parent's observation as new tokens, generates a thought and an action, and
runs it as a tool (``wikipedia:search``, ``wikipedia:lookup``); ``finish`` actions and nodes
at ``MAX_DEPTH`` end their branch. Selecting the next node needs every child of the previous
expansion evaluated, so the children of expansion i+1 also wait for all children of
expansion i (extra parents; the context still continues the selected node, listed first).
"""

from __future__ import annotations

import numpy as np

from kvbaton.middleware.bench.trace import Call, Program
from kvbaton.middleware.bench.workloads.arrivals import poisson_arrivals
from kvbaton.middleware.bench.workloads.durations import LogNormal, ToolMix
from kvbaton.middleware.bench.workloads.shapes import content_rng, make_programs

__all__ = ["SYSTEM", "SYSTEM_TOKENS", "generate"]

SYSTEM, SYSTEM_TOKENS = "lats-hotpotqa-v1", 160
AGENT = "lats"
FANOUT = (3, 5)  # inclusive
ITERATIONS = (6, 40)  # inclusive: 19..201 calls per program
MAX_DEPTH = 7  # LATS' depth limit on HotpotQA; deeper nodes are not expanded
TOOLS = ToolMix.of(
    {
        "wikipedia:search": (0.6, LogNormal(0.8, 0.7, 30)),
        "wikipedia:lookup": (0.3, LogNormal(0.05, 0.5, 5)),
        "finish": (0.1, LogNormal(0.01, 0.3, 1)),
    }
)
_QUESTION = LogNormal(60, 0.4)
_OBSERVATION = {
    "wikipedia:search": LogNormal(50, 0.6),
    "wikipedia:lookup": LogNormal(30, 0.5),
}
_OUTPUT = LogNormal(73, 0.4)


class _Tree:
    """One program's calls plus what selection needs: each open node's depth."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.calls: list[Call] = []
        self.open: dict[str, tuple[int, str]] = {}  # expandable node -> (depth, its tool)

    def add(self, after: tuple[str, ...], new_tokens: int, depth: int) -> Call:
        tool = TOOLS.pick(self.rng)
        root = not after
        call = Call(
            id=f"n{len(self.calls)}",
            agent=AGENT,
            after=after,
            context="fresh" if root else "continue",
            system=SYSTEM if root else None,
            system_tokens=SYSTEM_TOKENS if root else 0,
            input_tokens=new_tokens,
            output_tokens=_OUTPUT.tokens(self.rng, 1),
            tool=None if tool == "finish" else tool,
            tool_s=0.0 if tool == "finish" else round(TOOLS.duration(tool).draw(self.rng), 4),
        )
        self.calls.append(call)
        if call.tool is not None and depth < MAX_DEPTH:
            self.open[call.id] = (depth, call.tool)
        return call

    def select(self) -> str | None:
        if not self.open:
            return None
        nodes = list(self.open)
        weights = np.array([self.open[n][0] + 1.0 for n in nodes])
        return nodes[int(self.rng.choice(len(nodes), p=weights / weights.sum()))]

    def expand(self, node: str, k: int, previous: list[str]) -> list[str]:
        depth, tool = self.open.pop(node)
        after = (node, *(p for p in previous if p != node))
        observation = _OBSERVATION[tool]
        return [self.add(after, observation.tokens(self.rng, 1), depth + 1).id for _ in range(k)]


def _calls(rng: np.random.Generator) -> list[Call]:
    tree = _Tree(rng)
    k = int(rng.integers(FANOUT[0], FANOUT[1] + 1))
    previous = [tree.add((), _QUESTION.tokens(rng, 1), 0).id]
    for _ in range(int(rng.integers(ITERATIONS[0], ITERATIONS[1] + 1))):
        if (node := tree.select()) is None:
            break  # every branch finished
        previous = tree.expand(node, k, previous)
    return tree.calls


def generate(*, programs: int, rate: float, seed: int) -> list[Program]:
    """``programs`` LATS-style search trees arriving as a Poisson process of ``rate``/s."""
    arrivals = poisson_arrivals(programs, rate, seed)
    rng = content_rng(seed, "tree")
    return make_programs("tree", arrivals, lambda: _calls(rng))
