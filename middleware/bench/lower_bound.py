"""The offline lower bound on job completion time (``docs/trace-format.md``).

Every call runs alone on an idle engine with an infinite prefix cache: it prefills only its
new tokens (the system prompt or the parent's prompt and reply are cached), in one chunk,
then decodes its reply one token per step with a batch of one. A program's bound is the
critical path through its calls, tool pauses and think times. Each term is at most what the
engine model charges for the same call under any schedule (more chunks, a bigger batch or a
cache miss only add time), so no policy can beat it.
"""

from __future__ import annotations

from collections.abc import Sequence

from kvbaton.middleware.bench.trace import Call, Program
from kvbaton.middleware.engine import Profile

__all__ = ["call_alone_s", "lower_bound", "program_lower_bound"]


def call_alone_s(
    profile: Profile, new_tokens: int, prompt_tokens: int, output_tokens: int
) -> float:
    """Seconds from send to reply for one call alone on an idle engine.

    The step that finishes the prefill also yields the first token; each of the other
    ``output_tokens - 1`` tokens takes one decode step over the prompt and the reply so far.
    """
    prefill = profile.prefill_s(new_tokens, prompt_tokens - new_tokens)
    steps = max(0, output_tokens - 1)
    d = profile.decode
    context = steps * prompt_tokens + steps * (steps + 1) / 2  # sum of prompt + j, j = 1..steps
    return prefill + steps * (d.base_s + d.per_seq_s) + context * d.per_context_token_s


def _prompt_len(call: Call, lengths: dict[str, int], outputs: dict[str, int]) -> int:
    if call.fresh:
        return call.system_tokens + call.input_tokens
    parent = call.after[0]
    return lengths[parent] + outputs[parent] + call.input_tokens


def program_lower_bound(program: Program, profile: Profile) -> float:
    """The program's JCT bound: the latest finish over its calls, from its arrival."""
    lengths: dict[str, int] = {}
    outputs: dict[str, int] = {}
    ends: dict[str, float] = {}
    tools: dict[str, float] = {}
    for call in program.calls:  # parents come first (the trace format guarantees it)
        ready = max((ends[p] + tools[p] for p in call.after), default=0.0) + call.think_s
        length = lengths[call.id] = _prompt_len(call, lengths, outputs)
        outputs[call.id] = call.output_tokens
        tools[call.id] = call.tool_s
        ends[call.id] = ready + call_alone_s(profile, call.input_tokens, length, call.output_tokens)
    return max(ends.values())


def lower_bound(programs: Sequence[Program], profile: Profile) -> float:
    """Mean of the programs' JCT bounds (0.0 for no programs)."""
    if not programs:
        return 0.0
    return sum(program_lower_bound(p, profile) for p in programs) / len(programs)
