"""Property tests: transition probabilities, running moments, bounded graphs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvbaton.middleware.core.policies import make_policy
from kvbaton.middleware.core.scheduler import Scheduler, SchedulerConfig
from kvbaton.middleware.core.types import CallOutcome, CallSpec, ToolCall
from kvbaton.middleware.core.workflows import WorkflowGraph
from kvbaton.middleware.core.workflows.moments import Moments

agents = st.sampled_from(["a", "b", "c", "d", "(end)"])


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), agents), min_size=1, max_size=60))
@settings(max_examples=60, deadline=None)
def test_next_agent_probabilities_sum_to_one_and_are_sorted(pairs: list[tuple[str, str]]) -> None:
    graph = WorkflowGraph("w")
    for src, dst in pairs:
        graph.transition(src, dst)
    for src in {s for s, _ in pairs}:
        nxt = graph.next_agents(src)
        assert sum(n.probability for n in nxt) == pytest.approx(1.0)
        probs = [n.probability for n in nxt]
        assert probs == sorted(probs, reverse=True)
        counts = {n.agent: n.samples for n in nxt}
        for dst in counts:
            assert counts[dst] == sum(1 for s, d in pairs if s == src and d == dst)


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=200))
def test_moments_match_numpy_within_the_window(values: list[float]) -> None:
    m = Moments(window=256)
    for v in values:
        m.add(v)
    assert m.count == len(values)
    assert m.mean == pytest.approx(float(np.mean(values)), rel=1e-9, abs=1e-6)
    assert m.std == pytest.approx(float(np.std(values)), rel=1e-6, abs=1e-6)


@given(st.floats(0, 100), st.floats(0, 100))
def test_moments_follow_a_drift_past_the_window(old: float, new: float) -> None:
    m = Moments(window=16)
    for _ in range(16):
        m.add(old)
    for _ in range(200):
        m.add(new)
    assert m.mean == pytest.approx(new, abs=1e-3 * (1 + abs(old - new)))


@given(st.lists(st.text(min_size=1, max_size=4), max_size=300))
@settings(max_examples=30, deadline=None)
def test_graph_never_exceeds_its_caps(names: list[str]) -> None:
    graph = WorkflowGraph("w", max_agents=10, max_tools=5)
    for name in names:
        graph.transition(None, name)
        graph.observe_pause(name, [name], 1.0)
    assert len(graph.agents()) <= 10
    assert len(graph) <= 15


programs = st.lists(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.floats(0, 5), st.booleans()),
        min_size=1,
        max_size=8,
    ),
    min_size=1,
    max_size=12,
)


@given(programs)
@settings(max_examples=40, deadline=None)
def test_predictions_stay_finite_and_ended_programs_leave_no_trace(
    shapes: list[list[tuple[str, float, bool]]],
) -> None:
    # Programs interleaved call by call; each call either asks for a tool or not.
    s = Scheduler(make_policy("program-fcfs"), SchedulerConfig(max_inflight=1000))
    now = 0.0
    for step in range(max(len(p) for p in shapes)):
        for i, shape in enumerate(shapes):
            if step >= len(shape):
                continue
            agent, service, tool = shape[step]
            last = step == len(shape) - 1
            call = f"p{i}-{step}"
            returned = (f"p{i}-{step - 1}-t",) if step and shape[step - 1][2] else ()
            spec = CallSpec(
                call, f"p{i}", agent=agent, last_step=last, returned_tool_calls=returned
            )
            s.submit(spec, now)
            program = s.programs.get(f"p{i}")
            assert program is not None
            p = s.workflows.predict(program, now)
            assert p is not None and p.calls == step + 1
            for e in (p.remaining_calls, p.remaining_service_s, p.remaining_time_s):
                assert math.isfinite(e.mean) and e.mean >= 0 and e.std >= 0
            assert sum(n.probability for n in p.next_agents) <= 1.0 + 1e-9
            now += service
            asked = (ToolCall(f"{call}-t", "t"),) if tool and not last else ()
            s.finish(call, CallOutcome(tool_calls=asked), now)
    assert s.workflows._traces == {}
    graphs = [s.workflows.get(name) for name in s.workflows.names()]
    assert sum(g.programs for g in graphs if g is not None) == len(shapes)
    assert {p[0][0] for p in shapes} == {n.removeprefix("agent:") for n in s.workflows.names()}
