"""The SDK's errors: each says what to change in the calling code."""

from __future__ import annotations

__all__ = ["DefinitionError", "OutsideWorkflowError", "WorkflowError"]


class WorkflowError(Exception):
    """Base of the errors raised by :mod:`kvbaton.workflows`."""


class DefinitionError(WorkflowError, ValueError):
    """A decorator was used wrongly or a declared graph does not hold together."""


class OutsideWorkflowError(WorkflowError, RuntimeError):
    """An ``@agent`` function ran with no ``@workflow`` call around it."""
