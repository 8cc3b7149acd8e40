"""Names of kvbaton's own request headers and body extension field.

Dependency-free on purpose: the workflow SDK imports it to send what the proxy reads.
Header names are lower case (HTTP header names are case-insensitive).

Body form: ``{"kvbaton": {"program_id": "...", "agent": "...", "step": "...", ...}}``, with
the keys in :data:`FIELDS`. Headers win over the body field when both are sent. Both are
removed before a request is forwarded upstream.
"""

from typing import Final

__all__ = [
    "BODY_FIELD",
    "FIELDS",
    "FIELD_AGENT",
    "FIELD_DEADLINE_S",
    "FIELD_LAST_STEP",
    "FIELD_PARENT_STEP",
    "FIELD_PROGRAM_ID",
    "FIELD_STEP",
    "FIELD_TENANT",
    "FIELD_TOOL",
    "FIELD_WORKFLOW",
    "HEADERS",
    "HEADER_AGENT",
    "HEADER_DEADLINE",
    "HEADER_LAST_STEP",
    "HEADER_PARENT_STEP",
    "HEADER_PREFIX",
    "HEADER_PROGRAM_ID",
    "HEADER_STEP",
    "HEADER_TENANT",
    "HEADER_TOOL",
    "HEADER_TO_FIELD",
    "HEADER_WORKFLOW",
    "PATH_PROGRAM_END",
    "PATH_WORKFLOW",
]

HEADER_PREFIX: Final = "x-kvbaton-"

HEADER_PROGRAM_ID: Final = "x-kvbaton-program-id"
"""One run of an agent program; every LLM call of the run carries the same value."""
HEADER_AGENT: Final = "x-kvbaton-agent"
"""The agent (node of the program graph) that makes this call."""
HEADER_STEP: Final = "x-kvbaton-step"
"""This call's step id, unique within the program."""
HEADER_PARENT_STEP: Final = "x-kvbaton-parent-step"
"""The step this call follows from (fork/join edges of the program graph)."""
HEADER_LAST_STEP: Final = "x-kvbaton-last-step"
"""``true`` on the program's last LLM call: nothing is worth keeping after it."""
HEADER_WORKFLOW: Final = "x-kvbaton-workflow"
"""The workflow (program type) name; graphs are learned per workflow."""
HEADER_TENANT: Final = "x-kvbaton-tenant"
"""Who the program runs for, for fairness between tenants."""
HEADER_DEADLINE: Final = "x-kvbaton-deadline"
"""Seconds, relative to this request's arrival, by which the program should finish."""
HEADER_TOOL: Final = "x-kvbaton-tool"
"""The tools the program ran since its previous LLM call, comma-separated (the pause is
measured by the proxy; this names it when the tools are not LLM tool calls)."""

HEADERS: Final = (
    HEADER_PROGRAM_ID,
    HEADER_AGENT,
    HEADER_STEP,
    HEADER_PARENT_STEP,
    HEADER_LAST_STEP,
    HEADER_WORKFLOW,
    HEADER_TENANT,
    HEADER_DEADLINE,
    HEADER_TOOL,
)

BODY_FIELD: Final = "kvbaton"

FIELD_PROGRAM_ID: Final = "program_id"
FIELD_AGENT: Final = "agent"
FIELD_STEP: Final = "step"
FIELD_PARENT_STEP: Final = "parent_step"
FIELD_LAST_STEP: Final = "last_step"
FIELD_WORKFLOW: Final = "workflow"
FIELD_TENANT: Final = "tenant"
FIELD_DEADLINE_S: Final = "deadline_s"
FIELD_TOOL: Final = "tool"

FIELDS: Final = (
    FIELD_PROGRAM_ID,
    FIELD_AGENT,
    FIELD_STEP,
    FIELD_PARENT_STEP,
    FIELD_LAST_STEP,
    FIELD_WORKFLOW,
    FIELD_TENANT,
    FIELD_DEADLINE_S,
    FIELD_TOOL,
)

HEADER_TO_FIELD: Final = dict(zip(HEADERS, FIELDS, strict=True))
"""Each header's body-field twin."""

PATH_WORKFLOW: Final = "/kvbaton/v1/workflows/{name}"
"""``PUT`` a workflow's declared graph here; ``GET`` returns it merged with what was learned."""
PATH_PROGRAM_END: Final = "/kvbaton/v1/programs/{program_id}/end"
"""``POST`` here when a program is over: its pins are released at once."""
