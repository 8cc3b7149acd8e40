"""The SDK stands apart from the proxy: it may import only the dependency-free wire module."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {"kvbaton.middleware.protocol.wire"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
    return names


def _forbidden(names: set[str]) -> set[str]:
    reaching = {n for n in names if n.startswith(("kvbaton.middleware", "aiohttp"))}
    # `from kvbaton.middleware.protocol import wire` names the package on the way
    return {n for n in reaching if n not in ALLOWED and f"{n}.wire" not in ALLOWED}


def test_workflows_import_only_the_wire_module_of_the_proxy() -> None:
    files = sorted((ROOT / "workflows").rglob("*.py"))
    assert files
    offenders = {str(f.relative_to(ROOT)): sorted(_forbidden(_imports(f))) for f in files}
    assert {f: names for f, names in offenders.items() if names} == {}


def test_the_rule_catches_a_proxy_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from kvbaton.middleware.protocol import wire\n"
        "from kvbaton.middleware.service import app\n"
        "import aiohttp.web\n"
    )
    assert _forbidden(_imports(bad)) == {
        "kvbaton.middleware.service",
        "kvbaton.middleware.service.app",
        "aiohttp.web",
    }


def test_importing_the_sdk_loads_no_proxy_module() -> None:
    code = (
        "import sys, kvbaton.workflows\n"
        "bad = [m for m in sys.modules if m.startswith(('kvbaton.middleware.service', "
        "'kvbaton.middleware.core', 'kvbaton.adapters', 'aiohttp'))]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
