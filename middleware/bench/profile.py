"""``kvbaton profile``: measure a live OpenAI-compatible engine and fit an engine profile.

NOTE on the method. Every probe streams ``/v1/chat/completions`` and reads the engine's own
``usage`` (prompt, cached and completion tokens), so it works on any engine that reports
them and needs no tokenizer here.

- Prefill: requests that generate one token. A fresh prompt (unique words, so nothing but a
  chat-template crumb is cached) gives ``(new = prompt, context ≈ 0)``; the same prompt with
  a tail added gives ``(new = prompt - cached, context = cached)``. The time is request sent
  to reply done, so it includes the HTTP and tokenizer overhead a real request pays; the fit
  puts that into ``prefill.base_s``.
- Decode: ``batch`` concurrent requests with the same prompt length and ``decode_tokens``
  forced output tokens (``ignore_eos``); one request's step time is (last token - first
  token) / (tokens - 1), and the sample is the median over the batch, which is robust to the
  requests whose prefill overlapped the others' first steps.

Prompt lengths are asked for in words and come back in tokens; the first request measures
tokens per word for this engine's tokenizer.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.table import Table

from kvbaton.middleware.bench.profile_fit import (
    DecodeSample,
    PrefillSample,
    fit_decode,
    fit_prefill,
    median_sample,
    profile_json,
)
from kvbaton.middleware.bench.replay_text import call_text
from kvbaton.middleware.engine.costs import Profile, load_profile
from kvbaton.middleware.protocol.sse import StreamSummary

__all__ = [
    "CAPACITY_FIGURES",
    "ProbePlan",
    "Probed",
    "probe_capacity",
    "probe_engine",
    "run_profile",
]

_CAPACITY_KEYS = {  # SGLang /server_info name -> profile field
    "max_total_num_tokens": "kv_tokens",
    "max_running_requests": "max_running",
    "chunked_prefill_size": "chunk_tokens",
    "page_size": "page_size",
}


@dataclass(frozen=True, slots=True)
class ProbePlan:
    """What to measure: prompt lengths (tokens) for prefill, and for decode the batch sizes
    at each prompt length in ``decode_contexts``. Each point runs ``repeats`` times with
    fresh text and counts as the median of the runs."""

    prompt_tokens: tuple[int, ...] = (64, 256, 512, 1024, 2048)
    batches: tuple[int, ...] = (1, 2, 4, 8)
    decode_contexts: tuple[int, ...] = (128, 1024)
    decode_tokens: int = 48
    repeats: int = 3
    warmup: int = 2

    def __post_init__(self) -> None:
        if self.repeats < 1 or self.decode_tokens < 2 or self.warmup < 0:
            raise ValueError("a probe needs repeats >= 1, decode_tokens >= 2 and warmup >= 0")
        if len(self.prompt_tokens) < 2 or not self.batches or not self.decode_contexts:
            raise ValueError("a probe needs two prompt lengths, a batch size and a context")
        if min(*self.prompt_tokens, *self.batches, *self.decode_contexts) < 1:
            raise ValueError("prompt lengths, batch sizes and contexts must be positive")


@dataclass(slots=True)
class Probed:
    """What the probe measured, in the engine's own token counts."""

    model: str
    tokens_per_word: float
    prefill: list[PrefillSample] = field(default_factory=list)
    decode: list[DecodeSample] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Reply:
    seconds: float  # sent to done
    decode_s: float | None  # first token to last token
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int


class _Engine:
    def __init__(self, session: aiohttp.ClientSession, url: str, model: str) -> None:
        self.session, self.url, self.model = session, url, model
        self._salt = uuid.uuid4().hex[:8]  # a rerun shares no prefix with the last one
        self._ids = itertools.count()

    def fresh_text(self, words: int) -> str:
        return call_text(f"probe-{self._salt}", str(next(self._ids)), max(1, words))

    async def complete(self, messages: list[dict[str, str]], max_tokens: int) -> _Reply:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": 0,
            "ignore_eos": True,  # vLLM and SGLang: exactly max_tokens, so decode runs its course
        }
        loop = asyncio.get_running_loop()
        sent = loop.time()
        first = last = None
        summary = StreamSummary()
        async with self.session.post(f"{self.url}/v1/chat/completions", json=body) as response:
            if response.status != 200:
                raise RuntimeError(f"engine answered {response.status}: {await response.text()}")
            async for chunk in response.content.iter_any():
                summary.feed(chunk)
                if summary.text:
                    last = loop.time()
                    first = first or last
        summary.close()
        done = loop.time()
        usage = summary.tokens
        if usage is None:
            raise RuntimeError("the engine reported no usage; kvbaton profile needs it")
        decode = None if first is None or last is None or last <= first else last - first
        return _Reply(
            done - sent, decode, usage.prompt_tokens, usage.cached_tokens or 0,
            usage.completion_tokens,
        )  # fmt: skip


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def _prefill_pair(engine: _Engine, words: int) -> list[PrefillSample]:
    """A fresh prompt, then the same prompt with a quarter more: uncached and cached."""
    text = engine.fresh_text(words)
    samples = []
    for messages in (_user(text), _user(text + " " + engine.fresh_text(words // 4))):
        reply = await engine.complete(messages, 1)
        new = reply.prompt_tokens - reply.cached_tokens
        samples.append(PrefillSample(new, reply.cached_tokens, reply.seconds))
    return samples


async def _decode_point(engine: _Engine, batch: int, words: int, tokens: int) -> DecodeSample:
    replies = await asyncio.gather(
        *(engine.complete(_user(engine.fresh_text(words)), tokens) for _ in range(batch))
    )
    steps = [
        r.decode_s / (r.completion_tokens - 1)
        for r in replies
        if r.decode_s is not None and r.completion_tokens > 1
    ]
    if not steps:
        raise RuntimeError("the engine streamed no decode steps; is ignore_eos supported?")
    context = sum(r.prompt_tokens + r.completion_tokens // 2 for r in replies)
    return DecodeSample(batch, context, statistics.median(steps))


async def probe_engine(
    url: str,
    plan: ProbePlan,
    *,
    model: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> Probed:
    """Measure the engine at ``url`` (its root or ``.../v1``) as ``plan`` says."""
    url = url.rstrip("/").removesuffix("/v1")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        model = model or await _first_model(session, url)
        engine = _Engine(session, url, model)
        first = await engine.complete(_user(engine.fresh_text(256)), 1)
        probed = Probed(model, first.prompt_tokens / 256)
        for _ in range(plan.warmup):
            await engine.complete(_user(engine.fresh_text(256)), 4)
        # Each point is the median of its repeats: the engine may share its CPU or GPU, and
        # one slow moment should not bend the fit.
        for tokens in plan.prompt_tokens:
            progress(f"prefill {tokens} tokens")
            pairs = [
                await _prefill_pair(engine, _words(tokens, probed)) for _ in range(plan.repeats)
            ]
            probed.prefill += [median_sample([pair[i] for pair in pairs]) for i in (0, 1)]
        for batch, context in itertools.product(plan.batches, plan.decode_contexts):
            progress(f"decode batch {batch} at {context} tokens")
            words = _words(context, probed)
            runs = [
                await _decode_point(engine, batch, words, plan.decode_tokens)
                for _ in range(plan.repeats)
            ]
            probed.decode.append(median_sample(runs))
        return probed


def _words(tokens: int, probed: Probed) -> int:
    # Leave room for the chat template around the words.
    return max(1, int((tokens - 8) / probed.tokens_per_word))


async def _first_model(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(f"{url}/v1/models") as response:
        response.raise_for_status()
        body = await response.json()
    return str(body["data"][0]["id"])


async def probe_capacity(url: str) -> dict[str, int]:
    """Capacities an SGLang-API engine reports in ``/server_info`` (empty for others)."""
    url = url.rstrip("/").removesuffix("/v1")
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.get(f"{url}/server_info") as response,
        ):
            info = await response.json() if response.status == 200 else {}
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return {}
    found: dict[str, int] = {}
    sources = [info, *(info.get("internal_states") or [])] if isinstance(info, dict) else []
    for source in sources:
        for key, figure in _CAPACITY_KEYS.items():
            value = source.get(key) if isinstance(source, dict) else None
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                found.setdefault(figure, value)
    return found


# -- the command --------------------------------------------------------------------------

CAPACITY_FIGURES = ("kv_bytes_per_token", "kv_tokens", "max_running", "chunk_tokens", "page_size")
_DEFAULTS = {"kv_bytes_per_token": 0, "kv_tokens": 100_000, "max_running": 256,
             "chunk_tokens": 8192, "page_size": 1}  # fmt: skip


def _capacity(
    given: dict[str, int | None], reported: dict[str, int], url: str
) -> tuple[dict[str, int], dict[str, tuple[str, str]]]:
    """Each capacity figure from the operator, else the engine's report, else a default;
    with its (kind, source) for the profile's ``sources``."""
    values: dict[str, int] = {}
    sources: dict[str, tuple[str, str]] = {}
    for figure in CAPACITY_FIGURES:
        if (value := given.get(figure)) is not None:
            values[figure], sources[figure] = value, ("chosen", "given to kvbaton profile")
        elif figure in reported:
            values[figure] = reported[figure]
            sources[figure] = ("measured", f"reported by {url}/server_info")
        else:
            values[figure] = _DEFAULTS[figure]
            sources[figure] = ("chosen", "default of kvbaton profile (the engine does not say)")
    return values, sources


def run_profile(
    url: str,
    *,
    name: str,
    out: Path,
    plan: ProbePlan,
    capacity: dict[str, int | None],
    description: str = "",
    hardware: str = "",
    model: str | None = None,
    console: Console,
) -> dict[str, Any]:
    """Measure the engine at ``url``, fit the cost model, write the profile JSON to ``out``
    and print the samples beside the fitted model; returns the profile. Synchronous."""
    if out.suffix != ".json":
        raise ValueError(f"the profile file must end in .json, got {out}")
    probed = asyncio.run(probe_engine(url, plan, model=model, progress=console.log))
    reported = asyncio.run(probe_capacity(url))
    values, sources = _capacity(capacity, reported, url)
    profile = profile_json(
        name=name,
        description=description or f"measured on {url} by kvbaton profile",
        model=probed.model,
        hardware=hardware,
        capacity=values,
        prefill=fit_prefill(probed.prefill),
        decode=fit_decode(probed.decode),
        measured_at=url,
        capacity_sources=sources,
    )
    out.write_text(json.dumps(profile, indent=2) + "\n", encoding="utf-8")
    console.print(_samples_table(probed, load_profile(str(out))))  # also checks the file loads
    console.print(f"wrote profile {name!r} to {out}")
    return profile


def _samples_table(probed: Probed, fitted: Profile) -> Table:
    table = Table("sample", "new tokens | batch", "context", "measured s", "fitted s")
    for p in probed.prefill:
        model_s = fitted.prefill_s(p.new_tokens, p.context_tokens)
        table.add_row("prefill", *_cells(p.new_tokens, p.context_tokens, p.seconds, model_s))
    for d in probed.decode:
        model_s = fitted.decode_step_s(d.batch, d.total_context_tokens)
        table.add_row(
            f"decode x{d.batch}", *_cells(d.batch, d.total_context_tokens, d.seconds, model_s)
        )
    return table


def _cells(new: int, context: int, measured: float, model: float) -> tuple[str, ...]:
    return f"{new:,}", f"{context:,}", f"{measured:.4f}", f"{model:.4f}"
