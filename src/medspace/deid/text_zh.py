"""Chinese detection for the free-text scrubber (`medspace.deid.text`) beyond its cue-word patterns: places and
names that no cue word announces.

* **LOCATION**: the cities, districts, counties, towns and villages of China, from the administrative
  division codes of the National Bureau of Statistics (as shipped by `cpca`, MIT) and the place names of
  jieba's dictionary (MIT), with suffix (杭州市, 西湖区, 忠县) or, where the short form is no ordinary word,
  without (杭州); found with an Aho-Corasick automaton (`ahocorasick_rs`), leftmost-longest. A place
  inside a hospital name is replaced too ("[LOCATION]第一人民医院"): the hospital name itself is not PHI, but
  the geographic subdivision smaller than a province that it reveals is (Safe Harbor). A province alone is
  not PHI (like a US state). An unlisted town or village (白马镇, 李家村) counts after a place or a cue
  word (来自, 家住...).
* **NAME without a cue**: a surname (the common Chinese surnames of `text_lexicon`) and one or two given
  characters in a name-like position: at the start of a clause or after a word that introduces a person
  (由, 与, 通知...), before punctuation, a function character or an ordinary word, and forming no ordinary
  word with the characters around it (jieba's dictionary: 陈旧, 方法, 病史, 分钟 are words, not names).

  Two given-name characters (class g of the data file: 丽, 娟, 鹏) make a name without a word before it; a
  name that jieba also lists as a word (李鹏: class n) counts after a role or before a verb of speech; with
  ``uncertain_names`` a surname and one or two characters that form no word need no context at all. Three
  characters whose first two are a word (温家宝: 温家) or whose last forms one with what follows (江泽民主席:
  民主) are a name where the clause or a word people do (说, 主席, 等) ends them; after a role or title a given
  character may also be one of the function characters of the stop list (记者许宏治, 医师刘前刚).
* **Names by character statistics** (recall first: the goal trades precision for recall): a surname and two
  plausible given-name characters (class g or h of the data file: jieba's three-character name entries against
  its other words) that form no word with the surname or what follows (邓小平理论, 王近山指挥), wherever they
  stand; after a surname that is also a function word (于, 和, 华) or a rarer one (class s: 萧, 慕) one of the
  two must be of class g. After a title a given name may be a word (导演袁和平), and a name that is a word
  (黄菊, 罗干) counts between a title and the clause's end.
* **References and lists**: a surname alone before a title (江主席, 张副主任), 老 or 小 before a surname (老闫);
  lists with 、 whose items are mostly a surname and one to three characters (even with no known name in
  them); names glued together in a list or byline (李鹏乔石朱镕基) next to a found name; names alone in
  brackets at a paragraph's end (（徐国春张雅文）) or alone on a line; a name before its sex in brackets
  (吴仪（女）).
* **Foreign names**: a run of transliteration characters (class t: 尔, 斯, 克, 拉) after a title or before a
  verb of speech (总统克雷库, 科恩说), and names in parts joined by · (约翰·克鲁吉).

  A name found once is a name wherever else it stands in the note, and a surname with one or two characters
  listed with 、 next to a name is one too (江泽民、李鹏、乔石).
* **Places that are also words** (新建, 城区, 大连: class `a` of the data file) count only with a place context
  (来自, 在, a province or another place before them, also in a list with 、, 人 or 市民 after them); a street
  right after a place (合肥市长江路) is part of it, as is the suffix of a unit renamed since (溧水县). A short form
  that forms a word with a neighbour is a place where that neighbour belongs to a word on its other side
  (省会长春, 济南军区). Provinces are matched and skipped, so that 河南开封市 is not read as 南开.
* **DATE without a year**: a month (十二月, 11月份, 元月, 农历正月), a month and day, or a day alone (３０日在...,
  自一日起, a day opening a clause: 。４日，), but not a duration or a count (术后3日, 3月余, 孕3月, 一日三次); 以来,
  前往 and 来华 after one are no duration.
* Full-width digits, letters and number punctuation (１２月３１日) are matched in their ASCII form
  (`fold_width`, one character for one, so offsets hold), for every rule of `text`.

The word lists are built by bench/build_zh_vocab.py into data/zh_vocab.txt.gz (sources and licences in its
header).
"""

from __future__ import annotations

import bisect
import gzip
import re
from collections.abc import Iterator
from importlib import resources
from itertools import chain

import ahocorasick_rs
import numpy as np

from medspace.deid import text_lexicon as L

_Raw = list[tuple[int, int, int, str]]  # (start, end, source priority, type), as in `text`

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"


def _by_char(words: tuple[str, ...], last: bool = False) -> dict[str, tuple[str, ...]]:
    """The words grouped by their first (last: their last) character. str.startswith(group[text[j]], j) gives
    the answer of str.startswith(words, j) after trying a few words instead of all (a few tenths of a
    microsecond for each of the many tests of a context word)."""
    groups: dict[str, list[str]] = {}
    for w in words:
        groups.setdefault(w[-1] if last else w[0], []).append(w)
    return {c: tuple(ws) for c, ws in groups.items()}


def _starts(text: str, j: int, group: dict[str, tuple[str, ...]]) -> bool:
    """text.startswith(words, j) for the words grouped by `_by_char` (j >= 0)."""
    return text.startswith(group.get(text[j:j + 1], ()), j)


def _ends(text: str, i: int, group: dict[str, tuple[str, ...]]) -> bool:
    """text.endswith(words, 0, i) for the words grouped by `_by_char(words, last=True)` (0 <= i <= len(text))."""
    return text.endswith(group.get(text[i - 1:i], ()), 0, i)


def _load() -> tuple[frozenset[str], ...]:
    sets: dict[str, set[str]] = {k: set() for k in "Ppawnghstuxfv"}
    raw = resources.files("medspace.deid").joinpath("data/zh_vocab.txt.gz").read_bytes()
    for line in gzip.decompress(raw).decode("utf-8").splitlines():
        if line and line[0] != "#":
            sets[line[0]].add(line[2:])
    return tuple(frozenset(sets[k]) for k in "Ppawnghstuxfv")


(PLACES, PLACE_SHORT, PLACE_AMBIGUOUS, WORDS, MAYBE_NAMES, GIVEN_CHARS, LOOSE_GIVEN, RARE_SURNAMES,
 TRANSLIT_CHARS, LOOSE_TRANSLIT, TRANSLIT_WORDS, FOREIGN_CITIES, GAP_TRANSLIT) = _load()
# A plausible given-name character: of class g or h of the data file.
NAME_CHARS = GIVEN_CHARS | LOOSE_GIVEN
# Provinces are matched too, and skipped: otherwise a place across a province's end hides the one after it
# (南开 in 河南开封市).
_PROVINCE_NAMES = frozenset(L.CN_PROVINCES) | frozenset(p + "省" for p in L.CN_PROVINCES)
_PLACES_AC = ahocorasick_rs.AhoCorasick(sorted(PLACES | PLACE_SHORT | PLACE_AMBIGUOUS | _PROVINCE_NAMES
                                               | FOREIGN_CITIES),
                                        matchkind=ahocorasick_rs.MatchKind.LeftmostLongest)
# What makes a place that is also an ordinary word (新建, 城区, 大连: see bench/build_zh_vocab.py) a place: a
# province or another place right before it, a word of place or motion before it, a word of people or area
# after it.
_PROVINCE_ENDS = tuple(L.CN_PROVINCES) + tuple(p + "省" for p in L.CN_PROVINCES)
_CTX_BEFORE = ("来自", "家住", "住在", "现住", "居住", "籍贯", "户籍", "出生于", "生于", "位于", "地处", "本报",
               "新华社", "前往", "赴", "抵达", "飞抵", "返回", "途经", "到达", "到", "去", "回", "在", "于", "从", "至",
               "离开", "来到", "前往", "来自", "城市", "首都", "首府", "西北", "东北", "西南", "东南", "港城")
_CTX_AFTER = ("人", "籍", "市民", "市区", "地区", "一带", "境内", "街头", "港", "站", "机场", "等地", "市委", "县委",
              "区委", "市政府", "县政府", "区政府", "考察", "访问", "举行", "召开", "电", "讯",
              # what a place has or is known for (大连车站, 纽约股市, 张北地震, 合肥晚报)
              "灾区", "股市", "分行", "车站", "火车站", "开发区", "晚报", "日报", "时报", "地震", "周围", "附近",
              "郊区", "海关", "市场", "地铁", "当地", "以南", "以北", "以东", "以西", "西部", "东部", "南部", "北部",
              "城区", "古城", "中学", "小学", "农村", "乡镇", "地方",
              # an institution or the people of the place (大连旅客, 大同三医院, 纽约商交所, 保定一棉厂)
              "医院", "大学", "学院", "研究所", "研究院", "公司", "集团", "银行", "宾馆", "饭店", "酒店", "电视台",
              "剧院", "博物馆", "图书馆", "旅客", "职业", "师范", "商交所", "交易所", "证券", "警方", "农民", "工人",
              "学生", "群众", "干部", "一中", "二中", "三中", "一医院", "二医院", "三医院", "一棉", "二棉", "三棉",
              "艺术", "文化局", "教育局", "公安局", "卫生局", "法院", "检察院", "军分区", "驻军",
              "位于", "地处", "铁路", "陆军", "报社", "报》", "特困户", "灾民", "中小学")
# A city abroad (纽约, 莫斯科: GeoNames) counts with these too: a word of travel before it, or 市 or the time of
# the place after it.
_CITY_BEFORE = (*_CTX_BEFORE, "访问", "飞往", "赴", "前往", "转往", "驻")
_CITY_AFTER = (*_CTX_AFTER, "市", "时间", "当地")
_PROVINCE_ENDS_TO = _by_char(_PROVINCE_ENDS, last=True)
_CTX_BEFORE_TO = _by_char(_CTX_BEFORE, last=True)
_CTX_AFTER_AT = _by_char(_CTX_AFTER)
_CITY_BEFORE_TO = _by_char(_CITY_BEFORE, last=True)
_CITY_AFTER_AT = _by_char(_CITY_AFTER)


# Full-width digits, letters and the punctuation of numbers (．－／＋＠＃) map one-to-one to ASCII: a note is
# matched in its ASCII form, so every offset still holds (１２月３１日, １３８－００１３－８０００). The
# Chinese comma, colon and brackets stay: the cue patterns read them as they are.
_WIDE = "".join(map(chr, (*range(0xFF10, 0xFF1A), *range(0xFF21, 0xFF3B), *range(0xFF41, 0xFF5B)))) + "．－／＋＠＃"
_NARROW = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.-/+@#"
_FOLD = dict(zip(_WIDE, _NARROW, strict=True))
_WIDE_RX = re.compile(f"[{re.escape(_WIDE)}]")
_WIDE_CODES = np.array([ord(c) for c in _WIDE], dtype=np.uint32)


def fold_width(text: str) -> str:
    """The text with full-width digits, letters and number punctuation as ASCII (same length, same offsets)."""
    if text.isascii():
        return text
    if len(text) < 4096:
        # One str.replace per distinct wide character: a note holds a few (its digits), and str.translate
        # looks up every character of a non-ASCII text in a dict (three times slower).
        for c in set(_WIDE_RX.findall(text)):
            text = text.replace(c, _FOLD[c])
        return text
    if _WIDE_RX.search(text) is None:
        return text
    # A long note: numpy over the code points is several times faster than str.translate.
    a = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).copy()
    a[np.isin(a, _WIDE_CODES)] -= 0xFEE0
    return a.tobytes().decode("utf-32-le")


def _finditer_near(rx: re.Pattern[str], text: str, anchors: str, reach: int,
                   extent: int | None = None) -> Iterator[re.Match[str]]:
    """The matches of rx.finditer(text), for a pattern whose every match holds one of the anchor characters at
    most reach characters after its start: each search starts reach characters before the next anchor
    instead of trying every character of the note (look-behinds still see the text before it). extent: how
    many characters after its start a match (and its look-aheads) reads at most, when that is bounded."""
    pos = 0
    n = len(text)
    while True:
        nxt = n
        for c in anchors:
            k = text.find(c, pos, nxt)
            if k >= 0:
                nxt = k
        if nxt == n:
            return
        if extent is None:
            m = rx.search(text, max(pos, nxt - reach))
            if m is None:
                return
        else:
            # A match starting by the anchor reads nothing past its extent, so a search that stops there tells
            # whether one does; with none, the next can only start near the next anchor (an anchor with no match
            # no longer costs a search to the note's end).
            m = rx.search(text, max(pos, nxt - reach), nxt + extent)
            if m is None or m.start() > nxt:
                pos = nxt + 1
                continue
        yield m
        pos = m.end()


def _is_han(c: str) -> bool:
    return "\u3400" <= c <= "\u9fff" or "\uf900" <= c <= "\ufaff"


# A street right after a listed place: one to three characters and 路, 街, 大道, 大街 (长江路, 五一路).
_STREET = re.compile(f"(?:[{_HAN}0-9]{{0,3}}?)(?:大道|大街|路|街)(?![{_HAN}]?(?:口|头|边|上|灯|面|线|费|况))")


def _find_places(text: str, out: _Raw) -> None:
    prev_end = -1
    skip_to = 0
    for _, s, e in _PLACES_AC.find_matches_as_indexes(text):
        if s < skip_to:
            continue
        end = _place_at(text, s, e, prev_end)
        if end is None:
            # A rejected match hides the places that start inside it (达拉 in 抵达拉萨, 都安 in 首都安曼): look
            # again from its second character.
            for _, s2, e2 in _PLACES_AC.find_matches_as_indexes(text[s + 1:e + 10]):
                s2, e2 = s2 + s + 1, e2 + s + 1
                if s2 >= e:
                    break
                end = _place_at(text, s2, e2, prev_end)
                if end is not None and end > 0:
                    out.append((s2, end, 1, "LOCATION"))
                    prev_end = skip_to = end
            continue
        if end > 0:
            out.append((s, end, 1, "LOCATION"))
        prev_end = abs(end)


def _line_head(text: str, s: int, e: int) -> bool:
    """Whether [s, e) is alone at the head of a line, before a space, a number or the line's end (a table row:
    海口 -0.4 -3.3)."""
    return (s == 0 or text[s - 1] == "\n") and (
        e == len(text) or text[e] in "\n \u3000-+" or text[e].isdigit())


def _place_list_next(text: str, e: int) -> bool:
    """Whether a place that is no ordinary word follows after 、 (大同、运城: the first of a list of places)."""
    if text[e:e + 1] != "、":
        return False
    nxt = _PLACES_AC.find_matches_as_indexes(text[e + 1:e + 9])
    if not nxt or nxt[0][1] != 0:
        return False
    # A place that is no word (城区、郊区 and 新建、扩建 are words in a list).
    w = text[e + 1:e + 1 + nxt[0][2]]
    return w in PLACES or w in PLACE_SHORT


def _place_at(text: str, s: int, e: int, prev_end: int) -> int | None:
    """The end of the place matched at [s, e) (with a street or a unit's suffix), minus its end for a province
    (matched and skipped), or None where it is no place here."""
    w = text[s:e]
    if w in _PROVINCE_NAMES:
        return -e
    # In a list after a place (南宁、合肥) is a place context too.
    before = (s == prev_end or (s == prev_end + 1 and text[prev_end] == "、")
              or _ends(text, s, _PROVINCE_ENDS_TO)
              or _ends(text, s, _CTX_BEFORE_TO))
    if w in PLACE_AMBIGUOUS and not (before or _starts(text, e, _CTX_AFTER_AT)
                                     or _place_list_next(text, e)
                                     or _line_head(text, s, e)):
        return None
    if w in FOREIGN_CITIES and not (before or _ends(text, s, _CITY_BEFORE_TO)
                                    or _starts(text, e, _CITY_AFTER_AT)):
        return None
    # A short form must not be half of an ordinary word with a neighbour (三明 in 三明治), unless that
    # neighbour is part of a word on its other side (省会长春, 济南军区, 成都督战); a word of place before it
    # outweighs one it would form with the character before (自大 in 来自大连).
    if w not in PLACES and (
            (s > 0 and not before and text[s - 1:s + 1] in WORDS and text[s - 2:s] not in WORDS)
            or (text[e - 1:e + 1] in WORDS and (text[e:e + 2] not in WORDS or w[0] in _TOWN_FUNC)
                and not _starts(text, e, _CTX_AFTER_AT))):
        return None
    # A short form with the suffix of a unit the division list no longer has (溧水县, now 溧水区).
    if w not in PLACES and e < len(text) and text[e] in "县市区州盟旗" and text[e - 1:e + 1] not in WORDS:
        e += 1
    # A street of the place (南京路, 合肥市长江路) is part of it.
    st = _STREET.match(text, e)
    return e if st is None else st.end()


# An unlisted town or village: two to four characters and the suffix, after a listed place, a cue word, or the
# start of a clause. 镇 followed by 静/痛/定... is sedation or analgesia, not a town.
_TOWN_CUES = ("来自", "家住", "住在", "现住", "居住", "住址", "地址", "户籍", "籍贯", "出生于", "出生地", "住")
# 镇静, 镇痛 (sedation, analgesia), 乡村 are no place.
_NOT_AFTER = {"镇": ("静", "痛", "定", "咳", "吐", "压"), "乡": ("村", "镇", "下", "亲"), "村": ()}
_GROUP = re.compile(r"[一二三四五六七八九十\d]{1,3}组")
_NOT_TOWN = frozenset(("农村", "乡村", "城乡", "家乡", "故乡", "下乡", "新村", "城镇", "乡镇", "村镇", "市镇"))


# A street with no place before it (笋岗路): one to three characters and 路, 街, 大道, 大街, 巷 or 胡同 after a word
# of address (在, 位于, 家住, 地址) or before a house number (3号, 号楼); its name no ordinary word (在公路上,
# 在回家路上).
_ST_SUFFIX = "(?:大道|大街|胡同|路|街|巷)"
_ST_NAME = f"[{_HAN}]{{1,3}}?{_ST_SUFFIX}(?![{_HAN}]?(?:口|头|边|上|灯|面|线|费|况|道|段|旁|过|走))"
_STREET_CUE_RX = re.compile(f"(?:位于|家住|现住|住址|地址|住在|在|住)[:：]?({_ST_NAME})")
_STREET_NO_RX = re.compile(f"([{_HAN}]{{1,3}}{_ST_SUFFIX})(?=[0-9一二三四五六七八九十百]+号)")
# What _STREET_NO_RX needs, without the name that it tries at every Han character: a cheap test first.
_STREET_NO_GATE = re.compile(f"{_ST_SUFFIX}[0-9一二三四五六七八九十百]+号")
_ST_FUNC = frozenset("个这那每各全本该此多是了到由将把被和与及或的在为对从听使后我你他她它们其都即"
                     "着条段上下里内外边旁附近一二三四五六七八九十")


def _find_streets(text: str, out: _Raw, taken: list[tuple[int, int]]) -> None:
    if "路" not in text and "街" not in text and "巷" not in text and "同" not in text:
        return
    busy = sorted(taken)
    # The pattern of a name before a number is led by a Han class, which the regex engine tries at every Han
    # character: it starts from each street suffix instead, which ends a match at most four characters in.
    hits = _STREET_CUE_RX.finditer(text)
    if "号" in text and _STREET_NO_GATE.search(text):
        hits = chain(hits, _finditer_near(_STREET_NO_RX, text, "路街巷同道", 4))
    for m in hits:
        s, e = m.span(1)
        # Before a number the name starts where its first word does not reach back (沿着笋岗路3号).
        while e - s > 2 and (text[s] in _ST_FUNC or text[s - 1:s + 1] in WORDS):
            s += 1
        name = text[s:e].removesuffix("大道").removesuffix("大街").removesuffix("胡同").rstrip("路街巷")
        if (not name or not _ST_FUNC.isdisjoint(name) or name in WORDS or text[s:e] in WORDS
                or (text[e - 2:e] in WORDS and len(name) > 1 and text[s:e - 1] in WORDS)
                or _overlaps(busy, s, e)):
            continue
        out.append((s, e, 1, "LOCATION"))
        bisect.insort(busy, (s, e))


def _overlaps(spans: list[tuple[int, int]], s: int, e: int) -> bool:
    """Whether [s, e) overlaps one of the sorted spans (each shorter than 64 characters, as places are)."""
    k = bisect.bisect_left(spans, (s - 64, 0))
    while k < len(spans) and spans[k][0] < e:
        if spans[k][1] > s:
            return True
        k += 1
    return False


def _find_towns(text: str, out: _Raw, places: list[tuple[int, int]]) -> None:
    if "村" not in text and "镇" not in text and "乡" not in text:
        return
    ends = {e for _, e in places}
    hits = sorted(i for ch in "镇乡村" for i in _all(text, ch))
    for i in hits:
        e = _town_at(text, i, ends)
        if e is not None:
            out.append((e[0], e[1], 1, "LOCATION"))
            ends.add(e[1])


def _all(text: str, ch: str) -> list[int]:
    out = []
    i = text.find(ch)
    while i >= 0:
        out.append(i)
        i = text.find(ch, i + 1)
    return out


# After a clause boundary only: a name holding a function, measure or pronoun character is a phrase (这个村,
# 多个村, 特别是村), as is one ending in an ordinary word (自然村, 贫困村, 文明村), or a suffix that starts a word
# of village life (村民, 村里, 乡政府).
_TOWN_FUNC = frozenset("个这那每各全本该此多是了到由将把被和与及或的在为对从听使后我你他她它们其都即")
_SUFFIX_WORDS = ("村民", "村委", "村里", "村庄", "村级", "村集", "村电", "村社", "村寨", "村落", "村村", "村户", "村干",
                 "乡情", "乡亲", "乡土", "乡间", "乡党", "乡政", "乡里", "乡（", "镇政", "镇党", "镇（")


def _phrase_town(text: str, start: int, i: int) -> bool:
    return (not _TOWN_FUNC.isdisjoint(text[start:i]) or text[i - 2:i] in WORDS or text[start:start + 2] in WORDS
            or text.startswith(_SUFFIX_WORDS, i))


def _town_at(text: str, i: int, ends: set[int]) -> tuple[int, int] | None:
    """The town or village whose suffix is at i: its name starts right after a listed place, a cue word or a
    clause boundary, two to four characters back."""
    if text.startswith(_NOT_AFTER.get(text[i], ()), i + 1):
        return None
    start = None
    strong = unit = False
    for k in (2, 3, 4):
        s = i - k
        if s < 0 or not _is_han(text[s]):
            break
        # After a listed place, a cue, or the suffix of a larger unit (该县城关镇, 这个县孝敬乡).
        strong = s in ends or text.endswith(_TOWN_CUES, 0, s)
        unit = s > 0 and text[s - 1] in "县市区镇乡"
        if strong or unit or s == 0 or not _is_han(text[s - 1]):
            start = s
            break
    if text[i - 1:i + 1] in _NOT_TOWN:
        return None
    if start is None or text[start:i + 1] in _NOT_TOWN or (
            not strong and (not _TOWN_FUNC.isdisjoint(text[start:i]) if unit else _phrase_town(text, start, i))):
        return _bare_town(text, i)
    e = i + 1
    grp = _GROUP.match(text, e) if text[i] == "村" else None
    return start, grp.end() if grp else e


def _bare_town(text: str, i: int) -> tuple[int, int] | None:
    """A town or village of two characters after ordinary text (如今的双泾村): neither its name, nor the whole,
    nor the name's last character with the suffix (农村, 乡镇), nor its first with the character before it is
    an ordinary word."""
    s = i - 2
    if s < 0 or not (_is_han(text[s]) and _is_han(text[s + 1])):
        return None
    name = text[s:i]
    if (not _TOWN_FUNC.isdisjoint(name) or name in WORDS or text[s:i + 1] in WORDS or text[i - 1:i + 1] in WORDS
            or text[s - 1:s + 1] in WORDS or text.startswith(_SUFFIX_WORDS, i) or text[i:i + 2] in WORDS):
        return None
    grp = _GROUP.match(text, i + 1) if text[i] == "村" else None
    return s, grp.end() if grp else i + 1


# --- dates smaller than a year: a month, a day, or both (Safe Harbor removes all elements of a date but the
# year). The cue-free numeric forms with a year are rules of `text`; these are the ones without a year or with a
# month but no day. ---

_HD = "一二三四五六七八九"
_MON_D = r"(?:1[0-2]|0?[1-9])"
_MON_H = f"(?:十[一二]?|[{_HD}]|元|正)"
_DAY_D = r"(?:[12]\d|3[01]|0?[1-9])"
_DAY_H = f"(?:[二三]?十[{_HD}]?|三十一|[{_HD}]|初[{_HD}十])"
# A month or a day is a duration, an age, a dose or a count after these (术后3日, 孕3月, 第2日, 每日) or before
# these (3日后, 3月余, 3月龄, 一日三次).
_NOT_BEFORE = "第每近数余约共续后前隔个了达满历为期连孕逾超仅才各周这那哪几多上下本当次"
_NOT_AFTER_D = "后前内来余以左多龄经次量剂片粒袋支"
# ... but 前往, 来华, 以来 (since) after a date are travel and time, not a duration.
_NOT_AFTER_X = "(?!后|前(?!往)|内|来(?![华京访到])|余|以[内上下后前]|左|多|龄|经|次|量|剂|片|粒|袋|支)"
_DATE_RX = re.compile(
    # The look-ahead on the first character lets the regex engine skip ahead to a digit or numeral.
    f"(?=[0-9〇零{_HD}十元正腊冬初])(?:"
    # a month with an optional year and day (十二月, 11月份, 1998年元月3日, 5月17号)
    rf"(?:(?<=农历)|(?<![\d.{_NOT_BEFORE}{_HD}十〇零]))(?:(?:\d{{4}}|[〇零{_HD}]{{4}})年)?(?:{_MON_D}|{_MON_H}|腊|冬)月"
    rf"(?:份|(?:{_DAY_D}|{_DAY_H})[日号])?{_NOT_AFTER_X}"
    # a day alone (３０日在这里, 自一日起, 至３１日): 日 only, 号 is also a bed or a room number (3号床). Before
    # punctuation it is a duration (发热2日，) unless a word of time or a range comes first.
    rf"|(?<=[自于在至到从—－~、])(?:{_DAY_D}|{_DAY_H})日{_NOT_AFTER_X}"
    # a day that opens a clause (。４日，, 本月７日，)
    rf"|(?:^|(?<=[。；！？!?\n])|(?<=本月|上月|下月|当月))(?:{_DAY_D}|{_DAY_H})日(?=[，,])"
    rf"|(?<![\d.{_NOT_BEFORE}])(?:{_DAY_D})日(?![{_NOT_AFTER_D}，。；,;.:：）)\s]|$)"
    # in Chinese numerals only before a word that makes it a date (十五日晚, 三日宣布)
    rf"|(?<![{_NOT_BEFORE}{_HD}十〇零])(?:{_DAY_H})日(?=[起电晚讯凌夜早晨午上下至到—－~、在宣发举报对]))")


_DATE_EXTENT = 24


def _find_dates(text: str, out: _Raw) -> None:
    # Every date has its 月 or 日 at most seven characters after its start (〇〇〇〇年十二月).
    # A match reads fourteen characters from its start at most (〇〇〇〇年十二月三十一日 and what may not follow).
    for m in _finditer_near(_DATE_RX, text, "月日", 7, _DATE_EXTENT):
        out.append((m.start(), m.end(), 1, "DATE"))


# --- names without a cue ---

# Without a cue only the common surnames count, and of the ambiguous ones (also function words: 于, 和, 但,
# 那) only 黄 and 高, among the twenty most frequent; 万 is also a number, and counts as a weak surname below.
_SURNAMES = L.CN_SURNAMES_COMMON.replace("万", "") + "黄高"
_COMPOUND = L.CN_COMPOUND_SURNAMES
# The look-ahead on the first character lets the regex engine skip ahead to a surname's first character (twice
# as fast as trying the compound surnames at every position).
_SURNAME_FIRST = "".join(sorted(set(_SURNAMES) | {c[0] for c in _COMPOUND}))
_SURNAME_RX = re.compile(f"(?=[{_SURNAME_FIRST}])(?:" + "|".join(_COMPOUND) + f"|[{_SURNAMES}])(?=[{_HAN}])")
# The surnames that are also function or common words (于, 和, 华, 项) and the rarer ones of the data file (萧,
# 慕) make a name only with two plausible
# given-name characters (`_plausible_three`); the regex looks for those first, as they are frequent.
_WEAK_ONLY = (frozenset(L.CN_SURNAMES_AMBIGUOUS) | RARE_SURNAMES | {"万"}) - frozenset(_SURNAMES)
_NC = "".join(sorted(NAME_CHARS))
_WEAK_RX = re.compile(f"[{''.join(sorted(_WEAK_ONLY))}](?=[{_NC}][{_NC}])")
# Pronouns, demonstratives and measure words end a name too.
_STOP = frozenset(L.ZH_NAME_STOP + "他她它们这那哪谁啥么个些其每各该此")
# Characters and words after which a person's name often stands (由王伟签字, 通知其子, 与刘洋沟通).
# ... and the last character of a role or title (护士长, 工程师, 总理, 大使, 记者, 领导人, 委员).
_LEFT_CHARS = frozenset("由与和及同经请给向被让叫嘱对跟找据见称小老、：:，,；;（(“\"'『「《"
                        "长员师理统使官者士席授")
_LEFT_WORDS = ("通知", "告知", "联系", "陪同", "询问", "交代", "委托", "授权", "代理人", "家属", "之子", "之女",
               "儿子", "女儿", "丈夫", "妻子", "父亲", "母亲", "同事", "朋友", "邻居", "签字", "签名", "医师", "医生",
               "护士", "主任", "教授", "大夫", "患者", "病人", "患儿", "转告", "电话", "介绍", "随访", "探视",
               # roles and titles written before a name (导演张鑫炎, 老干部李怀玉)
               "导演", "主演", "演员", "厂长", "局长", "处长", "科长", "院长", "校长", "部长", "市长", "县长", "省长",
               "书记", "主席", "委员", "代表", "经理", "记者", "专家", "老师", "同学", "战士", "队员", "冠军",
               "选手", "作家", "画家", "歌手", "明星", "干部", "老人", "先生", "女士", "同志", "主人公", "师傅",
               "师父", "师弟", "师兄", "总监", "律师", "会计", "司机", "民警", "村民", "居民", "职工", "工人",
               # words that precede names in the dev part of pd98 far more often than chance (45岁的王某, 夫人)
               "岁的", "夫人", "发言人", "总裁", "首相", "大臣", "国务卿", "教练")
_RIGHT_WORDS = ("先生", "女士", "小姐", "医生", "医师", "护士", "主任", "教授", "大夫", "老师", "同志", "签字",
                "签名", "同意", "表示", "诉", "说", "称", "述", "要求", "拒绝", "陪同", "家属", "本人", "之",
                # a byline (记者樊如钧摄) and what people do in a report (指出, 强调, 会见)
                "摄", "报道", "指出", "认为", "强调", "宣布", "主持", "会见", "讲话", "介绍", "首先", "亲切", "总理",
                "主席", "书记", "总统", "部长", "委员",
                # how a person is addressed or grouped after the name (王俊大娘, 张华夫妇)
                "大娘", "大爷", "大妈", "阿姨", "夫妇", "一家", "老人", "同学", "师傅")
_WEAK_SURNAMES = frozenset(L.CN_SURNAMES_AMBIGUOUS)
_RIGHT_LONG = tuple(w for w in _RIGHT_WORDS if len(w) > 1)
_RIGHT_ONE = frozenset(w for w in _RIGHT_WORDS if len(w) == 1)


def bound_left(text: str, s: int) -> bool:
    """True if the character at s forms an ordinary word with the one before it (儿童 in 妇女儿童, 各位): then it
    does not start a name."""
    return s > 0 and text[s - 1:s + 1] in WORDS


def _right_ok(text: str, j: int) -> bool:
    if j >= len(text):
        return True
    c = text[j]
    if not _is_han(c) or c in _STOP:
        return True
    return text.startswith(_RIGHT_AT.get(c, ()), j) or text[j:j + 2] in WORDS


def _left_ok(text: str, i: int) -> bool:
    if i == 0:
        return True
    c = text[i - 1]
    if not _is_han(c) or c in _LEFT_CHARS:
        return True
    return text.endswith(_LEFT_TO.get(c, ()), 0, i)


# 其 and 中 end a name (张其父, 王中) but also stand inside one (钱其琛, 董其中).
_GIVEN_STOP = _STOP - frozenset("其中")


def _given_ok(text: str, a: int, b: int) -> bool:
    if b > len(text):
        return False
    # A loop, not all() over a generator: this runs for most surnames.
    for c in text[a:b]:
        if not ("\u3400" <= c <= "\u9fff" or "\uf900" <= c <= "\ufaff") or c in _GIVEN_STOP:
            return False
    return b - a == 2 or text[a] not in _STOP


def _name_at(text: str, i: int, sl: int, uncertain: bool = False) -> tuple[int, int] | None:
    """The name starting with the surname text[i:i+sl], or None; uncertain: no context needed."""
    if i > 0 and _is_han(text[i - 1]) and text[i - 1:i + 1] in WORDS:
        return None  # the surname character ends a word (病史, 分钟, 结石)
    found = _name_in_context(text, i, i + sl)
    return _uncertain_name_at(text, i, i + sl) if found is None and uncertain else found


# Function characters that never stand in a given name, whatever the context (unlike 人, 有, 士: 王启人, 傅全有).
_HARD_STOP = frozenset("的了是在和与及等也都就而或但把被对从到向这那他她它们我你其之着过吗呢吧")


def _strong_right(text: str, j: int) -> bool:
    """True if a name may end at j whatever word the characters before j form with it: the end, punctuation, a
    word people do (说, 主席, 报道) or 等 (江泽民主席: 民主 is a word; 邓小平等: 平等 is one)."""
    if j >= len(text) or not _is_han(text[j]) or text[j] in "、等":
        return True
    # 说, 诉 after a character they form a word with (告诉, 听说) is no verb of speech after a name.
    c = text[j]
    return text.startswith(_RIGHT_LONG_AT.get(c, ()), j) or (c in _RIGHT_ONE and text[j - 1:j + 1] not in WORDS)


def _titled_three(text: str, i: int, g: int) -> bool:
    """A surname and two characters between a role or title and the end of the clause (记者许宏治, 社长王启人。):
    a name even if a given character is also a function character elsewhere."""
    # The cheap tests first: this runs for every surname.
    if not (i > 0 and text[i - 1] in _TITLE_LAST and g + 2 <= len(text) and _is_han(text[g])
            and _is_han(text[g + 1]) and text[g] not in _HARD_STOP
            and text[g + 1] not in _HARD_STOP and text[i:g + 2] not in WORDS
            and (_ends(text, i, _LEFT_TO)
                 or _ends(text, i, _TITLE_LEFT_TO))
            and not _starts(text, g, _RIGHT_AT)):
        return False
    # Right after a title the given name may be a word (导演袁和平, 女星崔真实) if a given-name character is in it
    # and the clause or a word people do ends it; otherwise neither half may be a word.
    if _strong_right(text, g + 2) or text[g + 2:g + 3] in _HARD_STOP:
        return text[i:g + 1] not in WORDS and (text[g:g + 2] not in WORDS or not NAME_CHARS.isdisjoint(text[g:g + 2]))
    return False


_TITLE_LEFT = ("总理", "总统", "主席", "书记", "部长", "委员长", "秘书长", "省长", "市长", "县长", "局长", "大使",
               "司令", "政委", "院长", "校长", "社长", "会长", "行长", "厂长", "经理", "董事长", "主任", "记者",
               "首相", "外长", "议长", "国务委员", "同志", "教授", "院士", "专家", "作家", "诗人", "导演")


_SUBJECT_NEXT = frozenset("在等对为还也又曾将已则说")
# Words of time that follow a subject (委员长乔石今天上午...).
_WHEN = ("今天", "昨天", "明天", "今日", "昨日", "上午", "下午", "晚上", "今晚", "昨晚", "日前", "近日", "最近", "当晚",
         "当天", "随后", "首先", "曾经", "一行")


# The last characters of the words _titled_three looks for: a cheap test before the long endswith.
_TITLE_LAST = frozenset(w[-1] for w in (*_LEFT_WORDS, *_TITLE_LEFT))
_TITLE_WORDS = (*_LEFT_WORDS, *_TITLE_LEFT, "护士长", "董事长", "秘书长", "委员长", "班长", "组长")
_RIGHT_AT = _by_char(_RIGHT_WORDS)
_RIGHT_LONG_AT = _by_char(_RIGHT_LONG)
_LEFT_TO = _by_char(_LEFT_WORDS, last=True)
_TITLE_LEFT_TO = _by_char(_TITLE_LEFT, last=True)
_TITLE_WORDS_TO = _by_char(_TITLE_WORDS, last=True)
_WHEN_AT = _by_char(_WHEN)


def _name_in_context(text: str, i: int, g: int) -> tuple[int, int] | None:
    """The name of surname text[i:g] found by its context, or None."""
    sl = g - i
    # Both three-character rules want the surname and the next character to be no word (方面, 高度, 农业: a
    # third of the surnames found), and so do the rules of the not-left branch below.
    head = text[i:g + 1] in WORDS
    if not head and (_titled_three(text, i, g)
                     or _plausible_three(text, i, g, sl == 1 and text[i] in _WEAK_SURNAMES)):
        return i, g + 2
    # A name that is also a word (黄菊, 罗干, 乔石) right after a title and before the end of the clause or a
    # word people do (书记黄菊主持, 秘书长罗干、).
    if (sl == 1 and head and _ends(text, i, _TITLE_LEFT_TO) and _is_han(text[g])
            and text[g] not in _HARD_STOP and (_strong_right(text, g + 1) or text[g + 1:g + 2] in _HARD_STOP
                                               or _starts(text, g + 1, _WHEN_AT))):
        return i, g + 1
    left = _left_ok(text, i)
    # A name that is also a word (李鹏): after a role or title, or before a word people do (李鹏说, 李鹏总理); a
    # clause boundary is not enough (曾祖父, 温馨提示).
    if (sl == 1 and text[i:g + 1] in MAYBE_NAMES and _given_ok(text, g, g + 1)
            and ((_ends(text, i, _TITLE_WORDS_TO) and _right_ok(text, g + 1))
                 or _starts(text, g + 1, _RIGHT_AT)
                 # the subject of a clause (，李鹏在北京, 罗干还说)
                 or ((i == 0 or not _is_han(text[i - 1])) and text[g + 1:g + 2] in _SUBJECT_NEXT
                     and text[g + 1:g + 3] not in WORDS))):
        return i, g + 1
    if not left and head:
        return None
    weak = sl == 1 and text[i] in _WEAK_SURNAMES
    two = _given_ok(text, g, g + 2) and text[i:g + 2] not in WORDS and (
        text[g + 1:g + 3] not in WORDS or _strong_right(text, g + 2))
    if not left:
        # Two given-name characters (吴金印, 褚时健 after 的, 查办): the name needs no word before it.
        # One is enough before the end of a clause or a word people do (江泽民、, 孔繁森说).
        if (two and not weak and (text[g] in GIVEN_CHARS or text[g + 1] in GIVEN_CHARS)
                and ((text[g] in GIVEN_CHARS and text[g + 1] in GIVEN_CHARS)
                     or (_strong_right(text, g + 2) and text[i - 1] not in TRANSLIT_CHARS))
                and text[i:g + 1] not in WORDS and text[i:g + 1] not in MAYBE_NAMES and text[g:g + 2] not in WORDS
                and _right_ok(text, g + 2)):
            return i, g + 2
        # A surname and one given-name character of the stricter class before a function character, punctuation
        # or a word people do (照料起张倩和她的母亲).
        if (sl == 1 and not weak and text[g:g + 1] in GIVEN_CHARS and text[i:g + 1] not in WORDS
                and text[i:g + 1] not in MAYBE_NAMES and text[g:g + 2] not in WORDS
                and (g + 1 >= len(text) or not _is_han(text[g + 1]) or text[g + 1] in _HARD_STOP
                     or _starts(text, g + 1, _RIGHT_AT))):
            return i, g + 1
        return None
    if sl == 1 and (head or text[i:g + 1] in MAYBE_NAMES or text[i:g + 3] in WORDS):
        # Surname and the next characters are a word (陈旧, 方法, 左侧, 高脂血症), unless three characters
        # that form no word end the clause or stand before a word people do, the last a given-name character
        # (温家宝在, 陈云峰意识到: 温家 and 陈云 are words too).
        nxt = text[g + 2:g + 3]
        if (two and text[g:g + 2] not in WORDS and text[g + 1] in GIVEN_CHARS and not weak
                and (nxt in _HARD_STOP or (_strong_right(text, g + 2) and not nxt.isdigit()
                                           and not (nxt.isascii() and nxt.isalpha())))):
            return i, g + 2
        return None
    if two and _right_ok(text, g + 2):
        return i, g + 2
    if _given_ok(text, g, g + 1) and _right_ok(text, g + 1) and not (weak and text[g:g + 2] in WORDS):
        return i, g + 1
    return None


_ALWAYS_STOP = _HARD_STOP - frozenset("其之")


def _plausible_three(text: str, i: int, g: int, weak: bool) -> bool:
    """A surname and two plausible given-name characters (邓小平, 王近山 after any word): a name where neither the
    surname with the first, nor the two, nor the second with what follows, nor the whole is an ordinary word.
    Recall first: the goal tolerates a surname and two name-like characters read as a name."""
    a, b = text[g:g + 1], text[g + 1:g + 2]
    # 其 and 之 stand in given names too (钱其琛, 刘复之) next to a character of the stricter class.
    if not ((a in NAME_CHARS or (a == "其" and b in GIVEN_CHARS))
            and (b in NAME_CHARS or (b == "之" and a in GIVEN_CHARS))) or a in _ALWAYS_STOP or b in _ALWAYS_STOP:
        return False
    # After a surname that is also a function word (于, 和, 高) one character must be of the stricter class.
    if weak and not (a in GIVEN_CHARS or b in GIVEN_CHARS):
        return False
    # Inside a transliterated word (莫西林 of 阿莫西林) the surname is no surname.
    if i > 0 and (text[i - 1] in TRANSLIT_CHARS or text[i - 1] in LOOSE_TRANSLIT):
        return False
    # The two may be a word when the second is of the stricter class: given names are often words (海涛, 建华).
    return (text[i:g + 1] not in WORDS and (text[g:g + 2] not in WORDS or (b in GIVEN_CHARS and not weak))
            and text[i:g + 2] not in WORDS
            and text[i:g + 3] not in WORDS and (text[g + 1:g + 3] not in WORDS or _strong_right(text, g + 2)))


def _ended_three(text: str, i: int) -> bool:
    """A common surname and two characters, one a plausible given-name character, that form no word, before
    the end of a clause, a function character or a word people do (会见了邹竞蒙。, 许有才家): recall first."""
    g = i + 1
    if g + 2 > len(text) or text[i] in _WEAK_SURNAMES:
        return False
    a, b = text[g], text[g + 1]
    if not ((a in NAME_CHARS or b in NAME_CHARS) and _given_ok(text, g, g + 2)):
        return False
    if not (_strong_right(text, g + 2) or text[g + 2] in _HARD_STOP):
        return False
    if i > 0 and (text[i - 1] in TRANSLIT_CHARS or text[i - 1] in LOOSE_TRANSLIT):
        return False
    return (text[i:g + 1] not in WORDS and text[g:g + 2] not in WORDS and text[i:g + 2] not in WORDS
            and text[i:g + 1] not in MAYBE_NAMES and text[i:g + 3] not in WORDS)


def _glued_three(text: str, i: int) -> bool:
    """A common surname and two characters, one a plausible given-name character, glued to running text that
    goes on with an ordinary word (王近山指挥, 崔真实主演): the segmentation that reads the three as a name
    leaves words on both sides, so the given name itself may be a word."""
    g = i + 1
    # The cheap tests first: this runs for most surnames no other rule takes.
    if not ((text[g + 2:g + 4] in WORDS or text[g + 3:g + 5] in WORDS) and text[g + 1:g + 3] not in WORDS):
        return False
    if g + 4 > len(text) or text[i] in _WEAK_SURNAMES:
        return False
    a, b = text[g], text[g + 1]
    if not (_given_ok(text, g, g + 2) and a not in _HARD_STOP and b not in _HARD_STOP):
        return False
    if i > 0 and (text[i - 1] in TRANSLIT_CHARS or text[i - 1] in LOOSE_TRANSLIT):
        return False
    return (text[i:g + 1] not in WORDS and text[i:g + 1] not in MAYBE_NAMES and text[i:g + 2] not in WORDS
            and text[i:g + 3] not in WORDS and text[i:g + 4] not in WORDS
            and (text[g:g + 2] not in WORDS or b in GIVEN_CHARS or a in GIVEN_CHARS))


def _opening_three(text: str, i: int) -> bool:
    """A common surname and two characters, one a given-name character, at the start of a clause or
    after a word that introduces a person, where the surname and the first form no word, nor the three, nor the
    last with what follows (，周恩来有一次, 协助李四光抓): the given name itself may be a word (恩来, 建国)."""
    g = i + 1
    if g + 2 > len(text) or text[i] in _WEAK_SURNAMES:
        return False
    a, b = text[g], text[g + 1]
    # One of the stricter class: 左甲状 (of 左甲状腺素) at the start of a list of drugs is no name.
    if not ((a in GIVEN_CHARS or b in GIVEN_CHARS) and _given_ok(text, g, g + 2) and _left_ok(text, i)):
        return False
    if i > 0 and (text[i - 1] in TRANSLIT_CHARS or text[i - 1] in LOOSE_TRANSLIT):
        return False
    return (text[i:g + 1] not in WORDS and text[i:g + 1] not in MAYBE_NAMES and text[i:g + 2] not in WORDS
            and text[i:g + 3] not in WORDS
            and (text[g + 1:g + 3] not in WORDS or _strong_right(text, g + 2)))


def _uncertain_name_at(text: str, i: int, g: int) -> tuple[int, int] | None:
    """Recall over readability: a surname and one or two characters that form no ordinary word with it or
    with what follows, whatever stands around them."""
    if g - i == 1 and (text[i:g + 1] in WORDS or text[i:g + 3] in WORDS or text[i:g + 1] in MAYBE_NAMES):
        return None
    # At least one given-name character (丽, 阳 in 赵阳在), or a one-character given name that ends there: 林肠溶
    # in 阿司匹林肠溶片 is no name.
    if (_given_ok(text, g, g + 2) and text[i:g + 2] not in WORDS and text[g:g + 2] not in WORDS
            and text[g + 1:g + 3] not in WORDS and not GIVEN_CHARS.isdisjoint(text[g:g + 2])):
        return i, g + 2
    if (_given_ok(text, g, g + 1) and text[g:g + 2] not in WORDS
            and (text[g] in GIVEN_CHARS or g + 1 == len(text) or not _is_han(text[g + 1]) or text[g + 1] in _STOP)):
        return i, g + 1
    return None


def _find_names(text: str, out: _Raw, taken: list[tuple[int, int]], uncertain: bool = False) -> None:
    busy = sorted(taken)
    found: list[tuple[int, int]] = []
    pos = 0
    for m in _SURNAME_RX.finditer(text):
        i = m.start()
        sl = m.end() - i
        if i < pos or (busy and _overlaps(busy, i, i + 1)):
            continue
        # The surname character ends a word (病史, 分钟, 结石; then no rule below applies): tested first, as a
        # quarter of the surnames found are such.
        # A compound surname whose first character ends a title (护士长孙丽萍: 长孙) is that title's end.
        if (i > 0 and text[i - 1:i + 1] in WORDS and _is_han(text[i - 1])) or (
                sl == 2 and text[i] in _TITLE_LAST and text.endswith(_TITLE_WORDS, 0, i + 1)):
            if sl == 1 or text[i + 1] not in _SURNAMES:
                continue
            span = None
        else:
            # `_name_at` without its test of a word's end, just made above.
            span = _name_in_context(text, i, i + sl)
            if span is None and uncertain:
                span = _uncertain_name_at(text, i, i + sl)
        # A compound surname may be a word's end and a surname (副部长孙振宇: 长孙): then the single one, whose
        # "word" with the character before is that compound.
        if span is None and sl == 2 and text[i + 1] in _SURNAMES:
            span = _name_in_context(text, i + 1, i + 2)
            if span is None and uncertain:
                span = _uncertain_name_at(text, i + 1, i + 2)
        # The three rules all want the surname and the next character to be no word (a third of the surnames).
        if (span is None and sl == 1 and text[i:i + 2] not in WORDS and not NAME_CHARS.isdisjoint(text[i + 1:i + 3])
                and (_ended_three(text, i) or _opening_three(text, i) or _glued_three(text, i))):
            span = (i, i + 3)
        # A surname and 某 (张某, 王某某) is how a report names a person it keeps anonymous.
        if span is None and sl == 1 and text[i + 1] == "某" and text[i:i + 3] not in WORDS:
            span = (i, i + 3 if text[i + 2:i + 3] == "某" else i + 2)
        if span is None and sl == 1 and _titled_surname(text, i):
            span = (i, i + 1)
        if i > 0 and text[i - 1] in "老小" and (span is None or span[0] == i) and _old_young(text, i - 1):
            span = (i - 1, i + 1)
        if span is not None:
            out.append((span[0], span[1], 1, "NAME"))
            found.append(span)
            pos = span[1]
    # The spans sorted again only where a weak surname is found (most notes have none).
    weak = list(_WEAK_RX.finditer(text))
    if weak:
        busy = sorted(busy + found)
    for m in weak:
        i = m.start()
        if _overlaps(busy, i, i + 3) or (i > 0 and _is_han(text[i - 1]) and text[i - 1:i + 1] in WORDS):
            continue
        # A function character before a surname introduces the name (由宁志刚签字), it does not start it.
        if text[i] in _LEFT_CHARS and (text[i + 1] in _LIST_FIRST or text[i + 1] in _WEAK_ONLY):
            continue
        if _plausible_three(text, i, i + 1, True):
            out.append((i, i + 3, 1, "NAME"))
            bisect.insort(busy, (i, i + 3))


# --- foreign names: transliteration characters (from jieba's nrt entries) ---

_TR = "".join(sorted(TRANSLIT_CHARS))
# Words that introduce a foreign person (a title or a role) besides those of `_LEFT_WORDS`.
_TR_LEFT = (*_LEFT_WORDS, "总统", "总理", "首相", "外长", "国务卿", "大使", "议长", "国王", "王储", "亲王", "总书记",
            "发言人", "总裁", "董事长", "教练", "球星", "夫人", "博士", "法官", "将军", "大臣")
_TITLE_ENDS = frozenset("长员师理统使官者士席授")
_TR_LEFT_LAST = frozenset(w[-1] for w in _TR_LEFT)
_TR_LEFT_TO = _by_char(_TR_LEFT, last=True)
_TR_RUN = re.compile(f"[{_TR}]{{2,8}}")
# A name in parts joined by · (约翰·克鲁吉, 拉吉夫·甘地): the parts at most five characters each.
_DOT_RX = re.compile(f"[{_HAN}]{{1,5}}(?:·[{_HAN}]{{1,5}})+")


def _find_foreign(text: str, out: _Raw, busy: list[tuple[int, int]]) -> None:
    if "·" in text:
        for m in _DOT_RX.finditer(text):
            s, e = m.span()
            # The first part starts after a word that introduces a person, the last ends before one.
            for k in range(s, text.index("·", s)):
                if _ends(text, k, _TR_LEFT_TO) or text[k - 1] in _LEFT_CHARS or text[k - 1] in _TR_FUNC_LEFT:
                    s = k
            last = text.rindex("·", s, e) + 1
            # Only function characters end the last part: 地 of 甘地 is a name's.
            for k in range(last + 1, e + 1):
                if _starts(text, k, _RIGHT_AT) or _starts(text, k, _TR_VERBS_AT) or text[k - 1] in _HARD_STOP:
                    e = k if text[k - 1] not in _HARD_STOP else k - 1
                    break
            span = text[s:e]
            han = span.replace("·", "")
            # Parts of two characters or more on both sides are a name whatever their characters (拉吉夫·甘地);
            # a part of one (清·龚自珍: a dynasty) needs a third of transliteration characters.
            first = text.index("·", s) - s
            if e - last >= 1 and len(han) >= 3 and (
                    3 * sum(map(TRANSLIT_CHARS.__contains__, han)) >= len(han)
                    or (first >= 2 and e - last >= 2 and span not in WORDS)):
                out.append((s, e, 1, "NAME"))
    # One scan for the maximal runs of either class; both rules then look only inside them.
    runs = [m.span() for m in _ANY_TR_RUN.finditer(text)]
    if not runs:
        return  # every rule below looks inside a run (a per-note cost: most short notes have none)
    for m in (m for a, b in runs for m in _TR_RUN.finditer(text, a, b)):
        s, e = m.span()
        if any(a < e and s < b for a, b in busy) or text[s:e] in TRANSLIT_WORDS:
            continue  # a country or a transliterated word (伊拉克, 卢森堡)
        # After the last character of a title (州长, 大使, 议员) too.
        if (_ends(text, s, _TR_LEFT_TO) or _starts(text, e, _RIGHT_AT)
                # the subject of a clause (，恩佐在记者招待会上说)
                or ((s == 0 or not _is_han(text[s - 1])) and text[s:e] not in WORDS
                    and (text[e:e + 1] in _TR_FUNC_RIGHT or _starts(text, e, _TR_VERBS_AT))
                    and text[e:e + 2] not in WORDS and not _starts(text, e, _EPONYM_NEXT_AT))
                or (s > 0 and text[s - 1] in _TITLE_ENDS and text[s - 1:s + 1] not in WORDS
                    and not _starts(text, e, _EPONYM_NEXT_AT) and not text.startswith(_DRUG_ENDS, e - 1)
                    and text[s:e] not in WORDS)):
            out.append((s, e, 1, "NAME"))
            busy.append((s, e))
    for a, b in runs:
        if b - a == 2 and _short_foreign(text, a, b) and not any(x < b and a < y for x, y in busy):
            out.append((a, b, 1, "NAME"))
    _find_gapped(text, out, busy, runs)
    for m in (m for a, b in runs if b - a >= 3 for m in _LOOSE_RUN.finditer(text, a, b)):
        s, e = m.span()
        if _translit_city(text, s, e) and not any(a < e and s < b for a, b in busy):
            out.append((s, e, 1, "LOCATION"))
            continue
        # The run may end a character or two early where the rest starts a word or is a function character
        # (扎琳娜 of 扎琳娜那双, 哈马迪 of 哈马迪博士).
        for end in range(e, max(s + 3, e - 2) - 1, -1):
            if end < e and not (text[end] in _STOP or text[end:end + 2] in WORDS
                                or _starts(text, end, _RIGHT_AT)):
                continue
            # A span inside the run (阿尔希 of 阿尔希波夫 after 患者) does not stop it.
            if (_loose_name(text, s, end) or _titled_run(text, s, end)) and not any(
                    a < end and s < b and not s <= a < b <= end for a, b in busy):
                out.append((s, end, 1, "NAME"))
                break


# A run of transliteration characters with one of class v inside (克雷蒂安, 阿拉法特): first only after a title
# (主席密特拉), so that a run glued after an ordinary word does not start with its last character.
_U = "".join(sorted(LOOSE_TRANSLIT))
_GAP_RUN = re.compile(f"[{_TR}{_U}]{{0,6}}[{''.join(sorted(GAP_TRANSLIT))}][{_TR}{_U}]{{0,6}}")


def _find_gapped(text: str, out: _Raw, busy: list[tuple[int, int]], runs: list[tuple[int, int]]) -> None:
    # Only next to a run of the two classes: the characters of class v are frequent (大, 文, 安).
    seen: set[tuple[int, int]] = set()
    spans = []
    for a, b in runs:
        if not (text[a - 1:a] in GAP_TRANSLIT or text[b:b + 1] in GAP_TRANSLIT):
            continue
        m = _GAP_RUN.search(text, max(0, a - 7), min(len(text), b + 8))
        while m is not None and m.start() <= b:
            if m.span() not in seen and m.end() >= a:
                seen.add(m.span())
                spans.append(m.span())
            m = _GAP_RUN.search(text, m.end(), min(len(text), b + 8))
    for s, e in spans:
        if not 3 <= e - s <= 8 or text[s:e] in TRANSLIT_WORDS or text[s:e] in WORDS:
            continue
        if text[s] in GAP_TRANSLIT and not (text[s - 1:s] in _TR_LEFT_LAST and text.endswith(_TR_LEFT, 0, s)):
            continue
        # A name found inside the run (克雷蒂 of 克雷蒂安) gives way to it; one across its ends stops it.
        if any(a < e and s < b and not s <= a < b <= e for a, b in busy):
            continue
        # The character of class v forms no word with a neighbour in the run (大林 is one: 斯大林 is no
        # transliteration by these classes).
        k = next(j for j in range(s, e) if text[j] in GAP_TRANSLIT)
        if text[k - 1:k + 1] in WORDS or text[k:k + 2] in WORDS:
            continue
        if _loose_name(text, s, e) or _titled_run(text, s, e):
            out[:] = [x for x in out if not (x[3] == "NAME" and s <= x[0] and x[1] <= e)]
            out.append((s, e, 1, "NAME"))
            busy.append((s, e))


def _short_foreign(text: str, s: int, e: int) -> bool:
    """Two transliteration characters alone, one of the stricter class, as the subject or object of a clause
    (。亚辛在, 的博塔的, 女友达莎成婚): a foreign name."""
    run = text[s:e]
    if (TRANSLIT_CHARS.isdisjoint(run) or run in TRANSLIT_WORDS or run in FOREIGN_CITIES
            or run[0] in _TR_FUNC_LEFT or run[-1] in _TR_FUNC_RIGHT
            or _starts(text, e, _EPONYM_NEXT_AT) or text.startswith(_DRUG_ENDS, s)):
        return False
    # An ordinary word (谢谢, 默契) only right after a title (外长利维); no half of a word with a neighbour
    # (古埃及), no count (２５０多科).
    titled = s > 0 and text[s - 1] in _TR_LEFT_LAST and text.endswith(_TR_LEFT, 0, s)
    if (run in WORDS and not titled) or text[e - 1:e + 1] in WORDS or text[e - 1:e + 1] in TRANSLIT_WORDS or (
            s > 0 and (text[s - 1].isdigit() or text[s - 1:s + 1] in WORDS)):
        return False
    left = titled or s == 0 or not _is_han(text[s - 1]) or text[s - 1] in _TR_FUNC_LEFT
    return left and (e == len(text) or not _is_han(text[e]) or text[e] in _TR_FUNC_RIGHT
                     or _starts(text, e, _TR_VERBS_AT) or _starts(text, e, _RIGHT_AT))


def _titled_run(text: str, s: int, e: int) -> bool:
    """A run of transliteration characters of either class, one of the stricter, between a title and the end of
    the clause or a word people do (市长赖尔登。): a foreign name even with one strict character."""
    run = text[s:e]
    if (s == 0 or text[s - 1] not in _TR_LEFT_LAST or run in TRANSLIT_WORDS or run in WORDS
            or run.endswith(_DRUG_ENDS) or TRANSLIT_CHARS.isdisjoint(run) or not _ends(text, s, _TR_LEFT_TO)):
        return False
    return _strong_right(text, e) or text[e:e + 1] in _TR_FUNC_RIGHT or _starts(text, e, _TR_VERBS_AT)


# A foreign name without a title (克林顿, 阿尔希波夫): three characters or more of transliteration, two at least
# of the stricter class, between a boundary (punctuation, a function character, a title) and a boundary or a
# verb of speech or action.
_LOOSE_RUN = re.compile(f"[{_TR}{''.join(sorted(LOOSE_TRANSLIT))}]{{3,8}}")
_ANY_TR_RUN = re.compile(f"[{_TR}{''.join(sorted(LOOSE_TRANSLIT))}]{{2,}}")
_TR_FUNC_LEFT = frozenset("在和与同及对向被把给由据的是了让请称、")
_TR_FUNC_RIGHT = frozenset("在和与同及对向将已也还曾则等的是说称了被把为就又都所并今昨明前后日月一")
_TR_VERBS = ("表示", "指出", "会见", "会晤", "访问", "抵达", "举行", "认为", "强调", "宣布", "出席", "参加", "接受",
             "回忆", "主持", "发表", "会谈", "一行", "访华", "来华", "率领")
# Drug names are transliterations too (美托洛尔, 卡托普利, 阿莫西林, 氯吡格雷): their stems end the run.
_DRUG_ENDS = ("洛尔", "普利", "西林", "沙坦", "地平", "拉唑", "他汀", "替丁", "格雷", "霉素", "昔布", "曲坦", "司琼",
              "西泮", "唑仑", "沙星", "米特", "尼特", "卡因", "洛芬", "吗啡", "布芬", "格列", "多巴", "培南", "泊坦",
              "替尼", "单抗", "拉明", "芬太尼", "利特", "罗定", "那韦", "韦林", "替定", "托品", "利林", "塔林")
# An eponym of a disease, a sign or a test (帕金森病, 阿尔茨海默病, 克罗恩病, 巴宾斯基征) is no patient's name.
_EPONYM_NEXT = ("病", "症", "征", "氏", "综合", "淋巴", "瘤", "定律", "效应", "猜想", "系数", "试验", "手术", "反射",
                "现象", "分类", "分级", "评分", "量表", "指数", "奖", "式", "型", "杆菌", "菌", "病毒", "管", "囊",
                "细胞", "法", "定理", "方程", "常数", "主义",
                # a people, a language, a team, a place (伊拉克人, 桑戈语)
                "人", "语", "队", "族", "岛", "港", "湾", "市", "州")
_TR_VERBS_AT = _by_char(_TR_VERBS)
_EPONYM_NEXT_AT = _by_char(_EPONYM_NEXT)


# A transliteration run after a verb of travel or before 举行 (抵达哈博罗内, 在XX举行) is a city, not a person.
_TR_CITY_BEFORE = ("到", "抵达", "访问", "来自", "赴", "前往", "飞往", "飞抵", "到达", "途经")
_TR_CITY_AFTER = ("举行", "召开", "市", "时间")


def _translit_city(text: str, s: int, e: int) -> bool:
    run = text[s:e]
    if (sum(map(TRANSLIT_CHARS.__contains__, run)) < 2 or run in TRANSLIT_WORDS or run in WORDS
            or run.endswith(_DRUG_ENDS)):
        return False
    return text.endswith(_TR_CITY_BEFORE, 0, s) or text.startswith(_TR_CITY_AFTER, e)


def _eponym_near(text: str, e: int) -> bool:
    """Whether a disease or sign word follows within two characters (阿尔茨 in 阿尔茨海默病)."""
    return any(_starts(text, k, _EPONYM_NEXT_AT) for k in (e + 1, e + 2))


def _loose_name(text: str, s: int, e: int) -> bool:
    run = text[s:e]
    core = sum(map(TRANSLIT_CHARS.__contains__, run))
    if core < 2 or 2 * core < len(run) or run in TRANSLIT_WORDS or run in WORDS or run.endswith(_DRUG_ENDS):
        return False
    if _starts(text, e, _EPONYM_NEXT_AT) or text.startswith(_DRUG_ENDS, e - 1):
        return False
    # Recall first: any neighbour will do that forms no word with the run's first or last character.
    left = (s == 0 or not _is_han(text[s - 1]) or text[s - 1] in _TR_FUNC_LEFT or _ends(text, s, _TR_LEFT_TO)
            or text[s - 1:s + 1] not in WORDS)
    right = (e == len(text) or not _is_han(text[e]) or text[e] in _TR_FUNC_RIGHT
             or _starts(text, e, _TR_VERBS_AT) or _starts(text, e, _RIGHT_AT)
             or (text[e - 1:e + 1] not in WORDS and not _eponym_near(text, e)))
    return left and right


# A surname alone before a title stands for the person (江主席, 李总理, 张副主任, 冷科长), as does 老 or 小 before a
# surname (老王, 小李).
_TITLES = ("主席", "总理", "总书记", "书记", "部长", "局长", "厂长", "科长", "处长", "主任", "大使", "市长", "县长",
           "省长", "团长", "校长", "院长", "所长", "队长", "经理", "总统", "委员长", "秘书长", "司令", "政委", "师傅",
           "老师", "先生", "女士", "小姐", "同志", "医生", "大夫", "教授", "护士", "阿姨", "大爷", "大娘", "大妈",
           "总编", "会长", "社长", "董事长", "行长", "站长", "村长", "组长", "班长", "连长", "营长", "师长", "军长",
           "主编", "工程师", "律师", "法官", "警官", "博士", "医师", "护士长")
_TITLE_TUPLE = tuple(sorted({p + t for t in _TITLES for p in ("", "副", "代")}, key=len, reverse=True))
_TITLE_FIRST = frozenset(t[0] for t in _TITLE_TUPLE)


def _titled_surname(text: str, i: int) -> bool:
    """Whether the surname at i stands alone before a title (江主席, 张副主任), not as a word's end (国家主席)."""
    return (text[i + 1:i + 2] in _TITLE_FIRST and text.startswith(_TITLE_TUPLE, i + 1)
            and not (i > 0 and text[i - 1:i + 1] in WORDS))


def _old_young(text: str, i: int) -> bool:
    """Whether 老 or 小 at i and the surname after it are a reference to a person (老闫说, 小邹。)."""
    j = i + 2
    if text[i:j] in WORDS or (i > 0 and text[i - 1:i + 1] in WORDS) or (j < len(text) and text[j - 1:j + 1] in WORDS):
        return False
    # What follows must end the reference: punctuation, a stop character, a word people do, or a word.
    return j >= len(text) or not _is_han(text[j]) or (
        text[j] in _STOP or _starts(text, j, _RIGHT_AT) or _starts(text, j, _TR_VERBS_AT)
        or text[j:j + 2] in WORDS)


# A byline: names alone in brackets at the end of a paragraph (（徐国春张雅文）), or alone on a line (a signature).
# The run starts with a surname and holds no word, place or function character.
_ALL_SURNAMES = f"{_SURNAMES}{''.join(sorted(_WEAK_SURNAMES))}"
_BYLINE_BRACKET = re.compile(f"[（(]((?:{'|'.join(_COMPOUND)}|[{_ALL_SURNAMES}])[{_HAN}]{{1,11}})[）)](?=\\s*$)", re.M)
_BYLINE_LINE = re.compile(f"^\\s*((?:{'|'.join(_COMPOUND)}|[{_ALL_SURNAMES}])[{_HAN}]{{1,3}})\\s*$", re.M)
# The same after a line break: led by a literal, which the regex engine finds fast, where a multi-line ^ is tried
# at every character (the note's first line is matched with _BYLINE_LINE itself).
_BYLINE_NEXT_LINE = re.compile(f"\n{_BYLINE_LINE.pattern.removeprefix('^')}", re.M)


# A name before its sex or people in brackets (吴仪（女）, 张三（男，45岁）, 阿不都（维吾尔族）).
_SEX_RX = re.compile(f"[（(](?:女|男|[{_HAN}]{{1,4}}族)[）)，,、]")


def _find_sexed(text: str, out: _Raw) -> None:
    if "（" not in text and "(" not in text:
        return
    for m in _SEX_RX.finditer(text):
        e = m.start()
        # A surname and two characters, else one (the longer when both start with a surname).
        for k in (3, 2):
            s = e - k
            w = text[s:e]
            if (s >= 0 and len(w) == k and all(map(_is_han, w)) and _SURNAME_START.match(w) is not None
                    and w not in WORDS and w not in PLACES and w not in PLACE_SHORT and _HARD_STOP.isdisjoint(w)):
                out.append((s, e, 1, "NAME"))
                break


def _bracket_bylines(text: str) -> list[re.Match[str]]:
    """The matches of _BYLINE_BRACKET.finditer(text) in order, looked for only before a closing bracket that
    ends its line (most brackets of a note end none, and the pattern is tried at every opening one)."""
    hits = []
    for close in "）)":
        k = text.find(close)
        while k >= 0:
            nl = text.find("\n", k)
            if nl < 0:
                nl = len(text)
            if nl == k + 1 or text[k + 1:nl].isspace():
                # A match holds thirteen characters at most before its closing bracket.
                m = _BYLINE_BRACKET.search(text, max(0, k - 13), k + 1)
                while m is not None and m.end() <= k:
                    m = _BYLINE_BRACKET.search(text, m.start() + 1, k + 1)
                if m is not None:
                    hits.append(m)
            k = text.find(close, k + 1)
    hits.sort(key=lambda m: m.start())
    return hits


def _find_bylines(text: str, out: _Raw) -> None:
    # Each pattern only where it can match (a per-note cost: most notes have neither).
    if "\n" in text:
        hits = _bracket_bylines(text)
        first = _BYLINE_LINE.match(text)
        if first is not None and "\n" not in text[:first.start(1)]:
            hits.append(first)
        hits += _BYLINE_NEXT_LINE.finditer(text)
    elif len(text) < 8:
        hits = [*_BYLINE_LINE.finditer(text)]
    else:
        tail = text[-16:]
        if "）" not in tail and ")" not in tail:
            return
        hits = [*_BYLINE_BRACKET.finditer(text, len(text) - 16)]
    for m in hits:
        s, e = m.span(1)
        w = text[s:e]
        if not (w in WORDS or w in PLACES or w in PLACE_SHORT or w in PLACE_AMBIGUOUS
                or not _HARD_STOP.isdisjoint(w)):
            out.append((s, e, 1, "NAME"))


# A list of names with 、 (江泽民、李鹏、乔石等): two items or more of a surname and one to three characters that
# are neither a word nor a place make every such item a name, and a two-character word after a common surname
# too (乔石) where most items are names. The first item may follow other text (出席的有江泽民、).


_LIST_FIRST = frozenset(_ALL_SURNAMES) | frozenset(c[0] for c in _COMPOUND)


def _list_item(w: str) -> bool:
    if not (2 <= len(w) <= 4) or not _SURNAME_START.match(w) or not _HARD_STOP.isdisjoint(w[1:]):
        return False
    if len(w) == 4 and w[:2] not in _COMPOUND:
        return False
    return not (w in WORDS or w in PLACES or w in PLACE_SHORT or w in PLACE_AMBIGUOUS or w in TRANSLIT_WORDS
                or w in FOREIGN_CITIES or (w[:2] in WORDS and len(w) == 3))


_HAN_FWD = re.compile(f"[{_HAN}]{{1,8}}")
_HAN_BACK = re.compile(f"[{_HAN}]{{1,8}}$")


def _list_groups(text: str) -> list[list[tuple[int, int]]]:
    """The 、-separated runs of Han items in text: the first item up to eight characters back, the inner ones
    of two to four, the last up to four (cheaper than a regex led by a Han class)."""
    groups: list[list[tuple[int, int]]] = []
    cur: list[tuple[int, int]] = []
    i = text.find("、")
    while i >= 0:
        if cur and cur[-1][1] == i:  # the item before this 、 closes the previous one
            pass
        else:
            if len(cur) >= 2:
                groups.append(cur)
            mb = _HAN_BACK.search(text, max(0, i - 8), i)
            back = i - mb.start() if mb else 0
            cur = [(i - back, i)] if back >= 2 else []
        nxt = text.find("、", i + 1)
        mf = _HAN_FWD.match(text, i + 1)
        fwd = mf.end() - i - 1 if mf else 0
        if cur and fwd >= 2 and nxt == i + 1 + fwd and fwd <= 4:
            cur.append((i + 1, nxt))
        elif cur and fwd >= 2:
            cur.append((i + 1, i + 1 + min(fwd, 4)))
            if len(cur) >= 2:
                groups.append(cur)
            cur = []
        else:
            if len(cur) >= 2:
                groups.append(cur)
            cur = []
        i = nxt
    if len(cur) >= 2:
        groups.append(cur)
    return groups


_LIST_GATE = re.compile(f"、(?:{'|'.join(_COMPOUND)}|[{_ALL_SURNAMES}])")


def _find_lists(text: str, out: _Raw) -> None:
    if "、" not in text or _LIST_GATE.search(text) is None:
        return
    for items in _list_groups(text):
        # Cheap first: two items at least must hold a surname.
        if sum(text[a] in _LIST_FIRST or text[b - 3:b - 2] in _LIST_FIRST or text[b - 2:b - 1] in _LIST_FIRST
               for a, b in items) < 2:
            continue
        orig = list(items)
        # The first item: its last two to four characters; the last: its first two or three before a stop.
        s0, e0 = items[0]
        for k in (3, 2, 4):
            if e0 - k >= s0 and _list_item(text[e0 - k:e0]):
                items[0] = (e0 - k, e0)
                break
        sl, el = items[-1]
        for k in (3, 2):
            if sl + k <= el and _list_item(text[sl:sl + k]) and (sl + k == el or text[sl + k] in _STOP
                                                                 or text[sl + k] in "等和"):
                items[-1] = (sl, sl + k)
                break
        good = [x for x in items if _list_item(text[x[0]:x[1]])]
        # Two good items at least, and one of three characters that is a whole item (not cut from the text
        # around the list) unless there are three (杜仲、麻仁煎服 is no list of names).
        whole = {x for x, y in zip(items, orig, strict=True) if x == y}
        if len(good) < 2 or 2 * len(good) < len(items) or (
                len(good) < 3 and not any(b - a == 3 and (a, b) in whole for a, b in good)):
            continue
        for a, b in items:
            w = text[a:b]
            if (a, b) in good or (len(w) == 2 and w[0] in _SURNAMES and w not in PLACES and w not in PLACE_SHORT
                                  and 3 * len(good) >= 2 * len(items)):
                out.append((a, b, 1, "NAME"))


def detect_zh(text: str, out: _Raw, uncertain_names: bool = False) -> None:
    """Append to out the places and cue-less names of a note with Chinese text; uncertain_names: every common
    surname with one or two characters that form no ordinary word is a name (recall over readability)."""
    # The cheap gates of the rarer passes are tested here as well as in them: a call per note costs a few
    # percent on notes of a hundred bytes.
    if "月" in text or "日" in text:
        _find_dates(text, out)
    n0 = len(out)
    taken = [(s, e) for s, e, _, _ in out]
    _find_places(text, out)
    if "村" in text or "镇" in text or "乡" in text:
        _find_towns(text, out, [(s, e) for s, e, _, _ in out[n0:]])
    taken += [(s, e) for s, e, _, _ in out[n0:]]
    if "路" in text or "街" in text or "巷" in text or "同" in text:
        _find_streets(text, out, taken)
    _find_names(text, out, taken, uncertain_names)
    _find_foreign(text, out, taken)
    _find_bylines(text, out)
    if "、" in text:
        _find_lists(text, out)
    if "（" in text or "(" in text:
        _find_sexed(text, out)
    # Inline, the test of whether a run of names can start anywhere (a call per note costs a few percent on
    # notes of a hundred bytes).
    if text[:1] in _RUN_FIRST_SET or "：" in text or ":" in text or "\n" in text:
        _find_name_runs(text, out)
    if out:  # most short notes have no span at all
        _spread_names(text, out)


# Names glued into one run after a colon or at a line's start (委员：李鹏乔石李瑞环朱镕基): a run of six Han
# characters or more that splits wholly into a surname and one or two characters, three items at least, each
# with a plausible given-name character and neither its given name nor its surname and first character a word.
_NAME_RUN_RX = re.compile(f"([{_HAN}]{{6,80}})(?=[（(，,。；;、\\s]|$)")


# A colon or a line's end before a surname.
_RUN_FIRST = "".join(sorted(set(_ALL_SURNAMES) | _WEAK_ONLY | {c[0] for c in _COMPOUND}))
_RUN_START_RX = re.compile(f"[：:\n](?=[{_RUN_FIRST}])")
_RUN_FIRST_SET = frozenset(_RUN_FIRST)


def _split_names(run: str) -> list[tuple[int, int]] | None:
    """The split of run into names (a surname and one or two characters; a compound surname and one or two)
    with the most items of three characters, or None where there is none. An item that is also a word (乔石,
    万里, 宋平) or has no given-name character may stand among them, one in three at most: in a run of
    names the run itself is the context."""
    n = len(run)
    # (score, items that are words, items) for each prefix of the run
    best: list[tuple[int, int, list[tuple[int, int]]] | None] = [None] * (n + 1)
    best[0] = (0, 0, [])
    for i in range(n):
        cur = best[i]
        if cur is None:
            continue
        sl = 2 if run[i:i + 2] in _COMPOUND else 1
        if sl == 1 and not (run[i] in _LIST_FIRST or run[i] in _WEAK_ONLY):
            continue
        for k in (1, 2):
            j = i + sl + k
            w = run[i:j]
            if j > n or not _ALWAYS_STOP.isdisjoint(w[sl:]) or w in PLACES or w in PLACE_SHORT:
                continue
            soft = w in WORDS or w[sl:] in WORDS or w[:sl + 1] in WORDS or NAME_CHARS.isdisjoint(w[sl:])
            if soft and sl == 2:
                continue
            # Items of three characters first, then those led by a common surname (吴邦国邹家华, not 吴邦 国邹家),
            # then the fewest words.
            score = (cur[0] + (2 if len(w) - sl == 2 else 0) + (1 if w[0] in _SURNAMES else 0) - (3 if soft else 0)
                     - (1 if soft and w[0] not in _SURNAMES else 0))
            old = best[j]
            if old is None or score > old[0]:
                best[j] = (score, cur[1] + soft, [*cur[2], (i, j)])
    # The whole run, else its longest prefix that splits (a list of names that goes on with one the split
    # cannot read, 尉健行 after a long run, or with the text after it).
    for j in range(n, 5, -1):
        end = best[j]
        if end is not None and len(end[2]) >= 3 and 3 * end[1] <= len(end[2]):
            return end[2]
    return None


def _find_name_runs(text: str, out: _Raw) -> None:
    # The starts only (the note's, a line's, after a colon): a regex led by a look-behind would try every
    # character of the note.
    starts = [m.end() for m in _RUN_START_RX.finditer(text)]
    if text[:1] in _LIST_FIRST or text[:1] in _WEAK_ONLY:
        starts.insert(0, 0)
    for p in starts:
        # The second name starts two to four characters in (李鹏乔石, 欧阳明高乔石).
        if not (text[p + 2:p + 3] in _RUN_FIRST_SET or text[p + 3:p + 4] in _RUN_FIRST_SET
                or text[p + 4:p + 5] in _RUN_FIRST_SET):
            continue
        m = _NAME_RUN_RX.match(text, p)
        if m is None:
            continue
        run = m.group(1)
        # Cheap before the split: a surname at least every fourth character.
        if 4 * sum(map(_RUN_FIRST_SET.__contains__, run)) < len(run):
            continue
        split = _split_names(run)
        if split is not None:
            s0 = m.start(1)
            e0 = s0 + split[-1][1]
            # The split outweighs the names found across its items (李鹏乔 of 李鹏乔石).
            out[:] = [x for x in out if not (x[3] == "NAME" and x[0] < e0 and s0 < x[1])]
            out.extend((s0 + a, s0 + b, 1, "NAME") for a, b in split)


# A name once found is a name wherever else it stands in the note (李鹏 ... 李鹏说), and a surname with one or
# two characters listed next to a name (江泽民、李鹏、乔石) is one too.
_ANY_SURNAME = f"(?:{'|'.join(_COMPOUND)}|[{_SURNAMES}{''.join(sorted(_WEAK_SURNAMES))}])"
_ENUM_RX = re.compile(f"、({_ANY_SURNAME}[{_HAN}]{{1,2}})(?=[、，,。；;）)等]|$)")
# A list of names with no separator (李鹏乔石朱镕基, a byline 徐国春张雅文): a surname and one or two
# characters right after a name, up to the next surname or the end of the clause.
_GLUED_RX = re.compile(f"({_ANY_SURNAME}[{_HAN}]{{1,2}}?)(?={_ANY_SURNAME}|[、，,。；;）)\\s]|$)")
_SURNAME_START = re.compile(_ANY_SURNAME)
_ENUM_BACK_RX = re.compile(f"(?:^|(?<=[，,。；;：:（(“『、\\s]))({_ANY_SURNAME}[{_HAN}]{{1,2}})$")


def _glued_ok(text: str, s: int, e: int) -> bool:
    """Whether a surname and characters glued to a name's end are a name too: neither an ordinary word nor the
    start of one (李鹏乔石, not 李鹏同志 or 张三和)."""
    w = text[s:e]
    return (w not in WORDS and text[s:s + 2] not in WORDS and _GIVEN_STOP.isdisjoint(w[1:])
            and text[e - 1:e + 1] not in WORDS and w not in PLACES and w not in PLACE_SHORT)


def _spread_names(text: str, out: _Raw) -> None:
    names = {text[s:e] for s, e, _, t in out if t == "NAME" and 2 <= e - s <= 4 and _is_han(text[s])}
    if not names:
        return
    found: list[tuple[int, int]] = []
    for w in names:
        i = text.find(w)
        while i >= 0:
            found.append((i, i + len(w)))
            i = text.find(w, i + 1)
    # Enumerations: a chain of 、-separated candidates touching a found name. A two-character candidate counts
    # even if it is a word (jieba lists 李鹏 and 乔石): the chain makes it a name.
    given = {(s, e) for s, e, _, t in out if t == "NAME"}
    spans = sorted(set(found) | given)
    todo = [x for x in spans]
    seen = set(spans)
    while todo:
        s, e = todo.pop()
        nxt = []
        m = _ENUM_RX.match(text, e) if text[e:e + 1] == "、" else None
        if m is not None and not (m.end(1) - m.start(1) == 3 and m.group(1) in WORDS):
            nxt.append(m.span(1))
        g = _GLUED_RX.match(text, e) if text[e:e + 1] in _LIST_FIRST else None
        if g is not None and _glued_ok(text, *g.span(1)):
            nxt.append(g.span(1))
        for k in (3, 2) if s >= 2 and _is_han(text[s - 1]) else ():
            # Backwards only from the start of the clause: a surname and characters glued before a name
            # in running text are mostly a word's end (高兴李四).
            if (s >= k and (s == k or not _is_han(text[s - k - 1])) and _SURNAME_START.match(text, s - k)
                    and _glued_ok(text, s - k, s)):
                nxt.append((s - k, s))
                break
        if s > 2 and text[s - 1] == "、":
            b = _ENUM_BACK_RX.search(text, max(0, s - 5), s - 1)
            if b is not None and not (b.end(1) - b.start(1) == 3 and b.group(1) in WORDS):
                nxt.append(b.span(1))
        for x in nxt:
            if x not in seen:
                seen.add(x)
                found.append(x)
                todo.append(x)
    # Most found spans are the names themselves: the sort of every span is needed only for the others.
    found = [x for x in found if x not in given]
    if not found:
        return
    covered = sorted((s, e) for s, e, _, _ in out)
    for s, e in found:
        k = bisect.bisect_right(covered, (s, 1 << 30)) - 1
        if k >= 0 and covered[k][1] > s:
            continue
        out.append((s, e, 1, "NAME"))
