"""Profiles and the cost model."""

import pytest

from kvbaton.middleware.engine import UnknownProfileError, load_profile, profile_names


def test_shipped_profiles_load_with_sources():
    assert {"llama-3.1-8b-h100", "demo-tiny"} <= set(profile_names())
    for name in profile_names():
        profile = load_profile(name)
        assert profile.name == name and profile.sources
        assert {s.kind for s in profile.sources} <= {"spec", "measured", "derived", "chosen"}
        assert profile.kv_tokens > 0 and profile.chunk_tokens > 0 and profile.max_running > 0


def test_h100_profile_figures():
    p = load_profile("llama-3.1-8b-h100")
    assert p.kv_bytes_per_token == 32 * 8 * 128 * 2 * 2
    assert p.kv_tokens == 444_500
    assert 0.005 < p.decode_step_s(1, 100) < 0.01  # ~144 tokens/s single stream
    assert 0.2 < p.prefill_s(8192) < 0.4  # ~25-35k prompt tokens/s


def test_unknown_profile_lists_names():
    with pytest.raises(UnknownProfileError, match="demo-tiny"):
        load_profile("gpt-17")


@pytest.mark.parametrize("name", ["llama-3.1-8b-h100", "demo-tiny"])
def test_costs_are_monotonic(name):
    p = load_profile(name)
    assert p.prefill_s(0) == 0 and p.decode_step_s(0, 0) == 0
    for n in (1, 100, 1000, 8000):
        assert p.prefill_s(n + 1) > p.prefill_s(n)
        assert p.prefill_s(n, 5000) > p.prefill_s(n, 0)
        assert p.decode_step_s(n + 1, 0) > p.decode_step_s(n, 0)
        assert p.decode_step_s(n, 10 * n + 1) > p.decode_step_s(n, 10 * n)
    assert p.step_s([(100, 0), (100, 0)], 0, 0) < 2 * p.prefill_s(100)


def test_demo_is_slower_and_smaller():
    h100, demo = load_profile("llama-3.1-8b-h100"), load_profile("demo-tiny")
    assert 3 <= demo.prefill_s(4000) / h100.prefill_s(4000) <= 5
    assert 3 <= demo.decode_step_s(8, 8000) / h100.decode_step_s(8, 8000) <= 5
    assert demo.kv_tokens < 30_000
