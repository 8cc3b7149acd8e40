"""The trace format: good traces load, broken ones name the line and the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from kvbaton.middleware.bench.trace import TraceError, dump_trace, load_trace, read_trace

GOOD: dict[str, Any] = {
    "id": "swe-0007",
    "arrival": 12.25,
    "tenant": "acme",
    "calls": [
        {"id": "c0", "agent": "coder", "after": [], "system": "swe-agent-v3",
         "system_tokens": 2400, "input_tokens": 900, "output_tokens": 150,
         "tool": "bash:grep", "tool_s": 0.42},
        {"id": "c1", "agent": "coder", "after": ["c0"], "input_tokens": 310,
         "output_tokens": 95, "tool": "bash:pytest", "tool_s": 6.8},
        {"id": "c2", "agent": "reviewer", "after": ["c1"], "context": "fresh",
         "system": "reviewer-v1", "system_tokens": 1100, "input_tokens": 2000,
         "output_tokens": 60, "tool": None, "tool_s": 0},
    ],
}  # fmt: skip


def _broken(path: str, value: Any) -> dict[str, Any]:
    program = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    target: Any = program
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is _DELETE:
        del target[last if not last.isdigit() else int(last)]
    else:
        target[int(last) if last.isdigit() else last] = value
    return program


_DELETE = object()

BROKEN = [
    ("id", _DELETE, "id"),
    ("arrival", -1, "arrival"),
    ("arrival", "soon", "arrival"),
    ("calls", [], "calls"),
    ("calls.0.agent", _DELETE, "calls.0.agent"),
    ("calls.1.after", ["c9"], "calls.1.after"),
    ("calls.1.after", ["c2"], "calls.1.after"),  # a parent listed later: a cycle or misorder
    ("calls.1.id", "c0", "calls.1.id"),
    ("calls.0.input_tokens", -5, "calls.0.input_tokens"),
    ("calls.0.output_tokens", 0, "calls.0.output_tokens"),
    ("calls.0.tool_s", -0.1, "calls.0.tool_s"),
    ("calls.2.context", "sideways", "calls.2.context"),
]


def test_the_format_example_loads() -> None:
    (program,) = read_trace([json.dumps(GOOD)])
    assert [c.fresh for c in program.calls] == [True, False, True]
    assert program.calls[1].after == ("c0",)


@pytest.mark.parametrize(("path", "value", "field"), BROKEN)
def test_broken_programs_name_line_and_field(path: str, value: Any, field: str) -> None:
    lines = [json.dumps({**GOOD, "id": "first"}), "", json.dumps(_broken(path, value))]
    with pytest.raises(TraceError) as info:
        list(read_trace(lines))
    assert (info.value.line, info.value.field) == (3, field)
    assert str(info.value).startswith(f"line 3: {field}: ")


@pytest.mark.parametrize(
    ("line", "field"), [("{not json", "line"), ("[1, 2]", "line"), ('"text"', "line")]
)
def test_lines_that_are_not_programs(line: str, field: str) -> None:
    with pytest.raises(TraceError) as info:
        list(read_trace([line]))
    assert (info.value.line, info.value.field) == (1, field)


def test_duplicate_program_ids_across_lines() -> None:
    with pytest.raises(TraceError, match="line 2: id: duplicate program id 'swe-0007'"):
        list(read_trace([json.dumps(GOOD), json.dumps(GOOD)]))


def test_inconsistent_system_tokens_across_programs() -> None:
    other = _broken("calls.0.system_tokens", 2401)
    other["id"] = "other"
    with pytest.raises(TraceError, match=r"line 2: calls\.0\.system_tokens: .*2400.*2401"):
        list(read_trace([json.dumps(GOOD), json.dumps(other)]))


def test_round_trip_keeps_programs_and_sorts_by_arrival(tmp_path: Path) -> None:
    late = {**GOOD, "id": "late", "arrival": 99.0}
    early = {**GOOD, "id": "early", "arrival": 1.0}
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(late) + "\n" + json.dumps(early) + "\n")
    programs = load_trace(source)
    assert [p.id for p in programs] == ["early", "late"]
    dump_trace(programs, tmp_path / "out.jsonl")
    assert load_trace(tmp_path / "out.jsonl") == programs


def test_unknown_optional_fields_are_kept_out_of_the_way() -> None:
    extended = {**GOOD, "source": "prod-logs", "calls": [{**GOOD["calls"][0], "model": "x"}]}
    (program,) = read_trace([json.dumps(extended)])
    assert program.calls[0].input_tokens == 900
