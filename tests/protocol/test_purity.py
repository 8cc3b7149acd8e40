import ast
from pathlib import Path

import pytest

import kvbaton.middleware.protocol as protocol

PACKAGE = Path(protocol.__file__).parent
FORBIDDEN = {"asyncio", "aiohttp", "time", "opentelemetry", "socket", "threading", "random", "os"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_protocol_modules_are_pure(path: Path) -> None:
    assert not imported_roots(path) & FORBIDDEN


def test_wire_is_dependency_free() -> None:
    assert imported_roots(PACKAGE / "wire.py") <= {"typing"}
