"""Turn generated tokens into OpenAI chat deltas: content pieces, or tool-call fragments.

A tool call is generated as its rendered text (see `tokens.render_tool_call`); as tokens
arrive, the first fragment of a call carries its id and name, later ones carry pieces of the
arguments string, like OpenAI's own streaming.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from ..engine import Reply, tokens

__all__ = ["ChatDeltas"]

_ARGS_MARK = ', "arguments": '


@dataclass(frozen=True, slots=True)
class _Span:
    start: int  # where the call's rendering starts in the generated text
    args_start: int
    args_end: int


class ChatDeltas:
    """Stateful: call `advance` with the number of tokens generated so far."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self._ends = list(itertools.accumulate(len(p) for p in reply.pieces))
        self._sent = 0  # characters of generated text already turned into deltas
        self._spans = self._tool_spans(reply)
        self._announced = [False] * len(self._spans)

    def advance(self, n_tokens: int) -> list[dict[str, Any]]:
        """Deltas for the text generated since the previous call."""
        upto = self._ends[n_tokens - 1] if n_tokens else 0
        start, self._sent = self._sent, max(self._sent, upto)
        if upto <= start:
            return []
        if not self._spans:
            return [{"content": self.reply.text[start:upto]}]
        fragments = [f for i in range(len(self._spans)) if (f := self._fragment(i, start, upto))]
        return [{"tool_calls": fragments}] if fragments else []

    def _fragment(self, i: int, start: int, upto: int) -> dict[str, Any] | None:
        span, call = self._spans[i], self.reply.tool_calls[i]
        fragment: dict[str, Any] = {"index": i}
        if upto > span.start and not self._announced[i]:
            self._announced[i] = True
            fragment.update(id=call.id, type="function")
            fragment["function"] = {"name": call.name, "arguments": ""}
        lo, hi = max(start, span.args_start), min(upto, span.args_end)
        if hi > lo:
            function = fragment.setdefault("function", {})
            function["arguments"] = (
                function.get("arguments", "")
                + call.arguments[lo - span.args_start : hi - span.args_start]
            )
        return fragment if len(fragment) > 1 else None

    @staticmethod
    def _tool_spans(reply: Reply) -> list[_Span]:
        spans, offset = [], len(reply.content)
        for call in reply.tool_calls:
            rendered = tokens.render_tool_call(call.name, call.arguments)
            args_start = offset + rendered.index(_ARGS_MARK) + len(_ARGS_MARK)
            spans.append(_Span(offset, args_start, args_start + len(call.arguments)))
            offset += len(rendered)
        return spans
