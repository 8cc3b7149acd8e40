"""Workflow graphs, declared and learned, and the predictions read from them."""

from kvbaton.middleware.core.workflows.declared import (
    DeclaredAgent,
    DeclaredTool,
    DeclaredWorkflow,
    WorkflowTooLarge,
    parse_declared,
)
from kvbaton.middleware.core.workflows.learned import END, OTHER, START, WorkflowGraph
from kvbaton.middleware.core.workflows.prediction import (
    Estimate,
    NextAgent,
    PausePrediction,
    Prediction,
)
from kvbaton.middleware.core.workflows.registry import WorkflowRegistry

__all__ = [
    "END",
    "OTHER",
    "START",
    "DeclaredAgent",
    "DeclaredTool",
    "DeclaredWorkflow",
    "Estimate",
    "NextAgent",
    "PausePrediction",
    "Prediction",
    "WorkflowGraph",
    "WorkflowRegistry",
    "WorkflowTooLarge",
    "parse_declared",
]
