"""kvbaton's workflow SDK: tell the proxy which program, agent and step each LLM call is.

```python
import kvbaton.workflows as kw
from openai import AsyncOpenAI

client = kw.wrap(AsyncOpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused"))

@kw.tool
async def search(q: str) -> list[str]: ...

@kw.agent("planner", next=["writer"], tools=["search"])
async def planner(task: str) -> str: ...

@kw.workflow("research")          # one call = one program
async def research(task: str) -> str: ...
```

See ``docs/sdk.md``. This package never imports the proxy: only the header names of
``kvbaton.middleware.protocol.wire``, a dependency-free module.
"""

from kvbaton.workflows.client import wrap
from kvbaton.workflows.context import (
    ProgramInfo,
    ToolRun,
    current_program,
    headers,
    in_context,
    last_step,
    to_thread,
)
from kvbaton.workflows.decorators import agent, tool, workflow
from kvbaton.workflows.errors import DefinitionError, OutsideWorkflowError, WorkflowError
from kvbaton.workflows.graph import WorkflowGraph
from kvbaton.workflows.proxy import configure

__all__ = [
    "DefinitionError",
    "OutsideWorkflowError",
    "ProgramInfo",
    "ToolRun",
    "WorkflowError",
    "WorkflowGraph",
    "agent",
    "configure",
    "current_program",
    "headers",
    "in_context",
    "last_step",
    "to_thread",
    "tool",
    "workflow",
    "wrap",
]
