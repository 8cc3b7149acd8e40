"""One workflow's graph, declared and learned: agents, tools, transitions and what is left.

A ``networkx.DiGraph`` holds the structure: node ``(start)``, ``(end)``, ``agent:<name>``
and ``tool:<name>``; ``next`` edges between agents (and from start / to end) carry a
declared ``prior`` and an observed ``count``; ``uses`` edges go from an agent to the tools
run after its calls. The statistics live in :class:`AgentNode` / :class:`ToolNode` objects
beside it, so that predictions read dictionaries, never walk the graph. Memory is bounded:
at most ``max_agents`` agents and ``max_tools`` tools (later names share an ``(other)``
node), fixed-size reservoirs and moments per node, and at most 41 remaining-work buckets
per agent.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import networkx as nx

from kvbaton.middleware.core.toolstats import ProgramLengths
from kvbaton.middleware.core.workflows.declared import MAX_AGENTS, MAX_TOOLS, DeclaredWorkflow
from kvbaton.middleware.core.workflows.moments import Moments
from kvbaton.middleware.core.workflows.nodes import AgentNode, Durations, ToolNode, moments_json
from kvbaton.middleware.core.workflows.outlook import CallRecord, Outlook, k_bucket
from kvbaton.middleware.core.workflows.prediction import NextAgent, PausePrediction

__all__ = ["END", "OTHER", "START", "WorkflowGraph"]

START, END, OTHER = "(start)", "(end)", "(other)"
MIN_SAMPLES = 5  # a remaining-work bucket answers once it has this many programs
_PRIOR = 1.0  # weight of a declared edge, in observed transitions


def _mean_or(moments: Moments | None, default: float) -> float:
    return moments.mean if moments is not None and moments.count else default


def _with_end(ranked: tuple[NextAgent, ...], p_end: float) -> tuple[NextAgent, ...]:
    others = [n for n in ranked if n.agent != END]
    total = sum(n.probability for n in others)
    if not total:
        return ranked
    ends = [n.samples for n in ranked if n.agent == END]
    scaled = [replace(n, probability=n.probability / total * (1 - p_end)) for n in others]
    if p_end > 0:
        scaled.append(NextAgent(END, p_end, ends[0] if ends else 0, 0.0))
    return tuple(sorted(scaled, key=lambda n: (-n.probability, n.agent)))


def _agent_id(name: str) -> str:
    return name if name in (START, END) else f"agent:{name}"


class WorkflowGraph:
    """Agents, tools and transitions of one workflow; see the module docstring."""

    def __init__(
        self, name: str, *, max_agents: int = MAX_AGENTS, max_tools: int = MAX_TOOLS, seed: int = 0
    ) -> None:
        self.name = name
        self.max_agents = max_agents
        self.max_tools = max_tools
        self.graph: Any = nx.DiGraph(name=name)
        self.graph.add_node(START, kind="start")
        self.graph.add_node(END, kind="end")
        self._rng = random.Random(f"{seed}:{name}")
        self._start = AgentNode(START, self._rng)
        self._agents: dict[str, AgentNode] = {}
        self._edges: dict[tuple[str, str], dict[str, Any]] = {}  # networkx's own attr dicts
        self._tools: dict[str, ToolNode] = {}
        self.entry: str | None = None
        self.declared = False
        self.programs = 0  # finished programs learned from
        self.lengths = ProgramLengths(seed=seed)
        self.outlook = Outlook()
        self.by_k: dict[int, Outlook] = {}

    def __len__(self) -> int:
        """Agent and tool nodes (start and end not counted)."""
        return len(self._agents) + len(self._tools)

    # -- nodes ------------------------------------------------------------------------

    def agent(self, name: str) -> AgentNode:
        """The agent's node, created on first sight (``(other)`` once the cap is reached)."""
        node = self._agents.get(name)
        if node is not None:
            return node
        full = len(self._agents) >= self.max_agents - 1
        if name != OTHER and (full or name in (START, END)):  # reserved names: not agents
            return self.agent(OTHER)
        node = self._agents[name] = AgentNode(name, self._rng)
        self.graph.add_node(_agent_id(name), kind="agent", name=name)
        return node

    def tool(self, name: str) -> ToolNode:
        node = self._tools.get(name)
        if node is not None:
            return node
        if len(self._tools) >= self.max_tools - 1 and name != OTHER:
            return self.tool(OTHER)
        node = self._tools[name] = ToolNode(name, Durations(self._rng))
        self.graph.add_node(f"tool:{name}", kind="tool", name=name)
        return node

    def agents(self) -> list[str]:
        return list(self._agents)

    # -- learning ---------------------------------------------------------------------

    def transition(self, src: str | None, dst: str, *, first: bool = True) -> None:
        """A call of agent ``dst`` (or the program's end) followed one of ``src`` (None: the
        program's first call). ``first``: the first call of ``dst`` to follow that call of
        ``src``; later ones (a fan-out) count toward the fan-out, not the transition."""
        source = self.agent(src) if src is not None else self._start
        target = dst if dst == END else self.agent(dst).name
        if target != END:
            self._agents[target].calls += 1
        if first:
            self._edge(source, target)["count"] += 1

    def observe_call(self, agent: str, service_s: float, prompt: int, output: int) -> None:
        node = self.agent(agent)
        node.finished += 1
        node.service_s.add(max(0.0, service_s))
        node.prompt_tokens.add(prompt)
        node.output_tokens.add(output)

    def observe_pause(self, agent: str, tools: Iterable[str], pause_s: float) -> None:
        node = self.agent(agent)
        node.pauses.add(pause_s)
        for name in dict.fromkeys(tools):
            tool = self.tool(name)
            tool.pauses.add(pause_s)
            edge = self.graph.get_edge_data(_agent_id(node.name), f"tool:{tool.name}")
            if edge is None:
                self.graph.add_edge(_agent_id(node.name), f"tool:{tool.name}", kind="uses", count=0)
                edge = self.graph.edges[_agent_id(node.name), f"tool:{tool.name}"]
            edge["count"] += 1

    def learn_program(self, records: Sequence[CallRecord], n_calls: int, end_at: float) -> None:
        """A program ended at ``end_at`` after ``n_calls`` calls; ``records`` are its calls
        in arrival order (the most recent ones if it made more than are kept)."""
        # NOTE: one backward pass: suffix sums of engine and tool time give what was left
        # after each call; calls that nothing followed lead to the end.
        self.programs += 1
        self.lengths.observe_program(max(1, n_calls))
        service = pause = 0.0
        for record in reversed(records):
            service += record.service_s
            pause += record.pause_after_s
            node = self.agent(record.agent)
            leaf = not record.children
            args = (n_calls - record.k, service, pause, end_at - record.arrived_at, leaf)
            bucket = k_bucket(record.k)
            for table in (node.by_k, self.by_k):
                table.setdefault(bucket, Outlook()).add(*args)
            node.outlook.add(*args)
            self.outlook.add(*args)
            if leaf:
                self.transition(record.agent, END)
            for child, calls in record.children.items():
                self._fan_out(node, child).add(calls)

    def declare(self, declared: DeclaredWorkflow) -> None:
        """Seed (or re-seed) the graph from a declaration; learned counts stay."""
        self.declared = True
        for tool in declared.tools:
            tool_node = self.tool(tool.name)
            if tool.expected_duration_s is not None and tool_node.declared != tool:
                tool_node.pauses.add(tool.expected_duration_s)
            tool_node.declared = tool
        self.entry = declared.entry or (declared.agents[0].name if declared.agents else None)
        self._reset_priors(self._start)
        if self.entry is not None:
            self._edge(self._start, self.entry)["prior"] = _PRIOR
        for spec in declared.agents:
            node = self.agent(spec.name)
            if spec.expected_duration_s is not None and node.declared != spec:
                node.service_s.add(spec.expected_duration_s)
            node.declared = spec
            self._reset_priors(node)
            for target in (*spec.next, *((END,) if spec.last else ())):
                self._edge(node, target)["prior"] = _PRIOR
            for tool_name in spec.tools:
                uses = (_agent_id(node.name), f"tool:{self.tool(tool_name).name}")
                if not self.graph.has_edge(*uses):
                    self.graph.add_edge(*uses, kind="uses", count=0)

    # -- reading ----------------------------------------------------------------------

    def next_agents(self, agent: str | None, k: int | None = None) -> tuple[NextAgent, ...]:
        """Agents that follow ``agent`` (None: the first call), most likely first.

        With ``k`` (the call's index in its program), the chance that nothing follows is
        that of ``agent``'s ``k``-th calls in finished programs, once there are enough of
        them; the other agents share the rest in their usual proportions.
        """
        node = self._agents.get(agent, self._start) if agent is not None else self._start
        if node.next_cache is None:
            node.next_cache = self._rank_next(node)
        outlook = node.by_k.get(k_bucket(k)) if k is not None else None
        if outlook is None or outlook.count < MIN_SAMPLES:
            return node.next_cache
        return _with_end(node.next_cache, outlook.leaves / outlook.count)

    def remaining(self, agent: str, k: int) -> tuple[Outlook | None, str]:
        """What was left after the ``k``-th call when it was ``agent``'s, and which table
        answered (the most specific one with enough programs)."""
        node = self._agents.get(agent) or self._agents.get(OTHER)
        bucket = k_bucket(k)
        candidates = (
            (node.by_k.get(bucket) if node else None, "agent+k"),
            (self.by_k.get(bucket), "workflow+k"),
            (node.outlook if node else None, "agent"),
            (self.outlook, "workflow"),
        )
        for outlook, source in candidates:
            if outlook is not None and outlook.count >= MIN_SAMPLES:
                return outlook, source
        return (self.outlook, "workflow") if self.outlook.count else (None, "none")

    def pause_after(self, agent: str, tools: Sequence[str]) -> PausePrediction:
        """The pause expected after a call of ``agent`` that asked for ``tools`` (if any)."""
        known = [self._tools[t] for t in tools if t in self._tools and self._tools[t].pauses.count]
        if known:  # parallel tools: the program is back when the slowest is done
            tool = max(known, key=lambda t: t.pauses.moments.mean)
            d, probability = tool.pauses, 1.0
        else:
            node = self._agents.get(agent) or self._agents.get(OTHER)
            if node is None or node.pauses.count == 0:
                return PausePrediction(1.0 if tools else 0.0, 0.0, 0.0, 0, tuple(tools))
            d = node.pauses
            probability = 1.0 if tools else min(1.0, d.count / max(node.finished, 1))
        return PausePrediction(probability, d.moments.mean, d.quantile(0.9), d.count, tuple(tools))

    def eta(self) -> float:
        """Continuum's η = -corr(calls done, calls left) over finished programs."""
        return self.lengths.eta()

    # -- views ------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The merged graph in the declaration's shape, with what was learned beside it."""
        return {
            "name": self.name,
            "declared": self.declared,
            "entry": self.entry,
            "agents": [self._agent_json(node) for node in self._agents.values()],
            "tools": [self._tool_json(node) for node in self._tools.values()],
            "start": [self._next_json(n) for n in self.next_agents(None)],
            "learned": {
                "programs": self.programs,
                "eta": round(self.eta(), 6),
                "corr_done_left": round(-self.eta(), 6),
                "remaining_calls": moments_json(self.outlook.calls),
                "remaining_service_s": moments_json(self.outlook.service_s),
                "remaining_time_s": moments_json(self.outlook.time_s),
            },
        }

    def node_link(self) -> dict[str, Any]:
        """networkx node-link JSON (``nodes``/``edges``), statistics as node attributes."""
        graph = self.graph.copy()
        for node in self._agents.values():
            graph.nodes[_agent_id(node.name)].update(node.to_json())
        for tool in self._tools.values():
            graph.nodes[f"tool:{tool.name}"].update(pauses=tool.pauses.to_json())
        for u, _, data in graph.edges(data=True):
            if data.get("kind") == "next":
                data["probability"] = self._probability(u, data)
                data["fan_out"] = round(_mean_or(data.get("fan_out"), 1.0), 3)
        link: dict[str, Any] = nx.node_link_data(graph, edges="edges")
        return link

    # -- internals --------------------------------------------------------------------

    def _edge(self, source: AgentNode, target: str) -> dict[str, Any]:
        key = (_agent_id(source.name), _agent_id(target))
        edge = self._edges.get(key)
        if edge is None:
            self.graph.add_edge(*key, kind="next", count=0, prior=0.0)
            edge = self._edges[key] = self.graph[key[0]][key[1]]
        source.next_cache = None
        return edge

    def _fan_out(self, source: AgentNode, target: str) -> Moments:
        edge = self._edge(source, target)
        moments: Moments | None = edge.get("fan_out")
        if moments is None:
            moments = edge["fan_out"] = Moments()
        return moments

    def _reset_priors(self, node: AgentNode) -> None:
        for _, _, data in self.graph.out_edges(_agent_id(node.name), data=True):
            if data.get("kind") == "next":
                data["prior"] = 0.0
        node.next_cache = None

    def _probability(self, u: str, data: dict[str, Any]) -> float:
        total = sum(
            d["count"] + d["prior"]
            for _, _, d in self.graph.out_edges(u, data=True)
            if d["kind"] == "next"
        )
        return (data["count"] + data["prior"]) / total if total else 0.0

    def _rank_next(self, node: AgentNode) -> tuple[NextAgent, ...]:
        u = _agent_id(node.name)
        edges = [(v, d) for _, v, d in self.graph.out_edges(u, data=True) if d["kind"] == "next"]
        total = sum(d["count"] + d["prior"] for _, d in edges)
        if not total:
            return ()
        declared = float(node.declared.fan_out) if node.declared else 1.0
        ranked = sorted(edges, key=lambda e: (-(e[1]["count"] + e[1]["prior"]), e[0]))
        return tuple(
            NextAgent(
                self.graph.nodes[v].get("name", v),
                (d["count"] + d["prior"]) / total,
                d["count"],
                0.0 if v == END else _mean_or(d.get("fan_out"), declared),
            )
            for v, d in ranked
        )

    def _agent_json(self, node: AgentNode) -> dict[str, Any]:
        declared = node.declared
        return {
            "name": node.name,
            "declared": declared is not None,
            "next": [self._next_json(n) for n in self.next_agents(node.name)],
            "tools": sorted(
                self.graph.nodes[v]["name"]
                for _, v, d in self.graph.out_edges(_agent_id(node.name), data=True)
                if d["kind"] == "uses"
            ),
            "fan_out": declared.fan_out if declared else None,
            "expected_duration_s": declared.expected_duration_s if declared else None,
            "last": bool(declared and declared.last),
            "learned": node.to_json(),
        }

    def _tool_json(self, node: ToolNode) -> dict[str, Any]:
        return {
            "name": node.name,
            "declared": node.declared is not None,
            "expected_duration_s": node.declared.expected_duration_s if node.declared else None,
            "learned": node.pauses.to_json(),
        }

    @staticmethod
    def _next_json(n: NextAgent) -> dict[str, Any]:
        return {"agent": n.agent, "probability": round(n.probability, 6), "samples": n.samples}
