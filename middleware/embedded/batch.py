"""Batched ``/generate``: a list of prompts is that many requests, answered as a list.

SGLang accepts ``text`` (or ``input_ids``) as a list and answers with one output per prompt,
in order; its frontend's ``select`` scores all choices in one such call. A string ``rid`` is
suffixed per prompt (``rid_0``, ``rid_1``, ...), a list gives each prompt its own, as SGLang's
``GenerateReqInput`` does. Streaming and sessions take one prompt only.
"""

from __future__ import annotations

from typing import Any

from .errors import ApiError
from .wire import GenerateRequest

__all__ = ["split_batch"]


def split_batch(body: GenerateRequest) -> list[GenerateRequest] | None:
    """One request per prompt of a batch; None for a single prompt (a list of one included)."""
    prompts: list[Any] = _prompts(body)
    if len(prompts) <= 1:
        return None
    if body.stream or body.session_params is not None:
        raise ApiError("a batch of prompts cannot be streamed or sent in a session", param="text")
    rids = _rids(body.rid, len(prompts))
    field = "text" if body.text is not None else "input_ids"
    return [
        body.model_copy(update={field: prompt, "rid": rid})
        for prompt, rid in zip(prompts, rids, strict=True)
    ]


def _prompts(body: GenerateRequest) -> list[Any]:
    if isinstance(body.text, list):
        return list(body.text)
    ids = body.input_ids
    if ids and isinstance(ids[0], list):
        return list(ids)
    return []


def _rids(rid: Any, n: int) -> list[str | None]:
    if rid is None:
        return [None] * n
    if isinstance(rid, str):
        return [f"{rid}_{i}" for i in range(n)]
    if isinstance(rid, list) and len(rid) == n and all(isinstance(r, str) for r in rid):
        return list(rid)
    raise ApiError(f"rid must be a string or a list of {n} strings, one per prompt", param="rid")


def single_rid(body: GenerateRequest) -> str | None:
    """The rid of a one-prompt request (a one-item list counts as its item)."""
    rid = body.rid
    if isinstance(rid, list):
        if len(rid) != 1:
            raise ApiError("a list rid needs one rid per prompt", param="rid")
        return rid[0]
    return rid
