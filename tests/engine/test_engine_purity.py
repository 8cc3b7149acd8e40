"""The engine model is pure: drivers own the clock and the I/O."""

import ast
from pathlib import Path

import kvbaton.middleware.engine as engine

BANNED = {"asyncio", "aiohttp", "time", "opentelemetry"}


def test_engine_imports_no_clock_or_io():
    root = Path(engine.__file__).parent
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in BANNED, f"{path.name} imports {name}"
