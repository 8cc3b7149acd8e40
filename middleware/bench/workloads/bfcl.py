"""``bfcl``: BFCL v4 multi-turn programs with durations and sizes calibrated to Continuum.

The structure is real: the 800 ``multi_turn_{base,miss_func,miss_param,long_context}``
entries of the ``bfcl-eval`` wheel give the user turns, their text, the tool classes involved
and the ground-truth function calls of each turn. Each turn becomes one call per function
call (its tool is the function name, e.g. ``cd``, ``book_flight``) and a final answer with no
tool; the next turn's user message continues the same context. The system prompt of a program
is named after its tool classes (``bfcl-v4:GorillaFileSystem+TwitterAPI``) and sized from
their real function schemas, so programs using the same classes share it.

What BFCL lacks is synthetic, calibrated to Continuum's BFCL replay (arXiv 2511.02230,
Table 2: 6.3 ± 2.3 turns, tools 1923 ± 2133 ms, 93k ± 69k tokens per program, tokens as in
:mod:`.stats`):
- entries are drawn with replacement so that calls per program follow that turn count
  (the raw set averages about 10 calls; Continuum's runs were BFCL web search);
- each function has its own lognormal duration, its mean set by its tool class and a stable
  per-name factor;
- observations are large (Continuum's ``fetch_url`` pages), with a per-program size factor
  for the spread between programs.
A lognormal mix with this mean and spread puts about 35% of the delay in the slowest 10%
of calls, not 50%: the spread 2133 ms bounds it below 44% for any distribution.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from kvbaton.middleware.bench.trace import Call, Program
from kvbaton.middleware.bench.workloads.arrivals import poisson_arrivals
from kvbaton.middleware.bench.workloads.data import package_file
from kvbaton.middleware.bench.workloads.durations import LogNormal
from kvbaton.middleware.bench.workloads.shapes import Step, chain, content_rng, make_programs

__all__ = ["REQUIREMENT", "Entry", "entries", "generate"]

REQUIREMENT = "bfcl-eval==2026.3.23"
CATEGORIES = ("base", "miss_func", "miss_param", "long_context")
AGENT = "bfcl"
CHARS_PER_TOKEN = 4
# The generic instructions BFCL's prompting handlers put before the function schemas.
PREAMBLE_TOKENS = 400

# Tool class -> (schema file, mean tool time in seconds before the per-function factor).
_CLASSES: dict[str, tuple[str, float]] = {
    "GorillaFileSystem": ("gorilla_file_system.json", 1.15),
    "MathAPI": ("math_api.json", 0.75),
    "MessageAPI": ("message_api.json", 1.7),
    "TwitterAPI": ("posting_api.json", 1.9),
    "TicketAPI": ("ticket_api.json", 1.7),
    "TradingBot": ("trading_bot.json", 1.9),
    "TravelAPI": ("travel_booking.json", 2.25),
    "VehicleControlAPI": ("vehicle_control.json", 1.2),
}
TOOL_SIGMA = 0.78
TOOL_CAP_S = 120.0
# Calls per program ~ round(normal), redrawn where no entry has that many calls; the mean is
# set below 6.3 because redrawing the short counts no entry has pushes it up.
CALLS_MEAN, CALLS_STD = 5.95, 2.3
_USER_MIN_TOKENS = 8  # chat-template markers around even an empty turn
_OBSERVATION = LogNormal(4700, 0.8, 20000)
_PROGRAM_SCALE = LogNormal(1.0, 0.55)
_CALL_OUTPUT = LogNormal(40, 0.5)  # one function call (Autellix: 34 decode tokens)
_ANSWER_OUTPUT = LogNormal(90, 0.6)


@dataclass(frozen=True, slots=True)
class Turn:
    """One user turn: its message size and the functions its ground truth calls, in order."""

    user_tokens: int
    functions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Entry:
    """One BFCL multi-turn test case, reduced to what a trace needs."""

    id: str
    classes: tuple[str, ...]
    turns: tuple[Turn, ...]

    @property
    def calls(self) -> int:
        return sum(len(turn.functions) + 1 for turn in self.turns)

    @property
    def system(self) -> str:
        return "bfcl-v4:" + "+".join(sorted(self.classes))


def _json_lines(*parts: str) -> Iterator[dict[str, Any]]:
    text = package_file("bfcl_eval", REQUIREMENT, "data", *parts).read_text(encoding="utf-8")
    return (json.loads(line) for line in text.splitlines() if line.strip())


def _entry(question: dict[str, Any], answer: dict[str, Any]) -> Entry:
    messages: list[list[dict[str, str]]] = question["question"]
    truth: list[list[str]] = answer["ground_truth"]
    turns = tuple(
        Turn(
            max(_USER_MIN_TOKENS, sum(len(m["content"]) for m in turn) // CHARS_PER_TOKEN),
            tuple(call.split("(", 1)[0].strip() for call in calls),
        )
        for turn, calls in zip(messages, truth, strict=True)
    )
    return Entry(question["id"], tuple(question["involved_classes"]), turns)


@cache
def entries() -> tuple[Entry, ...]:
    """The BFCL v4 multi-turn entries of all four categories (800 with the pinned wheel)."""
    found: list[Entry] = []
    for category in CATEGORIES:
        name = f"BFCL_v4_multi_turn_{category}.json"
        answers = {a["id"]: a for a in _json_lines("possible_answer", name)}
        found += [_entry(q, answers[q["id"]]) for q in _json_lines(name)]
    return tuple(found)


@cache
def _schemas() -> tuple[dict[str, int], dict[str, str]]:
    """Schema tokens per tool class, and the class of each function name."""
    tokens: dict[str, int] = {}
    owner: dict[str, str] = {}
    for cls, (file, _) in _CLASSES.items():
        text = package_file("bfcl_eval", REQUIREMENT, "data", "multi_turn_func_doc", file)
        lines = text.read_text(encoding="utf-8").splitlines()
        tokens[cls] = sum(len(line) for line in lines) // CHARS_PER_TOKEN
        owner |= {json.loads(line)["name"]: cls for line in lines if line.strip()}
    return tokens, owner


def _system_tokens(entry: Entry) -> int:
    tokens, _ = _schemas()
    return PREAMBLE_TOKENS + sum(tokens[cls] for cls in entry.classes)


@cache
def _duration(function: str) -> LogNormal:
    # A stable factor in [0.5, 2) per function name, so each tool has its own distribution.
    factor = 0.5 + 1.5 * (zlib.crc32(function.encode()) % 1000) / 1000
    _, owner = _schemas()
    mean = _CLASSES[owner[function]][1] * factor if function in owner else 1.8
    return LogNormal(mean, TOOL_SIGMA, TOOL_CAP_S)


@cache
def _by_calls() -> dict[int, tuple[Entry, ...]]:
    groups: dict[int, list[Entry]] = {}
    for entry in entries():
        groups.setdefault(entry.calls, []).append(entry)
    return {n: tuple(group) for n, group in groups.items()}


def _pick(rng: np.random.Generator) -> Entry:
    groups = _by_calls()
    while (n := round(rng.normal(CALLS_MEAN, CALLS_STD))) not in groups:
        pass
    group = groups[n]
    return group[int(rng.integers(len(group)))]


def _steps(entry: Entry, rng: np.random.Generator) -> list[Step]:
    scale = _PROGRAM_SCALE.draw(rng)
    steps: list[Step] = []
    for turn in entry.turns:
        new_tokens = turn.user_tokens
        for function in turn.functions:
            tool_s = _duration(function).draw(rng)
            steps.append(Step(new_tokens, _CALL_OUTPUT.tokens(rng, 1), function, tool_s))
            new_tokens = max(1, math.ceil(scale * _OBSERVATION.draw(rng)))
        steps.append(Step(new_tokens, _ANSWER_OUTPUT.tokens(rng, 1)))
    return steps


def _calls(rng: np.random.Generator) -> list[Call]:
    entry = _pick(rng)
    return chain(AGENT, entry.system, _system_tokens(entry), _steps(entry, rng))


def generate(*, programs: int, rate: float, seed: int) -> list[Program]:
    """``programs`` BFCL multi-turn programs arriving as a Poisson process of ``rate``/s.

    Raises :class:`~.data.MissingWorkloadData` if the ``bfcl-eval`` wheel is not installed.
    """
    arrivals = poisson_arrivals(programs, rate, seed)
    rng = content_rng(seed, "bfcl")
    return make_programs("bfcl", arrivals, lambda: _calls(rng))
