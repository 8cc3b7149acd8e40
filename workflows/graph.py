"""A workflow's declared graph, as the proxy's workflow endpoint takes it.

Built when the workflow first runs (agents may name agents declared further down the
module) from its seed agents and every agent their ``next`` lists reach. The seeds: those
passed to ``@workflow(agents=...)``, else its ``entry`` agent, else every agent of its module
(then the module must declare no other workflow). A name in ``next`` that is a tool counts as
one of the agent's tools.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from kvbaton.workflows.declarations import (
    AgentSpec,
    ToolSpec,
    agents_in,
    find_agent,
    find_tool,
    suggest,
    tools_in,
    workflows_in,
)
from kvbaton.workflows.errors import DefinitionError

__all__ = ["AgentNode", "ToolNode", "WorkflowGraph", "WorkflowSpec", "build_graph"]


class AgentNode(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    next: list[str] = []
    tools: list[str] = []
    fan_out: int | None = None
    expected_duration_s: float | None = None
    last: bool = False


class ToolNode(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    expected_duration_s: float | None = None


class WorkflowGraph(BaseModel):
    """The body of ``PUT /kvbaton/v1/workflows/{name}``."""

    model_config = ConfigDict(frozen=True)

    name: str
    entry: str | None = None
    agents: list[AgentNode] = []
    tools: list[ToolNode] = []


@dataclass(frozen=True, slots=True)
class WorkflowSpec:
    """One ``@workflow``: where it was declared and what it was told about its graph."""

    name: str
    module: str
    agents: tuple[str, ...] | None = None
    entry: str | None = None
    tenant: str | None = None
    deadline_s: float | None = None


def build_graph(spec: WorkflowSpec) -> WorkflowGraph:
    """The declared graph of ``spec``; DefinitionError names what does not resolve."""
    seeds = _seed_agents(spec)
    agents = _reach(seeds, spec.module)
    tools: dict[str, ToolSpec] = {}
    if spec.agents is None and spec.entry is None:
        tools |= {t.name: t for t in tools_in(spec.module)}
    nodes = [_agent_node(a, agents, tools) for a in agents.values()]
    entry = spec.entry if spec.entry is not None else _entry(nodes)
    if entry is not None and entry not in agents:
        raise DefinitionError(
            f"workflow {spec.name!r} has entry={entry!r}, which is not one of its agents; "
            + suggest(entry, [*agents, *(a.name for a in agents_in(spec.module))])
        )
    return WorkflowGraph(
        name=spec.name,
        entry=entry,
        agents=nodes,
        tools=[
            ToolNode(name=t.name, expected_duration_s=t.expected_duration_s) for t in tools.values()
        ],
    )


def _seed_agents(spec: WorkflowSpec) -> list[AgentSpec]:
    if spec.agents is None and spec.entry is not None:
        entry = find_agent(spec.entry, spec.module)
        return [entry] if entry is not None else []
    if spec.agents is None:
        return _module_agents(spec)
    seeds = []
    for name in spec.agents:
        agent = find_agent(name, spec.module)
        if agent is None:
            raise DefinitionError(
                f"@workflow({spec.name!r}, agents=[...]) names {name!r}, which no @agent "
                "declares; " + suggest(name, [a.name for a in agents_in(spec.module)])
            )
        seeds.append(agent)
    return seeds


def _module_agents(spec: WorkflowSpec) -> list[AgentSpec]:
    agents = agents_in(spec.module)
    others = [w for w in workflows_in(spec.module) if w != spec.name]
    if agents and others:
        raise DefinitionError(
            f"module {spec.module} declares several workflows ({spec.name}, {', '.join(others)}) "
            f"and agents: give @workflow({spec.name!r}) its entry='...' agent or its "
            "agents=[...], so that each workflow's graph holds its own agents"
        )
    return agents


def _reach(seeds: list[AgentSpec], module: str) -> dict[str, AgentSpec]:
    """``seeds`` and every agent their ``next`` lists lead to, breadth first."""
    found: dict[str, AgentSpec] = {}
    todo = list(seeds)
    while todo:
        agent = todo.pop(0)
        if agent.name in found:
            continue
        found[agent.name] = agent
        for name in agent.next:
            target = find_agent(name, agent.module)
            if target is not None:
                todo.append(target)
            elif find_tool(name, agent.module) is None:
                raise DefinitionError(
                    f"agent {agent.name!r} has next=[..., {name!r}, ...], but no @agent or @tool "
                    f"declares {name!r}; "
                    + suggest(name, [a.name for a in agents_in(module)] + list(found))
                )
    return found


def _agent_node(
    agent: AgentSpec, agents: dict[str, AgentSpec], tools: dict[str, ToolSpec]
) -> AgentNode:
    tool_names = [*agent.tools, *(n for n in agent.next if n not in agents)]
    for name in tool_names:
        tool = find_tool(name, agent.module)
        if tool is None:
            raise DefinitionError(
                f"agent {agent.name!r} has tools=[..., {name!r}, ...], but no @tool declares "
                f"{name!r}; " + suggest(name, [t.name for t in tools_in(agent.module)])
            )
        tools.setdefault(name, tool)
    return AgentNode(
        name=agent.name,
        next=[n for n in agent.next if n in agents],
        tools=list(dict.fromkeys(tool_names)),
        fan_out=agent.fan_out,
        expected_duration_s=agent.expected_duration_s,
        last=agent.last,
    )


def _entry(nodes: list[AgentNode]) -> str | None:
    """The one agent no other agent hands over to, if there is exactly one."""
    targets = {n for node in nodes for n in node.next if n != node.name}
    roots = [node.name for node in nodes if node.name not in targets]
    return roots[0] if len(roots) == 1 else None
