"""Which backend an engine gets follows from what it can do."""

from __future__ import annotations

import pytest

from kvbaton.adapters.base import Capabilities
from kvbaton.adapters.detect import (
    backend_for,
    capabilities_from_server_info,
    connect,
    vllm_kv_tokens,
)
from kvbaton.adapters.embedded import EmbeddedBackend
from kvbaton.adapters.http import HttpBackend
from kvbaton.adapters.sglang import SglangBackend
from kvbaton.adapters.vllm import VllmBackend
from kvbaton.middleware.launch import running_engine
from tests.adapters.conftest import settings


@pytest.mark.parametrize(
    ("info", "cls", "holds", "sessions", "lru"),
    [
        ({"engine": "kvbaton-embedded"}, EmbeddedBackend, True, False, False),
        ({"enable_session_radix_cache": True}, SglangBackend, True, True, False),
        (
            {"internal_states": [{"radix_eviction_policy": "lru"}]},
            SglangBackend,
            False,
            False,
            True,
        ),
    ],
)
async def test_sglang_api_engines(
    info: dict[str, object], cls: type, holds: bool, sessions: bool, lru: bool
) -> None:
    caps = capabilities_from_server_info(info)
    assert (caps.holds_kv, caps.session_cache, caps.lru_prefix_cache) == (holds, sessions, lru)
    backend = backend_for("http://127.0.0.1:9", caps)
    assert type(backend) is cls
    await backend.aclose()


def test_priority_eviction_is_read_from_server_info() -> None:
    caps = capabilities_from_server_info({"radix_eviction_policy": "priority"})
    assert caps.priority_eviction
    assert not capabilities_from_server_info({}).priority_eviction


@pytest.mark.parametrize(
    ("kind", "cls", "holds"), [("vllm", VllmBackend, False), ("openai", HttpBackend, False)]
)
async def test_named_kinds(kind: str, cls: type, holds: bool) -> None:
    backend = await connect("http://127.0.0.1:9", kind)  # type: ignore[arg-type]
    assert type(backend) is cls and backend.capabilities.holds_kv is holds
    await backend.aclose()


async def test_connect_probes_the_embedded_engine() -> None:
    async with running_engine(settings()) as url:
        backend = await connect(url)
        assert type(backend) is EmbeddedBackend
        assert backend.capabilities.native_pins and backend.capabilities.holds_kv
        await backend.aclose()


async def test_a_plain_server_neither_holds_nor_warms() -> None:
    backend = HttpBackend("http://127.0.0.1:9", Capabilities("openai"))
    assert await backend.warm({"messages": [{"role": "user", "content": "x"}]}) is None
    assert await backend.retime_pin("p", 1.0, None) == 0
    await backend.aclose()


# The series as vLLM 0.32 (CPU) prints it, shortened to the labels that matter here.
_VLLM_SCRAPE = """\
# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="128",engine="0",num_cpu_blocks="None",\
num_gpu_blocks="40",num_gpu_blocks_override="40"} 1.0
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="tiny"} 0.0
"""


def test_vllm_kv_pool_is_read_from_its_cache_config_series() -> None:
    assert vllm_kv_tokens(_VLLM_SCRAPE) == 40 * 128
    assert (
        vllm_kv_tokens(_VLLM_SCRAPE.replace('num_gpu_blocks="40"', 'num_gpu_blocks="None"')) is None
    )
    assert vllm_kv_tokens("vllm:num_requests_running 0.0\n") is None
    assert vllm_kv_tokens("not { a scrape") is None
    assert vllm_kv_tokens(None) is None
