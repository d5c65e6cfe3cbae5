"""English detection that generalises beyond listed cue words: names, places, phones, dates, IDs, addresses, IPs.

Called by `medspace.deid.text` for every English note (``scan(text, out, uncertain_names)``); it appends raw
detections ``(start, end, priority, type)`` that the caller merges with its own.

* **Names, Philter style**: every capitalised token (any Latin letters, accents included) is looked up in
  word classes derived from real-world statistics (``data/en_vocab.txt.gz``, built by
  ``bench/build_en_vocab.py``): common English words (wordfreq, CC BY-SA 4.0), dictionary words (web2),
  personal names (US Census 2010 surnames, Tzioumis first names), drug and ICD-10-CM words, GeoNames places.
  A run of capitalised tokens is a NAME when it holds a personal name that is no common word (Kamman,
  Renteria) or two tokens no list knows (Eser Ligio); after a title, a relation word or a salutation
  (Mr., Daughter, Dear) any capitalised token that is not a plain word is a NAME. With ``uncertain_names``
  (a policy option: recall over readability) every capitalised token that is neither a common nor a medical
  word is a NAME as well.
* **LOCATION**: a city or county (GeoNames) where it stands, if its name is no common word or personal
  name, else after "in", "from", "lives in"... or before ", <state or country>"; any capitalised run before
  "County", "Parish", "Township".
* **PHONE**: digit groups with separators (7 to 15 digits): international ones (+44...) checked with
  Google's `phonenumbers`; with a trunk 0, an area code in parentheses, space-separated groups, or a
  phone cue before them; other hyphenated groups are IDs (84-261-680).
* **DATE**: 17-May-2015, May-17-2015, ISO date-times, and a time attached to a date (02/23/2018 at 04:12 AM).
* **ID**: letters and digits mixed with hyphens (MRN-829800, AB-1234-XY), hyphenated digit groups.
* **ADDRESS**: street lines in other countries' formats (Calle Mayor 12, 12 rue de la Paix, Hauptstraße 5,
  Flat 3, 021 Kase põik 91, 449 Πεντέλης 210), GB/CA/NL/AU postcodes, streets led by an unknown word after an
  address cue (lives at Turjaška 46), intersections (corner of X and Y); every address then takes what follows
  it on its line (unit, place, region code, postcode, country: GeoNames countries and US states) and the short
  lines after it, and the building number or cross street before it (927 P.O. Box 50, Kerman and 3240 Meadow
  Drive); a postcode after a country at the end of a line (Norway 32045); zip code 86300.
* **IP**: IPv4 and IPv6 addresses (checked with `ipaddress`).
"""

from __future__ import annotations

import gzip
import ipaddress
import re
from bisect import bisect_right
from importlib import resources

import ahocorasick_rs
import phonenumbers

from medspace.deid import text_lexicon as L
from medspace.deid.text_trie import trie
from medspace.deid.word_fold import fold_word

_Raw = list[tuple[int, int, int, str]]

# Latin letters: upper case ones start a capitalised token; any letter continues it.
_UP = "A-Z\u00c0-\u00d6\u00d8-\u00de" + "".join(
    chr(c) for c in range(0x100, 0x250) if chr(c).isupper())
_UPC = f"[{_UP}]"
_LET = r"[^\W\d_]"
_TOK = rf"{_UPC}{_LET}*(?:(?:-|['’](?![sS](?!{_LET}))){_LET}+)*"  # not the possessive 's


def _load() -> tuple[dict[str, str], set[str], set[str], set[str]]:
    """The word classes, the strong place names, the context-only place names, the countries and US states."""
    # One block of newline-separated words per class: a split and a dict.fromkeys per block, no per-line
    # Python loop (about 0.1 s for 400,000 words).
    raw = resources.files("medspace.deid").joinpath("data/en_vocab.txt.gz").read_bytes()
    classes: dict[str, str] = {}
    strong: set[str] = set()
    weak: set[str] = set()
    countries: set[str] = set()
    for block in gzip.decompress(raw).decode("utf-8").split("\n== ")[1:]:
        k, _, body = block.partition("\n")
        words = body.split("\n")
        if k == "P":
            strong.update(words)
        elif k == "p":
            weak.update(words)
        elif k == "C":
            countries.update(words)
        else:
            classes.update(dict.fromkeys(words, k))
    strong.discard("")
    weak.discard("")
    classes.pop("", None)
    countries.discard("")
    return classes, strong, weak, countries


_CLASS, _PLACE, _PLACE_CTX, _COUNTRY = _load()
_ANY_PLACE = _PLACE | _PLACE_CTX
_PLACE_WORDS = frozenset(w for p in _ANY_PLACE for w in p.split())
# Words the lists miss that end a name or place run in clinical text: section words and abbreviations.
for _w in ("pt", "hpi", "ros", "pmh", "psh", "prn", "bid", "tid", "qid", "qd", "po", "iv", "im", "sq", "npo", "dnr",
           "cc", "hx", "dx", "rx", "tx", "sx", "fx", "ekg", "ecg", "ct", "mri", "cxr", "er", "ed", "icu", "ccu",
           "nicu", "pacu", "or", "md", "rn", "np", "pa", "dob", "mrn", "ssn", "bp", "hr", "rr", "temp", "wbc",
           "hgb", "hct", "plt", "bmp", "cmp", "cbc", "inr", "ptt", "bun", "cr", "na", "mg", "dr", "mr", "mrs",
           "ms", "st", "ave", "rd", "jr", "sr", "ii", "iii", "iv"):
    _CLASS.setdefault(_w, "s")
for _w in ("apt", "blvd", "ste", "bldg", "ctra", "ul", "str", "pl"):  # address abbreviations
    _CLASS[_w] = "s"
# Words of contact details and records that the census also lists as surnames (Fax: ..., Records were faxed).
for _w in ("fax", "tel", "records", "office", "mobile", "desk", "pager", "cell"):
    _CLASS[_w] = "s"
# Eponyms and other capitalised clinical words that the name lists also hold (Crohn, Parkinson).
for _w in L.NON_NAME_WORDS:
    _CLASS[_w.lower()] = "s"
_EPONYM_HEAD = re.compile(r"(?:'s)?[ \t]+(?i:disease|syndrome|sign|test|score|scale|criteria|classification|procedure"
                          r"|operation|maneuver|manoeuvre|reflex|phenomenon|palsy|disorder|lymphoma|tumou?r|ulcer"
                          r"|fracture|equation|formula|catheter|tube|needle|stain|view|position|index)(?![\w])")
_FOLDED: dict[str, str] = {}  # each token seen, folded (bounded): notes repeat their words


def _fold(tok: str) -> str:
    """The token as the word list holds it, folded as bench/build_en_vocab.py folds the list."""
    w = _FOLDED.get(tok)
    if w is None:
        if len(_FOLDED) > 200_000:
            _FOLDED.clear()
        w = _FOLDED[tok] = fold_word(tok)
    return w


_TITLES = ("mr", "mrs", "ms", "miss", "mx", "dr", "dra", "prof", "mister", "madam", "madame", "mme", "mlle",
           "doctor", "sr", "sra", "srta", "dona", "herr", "frau", "sir", "dame", "lady", "lord", "rev")
_RELATIONS = ("daughter", "son", "wife", "husband", "mother", "father", "brother", "sister", "spouse", "partner",
              "friend", "neighbor", "neighbour", "caregiver", "guardian", "aunt", "uncle", "niece", "nephew",
              "grandson", "granddaughter", "grandmother", "grandfather", "cousin", "boyfriend", "girlfriend",
              "fiance", "fiancee", "stepson", "stepdaughter", "mom", "dad", "child", "children", "sibling",
              "dear", "hi", "hello", "attn", "attention", "cc", "sincerely", "regards", "thanks", "patient",
              "pt", "name", "named", "contact", "proxy", "poa", "hcp", "pcp", "by", "with", "and", "to", "from")
_PLACE_CUES = ("in", "from", "near", "at", "to", "of", "lives in", "living in", "resides in", "resident of",
               "born in", "moved to", "moved from", "visiting", "visited", "travelled to", "traveled to",
               "city of", "town of", "village of", "county of", "city", "town", "hometown", "location", "outside",
               "between")
_STATE_AFTER = re.compile(
    r",[ \t]*(?:(?!MD|PA|DO|OR|IN|ME|OK|OH|HI)(?:AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|ID|IL|IA|KS|KY|LA|MA|MI|MN|MS"
    r"|MO|MT|NE|NV|NH|NJ|NM|NY|NC|ND|OR|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|PR|NSW|VIC|QLD|TAS|ACT|NT|ON|BC|AB|QC"
    r"|NB|MB|SK|PEI)(?![\w])|[A-Z]{2}[ \t]+\d{5}"
    r"|(?:Alabama|Alaska|Arizona|Arkansas|California|Colorado|Connecticut|Delaware|Florida"
    r"|Georgia|Hawaii|Idaho|Illinois|Indiana|Iowa|Kansas|Kentucky|Louisiana|Maine|Maryland|Massachusetts|Michigan"
    r"|Minnesota|Mississippi|Missouri|Montana|Nebraska|Nevada|New Hampshire|New Jersey|New Mexico|New York"
    r"|North Carolina|North Dakota|Ohio|Oklahoma|Oregon|Pennsylvania|Rhode Island|South Carolina|South Dakota"
    r"|Tennessee|Texas|Utah|Vermont|Virginia|Washington|West Virginia|Wisconsin|Wyoming|USA|United States|Canada"
    r"|Mexico|England|Scotland|Wales|Ireland|UK|United Kingdom|Australia|New Zealand|India|Germany|France|Spain"
    r"|Italy|Netherlands|Brazil|China|Japan|Philippines|Nigeria|Kenya|South Africa|Ontario|Quebec|Alberta"
    r"|British Columbia|Bavaria|Queensland|Victoria|New South Wales|Turkey|Poland|Portugal|Argentina|Colombia"
    r"|Chile|Peru|Venezuela|Sweden|Norway|Denmark|Finland|Belgium|Switzerland|Austria|Greece|Israel|Egypt"
    r"|Pakistan|Bangladesh|Vietnam|Thailand|Indonesia|Malaysia|Singapore|Korea|Russia|Ukraine)(?![\w]))")
_COUNTY_AFTER = re.compile(r"[ \t]+(?:County|Parish|Borough|Township|Municipality|District)(?![\w])")
_COUNTY_NEXT = frozenset("CPBTMD \t")
_FIRST_TOKEN = re.compile(_TOK)


def _is_caps(tok: str) -> bool:
    return len(tok) > 1 and tok.isupper()


def _place_in(toks: list[tuple[int, int, str]], places: set[str]) -> tuple[int, int] | None:
    """The longest stretch of the run's tokens (up to four) that is a place name: (first, last+1) indices."""
    folded = [t[2].lower() for t in toks]  # what _fold gives for ASCII tokens, without a call per token
    if not "".join(folded).isascii():
        folded = [_fold(t[2]) for t in toks]
    if _PLACE_WORDS.isdisjoint(folded):
        return None  # no token is a word of any place name
    n = len(toks)
    for size in range(min(n, 4), 0, -1):
        for i in range(n - size + 1):
            name = folded[i] if size == 1 else " ".join(folded[i:i + size])
            if name in places:
                return i, i + size
    return None


# The capitalised words of a note: Latin letters only, a class the engine checks faster than [^\W\d_].
_LATIN = "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f"
# Possessive: nothing follows a token, so the greedy reading is the match; the separator is one character class
# (an apostrophe unless it starts a possessive 's), so the engine tries no alternation after every token.
_TOKEN_RX = re.compile(rf"{_UPC}[{_LATIN}]*+(?:[-'’](?!(?<=['’])[sS](?![{_LATIN}]))[{_LATIN}]++)*+")
_RIGHT_RUN = re.compile(rf"(?:[ \t]+(?:{_UPC}\.[ \t]+)?{_TOK}(?![\w])){{0,5}}")
# A token written backwards: letters, then its capital; before it (after, backwards) a blank or the start.
# A letter run before a hyphen or apostrophe never gives letters back (a letter cannot be one): possessive.
_REV_LEFT = re.compile(rf"(?:[ \t]+(?:\.{_UPC}[ \t]+)?(?:{_LET}++['’-])*{_LET}*?{_UPC}(?=\s|$)){{0,5}}")
_TITLE_SET = frozenset(_TITLES)
_STRONG_REL = frozenset(_RELATIONS[:_RELATIONS.index("by")]) - {"patient", "pt", "name", "contact"}
_WEAK_REL = frozenset(_RELATIONS) - _STRONG_REL
_TITLE_REL = _TITLE_SET | _STRONG_REL
_CUE_WORDS = _TITLE_SET | frozenset(_RELATIONS)
# After these (the last two words before a capitalised run) the run names a place even when no list has it
# (lives in Noville, moved here from Martna).
_STRONG_PLACE_CUES = frozenset((
    "lives in", "living in", "live in", "resides in", "residing in", "resident of", "born in", "up in", "moved to",
    "moved from", "here from", "originally from", "based in", "returned to", "arrived at", "arrived in", "flew to",
    "travelled to", "traveled to", "trip to", "i'm in", "we're in", "home city", "city of", "town of", "village of",
    "native of", "relocated to", "relocating to"))
_PLACE_CUE_SET = frozenset(_PLACE_CUES) | _STRONG_PLACE_CUES
_KINDS: dict[str, str | None] = {}  # the class of each token seen, as written (bounded)


def _kind(tok: str) -> str | None:
    k = _KINDS.get(tok, "")
    if k != "":
        return k
    w = _fold(tok)
    k = _CLASS.get(w)
    if k is None and "-" in w and all(_CLASS.get(p) == "s" for p in w.split("-")):
        k = "s"  # Follow-up
    if len(_KINDS) > 200_000:
        _KINDS.clear()
    _KINDS[tok] = k
    return k


def _suspect(tok: str) -> bool:
    """A token that may be (part of) a name or a place: no common word, a personal name, or a place name."""
    k = _kind(tok)
    if tok.isupper():  # an unknown word in capitals is an abbreviation, unless a place (TAMPERE)
        return k == "n" or (k != "s" and len(tok) >= 4 and _fold(tok) in _ANY_PLACE)
    # A name that is also a word (Brown, Grace) is looked at too: capitalised mid-sentence it is a name. A
    # place that is also a frequent word (Fresno, York, Reading) is one only after a place cue: looked at too.
    return k != "s" or (len(tok) >= 4 and _fold(tok) in _ANY_PLACE and _fold(tok) not in _FACILITY)


_SUSPECTS: dict[str, bool] = {}  # whether each capitalised token seen is a suspect (bounded)
_SUFFIXED: set[str] = set()  # the suspects among them that end like a street (Hauptstraße, Keizersgracht)
# The suspects no list knows, long enough not to be an abbreviation (Noville, GRUTNESS; not NICU, Afib).
_UNKNOWN: set[str] = set()
# First names that are also words (Sophia, Grace) and words no list knows: a NAME as the subject of a verb of
# speech (Sophia shouted at John); an unknown one also before "is" or "was" (Motoko is from Osaka).
_SUBJECTS: set[str] = set()
# The suspects that are one only as places that are also words (Fresno, Reading): a place only after a cue
# (or "the", before a site: the Tulare VA).
_WORD_PLACES: set[str] = set()
_WORD_PLACE_CUES = frozenset(("in", "from", "near", "at", "to", "of", "visiting", "visited", "city", "town", "hometown",
                               "location", "outside", "between", "the", "In", "From", "At", "To", "The"))


def _cued_somewhere(text: str, tok: str) -> bool:
    """True if the token stands after a place cue word somewhere in the text."""
    i = text.find(tok)
    while i >= 0:
        if _prev_word(text, i) in _WORD_PLACE_CUES:
            return True
        i = text.find(tok, i + len(tok))
    return False


def _prev_word(text: str, i: int) -> str:
    """The word just before text[i] and one space (string slices: no pattern per occurrence), else ""."""
    if i < 3 or text[i - 1] != " " or not text[i - 2].isalpha():
        return ""
    start = i - 12 if i > 12 else 0
    j = text.rfind(" ", start, i - 1)
    w = text[j + 1 if j >= 0 else start:i - 1]
    return w.rsplit("\n", 1)[-1] if "\n" in w else w


_WEAK: set[str] = set()  # the suspects that are one only as names that are also words (Brown, Grace)
# Verbs whose subject is a person in a note: of speech, of reporting a symptom, of being seen or admitted.
_SPEECH_AFTER = re.compile(r"(?:[ \t]+(?:said|says|shouted|asked|told|replied|whispered|yelled|wrote|explained"
                           r"|(?P<clin>reports|reported|states|stated|denies|denied|complains|complained|endorses|endorsed"
                           r"|presents|presented|agrees|agreed|declined|refused|requested|tolerated|underwent"
                           r"|(?:is|was)[ \t]+(?:seen|admitted|discharged|evaluated|examined|transferred|referred"
                           r"|brought|instructed|counseled|counselled))"
                           r"|(?P<be>is|was))|(?P<voc>,[ \t]+(?:can|could|would|will|please|thank|thanks|the|my|your"
                           r"|I|we|you|how|what|did|do|are)))(?![\w])")
# A name written as names are: O'Neil, D'Angelo, McAllister, MacDonald, Smith-Jones (not Anti-Xa).
_NAMECASE = re.compile(r"[A-Z](?:['’][A-Z]|c[A-Z]|ac[A-Z])?[a-z]+(?:-[A-Z](?:['’][A-Z])?[a-z]{2,})*")


def _names(text: str, out: _Raw, uncertain: bool) -> tuple[list[str], list[str]]:
    """Names and places. Returns the words that may start a letter-led address, and the month names
    (May, JUN) that occur."""
    # Only runs of capitalised tokens around a suspect token are looked at: a note of common words costs one
    # findall and a (cached) lookup per distinct capitalised token.
    caps = set(_TOKEN_RX.findall(text))
    known = _SUSPECTS
    new = caps.difference(known)
    if new:
        if len(known) > 500_000:
            known.clear()
            new = caps
            _SUFFIXED.clear()
            _PLACE_ENDED.clear()
            _UNKNOWN.clear()
            _SUBJECTS.clear()
            _WEAK.clear()
            _WORD_PLACES.clear()
            _MULTI_HEADS.clear()
        for t in new:
            known[t] = sus = len(t) > 1 and _suspect(t)
            if sus and _kind(t) in ("w", "g") and _fold(t) not in _ANY_PLACE:
                _WEAK.add(t)
            if sus and _kind(t) == "s":
                _WORD_PLACES.add(t)
                if t in _MONTH_WORDS or t in _WEEKDAYS:
                    known[t] = False  # in March: a date
            if (len(t) >= 3 or t in ("St", "Mt", "Ft")) and not _is_caps(t) and _fold(t) in _MULTI_FIRST:
                _MULTI_HEADS.add(t)
            if sus and t.lower().endswith(_SUFFIX_ENDS):
                _SUFFIXED.add(t)
            if sus and _place_end(t):
                _PLACE_ENDED.add(t)
            if (len(t) >= 6 if t.isupper() else len(t) >= 5 and t[1:].islower()) and _kind(t) is None:
                _UNKNOWN.add(t)
            if len(t) >= 3 and t[1:].islower() and _kind(t) in (None, "g"):
                _SUBJECTS.add(t)
    suspects = list(filter(known.__getitem__, caps))
    if suspects and not _WORD_PLACES.isdisjoint(suspects):
        # A place that is also a word counts only after a cue: without one it costs the note no second look.
        suspects = [t for t in suspects if t not in _WORD_PLACES or _cued_somewhere(text, t)]
    gate = list(_ADDR_GATE.intersection(caps)) if not _ADDR_GATE.isdisjoint(caps) else []
    if not _SUFFIXED.isdisjoint(caps):
        gate += _SUFFIXED.intersection(caps)
    month = list(_MONTH_WORDS.intersection(caps)) if not _MONTH_WORDS.isdisjoint(caps) else []
    if not _COUNTRY_HEADS.isdisjoint(caps):
        heads = list(_COUNTRY_HEADS.intersection(caps))
        _country_codes(text, heads, out)
        _line_before_country(text, heads, out)
    if not _MULTI_HEADS.isdisjoint(caps):
        _cued_multi(text, _MULTI_HEADS.intersection(caps), out)
    if not _UNKNOWN.isdisjoint(caps):
        _cued_places(text, _UNKNOWN.intersection(caps), out)
    if not _SUBJECTS.isdisjoint(caps):
        _subjects(text, _SUBJECTS.intersection(caps), out)
    if not suspects:
        return gate, month
    # A name or address the main patterns found needs no second look, unless a capitalised word stands next
    # to it (then the run around it is decided here).
    closed: list[tuple[int, int]] = []
    for s, e in sorted({(s, e) for s, e, _, t in out if t == "NAME" or t == "ADDRESS"}):
        if closed and s < closed[-1][1]:
            closed[-1] = (closed[-1][0], max(e, closed[-1][1]))  # overlapping spans count once
        else:
            closed.append((s, e))
    closed = [(s, e) for s, e in closed if _closed(text, s, e)]
    if closed:
        # Every occurrence inside such spans (counted in C, on the spans joined): nothing to look at.
        inside = "\n".join([text[s:e] for s, e in closed])
        suspects = [t for t in suspects if text.count(t) != inside.count(t)]
        if not suspects:
            return gate, month
    # Sorted by first occurrence, the longer first where two start together (Mary-Ann, Mary), in two stable
    # sorts with built-in keys; only those left (most notes have none): set order varies with the hash seed,
    # and which word of a run comes first can decide the run.
    if len(suspects) > 1:
        suspects.sort(key=len, reverse=True)
        suspects.sort(key=text.find)
    seen: set[int] = set()
    n = len(text)
    # The closed spans are sorted and disjoint: only the last one starting at or before a token can hold it.
    starts = [s for s, _ in closed]
    for tok in suspects:
        weak = tok in _WEAK
        word_place = tok in _WORD_PLACES
        i = text.find(tok)
        while i >= 0:
            j = i + len(tok)
            if word_place and _prev_word(text, i) not in _WORD_PLACE_CUES:
                i = text.find(tok, j)
                continue
            # A name word that is also a common word leads to a run only mid-sentence or before another
            # capitalised word (most of them start sentences: fewer runs to look at).
            if i not in seen and (i == 0 or not text[i - 1].isalnum()) \
                    and (j >= n or not (text[j].isalnum() or text[j] == "_")) \
                    and not (closed and (c := bisect_right(starts, i)) and j <= closed[c - 1][1]) \
                    and (not weak or _mid_sentence(text, i) or (text[j:j + 1] == " " and text[j + 1:j + 2].isupper())):
                _run_at(text, i, j, seen, out, uncertain)
            i = text.find(tok, i + 1)
    return gate, month


def _closed(text: str, s: int, e: int) -> bool:
    """True if no capitalised word continues the span text[s:e] on either side (a cue word aside)."""
    if e + 1 < len(text) and text[e] in " \t" and text[e + 1].isupper():
        return False
    if s >= 2 and text[s - 1] in " \t" and text[s - 2].isalpha():
        k = s - 2
        while k > 0 and text[k - 1].isalpha():
            k -= 1
        if text[k].isupper() and text[k:s - 1].lower() not in _CUE_WORDS:
            return False  # but "Patient Flores": the cue the main patterns used
    return True


# English and Germanic toponymic endings: a word no list knows that ends so is a place after a place word
# (from Granbyville, to Kirkby), though many surnames end so too (Ashford, Milton): never without the cue.
_PLACE_ENDS = ("ton", "town", "ville", "burg", "burgh", "borough", "brough", "bury", "mouth", "port", "field", "ford",
               "haven", "chester", "cester", "caster", "wick", "wich", "by", "thorpe", "stad", "stadt", "heim",
               "hausen", "dorf", "ingen", "berg", "sted", "stead", "holm", "vik", "worth", "minster", "bridge",
               "pool", "dale", "combe", "hurst", "ness", "stow", "ham", "polis", "grad", "abad", "pur", "nagar")
# After these a run of capitalised common words is a place too (lives in Dot Lake, born in Reading): where
# one lives or was born is rarely anything else, unless a facility.
_HOME_CUES = frozenset(("lives in", "living in", "live in", "resides in", "residing in", "born in", "up in",
                        "originally from", "native of", "here from", "moved from", "resident of", "hometown"))
_FACILITY = frozenset(("hospital", "home", "house", "facility", "center", "centre", "clinic", "care", "living",
                       "unit", "ward", "hospice", "rehab", "shelter", "nursing", "assisted", "housing", "group",
                       "apartment", "apartments", "section", "room", "the", "a", "an", "our", "his", "her", "their"))
# A word that leads a place name (Saint Odile, Port Quillan, St. Albans, Sankt Johann).
_PLACE_HEADS = frozenset(("Saint", "St", "St.", "Ste", "Ste.", "Sankt", "San", "Santa", "Santo", "São", "Port",
                          "Fort", "Ft.", "Mount", "Mt.", "Lake", "Bad", "Glen"))
_LEAD_PLACE_CUES = frozenset(("in", "from", "near", "to", "at", "outside"))


# The words that may follow a place that is also a word (in Fresno last June, to York on Friday): after any
# other lower-case word the capitalised word heads a noun phrase (in Oral surgery, to Plan review).
_AFTER_WORD_PLACE = frozenset((
    "as", "on", "in", "at", "for", "with", "and", "or", "but", "last", "since", "until", "after", "before", "to",
    "from", "where", "when", "while", "yesterday", "today", "tomorrow", "daily", "weekly", "monthly", "this",
    "next", "over", "during", "the", "a", "an", "by", "near", "for", "about", "ago", "recently", "now", "then",
    "once", "twice", "again", "alone", "area", "where", "who", "which", "that", "is", "was", "are", "were",
    "has", "had", "have", "will", "would", "last", "every", "each", "several", "many", "some", "two", "three"))
_NEXT_WORD = re.compile(r" ([a-z]+)")


def _word_place_ends(text: str, e: int) -> bool:
    """True if a place that is also a word may end at e: no lower-case word follows, or one that no noun is."""
    m = _NEXT_WORD.match(text, e)
    return m is None or m.group(1) in _AFTER_WORD_PLACE


def _place_end(tok: str) -> bool:
    """True if the token, no common word, ends like an English or Germanic place name (Marlowburgh)."""
    w = tok.lower()
    return len(w) >= 5 and w.endswith(_PLACE_ENDS) and _kind(tok) in (None, "w")


_PLACE_ENDED: set[str] = set()  # the suspects seen for which _place_end holds (bounded with _SUSPECTS)


def _run_at(text: str, a: int, b: int, seen: set[int], out: _Raw, uncertain: bool) -> None:
    """Decide the run of capitalised tokens around the token text[a:b]."""
    # The capitalised tokens before (read backwards, from the token outwards) and after it, with initials.
    # Both patterns need a blank next to the token: most tokens stand alone (one character test each).
    s, e = a, b
    if a and text[a - 1] in " \t":
        # Only a letter (a word's last) or a full stop (an initial's) before the blanks can start a token
        # backwards: most runs follow a digit, a comma or a line start, and need no reversed copy.
        p = a - 2
        while p >= 0 and text[p] in " \t":
            p -= 1
        if p >= 0 and (text[p].isalnum() or text[p] == "."):
            left = _REV_LEFT.match(text[max(0, a - 100):a][::-1])
            if left is not None:
                s = a - left.end()
    if text[b:b + 1] in (" ", "\t"):
        right = _RIGHT_RUN.match(text, b)
        if right is not None:
            e = right.end()
    if s == a and e == b:
        toks = [(a, b, text[a:b])]
        seen.add(a)
    else:
        toks = [(m.start(), m.end(), m.group()) for m in _FIRST_TOKEN.finditer(text, s, e)]
        seen.update([t[0] for t in toks])  # the run's other suspect tokens lead here again
    # A street led by the run, a house number after it and an address cue before it (lives at Turjaška 46,
    # the station is on Brisas 2117); one character test first, as few runs are followed by a number.
    if e + 1 < len(text) and text[e] in " \t" and (text[e + 1].isdigit() or text[e + 1].islower()):
        st = _STREET_TAIL.match(text, e)
        if st is not None and toks and toks[0][2] not in _MONTH_WORDS and _fold(toks[-1][2]) not in _COUNTRY \
                and _ADDR_CUE.search(text, max(0, s - 12), s):
            out.append((s, st.end(), 1, "ADDRESS"))
            return
    # A cue word inside the run (Daughter Ligio) or just before it (daughter: Ligio, Mr. Kamman).
    cue = None
    while len(toks) > 1 and _fold(toks[0][2]) in _TITLE_REL:
        cue = _fold(toks[0][2])
        toks = toks[1:]
    if cue is None and len(toks) > 1 and toks[0][2].lower() in _LEAD_PLACE_CUES:
        cue = toks[0][2].lower()  # From Kraków, Poland: a sentence led by the cue
        toks = toks[1:]
    elif cue is None and len(toks) > 2 and _is_caps(toks[0][2]) and all([_is_caps(t) for _, _, t in toks]):
        # A line in capitals holds its cue (FOLLOW UP IN TAMPERE): the words before it are decided apart.
        for i in range(len(toks) - 2, 0, -1):
            if toks[i][2].lower() in _LEAD_PLACE_CUES:
                _classify_run(text, toks[:i], out, uncertain)
                cue = toks[i][2].lower()
                toks = toks[i + 1:]
                break
    s = toks[0][0]
    if cue is None:
        words = text[max(0, s - 30):s].replace(":", " ").replace(",", " ").split()[-2:]
        if words:
            raw = words[-1].rstrip(".")
            last = raw.lower()
            two = f"{words[0].lower()} {last}" if len(words) == 2 else ""
            if two in _PLACE_CUE_SET:
                cue = two
            elif (last in _TITLE_SET and raw[:1].isupper()) or last in _STRONG_REL or last in _WEAK_REL \
                    or last in _PLACE_CUE_SET:
                cue = last
    e = toks[-1][1]
    after = text[e:e + 1]
    if cue in _PLACE_CUE_SET:
        if len(toks) <= 3 and after == "," and _STATE_AFTER.match(text, e):
            out.append((s, e, 1, "LOCATION"))
            return
        hit = _place_in(toks, _ANY_PLACE)
        if hit is not None and hit[1] - hit[0] == 1 and _in_name(toks, hit[0]):
            hit = None  # one word of a name that is also a town (change it to Celina IJzermans)
        elif hit is not None and hit[1] - hit[0] == 1 and _kind(toks[hit[0]][2]) == "s" and (
                hit[0] or not _word_place_ends(text, toks[hit[0]][1])):
            hit = None  # a word that is also a town, not right after the cue or before a noun (in Oral surgery)
        if hit is not None:
            i, j = hit
            out.append((toks[i][0], _place_tail(text, toks[j - 1][1]), 1, "LOCATION"))
            return
        n = 0
        while n < len(toks) and not (_kind(toks[n][2]) == "s" and len(toks[n][2]) > 1):
            n += 1
        if n and (cue in _STRONG_PLACE_CUES or any([t in _PLACE_ENDED for _, _, t in toks[:n]])):
            out.append((toks[0][0], _place_tail(text, toks[n - 1][1]), 1, "LOCATION"))
            return
        # Not a run of common words alone (follow up in Oral surgery): those only where _home_places looks.
        if cue in _HOME_CUES and not _is_caps(toks[0][2]) and len(toks) <= 3 \
                and all(_fold(t) not in _FACILITY for _, _, t in toks) and any(_kind(t) != "s" for _, _, t in toks):
            out.append((toks[0][0], toks[-1][1], 1, "LOCATION"))
            return
    if cue in _TITLE_SET or cue in _STRONG_REL or cue in _WEAK_REL:
        title = cue in _TITLE_SET
        keep: list[tuple[int, int, str]] = []
        for x in toks:
            if len(x[2]) == 1 and keep:
                keep.append(x)  # an initial (Đurđa J Jovanović)
                continue
            k = _kind(x[2])
            if (_is_caps(x[2]) and k is None) or (k == "s" and not (title and not keep)) \
                    or (k == "w" and not keep and not title):
                break
            keep.append(x)
        while keep and len(keep[-1][2]) == 1:
            keep.pop()
        strong = any(_kind(t) == "n" for _, _, t in keep)
        if keep and (title or strong or (cue in _STRONG_REL and any(_kind(t) is None for _, _, t in keep))):
            out.append((keep[0][0], keep[-1][1], 1, "NAME"))
            return
    # A run before ", <state>" or "County" is a place.
    # The pattern is tried only where one of its words' capitals (or more blanks) comes next.
    county = _COUNTY_AFTER.match(text, e) if (after == " " or after == "\t") and text[e + 1:e + 2] in _COUNTY_NEXT \
        else None
    if county is not None or (len(toks) <= 3 and after == "," and _STATE_AFTER.match(text, e)
                              and all(_kind(t) != "s" or _fold(t) in _ANY_PLACE for _, _, t in toks)):
        out.append((s, county.end() if county else e, 1, "LOCATION"))
        return
    if after in (" ", "\t", "'") and _EPONYM_HEAD.match(text, e):
        return  # Crohn disease, Babinski sign
    if (toks[-1][2] in _SITE_TOKENS or text[e:e + 1] == " ") and _place_before_site(text, toks, out):
        return
    _classify_run(text, toks, out, uncertain)


# After a place, the site it names (the Fresno clinic, the Tulare VA, Visalia General, the Ames area).
_SITE_TOKENS = frozenset(("VA", "General", "Memorial", "Regional", "Medical", "Community", "Hospital", "Clinic",
                          "Area", "Campus"))
_SITE_AFTER = re.compile(r"[ \t]+(?:clinic|hospital|area|region|office|campus|branch|suburbs?|outskirts|metro"
                         r"|location|facility|plant|factory|school)(?![\w])")


def _place_before_site(text: str, toks: list[tuple[int, int, str]], out: _Raw) -> bool:
    """True (and the place kept) if the run is a place name, then a site word or the end before one."""
    n = len(toks)
    cut = n
    while cut > 1 and toks[cut - 1][2] in _SITE_TOKENS:
        cut -= 1
    if cut == n:  # one character test before the pattern: most runs end before no lower-case word
        e = toks[-1][1]
        if text[e:e + 1] != " " or not text[e + 1:e + 2].islower() or _SITE_AFTER.match(text, e) is None:
            return False
    start = 1 if n > 1 and toks[0][2] in ("The", "THE") else 0
    if cut == start:
        return False
    hit = _place_in(toks[start:cut], _ANY_PLACE)
    if hit is None or hit != (0, cut - start):
        return False
    if _kind(toks[start][2]) == "s" and text[max(0, toks[start][0] - 4):toks[start][0]].lower() != "the ":
        return False  # a common word leads the site's name, no "the" before (Regional Clinic)
    out.append((toks[start][0], toks[cut - 1][1], 1, "LOCATION"))
    return True


# Phrases that introduce a name: after the strong ones any capitalised word is taken (My name is Oskar),
# after the weak ones only one that is no common word (called Sunny, not called Pharmacy).
_INTRO = (("name is ", True), ("name's ", True), ("named ", True), ("call me ", True), ("calls me ", True),
          ("called ", False), ("known as ", True), ("I'm ", False), ("I am ", False))
_AFTER_INTRO = re.compile(rf"[ \t]*['\"‘“]?({_TOK}(?:[ \t]+(?:{_UPC}\.?[ \t]+)?{_TOK}){{0,3}})")


def _intro_names(text: str, out: _Raw, found: set[str]) -> None:
    """The names after the introducing phrases that occur in the note (found: see `scan`)."""
    for phrase, strong in _INTRO:
        if phrase in found:
            _intro_after(text, phrase, strong, out)


def _intro_after(text: str, phrase: str, strong: bool, out: _Raw) -> None:
    """The name after each occurrence of an introducing phrase."""
    i = text.find(phrase)
    while i >= 0:
        m = _AFTER_INTRO.match(text, i + len(phrase))
        if m is not None:
            keep: list[tuple[int, int]] = []
            for x in _FIRST_TOKEN.finditer(text, m.start(1), m.end(1)):
                tok = x.group()
                k = _kind(tok) if len(tok) > 1 else "i"
                if not keep and _fold(tok) in _TITLE_SET:
                    continue  # My name is Dr. Kamman
                if (_is_caps(tok) and k is None) or (k == "s" and (keep or not strong)) or (k == "i" and not keep):
                    break
                keep.append(x.span())
            while keep and keep[-1][1] - keep[-1][0] == 1:
                keep.pop()  # a trailing initial
            if keep:
                out.append((keep[0][0], keep[-1][1], 1, "NAME"))
        i = text.find(phrase, i + 1)


def _in_name(toks: list[tuple[int, int, str]], i: int) -> bool:
    """True if the run's token i stands next to a personal name or an unknown word in lower case (not a place)."""
    for j in (i - 1, i + 1):
        if 0 <= j < len(toks):
            t = toks[j][2]
            k = _kind(t) if len(t) > 1 and not t.isupper() else "s"
            if k == "n" or (k is None and len(t) > 2):
                return True
    return False


# What a word standing alone is, as far as the word itself decides (the steps of `_classify_run` and
# `_name_piece` for one token, worked out once per word written so; notes repeat their words):
_NOTHING, _PLACE_WORD, _NAME_WORD = 0, 1, 2  # whatever its context
_UNKNOWN_WORD = 3  # a name unless its context says no (quoted, a number after, a colon before); else uncertain
_WEAK_WORD = 4  # a name that is also a word: a name mid-sentence, with the same context checks
_UNCERTAIN_WORD = 5  # a name only with the uncertain_names option
_ALONE: dict[str, int] = {}  # bounded


def _alone_class(tok: str) -> int:
    """The context-free part of the decision on a capitalised token of two or more letters standing alone."""
    k = _kind(tok)
    if k == "s":
        return _NOTHING
    if _fold(tok) in _PLACE:
        return _PLACE_WORD
    if tok.isupper():
        return _NOTHING  # an abbreviation, or a name in capitals without another word (JOHN): not enough
    if k == "n":
        return _NAME_WORD  # the word alone or the piece it forms: the same span
    shape = len(tok) >= 3 and ((tok[1:].isalpha() and tok[1:].islower()) or _NAMECASE.fullmatch(tok) is not None)
    if k is None:
        return _UNKNOWN_WORD if shape and len(tok) >= 5 else _UNCERTAIN_WORD
    return _WEAK_WORD if shape and _fold(tok) not in _TITLE_SET else _NOTHING


def _classify_run(text: str, toks: list[tuple[int, int, str]], out: _Raw, uncertain: bool) -> None:
    if len(toks) == 1 and len(toks[0][2]) > 1:
        # A word standing alone (most runs): its class, then its context only where the class leaves it open.
        a, b, tok = toks[0]
        c = _ALONE.get(tok)
        if c is None:
            if len(_ALONE) > 200_000:
                _ALONE.clear()
            c = _ALONE[tok] = _alone_class(tok)
        if c == _NOTHING:
            return
        if c == _PLACE_WORD:
            out.append((a, b, 1, "LOCATION"))
        elif c == _NAME_WORD or (c == _UNCERTAIN_WORD and uncertain) \
                or (c == _UNKNOWN_WORD and (uncertain or _alone_ok(text, a, b))) \
                or (c == _WEAK_WORD and _mid_sentence(text, a) and _alone_ok(text, a, b)):
            out.append((a, b, 1, "NAME"))
        return
    # A run of words (John Smith): without a place in it its names depend on its words alone, so the names
    # found in a run so written are kept as token ranges and reused (notes repeat their names).
    words = tuple([t for _, _, t in toks])
    plans = _PLANS_UNCERTAIN if uncertain else _PLANS
    plan = plans.get(words)
    if plan is not None:
        for i, j in plan:
            out.append((toks[i][0], toks[j - 1][1], 1, "NAME"))
        return
    mark = len(out)
    if _classify_many(text, toks, out, uncertain) or len(toks) < 2:
        return  # a place in the run: its end depends on what follows it
    if len(plans) > 100_000:
        plans.clear()
    first = {a: i for i, (a, _, _) in enumerate(toks)}
    last = {b: i + 1 for i, (_, b, _) in enumerate(toks)}
    plans[words] = tuple([(first[a], last[b]) for a, b, _, _ in out[mark:]])


_PLANS: dict[tuple[str, ...], tuple[tuple[int, int], ...]] = {}  # the names in each run of words seen (bounded)
_PLANS_UNCERTAIN: dict[tuple[str, ...], tuple[tuple[int, int], ...]] = {}  # the same with uncertain_names


def _classify_many(text: str, toks: list[tuple[int, int, str]], out: _Raw, uncertain: bool) -> bool:
    """Decide a run of several tokens (or a lone initial); True if a place was found in it."""
    caps = all(len(t) > 1 and t.isupper() for _, _, t in toks)  # _is_caps, inlined
    # A one-letter token is an initial (Brenda P Lemon): part of a name between its other parts.
    kinds = [_kind(t) if len(t) > 1 else "i" for _, _, t in toks]
    if len(toks) == 1 and kinds[0] == "s":
        return False
    place = _place_in(toks, _PLACE)
    if place is not None and place[1] - place[0] == 1 and not caps and _in_name(toks, place[0]):
        place = None  # one word of a personal name that is also a town (Radomir Horvatinčić)
    if place is not None:
        i, j = place
        out.append((toks[i][0], _place_tail(text, toks[j - 1][1]), 1, "LOCATION"))
        toks = toks[:i] + toks[j:]
        kinds = kinds[:i] + kinds[j:]
    # Split the run at plain words; within each piece decide whether it is a name.
    piece: list[int] = []
    for idx in [*range(len(toks)), -1]:
        k = kinds[idx] if idx >= 0 else "s"
        if idx >= 0 and caps and k is None:
            k = "s"  # an unknown all-capitals token is an abbreviation
        if k != "s":
            piece.append(idx)
            continue
        if piece:
            _name_piece(text, [toks[i] for i in piece], [kinds[i] for i in piece], out, uncertain, caps,
                        len(toks) == 1)
        piece = []
    return place is not None


def _mid_sentence(text: str, a: int) -> bool:
    """True if text[a] follows a word, number or comma of the same sentence (not a line or sentence start)."""
    k = a - 1
    while k >= 0 and text[k] in " \t":
        k -= 1
    return k >= 0 and (text[k].isalnum() or text[k] in ",–-")


_QUOTES = frozenset("\"'“”‘’")
# What a word alone is not followed by if it is a name: a dose (Zorbex 5 mg), a value (Temp 37.2), a year.
_UNKNOWN_ALONE = re.compile(r"(?![ \t]*\d)")


def _alone_ok(text: str, a: int, b: int) -> bool:
    """True if the context of a word standing alone allows a name: not quoted, no number after, no colon before."""
    return text[b:b + 1] not in _QUOTES and _UNKNOWN_ALONE.match(text, b) is not None \
        and ":" not in text[max(0, a - 2):a]


def _name_piece(text: str, toks: list[tuple[int, int, str]], kinds: list[str | None], out: _Raw,
                uncertain: bool, caps: bool, alone: bool = False) -> None:
    if alone and not caps:
        # A capitalised word standing alone that no list holds as a common word: a name mid-sentence (says
        # Brown, leave me Batirbek), and an unknown one anywhere (Antonsson began writing), unless quoted (a
        # title) or a title word; we trade some precision for recall.
        a, b, tok = toks[0]
        k = kinds[0]
        if len(tok) >= 3 and ((tok[1:].isalpha() and tok[1:].islower()) or _NAMECASE.fullmatch(tok) is not None) \
                and text[b:b + 1] not in _QUOTES \
                and (len(tok) >= 5 if k is None else k in ("w", "g") and _mid_sentence(text, a)
                     and _fold(tok) not in _PLACE and _fold(tok) not in _TITLE_SET) \
                and _UNKNOWN_ALONE.match(text, b) is not None \
                and ":" not in text[max(0, a - 2):a]:
            out.append((a, b, 1, "NAME"))
            return
    # A surname that is also a word (Brown) is a name only after another part of it, or right before a
    # personal name (Calan Stevenson); a given name that is also a word (Mark) only before another part.
    while toks and (kinds[0] == "i" or (kinds[0] == "w" and (len(kinds) < 2 or kinds[1] != "n"))):
        toks, kinds = toks[1:], kinds[1:]
    # Two given names that are also words (Royale Moïse), one and a surname that is also a word (Catalina
    # Speer), or an unknown word and a given name (Krisztián Péter) are a name.
    pair = not caps and len(kinds) == 2 and kinds[0] in ("g", None) and kinds[1] in ("g", "w")
    while toks and (kinds[-1] == "i" or (kinds[-1] == "g" and "n" not in kinds and not pair)):
        toks, kinds = toks[:-1], kinds[:-1]
    if not toks:
        return
    strong = kinds.count("n")
    unknown = kinds.count(None)
    # In capitals only a listed personal name with another word is a name (JOHN SMITH, not HPI or CBC).
    ok = (strong >= 1 and len(toks) >= 2) if caps else (strong >= 1 or (unknown >= 1 and len(toks) >= 2) or pair)
    if ok:
        out.append((toks[0][0], toks[-1][1], 1, "NAME"))
    elif uncertain and not caps:
        for (a, b, _), k in zip(toks, kinds, strict=True):
            if k is None:
                out.append((a, b, 1, "NAME"))


# --- numbers: one pass ---------------------------------------------------------------------------------
#
# Speed: the engine skips ahead in C only to a character of the pattern's first character class, so every
# number-led rule (phones, dates, identifiers, addresses that start with a house number or postcode) sits in
# ONE alternation that starts with [digit + (]; the look-behinds that keep a rule from starting inside a word
# come right after that first character, and each rule is written as what follows it (DAY1: the rest of a
# day number whose first digit was just read).

_MON = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?"
        r"|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?|JAN|FEB|MAR|APR|MAY|JUNE?|JULY?|AUG|SEPT?|OCT|NOV|DEC)")
_TIME = (r"(?:,?[ \t]*(?:at|@|T)?[ \t]*(?:[01]?\d|2[0-3])[:h][0-5]\d(?::[0-5]\d(?:\.\d+)?)?"
         r"(?:[ \t]*[AaPp]\.?[Mm](?![\w]))?(?:[ \t]*(?:Z|[+-]\d{2}:?\d{2}|[A-Z]{3}))?)?")
_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_MONN = r"(?:0?[1-9]|1[0-2])"
_Y4 = r"(?:19|20)\d{2}"
_ORD = r"(?:st|nd|rd|th)"


def _date_after(d: str) -> str:
    """Numeric and day-month-name dates as what follows their first digit d (the rest of the day, month or
    year that d starts), with an attached time."""
    day = {"0": "[1-9]", "1": r"\d?", "2": r"\d?", "3": "[01]?"}.get(d, "")
    mon = {"0": "[1-9]", "1": "[0-2]?"}.get(d, "")
    alts = [rf"{day}{_ORD}?[-/. ]{_MON}\.?[-/., ]+(?:{_Y4}|\d{{2}})"]
    year = {"1": r"9\d{2}", "2": r"0\d{2}"}.get(d)
    if year is not None:
        alts.append(rf"{year}[-/.]{_MONN}[-/.]{_DAY}")
    alts.append(rf"{mon}[-/.]{_DAY}[-/.](?:{_Y4}|\d{{2}})")
    alts += [rf"{day}[-/.]{_MONN}[-/.]{_Y4}", rf"{day}{_ORD}[ \t]+of[ \t]+{_MON}",
             # 30.03.60, 27/07/90: a two-digit year after a day that is no month (the same mark twice)
             rf"{day}(?:/{_MONN}/|\.{_MONN}\.|-{_MONN}-)\d{{2}}",
             # 07Jul2002, 3-5 March (a range of days), 04-2002 (a month and a year)
             rf"{day}{_MON}(?:{_Y4}|\d{{2}})", rf"{day}[-–]{_DAY}[ \t]+{_MON}(?![a-z])"]
    if mon:
        alts.append(rf"{mon}-{_Y4}")
    if year is not None:
        # 1959-01 (ISO year and month), 19600212 (ISO basic): month and day checked by the pattern
        alts += [rf"{year}-(?:0[1-9]|1[0-2])", rf"{year}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"]
    return "(?:" + "|".join(alts) + rf"){_TIME}(?![\w]|[.:/-]\d)"


# A month and day without a year (8/29) is also a fraction, a score or a grade (5/5 strength, 7/10 pain):
# a date only after a date word, next to a time, or with a day that no score reaches.
_MD_CUE = re.compile(r"(?<![\w])(?i:on|since|from|to|until|till|through|thru|by|dated?|of|seen|admitted|discharged"
                     r"|dos|last|next|before|after|between|and|starting|started|effective|due)[ \t:]*$")
_MD_NOT = re.compile(r"[ \t]*(?i:pain|strength|power|murmur|scale|score|reflex|pulses?|motor|tablets?|tabs?"
                     r"|of|times|x|doses?|days|weeks|months|years|wks?|mos?|hrs?)(?![a-z])")
_CLOCK = re.compile(r"(?:[01]?\d|2[0-3]):[0-5]\d")


def _ok_month_day(text: str, s: int, e: int) -> _Result:
    """A month and day without a year (8/29): a date after a date word, next to a time, or past day 12."""
    if _MD_NOT.match(text, e) is not None:
        return None
    if int(text[text.index("/", s) + 1:e]) > 12 or _MD_CUE.search(text, max(0, s - 14), s) is not None \
            or _CLOCK.search(text, max(0, s - 12), min(len(text), e + 12)) is not None:
        return "DATE"
    return None


# Dates that start with a month name: 17 is the day, not a house number (May-17-2015, May 17th, MAY 17 2015).
_DATE_MON_RX = re.compile(
    rf"{_MON}(?:\.?[-/. ]{_DAY}{_ORD}?[-/., ]+(?:19|20)\d{{2}}|\.?[ \t]+{_DAY}{_ORD}(?![\w])"
    # November, 2007 / Jun '03 / February the 14th
    rf"|,[ \t]+(?:19|20)\d{{2}}|\.?[ \t]+['’]\d{{2}}|[ \t]+the[ \t]+{_DAY}{_ORD}(?![\w])){_TIME}(?![\w])")
_MONTH_WORDS = frozenset(w for m in ("January", "February", "March", "April", "May", "June", "July", "August",
                                     "September", "Sept", "October", "November", "December")
                         for w in (m, m[:3], m.upper(), m[:3].upper()))
_THE = re.compile(r"the[ \t]+$")
_MONTH_CUE = re.compile(r"(?<![\w])(?i:since|until|till|by|from|during|in|early|late|mid|last|next|this|before|after)"
                        r"[ \t-]+$")
_ORDINALS = ("first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|thirteenth|"
             "fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth|thirtieth")
# The day before "of <month>": the third of July, the 21st of May, the twenty-first of June.
_DAY_OF = re.compile(rf"(?<![\w])(?:the[ \t]+)?(?i:(?:twenty|thirty)-?[ \t]?)?(?i:{_ORDINALS}|\d{{1,2}}(?:st|nd|rd|th))"
                     r"[ \t]+(?:day[ \t]+)?of[ \t]+$")
_STREET_WORDS = ("calle", "avenida", "av", "avda", "paseo", "plaza", "carrera", "camino", "via", "viale", "piazza",
                 "corso", "largo", "rua", "travessa", "rue", "boulevard", "bd", "chemin", "allee", "allée", "impasse",
                 "quai", "route", "ulica", "ul", "strada", "calea", "carrer", "passeig")


# Street names in any alphabet: Latin, Greek and Cyrillic capitals; a short lower-case street word (út, vei, gate,
# põik, u.) counts only before a capitalised word or a number.
_UPX = _UP + "\u0386\u0388-\u038f\u0391-\u03a9\u0400-\u042f"
_TOKX = rf"[{_UPX}]{_LET}*(?:[-'’]{_LET}+)*"
_LOWX = (r"(?!(?:and|or|the|of|in|at|to|is|on|for|with|was|by)(?![\w]))[a-z\u00df-\u00f6\u00f8-\u00ff]{1,6}+\.?"
         rf"(?=[ \t]+(?:[{_UPX}]|\d))")
_FIRST_TOKX = re.compile(_TOKX)
# The same word where what follows can start with no letter, hyphen or apostrophe: giving letters back can
# never lead to a match, and the engine would try it letter by letter after every number and word.
_TOKX_ATOM = rf"[{_UPX}]{_LET}*+(?:[-'’]{_LET}++)*+"
_COUNTRY_HEADS = frozenset(f(c.split()[0]) for c in _COUNTRY for f in (str.capitalize, str.upper))
_STREET_ABBR = frozenset(("ctra", "ul", "str", "pl", "av", "avda", "bd", "rua", "via", "calle"))
_UNIT_AHEAD = r"(?:Apt|Apartment|Suite|Ste|Unit|Flat|Room|Floor|Bldg|Building|St)(?![\w])"
# What ends a street-and-number: the line, a comma, a unit, or the word "street" (Pärna 33 street in Rünga).
_EU_END = rf"[ \t]*(?:\n|,|$|\.(?![\w])|{_UNIT_AHEAD}|(?i:street|road|avenue)(?![\w]))"
_US_SUFFIX_WORDS = ["Street", "St", "Avenue", "Ave", "Road", "Rd", "Drive", "Dr", "Lane", "Ln", "Boulevard", "Blvd",
                    "Court", "Ct", "Way", "Place", "Pl", "Terrace", "Parkway", "Pkwy", "Circle", "Cir", "Highway",
                    "Hwy", "Square", "Trail", "Close", "Crescent", "Grove", "Gardens", "Mews", "Row", "Hill", "View",
                    "Green"]
_US_SUFFIX = ("(?:" + trie(_US_SUFFIX_WORDS) + ")"
              + r"\.?(?:,?[ \t]+(?:Apt|Unit|Suite|Ste|#|Flat)\.?[ \t]*#?[\w-]+)?(?![\w])")
_STREET_TRIE = "(?:" + trie([f(w) for w in _STREET_WORDS for f in (str.lower, str.capitalize, str.upper)]) + ")"
_ADDR_NUM = (
    # 12 rue de la Paix / 5, avenue Foch
    r"(?P<street>\d{0,4}[a-zA-Z]?,?[ \t]+" + _STREET_TRIE + r"\.?(?:[ \t]+[\w'’-]+){1,5})"
    # 12 High Street / 5 N Main St
    rf"|(?P<us>\d{{0,5}}[A-Za-z]?(?:[ \t]+\d{{1,5}}[A-Za-z]?)?[ \t]+(?:[NSEW]\.?[ \t]+)?"
    rf"(?:[A-Z][\w'.-]*+[ \t]+){{1,4}}?{_US_SUFFIX})"
    # 637 Strojírenská 1006: a number, a street name that is no common word, a number, at the end of a line
    # 637 Strojírenská 1006 / 021 Kase põik 91 / 449 Πεντέλης 210: a number, a street name (any alphabet, short
    # lower-case street words such as út, vei, gate), a number, then the end of the line, a comma, a unit word
    rf"|(?P<eu>\d{{0,4}}[ \t]+{_TOKX_ATOM}\.?(?:[ \t]+(?:{_TOKX_ATOM}\.?|{_LOWX})){{0,3}}"
    rf"[ \t]+\d{{1,5}}[a-zA-Z]?(?={_EU_END}))"
    # NL postcodes: 1234 AB Amsterdam
    r"|(?P<nl>(?<=[1-9])\d{3}[ \t]?(?!MG|ML|IU|MC|KG|CM|MM|HR|PM|AM|MU|UG|NG|GM|CC|DL)[A-Z]{2}[ \t]+" + _TOK + ")"
    # 75008 Paris / 10115 Berlin / 2000 Sydney: a postcode before a capitalised place
    rf"|\d{{3,4}}[ \t]+(?P<pc>{_TOK}(?:[ \t]+{_TOK})?)")
_ADDR_ONLY = re.compile(r"\d(?:" + _ADDR_NUM + ")")
_PHONE_END = r"(?![\w/]|-\d|[.:]\d)"  # a hyphen and a word may follow (4746-3459-Office)
_PHONE_REST = r"\d{1,5}(?:[ .-]\d{2,8}){1,4}" + _PHONE_END

# Rules for the main pattern of `medspace.deid.text` (rule, what follows the first character; "({G})" marks
# the whole match as the PHI): the engine reaches each number once for all rules. Under each digit, after
# the digit is read: `digit_first(d)` before the main rules (a date with its time), DIGIT_LAST after them; after
# "+" and "(": phones; after a capital letter: identifiers and postcodes that mix letters and digits.
def digit_first(d: str) -> list[tuple[str, str]]:
    """The rules tried under digit d before the main ones."""
    rules = [("DATE__en", rf"(?<![/.-]\d){_date_after(d)}({{G}})")]
    mon = {"0": "[1-9]", "1": "[0-2]?"}.get(d, "")
    if d != "0" or mon:
        # 8/29: the check decides (a fraction or a score has the same shape)
        rules.append(("DATE__enmd", rf"(?<![/.,:-]\d){mon}/{_DAY}(?![\w]|[.,:/-]\d|%)({{G}})"))
    return rules



DIGIT_LAST: list[tuple[str, str]] = [
    # Every address rule reads the number's digits and then a blank, a letter or a comma (or, for a Dutch
    # postcode, two capitals): the look-ahead fails most numbers once instead of once per rule.
    ("ADDRESS__en", r"(?=\d{0,5}+[A-Za-z]?,?[ \t]|\d{3}[A-Z]{2})(?:" + re.sub(r"\(\?P<\w+>", "(?:", _ADDR_NUM)
     + ")({G})"),
    ("PHONE__en", r"(?<![.+/:-]\d)\d{0,4}(?:[ .-]\d{2,8}){1,4}" + _PHONE_END + "({G})"),
    # identifiers: four digits or more and a letter (12AB345, 4746-3459-Office)
    # (possessive: no character given back can be what follows; a letter somewhere in the run is a letter
    # after its leading digits and hyphens)
    ("ID__en", r"(?<!-\d)(?=[\d-]*+[A-Za-z])(?=(?:[A-Za-z-]*+\d){3})[A-Za-z0-9]*+(?:-[A-Za-z0-9]++)*+(?![\w-])({G})"),
]
PLUS_RULE = ("PHONE__enplus", rf"(?<![\w.+/:-]\+)\d{{1,3}}[ .-]?(?:\(\d{{1,5}}\)[ .-]?)?{_PHONE_REST}({{G}})")
PAREN_RULE = ("PHONE__enparen", rf"(?<![\w.+/:-]\()\d{{1,5}}\)[ .-]?{_PHONE_REST}({{G}})")
# Five digits or more glued to letters (yo0047868, chartMRN04857211), a branch of the main pattern after each
# digit (DIGIT is replaced by it): the engine reaches every digit anyway; `_ok_glued` reads the letters before it.
GLUED_RULE = ("ID__englued", r"(?<=[A-Za-z]DIGIT)\d{4,}[A-Za-z0-9]*(?![\w-])({G})")  # after DIGIT
# Possessive repeats: tried after every capital letter, so a failure must not backtrack letter by letter (the
# letters given back could never be the digit or the boundary that follows).
CAPITAL_RULE = ("ID__encap", r"[A-Za-z]{0,5}+[-#]?\d[A-Za-z0-9]*+(?:-[A-Za-z0-9]++)*+(?![\w-])({G})")
GENERIC = ("ID__en", "ID__encap", "ID__englued")

_PHONE_CUE = re.compile(r"(?i:phone|tel|telephone|call|fax|mobile|cell|contact|pager|reach|#|no\.?|number|registered)"
                        r"[ \t:.#]*$")
_PHONE_AFTER = re.compile(r"[ \t]*[-(]?[ \t]*(?i:office|fax|mobile|cell|home|work|desk|phone|tel)(?![a-z])")
_SHORT_PHONE = re.compile(r"\d\d[ .-]\d\d[ .-]\d\d")
_DATE_SHAPE = re.compile(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}")
_TRUSTED_REGIONS = ("US", "GB", "AU", "FR", "IN", "CN", "CA")
_UNITS = re.compile(r"(?i)\d+(?:mg|mcg|ml|kg|g|l|mm|cm|m|hr|hrs|h|min|s|sec|d|wk|y|yo|x|mmhg|bpm|u|iu|meq|mmol|ng"
                    r"|st|nd|rd|th|am|pm|k|mm3|dl|cc|gtt|mo|yrs|lb|lbs|oz|in|ft|f|c)\d*")
_SPLIT_GROUPS = re.compile(r"[ .-]")
_Result = str | tuple[int, int, str] | None


def _phone_type(text: str, s: int, e: int, plus: bool, paren: bool) -> str | None:
    v = text[s:e]
    nd = sum(c.isdigit() for c in v)
    if nd == 6 and not plus and not paren and _SHORT_PHONE.fullmatch(v) \
            and (_PHONE_AFTER.match(text, e) or _PHONE_CUE.search(text, max(0, s - 24), s)):
        return "PHONE"  # a short local number in pairs, with a phone word next to it (87 47 98 office)
    if not 7 <= nd <= 15 or (not plus and not paren and _DATE_SHAPE.fullmatch(v)):
        return None
    if plus:
        try:
            ok = phonenumbers.is_possible_number(phonenumbers.parse(v, None))
        except phonenumbers.NumberParseException:
            ok = False
        return "PHONE" if ok else "ID"
    if paren or v[0] == "0" or (" " in v and "-" not in v and "." not in v):
        return "PHONE"
    if _PHONE_CUE.search(text, max(0, s - 24), s):
        return "PHONE"
    # Hyphen- or dot-grouped digits: a phone number where it is a valid one in a country whose plan is
    # strict; else an identifier (84-261-680).
    for region in _TRUSTED_REGIONS:
        try:
            if phonenumbers.is_valid_number(phonenumbers.parse(v, region)):
                return "PHONE"
        except phonenumbers.NumberParseException:
            continue
    if nd >= 8 and len(_SPLIT_GROUPS.split(v)) >= 3:
        return "ID"
    return None


def _ok_phone(text: str, s: int, e: int, plus: bool = False, paren: bool = False) -> _Result:
    kind = _phone_type(text, s, e, plus, paren)
    if e < len(text) and text[e] in " \t,":
        # The last group may be a house number or postcode: 1497 32 Chemin Des Bateliers.
        k = max(text.rfind(" ", s, e), text.rfind("-", s, e), text.rfind(".", s, e)) + 1
        am = _ADDR_ONLY.match(text, k)
        if am is not None:
            end = _address_ok(text, am)
            if end is not None:
                return (s if kind else k), end, "ADDRESS"
    return kind


# A phone number with its extension glued on (001-555-867-5309x123): no identifier.
_PHONE_X = re.compile(r"(?:\d{1,3}-)?\d{3}-\d{3}-\d{4}[xX]\d{1,5}")


def _ok_ident(text: str, s: int, e: int) -> _Result:
    v = text[s:e]
    if _PHONE_X.fullmatch(v) is not None:
        return "PHONE"
    nd = sum(c.isdigit() for c in v)
    if nd < 4 or nd == len(v) or not any(c.isalpha() for c in v) or _UNITS.fullmatch(v) or _DATE_SHAPE.fullmatch(v):
        return None
    return "ID"


def _ok_capital(text: str, s: int, e: int) -> _Result:
    pc = _POSTCODE.match(text, s)
    if pc is not None:  # SW1A 1AA, K1A 0B1
        return s, _address_end(text, pc.end()), "ADDRESS"
    return _ok_ident(text, s, e)


def _ok_glued(text: str, s: int, e: int) -> _Result:
    """An identifier that starts with letters glued to its digits: the whole token if the letters are few
    (yo0047868), else the digits (a word glued to a number: chartMRN04857211)."""
    k = s
    while k > 0 and s - k < 24 and text[k - 1].isascii() and text[k - 1].isalpha():
        k -= 1
    if k > 0 and (text[k - 1].isalnum() or text[k - 1] in "_-"):
        return None
    if text[k:s].lower() in ("x", "q", "rr", "hr", "bp", "spo", "sp"):
        return None  # x10000, q12345 read as a count or a vital sign
    return (k if s - k <= 4 else s), e, "ID"


def _ok_date(text: str, s: int, e: int) -> _Result:
    while text[e - 1] in " \t,":
        e -= 1
    # "the" before a date is part of it; searched for only where it stands (str.find first).
    the = _THE.search(text, max(0, s - 8), s) if text.find("the", max(0, s - 8), s) >= 0 else None
    return (the.start() if the else s), e, "DATE"


def _ok_address(text: str, s: int, e: int) -> _Result:
    m = _ADDR_ONLY.match(text, s)
    end = _address_ok(text, m) if m is not None else None
    return None if end is None else (s, end, "ADDRESS")


CHECKS = {
    "DATE__en": _ok_date,
    "DATE__enmd": _ok_month_day,
    "ADDRESS__en": _ok_address,
    "PHONE__en": _ok_phone,
    "PHONE__enplus": lambda t, s, e: _ok_phone(t, s, e, plus=True),
    "PHONE__enparen": lambda t, s, e: _ok_phone(t, s, e, paren=True),
    "ID__en": _ok_ident,
    "ID__encap": _ok_capital,
    "ID__englued": _ok_glued,
}


# --- addresses that do not start with a number, and the lines after an address ---------------------------

_STREET_SUFFIX = (r"(?:stra(?:ß|ss)e|str\.|weg|gasse|platz|allee|ring|damm|straat|laan|gracht|plein|kade|vej|gade"
                  r"|gatan|vägen|veien|gata)")
_SUFFIX_ENDS = ("straße", "strasse", "str", "weg", "gasse", "platz", "allee", "ring", "damm", "straat", "laan",
                "gracht", "plein", "kade", "vej", "gade", "gatan", "vägen", "veien", "gata")
_UNIT_WORDS = ("Flat", "Apt", "Apartment", "Suite", "Ste", "Unit", "Unité", "Piso", "Bloque", "Block", "Room")
_AU_STATES = ("NSW", "VIC", "QLD", "WA", "SA", "TAS", "ACT", "NT")
# Capitalised tokens that make a note worth the letter-led address pattern.
_ADDR_GATE = frozenset([w.capitalize() for w in _STREET_WORDS] + [w.upper() for w in _STREET_WORDS]
                       + list(_UNIT_WORDS) + list(_AU_STATES)
                       + ["USNS", "USNV", "USS", "USCGC", "PSC", "FPO", "APO", "DPO"]
                       + ["ZIP", "Zip", "Postcode", "Postal"])
_ADDR_LETTER_RX = re.compile(
    r"(?:"
    # Calle Mayor 12 / Via Roma 5
    r"(?i:" + "|".join(_STREET_WORDS) + r")\.?[ \t]+(?:(?:de|del|la|las|los|di|da|do|dos|des|du|le)[ \t]+)*"
    rf"{_UPC}[\w'’.-]*(?:[ \t]+{_UPC}[\w'’.-]*){{0,3}},?[ \t]+\d{{1,5}}[a-zA-Z]?(?![\w])"
    # Hauptstraße 5 / Keizersgracht 123
    rf"|{_UPC}[\w'’-]*{_STREET_SUFFIX}[ \t]*\d{{1,5}}[a-zA-Z]?(?![\w])"
    # Flat 3 / Apt. 4B / Suite 210 / Unit 5, then the street that follows on the line
    r"|(?:" + "|".join(_UNIT_WORDS) + r")\.?[ \t]*#?\d{1,5}[A-Za-z]?"
    r"(?:,?[ \t]+\d{1,5}[A-Za-z]?[ \t]+[\w'’.-]+(?:[ \t]+[\w'’.-]+){0,4})?"
    r"|(?:" + "|".join(_AU_STATES) + r")[ \t]+\d{4}(?![\w])"
    # US military and diplomatic mail: USNS Vajda / PSC 1708, Box 0531 / Unit 0283 Box 8578, then FPO AA 13523
    rf"|(?:(?:USNS|USNV|USS|USCGC)[ \t]+{_TOK}|PSC[ \t]+\d{{3,5}},?[ \t]+Box[ \t]+\d{{3,5}}"
    r"|Unit[ \t]+\d{3,5}[ \t]+Box[ \t]+\d{3,5})(?:[ \t]*,?[ \t]*\n?[ \t]*(?:FPO|APO|DPO)[ \t]+A[AEP][ \t]+\d{5})?"
    r"|(?:FPO|APO|DPO)[ \t]+A[AEP][ \t]+\d{5}(?!\d)"
    # ZIP: 4032 / the mailing ZIP on the chart is 93291 (the number only)
    r"|(?:ZIP|Zip|Postcode|Postal[ \t]+[Cc]ode|zip[ \t]+code|postal[ \t]+code|postcode)(?:[ \t]+[Cc]ode)?"
    r"[^\n\d]{0,30}?(?<![\w-])(?P<zip>\d{2,5}(?:[ -]\d{2,4})?)(?![\w-])"
    r")")
_POSTCODE = re.compile(r"(?:[A-Z]{1,2}\d[A-Z\d]?[ \t]?\d[A-Z]{2}|[A-Z]\d[A-Z][ \t]?\d[A-Z]\d)(?![\w])")
# The short lines after a street line: city, region, postcode, country (no lower-case sentence words).
# A line piece: a capitalised word (with its abbreviation dot), a code, a postcode, a short lower-case particle
# (Teixeira de Freitas, Bystré u Policky).
# Whole words only: a piece that may split a word (KARARA as KA RA RA) makes a failing line backtrack for long.
_LINE_PIECE = rf"(?:{_TOK}\.?|[A-Z0-9]{{2,8}}|\d{{3,6}}(?:-\d{{4}})?)(?![\w])"
_NEXT_LINE = re.compile(rf"[ \t]*,?[ \t]*\n(?:[ \t]*\n(?=[^\n]*\d))?[ \t]*,?[ \t]*({_LINE_PIECE}"
                        rf"(?:(?:[ \t]*,[ \t]*|[ \t]+)(?:{_LINE_PIECE}|[a-z]{{1,3}}(?=[ \t]+[A-Z]))){{0,5}})"
                        r"[ \t]*(?=\n|$|[.?!;](?:\s|$))")


def _address_end(text: str, e: int) -> int:
    """Where an address ending at e ends once the short lines after it (city, postcode, country) are added."""
    n = len(text)
    for _ in range(4):
        j = e
        while j < n and text[j] in " \t,":
            j += 1
        if j >= n or text[j] != "\n":
            break  # most addresses end their line's sentence: no pattern to try
        nxt = _NEXT_LINE.match(text, e)
        if nxt is None:
            break
        line = nxt.group(1)
        words = _FIRST_TOKEN.findall(line)
        if words and not line.isupper() and not any(c.isdigit() for c in line) and all(
                _CLASS.get(_fold(t)) == "s" and _fold(t) not in _ANY_PLACE for t in words) \
                and _fold(" ".join(words)) not in _COUNTRY:
            break
        e = nxt.end(1)
    m = _CODE_TAIL.match(text, e)
    return m.end() if m is not None else e


def _address_ok(text: str, m: re.Match[str]) -> int | None:
    """Where a number-led address ends (with the lines after it), or None if it is none (10000 Units)."""
    eu = m.group("eu")
    if eu is not None:
        first = _FIRST_TOKX.search(eu)
        if first is None or first.group().isupper() or (
                _kind(first.group()) == "s" and _fold(first.group()) not in _STREET_ABBR):
            return None  # 2 Tablets 500
    pc = m.group("pc")
    if pc is not None:
        first = _FIRST_TOKEN.match(pc)
        tok = first.group() if first else pc
        w = _fold(tok)
        if tok.isupper() or not (w in _ANY_PLACE or _CLASS.get(w) in (None, "n")):
            return None  # "10000 Units", "1000 MG"
    return _address_end(text, m.end())


def _addresses_letter(text: str, words: list[str], out: _Raw) -> None:
    # Matched only where one of the words that start such an address stands, found with str.find.
    for w in words:
        i = text.find(w)
        while i >= 0:
            if i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_"):
                m = _ADDR_LETTER_RX.match(text, i)
                if m is not None:
                    if m.group("zip") is not None:
                        out.append((m.start("zip"), m.end("zip"), 1, "ADDRESS"))
                    else:
                        out.append((i, _address_end(text, m.end()), 1, "ADDRESS"))
            i = text.find(w, i + 1)



# --- growing an address: what follows it on its line (unit, place, region, postcode, country), the building
# number and "the corner of" before it; streets led by a name after an address cue; postcodes after a country

_GROW_UNIT = re.compile(r"[ \t]*,?[ \t]*(?:Apt|Apartment|Suite|Ste|Unit|Flat|Room|Rm|Floor|Fl|Bldg|Building|Box"
                        r"|P\.?[ \t]?O\.?[ \t]*Box)\.?[ \t]*#?[ \t]*\d{1,5}[A-Za-z]?(?![\w])")
_GROW_CODE = re.compile(r"[ \t]*,?[ \t]*(?:\d{3,6}(?:[ -]\d{2,4})?(?![\w]|[-./]\d)"
                        r"|(?:[A-Z]{1,2}\d[A-Z\d]?[ \t]?\d[A-Z]{2}|[A-Z]\d[A-Z][ \t]?\d[A-Z]\d)(?![\w]))")
_GROW_SEP = re.compile(r"[ \t]*(,?)[ \t]*")
_GROW_TOK = re.compile(rf"(?:(?:de|del|la|las|los|da|do|dos|das|di|du|des|le|y|van|von|der|den|am|im|an|sur)[ \t]+)?"
                       rf"({_TOKX})\.?(?![\w])")
# Words of place names that are also plain words: they continue a place, they do not start one.
_GEO_WORDS = frozenset((
    "valley", "garden", "gardens", "heights", "east", "west", "north", "south", "park", "hill", "hills", "creek",
    "point", "bay", "beach", "harbour", "harbor", "springs", "falls", "lake", "mount", "mt", "port", "town", "city",
    "village", "strand", "region", "island", "islands", "upper", "lower", "new", "old", "great", "little", "saint",
    "st", "san", "santa", "fort", "glen", "vale", "wood", "woods", "field", "fields", "bridge", "ford", "haven",
    "county", "district", "province", "state"))
_NOT_REGION = frozenset(("pt", "hr", "bp", "rr", "er", "ed", "or", "md", "rn", "np", "cc", "dx", "hx", "rx", "tx",
                         "sx", "fx", "ct", "iv", "im", "po", "pm", "am"))


def _place_tok(tok: str, comma: bool, started: bool) -> bool:
    """May this capitalised token continue an address line as (part of) a place, region or country?"""
    f = _fold(tok)
    if f in _COUNTRY or f in _ANY_PLACE:
        return True
    k = _kind(tok)
    if tok.isupper():
        if len(tok) <= 3:  # a region code: ", GA", "Pomáz PE"
            return len(tok) > 1 and (comma or started) and f not in _NOT_REGION
        return k is None or k == "n" or k == "p" or ((comma or started) and f in _GEO_WORDS)  # SOUTH NEWDEGATE
    return k != "s" or (started and f in _GEO_WORDS)


def _grow_right(text: str, e: int) -> int:
    """Where an address ending at e ends on its line: units, places, region codes, postcodes, countries."""
    started = False
    for _ in range(10):
        m = _GROW_UNIT.match(text, e) or _GROW_CODE.match(text, e)
        if m is not None:
            e, started = m.end(), True
            continue
        sep = _GROW_SEP.match(text, e)
        pos = sep.end() if sep is not None else e
        comma = sep is not None and sep.group(1) == ","
        t = _GROW_TOK.match(text, pos)
        if t is None:
            break
        # A place of two or three words (South Africa, Rio de Moinhos) first, then one token.
        run = _GROW_RUN.match(text, pos)
        if run is not None:
            words = run.group().split()
            for size in range(min(len(words), 4), 1, -1):
                name = _fold(" ".join(words[:size]).rstrip(".,"))
                if name in _COUNTRY or name in _ANY_PLACE:
                    k = pos
                    for w in words[:size]:
                        k = text.index(w, k) + len(w)
                    e, started = k, True
                    break
            else:
                run = None
            if run is not None:
                continue
        if not _place_tok(t.group(1), comma, started):
            nxt = _GROW_TOK.match(text, t.end() + 1) if text[t.end():t.end() + 1] == " " else None
            if nxt is None or _fold(nxt.group(1)) not in _COUNTRY:
                break
            t = nxt  # a place the lists miss before its country (Suite 590 Valentines Uruguay)
        e, started = t.end(1), True
        if t.end() > e:
            break  # "France." ends the sentence (or an abbreviation ends the place)
    return e


_GROW_RUN = re.compile(rf"{_TOKX}(?:[ \t]+(?:(?:de|del|la|da|do|dos|di|du|y|van|von|am|an|sur)[ \t]+)?{_TOKX}){{1,3}}")
# What must stand just before a position for a pattern ending in "[ \t]+$" to match there ("$" also matches
# before a newline that ends the searched window).
_BLANK_NL = frozenset(" \t\n")
# "corner of X and Y" is the address of an intersection; "the" before it is not part of it.
_CORNER_BEFORE = re.compile(r"corner[ \t]+of[ \t]+$")
_AND_BEFORE = re.compile(rf"(?:^|(?<=[\s:]))({_TOKX})[ \t]+and[ \t]+$")
# The building number before a street number, perhaps with a street word in lower case (4733 40 avenue ...,
# 849 t Goylaan 46) or a punctuation mark before it.
_NUM_BEFORE = re.compile(r"(?:^|(?<=[^\w.,/-]))\d{1,6}(?:[ \t]+\d{1,6})?"
                         r"(?:[ \t]+(?!(?:and|or|the|of|in|at|to|is|on|for|with|was|by)[ \t])"
                         r"[a-z\u00df-\u00ff]{1,6}\.?)?"
                         r"[ \t]+$")
# A postcode after an address on its line or the next ones, perhaps after a short region code (", FA\n 46664").
_CODE_TAIL = re.compile(rf"[ \t]*,?[ \t]*\n?(?:[ \t]*{_TOKX}(?:[ \t]+{_TOKX}){{0,2}},?(?=[ \t]))?"
                        r"(?:[ \t]*,?[ \t]*[A-Za-z]{2,3}[ \t]*\n?)?[ \t]*,?[ \t]*"
                        r"\d{3,6}(?:[ -]\d{2,3})?(?![\w]|[ \t]*\d|[-./:]\d)")
# A unit-led address (Suite 842 ...) whose street stands before it on its line: from the house number on.
_STREET_BEFORE_UNIT = re.compile(
    rf"(?:^|(?<=[^\w.,/-]))\d{{1,6}}(?:[ \t]+\d{{1,6}})?(?:[ \t]+[a-z\u00df-\u00ff]{{1,6}}\.?)?"
    rf"(?:[ \t]+(?:{_TOKX}\.?|de|del|la|da|di|du|van|von|y)){{1,6}}[ \t]+$")
_UNIT_START = re.compile(_UNIT_AHEAD)
# The start of an address line before an address found inside it: a house number and up to four words
# (180 C/ Eras 47 Suite 356 ...).
_LINE_HEAD = re.compile(r"[^\w\n]*(\d{1,6}(?:[ \t]+[^\s.?!:;]+){0,4}[ \t]+)")
# The street line above a unit line (Ilmalankuja 57 Harrison Valley / Suite 769): capitalised words and a
# number, no sentence or label punctuation.
_STREET_LINE = re.compile(rf"[^\w\n]*(?:[^\n]*?(?::|[ \t](?:at|to|is|in|with))[ \t]+)?(?=[^\n]*\d)"
                          rf"((?:{_TOKX}\.?|\d{{1,6}}[a-zA-Z]?|[A-Z]/?|{_LOWX})"
                          rf"(?:[ \t]+(?:{_TOKX}\.?|\d{{1,6}}[a-zA-Z]?|[A-Z]/?|{_LOWX})){{1,6}})[ \t,]*")
_PAREN_WORD = re.compile(r"[ \t]*\([A-Z][a-z]{2,12}\)")
_SIDE = (rf"(?:\d{{1,6}}[ \t]+)*(?:P\.?O\.?[ \t]*Box[ \t]+\d{{1,6}}|{_TOKX}\.?)"
         rf"(?:[ \t]+(?!and[ \t])(?:{_TOKX}\.?|{_LOWX}|\d{{1,5}}[a-zA-Z]?\.?)){{0,5}}")
_CORNER = re.compile(rf"corner[ \t]+of[ \t]+{_SIDE}[ \t]+and[ \t]+{_SIDE}")


def _line_start(text: str, s: int) -> int:
    """Where an address found at s starts once the head of its line (a house number and a few words) or,
    for a unit line (Suite 769), the street line above it is added."""
    k = text.rfind("\n", 0, s) + 1
    if k < s and any(c.isalnum() for c in text[k:s]):
        m = _LINE_HEAD.fullmatch(text, k, s)
        return m.start(1) if m is not None else s
    if k > 1 and _UNIT_START.match(text, s) is not None:
        k0 = text.rfind("\n", 0, k - 1) + 1
        if k - k0 <= 80:
            m = _STREET_LINE.fullmatch(text, k0, k - 1)
            if m is not None:
                return m.start(1)
    return s


def _grow(text: str, out: _Raw) -> None:
    """Extend every address found so far over what belongs to it on its line (and the lines after it)."""
    done: set[tuple[int, int]] = set()
    for idx, (s, e, p, t) in enumerate(out):
        if t != "ADDRESS" or (s, e) in done:
            continue
        done.add((s, e))
        s0 = s
        # Each look-back below ends in blanks: searched only where a blank (or a newline) stands before s.
        m = _NUM_BEFORE.search(text, max(0, s - 24), s) if s > 0 and text[s - 1] in _BLANK_NL else None
        if m is not None:
            s = m.start()  # the building number before a street number or a P.O. Box (927 P.O. Box 50)
        m = _CORNER_BEFORE.search(text, max(0, s - 16), s) \
            if s > 0 and text[s - 1] in _BLANK_NL and text.find("corner", max(0, s - 16), s) >= 0 else None
        if m is not None:
            s = m.start()
        else:
            # Searched only where "and" stands in the window (few addresses follow a cross street).
            m = _AND_BEFORE.search(text, max(0, s - 40), s) \
                if s > 0 and text[s - 1] in _BLANK_NL and text.find("and", max(0, s - 40), s) >= 0 else None
            if m is not None and (_kind(m.group(1)) != "s" or text[max(0, m.start() - 1):m.start()] in ("", "\n")):
                s = m.start()  # a cross street: Kerman and 3240 Meadow Drive (any word at a line start)
        if s == s0 and s > 0 and text[s - 1] in " \t" and _UNIT_START.match(text, s) is not None:
            m = _STREET_BEFORE_UNIT.search(text, max(0, s - 80), s)
            if m is not None:
                s = m.start()
        s = _line_start(text, s)
        e2 = _address_end(text, _grow_right(text, e))
        m = _PAREN_WORD.match(text, e2)
        if m is not None and _fold(text[text.rfind(" ", 0, e2) + 1:e2]) in _COUNTRY:
            e2 = m.end()  # Cyprus (Greek)
        if s != s0 or e2 != e:
            out[idx] = (s, e2, p, t)


_STREET_TAIL = re.compile(rf"(?:[ \t]+{_LOWX}){{0,2}}[ \t]+\d{{1,5}}[a-zA-Z]?(?={_EU_END})")
_ADDR_CUE = re.compile(r"(?:(?<![\w])(?:at|on|to|of|is|near|and|address|Address)[ \t]*:?|:|^|\n)[ \t]*$")
_COUNTRY_CODE = re.compile(rf"((?:[ \t]+{_TOK}){{0,2}})[ \t]+(\d{{4,6}}(?:[ -]\d{{2,3}})?)[ \t]*(?=\n|$)")


# What a person has: "Marina's address", "Lee's song" (not "Crohn's disease", "the patient's address").
_BELONGINGS = frozenset((
    "address", "phone", "number", "email", "house", "home", "place", "car", "kid", "kids", "children", "wife",
    "husband", "son", "daughter", "mother", "father", "brother", "sister", "family", "partner", "boyfriend",
    "girlfriend", "friend", "birthday", "account", "song", "novel", "book", "office", "apartment", "flat"))
_TOKEN_BEFORE = re.compile(rf"(?:^|(?<=[^\w'’-])){_TOK}$")
_WORD_AFTER = re.compile(r"[a-z]+")


def _possessive_names(text: str, out: _Raw) -> None:
    """A capitalised personal name (or a word no list knows) before "'s" and a belonging is a NAME."""
    i = text.find("'s ")
    while i >= 0:
        w = _WORD_AFTER.match(text, i + 3)
        if w is not None and w.group() in _BELONGINGS:
            t = _TOKEN_BEFORE.search(text, max(0, i - 30), i)
            if t is not None and len(t.group()) > 1 and not t.group().isupper() \
                    and _kind(t.group()) in (None, "n", "g", "w") and _fold(t.group()) not in _CUE_WORDS:
                out.append((t.start(), i, 1, "NAME"))
        i = text.find("'s ", i + 1)


_LOWER_TITLE = re.compile(rf"(?<![\w.])(?:mr|mrs|ms|dr)\.[ \t]+({_TOK}(?:[ \t]+{_TOK}){{0,2}})")
_NUMBER_BEFORE = re.compile(r"\d[ \t]*$")


def _lower_titles(text: str, out: _Raw) -> None:
    """A name after a title written in lower case (with ms. Alma), not after a number (430 ms. Ejection)."""
    for end in ("s. ", "r. "):  # found with str.find: "Dr. " is frequent, "dr. " is not
        i = text.find(end, 1)
        while i >= 0:
            c = text[i - 1]
            if c == "m" or c == "d" or (c == "r" and i >= 2 and text[i - 2] == "m"):  # ms. mr. dr. / mrs.
                m = _LOWER_TITLE.match(text, i - 1 if c != "r" else i - 2)
                if m is not None:
                    _lower_title(text, m, out)
            i = text.find(end, i + 1)


def _lower_title(text: str, m: re.Match[str], out: _Raw) -> None:
    if not _NUMBER_BEFORE.search(text, max(0, m.start() - 3), m.start()):
        end = m.start(1)
        for t in _FIRST_TOKEN.finditer(text, m.start(1), m.end(1)):
            if len(t.group()) < 2 or _kind(t.group()) == "s" or _is_caps(t.group()):
                break
            end = t.end()
        if end > m.start(1):
            out.append((m.start(1), end, 1, "NAME"))


_CUE_AFTER = [[w] for w in ("from", "in", "near", "to", "at", "outside")]


def _subjects(text: str, toks: set[str], out: _Raw) -> None:
    """A first name or unknown word as the subject of a verb of speech (or, if unknown and long, of "is"/"was")."""
    n = len(text)
    for tok in toks:
        i = text.find(tok)
        while i >= 0:
            j = i + len(tok)
            if j < n and (text[j] == " " or text[j] == ",") \
                    and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] in "-'’")):
                m = _SPEECH_AFTER.match(text, j)
                # A vocative or an apposition only at the start of a sentence (Hope, can you ...).
                # A short unknown word before a clinical verb is more often a drug or an abbreviation; a word
                # after a place word is a place (from Granbyville presented).
                if m is not None and (m.group("be") is None or tok in _UNKNOWN) \
                        and (m.group("voc") is None or (not _mid_sentence(text, i) and _kind(tok) != "w")) \
                        and (m.group("clin") is None or len(tok) >= 5 or _kind(tok) is not None) \
                        and text[max(0, i - 8):i].rsplit(None, 1)[-1:] not in _CUE_AFTER:
                    out.append((i, j, 1, "NAME"))
            i = text.find(tok, i + 1)


_PREP_BEFORE = re.compile(r"(?<![\w])(?:in|to|near|[Ww]here:)[ \t]+$")
_UNKNOWN_RUN = re.compile(rf"(?:[ \t]+{_TOK}(?![\w]))*")


def _cued_places(text: str, toks: set[str], out: _Raw) -> None:
    """A word no list knows after "in", "to", "near", "Where:" is a place (year in Noville, returned to
    GRUTNESS), with the unknown words after it (Chandrexa de Queixa stops at "de")."""
    n = len(text)
    for tok in toks:
        i = text.find(tok)
        while i >= 0:
            j = i + len(tok)
            if (i == 0 or not text[i - 1].isalnum()) and (j >= n or not (text[j].isalnum() or text[j] == "_")) \
                    and i > 0 and text[i - 1] in _BLANK_NL and _PREP_BEFORE.search(text, max(0, i - 8), i):
                run = _UNKNOWN_RUN.match(text, j)
                if run is not None and run.end() > j:
                    for w in _FIRST_TOKEN.finditer(text, j, run.end()):
                        if _kind(w.group()) is not None:
                            break
                        j = w.end()
                out.append((i, j, 1, "LOCATION"))
            i = text.find(tok, i + 1)


_CITY_LINE = re.compile(rf"[^\w\n]*({_TOKX}(?:[ \t]+{_TOKX}){{0,3}})[ \t]*")
_COUNTRY_LINE = re.compile(rf"((?:[ \t]+{_TOK}){{0,2}})(?:[ \t]+\(\w+\)|[ \t]+\d{{4,6}})?[ \t]*(?=\n|$)")


def _line_before_country(text: str, heads: list[str], out: _Raw) -> None:
    """The line before a line that is a country (with its postcode) is a place: an address block's city
    (Gudhjem / Denmark, HARSTAD / Norway 32045), unless its words are all plain words."""
    for tok in heads:
        i = text.find(tok)
        while i >= 0:
            k = text.rfind("\n", 0, i)
            # The cheap test first: most occurrences do not start their line.
            m = _COUNTRY_LINE.match(text, i + len(tok)) if k > 0 and not any(c.isalnum() for c in text[k + 1:i]) \
                else None
            if m is not None \
                    and _fold(" ".join((tok + m.group(1)).split())) in _COUNTRY:
                k0 = text.rfind("\n", 0, k) + 1
                c = _CITY_LINE.fullmatch(text, k0, k)
                if c is not None:
                    words = c.group(1).split()
                    # Plain words too if one is a word of place names (Dot Lake / United States).
                    if _fold(c.group(1)) in _PLACE or any(_kind(w) != "s" for w in words) \
                            or (len(words) >= 2 and any(_fold(w) in _GEO_WORDS for w in words)):
                        out.append((c.start(1), c.end(1), 1, "LOCATION"))
            i = text.find(tok, i + 1)


def _country_codes(text: str, caps: list[str], out: _Raw) -> None:
    """A postcode after a country at the end of a line (Norway 32045)."""
    for tok in caps:
        i = text.find(tok)
        while i >= 0:
            m = _COUNTRY_CODE.match(text, i + len(tok))
            if m is not None and (i == 0 or not text[i - 1].isalnum()) \
                    and _fold(" ".join((tok + m.group(1)).split())) in _COUNTRY:
                code = m.group(2)
                if len(code) != 4 or not code.startswith(("19", "20")):  # not a year
                    out.append((m.start(2), m.end(2), 1, "ADDRESS"))
            i = text.find(tok, i + 1)


# --- IPs ---

_HEX_COLON = frozenset("0123456789abcdefABCDEF:")
_IP6 = re.compile(r"(?=[0-9A-Fa-f:]*:[0-9A-Fa-f]*:)[0-9A-Fa-f:]{2,39}(?:%\w+)?(?![\w:])")


def _ips(text: str, out: _Raw) -> None:
    # Anchored on the colons (str.find), which most notes have few of; an address has two or more.
    i = text.find(":")
    done = 0
    while i >= 0:
        if i >= done and i + 1 < len(text) and text[i + 1] in _HEX_COLON:
            j = i
            while j > 0 and i - j < 39 and text[j - 1] in _HEX_COLON:
                j -= 1
            m = None if j > 0 and (text[j - 1].isalnum() or text[j - 1] == "_") else _IP6.match(text, j)
            if m is not None:
                done = m.end()
                v = m.group().split("%")[0]
                if v.count(":") >= 2 and not (v.replace(":", "").isdigit() and "::" not in v):
                    try:  # a time such as 12:30:45 is no address
                        ipaddress.IPv6Address(v)
                        out.append((m.start(), m.end(), 1, "IP"))
                    except ValueError:
                        pass
        i = text.find(":", i + 1)


_TWO_COLONS = re.compile(r":[0-9A-Fa-f]*:")
_ABBR_CUES = ("ul.", "av.", "bd.", "zip code", "postal code", "postcode")


_PARTICLES = r"(?:van|von|de|da|di|del|della|der|den|du|le|la|ter|ten|bin|ibn|al)"
_PARTICLE_RIGHT = re.compile(rf"(?:[ \t]+{_UPC}\.)?(?:[ \t]+{_PARTICLES}){{1,2}}[ \t]+{_TOK}(?![\w])")
_PARTICLE_LEFT = re.compile(rf"(?:^|(?<=[^\w]))(?:[Vv]an|[Vv]on|[Dd]e|[Dd]a|[Dd]i|[Ll]e|[Ll]a)"
                            rf"(?:[ \t]+{_PARTICLES})?[ \t]+$")
_GENERATION = re.compile(r",?[ \t]+(?:Jr\.?|Sr\.?|II|III|IV)(?![\w])")
_NAMELIKE = frozenset(("n", "w", "g", None))


def _word_before(text: str, k: int) -> int:
    """The start of the capitalised word that ends at k, or -1."""
    j = k
    while j > 0 and (text[j - 1].isalpha() or text[j - 1] in "-'’"):
        j -= 1
    return j if j < k and text[j].isupper() and (j == 0 or not text[j - 1].isalnum()) else -1


def _name_lists(text: str, out: _Raw) -> None:
    """Capitalised words joined by commas and "and": all are names if one is a personal name and the others
    may be (Kawashima and Perry), or if two are (Rosing, English and Dominguez)."""
    i = text.find(" and ")
    while i >= 0:
        right = _FIRST_TOKEN.match(text, i + 5) if text[i + 5:i + 6].isupper() else None
        toks: list[tuple[int, int, str]] = []
        if right is not None:
            # The capitalised words before "and", back over ", " (a walk over a few characters, no search).
            k = i - 1 if text[i - 1:i] == "," else i
            j = _word_before(text, k)
            while j >= 0 and len(toks) < 6:
                toks.insert(0, (j, k, text[j:k]))
                if text[j - 2:j] != ", ":
                    break
                k = j - 2
                j = _word_before(text, k)
        if right is not None and toks:
            toks.append((right.start(), right.end(), right.group()))
            kinds = [_kind(t) if len(t) > 1 and not t.isupper() else "s" for _, _, t in toks]
            named = sum(k == "n" or k is None for k in kinds)
            end = right.end()
            if (end >= len(text) or not text[end].isalnum()) and all(_fold(t) not in _PLACE for _, _, t in toks) \
                    and ((named and all(k in _NAMELIKE for k in kinds)) or (len(toks) >= 3 and named >= 2)):
                out.extend([(a, b, 1, "NAME") for a, b, t in toks if t not in _MONTH_WORDS])
        i = text.find(" and ", i + 1)


_AFTER_UNIVERSITY = re.compile(rf"[ \t]+({_TOKX}(?:[ \t]+{_TOKX}){{0,3}})")


def _university_places(text: str, out: _Raw) -> None:
    """The place after "University of" (University of Tromsø, University of ΓΕΝΑΓΡΑ) in any script."""
    i = text.find("University of")
    while i >= 0:
        m = _AFTER_UNIVERSITY.match(text, i + 13)
        if m is not None:
            out.append((m.start(1), m.end(1), 1, "LOCATION"))
        i = text.find("University of", i + 13)


_PARTICLE_WORDS = frozenset(_PARTICLES[3:-1].split("|")) | {"Van", "Von", "De", "Da", "Di", "Le", "La"}
_NEXT_WORDS = _PARTICLE_WORDS | {"Jr", "Jr.", "Jr.,", "Sr", "Sr.", "II", "III", "IV"}
_COMPASS = frozenset(("North", "South", "East", "West")) | _PLACE_HEADS


def _name_particles(text: str, out: _Raw) -> None:
    """Grow each name over the particles and generational suffixes around it (Anthony van den Oord, van Gameren,
    Philip Weöres III)."""
    for n, x in enumerate(out):
        if x[3] != "NAME":
            continue
        s, e, p, t = x
        # The words on each side first (a split of a few characters): few names have a particle next to them.
        # Each word looked for is letters (and a dot), so it needs a letter next to the blank beside the name.
        nxt = text[e + 1:e + 6].split(" ", 1)[0].rstrip(",\n") if text[e + 1:e + 2].isalpha() else ""
        prev = text[max(0, s - 7):s - 1].rsplit(" ", 1)[-1] \
            if s > 1 and text[s - 1] == " " and text[s - 2].isalpha() else ""
        if not nxt and not prev:
            continue
        if nxt in _NEXT_WORDS or (len(nxt) == 2 and nxt[1] == "." and nxt[0].isupper()):
            m = _PARTICLE_RIGHT.match(text, e)
            if m is not None:
                e = m.end()
            m = _GENERATION.match(text, e)
            if m is not None:
                e = m.end()
        if prev in _PARTICLE_WORDS:
            m = _PARTICLE_LEFT.search(text, max(0, s - 16), s)
            if m is not None:
                s = m.start()
        elif prev in _COMPASS:
            s, t = s - 1 - len(prev), "LOCATION"  # North Nicolas: a place named after a person
        out[n] = (s, e, p, t)


# Lower-case or plain-word cues of an identifier that the main cue patterns (MRN, ID in capitals) miss, and
# file names of photos, recordings and scans (looked for only where a cue word or an underscore occurs).
_ID_CUES = ("mrn", "code", "template", "record", "account")
_AFTER_ID_CUE = re.compile(r"(?:[ \t]*(?:no\.?|number|#|:))?[ \t]*:?[ \t]*"
                           r"((?=[\w-]{4})(?=(?:[A-Za-z_-]*\d){3})[A-Za-z]{0,12}[-_#]?\d[A-Za-z0-9]*"
                           r"(?:[-_][A-Za-z0-9]+)*)(?![\w-])")
_FILE_RX = re.compile(r"\.(?:jpe?g|png|tiff?|bmp|gif|heic|pdf|dcm|wav|mp3|mp4|m4a|docx?)(?![\w])")
_STEM_BEFORE = re.compile(r"(?:^|(?<=[^\w.-]))[\w-]*_[\w.-]*$")


def _cued_ids(text: str, out: _Raw, found: set[str]) -> None:
    """Identifiers after a plain-word cue (study code CRIMSON-0447, mrn 2280) and file names of photos,
    recordings and scans whose name carries an underscore (marisol_frontal_2024.jpg); found: see `scan`."""
    for cue in _ID_CUES:
        if cue in found:
            i = text.find(cue)
            while i >= 0:
                j = i + len(cue)
                if not (i and text[i - 1].isalnum()) and not text[j:j + 1].isalnum():  # not barcode
                    m = _AFTER_ID_CUE.match(text, j)
                    if m is not None:
                        out.append((m.start(1), m.end(1), 1, "ID"))
                i = text.find(cue, j)
    if "_" in found:
        for f in _FILE_RX.finditer(text):
            i = f.start()
            m = _STEM_BEFORE.search(text, max(0, i - 80), i)
            if m is not None and m.start() < i:
                out.append((m.start(), f.end(), 1, "ID"))


def _place_tail(text: str, e: int) -> int:
    """The end of a place found to end at e, grown over linking words and the capitalised word after them
    (Castellón de la Plana, Sankt Johann im Pongau)."""
    if text[e:e + 1] != " " or not text[e + 1:e + 2].islower():
        return e
    m = _PLACE_LINK.match(text, e)
    while m is not None and m.group(1) not in _MONTH_WORDS and m.group(1) not in _WEEKDAYS:
        e = m.end()
        m = _PLACE_LINK.match(text, e)
    return e


_HOME_RUN = re.compile(rf"[ \t]+((?:(?:St|Ste|Mt|Ft)\.[ \t]+)?{_TOKX}(?:[ \t]+{_TOKX}){{0,2}})(?![\w])")
# The tails of the commonest home cues, whatever the case of their first letter (Lives in, lives in): each
# costs a search through the note.
_HOME_GATE = ("ives in", "orn in", "oved from", "esides in")


def _home_places(text: str, out: _Raw, found: set[str]) -> None:
    """The capitalised words after where one lives or was born, common words or not, in any script (lives in
    Dot Lake, born in Москва, moved from St. Albans), unless they name a facility; found: see `scan`."""
    n = len(text)
    for cue in _HOME_GATE:
        i = text.find(cue) if cue in found else -1
        while i >= 0:
            j = i + len(cue)
            if j + 1 < n and text[j] == " " and text[j + 1].isupper():
                _home_run(text, j, out)
            i = text.find(cue, j)


def _home_run(text: str, j: int, out: _Raw) -> None:
    m = _HOME_RUN.match(text, j)
    if m is not None:
        words = m.group(1).split()
        # An abbreviation in capitals (ICU, SNF) names a ward, not a place.
        if all(_fold(w) not in _FACILITY and w not in _MONTH_WORDS
               and not (_is_caps(w) and len(w) < 5 and _fold(w) not in _ANY_PLACE) for w in words):
            out.append((m.start(1), _place_tail(text, m.end(1)), 1, "LOCATION"))


_WORD_AT = re.compile(r"[^\s]+")
_BASED = re.compile(rf"(?:^|(?<=[^\w'’-]))(?:{_TOK}[ \t]+(?:(?:de|del|la|di|da|do|du|des|le)[ \t]+)*){{0,3}}{_TOK}$")


def _based_places(text: str, out: _Raw, suffix: str) -> None:
    """A capitalised word that is no common word before "-based" is a place (a Glastonbury-based plumber);
    before "-born" or " native" a place name, a word or not, or a word no list knows (a Cork-born nurse, a
    Boise native; not German-born)."""
    i = text.find(suffix)
    while i >= 0:
        m = _BASED.search(text, max(0, i - 60), i)
        if m is not None and not _is_caps(m.group()):
            words = [(w.start(), w.group()) for w in _WORD_AT.finditer(text, m.start(), i)]
            # The longest place name that ends the run (the Santervas de la Vega-born, a Boise native).
            for k in range(len(words)):
                if " ".join([_fold(x) for _, x in words[k:]]) in _ANY_PLACE or (k == len(words) - 1 and (
                        _kind(words[k][1]) is None or (suffix == "-based" and _kind(words[k][1]) != "s"))):
                    out.append((words[k][0], i, 1, "LOCATION"))
                    break
        i = text.find(suffix, i + 1)


# A run of two to four capitalised words after a place cue (in Des Moines, near St. Louis, to Coeur d'Alene):
# the words one by one may all be common words, which the per-word passes never look at. Looked for only
# where a note holds the first word of such a place, written as its capitalised tokens are.
_MULTI_FIRST = frozenset(["st", "ste", "mt", "ft"] + [p.split()[0] for p in _ANY_PLACE if " " in p and (all(
    _CLASS.get(w) == "s" for w in p.split()) or any(w[1:2] in ("'", "’") for w in p.split()[1:]))])
_MULTI_CUES = frozenset(("in", "at", "to", "from", "near", "outside", "visited", "between", "of", "In", "At", "From"))
_MULTI_AT = re.compile(rf"((?:St|Ste|Mt|Ft)\.[ \t]+)?({_TOK}(?:[ \t]+(?:d['’])?{_TOK}){{0,3}})")
_ABBR_HEADS = {"st.": ("st.", "saint"), "ste.": ("ste.", "sainte"), "mt.": ("mt.", "mount"), "ft.": ("ft.", "fort")}
_MULTI_HEADS: set[str] = set()  # the capitalised tokens seen that may start such a place (bounded with _SUSPECTS)


def _cued_multi(text: str, heads: set[str], out: _Raw) -> None:
    """The longest place name of two words or more that starts right after a place cue."""
    for tok in heads:
        i = text.find(tok)
        while i >= 0:
            if _prev_word(text, i) in _MULTI_CUES:
                m = _MULTI_AT.match(text, i)
                if m is not None:
                    _multi_at(text, m, out)
            i = text.find(tok, i + 1)


def _multi_at(text: str, m: re.Match[str], out: _Raw) -> None:
    head = m.group(1)
    words = [(w.start(), w.end(), w.group()) for w in _WORD_AT.finditer(text, m.start(2), m.end(2))]
    folded = [_fold(w) for _, _, w in words]
    if _PLACE_WORDS.isdisjoint(folded):
        return
    heads = _ABBR_HEADS[head.split()[0].lower()] if head else ("",)
    for k in range(len(words), 0 if head else 1, -1):
        tail = " ".join(folded[:k])
        if any((f"{h} {tail}" if h else tail) in _ANY_PLACE for h in heads):
            out.append((m.start(), words[k - 1][1], 1, "LOCATION"))
            return


# The linking words inside a place name (Castellón de la Plana, Sankt Johann im Pongau, Newcastle upon Tyne).
_PLACE_LINK = re.compile(rf"[ \t]+(?:de|de[ \t]+la|del|de[ \t]+los|da|do|dos|das|di|della|im|am|an[ \t]+der|upon"
                         rf"|sur|vor[ \t]+der|ob[ \t]+der|en|y|la)[ \t]+({_TOKX})(?![\w])")
_WEEKDAYS = frozenset(("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"))


# A header line that labels a person (PATIENT NAME: MARY O'CONNOR, Attending: KOWALCZYK, ANNA, Pt: WANG LI):
# the words after the colon, in capitals or not, up to the line's end or a credential.
_NAME_LABEL = re.compile(r"[ \t]*(?i:patient(?:[ \t]+name)?|pt(?:[ \t]+name)?|name|attending"
                         r"|physician|provider|pcp|surgeon|resident|author|dictated[ \t]+by|signed[ \t]+by"
                         r"|referring(?:[ \t]+physician)?|mother|father|guardian|spouse|next[ \t]+of[ \t]+kin"
                         r"|emergency[ \t]+contact)[ \t]*$")
_LABELLED = re.compile(rf"[ \t]*((?:{_UPC}\.?|{_TOK})(?:,?[ \t]+(?:{_UPC}\.?|{_TOK})){{0,3}})[ \t]*"
                       r"(?=\n|$|,[ \t]*[A-Z]{2})")


_CREDENTIAL_TAIL = re.compile(r"(?:,?[ \t]+(?:MD|M\.D\.|DO|RN|NP|PA|PA-C|PhD|MBBS|FNP|APRN|CNP|DNP|LPN|MSW|LCSW"
                              r"|FACP|FACS|PharmD|CRNA))+$")


_NO_VALUE = frozenset(("unknown", "none", "declined", "not", "no", "self", "same", "pending", "tbd", "unk", "n/a",
                       "anonymous", "unnamed", "refused", "deferred"))


# A colon before a value in capitals: found by the engine (its literal first character), not by a loop over
# every colon (Title-case names after these labels are the main patterns' cue names).
_COLON_CAPS = re.compile(r":[ \t]{0,3}(?=[A-Z\u00c0-\u00de]{2})")


def _labelled_names(text: str, out: _Raw) -> None:
    """The name after a label of a person at the start of a line, unless its words are all common words."""
    for c in _COLON_CAPS.finditer(text):
        i = c.start()
        k = text.rfind("\n", max(0, i - 40), i) + 1
        if (k > 0 or i < 40) and _NAME_LABEL.fullmatch(text, k, i) is not None:
            m = _LABELLED.match(text, i + 1)
            if m is not None:
                _labelled(text, m, out)


def _labelled(text: str, m: re.Match[str], out: _Raw) -> None:
    a, e = m.span(1)
    c = _CREDENTIAL_TAIL.search(text, a, e)
    if c is not None:
        e = c.start()  # Michael Robinson, MD
    words = [w for w in text[a:e].replace(",", " ").split() if len(w.rstrip(".")) > 1]
    if words and any(_kind(w) != "s" for w in words) and all(w.lower().rstrip(".,") not in _NO_VALUE for w in words):
        out.append((a, e, 1, "NAME"))


# A street in Greek or Cyrillic letters and its number (Λεωφόρος Πανεπιστημίου 219): the Latin rules miss it.
_NON_LATIN_STREET = re.compile(r"[\u0388-\u038f\u0391-\u03a9\u0400-\u042f][\u0370-\u03ff\u0400-\u04ff]+"
                               r"(?:[ \t]+[\u0370-\u03ff\u0400-\u04ff.]+){0,3}"
                               r"[ \t]+\d{1,5}[a-zA-Z\u0391-\u03c9]?(?![\w])")


# The fixed strings that decide whether a pass runs, found in one pass over the note (`medspace.deid.text`
# finds them with its lower-case cues): a substring test per string read the note some thirty times.
CUE_STRINGS = (*[p for p, _ in _INTRO], "'s ", "s. ", "r. ", *_ABBR_CUES, "corner of", " and ", "University of",
                *_ID_CUES, "_", *_HOME_GATE, "-based", "-born", " native")
_CUE_AC = ahocorasick_rs.AhoCorasick(CUE_STRINGS)


def scan(text: str, out: _Raw, uncertain_names: bool = False, found: set[str] | None = None) -> None:
    """Append the detections of one English note to out: (start, end, priority, type); found: the strings of
    CUE_STRINGS that occur in the note, if already known."""
    gate, months = _names(text, out, uncertain_names)
    if found is None:
        found = set(_CUE_AC.find_matches_as_strings(text, overlapping=True))
    if found:
        _intro_names(text, out, found)
    for w in months:
        # Matched only where a month word stands (str.find), not by a search through the whole note.
        s = text.find(w)
        while s >= 0:
            if s == 0 or not (text[s - 1].isalnum() or text[s - 1] in "_/.-"):
                m = _DATE_MON_RX.match(text, s)
                e = -1
                if m is not None:
                    e = m.end()
                    while text[e - 1] in " \t,":
                        e -= 1
                elif len(w) > 3 and w[1:].islower() and not text[s + len(w):s + len(w) + 1].isalnum() \
                        and _MONTH_CUE.search(text, max(0, s - 16), s) is not None:
                    e = s + len(w)  # a month alone after a time word: since November, in early March
                d = _DAY_OF.search(text, max(0, s - 40), s) if text[s - 3:s - 1] == "of" else None
                if d is not None:
                    out.append((d.start(), max(e, s + len(w)), 1, "DATE"))
                elif e > 0:
                    out.append((s, e, 1, "DATE"))
            s = text.find(w, s + 1)
    if "'s " in found:
        _possessive_names(text, out)
    if "s. " in found or "r. " in found:
        _lower_titles(text, out)
    # ul. Paderewskiego 35, zip code 86300
    for abbr in _ABBR_CUES:
        if abbr in found:
            gate.append(abbr)
    if gate:
        _addresses_letter(text, gate, out)
    if "ADDRESS" in [x[3] for x in out]:
        _grow(text, out)
    if "corner of" in found:
        for m in _CORNER.finditer(text):
            out.append((m.start(), m.end(), 1, "ADDRESS"))
    if ":" in text and _TWO_COLONS.search(text) is not None:  # an IPv6 address has two colons in a hex run
        _ips(text, out)
    if " and " in found:
        _name_lists(text, out)
    _name_particles(text, out)
    if "University of" in found:
        _university_places(text, out)
    if found:
        _cued_ids(text, out, found)
        # Each pass only where its cue can occur (most notes have none).
        _home_places(text, out, found)
    if ":" in text:
        _labelled_names(text, out)
    for suffix in ("-based", "-born", " native"):
        if suffix in found:
            _based_places(text, out, suffix)
    if not text.isascii():
        for m in _NON_LATIN_STREET.finditer(text):
            out.append((m.start(), m.end(), 1, "ADDRESS"))
