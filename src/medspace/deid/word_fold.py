"""How English words are looked up in the scrubber's word lists: lower case, diacritics dropped.

One function shared by the detector (`medspace.deid.text_en`) and the script that builds its word file
(bench/build_en_vocab.py), so that a word is folded the same way when the list is made and when a note is read.
"""

from __future__ import annotations

import unicodedata

# Letters that Unicode does not decompose into a base letter and a mark (Łódź -> lodz).
LETTERS = str.maketrans({"ł": "l", "ø": "o", "æ": "ae", "œ": "oe", "ß": "ss", "đ": "d", "þ": "th", "ð": "d",
                         "ı": "i", "’": "'"})


def fold_word(word: str) -> str:
    """Lower case, diacritics removed (Rentería -> renteria)."""
    w = word.lower()
    if not w.isascii():
        w = "".join(c for c in unicodedata.normalize("NFKD", w.translate(LETTERS)) if not unicodedata.combining(c))
    return w
