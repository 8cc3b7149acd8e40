"""Coercion of untrusted header and JSON values: read what fits, answer None otherwise."""

import hashlib
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_ID_CHARS", "count", "flag", "get", "mapping", "seconds", "sequence", "text"]

MAX_ID_CHARS = 256
"""Longer ids are replaced by a digest: bounded memory, and still one id per value."""

_TRUE = frozenset({"1", "true", "yes", "on"})


def text(value: Any) -> str | None:
    """A non-empty, stripped, bounded string from a str or int, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        try:
            value = str(value)
        except ValueError:  # more digits than Python will print
            return None
    if not isinstance(value, str):
        return None
    stripped: str = value.strip()
    if len(stripped) > MAX_ID_CHARS:
        digest = hashlib.blake2b(stripped.encode("utf-8", "replace"), digest_size=16)
        return f"blake2b:{digest.hexdigest()}"
    return stripped or None


def flag(value: Any) -> bool:
    """True for ``true``/``1``/``yes``/``on`` (any case) or a JSON true."""
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.strip().lower() in _TRUE


def seconds(value: Any) -> float | None:
    """A finite, non-negative number of seconds from a number or numeric string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if len(value) > 64:
            return None
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


def count(value: Any) -> int:
    """A non-negative integer count from a JSON number; 0 for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if not math.isfinite(value) or value < 0:
        return 0
    return int(value)


def mapping(value: Any) -> Mapping[str, Any]:
    """The value if it is a JSON object, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def sequence(value: Any) -> list[Any]:
    """The value if it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []


def get(value: Any, *path: str | int) -> Any:
    """Walk object keys and array indices; None where the path does not exist."""
    for step in path:
        if isinstance(step, int):
            if not isinstance(value, list) or not -len(value) <= step < len(value):
                return None
            value = value[step]
        elif isinstance(value, Mapping):
            value = value.get(step)
        else:
            return None
    return value
