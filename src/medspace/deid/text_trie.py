"""Word alternations shaped as a trie, for the scrubber's regular expressions."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any


def trie(words: Iterable[str]) -> str:
    """An alternation of words shaped as a trie, so that shared prefixes are tried once; a space in a word
    matches a run of blanks. The empty word makes the whole alternation optional."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        alts = [(r"[ \t]+" if ch == " " else re.escape(ch)) + emit(node[ch]) for ch in sorted(node) if ch]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        if "" in node:
            return f"(?:{body})?"
        return body

    return emit(root)
