"""Fitting the engine cost model to measured samples (pure; no engine)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from kvbaton.middleware.bench.profile_fit import (
    DecodeSample,
    PrefillSample,
    fit_decode,
    fit_prefill,
    median_sample,
    profile_json,
)
from kvbaton.middleware.engine import load_profile

TRUE = load_profile("demo-tiny")


def _prefill(noise: float = 0.0, seed: int = 0) -> list[PrefillSample]:
    rng = random.Random(seed)
    points = [(n, 0) for n in (64, 256, 512, 1024, 2048)] + [(n, 4 * n) for n in (64, 256, 512)]
    return [
        PrefillSample(n, c, TRUE.prefill_s(n, c) * (1 + rng.uniform(-noise, noise)))
        for n, c in points
    ]


def _decode(noise: float = 0.0, seed: int = 0) -> list[DecodeSample]:
    rng = random.Random(seed)
    return [
        DecodeSample(b, b * c, TRUE.decode_step_s(b, b * c) * (1 + rng.uniform(-noise, noise)))
        for b in (1, 2, 4, 8)
        for c in (128, 2048)
    ]


def test_exact_samples_give_back_the_model() -> None:
    prefill, fit = fit_prefill(_prefill())
    assert prefill.base_s == pytest.approx(TRUE.prefill.base_s, rel=1e-6)
    assert prefill.per_token_s == pytest.approx(TRUE.prefill.per_token_s, rel=1e-6)
    assert prefill.per_attn_pair_s == pytest.approx(TRUE.prefill.per_attn_pair_s, rel=1e-6)
    assert fit.max_rel_error < 1e-9 and fit.samples == 8
    decode, _ = fit_decode(_decode())
    assert decode.base_s == pytest.approx(TRUE.decode.base_s, rel=1e-6)
    assert decode.per_seq_s == pytest.approx(TRUE.decode.per_seq_s, rel=1e-6)
    assert decode.per_context_token_s == pytest.approx(TRUE.decode.per_context_token_s, rel=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_noisy_samples_predict_within_the_noise(seed: int) -> None:
    prefill, fit = fit_prefill(_prefill(noise=0.1, seed=seed))
    for n in (100, 1500):
        fitted = (
            prefill.base_s + n * prefill.per_token_s + n * (n + 1) / 2 * prefill.per_attn_pair_s
        )
        assert fitted == pytest.approx(TRUE.prefill_s(n), rel=0.15)
    assert fit.max_rel_error < 0.2


def test_coefficients_stay_non_negative() -> None:
    # Decode time that falls with batch size (a noisy engine) would fit a negative per-seq
    # cost; the fit drops that term instead.
    samples = [DecodeSample(b, 100 * b, 0.01 - 0.0005 * b) for b in (1, 2, 4, 8)]
    decode, fit = fit_decode(samples)
    assert min(decode.base_s, decode.per_seq_s, decode.per_context_token_s) >= 0
    assert decode.per_seq_s == 0 and decode.base_s > 0
    assert fit.samples == 4


@pytest.mark.parametrize(
    "samples",
    [[], [PrefillSample(10, 0, 0.1)] * 2, [PrefillSample(10, 0, 0.0)] * 3],
)
def test_too_few_or_bad_samples_are_refused(samples: list[PrefillSample]) -> None:
    with pytest.raises(ValueError, match="prefill"):
        fit_prefill(samples)


def test_median_sample_is_robust_to_one_slow_run() -> None:
    runs = [PrefillSample(500, 0, 0.05), PrefillSample(502, 0, 0.90), PrefillSample(499, 0, 0.06)]
    assert median_sample(runs) == PrefillSample(500, 0, 0.06)
    with pytest.raises(ValueError):
        median_sample([])


def test_profile_json_loads_as_a_profile(tmp_path: Path) -> None:
    capacity = {"kv_bytes_per_token": 2048, "kv_tokens": 8192, "max_running": 8,
                "chunk_tokens": 2048, "page_size": 128}  # fmt: skip
    data = profile_json(
        name="fitted",
        description="d",
        model="m",
        hardware="h",
        capacity=capacity,
        prefill=fit_prefill(_prefill()),
        decode=fit_decode(_decode()),
        measured_at="http://engine",
        capacity_sources={k: ("chosen", "test") for k in capacity},
    )
    path = tmp_path / "fitted.json"
    path.write_text(json.dumps(data))
    loaded = load_profile(str(path))
    assert loaded.kv_tokens == 8192 and loaded.page_size == 128
    assert loaded.prefill_s(1024) == pytest.approx(TRUE.prefill_s(1024), rel=1e-6)
    kinds = {s.figure: s.kind for s in loaded.sources}
    assert kinds["prefill"] == kinds["decode"] == "measured" and kinds["kv_tokens"] == "chosen"
