"""Settings of the embedded engine server (environment prefix ``KVBATON_ENGINE_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..engine.costs import DEFAULT_PROFILE

__all__ = ["EngineSettings"]


class EngineSettings(BaseSettings):
    """How the embedded engine serves.

    ``time_scale`` stretches the model's clock: real seconds per model second (2.0 runs at
    half speed, 0.1 ten times faster than the profile's GPU).
    """

    model_config = SettingsConfigDict(env_prefix="KVBATON_ENGINE_", frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(30000, ge=0, le=65535)
    profile: str = DEFAULT_PROFILE
    kv_tokens: int | None = Field(None, gt=0)
    max_running: int | None = Field(None, gt=0)
    time_scale: float = Field(1.0, gt=0)
    model_name: str = "kvbaton-tiny"
    priority_scheduling: bool = True
    radix_eviction_policy: Literal["lru", "priority"] = "lru"
    # SGLang --enable-session-radix-cache: a request's ``session_id`` keeps the KV it leaves
    # until /close_session (held outright here; SGLang evicts untagged KV first).
    enable_session_radix_cache: bool = False
