"""Deterministic prompt text for live replay (the "Token content" rule of the trace format).

A trace gives token counts, a real engine needs text. The text is made of short, common,
lower-case English words separated by single spaces, each of which is one token in common
BPE tokenizers (every word here is one token, with and without its leading space, in
tiktoken's ``cl100k_base``, whose vocabulary Llama 3 extends) and in kvbaton's synthetic
tokenizer (a word of at most 6 letters, with its leading space, is one piece). So ``n``
words are ``n`` tokens there, and about ``n`` on a real engine.

Words are drawn by ``random.Random`` seeded with a string, which hashes the string with
SHA-512: the text is the same in every process, whatever ``PYTHONHASHSEED`` is.
"""

from __future__ import annotations

import json
import random
from functools import lru_cache

__all__ = ["WORDS", "call_text", "system_text"]

_WORD_LIST = """
    the of and to in is was for on are with as at be by this from or have not but what all
    were when we there can an your which their said if do will each about how up out them
    then she many some so these would other into has more her two like him see time could no
    make than first been its who now people my made over did down only way find use may
    water long little very after words called just where most know get back much go good new
    write our used me man too any day same right look think also around came come work three
    word must does part even place well such here take why things help put years away again
    off went old number great tell men say small every found still name should home big give
    air line set own under read last never us left end along while might next sound below
    both few those always show large often house world going want school until form food
    keep land side boy once life took four head above kind almost live page got earth need
    far hand high year mother light parts father let night being study second eyes soon
    times story boys since white days ever paper hard near better best during today others
    sure means try young sun ways thing whole hear heard change answer room sea top turned
    learn point city play five using money seen car table order open stay river black walk
    blue plan rock fire road gold green red cold warm fast slow rain snow wind tree leaf
    stone glass metal wood cloud field window door wall floor bread fish bird horse cow dog
    cat song music voice color shape size power plant grow build carry bring hold stand sit
    sleep dream listen watch follow lead begin finish start stop wait move turn close break
    clean cook drive fly jump run simple clear short quick quiet happy wise early late round
    flat deep wide north south east west spring summer winter bridge castle market forest
    hill lake path street corner letter basket button
"""  # a block of text reads better than 361 quoted list items

WORDS: tuple[str, ...] = tuple(_WORD_LIST.split())
"""361 words of 2 to 6 letters, each one token in cl100k_base and the synthetic tokenizer."""


@lru_cache(maxsize=1024)
def system_text(name: str, tokens: int, *, seed: int = 0) -> str:
    """The text of system prompt ``name``: ``tokens`` words, the same for every call."""
    return _words(["system", seed, name], tokens)


def call_text(program_id: str, call_id: str, tokens: int, *, seed: int = 0) -> str:
    """The new text of one call (tool result or next turn): ``tokens`` words."""
    return _words(["call", seed, program_id, call_id], tokens)


def _words(key: list[str | int], count: int) -> str:
    # JSON keeps the key unambiguous whatever characters the ids contain.
    rng = random.Random(json.dumps(key))
    return " ".join(rng.choices(WORDS, k=count))
