"""A program's execution graph: its calls and tool pauses, as they happen.

Nodes are calls (``call:<id>``) and tool pauses (``tool:<n>``); an edge means "came
after". The graph answers structural questions (which agent ran before which, where the
tool time went) and is what the UI and the learned workflow graphs read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import networkx as nx

__all__ = ["ExecutionGraph", "ToolPause"]


@dataclass(frozen=True, slots=True)
class ToolPause:
    """The client ran ``tools`` between two calls of a program for ``duration_s``."""

    tools: tuple[str, ...]
    started_at: float
    duration_s: float
    after_call: str
    before_call: str


class ExecutionGraph:
    """Calls and tool pauses of one program (a ``networkx.DiGraph`` underneath)."""

    def __init__(self) -> None:
        self.graph: Any = nx.DiGraph()
        self._by_step: dict[str, str] = {}
        self._last_call: str | None = None
        self._pauses = 0

    def add_call(
        self, call_id: str, *, agent: str | None, step: str | None, parent_step: str | None
    ) -> str:
        """Add a call node, linked to its declared parent step or else to the last call."""
        node = f"call:{call_id}"
        self.graph.add_node(node, kind="call", agent=agent, step=step, status="queued")
        declared = self._by_step.get(parent_step) if parent_step else None
        parent = declared or self._last_call
        if parent is not None:
            self.graph.add_edge(parent, node)
        if step is not None:
            self._by_step[step] = node
        self._last_call = node
        return node

    def update_node(self, node: str, **attrs: Any) -> None:
        if node in self.graph:
            self.graph.nodes[node].update(attrs)

    @property
    def last_call(self) -> str | None:
        return self._last_call

    def add_pause(self, pause: ToolPause) -> None:
        """Record a tool pause between two calls (``after_call`` → tool → ``before_call``)."""
        self._pauses += 1
        node = f"tool:{self._pauses}"
        self.graph.add_node(
            node,
            kind="tool",
            tools=list(pause.tools),
            started_at=pause.started_at,
            duration_s=pause.duration_s,
        )
        before = f"call:{pause.before_call}"
        if self.graph.has_edge(f"call:{pause.after_call}", before):
            self.graph.remove_edge(f"call:{pause.after_call}", before)
        self.graph.add_edge(f"call:{pause.after_call}", node)
        self.graph.add_edge(node, before)

    def calls(self) -> int:
        return sum(1 for _, kind in self.graph.nodes(data="kind") if kind == "call")

    def agents(self) -> list[str]:
        """Agents in order of their first call."""
        seen: dict[str, None] = {}
        for _, data in self.graph.nodes(data=True):
            if data.get("kind") == "call" and data.get("agent"):
                seen.setdefault(data["agent"], None)
        return list(seen)

    def to_json(self) -> dict[str, Any]:
        """Node-link JSON, the shape graph UIs read."""
        data: dict[str, Any] = nx.node_link_data(self.graph, edges="edges")
        return data
