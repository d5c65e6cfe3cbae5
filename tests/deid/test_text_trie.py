"""The trie-shaped word alternation matches exactly the words it was built from."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from medspace.deid.text_trie import trie

_WORDS = st.lists(st.text(alphabet="abcAB.-", min_size=1, max_size=6), min_size=1, max_size=12)


@given(_WORDS, st.text(alphabet="abcAB.-", max_size=7))
def test_a_trie_matches_exactly_its_words(words: list[str], probe: str) -> None:
    rx = re.compile(trie(words))
    assert all(rx.fullmatch(w) for w in words)
    assert (rx.fullmatch(probe) is not None) == (probe in words)


def test_a_space_matches_a_run_of_blanks_and_the_empty_word_makes_it_optional() -> None:
    assert re.fullmatch(trie(["New York"]), "New \t York")
    assert re.fullmatch(trie(["", "Jr"]), "")
