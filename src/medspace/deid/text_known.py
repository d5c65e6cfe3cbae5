"""Record-aware name matching for the free-text scrubber (`medspace.deid.text`): a patient's own known names
found in one note.

A Latin-script name is found in any letter case and with or without diacritics (known ``Rentería`` finds
``Renteria``, ``RENTERIA`` and ``renteria``; known ``Jose`` finds ``José``), its words also alone, and a
multi-word name or a family and given name also written together or hyphenated (``LiuYang``, ``Liu-Yang``).
Everywhere but in its exact spelling of four or more characters it is taken only as a whole word, and a
letter of another script (Chinese, Japanese, Korean) is a word boundary: ``患者Liu Yang`` loses both words,
while a patient named Li does not turn Lisinopril into ``[NAME]sinopril``. A name that is also an ordinary
English word (Hill, Rose, White) is not taken in lower case, where it is far more often the word.

A Chinese name is found with stray spaces between its characters (``苏 秀英``); a surname and a given name
known apart are found together (``段 明``); a lone one-character name, too common on its own, only before a
title (``朱先生``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from functools import lru_cache

from medspace.deid import text_lexicon as L

_Raw = list[tuple[int, int, int, str]]  # (start, end, source priority, type), as in `text`

_ZH_TITLES = ("先生", "女士", "小姐", "医生", "医师", "大夫", "护士", "主任", "教授", "老师", "同志", "阿姨", "太太",
              "夫人", "老人", "奶奶", "爷爷", "同学", "师傅")
_ZH_GAP = "[ \t\u3000]*"
_LATIN_GAP = r"[ \t,\-‐]{0,3}"  # "Liu Yang", "Liu-Yang", "Liu, Yang", "LiuYang"


def _fold_table() -> dict[int, str]:
    # Latin letters with diacritics to their base letter, one character for one so that offsets still hold.
    table: dict[int, str] = {}
    for cp in (*range(0xC0, 0x250), *range(0x1E00, 0x1F00)):
        c = chr(cp)
        base = unicodedata.normalize("NFD", c)[0]
        if base != c and base.isascii() and base.isalpha():
            table[cp] = base
    table.update({ord(k): v for k, v in zip("øØđĐłŁıħĦŧŦ", "oOdDlLihHtT", strict=True)})
    return table


_FOLD = _fold_table()
_FOLDABLE = re.compile("[\u00c0-\u024f\u1e00-\u1eff]")
_MARKS = re.compile("[\u0300-\u036f]")


def fold(s: str) -> str:
    """The string with each Latin letter's diacritics dropped (same length; combining marks kept)."""
    return s.translate(_FOLD) if _FOLDABLE.search(s) else s


def _lower(s: str) -> str:
    low = s.lower()
    if len(low) == len(s):
        return low
    # "İ" lower-cases to two characters: keep one for one so that offsets in the note still hold.
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in s)


def is_han(c: str) -> bool:
    """True for a CJK ideograph."""
    return "\u3400" <= c <= "\u9fff" or "\uf900" <= c <= "\ufaff" or "\U00020000" <= c <= "\U0002fa1f"


def _word_char(c: str) -> bool:
    # A letter of an alphabetic script; CJK ideographs, kana and hangul (all from U+2E80) bound a Latin word.
    return c.isalpha() and c < "\u2e80"


def _whole(text: str, s: int, e: int) -> bool:
    return (s == 0 or not _word_char(text[s - 1])) and (e >= len(text) or not _word_char(text[e]))


# Names that are ordinary English words: not taken in lower case. Written from general knowledge of English
# (frequent surnames and given names that are words); the listed non-name words of the lexicon join them.
_WORD_NAMES_TEXT = """
hill brown black white green gray grey rose rice moss bell wood woods stone king young long little hall ward
cook baker bush fox wolf lamb bird cross frank hope day may love short page bass will mark bill joy grace faith
art guy don ivy holly dawn summer autumn chase hunter carter cooper mason parker miles harper sky sue jack ray
dean lane reed drew angel iris ruby violet hazel sage royal carol price walker turner parks banks field fields
rivers lake marsh wells park fish hunt nash barber butler porter gardner fisher miller smith weaver mills
bishop knight sharp strong rich noble gentry street west east north south case grant major rush spring snow
frost storm rain wade sweet cash power powers hood cole ball church rock flowers berry glass chambers lord
best good well bond burns carpenter mayo hart hurst horn keys law rowe tower doctor nurse bright may
"""
_WORD_NAMES = frozenset(_WORD_NAMES_TEXT.split()) | frozenset(w.lower() for w in L.NON_NAME_WORDS | L.AMBIGUOUS_GIVEN)


def _common_word(low: str) -> bool:
    return low in _WORD_NAMES


def _plain(v: str) -> str:
    """v without diacritics, case kept: combining marks dropped, letters folded."""
    if not v.isascii():
        nfd = unicodedata.normalize("NFD", v)
        if _MARKS.search(nfd):
            v = unicodedata.normalize("NFC", _MARKS.sub("", nfd))
    return fold(v)


@lru_cache(maxsize=4096)
def _latin_plan(v: str) -> tuple[re.Pattern[str] | None, str, tuple[tuple[str, str, bool], ...]]:
    """For a Latin-script name: the pattern of the whole name in the plain lower-cased note (None for one word),
    its plain spelling, and what to look for with str.find: (lower-case form, plain spelling as written, found
    inside words too)."""
    plain = _plain(v)
    words = [w for w in re.split(r"[\s,]+", plain) if len(w) >= 2 and any(map(str.isalnum, w))]
    if len(words) <= 1:
        # One word: its exact spelling of four or more characters counts even inside a longer word.
        # Diacritics aside it must be a whole word: known José must not take "Josefina" (found by `find_names`
        # when it is written with them).
        return None, plain, ((plain.lower(), plain, len(plain) >= 4 and plain == v),) if words else ()
    whole = re.compile(_LATIN_GAP.join(re.escape(w.lower()) for w in words))
    return whole, plain, tuple(dict.fromkeys((w.lower(), w, False) for w in words))


def _accept(text: str, s: int, e: int, written: str, anywhere: bool) -> bool:
    """An occurrence of a known Latin name (or one of its words) at [s, e) of the plain note is the name."""
    got = text[s:e]
    if anywhere and got == written:
        return True
    if not _whole(text, s, e):
        return False
    return not (got.islower() and not written.islower() and _common_word(got))


def _find_latin(text: str, hay: str, names: list[str], out: _Raw) -> None:
    """text: the note without diacritics; hay: the same lower-cased; spans in their offsets."""
    append = out.append
    singles: list[str] = []
    for v in names:
        whole, written, pieces = _latin_plan(v)
        if whole is not None:
            for m in whole.finditer(hay):
                # As written, a name of four or more characters counts even glued to other letters.
                if _whole(text, m.start(), m.end()) or (written == v and text[m.start():m.end()] == v):
                    append((m.start(), m.end(), 0, "NAME"))
        elif pieces:
            singles.append(pieces[0][0])
        for low, written, anywhere in pieces:
            if low not in hay:
                continue
            n = len(low)
            i = hay.find(low)
            while i >= 0:
                if _accept(text, i, i + n, written, anywhere):
                    append((i, i + n, 0, "NAME"))
                i = hay.find(low, i + 1)
    # A family and a given name known apart may be written together ("LiuYang", "YangLiu").
    if len(singles) > 1:
        for a in singles:
            for b in singles:
                ab = a + b
                if a != b and ab in hay:
                    i = hay.find(ab)
                    while i >= 0:
                        if _whole(text, i, i + len(ab)):
                            append((i, i + len(ab), 0, "NAME"))
                        i = hay.find(ab, i + 1)


def _without_marks(text: str) -> tuple[str, list[int] | None]:
    """The note without combining marks and, if any were dropped, the original offset of each character
    kept (plus the end)."""
    if text.isascii() or not _MARKS.search(text):
        return text, None
    keep = [i for i, c in enumerate(text) if not ("\u0300" <= c <= "\u036f")]
    offs = [*keep, len(text)]
    return "".join(text[i] for i in keep), offs


@lru_cache(maxsize=4096)
def _han_pattern(chars: str) -> re.Pattern[str]:
    return re.compile(_ZH_GAP.join(map(re.escape, chars)))


_GAP_CHARS = (" ", "\t", "\u3000")


def _han_spans(text: str, chars: str) -> Iterator[tuple[int, int]]:
    """Where ``chars`` occurs in the text, also with spaces between its characters."""
    # Every patient's name differs, so a compiled pattern per name is never reused: the regex (and its compilation)
    # only where one of the name's characters is followed by a space somewhere in the note.
    if any(c + g in text for c in chars[:-1] for g in _GAP_CHARS):
        for m in _han_pattern(chars).finditer(text):
            yield m.start(), m.end()
        return
    i = text.find(chars)
    while i >= 0:
        yield i, i + len(chars)
        i = text.find(chars, i + len(chars))


def _find_han(text: str, names: list[str], out: _Raw) -> None:
    """The patient's Chinese names: each of two or more characters, also with spaces between its characters;
    a surname and given name together; a one-character name alone only before a title."""
    append = out.append
    for x, a in enumerate(names):
        if a[0] not in text:
            continue
        if len(a) >= 2:
            for s, e in _han_spans(text, a):
                append((s, e, 0, "NAME"))
        else:
            i = text.find(a)
            while i >= 0:
                j = i + 1
                while j < len(text) and text[j] in " \t\u3000" and j - i <= 2:
                    j += 1
                if text.startswith(_ZH_TITLES, j):
                    append((i, i + 1, 0, "NAME"))
                i = text.find(a, i + 1)
        if len(a) <= 2:
            for y, b in enumerate(names):
                if y != x and len(b) <= 2 and b[0] in text:
                    for s, e in _han_spans(text, a + b):
                        append((s, e, 0, "NAME"))


def find_names(text: str, names: Iterable[str], out: _Raw) -> None:
    """Append to out (as record-aware NAME spans) every occurrence in the note of the patient's known names."""
    latin: list[str] = []
    han: list[str] = []
    for v in names:
        if not v:
            continue
        if any(map(is_han, v)):
            han.append("".join(v.split()))
        elif any(map(str.isalnum, v)):
            latin.append(v)
    if han:
        _find_han(text, list(dict.fromkeys(han)), out)
    if latin:
        for v in latin:
            if len(v) >= 4 and not v.isascii() and v in text:
                # The exact spelling with its diacritics counts anywhere, as an ASCII one does.
                i = text.find(v)
                while i >= 0:
                    out.append((i, i + len(v), 0, "NAME"))
                    i = text.find(v, i + 1)
        base, offs = _without_marks(text)
        plain = fold(base)
        if offs is None:
            _find_latin(plain, _lower(plain), list(dict.fromkeys(latin)), out)
            return
        found: _Raw = []
        _find_latin(plain, _lower(plain), list(dict.fromkeys(latin)), found)
        for s, e, prio, phi in found:
            # Back to the note's offsets; combining marks after the last letter go with it.
            out.append((offs[s], offs[e], prio, phi))
