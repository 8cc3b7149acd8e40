"""A program's KV footprint: the contexts it has written, counted as one prefix tree.

Admission (:mod:`.admission`) needs what an active program holds in the engine's cache.
Its latest context alone counts a chain right but undercounts a program whose branches
live side by side (a fork of researchers, a tree search's children): each branch holds its
own suffix. Here a call that continues its parent step's context (the same fixed prefix:
the same agent) adds only its tokens beyond the parent's context, so a parent's context
counts once under all its children; a call on another fixed prefix starts afresh and adds
its tokens beyond that prefix, and each agent's fixed prefix counts once per program. A
call without a step continues the program's previous call. Dead branches still count:
their KV stays cached until evicted.

Counting starts when the program is admitted, and starts again if it leaves the pool and
comes back: what it wrote before may have been evicted since. So a call whose parent was
written before then counts its whole context, as each of its siblings does: one context
each that the engine may have to rebuild. (Sharing that parent between the siblings
instead was measured worse in the simulator: ``tree`` under ``kvbaton``, 144.0 s mean JCT
against 122.9 s.)
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

from kvbaton.middleware.core.types import CallSpec

__all__ = ["Footprints"]

# Steps remembered per program; beyond it the oldest go, their tokens still counted (a
# child of a forgotten step then counts its whole context). LATS-style searches make about
# 200 calls.
MAX_NODES = 512
# Calls without a step are continued by the program's next call only: the last few (calls
# of one program may overlap) are enough.
_STEPLESS_KEPT = 4


@dataclass(slots=True)
class _Node:
    base: int  # tokens of its context that count elsewhere (its parent's, or its prefix)
    prefix: int  # its fixed prefix: a call on the same prefix continues its parent
    context: int = 0

    @property
    def new(self) -> int:
        return max(0, self.context - self.base)


@dataclass(slots=True)
class _Program:
    nodes: OrderedDict[str, _Node] = field(default_factory=OrderedDict)
    prefixes: dict[str, int] = field(default_factory=dict)  # agent -> its fixed prefix
    last: str | None = None
    stepless: deque[str] = field(default_factory=deque)  # calls without a step, oldest first
    total: int = 0  # sum of the nodes' new tokens


class Footprints:
    """Per counted program, the size of its contexts' prefix tree; O(1) per observation."""

    def __init__(self, max_nodes: int = MAX_NODES) -> None:
        if max_nodes < 1:
            raise ValueError("max_nodes must be at least 1")
        self.max_nodes = max_nodes
        self._programs: dict[str, _Program] = {}

    def __len__(self) -> int:
        return len(self._programs)

    def observe(self, spec: CallSpec, context_tokens: int) -> int:
        """The call's context is now ``context_tokens`` (its prompt when it is queued, prompt
        and reply when it ends); returns its program's footprint."""
        program = self._programs.setdefault(spec.program_id, _Program())
        key = spec.step or spec.call_id
        node = program.nodes.get(key) or self._add(program, spec, key)
        program.total -= node.new
        node.context = max(node.context, context_tokens)
        program.total += node.new
        program.last = key
        return program.total + sum(program.prefixes.values())

    def forget(self, program_id: str) -> None:
        self._programs.pop(program_id, None)

    def _add(self, program: _Program, spec: CallSpec, key: str) -> _Node:
        parent_key = spec.parent_step if spec.step else program.last
        parent = program.nodes.get(parent_key) if parent_key else None
        stepless = spec.step is None
        if parent is not None and parent.prefix == spec.prefix_tokens:
            node = _Node(base=parent.context, prefix=spec.prefix_tokens)
        else:
            node = _Node(base=spec.prefix_tokens, prefix=spec.prefix_tokens)
            agent = spec.agent or ""
            program.prefixes[agent] = max(program.prefixes.get(agent, 0), spec.prefix_tokens)
        program.nodes[key] = node
        if stepless:
            program.stepless.append(key)
            if len(program.stepless) > _STEPLESS_KEPT:  # its tokens stay counted
                program.nodes.pop(program.stepless.popleft(), None)
        if len(program.nodes) > self.max_nodes:
            program.nodes.popitem(last=False)
        return node
