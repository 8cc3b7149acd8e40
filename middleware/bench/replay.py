"""Live replay: a trace sent in wall-clock time to any OpenAI-compatible endpoint.

The endpoint may be the proxy, the embedded engine, vLLM or SGLang. Each program starts at
``arrival / rate_scale`` seconds after the replay starts. A call is sent once all its
parents have finished and their tools have "run" (a sleep of ``tool_s``), plus its own
``think_s``. Calls stream ``/v1/chat/completions`` and force the trace's output length
(``max_tokens`` with ``ignore_eos``, and ``min_tokens`` where the engine takes it).

Prompts follow the trace format's "Token content" rule (`replay_text`): a ``fresh`` call is
[system, user], a ``continue`` call is its first parent's messages + the parent's actual
reply + a user message, so it extends the parent's prefix. kvbaton headers name the program,
agent, step and parent, so the proxy knows the program without matching prefixes.

With ``tool_calls=True`` a call whose trace names a tool ends in a real tool call: the
request offers that tool and a regular expression (vLLM's ``structured_outputs.regex``, with
``--enable-auto-tool-choice --tool-call-parser hermes``) makes the model write one, so the
reply carries ``tool_calls`` as an agent's would; the child call returns it as a ``tool``
message. The proxy then sees the tool pause the way it sees a real agent's. Its output
length is the tool call's, about ``output_tokens``.

Every count comes from the engine's own ``usage``. ``recomputed_tokens`` is approximate: for
a continue call, the parent's prompt + completion tokens that the engine did not report as
cached (``max(0, parent prompt + parent completion - cached)``). It counts the parent's
whole context as reusable, so it is a few tokens high (chat-template tokens around the
reply, the engine's cache-block remainder), and it is 0 for fresh calls. Engines that do
not report cached tokens read as 0 cached, hence as everything recomputed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from kvbaton.middleware.bench.records import CallRecord, ProgramRecord
from kvbaton.middleware.bench.replay_text import WORDS, call_text, system_text
from kvbaton.middleware.bench.trace import Call, Program
from kvbaton.middleware.protocol import wire
from kvbaton.middleware.protocol.sse import StreamSummary

__all__ = ["replay_trace"]

log = logging.getLogger(__name__)

_EXTRAS = ("ignore_eos", "min_tokens")  # vLLM / SGLang fields; may be refused elsewhere
_BAD_FINISH = frozenset({"abort", "error"})

Messages = list[dict[str, Any]]


async def replay_trace(
    url: str,
    programs: Sequence[Program],
    *,
    rate_scale: float = 1.0,
    seed: int = 0,
    model: str | None = None,
    on_program_done: Callable[[ProgramRecord], None] | None = None,
    max_programs_in_flight: int | None = None,
    timeout_s: float = 600,
    tool_calls: bool = False,
) -> list[ProgramRecord]:
    """Replay ``programs`` against the endpoint at ``url``; one record per program, in order.

    Times in the records are seconds since the replay started; a record's ``arrival`` is its
    scheduled start, ``arrival / rate_scale``. ``seed`` salts all prompt text (a rerun with
    another seed shares no prefix with the last one). ``model`` defaults to the first of
    ``GET /v1/models``. ``max_programs_in_flight`` holds later programs back (their JCT
    includes the wait). A failed call (HTTP error, broken stream, ``timeout_s`` per request)
    fails its program: no further call of it is sent. ``on_program_done`` is called as each
    program finishes, failed or not.
    """
    if rate_scale <= 0:
        raise ValueError("rate_scale must be positive")
    if max_programs_in_flight is not None and max_programs_in_flight < 1:
        raise ValueError("max_programs_in_flight must be at least 1")
    limit = _concurrency(programs, max_programs_in_flight)
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        endpoint = _Endpoint(session, _base_url(url), tool_calls=tool_calls)
        endpoint.model = model or await endpoint.first_model()
        replayer = _Replayer(endpoint, seed, on_program_done, max_programs_in_flight)
        return await replayer.run(programs, rate_scale)


def _base_url(url: str) -> str:
    # Accept both the server root and an OpenAI-style base URL ending in /v1.
    return url.rstrip("/").removesuffix("/v1")


def _concurrency(programs: Sequence[Program], max_in_flight: int | None) -> int:
    """Connections the trace could use at once: per program, its widest dependency level.

    Too few would queue requests in the client and blur the engine's latencies.
    """
    widths = sorted((_width(p) for p in programs), reverse=True)
    return max(1, sum(widths[:max_in_flight]))


def _width(program: Program) -> int:
    depth: dict[str, int] = {}
    for call in program.calls:  # parents come first in a valid trace
        depth[call.id] = 1 + max((depth[p] for p in call.after), default=-1)
    levels = list(depth.values())
    return max(levels.count(level) for level in set(levels))


# -- one endpoint -------------------------------------------------------------------------


class _CallFailed(Exception):
    pass


@dataclass(slots=True)
class _Endpoint:
    """The HTTP side: the model name and the extension fields the endpoint accepts."""

    session: aiohttp.ClientSession
    url: str
    model: str = ""
    tool_calls: bool = False
    refused: set[str] = field(default_factory=set)
    clock: Callable[[], float] = field(default_factory=lambda: asyncio.get_running_loop().time)
    started_at: float = 0.0

    def now(self) -> float:
        return self.clock() - self.started_at

    async def first_model(self) -> str:
        try:
            async with self.session.get(f"{self.url}/v1/models") as response:
                response.raise_for_status()
                body = await response.json()
            return str(body["data"][0]["id"])
        except (aiohttp.ClientError, TimeoutError, ValueError, LookupError, TypeError) as exc:
            # Calls will fail on their own (and say why) if the endpoint is really down.
            log.warning("no model from %s/v1/models (%s); sending model 'default'", self.url, exc)
            return "default"

    async def complete(
        self,
        record: CallRecord,
        messages: Messages,
        output_tokens: int,
        headers: Mapping[str, str],
        tool: str | None = None,
    ) -> StreamSummary:
        """Stream one chat completion into ``record``; what the stream said. Raises
        _CallFailed."""
        body = self._body(messages, output_tokens)
        if tool is not None and self.tool_calls:
            body = _tool_call_body(body, tool, output_tokens)
        status, reply = await self._post(record, body, headers)
        if isinstance(reply, str) and status == 400 and (refused := _named_extras(body, reply)):
            # Retry once without the extension fields; keep them off only if that worked.
            retry = {k: v for k, v in body.items() if k not in refused}
            status, reply = await self._post(record, retry, headers)
            if status < 400:
                self.refused |= refused
        if isinstance(reply, str):
            raise _CallFailed(f"HTTP {status}: {reply[:300]}")
        return reply

    def _body(self, messages: Messages, output_tokens: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": output_tokens,
            "ignore_eos": True,
            "min_tokens": output_tokens,
        }
        for name in self.refused:
            del body[name]
        return body

    async def _post(
        self, record: CallRecord, body: dict[str, Any], headers: Mapping[str, str]
    ) -> tuple[int, str | StreamSummary]:
        """(status, error text) for an HTTP error, else (200, the stream read)."""
        record.sent_at = self.now()
        async with self.session.post(
            f"{self.url}/v1/chat/completions", json=body, headers=headers
        ) as response:
            if response.status >= 400:
                return response.status, await response.text()
            return response.status, await self._read(response, record)

    async def _read(self, response: aiohttp.ClientResponse, record: CallRecord) -> StreamSummary:
        summary = StreamSummary()
        async for chunk in response.content.iter_any():
            summary.feed(chunk)
            if record.first_token_at is None and (summary.text or summary.tool_calls):
                record.first_token_at = self.now()  # TTFT: the first content, not the role chunk
        summary.close()
        record.finished_at = self.now()
        if summary.error is not None:
            raise _CallFailed(f"stream error: {summary.error.get('message')}")
        if summary.finish_reason is None or summary.finish_reason in _BAD_FINISH:
            raise _CallFailed(f"stream ended without a good finish ({summary.finish_reason})")
        if (usage := summary.tokens) is not None:
            record.prompt_tokens = usage.prompt_tokens
            record.cached_tokens = usage.cached_tokens or 0
            record.completion_tokens = usage.completion_tokens
        return summary


# Words of one token each in common tokenizers (see replay_text): the tool call's argument.
_ARGUMENT_WORDS = "|".join(WORDS[:64])


def _tool_call_body(body: dict[str, Any], tool: str, output_tokens: int) -> dict[str, Any]:
    """``body`` made to end in a call of ``tool`` in the Hermes format that vLLM's
    ``hermes`` parser reads, about ``output_tokens`` long in all (the call's own JSON takes
    about 45 of them); ended by the grammar, so without ``ignore_eos``."""
    # The call's own JSON is about 45 tokens in the tiny model's tokenizer; a word about 1.4.
    words = max(1, round((output_tokens - 45) / 1.4))
    argument = f"(?:{_ARGUMENT_WORDS})(?: (?:{_ARGUMENT_WORDS})){{{words - 1}}}"
    name = re.escape(json.dumps(tool))
    call = f'\\{{"name": {name}, "arguments": \\{{"input": "{argument}"\\}}\\}}'
    regex = f"<tool_call>\n{call}\n</tool_call>"
    schema = {"type": "object", "properties": {"input": {"type": "string"}}}
    out = {k: v for k, v in body.items() if k not in _EXTRAS}
    return out | {
        "tools": [{"type": "function", "function": {"name": tool, "parameters": schema}}],
        "structured_outputs": {"regex": regex},
        "max_tokens": 4 * output_tokens + 64,  # room for the grammar to close the call
    }


def _named_extras(body: Mapping[str, Any], error: str) -> set[str]:
    """The extension fields a 400 refused: those it names, else all sent (it may not say)."""
    sent = {name for name in _EXTRAS if name in body}
    return {name for name in sent if name in error} or sent


# -- programs ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Turn:
    """A sent call, as its children see it."""

    record: CallRecord
    messages: Messages
    reply: StreamSummary | None = None


@dataclass(slots=True)
class _Run:
    program: Program
    parents: frozenset[str]  # calls some other call waits for
    failed: bool = False


class _Replayer:
    def __init__(
        self,
        endpoint: _Endpoint,
        seed: int,
        on_done: Callable[[ProgramRecord], None] | None,
        max_in_flight: int | None,
    ) -> None:
        self.endpoint, self.seed, self.on_done = endpoint, seed, on_done
        self.slots = asyncio.Semaphore(max_in_flight) if max_in_flight else None
        self.failures = 0

    async def run(self, programs: Sequence[Program], rate_scale: float) -> list[ProgramRecord]:
        self.endpoint.started_at = self.endpoint.clock()
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._program(p, p.arrival / rate_scale)) for p in programs]
        return [task.result() for task in tasks]

    async def _program(self, program: Program, arrival: float) -> ProgramRecord:
        await asyncio.sleep(max(0.0, arrival - self.endpoint.now()))
        async with self.slots or contextlib.nullcontext():
            turns = await self._calls(program)
        record = ProgramRecord(program.id, arrival, calls=[t.record for t in turns])
        if len(turns) == len(program.calls) and all(c.ok for c in record.calls):
            record.finished_at = max(c.finished_at or 0.0 for c in record.calls)
        if self.on_done is not None:
            self.on_done(record)
        return record

    async def _calls(self, program: Program) -> list[_Turn]:
        run = _Run(program, frozenset(p for c in program.calls for p in c.after))
        tasks: dict[str, asyncio.Task[_Turn | None]] = {}
        async with asyncio.TaskGroup() as group:
            for call in program.calls:  # parents come first, so their tasks exist
                parents = [tasks[p] for p in call.after]
                tasks[call.id] = group.create_task(self._call(run, call, parents))
        return [turn for task in tasks.values() if (turn := task.result()) is not None]

    async def _call(
        self, run: _Run, call: Call, parents: list[asyncio.Task[_Turn | None]]
    ) -> _Turn | None:
        """Wait for the parents (their tasks include the tool time), think, send, run the tool.

        None if the call was not sent because its program had failed.
        """
        done = [await parent for parent in parents]
        if run.failed or any(t is None or not t.record.ok for t in done):
            return None
        await asyncio.sleep(call.think_s)
        if run.failed:
            return None
        first = done[0] if done and not call.fresh else None
        turn = await self._send(run, call, first)
        if turn.record.ok and call.id in run.parents:
            await asyncio.sleep(call.tool_s)  # nobody waits for the tool of a last call
        return turn

    async def _send(self, run: _Run, call: Call, parent: _Turn | None) -> _Turn:
        turn = _Turn(CallRecord(call.id, self.endpoint.now()), self._messages(run, call, parent))
        headers = _headers(run, call)
        tool = call.tool if call.id in run.parents else None
        try:
            turn.reply = await self.endpoint.complete(
                turn.record, turn.messages, call.output_tokens, headers, tool
            )
        except (_CallFailed, aiohttp.ClientError, TimeoutError) as exc:
            self._fail(run, turn.record, exc)
            return turn
        if parent is not None:
            reused = parent.record.prompt_tokens + parent.record.completion_tokens
            turn.record.recomputed_tokens = max(0, reused - turn.record.cached_tokens)
        return turn

    def _fail(self, run: _Run, record: CallRecord, exc: BaseException) -> None:
        run.failed, record.ok = True, False
        record.finished_at = record.finished_at or self.endpoint.now()
        self.failures += 1
        # The first failure says why at warning level; a dead endpoint would repeat it.
        level = logging.WARNING if self.failures == 1 else logging.DEBUG
        reason = str(exc) or type(exc).__name__
        log.log(level, "call %s/%s failed: %s", run.program.id, record.call_id, reason)

    def _messages(self, run: _Run, call: Call, parent: _Turn | None) -> Messages:
        text = call_text(run.program.id, call.id, call.input_tokens, seed=self.seed)
        user: dict[str, Any] = {"role": "user", "content": text}
        if parent is not None and parent.reply is not None:
            return [*parent.messages, *_returned(parent.reply, text, user)]
        if call.system is None or call.system_tokens == 0:
            return [user]
        system = system_text(call.system, call.system_tokens, seed=self.seed)
        return [{"role": "system", "content": system}, user]


def _returned(reply: StreamSummary, text: str, user: dict[str, Any]) -> Messages:
    """The parent's reply as the child sends it back: its tool calls and their result
    (``text``), or its text and a user turn."""
    if not reply.tool_calls:
        return [{"role": "assistant", "content": reply.text}, user]
    calls = [
        {"id": t.id, "type": "function", "function": {"name": t.name, "arguments": t.arguments}}
        for t in reply.tool_calls
    ]
    results = [{"role": "tool", "tool_call_id": t.id, "content": text} for t in reply.tool_calls]
    return [{"role": "assistant", "content": reply.text or None, "tool_calls": calls}, *results]


def _headers(run: _Run, call: Call) -> dict[str, str]:
    headers = {
        wire.HEADER_PROGRAM_ID: run.program.id,
        wire.HEADER_AGENT: call.agent,
        wire.HEADER_STEP: call.id,
        wire.HEADER_TENANT: run.program.tenant,
    }
    if call.after:
        headers[wire.HEADER_PARENT_STEP] = call.after[0]
    if call.id not in run.parents:
        headers[wire.HEADER_LAST_STEP] = "true"
    return headers
