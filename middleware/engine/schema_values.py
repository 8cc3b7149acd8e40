"""Build a value that satisfies a JSON schema, deterministically from a seeded RNG.

Covers what tool parameter schemas use: ``type`` (string, number, integer, boolean, array,
object, null, or a list of types), ``enum``, ``const``, ``anyOf``/``oneOf``/``allOf``,
``properties`` with ``required``, ``items``, ``minItems``/``maxItems``,
``minimum``/``maximum`` (and the exclusive forms), ``minLength``/``maxLength`` and a few string
``format``s. Anything else (``$ref``, ``pattern``) yields a plausible value, not a checked one.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

__all__ = ["value_for"]

_MAX_DEPTH = 8
_FORMATS = {
    "date-time": "2025-01-01T00:00:00Z",
    "date": "2025-01-01",
    "time": "00:00:00",
    "email": "agent@example.com",
    "uri": "https://example.com/synthetic",
    "uuid": "00000000-0000-4000-8000-000000000000",
}
_WORDS = ("alpha", "beta", "gamma", "delta", "cache", "agent", "query", "report")


def value_for(schema: Any, rng: random.Random, depth: int = 0) -> Any:
    """A value valid against ``schema`` (a JSON-schema mapping)."""
    if not isinstance(schema, Mapping) or depth > _MAX_DEPTH:
        return None if depth > _MAX_DEPTH else "synthetic"
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return rng.choice(list(schema["enum"]))
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return value_for(_non_null(schema[key]), rng, depth + 1)
    if schema.get("allOf"):
        return value_for(_merge(schema["allOf"]), rng, depth + 1)
    kind = _type_of(schema)
    maker = _MAKERS.get(kind, _string)
    return maker(schema, rng, depth)


def _non_null(options: list[Any]) -> Any:
    typed = [o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")]
    return (typed or options)[0]


def _merge(parts: list[Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for part in parts:
        if isinstance(part, Mapping):
            props = {**merged.get("properties", {}), **part.get("properties", {})}
            required = [*merged.get("required", []), *part.get("required", [])]
            merged = {**merged, **part, "properties": props, "required": required}
    return merged


def _type_of(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        real = [k for k in kind if k != "null"]
        return str(real[0]) if real else "null"
    if isinstance(kind, str):
        return kind
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return "string"


def _string(schema: Mapping[str, Any], rng: random.Random, depth: int) -> str:
    fmt = schema.get("format")
    known = _FORMATS.get(fmt) if isinstance(fmt, str) else None
    text = known or f"synthetic-{rng.choice(_WORDS)}"
    lo, hi = int(schema.get("minLength", 0)), schema.get("maxLength")
    if len(text) < lo:
        text += "x" * (lo - len(text))
    if isinstance(hi, int) and len(text) > hi:
        text = text[:hi]
    return text


def _bounds(schema: Mapping[str, Any], step: float) -> tuple[float, float]:
    lo = schema.get("minimum", 0 if "maximum" not in schema else schema["maximum"] - 100)
    hi = schema.get("maximum", lo + 100)
    ex_lo, ex_hi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    # Draft 6+ uses numbers for the exclusive bounds; draft 4 booleans modify min/max.
    if ex_lo is True or (isinstance(ex_lo, int | float) and not isinstance(ex_lo, bool)):
        lo = (lo if ex_lo is True else ex_lo) + step
    if ex_hi is True or (isinstance(ex_hi, int | float) and not isinstance(ex_hi, bool)):
        hi = (hi if ex_hi is True else ex_hi) - step
    return float(lo), float(max(lo, hi))


def _integer(schema: Mapping[str, Any], rng: random.Random, depth: int) -> int:
    lo, hi = _bounds(schema, 1)
    return rng.randint(int(-(-lo // 1)), max(int(-(-lo // 1)), int(hi // 1)))


def _number(schema: Mapping[str, Any], rng: random.Random, depth: int) -> float:
    lo, hi = _bounds(schema, 0.01)
    value = round(rng.uniform(lo, hi), 2)
    return min(max(value, lo), hi)


def _boolean(schema: Mapping[str, Any], rng: random.Random, depth: int) -> bool:
    return rng.random() < 0.5


def _null(schema: Mapping[str, Any], rng: random.Random, depth: int) -> None:
    return None


def _array(schema: Mapping[str, Any], rng: random.Random, depth: int) -> list[Any]:
    items = schema.get("items", {})
    if isinstance(items, list):  # tuple validation: one value per position
        return [value_for(s, rng, depth + 1) for s in items]
    lo = int(schema.get("minItems", 1))
    hi = int(schema.get("maxItems", lo + 2))
    return [value_for(items, rng, depth + 1) for _ in range(rng.randint(lo, max(lo, hi)))]


def _object(schema: Mapping[str, Any], rng: random.Random, depth: int) -> dict[str, Any]:
    props: Mapping[str, Any] = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    out: dict[str, Any] = {}
    for name, sub in props.items():
        if name in required or rng.random() < 0.5:
            out[name] = value_for(sub, rng, depth + 1)
    for name in required - out.keys():  # required but not described
        out[name] = "synthetic"
    return out


_MAKERS = {
    "string": _string,
    "integer": _integer,
    "number": _number,
    "boolean": _boolean,
    "null": _null,
    "array": _array,
    "object": _object,
}
