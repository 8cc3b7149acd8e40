"""Proxy settings: command-line flags, then ``KVBATON_*`` environment variables, then defaults."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ProxySettings"]


class ProxySettings(BaseSettings):
    """Everything ``kvbaton serve`` can be told. Flags are passed as init arguments,
    which pydantic-settings ranks above the environment."""

    model_config = SettingsConfigDict(env_prefix="KVBATON_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    backend: str | None = Field(
        None, description="engine URL; unset = start the embedded engine in-process"
    )
    engine_kind: Literal["auto", "sglang", "vllm", "openai", "embedded"] = "auto"
    engine_priority: Literal["auto", "on", "off"] = Field(
        "auto", description="send call priority to the engine (vLLM needs 'on')"
    )
    policy: str = "program-fcfs"
    retention: str | None = Field(
        None, description="override the policy's KV retention: none, tool-ttl, static-ttl"
    )
    max_inflight: int | None = Field(
        None,
        ge=1,
        description="calls at the engine at once; unset = the engine's batch size "
        "(vLLM: followed from the load it reports)",
    )
    default_max_inflight: int = Field(64, ge=1)
    max_body_mb: float = Field(32.0, gt=0)
    connect_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(600.0, gt=0)
    programs_capacity: int = Field(100_000, ge=1)
    idle_ttl_s: float = Field(600.0, gt=0)
    continuation_capacity: int = Field(50_000, ge=1)
    engine_profile: str = "llama-3.1-8b-h100"
    engine_kv_tokens: int | None = Field(None, ge=1)
    engine_time_scale: float = Field(1.0, gt=0)
