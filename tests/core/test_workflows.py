"""Workflow graphs through the scheduler, with explicit ``now``: learning and predictions."""

from __future__ import annotations

import math

import pytest

from kvbaton.middleware.core.actions import Dispatch, PauseObserved, Unpin
from kvbaton.middleware.core.policies import make_policy
from kvbaton.middleware.core.programs import ProgramState
from kvbaton.middleware.core.scheduler import Scheduler, SchedulerConfig
from kvbaton.middleware.core.types import CallOutcome, CallSpec, ProgramStatus, ToolCall
from kvbaton.middleware.core.workflows import END, OTHER, WorkflowGraph, WorkflowRegistry
from kvbaton.middleware.core.workflows.declared import parse_declared
from kvbaton.middleware.core.workflows.outlook import k_bucket


def sched(policy: str = "program-fcfs", **kw: float) -> Scheduler:
    return Scheduler(make_policy(policy), SchedulerConfig(max_inflight=64, **kw))  # type: ignore[arg-type]


def run_program(
    s: Scheduler,
    pid: str,
    steps: list[tuple[str, float, float]],
    *,
    start: float,
    workflow: str = "wf",
    tool: str | None = "search",
) -> float:
    """Run ``steps`` (agent, engine seconds, tool seconds after) one after another; the last
    step says it is last. Returns the time the program ended."""
    now = start
    returned: tuple[str, ...] = ()
    for i, (agent, service, pause) in enumerate(steps):
        last = i == len(steps) - 1
        call = f"{pid}-{i}"
        spec = CallSpec(
            call, pid, agent=agent, workflow=workflow, last_step=last, returned_tool_calls=returned
        )
        assert [a.call_id for a in s.submit(spec, now) if isinstance(a, Dispatch)] == [call]
        now += service
        asked = (ToolCall(f"{call}-t", tool),) if tool and pause and not last else ()
        s.finish(call, CallOutcome(prompt_tokens=100, completion_tokens=10, tool_calls=asked), now)
        returned = (f"{call}-t",) if asked else ()
        now += pause
    return now


# A -> B -> B, 1 s then 2 s then 2 s of engine time, a 0.5 s tool pause after each call.
SHAPE = [("A", 1.0, 0.5), ("B", 2.0, 0.5), ("B", 2.0, 0.0)]


def test_predictions_on_a_known_workflow_match_hand_computed_values() -> None:
    s = sched()
    t = 0.0
    for i in range(5):
        t = run_program(s, f"p{i}", SHAPE, start=t) + 1.0
    s.submit(CallSpec("q-0", "q", agent="A", workflow="wf"), t)
    program = s.programs.get("q")
    assert program is not None
    p = s.workflows.predict(program, t)
    assert p is not None
    assert (p.workflow, p.agent, p.calls) == ("wf", "A", 1)
    assert [(n.agent, n.probability) for n in p.next_agents] == [("B", 1.0)]
    # After the first call: 2 calls, 1 + 2 + 2 engine seconds, 0.5 + 0.5 s of tools, and
    # 5 + 1 = 6 s of wall time (the last pause is 0).
    assert p.remaining_calls.mean == pytest.approx(2.0)
    assert p.remaining_service_s.mean == pytest.approx(5.0)
    assert p.remaining_pause_s.mean == pytest.approx(1.0)
    assert p.remaining_time_s.mean == pytest.approx(6.0)
    assert p.remaining_calls.std == pytest.approx(0.0)
    assert (p.remaining_calls.samples, p.remaining_calls.source) == (5, "agent+k")
    assert p.tool_pause.mean_s == pytest.approx(0.5)
    assert p.tool_pause.probability == pytest.approx(1.0)
    # 1.5 s later, with the call done after 1 s: 4 engine seconds and 4.5 s left.
    s.finish("q-0", CallOutcome(tool_calls=(ToolCall("q-t", "search"),)), t + 1.0)
    later = s.workflows.predict(program, t + 1.5)
    assert later is not None
    assert later.remaining_service_s.mean == pytest.approx(4.0)
    assert later.remaining_time_s.mean == pytest.approx(4.5)
    assert later.tool_pause.tools == ("search",)
    assert later.tool_pause.samples == 10  # two pauses of "search" per program
    assert s.workflows.remaining_work(program, t + 1.5) == pytest.approx((4.0, 4.5))


def test_transition_probabilities_count_observed_transitions() -> None:
    s = sched()
    t = 0.0
    for i, second in enumerate(["B", "B", "C", "B"]):
        t = run_program(s, f"p{i}", [("A", 1.0, 0.0), (second, 1.0, 0.0)], start=t, tool=None)
    graph = s.workflows.get("wf")
    assert graph is not None
    nxt = {n.agent: (n.probability, n.samples) for n in graph.next_agents("A")}
    assert nxt == {"B": (0.75, 3), "C": (0.25, 1)}
    assert [n.agent for n in graph.next_agents("B")] == [END]
    assert [n.agent for n in graph.next_agents(None)] == ["A"]  # the entry
    edge = graph.graph.edges["agent:A", "agent:B"]
    assert edge["count"] == 3


def test_fan_out_counts_one_transition_per_parent_call() -> None:
    g = WorkflowRegistry()
    s = sched()
    s.workflows = g
    s.submit(CallSpec("r", "p", agent="plan", step="r", workflow="w"), 0.0)
    s.finish("r", CallOutcome(), 1.0)
    for i in range(3):
        s.submit(CallSpec(f"c{i}", "p", agent="work", step=f"c{i}", parent_step="r"), 1.0)
    for i in range(3):
        s.finish(f"c{i}", CallOutcome(), 2.0)
    s.submit(CallSpec("j", "p", agent="join", parent_step="c0", last_step=True), 2.0)
    s.finish("j", CallOutcome(), 3.0)
    graph = g.get("w")
    assert graph is not None and graph.programs == 1
    (work,) = graph.next_agents("plan")
    assert (work.agent, work.probability, work.samples, work.fan_out) == ("work", 1.0, 1, 3.0)
    # c0 led to the join; c1 and c2 led nowhere (the end).
    assert {n.agent: n.samples for n in graph.next_agents("work")} == {"join": 1, END: 2}


def test_memory_is_bounded_under_10k_distinct_agent_names() -> None:
    graph = WorkflowGraph("w", max_agents=64, max_tools=32)
    for i in range(10_000):
        graph.transition(f"a{i - 1}" if i else None, f"a{i}")
        graph.observe_pause(f"a{i}", [f"tool{i}"], 1.0)
    assert len(graph.agents()) == 64
    assert OTHER in graph.agents()
    assert len(graph) == 64 + 32
    assert graph.graph.number_of_nodes() == 64 + 32 + 2  # plus start and end
    assert graph.agent("a9999").name == OTHER
    reg = WorkflowRegistry(max_workflows=8, max_calls_kept=16)
    s = sched()
    s.workflows = reg
    for i in range(100):
        s.submit(CallSpec(f"c{i}", "long", agent=f"x{i}", workflow=f"wf{i % 20}"), float(i))
        s.finish(f"c{i}", CallOutcome(), float(i) + 0.5)
    assert len(reg) <= 8
    trace = reg._traces["long"]
    assert len(trace.records) == 16 and trace.calls == 100


def test_agents_named_like_the_start_or_end_nodes_do_not_replace_them() -> None:
    graph = WorkflowGraph("w")
    graph.transition(None, "(end)")
    graph.transition("(start)", "a")
    assert graph.agents() == [OTHER, "a"]
    assert graph.graph.nodes[END]["kind"] == "end"
    assert graph.graph.nodes["(start)"]["kind"] == "start"


def test_declared_graph_seeds_and_learning_refines_it() -> None:
    reg = WorkflowRegistry()
    declared = parse_declared(
        {
            "entry": "planner",
            "agents": [
                {"name": "planner", "next": ["researcher", "writer"], "tools": ["search"]},
                {"name": "researcher", "next": ["writer"], "expected_duration_s": 3.0},
                {"name": "writer", "last": True, "fan_out": 1},
            ],
            "tools": [{"name": "search", "expected_duration_s": 2.0}],
        },
        "research",
    )
    graph = reg.declare("research", declared)
    assert [(n.agent, n.probability) for n in graph.next_agents("planner")] == [
        ("researcher", 0.5),
        ("writer", 0.5),
    ]
    assert graph.pause_after("planner", ["search"]).mean_s == pytest.approx(2.0)
    for _ in range(3):
        graph.transition("planner", "writer")
    learned = {n.agent: n.probability for n in graph.next_agents("planner")}
    assert learned == {"writer": pytest.approx(4 / 5), "researcher": pytest.approx(1 / 5)}
    # Declaring again re-seeds the priors without doubling them, and keeps what was learned.
    reg.declare("research", declared)
    again = {n.agent: n.probability for n in graph.next_agents("planner")}
    assert again == learned
    view = graph.to_json()
    planner = next(a for a in view["agents"] if a["name"] == "planner")
    assert planner["declared"] and planner["tools"] == ["search"]
    assert view["entry"] == "planner" and view["declared"]
    link = graph.node_link()
    ids = {n["id"] for n in link["nodes"]}
    assert {"agent:planner", "tool:search", "(start)", "(end)"} <= ids
    assert any(e["source"] == "agent:writer" and e["target"] == END for e in link["edges"])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"agents": {}}, "agents"),
        ({"agents": [{"name": "a", "next": ["b"]}]}, "'b', which is not a declared agent"),
        ({"agents": [{"name": "a", "tools": ["t"]}]}, "'t', which is not in tools"),
        ({"agents": [{"name": "a"}, {"name": "a"}]}, "declared twice"),
        ({"entry": "z", "agents": [{"name": "a"}]}, "entry 'z'"),
        ({"name": "other", "agents": [{"name": "a"}]}, "does not match"),
        ({"agents": [{"name": "a", "fan_out": 0}]}, "agents.0.fan_out"),
        ({"agents": [{"name": "a", "colour": 1}]}, "agents.0.colour"),
        ({"agents": [{"name": "(end)"}]}, "reserved"),
    ],
)
def test_invalid_declarations_say_what_to_fix(body: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_declared(body, "w")


def test_oversized_declaration_is_refused_before_validation() -> None:
    from kvbaton.middleware.core.workflows import WorkflowTooLarge

    with pytest.raises(WorkflowTooLarge, match="at most 256"):
        parse_declared({"agents": [{"name": f"a{i}"} for i in range(257)]}, "w")


def test_eta_is_one_for_fixed_lengths_and_small_for_memoryless_ones() -> None:
    fixed = WorkflowGraph("fixed")
    for _ in range(30):
        fixed.learn_program([], 6, 0.0)
    assert fixed.eta() == pytest.approx(1.0)
    geometric = WorkflowGraph("geometric")
    lengths = [1, 1, 1, 1, 2, 2, 2, 3, 3, 4, 5, 6, 8, 10, 1, 1, 2, 1, 3, 1, 1, 2, 7, 12]
    for n in lengths:
        geometric.learn_program([], n, 0.0)
    assert -0.5 < geometric.eta() < 0.5


def test_tool_header_records_a_pause_that_tool_stats_learn() -> None:
    s = sched("continuum")
    s.submit(CallSpec("a1", "P", agent="coder"), 0.0)
    s.finish("a1", CallOutcome(prompt_tokens=50, completion_tokens=5), 1.0)
    actions = s.submit(CallSpec("a2", "P", agent="coder", tools=("pytest", "git")), 4.0)
    (observed,) = [a for a in actions if isinstance(a, PauseObserved)]
    assert observed.pause.tools == ("pytest", "git")
    assert observed.pause.duration_s == pytest.approx(3.0)
    assert observed.pause.after_call == "a1"
    assert s.keeper.deps.tools.count("pytest") == 1
    graph = s.workflows.get("agent:coder")
    assert graph is not None
    assert graph.pause_after("coder", ["pytest"]).mean_s == pytest.approx(3.0)
    program = s.programs.get("P")
    assert program is not None
    tools = [n["tools"] for n in program.graph.to_json()["nodes"] if n["kind"] == "tool"]
    assert tools == [["pytest", "git"]]


def test_end_program_releases_pins_and_teaches_the_graph() -> None:
    s = sched("continuum")
    s.submit(CallSpec("a1", "P", workflow="w"), 0.0)
    tools = (ToolCall("t1", "search"),)
    s.finish("a1", CallOutcome(prompt_tokens=500, completion_tokens=20, tool_calls=tools), 1.0)
    with pytest.raises(KeyError):
        s.end_program("nobody", 2.0)
    actions = s.end_program("P", 2.0)
    assert Unpin("P", "program-ended") in actions
    program = s.programs.get("P")
    assert program is not None and program.status is ProgramStatus.DONE
    graph = s.workflows.get("w")
    assert graph is not None and graph.programs == 1
    assert s.workflows.predict(program, 2.0) is None  # over: nothing left to predict


def test_expired_programs_are_learned_up_to_their_last_call() -> None:
    s = sched(idle_ttl_s=10.0)
    s.submit(CallSpec("a1", "P", workflow="w"), 0.0)
    s.finish("a1", CallOutcome(), 2.0)
    s.tick(20.0)
    graph = s.workflows.get("w")
    assert graph is not None and graph.programs == 1
    assert graph.outlook.time_s.mean == pytest.approx(2.0)  # ended at its last finish


def test_unknown_workflow_is_inferred_from_the_first_agent_or_default() -> None:
    s = sched()
    s.submit(CallSpec("a", "P", agent="planner"), 0.0)
    s.submit(CallSpec("b", "Q"), 0.0)
    assert s.workflows.workflow_of("P") == "agent:planner"
    assert s.workflows.workflow_of("Q") == "default"


def test_prediction_is_none_for_unknown_programs() -> None:
    assert WorkflowRegistry().predict(ProgramState("x", 0, 0.0), 0.0) is None


def test_k_buckets_are_exact_then_coarser() -> None:
    assert [k_bucket(k) for k in (1, 8, 9, 11, 12, 16, 10**4, 10**9)] == [
        1,
        8,
        9,
        9,
        10,
        11,
        29,
        40,
    ]
    assert all(k_bucket(k) <= k_bucket(k + 1) for k in range(1, 2000))


def test_prediction_json_is_finite() -> None:
    s = sched()
    run_program(s, "p", SHAPE, start=0.0)
    s.submit(CallSpec("x", "q", agent="A", workflow="wf"), 100.0)
    program = s.programs.get("q")
    assert program is not None
    p = s.workflows.predict(program, 100.0)
    assert p is not None
    body = p.to_json()
    assert body["remaining_calls"]["source"] == "workflow"  # one program: too few for agent+k
    assert all(math.isfinite(v["mean"]) for k, v in body.items() if k.startswith("remaining"))
