"""Engine profiles: the prefill/decode cost model, KV capacity and batch limits.

A profile is a JSON file under ``profiles/``; each one carries a ``sources`` list saying where
each figure comes from and whether it is a spec, a measurement, derived from specs, or chosen.
All durations are seconds; all sizes are tokens unless a name says bytes.

Cost model (one engine step = chunked prefill of some requests + one decode token for others):

- ``prefill_s(new, context) = base + new * per_token + per_attn_pair * (new * context + new
  * (new + 1) / 2)``: linear layers scale with the new tokens, causal attention with the
  (query, key) pairs, where ``context`` tokens were already in the KV cache.
- ``decode_step_s(batch, total_context) = base + batch * per_seq + total_context *
  per_context_token``: reading the weights once, per-sequence compute, reading the KV.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_PROFILE",
    "DecodeCost",
    "PrefillCost",
    "Profile",
    "Source",
    "UnknownProfileError",
    "load_profile",
    "profile_names",
]

DEFAULT_PROFILE = "llama-3.1-8b-h100"


class UnknownProfileError(ValueError):
    """Raised by `load_profile` for a name that is neither shipped nor a JSON file."""


@dataclass(frozen=True, slots=True)
class PrefillCost:
    base_s: float
    per_token_s: float
    per_attn_pair_s: float


@dataclass(frozen=True, slots=True)
class DecodeCost:
    base_s: float
    per_seq_s: float
    per_context_token_s: float


@dataclass(frozen=True, slots=True)
class Source:
    """Where one figure comes from; ``kind`` is spec, measured, derived or chosen."""

    figure: str
    value: str
    kind: str
    source: str


@dataclass(frozen=True, slots=True)
class Profile:
    """A named engine configuration: costs (seconds) and capacities (tokens)."""

    name: str
    description: str
    model: str
    gpu: str
    kv_bytes_per_token: int
    kv_tokens: int
    max_running: int
    chunk_tokens: int
    page_size: int
    prefill: PrefillCost
    decode: DecodeCost
    sources: tuple[Source, ...] = ()

    def prefill_s(self, new_tokens: int, context_tokens: int = 0) -> float:
        """Seconds to prefill ``new_tokens`` after ``context_tokens`` already cached."""
        if new_tokens <= 0:
            return 0.0
        return self.prefill.base_s + self._prefill_work_s(new_tokens, context_tokens)

    def decode_step_s(self, batch_size: int, total_context_tokens: int) -> float:
        """Seconds for one decode step of ``batch_size`` sequences holding
        ``total_context_tokens`` tokens of KV between them."""
        if batch_size <= 0:
            return 0.0
        d = self.decode
        return d.base_s + batch_size * d.per_seq_s + total_context_tokens * d.per_context_token_s

    def step_s(
        self, chunks: Iterable[tuple[int, int]], batch_size: int, total_context_tokens: int
    ) -> float:
        """One engine step: prefill of ``(new_tokens, context_tokens)`` chunks (one batch, so
        one base cost) plus one decode step of ``batch_size`` sequences."""
        work = sum(self._prefill_work_s(new, ctx) for new, ctx in chunks if new > 0)
        prefill = self.prefill.base_s + work if work else 0.0
        return prefill + self.decode_step_s(batch_size, total_context_tokens)

    def with_overrides(
        self,
        *,
        kv_tokens: int | None = None,
        max_running: int | None = None,
        chunk_tokens: int | None = None,
    ) -> Profile:
        """A copy with some capacities replaced (None keeps the profile's value)."""
        return dataclasses.replace(
            self,
            kv_tokens=kv_tokens if kv_tokens is not None else self.kv_tokens,
            max_running=max_running if max_running is not None else self.max_running,
            chunk_tokens=chunk_tokens if chunk_tokens is not None else self.chunk_tokens,
        )

    def _prefill_work_s(self, new: int, ctx: int) -> float:
        pairs = new * ctx + new * (new + 1) / 2
        return new * self.prefill.per_token_s + pairs * self.prefill.per_attn_pair_s


def _profiles_dir() -> Any:
    return resources.files(__package__ or "kvbaton.middleware.engine") / "profiles"


def profile_names() -> list[str]:
    """Names of the shipped profiles, sorted."""
    return sorted(
        p.name[: -len(".json")] for p in _profiles_dir().iterdir() if p.name.endswith(".json")
    )


def load_profile(name: str) -> Profile:
    """Load a shipped profile by name, or a profile JSON file by path.

    Raises `UnknownProfileError` listing the shipped names if neither exists.
    """
    shipped = _profiles_dir() / f"{name}.json"
    if shipped.is_file():
        return _parse(json.loads(shipped.read_text()))
    if name.endswith(".json") and Path(name).is_file():
        return _parse(json.loads(Path(name).read_text()))
    known = ", ".join(profile_names())
    raise UnknownProfileError(f"unknown engine profile {name!r}; known profiles: {known}")


def _parse(data: Mapping[str, Any]) -> Profile:
    try:
        return Profile(
            name=str(data["name"]),
            description=str(data.get("description", "")),
            model=str(data.get("model", "")),
            gpu=str(data.get("gpu", "")),
            kv_bytes_per_token=int(data["kv_bytes_per_token"]),
            kv_tokens=int(data["kv_tokens"]),
            max_running=int(data["max_running"]),
            chunk_tokens=int(data["chunk_tokens"]),
            page_size=int(data.get("page_size", 1)),
            prefill=PrefillCost(**{k: float(v) for k, v in data["prefill"].items()}),
            decode=DecodeCost(**{k: float(v) for k, v in data["decode"].items()}),
            sources=tuple(Source(**s) for s in data.get("sources", ())),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"invalid engine profile: {exc}") from exc
