"""Deterministic token ids for trace replay in simulated time.

The trace format (``docs/trace-format.md``) fixes what must be shared and what must be
unique: a ``system`` prompt's tokens depend only on its name, a call's new tokens only on
(program id, call id). A prefix cache compares prompts position by position, and blocks only
ever start at the same position when everything before them is the same blocks, so two
different blocks need only differ in their *first* token. Each block is therefore a 61-bit
hash of its name followed by a filler id repeated: building a prompt copies pointers (C
speed) and allocates no per-token objects, and a false prefix match needs two hashes to
coincide (odds about 2^-61 a pair). Hashed ids are never the filler id.
"""

from __future__ import annotations

import hashlib

__all__ = ["TokenSynth", "Tokens"]

Tokens = tuple[int, ...]

_BITS = 61
_FILLER = 1  # 0 stays free: it is the engine's EOS id


def _start(seed: int, *parts: str) -> int:
    text = "\0".join((str(seed), *parts)).encode()
    digest = hashlib.blake2b(text, digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> (64 - _BITS)) | 2  # never 0 or 1


class TokenSynth:
    """Token ids for one run; the same ``seed`` gives the same ids."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._systems: dict[tuple[str, int], Tokens] = {}

    def system(self, name: str, n: int) -> Tokens:
        """The tokens of system prompt ``name`` (one shared tuple per name and length)."""
        key = (name, n)
        tokens = self._systems.get(key)
        if tokens is None:
            tokens = self._systems[key] = self._block(n, "system", name)
        return tokens

    def new_tokens(self, program_id: str, call_id: str, n: int) -> Tokens:
        """A call's own prompt tokens (tool result, user turn, task text)."""
        return self._block(n, "input", program_id, call_id)

    def output(self, program_id: str, call_id: str, n: int) -> Tokens:
        """The reply the engine is forced to generate for a call."""
        return self._block(n, "output", program_id, call_id)

    def _block(self, n: int, *parts: str) -> Tokens:
        if n <= 0:
            return ()
        start = _start(self.seed, *parts)
        return (start,) + (_FILLER,) * (n - 1)
