"""Free-text scrubbing: find PHI in English and Chinese clinical notes and replace it with typed placeholders.

API: ``detect(text, lang, known) -> list[Span]``, ``scrub(text, lang, known) -> str`` for one note;
``detect_batch`` and ``scrub_batch(texts, langs, known) -> (pyarrow string array, counts per type)`` for many
(lists or pyarrow arrays; ``scrub_batch`` is what the policy engine calls on a whole ``note`` table);
``score(gold, predicted)`` measures spans against a labelled corpus. ``lang`` is "en" or "zh" (None guesses
from the text).

Three detection sources are combined:

* **Patterns** of validated shapes, one compiled alternation per language (GB 11643 resident IDs with their
  check character, 15-digit IDs with a real birth date, SSNs, phones of CN, US and other countries (numbers
  with ``+`` checked by `phonenumbers`), numeric and worded dates (17-May-2015, ISO date-times, a time attached
  to a date; 年月日 also in Chinese numerals and without a year), CN 省/市/区/路/号 and US, European and other
  street addresses and postcodes, MRNs and other numbers after cue words or in ID shapes (MRN-829800,
  84-261-680), ages over 89, e-mails, URLs, IPv4 and IPv6 (typed IP)) and names from context ("Dr.", "Patient:",
  ", MD", "signed by", "Daughter", "My name is", 患者, 姓名：, 先生/女士, "，男"). Full-width digits and letters
  are read as ASCII (one character for one, so offsets do not move).
* **Word classes from real-world lists**, Philter's idea: English capitalised words are classed from a shipped
  vocabulary (`medspace.deid.text_en`: common words from wordfreq and web2, census and SSA names, GeoNames
  places, drug and ICD-10 words); a word no list knows, or a name that is no common word, in a name-like run is
  a NAME, a place smaller than a state is a LOCATION. Chinese (`medspace.deid.text_zh`): places from the
  official division list (cpca) and jieba's dictionary, names from surnames, given-name characters and
  context, ordinary words from jieba's dictionary to keep 陈旧 or 高脂血症 intact. A policy's
  ``uncertain_names`` option takes every unknown capitalised word (or surname + given characters that form no
  word) for a name: recall over readability.
* **Record-aware** matching (`medspace.deid.text_known`): the node knows each patient's own identifiers, so
  every note may come with a list of *known* strings (family/given names, national ID, phone, MRN, address
  line, the note's author...). Each is found literally (case-insensitively for numbers, addresses and
  e-mails), long numbers also in other layouts (7817476803 for "(781) 747-6803"), names in any case, with or
  without diacritics, across CJK/Latin boundaries (患者Liu Yang) and with stray spaces (苏 秀英), a Chinese
  surname and given name together and a short surname before a title (朱先生).

Placeholders: each detected span becomes ``[TYPE]`` with TYPE one of `PHI_TYPES` (``[NAME]``, ``[DATE]``...).
Overlapping detections are merged into one span typed by its longest part; two name spans separated only
by a space, a comma or a middle initial become one ``[NAME]``. Offsets are Python string indices
(Unicode code points), [start, end).

Known strings: a bare string (type guessed from its shape) or a ``(value, type)`` pair where type is a PHI
type or a patient field name (``family_name``, ``mrn``...). Strings with no letter or digit are ignored.
A known string as written is replaced wherever it occurs, even inside a longer word, except Latin-script
strings shorter than four characters and the pieces of a multi-word name, which are replaced only as whole
words (so that a patient named Li does not turn Lisinopril into [NAME]sinopril); a lone one-character
Chinese surname is replaced only next to the given name or a title.

Ages: only ages over 89 are PHI (HIPAA §164.514(b)(2)(i)(C)); the span covers the number only
("[AGE]-year-old"). Years alone, states, provinces and countries are left in place (Safe Harbor keeps them).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from itertools import chain, compress, repeat
from operator import and_, contains, itemgetter, methodcaller, not_
from typing import Any, NamedTuple

import ahocorasick_rs
import pyarrow as pa

from medspace.deid import text_en
from medspace.deid import text_lexicon as L
from medspace.deid.errors import DeidError
from medspace.deid.text_known import find_names as _known_names
from medspace.deid.text_trie import trie as _trie
from medspace.deid.text_zh import bound_left as _zh_bound_left
from medspace.deid.text_zh import detect_zh as _detect_zh
from medspace.deid.text_zh import fold_width as _fold_width
from medspace.gc_pause import gc_paused

# LOCATION: a city, county or other place smaller than a state (HIPAA Safe Harbor (B)); IP: IPv4/IPv6 addresses.
PHI_TYPES: tuple[str, ...] = ("NAME", "ID", "PHONE", "ADDRESS", "DATE", "MRN", "EMAIL", "URL", "AGE", "LOCATION",
                              "IP")
DIRECT_TYPES: tuple[str, ...] = ("NAME", "ID", "PHONE", "ADDRESS", "MRN", "EMAIL", "URL", "IP")
LANGUAGES: tuple[str, ...] = ("en", "zh")


class Span(NamedTuple):
    """A PHI span: [start, end) in code points and its type."""

    start: int
    end: int
    type: str


KnownItem = str | tuple[str, str]


def placeholder(phi_type: str) -> str:
    """The text that replaces a span of the given type."""
    return f"[{phi_type}]"


# ---------------------------------------------------------------------------------------------------------
# Pattern building blocks
# ---------------------------------------------------------------------------------------------------------
#
# Speed: Python's regex engine skips ahead in C only when a pattern starts with a literal, a character class
# or an alternation whose branches all start with a literal, and every position where it stops costs a few
# hundred nanoseconds. So each language has ONE pattern: an alternation keyed by the first character of
# what it looks for (a digit, the first letter of a cue word or a listed name, a Chinese anchor character).
# Under each first character sit the rules that can start with it, word lists as tries followed by the
# rule's continuation. Failing at a position costs less than returning a match to Python, so there is no
# catch-all: only PHI comes back. Rare anchors found after the PHI (", MD", 先生, "，男") are matched
# themselves and the PHI is found by a look-back in Python.
#
# Each rule marks itself with a uniquely named group TYPE__rule__k: a non-empty group is the PHI, an empty
# one (a marker) means the whole match is. Groups whose name starts with "_" are not PHI.

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HANC = f"[{_HAN}]"
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
_MONTH_ABBR = ("Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug", "Sep", "Sept", "Oct", "Nov", "Dec")
_group_no = [0]


_MARKERS: set[str] = set()


def _g(template: str, rule: str) -> str:
    """The template with its "{G}" replaced by a fresh group name for the rule (TYPE__rule)."""
    _group_no[0] += 1
    name = f"{rule}__{_group_no[0]}"
    if "({G})" in template:
        _MARKERS.add(name)
    return template.replace("{G}", f"?P<{name}>")


def _rx(pattern: str) -> re.Pattern[str]:
    """The pattern compiled, each greedy optional non-capturing group "(?:X)?" written "(?:X|)"."""
    # Both match the same strings in the same order of preference, but the engine enters an optional group
    # through a repeat context that it allocates each time, where it tries an alternation in place.
    out: list[str] = []
    plain: list[bool] = []  # for each open group: non-capturing
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if c == "[":
            j = i + 1
            if pattern[j] == "^":
                j += 1
            if pattern[j] == "]":
                j += 1
            while pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            out.append(pattern[i:j + 1])
            i = j + 1
            continue
        if c == "(":
            plain.append(pattern.startswith("(?:", i))
        elif c == ")" and plain.pop() and pattern.startswith("?", i + 1) \
                and not pattern.startswith(("??", "?+"), i + 1):  # not lazy or possessive
            out.append("|)")
            i += 2
            continue
        out.append(c)
        i += 1
    return re.compile("".join(out))


_CAP = r"[A-Z](?:'[A-Z])?[a-z]+(?:[A-Z][a-z]+)?(?:-[A-Z][a-z]+)?"
_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_MON = r"(?:0?[1-9]|1[0-2])"
_Y4 = r"(?:18|19|20)\d{2}"
_MONTH = "(?:" + _trie(_MONTHS + _MONTH_ABBR) + r")(?![a-z])\.?"
_STATE = "(?:" + _trie(sorted(L.US_STATE_CODES | frozenset(L.US_STATE_NAMES))) + r")(?![A-Za-z])"
_CITY = r"[A-Z][a-z]+(?:[ \t](?:(?:of|or|on|de|del|la|le|du|upon|the)[ \t])?[A-Z][a-z]+){0,2}"
_ZIP = r"\d{5}(?:-\d{4})?(?!\d)"
_SUFFIX = "(?:" + _trie(L.STREET_SUFFIXES) + r")(?![A-Za-z])\.?"
_OLD = r"(?:9\d|1[01]\d|12[0-5])"  # ages over 89
_CN_NUM = "〇零一二三四五六七八九十"
_NAME_EN = rf"{_CAP}(?:,[ \t]+{_CAP}(?:[ \t]+(?:[A-Z]\.?(?![A-Za-z])|{_CAP}))?|(?:[ \t]+(?:[A-Z]\.|{_CAP})){{0,3}})"
_EXT = r"(?:[ ]?(?:ext\.?|x|#)[ ]?\d{1,5})?"
_US_TAIL = rf"[2-9]\d{{2}}[ .-]\d{{4}}{_EXT}"
_CN_MOBILE_TAIL = r"[3-9]\d(?:[ \t-]?\d{4}){2}"
_ZH_SURNAME_COMMON = "(?:" + "|".join(L.CN_COMPOUND_SURNAMES) + f"|[{L.CN_SURNAMES_COMMON}])"
_ZH_GIVEN_CH = f"(?:(?![{L.ZH_NAME_STOP}]){_HANC})"
_MRN_BODY = r"[A-Z]{0,4}-?\d{3,}[\dA-Z-]*"
_PHONE_CUE_BODY = r"[+]?[\d(（][\d ()（）.-]{5,}\d"


def _digit_rules(d: str, en: bool = False) -> list[tuple[str, str]]:
    """The digit rules that can start with digit d: (rule, what follows d). Known first digits let each rule
    say exactly what may follow (a month starting with 1 continues with [0-2] or nothing)."""
    monc = {"0": "[1-9]", "1": "[0-2]?"}.get(d, "")
    dayc = {"0": "[1-9]", "1": r"\d?", "2": r"\d?", "3": "[01]?"}.get(d, "")
    oldc = {"9": r"\d", "1": r"(?:[01]\d|2[0-5])"}.get(d)
    y4c = {"1": r"[89]\d{2}", "2": r"0\d{2}"}.get(d)
    day_hi = {"1": "[3-9]", "2": r"\d", "3": "[01]"}.get(d)
    r: list[tuple[str, str]] = text_en.digit_first(d) if en else []
    if d != "0":
        r.append(("ID__gb", rf"\d{{5}}{_Y4}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{{3}}[\dXx]({{G}})(?![A-Za-z\d])"))
    mobile = {"1": "", "0": r"086[ \t-]?1", "8": r"6[ \t-]?1"}.get(d)
    if mobile is not None:
        r.append(("PHONE__cnmob", rf"{mobile}{_CN_MOBILE_TAIL}({{G}})(?![\d-])"))
    if d != "0":
        r.append(("ID__gb15", r"\d{7}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}({G})(?![A-Za-z\d])"))
    if d == "0":
        r.append(("PHONE__cnland", r"\d{2,3}[ \t-](?:\d{7,8}|\d{3,4}[ \t-]\d{4})(?:[ \t]?(?:转|ext\.?|x)[ \t]?\d{1,5})?"
                                   r"({G})(?![\d-])"))
    r.append(("ID__ssn", r"\d{2}-\d{2}-\d{4}({G})(?![\d-])"))
    r.append(("ID__ssnsp", r"\d{2} \d{2} \d{4}({G})(?![\d-])"))
    if d == "1":
        r.append(("PHONE__us", rf"[ .-]?(?:\([ ]?[2-9]\d{{2}}[ ]?\)[ ]?|[2-9]\d{{2}}[ .-]){_US_TAIL}({{G}})(?![\d-])"))
    elif d >= "2":
        r.append(("PHONE__us", rf"\d{{2}}[ .-]{_US_TAIL}({{G}})(?![\d-])"))
    if d in "48":  # CN 400/800 service numbers, also written without separators
        r.append(("PHONE__cn400", r"00[ \t-]?\d{3}[ \t-]?\d{4}({G})(?![\d-])"))
    if d in "12":
        r.append(("DATE__zh", rf"\d{{3}}[ \t]*年[ \t]*{_MON}[ \t]*月(?:[ \t]*{_DAY}[ \t]*[日号])?({{G}})"))
    r.append(("DATE__zh", rf"\d[ \t]*年[ \t]*{_MON}[ \t]*月[ \t]*{_DAY}[ \t]*[日号]({{G}})"))
    if d != "0" or monc:
        r.append(("DATE__zhmd", rf"{monc}[ \t]*月[ \t]*{_DAY}[ \t]*[日号]({{G}})"))
    if y4c is not None:
        r.append(("DATE__ymd", rf"{y4c}(?P<_s1{d}>[-/.]){_MON}(?P=_s1{d}){_DAY}({{G}})(?!\d)"))
    if d != "0" or monc:
        r.append(("DATE__mdy", rf"{monc}(?P<_s2{d}>[-/.]){_DAY}(?P=_s2{d})(?:{_Y4}|\d{{2}})({{G}})(?!\d|\.\d)"))
    if day_hi is not None:
        r.append(("DATE__dmy", rf"{day_hi}(?P<_s3{d}>[-/.]){_MON}(?P=_s3{d}){_Y4}({{G}})(?!\d)"))
    if d != "0" or monc:
        r.append(("DATE__my", rf"{monc}/{_Y4}({{G}})(?!\d|/\d)"))
        r.append(("DATE__dmon", rf"{dayc}(?:st|nd|rd|th)?[ \t]+(?:of[ \t]+)?{_MONTH}(?:,?[ \t]+{_Y4})?({{G}})(?!\d)"))
    if oldc is not None:
        r.append(("AGE__en", rf"{oldc}({{G}})(?=[ \t-]{{0,2}}(?:years?|yrs?|yo|y\.[ ]?o\.|y/o|Y/?O|year-old)"
                             r"(?![A-Za-z]))"))
        r.append(("AGE__zh", rf"{oldc}({{G}})(?=[ \t]?(?:周岁|岁))"))
    # Possessive runs: what follows each (a capital or blank after the digits, a blank after a word) can
    # never be a character given back.
    r.append(("ADDRESS__us", r"\d{0,5}+[A-Z]?[ \t]+(?:(?:[NSEW]\.?|North|South|East|West)[ \t]+)?"
                             rf"(?:(?:[A-Z][A-Za-z'.-]*+|\d{{1,3}}(?:st|nd|rd|th))[ \t]+){{1,4}}?{_SUFFIX}"
                             r"(?:,?[ \t]+(?:Apt|Apartment|Unit|Suite|Ste|Rm|Room|Fl|Floor|Bldg|#)\.?[ \t]*#?"
                             rf"[A-Za-z0-9-]+)?(?:,?[ \t]+{_CITY},?[ \t]+{_STATE}(?:[ \t]+{_ZIP})?)?({{G}})"))
    r.append(("IP__ip", r"\d{0,2}\.\d{1,3}\.\d{1,3}\.\d{1,3}({G})(?!\d|\.\d)"))
    r.append(("ID__num", r"\d{6,}({G})(?![A-Za-z\d])"))
    return r + text_en.DIGIT_LAST if en else r


def _digit_branch(d: str, en: bool = False) -> str:
    rules = "|".join(_g(cont, rule) for rule, cont in _digit_rules(d, en))
    # The look-behind keeps rules from starting inside a word or number.
    return rf"{d}(?<![A-Za-z\d']{d})(?:{rules})"


_PLUS_BRANCH = ("\\+(?:" + "|".join((
    _g(rf"86[ \t-]?1{_CN_MOBILE_TAIL}({{G}})(?![\d-])", "PHONE__cnmob"),
    _g(rf"1[ .-]?(?:\([ ]?[2-9]\d{{2}}[ ]?\)[ ]?|[2-9]\d{{2}}[ .-]){_US_TAIL}({{G}})(?![\d-])", "PHONE__us"),
    _g(r"[1-9]\d{0,2}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){2,4}({G})(?![\d-])", "PHONE__intl"),
)) + ")")
_PLUS_BRANCH_EN = _PLUS_BRANCH[:-1] + "|" + _g(text_en.PLUS_RULE[1], text_en.PLUS_RULE[0]) + ")"
_PAREN_BRANCHES = (
    "\\((?:" + _g(rf"[ ]?[2-9]\d{{2}}[ ]?\)[ ]?{_US_TAIL}({{G}})(?![\d-])", "PHONE__us") + "|"
    + _g(r"0\d{2,3}\)[ \t-]?\d{7,8}({G})(?![\d-])", "PHONE__cnland") + ")",
    "（" + _g(r"0\d{2,3}）[ \t-]?\d{7,8}({G})(?![\d-])", "PHONE__cnland"),
)
_PAREN_BRANCH_EN = _PAREN_BRANCHES[0][:-1] + "|" + _g(text_en.PAREN_RULE[1], text_en.PAREN_RULE[0]) + ")"


def _variants(bases: Iterable[str], suffixes: Iterable[str]) -> list[str]:
    return [f"{b} {s}" if s else b for b in bases for s in suffixes]


_ID_CUES = ["SSN", "SS#", "DL#", "DL #", "Acct", "Acct #", "National ID", "ID #", "ID No", "ID Number", "NHS Number",
            *_variants(("Social Security", "Member", "Subscriber", "Policy", "Insurance", "Passport",
                        "Driver's License", "Drivers License", "Driver License", "License", "Medicare", "Medicaid",
                        "Account", "Health Plan", "Beneficiary", "Certificate", "Serial"), ("", "#", "No", "Number",
                                                                                          "ID"))]
_MRN_CUES = ["MR#", "Medical Record", "Med Rec",
             *_variants(("Medical Record", "Record", "Chart", "Hospital", "Encounter", "Visit"), ("#", "No", "Number"))]
_PHONE_CUES = ("Tel", "TEL", "Telephone", "Phone", "PHONE", "Mobile", "Cell", "Fax", "FAX", "Pager",
               "Contact Number", "Home Phone", "Work Phone", "Cell Phone")
_NAME_CUES = ("Patient", "Patient Name", "Pt", "Name", "NAME", "Signed by", "Seen by", "Dictated by", "Referred by",
              "Attending", "Physician", "Provider", "PCP", "Author", "Resident", "Emergency Contact", "Contact",
              "Spouse", "Wife", "Husband", "Son", "Daughter", "Mother", "Father", "Brother", "Sister", "Guardian",
              "Caregiver", "Surgeon", "Nurse", "Fellow", "Intern", "Witness", "Interpreter", "Cosigned by")
_TITLES = ("Mr", "Mrs", "Ms", "Miss", "Mx", "Dr", "Prof", "Mister", "Madam", "Doctor")
_CREDENTIALS = ("MD", "M.D.", "DO", "D.O.", "RN", "NP", "PA-C", "PA", "APRN", "CNP", "CRNA", "DNP", "PhD", "MBBS",
                "FNP", "PharmD", "LPN", "MSW", "LCSW", "FACP", "FACS")
_AGE_WORDS = (r"(?:[ -](?:and[ -])?(?:one|two|three|four|five|six|seven|eight|nine|ten))?({G})"
              r"(?=[ -](?:years?|yrs?|year-old)(?![A-Za-z]))")

# Word categories: (rule, words, what follows the word). Latin words must end at a word boundary.
_ID_CONT = r"[ \t]*[:#.]?[ \t]*({G}[A-Z0-9][A-Z0-9-]{4,}[A-Z0-9])(?![A-Za-z\d])"
_MRN_CONT = rf"[ \t]*[:#.]?[ \t]*({{G}}{_MRN_BODY})(?![A-Za-z\d])"
_PHONE_CONT = rf"[ \t]*[:：#.]?[ \t]*({{G}}{_PHONE_CUE_BODY})(?!\d)"
_CUE_CATEGORIES: tuple[tuple[str, Iterable[str], str], ...] = (
    ("ID__cue", _ID_CUES, _ID_CONT),
    # "MRN-829800" whole, before "MRN 829800" (the number after the cue)
    ("MRN__pre", ["MRN"], r"[-#:]?\d{4,}({G})(?![A-Za-z\d])"),
    ("MRN__cue", [*_MRN_CUES, "MRN"], _MRN_CONT),
    ("PHONE__cue", _PHONE_CUES, _PHONE_CONT),
    ("AGE__cue", ("Age", "AGE", "Aged"), rf"(?:[ \t]+of)?[ \t]*[: \t][ \t]*({{G}}{_OLD})(?!\d|\.\d)"),
    ("ADDRESS__pobox", ("P.O. Box", "PO Box", "P. O. Box", "P O Box", "POB"), r"[ \t]*#?\d+({G})"),
)
_EN_CATEGORIES: tuple[tuple[str, Iterable[str], str], ...] = (
    ("NAME__cue", _NAME_CUES, rf"[ \t]*:?[ \t]+({{G}}{_NAME_EN})"),
    ("NAME__title", _TITLES, rf"\.?[ \t]+({{G}}{_CAP}(?:[ \t]+(?:[A-Z]\.|{_CAP})){{0,2}})"),
    ("AGE__words", ("Ninety", "One hundred", "One-hundred"), _AGE_WORDS),
    ("DATE__mdyw", _MONTHS + _MONTH_ABBR, rf"\.?[ \t]+{_DAY}(?:st|nd|rd|th)?(?:,?[ \t]+{_Y4})?({{G}})(?!\d)"),
    ("DATE__monyear", _MONTHS + _MONTH_ABBR, rf"\.?[ \t]+(?:of[ \t]+)?{_Y4}({{G}})(?!\d)"),
    ("NAME__sig", _CREDENTIALS, "({G})"),
)
_FL_CONT = rf"(?:[ \t]+(?:[A-Z]\.|{_CAP}))?[ \t]+{_CAP}({{G}})"
_LF_CONT = rf",[ \t]+{_CAP}(?:[ \t]+(?:{_CAP}|[A-Z]\.?(?![A-Za-z])))?({{G}})"
_ALNUM_CONT = r"[A-Z]{0,3}\d{6,}[A-Z]?({G})(?![A-Za-z\d])"
_CSZ_BRANCH = "," + _g(rf"[ \t]+{_STATE}[ \t]+{_ZIP}({{G}})", "ADDRESS__csz")


def _han_categories() -> list[tuple[str, Iterable[str], str]]:
    # After the cue, a relation word (联系人：其子王建国) is not part of the name.
    strong = (r"[ \t]*[:：][ \t]*(?:其[父母妻夫子女]|丈夫|妻子|儿子|女儿|父亲|母亲|家属)?({G}" + _HANC + "{2,4})")
    num = f"[{_CN_NUM}]"
    cats: list[tuple[str, Iterable[str], str]] = [
        ("NAME__zhs", ("姓名", "签名", "记录者", "记录人", "联系人", "监护人", "陪同人", "代诉人", "报告人", "审核人",
                       "录入人", "经治医师", "主治医师", "住院医师", "主任医师", "医师", "医生", "护士", "大夫"),
         strong),
        ("NAME__zht", ("先生", "女士", "小姐", "主任", "教授", "老师", "同志", "阿姨", "师傅", "医师", "医生", "护士",
                       "大夫"), "({G})"),
        ("NAME__zhg", ("，男", "，女", ",男", ",女"), "(?=[，,、 \t。；;])({G})"),
        ("NAME__zhw", ("患者", "病人", "患儿", "病员", "产妇", "孕妇", "伤者", "死者", "其父", "其母", "其妻", "其夫",
                       "其子", "其女", "丈夫", "妻子", "儿子", "女儿", "父亲", "母亲", "家属", "同事", "朋友", "邻居"),
         f"({{G}}{_ZH_SURNAME_COMMON}{_ZH_GIVEN_CH}{{1,2}})"),
        ("DATE__zhhan", tuple(_CN_NUM), f"{num}{{1,3}}年{num}{{1,2}}月(?:{num}{{1,3}}[日号])?({{G}})"),
        ("DATE__zhhanmd", tuple("一二三四五六七八九十"), f"[十一二]{{0,2}}月{num}{{1,3}}[日号]({{G}})"),
        ("AGE__zhhan", ("九十",), "[一二三四五六七八九]?({G})(?=周岁|岁)"),
        ("AGE__zhhan", ("一百",), "(?:零?[一二三四五六七八九十]{1,2})?({G})(?=周岁|岁)"),
        ("AGE__zhcue", ("年龄",), rf"[ \t]*[:：]?[ \t]*({{G}}{_OLD})(?!\d|\.\d)"),
        ("MRN__zh", ("病案号", "住院号", "门诊号", "病历号", "登记号", "就诊号", "就诊卡号", "诊疗卡号", "ID号"),
         r"[ \t]*[:：]?[ \t]*({G}[A-Za-z0-9][A-Za-z0-9-]{3,})(?![A-Za-z0-9])"),
        ("ID__zh", ("身份证", "身份证号", "身份证号码", "公民身份号码", "证件号", "证件号码", "护照", "护照号",
                    "护照号码",
                    "医保卡号", "医保号", "医保卡", "社保卡号", "社保号", "社保卡", "医疗保险号", "军官证", "军官证号",
                    "港澳通行证", "港澳通行证号", "驾驶证", "驾驶证号", "银行卡", "银行卡号", "账号"),
         r"[ \t]*[:：]?[ \t]*({G}[A-Za-z0-9][A-Za-z0-9-]{4,})(?![A-Za-z0-9])"),
        ("PHONE__cue", ("电话", "手机", "联系方式", "联系电话", "座机", "传真", "手机号", "电话号码", "手机号码"),
         rf"[ \t]*[:：]?[ \t]*({{G}}{_PHONE_CUE_BODY})(?!\d)"),
        ("ADDRESS__zhcore", ("路", "街", "巷", "弄", "道", "大道", "大街", "胡同"),
         r"[ \t]?[\d０-９一二三四五六七八九十百零〇]{1,5}[号號]"
         r"(?:[\d０-９]{1,4}(?:号楼|号院|栋|幢|座|院|单元|层|楼|室|户|号)"
         r"|[-－][\d０-９]{1,4})*({G})"),
        ("ADDRESS__zhunit", ("小区", "花园", "公寓", "大厦", "家园", "新村", "社区", "苑", "村"),
         r"[\d０-９]{1,4}(?:号楼|号院|栋|幢|座|期)(?:[\d０-９]{1,4}(?:单元|层|楼|室|户|号))*({G})"),
        ("ADDRESS__zhadmin", ("省", "自治区", "市"),
         f"{_HANC}{{1,5}}?(?:区|县|旗)(?!{_HANC}?(?:医院|院|域|别|间))({{G}})"),
    ]
    return cats


def _leaf_trie(categories: Iterable[tuple[str, Iterable[str], str]]) -> dict[str, str]:
    """For each first character, each rule's words starting with it as a trie of the rest, then the rule's
    continuation. One group per first character and rule, not per word: a match costs the engine time in
    proportion to the number of groups in the pattern."""
    by_first: dict[str, dict[tuple[str, str], dict[str | None, Any]]] = {}
    for rule, words, cont in categories:
        for w in words:
            node = by_first.setdefault(w[0], {}).setdefault((rule, cont), {})
            for ch in w[1:]:
                node = node.setdefault(ch, {})
            node[None] = w[-1].isascii() and w[-1].isalpha()

    def emit(node: dict[str | None, Any]) -> str:
        alts = [(r"[ \t]+" if ch == " " else re.escape(ch)) + emit(node[ch]) for ch in sorted(k for k in node if k)]
        if None in node:
            # A word ending in a Latin letter must end at a word boundary ("Ann" is not the start of "Anna").
            alts.append(r"(?![A-Za-z'])" if node[None] else "")
        return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"

    out: dict[str, str] = {}
    for first, rules in by_first.items():
        alts = [emit(trie) + _g(cont, rule) for (rule, cont), trie in rules.items()]
        out[first] = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
    return out


def _name_branches() -> dict[str, str]:
    """For each capital, the listed given names and surnames starting with it, then "Surname, Given" or
    "Given [Middle] Surname"; which list the first word is in is checked afterwards."""
    by_first: dict[str, list[str]] = {}
    for w in sorted(L.US_GIVEN | L.US_SURNAMES):
        by_first.setdefault(w[0], []).append(w[1:])
    return {first: f"{_trie(rests)}(?![A-Za-z'])(?:" + _g(_LF_CONT, "NAME__lf") + "|" + _g(_FL_CONT, "NAME__fl") + ")"
            for first, rests in by_first.items()}


def _master(categories: Sequence[tuple[str, Iterable[str], str]], names: bool, zh: bool) -> re.Pattern[str]:
    """One pattern whose top-level branches each start with a literal character (so the engine can skip to
    them): under each first character, the words starting with it, then the other rules."""
    by_first: dict[str, list[str]] = {}
    for first, body in _leaf_trie(categories).items():
        by_first.setdefault(first, []).append(body)
    if names:
        for first, body in _name_branches().items():
            by_first.setdefault(first, []).append(body)
    for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        by_first.setdefault(c, []).append(_g(_ALNUM_CONT, "ID__alnum"))
        if not zh:  # English identifiers and postcodes that mix letters and digits (AB-1234-XY9, SW1A 1AA)
            by_first[c].append(_g(text_en.CAPITAL_RULE[1], text_en.CAPITAL_RULE[0]))
    # Branches that are complete patterns starting with their own character.
    complete = [_digit_branch(d, not zh) for d in "0123456789"] + (
        [_PLUS_BRANCH, *_PAREN_BRANCHES] if zh else [_PLUS_BRANCH_EN, _PAREN_BRANCH_EN, _PAREN_BRANCHES[1]])
    if not zh:
        complete.append(_CSZ_BRANCH)
        # Digits glued to letters (yo0047868), one branch per digit: every branch starting with a literal
        # keeps the engine's skip to the characters that can start a match.
        complete += [d + _g(text_en.GLUED_RULE[1], text_en.GLUED_RULE[0]).replace("DIGIT", d) for d in "0123456789"]
    # The engine tries the top-level branches in order at every stop: frequent first characters go first
    # (for Chinese text, "，" and the Chinese anchors before the Latin letters). The word branches also come
    # before the digit ones so that their groups get low numbers: a repeat inside an open group saves the
    # marks of every group numbered below it, many times per match.
    order = {c: i for i, c in enumerate(_FREQUENT_FIRST)}
    firsts = sorted(by_first, key=lambda c: (zh and c.isascii(), order.get(c, len(order)), c))
    # A rule starting with a Latin letter never starts inside a word ("Pt" in "OutPt"): the look-behind says so
    # right after the letter, where failing is cheaper than a match handed back to Python.
    branches = [re.escape(first) + (rf"(?<![^\W_]{first})" if first.isascii() and first.isalpha() else "")
                + (by_first[first][0] if len(by_first[first]) == 1 else "(?:" + "|".join(by_first[first]) + ")")
                for first in firsts]
    return _rx("|".join(branches + complete))


_FREQUENT_FIRST = "，PSMCDATRHEBLNFGOIWJKUVYQZX"


_EN_RX = _master(_CUE_CATEGORIES + _EN_CATEGORIES, True, False)
_ZH_RX = _master(_CUE_CATEGORIES + tuple(_han_categories()), False, True)
_BY_CUES = ("signed by", "seen by", "dictated by", "referred by")
_RELATIONS = ("husband", "wife", "daughter", "son", "mother", "father", "brother", "sister", "spouse", "partner",
              "guardian", "caregiver", "friend", "neighbor", "neighbour")
_LOWER_CUES = _BY_CUES + _RELATIONS
_LOWER_HINTS = ("age", "ninety", *_RELATIONS)
_LOWER_RX = _rx("|".join(
    [_g(rf"{w}[ \t]*:?[ \t]+({{G}}{_NAME_EN})", "NAME__cue") for w in _LOWER_CUES]
    + [_g(rf"aged?(?:[ \t]+of)?[ \t]*[: \t][ \t]*({{G}}{_OLD})(?!\d|\.\d)", "AGE__cue"),
       _g(r"ninety" + _AGE_WORDS, "AGE__words"), _g(r"one[ -]hundred" + _AGE_WORDS, "AGE__words")]))
_URL_TRAIL = ".,;:!?)]}'\""
_REV_ZH_NAME = re.compile(f"{_ZH_GIVEN_CH}{{0,2}}(?:" + "|".join(w[::-1] for w in L.CN_COMPOUND_SURNAMES)
                          + f"|[{L.CN_SURNAMES_COMMON}{L.CN_SURNAMES_AMBIGUOUS}])")
_ZH_ROLE_WORDS = frozenset((
    "责任", "主管", "主治", "管床", "值班", "接诊", "住院", "上级", "经治", "家庭", "签约", "首诊", "会诊", "门诊",
    "急诊", "病区", "实习", "进修", "规培", "专科", "全科", "社区", "乡村", "随访", "护理", "康复", "麻醉", "手术",
    "主刀", "助理", "执业", "带教", "心理", "营养", "科", "副", "本院", "外院", "我院", "该院", "男", "女", "老", "小",
    "主任", "床位",
))
_REV_ZH_PLACE = re.compile(f"[{_HAN}0-9]{{1,16}}")
_ZH_ADDR_CUT = re.compile(r"住址|地址|家住|现住|现居|居住|住在|位于|来自|户籍|籍贯|家庭|住|系|是|为|在|于|至|到|往|从")
_EN_NAME_GAP = _rx(r"[ ,]{1,2}(?:[A-Z]\.?[ ]{1,2})?")


# ---------------------------------------------------------------------------------------------------------
# Validation of pattern matches
# ---------------------------------------------------------------------------------------------------------

_GB_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_GB_CHECK = "10X98765432"
_NON_NAME = L.NON_NAME_WORDS
_LEXICON_NAMES = L.US_GIVEN | L.US_SURNAMES
_Result = str | tuple[int, int, str] | None


def _real_date(y: int, m: int, d: int) -> bool:
    try:
        date(y, m, d)
    except ValueError:
        return False
    return True


def gb11643_valid(value: str) -> bool:
    """True if an 18-character string is a GB 11643 resident ID: real birth date and matching check character."""
    if len(value) != 18 or not value[:17].isdigit() or value[0] == "0" or value[6:8] not in ("18", "19", "20"):
        return False
    if not _real_date(int(value[6:10]), int(value[10:12]), int(value[12:14])):
        return False
    total = sum(w * int(c) for w, c in zip(_GB_WEIGHTS, value, strict=False))
    return _GB_CHECK[total % 11] == value[17].upper()


def _ok_gb(text: str, s: int, e: int) -> _Result:
    # A run of 18 digits that fails the check is still an identifying number of some kind; one ending in X
    # is taken only when it is a valid resident ID.
    v = text[s:e]
    return "ID" if gb11643_valid(v) or v.isdigit() else None


def _ok_gb15(text: str, s: int, e: int) -> _Result:
    v = text[s:e]
    return "ID" if _real_date(1900 + int(v[6:8]), int(v[8:10]), int(v[10:12])) else None


def _ok_ssn(text: str, s: int, e: int) -> _Result:
    digits = text[s:e].replace(" ", "").replace("-", "")
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return None
    return "ID"


def _digits(text: str, s: int, e: int) -> int:
    v = text[s:e]
    if v.isascii():
        return len(v.translate(_ASCII_NON_DIGITS))
    return sum(map(str.isdigit, v))


def _ok_ip(text: str, s: int, e: int) -> _Result:
    return "IP" if all(p and int(p) <= 255 for p in text[s:e].split(".")) else None


def _name_tokens(value: str) -> list[str]:
    return value.replace(",", " ").split()


_NO_DOTS = methodcaller("rstrip", ".")


def _clean(seg: str, toks: list[str]) -> bool:
    """No token of the segment is a listed non-name word (a trailing dot aside)."""
    return _NON_NAME.isdisjoint(toks if "." not in seg else map(_NO_DOTS, toks))


def _ok_name_title(text: str, s: int, e: int) -> _Result:
    seg = text[s:e]
    toks = _name_tokens(seg)
    if toks and _clean(seg, toks):
        return "NAME"
    keep = 0
    for t in toks:
        if t.rstrip(".") in _NON_NAME:
            break
        keep += 1
    if keep == 0:
        return None
    if keep == len(toks):
        return "NAME"
    last = toks[keep - 1]
    return s, text.index(last, s) + len(last), "NAME"


def _ok_name_cue(text: str, s: int, e: int, colon: bool) -> _Result:
    seg = text[s:e]
    toks = _name_tokens(seg)
    if not _clean(seg, toks):
        # After "Name:" keep the leading run of plausible name words; without a colon give up.
        return _ok_name_title(text, s, e) if colon else None
    if not colon and _LEXICON_NAMES.isdisjoint(toks):
        return None
    return "NAME"


def _end_of(text: str, s: int, tokens: list[str]) -> int:
    """Where the last of the tokens (found in order from s) ends."""
    pos = s
    for t in tokens:
        pos = text.index(t, pos) + len(t)
    return pos


def _ok_name_fl(text: str, s: int, e: int) -> _Result:
    # Given name + [middle] + last name; trailing non-name words ("Clark Assessment") are dropped.
    toks = _name_tokens(text[s:e])
    if toks[0] not in L.US_GIVEN:
        return None
    if toks[-1].rstrip(".") not in _NON_NAME:  # nothing dropped: the match ends with the last word
        if len(toks) < 2 or (toks[0] in L.AMBIGUOUS_GIVEN and toks[-1] not in L.US_SURNAMES):
            return None
        return "NAME"
    while toks and toks[-1].rstrip(".") in _NON_NAME:
        toks.pop()
    if len(toks) < 2 or (toks[0] in L.AMBIGUOUS_GIVEN and toks[-1] not in L.US_SURNAMES):
        return None
    return s, _end_of(text, s, toks), "NAME"


def _ok_name_lf(text: str, s: int, e: int) -> _Result:
    # "Surname, Given [Middle]": the given name must be a listed one.
    toks = _name_tokens(text[s:e])
    if len(toks) < 2 or toks[0] not in L.US_SURNAMES or toks[1] not in L.US_GIVEN:
        return None
    if len(toks) > 2 and not (toks[2] in L.US_GIVEN or len(toks[2].rstrip(".")) == 1):
        return s, _end_of(text, s, toks[:2]), "NAME"
    return "NAME"  # the match ends with the last word


# Look-backs match a pattern written backwards against the reversed text before the anchor, so the engine
# reads from the anchor outwards instead of trying every start in a window.
# Each letter run is followed by a capital, so giving letters back can never help: the runs are possessive.
_REV_CAP = r"(?:[a-z]++[A-Z]-)?(?:[a-z]++[A-Z])?[a-z]++(?:[A-Z]')?[A-Z]"
_REV_SIG = _rx(rf"[ \t]*,?[ \t]*((?:{_REV_CAP}|\.[A-Z])(?:[ \t]+(?:{_REV_CAP}|\.[A-Z])){{1,3}})(?![A-Za-z'])")
_REV_CITY = _rx(r"([a-z]+[A-Z](?:[ \t](?:(?:fo|ro|no|ed|led|al|el|ud|nopu|eht)[ \t])?[a-z]+[A-Z]){0,2})"
                r"(?![A-Za-z])")


def _ok_sig(text: str, s: int, e: int) -> _Result:
    # A credential (", MD") names the person written just before it: two to four capitalised words.
    m = _REV_SIG.match(text[max(0, s - 60):s][::-1])
    if m is None:
        return None
    start, end = s - m.end(1), s - m.start(1)
    seg = text[start:end]
    toks = seg.split()
    if _clean(seg, toks):  # the match starts with the first word
        return (start, end, "NAME") if len(toks) >= 2 else None
    while toks and toks[0].rstrip(".") in _NON_NAME:
        toks.pop(0)
    if len(toks) < 2 or any(t.rstrip(".") in _NON_NAME for t in toks):
        return None
    return text.index(toks[0], start), end, "NAME"


def _ok_zh_strong(text: str, s: int, e: int) -> _Result:
    # After 姓名：/签名： any 2-4 characters are taken, stopping at a character that does not occur in names.
    end = s + 1
    while end < e and text[end] not in L.ZH_NAME_STOP:
        end += 1
    # Two names glued after the cue (医师：吴德顺周建华): the first ends where another common surname and a
    # given character start, two or three characters in.
    if end - s == 4 and text[s:s + 2] not in L.CN_COMPOUND_SURNAMES:
        for k in (3, 2):
            nxt = text[s + k:s + k + 2]
            if (len(nxt) == 2 and nxt[0] in L.CN_SURNAMES_COMMON and _is_han(nxt[1])
                    and nxt[1] not in L.ZH_NAME_STOP):
                return s, s + k, "NAME"
    return (s, end, "NAME") if end - s >= 2 else None


def _ok_zh_before(text: str, s: int, e: int) -> _Result:
    # A title (先生, 医生...) or ", 男" follows a name: look back for a surname and up to two given characters.
    for k in (1, 2, 3):
        if text[max(0, s - k):s] in _ZH_ROLE_WORDS:
            return None
    m = _REV_ZH_NAME.match(text[max(0, s - 4):s][::-1])
    if m is None:
        return None
    start = s - m.end()
    for k in (1, 2):
        if start - k >= 0 and text[start - k:start] in _ZH_ROLE_WORDS:
            return None
    if _zh_bound_left(text, start):  # 各位同志: 位 ends the word 各位
        return None
    return start, s, "NAME"


def _ok_zh_cued(text: str, s: int, e: int) -> _Result:
    # After 患者, 女儿...: not when the cue is misread inside other words (妇女儿童: 儿童 is a word).
    return None if _zh_bound_left(text, s) else "NAME"


def _ok_zh_address(text: str, s: int, e: int) -> _Result:
    # Extend left over the place names before the street (北京市朝阳区文化路), stopping after a cue (住址, 家住).
    m = _REV_ZH_PLACE.match(text[max(0, s - 16):s][::-1])
    start = s
    if m is not None:
        lo = s - m.end()
        cut = lo
        for c in _ZH_ADDR_CUT.finditer(text, lo, s):
            cut = c.end()
        start = cut
    if start == s and text[s] in "路街巷弄道":
        return None  # a house number with no street name before it
    return start, e, "ADDRESS"


def _ok_csz(text: str, s: int, e: int) -> _Result:
    # "Boston, MA 02152": the city is the one to three capitalised words before the comma.
    m = _REV_CITY.match(text[max(0, s - 40):s][::-1])
    if m is None:
        return s + len(text[s:e]) - len(text[s:e].lstrip(", \t")), e, "ADDRESS"
    return s - m.end(1), e, "ADDRESS"


_CHECKS: dict[str, Callable[[str, int, int], _Result]] = {
    "ID__gb": _ok_gb,
    "ID__gb15": _ok_gb15,
    "ID__ssnsp": _ok_ssn,
    "ID__cue": lambda t, s, e: "ID" if _digits(t, s, e) >= 4 else None,
    "ID__zh": lambda t, s, e: "ID" if _digits(t, s, e) >= 4 else None,
    "MRN__zh": lambda t, s, e: "MRN" if _digits(t, s, e) >= 3 else None,
    "PHONE__cue": lambda t, s, e: "PHONE" if _digits(t, s, e) >= 7 else None,
    "PHONE__intl": lambda t, s, e: "PHONE" if 8 <= _digits(t, s, e) <= 15 else None,
    "IP__ip": _ok_ip,
    "NAME__title": _ok_name_title,
    "NAME__cue": _ok_name_cue,  # type: ignore[dict-item]
    "NAME__lf": _ok_name_lf,
    "NAME__fl": _ok_name_fl,
    "NAME__sig": _ok_sig,
    "NAME__zhs": _ok_zh_strong,
    "NAME__zht": _ok_zh_before,
    "NAME__zhw": _ok_zh_cued,
    "NAME__zhg": _ok_zh_before,
    "ADDRESS__zhcore": _ok_zh_address,
    "ADDRESS__zhunit": _ok_zh_address,
    "ADDRESS__zhadmin": _ok_zh_address,
    "ADDRESS__csz": _ok_csz,
}
_CHECKS.update(text_en.CHECKS)
_GENERIC = frozenset(("ID__num", "ID__alnum", *text_en.GENERIC))


# ---------------------------------------------------------------------------------------------------------
# Record-aware matching
# ---------------------------------------------------------------------------------------------------------

_FIELD_TYPES: dict[str, str] = {
    "family_name": "NAME", "given_name": "NAME", "name": "NAME", "author": "NAME", "doctor": "NAME",
    "national_id": "ID", "insurance_id": "ID", "passport_id": "ID", "ssn": "ID", "mrn": "MRN", "phone": "PHONE",
    "email": "EMAIL", "address_line": "ADDRESS", "address": "ADDRESS", "url": "URL",
    **{t: t for t in PHI_TYPES},
}
_PHONE_SEPARATORS = str.maketrans("", "", "0123456789 +-().")
_DIGIT_GAP = frozenset(" +-().")
_ZH_ADDRESS_CHARS = frozenset("路街巷弄道号室栋村区镇乡楼")
# Deletes ASCII non-digits; a sequence table is read faster than a dict, and characters past its end
# (non-ASCII) are kept.
_ASCII_NON_DIGITS = [chr(c) if chr(c).isdigit() else None for c in range(128)]


def _guess_type(v: str) -> str:
    """The PHI type of a bare known string, from its shape."""
    if v.isalpha():
        return "NAME"
    if "@" in v:
        return "EMAIL"
    nd = len(v) if v.isdigit() else sum(map(str.isdigit, v))
    if nd == 0:
        return "URL" if v[:4].lower() in ("http", "www.") else "NAME"
    if nd >= 7:
        rest = v.translate(_PHONE_SEPARATORS)
        if not rest:
            return "PHONE" if 10 <= nd <= 13 else "ID"
        if rest in ("X", "x"):
            return "ID"
    if not _ZH_ADDRESS_CHARS.isdisjoint(v) or (v[0].isdigit() and " " in v):
        return "ADDRESS"
    return "ID" if nd >= 3 else "NAME"


def _is_han(ch: str) -> bool:
    return "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff"


# Record-aware matching runs over a whole batch at once: every (note, known item) pair is one row, and the
# rows are searched column by column (C-level map over str methods) so that Python only handles the rows
# found in their note. Latin-script names are looked for as written, in upper and in title case; everything
# else case-insensitively in the lower-cased note.
_Raw = list[tuple[int, int, int, str]]  # (start, end, source priority, type)
_DIGIT_TYPES = frozenset(("PHONE", "ID", "MRN"))
_ASCII_NON_ALNUM = "".join(chr(c) for c in range(128) if not chr(c).isalnum())
def _has_alnum(v: str) -> bool:
    if v.isascii():
        return bool(v.strip(_ASCII_NON_ALNUM))
    return any(map(str.isalnum, v))


def _known_pairs(flat: list[Any]) -> tuple[list[str], list[str | None]]:
    """Each known item as its value (stripped; "" if not a string) and its declared type (None: to guess)."""
    if set(map(type, flat)) == {tuple} and set(map(len, flat)) == {2}:
        try:
            return (list(map(str.strip, map(itemgetter(0), flat))),
                    list(map(_FIELD_TYPES.get, map(itemgetter(1), flat))))
        except TypeError:  # a value that is not a string, or an unhashable type
            pass
    out_values: list[str] = []
    out_types: list[str | None] = []
    for item in flat:
        value, phi = item, None
        if isinstance(item, tuple | list):
            value, declared_type = item if len(item) == 2 else (None, None)
            phi = _FIELD_TYPES.get(declared_type) if isinstance(declared_type, str) else None
        out_values.append(value.strip() if isinstance(value, str) else "")
        out_types.append(phi)
    return out_values, out_types


def _digits_of(v: str) -> str | None:
    """The digits of a long number (seven or more), or None."""
    d = v if v.isdigit() else v.translate(_ASCII_NON_DIGITS)
    return d if len(d) >= 7 and d.isdigit() else None


def _find_digits(text: str, digits: str, phi: str, out: _Raw) -> None:
    # A long number is found by its last four digits, then checked leftwards allowing separators, so
    # "(781) 747-6803", "781.747.6803" and "+1 781 747 6803" all match 7817476803.
    tail = digits[-4:]
    find = text.find
    i = find(tail)
    while i >= 0:
        end = i + 4
        k = len(digits) - 4
        j = i
        while k > 0 and j > 0:
            c = text[j - 1]
            if c == digits[k - 1]:
                k -= 1
                j -= 1
            elif c in _DIGIT_GAP and j - 1 > 0:
                j -= 1
            else:
                break
        if k == 0 and not (j > 0 and text[j - 1].isdigit()) and not (end < len(text) and text[end].isdigit()):
            out.append((j, end, 0, phi))
        i = find(tail, i + 1)


def _known_spans(texts: Sequence[str], known: Sequence[Any]) -> list[_Raw]:
    """For each note (a non-empty string), every occurrence of its own known identifiers, as raw spans."""
    out: list[_Raw] = [[] for _ in texts]
    owner: list[int] = []  # the note of each row
    flat: list[Any] = []
    for i, items in enumerate(known):
        if items:
            if not isinstance(items, list | tuple):
                items = list(items)
            flat += items
            owner += repeat(i, len(items))
    if not flat:
        return out
    values, types = _known_pairs(flat)
    if None in types:  # bare strings: the type from the shape
        guessed: dict[str, str] = {}
        for j in [j for j, p in enumerate(types) if p is None]:
            v = values[j]
            if v:
                p = guessed.get(v)
                if p is None:
                    p = guessed[v] = _guess_type(v)
                types[j] = p
    lows = [""] * len(texts)
    folded: set[int] = set()  # notes where a character changes length when lower-cased: searched case by case
    for i in set(owner):
        low = texts[i].lower()
        if len(low) == len(texts[i]):
            lows[i] = low
        else:
            folded.add(i)
    # Any occurrence of a row's value (a name as written, in upper or title case too) contains its lower-cased
    # form: rows whose lower-cased value is not in the lower-cased note can only be found as a long number in
    # another layout or as a piece of a longer name.
    needles = list(map(str.lower, values))
    hays = list(map(lows.__getitem__, owner))
    found = list(map(contains, hays, needles))
    for j in compress(range(len(flat)), found):
        phi = types[j]
        v = values[j]
        if phi is None or phi == "NAME" or len(v) < 2 or not (v.isalnum() or _has_alnum(v)):
            continue
        needle, low, dst = needles[j], hays[j], out[owner[j]]
        n = len(needle)
        i = low.find(needle)
        while i >= 0:
            dst.append((i, i + n, 0, phi))
            i = low.find(needle, i + 1)
    for j in compress(range(len(flat)), map(and_, map(not_, found), map(_MORE_TYPES.__contains__, types))):
        i = owner[j]
        if i in folded:
            continue
        v = values[j]
        if len(v) >= 7 and (v[-4:] in texts[i] or not v[-4:].isdigit()):
            # A long number not found as written, in another layout: looked for by its last four digits.
            digits = _digits_of(v)
            if digits is not None:
                _find_digits(texts[i], digits, types[j], out[i])  # type: ignore[arg-type]
    for j in [j for j, i in enumerate(owner) if i in folded] if folded else ():
        i = owner[j]
        if types[j] is not None and types[j] != "NAME":
            _find_folded(texts[i], values[j], types[j], out[i])  # type: ignore[arg-type]
    # Names in any case, with or without diacritics, across script boundaries and stray spaces: `text_known`.
    names: dict[int, list[str]] = {}
    for j in [j for j, p in enumerate(types) if p == "NAME"]:
        names.setdefault(owner[j], []).append(values[j])
    for i, vs in names.items():
        _known_names(texts[i], vs, out[i])
    return out


_MORE_TYPES = frozenset(("PHONE", "ID", "MRN"))


def _find_folded(text: str, v: str, phi: str, out: _Raw) -> None:
    """A known string other than a name in a note that changes length when lower-cased."""
    if len(v) < 2 or not _has_alnum(v):
        return
    found = False
    for m in re.finditer(re.escape(v.lower()), text, re.IGNORECASE):
        out.append((m.start(), m.end(), 0, phi))
        found = True
    if not found and len(v) >= 7 and phi in _DIGIT_TYPES:
        digits = _digits_of(v)
        if digits is not None:
            _find_digits(text, digits, phi, out)



# ---------------------------------------------------------------------------------------------------------
# Detection
# ---------------------------------------------------------------------------------------------------------


def _lang(lang: str | None, text: str) -> str:
    return _lang_code(lang) or ("zh" if _has_han(text) else "en")


def _lang_code(lang: str | None) -> str | None:
    """ "zh" or "en" for a language tag, None when it names neither (the text decides)."""
    if lang:
        low = lang.lower()
        if low.startswith(("zh", "cn", "chi", "cmn")):
            return "zh"
        if low.startswith("en"):
            return "en"
    return None


_HAN_ANY = re.compile("[\u3400-\u9fff\uf900-\ufaff]")  # what `_is_han` accepts, searched in C


def _has_han(text: str) -> bool:
    return not text.isascii() and _HAN_ANY.search(text) is not None


# What a group means: (type, check, priority, the group whose span is the PHI: 0, the whole match, for a
# marker); None for groups that are not PHI.
_RuleInfo = tuple[str, "Callable[[str, int, int], _Result] | None", int, int]


def _rule_table(rx: re.Pattern[str]) -> list[_RuleInfo | None]:
    """For each group number of a pattern, what a match ending in that group means."""
    table: list[_RuleInfo | None] = [None] * (rx.groups + 1)
    for name, i in rx.groupindex.items():
        if name[0] != "_":
            rule = name.rsplit("__", 1)[0]
            table[i] = (rule.split("__", 1)[0], _CHECKS.get(rule), 2 if rule in _GENERIC else 1,
                        0 if name in _MARKERS else i)
    return table


_EN_TABLE = _rule_table(_EN_RX)
_ZH_TABLE = _rule_table(_ZH_RX)
_LOWER_TABLE = _rule_table(_LOWER_RX)


def _scan(rx: re.Pattern[str], table: list[_RuleInfo | None], text: str, out: _Raw) -> None:
    append = out.append
    pos = 0
    while True:
        for m in rx.finditer(text, pos):
            info = table[m.lastindex or 0]
            if info is None:  # a number or capitalised word that starts no rule
                continue
            # A marker means the whole match is the PHI (or the anchor a look-back starts from).
            phi, check, prio, g = info
            s, e = m.span(g)
            if check is None:
                append((s, e, prio, phi))
                continue
            if check is _ok_name_cue:
                res: _Result = _ok_name_cue(text, s, e, ":" in text[m.start():s])
            else:
                res = check(text, s, e)
            if res is None:
                # Rejected: look again from the next character, where another rule may start.
                pos = m.start() + 1
                break
            if res.__class__ is tuple:
                append((res[0], res[1], prio, res[2]))
            else:
                append((s, e, prio, res))  # type: ignore[arg-type]
        else:
            return


# The lower-case cues and hints, plus each "... by" cue followed by a blank (the cue counts only where one is),
# found in one pass: substring tests one word at a time read the note some twenty times.
_LOWER_WORDS = (*_LOWER_HINTS, "one hundred", "one-hundred", *_BY_CUES, *(c + " " for c in _BY_CUES))
_N_HINTS = len(_LOWER_HINTS) + 2
_N_WORDS = _N_HINTS + len(_BY_CUES)
# The same pass also finds the strings that gate the passes of `text_en.scan` (one read of the note, not two).
_LOWER_AND_CUES = (*_LOWER_WORDS, *text_en.CUE_STRINGS)
_N_LOWER = len(_LOWER_WORDS)
_LOWER_AC = ahocorasick_rs.AhoCorasick(_LOWER_AND_CUES)


def _scan_lower(text: str, out: _Raw) -> set[str]:
    """Append the lower-case cue detections of an English note to out; return the `text_en.scan` cue strings
    that occur in it."""
    # Lower-case cues start with frequent letters: find where the words occur in one pass, match only there.
    at: dict[int, list[int]] = {}
    found: set[str] = set()
    for k, start, _end in _LOWER_AC.find_matches_as_indexes(text, overlapping=True):
        if k >= _N_LOWER:
            found.add(_LOWER_AND_CUES[k])
        elif k in at:
            at[k].append(start)
        else:
            at[k] = [start]
    if not at:
        return found
    # The hints in their order, then the "... by" cues in the order of their first "by " followed by a blank.
    order = sorted(k for k in at if k < _N_HINTS)
    order += [k - len(_BY_CUES) for _first, k in sorted(
        (at[k][0] + len(_LOWER_WORDS[k]), k) for k in at if k >= _N_WORDS)]
    for k in order:
        for i in at[k]:
            if i == 0 or not text[i - 1].isalnum():
                m = _LOWER_RX.match(text, i)
                g = m.lastindex if m is not None else None
                info = _LOWER_TABLE[g] if g is not None else None
                if info is not None and m is not None and g is not None:
                    phi, check, prio, span_group = info
                    s, e = m.span(span_group)
                    res = _ok_name_cue(text, s, e, ":" in text[i:s]) if check is _ok_name_cue else phi
                    if isinstance(res, tuple):
                        out.append((res[0], res[1], prio, res[2]))
                    elif res is not None:
                        out.append((s, e, prio, res))
    return found


_EMAIL_DOMAIN = re.compile(r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![A-Za-z])")
_EMAIL_LOCAL_REV = re.compile("[A-Za-z0-9._%+-]*")
_URL_REST = re.compile(f"[^\\s<>\"'{_HAN}\u3000-\u303f\uff00-\uffef]+")


def _scan_web(text: str, out: _Raw) -> None:
    # Anchored on "@", "://" and "www." found with str.find: most notes have none.
    i = text.find("@")
    while i >= 0:
        m = _EMAIL_DOMAIN.match(text, i)
        if m is not None:
            # The local part, read backwards from the "@", has at most 64 characters.
            local = _EMAIL_LOCAL_REV.match(text[max(0, i - 64):i][::-1])
            if local is not None and local.end():
                out.append((i - local.end(), m.end(), 1, "EMAIL"))
        i = text.find("@", i + 1)
    for anchor in ("://", "www.", "WWW."):
        i = text.find(anchor)
        while i >= 0:
            start = i
            if anchor == "://":
                while start > 0 and i - start < 10 and text[start - 1].isascii() and text[start - 1].isalpha():
                    start -= 1
                if start == i:
                    i = text.find(anchor, i + 1)
                    continue
            elif start > 0 and (text[start - 1] == "/" or text[start - 1].isalnum()):
                i = text.find(anchor, i + 1)
                continue
            m = _URL_REST.match(text, i + len(anchor))
            e = m.end() if m is not None else i + len(anchor)
            while e > i and text[e - 1] in _URL_TRAIL:
                e -= 1
            out.append((start, e, 1, "URL"))
            i = text.find(anchor, max(e, i + 1))


def _resolve(raw: _Raw, text: str) -> list[tuple[int, int, str]]:
    """Merge overlapping detections (typed by the longest part, then the most specific source) and adjacent
    name pieces."""
    if not raw:
        return []
    raw.sort()  # by start, then end, then source: record-aware (0), specific rule (1), generic number (2)
    out: list[tuple[int, int, str]] = []
    cs, ce, _, ct = raw[0]
    cl = ce - cs
    for s, e, _, t in raw:
        if s < ce:
            if e - s > cl:
                ct, cl = t, e - s
            if e > ce:
                ce = e
        elif t == "NAME" and ct == "NAME" and s - ce <= 5 and _EN_NAME_GAP.fullmatch(text, ce, s):
            ce = e
            cl = ce - cs
        else:
            out.append((cs, ce, ct))
            cs, ce, ct, cl = s, e, t, e - s
    out.append((cs, ce, ct))
    return out


def _detect(text: str, lang: str, raw: _Raw, uncertain_names: bool = False) -> list[tuple[int, int, str]]:
    """The resolved spans of one note; raw holds what record-aware matching found in it."""
    text = _fold_width(text)  # full-width digits and letters as ASCII, offsets unchanged (１２月３１日)
    if lang == "zh":
        _scan(_ZH_RX, _ZH_TABLE, text, raw)
        _detect_zh(text, raw, uncertain_names)
    else:
        _scan(_EN_RX, _EN_TABLE, text, raw)
        text_en.scan(text, raw, uncertain_names, _scan_lower(text, raw))
        if _has_han(text):
            _scan(_ZH_RX, _ZH_TABLE, text, raw)
            _detect_zh(text, raw, uncertain_names)
    _scan_web(text, raw)
    return _resolve(raw, text)


def detect(text: str, lang: str | None = None, known: Iterable[KnownItem] | None = None, *,
           uncertain_names: bool = False) -> list[Span]:
    """The PHI spans of one note, sorted and non-overlapping (lang: "en", "zh", or None to guess);
    uncertain_names: every capitalised English token that is no known word is a NAME, and every Chinese common
    surname with one or two characters that form no ordinary word (recall over readability)."""
    if not text:
        return []
    return [Span(*x) for x in _detect(text, _lang(lang, text), _known_spans([text], [known])[0], uncertain_names)]


def replace_spans(text: str, spans: Sequence[Span] | Sequence[tuple[int, int, str]]) -> str:
    """The text with each span replaced by its typed placeholder."""
    if not spans:
        return text
    parts: list[str] = []
    pos = 0
    for s, e, t in spans:
        parts.append(text[pos:s])
        parts.append(f"[{t}]")
        pos = e
    parts.append(text[pos:])
    return "".join(parts)


def scrub(text: str, lang: str | None = None, known: Iterable[KnownItem] | None = None, *,
          uncertain_names: bool = False, keep: Collection[str] = ()) -> str:
    """One note with every PHI span replaced by its typed placeholder, except spans of the types in keep."""
    if not text:
        return text
    spans = _detect(text, _lang(lang, text), _known_spans([text], [known])[0], uncertain_names)
    return replace_spans(text, [x for x in spans if x[2] not in keep] if keep else spans)


# ---------------------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------------------


def _pylist(values: Any) -> list[Any]:
    if isinstance(values, pa.ChunkedArray | pa.Array):
        return values.to_pylist()
    return list(values)


def _batch_inputs(texts: Any, langs: Any, known: Any) -> tuple[list[Any], list[Any], list[Any]]:
    t = _pylist(texts)
    n = len(t)
    lg = [langs] * n if langs is None or isinstance(langs, str) else _pylist(langs)
    kn = [None] * n if known is None else _pylist(known)
    if len(lg) != n or len(kn) != n:
        raise DeidError(f"texts, langs and known differ in length ({n}, {len(lg)}, {len(kn)})")
    return t, lg, kn


def _detect_many(texts: list[Any], langs: list[Any], known: list[Any], uncertain_names: bool = False
                 ) -> list[list[tuple[int, int, str]]]:
    raws = _known_spans(texts, [k if t else None for t, k in zip(texts, known, strict=True)])
    texts = [_fold_width(t) if t else t for t in texts]  # as in `_detect`
    codes = {x: _lang_code(x) for x in set(langs)} if all(isinstance(x, str | None) for x in langs) else None
    en: list[int] = []
    zh: list[int] = []
    for k, (text, lang) in enumerate(zip(texts, langs, strict=True)):
        if text:
            code = codes[lang] if codes is not None else _lang_code(lang)
            (zh if (code or ("zh" if _has_han(text) else "en")) == "zh" else en).append(k)
    # The steps of `_detect`, each over all its notes before the next starts: one pattern and the code that
    # reads its matches then stay in the processor's caches instead of evicting each other note after note.
    for k in en:
        _scan(_EN_RX, _EN_TABLE, texts[k], raws[k])
    cues = [_scan_lower(texts[k], raws[k]) for k in en]
    for k, found in zip(en, cues, strict=True):
        text_en.scan(texts[k], raws[k], uncertain_names, found)
    for k in en:
        if _has_han(texts[k]):
            _scan(_ZH_RX, _ZH_TABLE, texts[k], raws[k])
            _detect_zh(texts[k], raws[k], uncertain_names)
    for k in zh:
        _scan(_ZH_RX, _ZH_TABLE, texts[k], raws[k])
    for k in zh:
        _detect_zh(texts[k], raws[k], uncertain_names)
    for k in sorted(en + zh):
        _scan_web(texts[k], raws[k])
    return [_resolve(raw, text) if text else [] for text, raw in zip(texts, raws, strict=True)]


def detect_batch(texts: Any, langs: Any = None, known: Any = None, *, uncertain_names: bool = False
                 ) -> list[list[Span]]:
    """PHI spans of many notes. texts: list or pyarrow array (nulls allowed); langs: one language for all, or
    one per note; known: None or one list of known identifiers per note (None for a note without);
    uncertain_names as for `detect`."""
    with gc_paused():
        return [[Span(*x) for x in spans]
                for spans in _detect_many(*_batch_inputs(texts, langs, known), uncertain_names)]


def scrub_texts(texts: Any, langs: Any = None, known: Any = None, *, uncertain_names: bool = False,
                keep: Collection[str] = ()) -> tuple[list[str | None], dict[str, int]]:
    """Scrub many notes: the scrubbed texts as a list (None stays None) and how many placeholders of each type
    were written. Arguments as for `detect_batch`; spans of the types in keep stay as written (a policy's
    choice, e.g. cities under a policy that keeps them)."""
    t, lg, kn = _batch_inputs(texts, langs, known)
    with gc_paused():
        found = _detect_many(t, lg, kn, uncertain_names)
        if keep:
            found = [[x for x in spans if x[2] not in keep] for spans in found]
        out: list[str | None] = [None if text is None else replace_spans(text, spans)
                                 for text, spans in zip(t, found, strict=True)]
        counts = Counter(map(itemgetter(2), chain.from_iterable(found)))
    return out, {k: counts[k] for k in PHI_TYPES if counts[k]}


def scrub_batch(texts: Any, langs: Any = None, known: Any = None, *, uncertain_names: bool = False,
                keep: Collection[str] = ()) -> tuple[pa.Array, dict[str, int]]:
    """Scrub many notes: the scrubbed texts as a pyarrow string array (nulls stay null) and how many
    placeholders of each type were written. Options as for `scrub_texts`."""
    out, counts = scrub_texts(texts, langs, known, uncertain_names=uncertain_names, keep=keep)
    return pa.array(out, pa.string()), counts


# ---------------------------------------------------------------------------------------------------------
# Measurement against a labelled corpus
# ---------------------------------------------------------------------------------------------------------


@dataclass
class TypeScore:
    """Counts for one PHI type: overlap and exact matching, true positives, false positives, false negatives."""

    gold: int = 0
    predicted: int = 0
    tp_overlap: int = 0  # gold spans overlapped by a prediction of the same type
    fp_overlap: int = 0  # predictions overlapping no gold span of the same type
    tp_exact: int = 0  # gold spans predicted exactly (start, end, type)
    removed: int = 0  # gold spans overlapped by a prediction of any type

    @staticmethod
    def _ratio(a: int, b: int) -> float:
        return a / b if b else 1.0

    @property
    def recall(self) -> float:
        """Overlap recall."""
        return self._ratio(self.tp_overlap, self.gold)

    @property
    def precision(self) -> float:
        """Overlap precision."""
        return self._ratio(self.predicted - self.fp_overlap, self.predicted)

    @property
    def recall_exact(self) -> float:
        """Exact-match recall."""
        return self._ratio(self.tp_exact, self.gold)

    @property
    def precision_exact(self) -> float:
        """Exact-match precision."""
        return self._ratio(self.tp_exact, self.predicted)

    @property
    def removal(self) -> float:
        """Share of gold spans touched by any placeholder, whatever its type."""
        return self._ratio(self.removed, self.gold)


def score(gold: Sequence[Sequence[Span]], predicted: Sequence[Sequence[Span]]) -> dict[str, TypeScore]:
    """Per-type precision/recall of predicted spans against gold spans, note by note."""
    scores = {t: TypeScore() for t in PHI_TYPES}
    for g_spans, p_spans in zip(gold, predicted, strict=True):
        exact = set(p_spans)
        for g in g_spans:
            sc = scores.setdefault(g.type, TypeScore())
            sc.gold += 1
            same = any(p.type == g.type and p.start < g.end and g.start < p.end for p in p_spans)
            sc.tp_overlap += same
            sc.removed += same or any(p.start < g.end and g.start < p.end for p in p_spans)
            sc.tp_exact += g in exact
        for p in p_spans:
            sc = scores.setdefault(p.type, TypeScore())
            sc.predicted += 1
            if not any(p.type == g.type and p.start < g.end and g.start < p.end for g in g_spans):
                sc.fp_overlap += 1
    return scores
