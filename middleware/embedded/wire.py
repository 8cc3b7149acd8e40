"""Request bodies of the embedded server, validated with pydantic.

OpenAI and SGLang bodies ignore unknown top-level fields, as the real servers do; SGLang's
``sampling_params`` rejects unknown keys (a 400), as SGLang does.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "AbortRequest",
    "ChatCompletionRequest",
    "ChatMessage",
    "CloseSessionRequest",
    "CompletionRequest",
    "GenerateRequest",
    "HoldParams",
    "HoldRelease",
    "HoldUpdate",
    "NamedToolChoice",
    "OpenSessionRequest",
    "SamplingParams",
    "SessionParams",
    "StreamOptions",
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


def _only_one_choice(n: int | None) -> None:
    if n is not None and n != 1:
        raise ValueError("only n=1 is supported")


class FunctionCall(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    arguments: str | dict[str, Any] = "{}"


class ToolCallIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | None = None
    type: str = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None


class FunctionDef(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ToolDef(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["function"] = "function"
    function: FunctionDef


class _FunctionName(BaseModel):
    name: str


class NamedToolChoice(BaseModel):
    type: Literal["function"] = "function"
    function: _FunctionName


class HoldParams(_Body):
    """kvbaton's native pin: keep this request's prompt + output cached under ``key`` for
    ``ttl_s`` real seconds after it finishes (pinned atomically at finish)."""

    key: str = Field(min_length=1)
    ttl_s: float = Field(gt=0)


class HoldUpdate(_Body):
    key: str = Field(min_length=1)
    ttl_s: float = Field(ge=0)


class HoldRelease(_Body):
    key: str = Field(min_length=1)


class StreamOptions(_Body):
    include_usage: bool = False


class _OpenAIRequest(_Body):
    model: str | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int | None = 1
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    ignore_eos: bool = False
    priority: int | None = None
    rid: str | None = None
    session_id: str | None = None
    kvbaton_hold: HoldParams | None = None

    @model_validator(mode="after")
    def _one_choice(self) -> _OpenAIRequest:
        _only_one_choice(self.n)
        return self

    @property
    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or ())


class ChatCompletionRequest(_OpenAIRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[ToolDef] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    max_tokens: int | None = Field(None, ge=0)
    max_completion_tokens: int | None = Field(None, ge=0)

    @property
    def token_limit(self) -> int | None:
        """Output cap; 0 reads as "not set", as in SGLang's chat route."""
        return self.max_completion_tokens or self.max_tokens or None


class CompletionRequest(_OpenAIRequest):
    prompt: str | list[int] | list[str]
    max_tokens: int | None = Field(16, ge=0)
    echo: bool = False


class SamplingParams(BaseModel):
    """SGLang's sampling parameters; unknown keys are an error."""

    model_config = ConfigDict(extra="forbid")
    max_new_tokens: int | None = Field(128, ge=0)
    min_new_tokens: int = 0
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    stop_regex: str | list[str] | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    min_p: float = 0.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    repetition_penalty: float = 1.0
    ignore_eos: bool = False
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    no_stop_trim: bool = False
    n: int = 1
    json_schema: str | None = None
    regex: str | None = None
    ebnf: str | None = None
    structural_tag: str | None = None
    custom_params: dict[str, Any] | None = None
    logit_bias: dict[str, float] | None = None
    sampling_seed: int | None = None
    stream_interval: int | None = None

    @model_validator(mode="after")
    def _one_choice(self) -> SamplingParams:
        _only_one_choice(self.n)
        return self

    @property
    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or ())


class SessionParams(_Body):
    id: str
    rid: str | None = None
    offset: int | None = None
    replace: bool | None = None
    drop_previous_output: bool | None = None


class GenerateRequest(_Body):
    text: str | list[str] | None = None
    input_ids: list[int] | list[list[int]] | None = None
    sampling_params: SamplingParams = Field(default_factory=SamplingParams)
    stream: bool = False
    rid: str | list[str] | None = None  # a list for a batch of prompts (see `batch`)
    priority: int | None = None
    session_params: SessionParams | None = None
    session_id: str | None = None
    kvbaton_hold: HoldParams | None = None
    return_logprob: bool = False
    logprob_start_len: int = -1
    top_logprobs_num: int = 0
    return_text_in_logprobs: bool = False


class OpenSessionRequest(_Body):
    capacity_of_str_len: int
    session_id: str | None = None
    timeout: float | None = Field(None, gt=0)
    streaming: bool | None = None


class CloseSessionRequest(_Body):
    session_id: str


class AbortRequest(_Body):
    rid: str = ""
    abort_all: bool = False
