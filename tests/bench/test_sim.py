"""The simulator: invariants, determinism, token accounting, and the lower bound."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvbaton.middleware.bench.lower_bound import lower_bound, program_lower_bound
from kvbaton.middleware.bench.prompts import TokenSynth
from kvbaton.middleware.bench.records import CallRecord, ProgramRecord
from kvbaton.middleware.bench.sim import SimResult, simulate
from kvbaton.middleware.bench.trace import Call, Program
from kvbaton.middleware.engine import load_profile

TINY = load_profile("demo-tiny")


def call(cid: str, *after: str, **kw: object) -> Call:
    fields: dict[str, object] = {"id": cid, "agent": "a", "after": after}
    fields |= {"input_tokens": 100, "output_tokens": 10} | kw
    return Call.model_validate(fields)


def dag_program(pid: str, arrival: float) -> Program:
    """Fan-out to two tool-using branches, a fresh reviewer, and a fan-in."""
    return Program(
        id=pid,
        arrival=arrival,
        calls=(
            call("plan", system="s", system_tokens=300, tool="search", tool_s=0.5, think_s=0.2),
            call("left", "plan", tool="bash", tool_s=1.0),
            call("right", "plan", input_tokens=50, tool="bash", tool_s=0.1),
            call("review", "left", context="fresh", system="r", system_tokens=200),
            call("merge", "right", "review", think_s=0.3, output_tokens=5),
        ),
    )


def chain_program(pid: str, arrival: float, turns: int = 5) -> Program:
    calls = [call("c0", system="sys", system_tokens=800, input_tokens=600, output_tokens=40)]
    for j in range(1, turns):
        calls.append(call(f"c{j}", f"c{j - 1}", input_tokens=300, output_tokens=40))
    calls = [replace_tool(c, j < turns - 1) for j, c in enumerate(calls)]
    return Program(id=pid, arrival=arrival, calls=tuple(calls))


def replace_tool(c: Call, tool: bool) -> Call:
    return c.model_copy(update={"tool": "bash", "tool_s": 1.0}) if tool else c


def contended() -> list[Program]:
    """Twelve five-turn agents arriving within three seconds on an 8k-token pool."""
    return [chain_program(f"p{i}", 0.25 * i) for i in range(12)]


def check_records(programs: list[Program], result: SimResult, rate_scale: float = 1.0) -> None:
    by_id = {p.id: p for p in programs}
    assert [r.program_id for r in result.programs] == [p.id for p in programs]
    for record in result.programs:
        check_program(by_id[record.program_id], record, rate_scale)


def check_program(program: Program, record: ProgramRecord, rate_scale: float) -> None:
    assert not record.failed
    assert record.arrival == pytest.approx(program.arrival / rate_scale)
    calls = {c.call_id: c for c in record.calls}
    for spec in program.calls:
        rec = calls[spec.id]
        ready = max(
            (calls[p].finished_at + program_by(program, p).tool_s for p in spec.after),  # type: ignore[operator]
            default=record.arrival,
        )
        assert rec.sent_at >= ready + spec.think_s - 1e-9
        assert rec.first_token_at is not None and rec.finished_at is not None
        assert rec.sent_at <= rec.first_token_at <= rec.finished_at
        assert rec.completion_tokens == spec.output_tokens
        assert rec.recomputed_tokens >= 0
        assert rec.cached_tokens < rec.prompt_tokens
        check_spans(rec)
    assert record.finished_at == max(c.finished_at for c in record.calls)  # type: ignore[type-var]


def check_spans(rec: CallRecord) -> None:
    """The engine's spans of a call that ran cover its engine latency exactly."""
    assert rec.dispatched_at is not None and rec.first_token_at is not None
    assert rec.finished_at is not None
    assert rec.sent_at <= rec.dispatched_at <= rec.first_token_at
    assert rec.engine_queue_s >= 0 and rec.prefill_s > 0 and rec.decode_s >= -1e-9
    spans = rec.engine_queue_s + rec.prefill_s + rec.decode_s
    assert spans == pytest.approx(rec.finished_at - rec.dispatched_at, abs=1e-9)


def program_by(program: Program, cid: str) -> Call:
    return next(c for c in program.calls if c.id == cid)


def test_dag_trace_keeps_dependencies_and_capacity() -> None:
    programs = [dag_program(f"p{i}", 0.1 * i) for i in range(6)]
    result = simulate(programs, "baseline", TINY, kv_tokens=3000, check=True)
    check_records(programs, result)
    assert result.summary()["failed_programs"] == 0


def test_prompts_extend_the_first_parent() -> None:
    program = dag_program("p", 0.0)
    [record] = simulate([program], "program-fcfs", TINY, check=True).programs
    tokens = {c.call_id: c.prompt_tokens for c in record.calls}
    assert tokens["plan"] == 300 + 100
    assert tokens["left"] == tokens["plan"] + 10 + 100
    assert tokens["right"] == tokens["plan"] + 10 + 50
    assert tokens["review"] == 200 + 100  # fresh: its own system prompt
    assert tokens["merge"] == tokens["right"] + 10 + 100  # first parent only
    cached = {c.call_id: c.cached_tokens for c in record.calls}
    # Alone on the engine, a continue call finds all of its parent's KV (its prompt and
    # all but the last reply token, which was never fed back).
    assert cached["left"] == tokens["plan"] + 10 - 1
    assert all(c.recomputed_tokens == 0 for c in record.calls)


def test_rate_scale_divides_arrivals() -> None:
    programs = [dag_program("a", 0.0), dag_program("b", 10.0)]
    result = simulate(programs, "baseline", TINY, rate_scale=4.0, check=True)
    check_records(programs, result, rate_scale=4.0)
    assert result.programs[1].arrival == 2.5


def test_same_seed_same_numbers() -> None:
    runs = [simulate(contended(), "program-fcfs", TINY, kv_tokens=8000, seed=7) for _ in "ab"]
    assert runs[0].summary() == runs[1].summary()
    assert runs[0].programs == runs[1].programs


def test_tokens_depend_only_on_names() -> None:
    a, b = TokenSynth(1), TokenSynth(1)
    assert a.system("s", 50) is a.system("s", 50)
    assert a.system("s", 50) == b.system("s", 50)
    assert a.new_tokens("p", "c", 20) == b.new_tokens("p", "c", 20)
    assert a.new_tokens("p", "c", 20)[0] != a.new_tokens("p", "d", 20)[0]
    assert a.output("p", "c", 20)[0] != a.new_tokens("p", "c", 20)[0]
    assert TokenSynth(2).system("s", 50) != a.system("s", 50)
    assert len(a.output("p", "c", 33)) == 33 and a.output("p", "c", 0) == ()


def test_eviction_shows_as_recomputed_tokens() -> None:
    result = simulate(contended(), "baseline", TINY, kv_tokens=8000, check=True)
    check_records(contended(), result)
    assert result.summary()["recomputed_tokens"] > 0
    roomy = simulate([chain_program("p", 0.0)], "baseline", TINY, check=True)
    assert roomy.summary()["recomputed_tokens"] == 0


@pytest.mark.parametrize("policy", ["baseline", "program-fcfs"])
def test_preemption_keeps_capacity_and_counts_recomputation(policy: str) -> None:
    # Four long replies admitted together outgrow an 800-token pool as they decode.
    programs = [
        Program(id=f"p{i}", arrival=0.0, calls=(call("c", output_tokens=300),)) for i in range(4)
    ]
    result = simulate(programs, policy, TINY, kv_tokens=800, check=True)
    check_records(programs, result)
    summary = result.summary()
    assert summary["preemptions"] > 0 and summary["recomputed_tokens"] > 0
    assert summary["preemptions"] == result.engine.preemptions_total


def test_program_fcfs_beats_baseline_on_a_contended_burst() -> None:
    # Twelve equal agents share a small engine. Baseline interleaves every program's turns
    # (processor sharing: all of them finish late, together); program-level FCFS lets the
    # earliest programs' returning turns go first, so they finish early and the mean JCT
    # drops, as with FCFS against processor sharing for equal jobs.
    base = simulate(contended(), "baseline", TINY, kv_tokens=8000).summary()
    fcfs = simulate(contended(), "program-fcfs", TINY, kv_tokens=8000).summary()
    assert fcfs["jct_mean_s"] < base["jct_mean_s"]
    assert fcfs["failed_programs"] == base["failed_programs"] == 0


@pytest.mark.parametrize("policy", ["baseline", "program-fcfs"])
def test_lower_bound_is_below_every_program(policy: str) -> None:
    programs = [*contended(), dag_program("d", 1.0)]
    result = simulate(programs, policy, TINY, kv_tokens=8000)
    for program, record in zip(
        sorted(programs, key=lambda p: p.arrival), result.programs, strict=True
    ):
        assert record.jct_s is not None and program_lower_bound(program, TINY) <= record.jct_s
    assert lower_bound(programs, TINY) <= result.summary()["jct_mean_s"]


def test_a_call_too_long_for_the_pool_fails_its_program_only() -> None:
    big = Program(id="big", arrival=0.0, calls=(call("c0", input_tokens=5000), call("c1", "c0")))
    result = simulate([big, dag_program("ok", 0.0)], "program-fcfs", TINY, kv_tokens=3000)
    summary = result.summary()
    assert summary["failed_programs"] == 1 and summary["programs"] == 2
    failed = result.programs[0]
    assert failed.failed and not failed.calls[0].ok and failed.calls[1].first_token_at is None


# -- random traces --------------------------------------------------------------------


SYSTEMS = {"s1": 100, "s2": 60, "s3": 0}


@st.composite
def programs(draw: st.DrawFn) -> list[Program]:
    out = []
    for i in range(draw(st.integers(1, 4))):
        calls: list[Call] = []
        for j in range(draw(st.integers(1, 4))):
            after = draw(st.sets(st.sampled_from([c.id for c in calls]))) if calls else set()
            parents = tuple(sorted(after))
            fresh = not parents or draw(st.booleans())
            calls.append(
                call(
                    f"c{j}",
                    *parents,
                    context="fresh" if fresh else "continue",
                    system=(system := draw(st.sampled_from(["s1", "s2", "s3"]))) if fresh else None,
                    system_tokens=SYSTEMS[system] if fresh else 0,
                    input_tokens=draw(st.integers(1, 150)),
                    output_tokens=draw(st.integers(1, 120)),
                    tool=draw(st.sampled_from([None, "t"])),
                    tool_s=draw(st.sampled_from([0.0, 0.3, 2.0])),
                    think_s=draw(st.sampled_from([0.0, 0.1])),
                )
            )
        arrival = draw(st.floats(0, 3, allow_nan=False))
        out.append(Program(id=f"p{i}", arrival=arrival, calls=tuple(calls)))
    return out


@settings(max_examples=80, deadline=None)
@given(
    trace=programs(),
    policy=st.sampled_from(["baseline", "program-fcfs"]),
    kv=st.sampled_from([500, 1000, 24000]),
)
def test_random_traces_hold_the_invariants(trace: list[Program], policy: str, kv: int) -> None:
    # check=True: the simulator itself raises if the engine's KV use ever exceeds the pool
    # or a call goes out before its parents returned; it also raises if anything stalls.
    result = simulate(trace, policy, TINY, kv_tokens=kv, check=True)
    for program, record in zip(
        sorted(trace, key=lambda p: p.arrival), result.programs, strict=True
    ):
        too_long = max(
            n + c.output_tokens for n, c in zip(prompt_lengths(program), program.calls, strict=True)
        )
        assert record.failed == (too_long > kv)  # only a call that cannot fit fails
        if not record.failed:
            check_program(program, record, 1.0)
            assert record.jct_s is not None
            assert program_lower_bound(program, TINY) <= record.jct_s + 1e-9


def prompt_lengths(program: Program) -> list[int]:
    lengths: dict[str, int] = {}
    for c in program.calls:
        if c.fresh:
            lengths[c.id] = c.system_tokens + c.input_tokens
        else:
            parent = program_by(program, c.after[0])
            lengths[c.id] = lengths[parent.id] + parent.output_tokens + c.input_tokens
    return [lengths[c.id] for c in program.calls]
