"""Fit the engine cost model (`kvbaton.middleware.engine.costs`) to timings measured on a
live engine, and write the result as an engine profile.

Pure: it takes samples (seconds, token counts) and returns costs; `profile` measures
them over HTTP. Both fits are least squares on the model's own terms, relative to each
sample's time (a 0.05 s prefill counts as much as a 1 s one), with coefficients kept
non-negative: a negative per-token cost would make the simulator run backwards.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, TypeVar

import numpy as np

from kvbaton.middleware.engine.costs import DecodeCost, PrefillCost

__all__ = [
    "DecodeSample",
    "Fit",
    "PrefillSample",
    "fit_decode",
    "fit_prefill",
    "median_sample",
    "profile_json",
]

_Sample = TypeVar("_Sample", "PrefillSample", "DecodeSample")


@dataclass(frozen=True, slots=True)
class PrefillSample:
    """One request that generated a single token: ``new_tokens`` computed after
    ``context_tokens`` found in the prefix cache, in ``seconds`` (request sent to reply)."""

    new_tokens: int
    context_tokens: int
    seconds: float


@dataclass(frozen=True, slots=True)
class DecodeSample:
    """Mean seconds per decode step with ``batch`` sequences decoding together, holding
    ``total_context_tokens`` tokens of KV between them."""

    batch: int
    total_context_tokens: int
    seconds: float


@dataclass(frozen=True, slots=True)
class Fit:
    """Fitted coefficients (in the cost model's order) and how well they reproduce the
    samples: the largest and the mean relative error."""

    coefficients: tuple[float, ...]
    max_rel_error: float
    mean_rel_error: float
    samples: int


def median_sample(samples: Sequence[_Sample]) -> _Sample:
    """Repeats of one measured point as one sample: the median of each figure (the lower
    median for token counts, so they stay whole)."""
    if not samples:
        raise ValueError("no samples to take the median of")
    medians: dict[str, Any] = {}
    for f in fields(samples[0]):
        values = [getattr(s, f.name) for s in samples]
        is_int = isinstance(values[0], int)
        medians[f.name] = statistics.median_low(values) if is_int else statistics.median(values)
    return replace(samples[0], **medians)


def _nonneg_relative_lstsq(features: np.ndarray, seconds: np.ndarray) -> Fit:
    """Least squares of ``features @ x ≈ seconds`` in relative terms, with ``x >= 0``.

    Active set, smallest first: while a coefficient comes out negative, drop the most
    negative term and refit (three terms at most, so this ends in three rounds).
    """
    weights = 1.0 / seconds
    active = list(range(features.shape[1]))
    while True:
        a = features[:, active] * weights[:, None]
        solution, *_ = np.linalg.lstsq(a, np.ones_like(seconds), rcond=None)
        if (solution >= 0).all() or len(active) == 1:
            break
        active.pop(int(np.argmin(solution)))
    x = np.zeros(features.shape[1])
    x[active] = np.clip(solution, 0.0, None)
    errors = np.abs(features @ x - seconds) / seconds
    return Fit(tuple(float(v) for v in x), float(errors.max()), float(errors.mean()), len(seconds))


def _check(samples: Sequence[PrefillSample] | Sequence[DecodeSample], what: str) -> None:
    if len(samples) < 3:
        raise ValueError(f"fitting {what} needs at least 3 samples, got {len(samples)}")
    if any(s.seconds <= 0 for s in samples):
        raise ValueError(f"{what} samples must have positive durations")


def fit_prefill(samples: Sequence[PrefillSample]) -> tuple[PrefillCost, Fit]:
    """``base + new * per_token + pairs * per_attn_pair``, pairs as in `Profile.prefill_s`."""
    _check(samples, "prefill")
    rows = [
        (1.0, s.new_tokens, s.new_tokens * s.context_tokens + s.new_tokens * (s.new_tokens + 1) / 2)
        for s in samples
    ]
    fit = _nonneg_relative_lstsq(np.array(rows), np.array([s.seconds for s in samples]))
    return PrefillCost(*fit.coefficients), fit


def fit_decode(samples: Sequence[DecodeSample]) -> tuple[DecodeCost, Fit]:
    """``base + batch * per_seq + total_context * per_context_token``."""
    _check(samples, "decode")
    rows = [(1.0, s.batch, s.total_context_tokens) for s in samples]
    fit = _nonneg_relative_lstsq(np.array(rows), np.array([s.seconds for s in samples]))
    return DecodeCost(*fit.coefficients), fit


def _fit_note(fit: Fit) -> str:
    return (
        f"least-squares fit of {fit.samples} samples; "
        f"mean error {fit.mean_rel_error:.0%}, max {fit.max_rel_error:.0%}"
    )


def profile_json(
    *,
    name: str,
    description: str,
    model: str,
    hardware: str,
    capacity: dict[str, int],
    prefill: tuple[PrefillCost, Fit],
    decode: tuple[DecodeCost, Fit],
    measured_at: str,
    capacity_sources: dict[str, tuple[str, str]],
) -> dict[str, Any]:
    """An engine profile in the shipped JSON format, its ``sources`` saying how each figure
    was found. ``capacity`` holds kv_bytes_per_token, kv_tokens, max_running, chunk_tokens
    and page_size; ``capacity_sources`` maps each of them to (kind, source)."""
    sources = [
        {"figure": "prefill", "value": _costs_text(prefill[0]), "kind": "measured",
         "source": f"kvbaton profile against {measured_at}: {_fit_note(prefill[1])}"},
        {"figure": "decode", "value": _costs_text(decode[0]), "kind": "measured",
         "source": f"kvbaton profile against {measured_at}: {_fit_note(decode[1])}"},
    ]  # fmt: skip
    for figure, (kind, source) in capacity_sources.items():
        sources.append(
            {"figure": figure, "value": str(capacity[figure]), "kind": kind, "source": source}
        )
    return {
        "name": name,
        "description": description,
        "model": model,
        "gpu": hardware,
        **capacity,
        "prefill": asdict(prefill[0]),
        "decode": asdict(decode[0]),
        "sources": sources,
    }


def _costs_text(costs: PrefillCost | DecodeCost) -> str:
    return ", ".join(f"{k} {v:.3g}" for k, v in asdict(costs).items())
