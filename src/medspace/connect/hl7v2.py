"""HL7 v2 messages (ADT, ORU^R01, RDE^O11/O25, RAS^O17) into the common clinical model.

Files are streamed message by message (MLLP frames, blank lines, MSH starts and batch envelopes all
delimit messages). What a message says is kept wherever it can be tied to its patient:

- A whole message goes to quarantine (with its original bytes) only when it cannot be parsed (no MSH,
  invalid separators, a line that is not a segment), its type is not mapped, or it cannot be tied to a
  patient (no PID, or a PID-3 without any identifier), or its patient row cannot be stored.
- A segment whose row cannot be stored (a concept with neither a code nor any text, a row without an id,
  a clinical segment before any PID, a value over the size limits) goes to quarantine alone, at position
  `message N, segment K` with the message's bytes; the message's other rows are stored.
- Everything else is stored and flagged as a data-quality finding: a local or text-only concept (kept as
  sent, see `_Message.concept`), a standard code taken from the CE/CWE alternate triplet, a malformed or
  impossible date, a malformed number or a value outside its HL7 table (stored as null; a malformed OBX-5
  number keeps its text in `value_text`), a visit that could not be stored (the reference is null).
  Findings are counted only for rows that were stored.

Parsing follows python-hl7's conventions (separators from MSH-1/MSH-2, 1-based field numbers, MSH-1
is the field separator itself) but splits lazily with `str.split`, and only the segments and fields
that are mapped: `hl7.parse` builds a container object for every field, repetition and component,
which measured about 1,500 eight-segment messages/s here, a quarter of the connector's budget. The
tests check that the values read here agree with `hl7.parse`.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import re
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, cast

from medspace.connect.base import Concept, Finding, Quarantined, Sink, complete, pick_concept
from medspace.connect.errors import FindingKind, MappingError, Reason, SourceError
from medspace.model import canonical_system, normalise_code
from medspace.model.errors import ValueFormatError
from medspace.model.values import parse_float, parse_hl7_ts

CONNECTOR = "hl7v2"
CHUNK_BYTES = 1 << 16  # read size: bounds memory whatever the file size
MAX_MESSAGE_BYTES = 16 << 20  # a "message" larger than this is cut: a file with no boundaries is not one message

Row = dict[str, Any]

# --- splitting a file into messages ---------------------------------------------------------------

_LINE = re.compile(rb"([^\r\n\x0b\x1c]*)(\r\n|\r|\n|\x0b|\x1c)")
_ANY_TERMINATOR = re.compile(rb"[\r\n\x0b\x1c]")
_BATCH_SEGMENTS = frozenset((b"FHS", b"BHS", b"BTS", b"FTS"))
_BOM = b"\xef\xbb\xbf"
_FRAME_START, _FRAME_END = b"\x0b", b"\x1c"


class _Splitter:
    """Line-by-line state of `split_messages`: the message being collected, whether inside an MLLP frame,
    and the messages completed (one line can complete two: an MSH line that also ends a frame)."""

    __slots__ = ("cur", "done", "in_frame", "size")

    def __init__(self) -> None:
        self.cur: list[bytes] = []
        self.size = 0
        self.in_frame = False
        self.done: list[bytes] = []

    def flush(self) -> None:
        """End the message being collected, if any."""
        if self.cur:
            self.done.append(b"".join(self.cur))
            self.cur = []
            self.size = 0

    def line(self, content: bytes, whole: bytes, term: bytes) -> None:
        """Take one line: its content, the content with its terminator, and the terminator."""
        framing = term in (_FRAME_START, _FRAME_END)
        if content[:1] == b"\xef" and content.startswith(_BOM):
            # Files concatenated from Windows exports carry a byte-order mark before each one's first MSH.
            content, whole = content[3:], whole[3:]
        head = content[:3] if content[:1] not in (b" ", b"\t") else content.lstrip(b" \t")[:3]
        if not content.strip():
            # Blank lines separate messages in plain files; inside an MLLP frame the frame decides.
            if not self.in_frame:
                self.flush()
        elif head in _BATCH_SEGMENTS:
            # Batch and file envelopes hold no clinical data; they only bound the messages inside.
            self.flush()
        else:
            if head == b"MSH":
                self.flush()
            piece = content if framing else whole  # MLLP's block characters are not part of the message
            self.cur.append(piece)
            self.size += len(piece)
            if self.size > MAX_MESSAGE_BYTES:
                self.flush()
        if framing:
            self.flush()
            self.in_frame = term == _FRAME_START


def split_messages(stream: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """Stream (1-based message number, raw bytes) from an HL7 v2 file without reading it whole."""
    splitter = _Splitter()
    done = splitter.done
    n = 0
    pending: list[bytes] = []  # a partial line carried over to the next chunk
    first = True
    while True:
        chunk = stream.read(CHUNK_BYTES)
        if first:
            first = False
            while 0 < len(chunk) < len(_BOM) and _BOM.startswith(chunk):
                more = stream.read(CHUNK_BYTES)  # a short read must not hide the byte-order mark
                if not more:
                    break
                chunk += more
            if chunk.startswith(_BOM):
                chunk = chunk[len(_BOM):]
                if not chunk:
                    continue  # the mark was all this read held; it is not the end of the file
        eof = not chunk
        if not eof and not _ANY_TERMINATOR.search(chunk):
            pending.append(chunk)  # scanning only new bytes keeps a very long line linear
            continue
        buf = b"".join((*pending, chunk)) if pending else chunk
        pending = []
        pos = 0
        end = len(buf)
        for m in _LINE.finditer(buf):
            term = m.group(2)
            if term == b"\r" and not eof and m.end() == end:
                break  # the \n of a \r\n may be in the next chunk
            pos = m.end()
            splitter.line(m.group(1), m.group(0), term)
            if done:
                for msg in done:
                    n += 1
                    yield n, msg
                done.clear()
        rest = buf[pos:]
        if eof:
            if rest:
                splitter.line(rest, rest, b"")
            splitter.flush()
            for msg in done:
                n += 1
                yield n, msg
            return
        if rest:
            pending.append(rest)


# --- reading one message --------------------------------------------------------------------------

# HL7 table 0211 character sets -> Python codecs (names compared upper-case, without spaces, - and _).
_CHARSETS: dict[str, str] = {
    "ASCII": "ascii",
    "UNICODEUTF8": "utf-8", "UTF8": "utf-8",
    "GB180302000": "gb18030", "GB18030": "gb18030", "GBK": "gbk", "GB2312": "gb2312",
    "BIG5": "big5", "KSX1001": "euc_kr", "ISOIR87": "iso2022_jp", "ISOIR159": "iso2022_jp_2",
    **{f"8859/{i}": f"iso8859-{i}" for i in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 13, 14, 15, 16)},
}

_VALID_SEPARATORS = frozenset({("|", "^", "~", "\\", "&")})  # the standard ones skip the check
_SEG_ID = re.compile(r"[A-Z][A-Z0-9]{2}")
_MSG_TYPE_SHAPE = re.compile(r"[A-Z]{3}(\^[A-Z][0-9]{2})?")  # only a real type^event is named in a detail

# Segments any mapped message type reads; the others are checked for shape and otherwise ignored.
_ADT_SEGMENTS = frozenset({"PID", "PV1", "PV2", "DG1", "AL1", "PR1"})
_ORU_SEGMENTS = frozenset({"PID", "PV1", "PV2", "OBR", "OBX"})
_RDE_SEGMENTS = frozenset({"PID", "PV1", "PV2", "ORC", "TQ1", "RXE", "RXR"})
_RAS_SEGMENTS = frozenset({"PID", "PV1", "PV2", "ORC", "TQ1", "RXA", "RXR"})
_READ_SEGMENTS = _ADT_SEGMENTS | _ORU_SEGMENTS | _RDE_SEGMENTS | _RAS_SEGMENTS

# A11 (cancel admit) is left out on purpose: mapped the same way it would record a visit that never was.
_MAPPED_TYPES: dict[tuple[str, str], frozenset[str]] = {
    **{("ADT", e): _ADT_SEGMENTS for e in ("A01", "A02", "A03", "A04", "A05", "A06", "A07", "A08", "A13")},
    ("ORU", "R01"): _ORU_SEGMENTS,
    ("RDE", "O11"): _RDE_SEGMENTS,
    ("RDE", "O25"): _RDE_SEGMENTS,
    ("RAS", "O17"): _RAS_SEGMENTS,
}


class _Seg:
    """One segment: its id, its 1-based position in the message and its raw fields (fields[n] is SEG-n)."""

    __slots__ = ("f", "pos", "sid")

    def __init__(self, sid: str, pos: int, fields: list[str]) -> None:
        self.sid = sid
        self.pos = pos
        self.f = fields

    def at(self, n: int, k: int | None = None) -> str:
        """How a field is named in quarantine details: a position, never a value."""
        name = f"{self.sid}-{n}" if k is None else f"{self.sid}-{n}.{k}"
        return f"{name} (segment {self.pos})"


class _Message:
    """A message split into segments, with its separators and the readers of field values."""

    __slots__ = ("charset", "control_id", "cs", "esc", "event", "found", "fs", "msh", "rs", "segments", "sender",
                 "ss", "type", "z_segments")

    def __init__(self, raw: bytes) -> None:
        data = bytes(raw).strip(b" \t\r\n\x00\x0b\x1c")
        if data.startswith(_BOM):
            data = data[len(_BOM):]
        if not data:
            raise MappingError(Reason.PARSE_ERROR, "empty message")
        if not data.startswith(b"MSH"):
            raise MappingError(Reason.PARSE_ERROR, "not an HL7 v2 message: it does not begin with an MSH segment")
        self._separators(data)
        self.charset = _declared_charset(data, self.fs, self.rs, self.cs)
        text = _decode(data, self.charset)
        # (model field, kind) noted by the readers while one row is built; the mapper takes them per row.
        self.found: list[tuple[str, FindingKind]] = []
        self._split(text)

    # -- structure --
    def _separators(self, data: bytes) -> None:
        if len(data) < 5:
            raise MappingError(Reason.PARSE_ERROR, "MSH segment too short to hold the separators (MSH-1, MSH-2)")
        fs = chr(data[3])
        enc_end = data.find(data[3:4], 4)
        line_end = len(data)
        for t in (b"\r", b"\n"):
            i = data.find(t)
            if i != -1:
                line_end = min(line_end, i)
        enc = data[4:enc_end if 0 <= enc_end < line_end else line_end].decode("latin-1")
        # Missing encoding characters take the standard ones, as python-hl7 does.
        cs = enc[0] if len(enc) > 0 else "^"
        rs = enc[1] if len(enc) > 1 else "~"
        esc = enc[2] if len(enc) > 2 else "\\"
        ss = enc[3] if len(enc) > 3 else "&"
        seps = (fs, cs, rs, esc, ss)
        if seps not in _VALID_SEPARATORS and (
                len(set(seps)) != 5 or any(c.isalnum() or c.isspace() or not c.isprintable() or ord(c) > 126
                                           for c in seps)):
            raise MappingError(Reason.PARSE_ERROR, "MSH-1/MSH-2 separators are invalid (not five distinct "
                                                   "punctuation characters)")
        self.fs, self.cs, self.rs, self.esc, self.ss = seps

    def _split(self, text: str) -> None:
        fs = self.fs
        lines = text.replace("\r\n", "\r").replace("\n", "\r").split("\r")
        msh_line = lines[0]
        self.msh = _Seg("MSH", 1, ["MSH", fs, *msh_line[4:].split(fs)])
        self.segments: list[_Seg] = []
        self.z_segments = 0
        pos = 1
        for line in lines[1:]:
            if not line or line.isspace():
                continue
            pos += 1
            if line[0].isspace():
                line = line.lstrip()
            if line[0] == "Z":
                self.z_segments += 1  # site-defined segments are outside the standard and never mapped
                continue
            sid = line[:3]
            if not _SEG_ID.match(sid) or (len(line) > 3 and line[3] != fs):
                raise MappingError(Reason.BAD_SEGMENT, f"segment {pos} cannot be read: expected a 3-character "
                                                       "segment id followed by the field separator")
            if sid == "MSH":
                raise MappingError(Reason.PARSE_ERROR, f"segment {pos} is a second MSH: more than one message")
            if sid in _READ_SEGMENTS:
                self.segments.append(_Seg(sid, pos, line.split(fs)))
        self.type = self.get(self.msh, 9, 1).upper()
        self.event = self.get(self.msh, 9, 2).upper()
        self.control_id = self.get(self.msh, 10)
        # Who sent it names its local code systems: MSH-3 sending application, else MSH-4 facility (HD).
        msh = self.msh
        self.sender = self.get(msh, 3) or self.get(msh, 3, 2) or self.get(msh, 4) or self.get(msh, 4, 2)

    # -- values --
    def value(self, raw: str) -> str:
        """A leaf value: its first subcomponent, unescaped and trimmed; HL7's explicit null "" is empty."""
        if self.ss in raw:
            raw = raw.split(self.ss, 1)[0]
        if self.esc in raw:
            raw = self._unescape(raw)
        raw = raw.strip()
        return "" if raw == '""' else raw

    def text(self, raw: str) -> str:
        """A whole repetition read as text (ST, TX, FT): separators kept, escapes resolved."""
        if self.esc in raw:
            raw = self._unescape(raw)
        raw = raw.strip()
        return "" if raw == '""' else raw

    def comps(self, seg: _Seg, n: int) -> list[str]:
        """The raw components of the first repetition of field n."""
        f = seg.f
        if n >= len(f) or not f[n]:
            return []
        v = f[n]
        if self.rs in v:
            v = v.split(self.rs, 1)[0]
        return v.split(self.cs)

    def reps(self, seg: _Seg, n: int) -> list[list[str]]:
        """The raw components of every repetition of field n."""
        f = seg.f
        if n >= len(f) or not f[n]:
            return []
        cs = self.cs
        return [r.split(cs) for r in f[n].split(self.rs)]

    def get(self, seg: _Seg, n: int, k: int = 1) -> str:
        """Component k of the first repetition of field n, as a value ("" if absent)."""
        # The hot path of the mapping: written out rather than through comps() and value().
        f = seg.f
        if n >= len(f):
            return ""
        v = f[n]
        if not v:
            return ""
        if self.rs in v:
            v = v.split(self.rs, 1)[0]
        if k == 1:
            if self.cs in v:
                v = v.split(self.cs, 1)[0]
        else:
            c = v.split(self.cs)
            if k > len(c):
                return ""
            v = c[k - 1]
        if self.ss in v or self.esc in v:
            return self.value(v)
        v = v.strip()
        return "" if v == '""' else v

    def comp(self, c: list[str], k: int) -> str:
        """Component k of already split components, as a value."""
        if k > len(c):
            return ""
        v = c[k - 1]
        if self.ss in v or self.esc in v:
            return self.value(v)
        v = v.strip()
        return "" if v == '""' else v

    def ts(self, seg: _Seg, n: int, field: str, k: int = 1) -> datetime | None:
        """A DTM/TS field as a naive UTC datetime; None if empty, or if malformed (noted as bad_date on `field`)."""
        v = self.get(seg, n, k)
        return self.parse_ts(v, field) if v else None

    def date(self, seg: _Seg, n: int, field: str, k: int = 1) -> date | None:
        """A DT/DTM field as a date; None if empty, or if malformed (noted as bad_date on `field`)."""
        v = self.get(seg, n, k)
        if not v:
            return None
        t = self.parse_ts(v, field)
        return t.date() if t is not None else None

    def parse_ts(self, v: str, field: str) -> datetime | None:
        """A non-empty DTM value as a naive UTC datetime; None if malformed or impossible (noted)."""
        try:
            return parse_hl7_ts(v)
        except (ValueFormatError, OverflowError):  # overflow: a time zone pushing year 1 or 9999 out of range
            self.found.append((field, FindingKind.BAD_DATE))
            return None

    def num(self, seg: _Seg, n: int, field: str, k: int = 1) -> float | None:
        """An NM field as a float; None if empty, or if not a finite number (noted as bad_value on `field`)."""
        v = self.get(seg, n, k)
        if not v:
            return None
        x = _number(v)
        if x is None:
            self.found.append((field, FindingKind.BAD_VALUE))
        return x

    def enum(self, value: str, table: dict[str, str], field: str, known: frozenset[str] = frozenset()) -> str | None:
        """A value of an HL7 table mapped to the model's; None if empty, or outside the table (noted as
        bad_value on `field`) or in it without a model equivalent (`known`: not a finding)."""
        if not value:
            return None
        v = table.get(value)
        if v is None and value not in known:
            self.found.append((field, FindingKind.BAD_VALUE))
        return v

    def concept(self, table: str, seg: _Seg, n: int, default_system: str = "", text: str = "") -> Concept:
        """A CE/CWE field as the concept to store: primary triplet, then the alternate (CE/CWE-4..6), kept as
        sent when not standard (see `pick_concept`; local systems are named after MSH-3). Notes the
        finding on `code`, and `alternate_code` when the standard code came from the alternate triplet.

        A bare identifier (CE-1 with no text, no coding system and no alternate, e.g. `AL1|1|DA|PENICILLIN`)
        is taken as the concept's text: nothing says it is a code, and senders put names there. `text`
        (e.g. DG1-4 description) and CWE-9 original text label a concept whose triplets carry none.
        MISSING_FIELD if there is neither a code nor any text."""
        c = self.comps(seg, n)
        code = label = system = alt_code = alt_text = alt_system = original = ""
        if c:
            code = self.comp(c, 1)
            label = self.comp(c, 2)
            system = self.comp(c, 3)
            if len(c) > 3:
                alt_code, alt_text, alt_system = self.comp(c, 4), self.comp(c, 5), self.comp(c, 6)
                original = self.comp(c, 9)
        if code and not system:
            system = default_system
        codings: list[tuple[str | None, str | None, str | None]] = []
        if code:
            if system or label or alt_code or alt_text:
                codings.append((system or None, code, label or None))
            else:
                label, code = code, ""
        if alt_code:
            codings.append((alt_system or None, alt_code, alt_text or label or None))
        label = label or alt_text or original or text
        try:
            concept = pick_concept(table, codings, label or None, sender=self.sender or None)
        except MappingError:
            raise MappingError(Reason.MISSING_FIELD, f"{seg.at(n)}: {table} has neither a code nor a text") from None
        if concept.finding is not None:
            self.found.append(("code", concept.finding))
        chosen = concept.system
        if alt_code and concept.status == "standard" and chosen is not None and not (
                code and _canonical(system) == chosen and normalise_code(chosen, code) == concept.code):
            self.found.append(("code", FindingKind.ALTERNATE_CODE))
        return concept

    def _unescape(self, v: str) -> str:
        # Written here rather than taken from python-hl7, whose unescape logs the field's value on errors.
        parts = v.split(self.esc)
        out = [parts[0]]
        last = len(parts) - 1
        i = 1
        while i <= last:
            if i == last:
                out.append(self.esc + parts[i])  # an unterminated escape is kept as sent
                break
            out.append(self._escape_sequence(parts[i]))
            out.append(parts[i + 1])
            i += 2
        return "".join(out)

    def _escape_sequence(self, seq: str) -> str:
        simple = {"F": self.fs, "S": self.cs, "T": self.ss, "R": self.rs, "E": self.esc, ".br": "\n", ".sp": "\n"}
        if seq in simple:
            return simple[seq]
        if seq[:1] == "X":
            try:
                return bytes.fromhex(seq[1:]).decode(self.charset or "utf-8", errors="replace")
            except (ValueError, LookupError):
                return ""
        return ""  # highlighting, formatting and character-set switches carry no value


def _declared_charset(data: bytes, fs: str, rs: str, cs: str) -> str | None:
    """The codec of MSH-18, if it names one this connector knows."""
    end = len(data)
    for t in (b"\r", b"\n"):
        i = data.find(t)
        if i != -1:
            end = min(end, i)
    fields = data[:end].split(fs.encode("latin-1"))
    if len(fields) < 18:  # fields[n - 1] is MSH-n
        return None
    name = fields[17].split(rs.encode("latin-1"), 1)[0].split(cs.encode("latin-1"), 1)[0]
    key = name.decode("latin-1").upper().replace(" ", "").replace("-", "").replace("_", "")
    return _CHARSETS.get(key)


def _decode(data: bytes, charset: str | None) -> str:
    """The message text: in its declared character set, else UTF-8, else Latin-1 (which always decodes)."""
    for codec in (charset, "utf-8"):
        if codec:
            try:
                return data.decode(codec)
            except (UnicodeDecodeError, LookupError):
                pass
    return data.decode("latin-1")


def _number(v: str) -> float | None:
    """A decimal string as a finite float; None if it is not one."""
    try:
        x = parse_float(v)
    except ValueFormatError:
        return None
    return x if math.isfinite(x) else None


# Senders repeat a handful of system names: remember what each one canonicalises to.
_canonical = lru_cache(maxsize=1024)(canonical_system)


# --- mapping ---------------------------------------------------------------------------------------

_SEX = {"M": "male", "F": "female", "O": "other", "U": "unknown", "A": "other", "N": "unknown"}
_MARITAL = {"A": "separated", "B": "unmarried", "C": "common law", "D": "divorced", "E": "legally separated",
            "G": "living together", "I": "interlocutory", "M": "married", "N": "annulled", "O": "other",
            "P": "domestic partner", "R": "registered domestic partner", "S": "single", "T": "unreported",
            "U": "unknown", "W": "widowed"}
_MRN_TYPES = frozenset({"MR", "MRN"})
_NATIONAL_TYPES = frozenset({"NI", "SS", "CZ", "NN"})  # plus NNxxx (national id of country xxx)
_INSURANCE_TYPES = frozenset({"HC", "MB", "MC", "MA", "SN", "JHN"})
_ENCOUNTER_CLASS = {"I": "inpatient", "O": "ambulatory", "E": "emergency"}
# HL7 table 0127 allergen type (MA, miscellaneous, has no model category) and 0128 severity.
_ALLERGY_CATEGORY = {"DA": "medication", "MC": "medication", "FA": "food", "EA": "environment",
                     "AA": "environment", "PA": "environment", "LA": "environment"}
_ALLERGY_CATEGORY_UNMAPPED = frozenset({"MA"})
_CRITICALITY = {"SV": "high", "MO": "low", "MI": "low", "U": "unable-to-assess"}
# HL7 table 0085 (N not asked, O order detail and B appended report name no result status of the model).
_OBS_STATUS = {"F": "final", "C": "corrected", "P": "preliminary", "R": "preliminary", "S": "preliminary",
               "I": "registered", "X": "cancelled", "D": "entered-in-error", "W": "entered-in-error", "U": "final",
               "A": "amended"}
_OBS_STATUS_UNMAPPED = frozenset({"N", "O", "B"})
# OBR-24 diagnostic service sections (HL7 table 0074).
_LAB_SECTIONS = frozenset({"AU", "BG", "BLB", "CH", "CP", "CUS", "HM", "IMM", "LAB", "MB", "MCB", "MYC", "NMS",
                           "OSL", "PAT", "SP", "SR", "TX", "URN", "VR"})
_IMAGING_SECTIONS = frozenset({"CT", "CTH", "MR", "NMR", "RAD", "RUS", "US", "VUS", "XRC"})
_VITAL_SIGNS = frozenset({"8867-4", "8480-6", "8462-4", "8310-5", "9279-1", "29463-7", "8302-2", "39156-5",
                          "59408-5", "2708-6", "85354-9", "8287-5", "3141-9"})
_TEXT_TYPES = frozenset({"ST", "TX", "FT"})
_CODED_TYPES = frozenset({"CE", "CWE", "CNE", "CF"})
_NO_VALUE_TYPES = frozenset({"ED", "RP"})  # encapsulated data and pointers are documents, not results
# HL7 table 0038 order status; 0119 order control (only a fallback, so an unknown one is no finding).
_ORDER_STATUS = {"A": "active", "CA": "cancelled", "CM": "completed", "DC": "stopped", "ER": "entered-in-error",
                 "HD": "on-hold", "IP": "active", "RP": "stopped", "SC": "active"}
_ORDER_CONTROL = {"NW": "active", "OK": "active", "SC": "active", "XO": "active", "RO": "active",
                  "CA": "cancelled", "OC": "cancelled", "CR": "cancelled", "DC": "stopped", "OD": "stopped",
                  "DR": "stopped", "HD": "on-hold", "OH": "on-hold"}
_ADMIN_STATUS = {"CP": "completed", "PA": "completed", "RE": "not-done", "NA": "not-done"}  # HL7 table 0322
_RANGE = re.compile(r"\s*(-?\d+(?:\.\d*)?|-?\.\d+)\s*(?:-|–|~|to)\s*(-?\d+(?:\.\d*)?|-?\.\d+)\s*\Z")
_BOUND = re.compile(r"\s*([<>])=?\s*(-?\d+(?:\.\d*)?|-?\.\d+)\s*\Z")
# Findings whose field is stored as null: the value read failed its check.
_NULLED = frozenset({FindingKind.BAD_DATE, FindingKind.BAD_VALUE, FindingKind.BAD_REFERENCE})
# Tables whose ids are positions in the message (set ids, counters): a repeated id there is another row.
# They are also the ones that refer to a visit.
_POSITIONAL_IDS = _VISIT_ROWS = frozenset({"condition", "procedure", "observation", "medication"})


def _clean(row: Row) -> Row:
    """Leave out what the message did not have."""
    return {k: v for k, v in row.items() if v is not None and v != ""}


def _coded(row: Row, c: Concept) -> None:
    """Put a concept into a coded row."""
    row["code"], row["code_system"], row["display"], row["code_status"] = c.code, c.system, c.display, c.status


def _patient(m: _Message, seg: _Seg) -> Row:
    """PID -> patient."""
    ident: str | None = None
    mrn = national = passport = insurance = None
    for c in m.reps(seg, 3):
        v = m.comp(c, 1)
        if not v:
            continue
        typ = m.comp(c, 5).upper()
        ident = ident or v
        if typ in _MRN_TYPES:
            mrn = mrn or v
        elif typ in _NATIONAL_TYPES or (typ.startswith("NN") and len(typ) == 5):
            national = national or v
        elif typ == "PPN":
            passport = passport or v
        elif typ in _INSURANCE_TYPES:
            insurance = insurance or v
    if ident is None:
        raise MappingError(Reason.MISSING_FIELD, f"{seg.at(3)} patient identifier list has no identifier")
    row: Row = {"id": mrn or ident, "mrn": mrn, "national_id": national or m.get(seg, 19),
                "passport_id": passport, "insurance_id": insurance}

    names = m.reps(seg, 5)
    if names:
        name = next((c for c in names if m.comp(c, 7).upper() == "L"), names[0])
        row["family_name"] = m.comp(name, 1)
        row["given_name"] = " ".join(x for x in (m.comp(name, 2), m.comp(name, 3)) if x)
    row["birth_date"] = m.date(seg, 7, "birth_date")
    row["sex"] = m.enum(m.get(seg, 8).upper(), _SEX, "sex")

    addresses = m.reps(seg, 11)
    if addresses:
        a = next((c for c in addresses if m.comp(c, 7).upper() == "H"), addresses[0])
        row["address_line"] = ", ".join(x for x in (m.comp(a, 1), m.comp(a, 2)) if x)
        row["city"] = m.comp(a, 3)
        row["province"] = m.comp(a, 4)
        row["postal_code"] = m.comp(a, 5)
        row["country"] = m.comp(a, 6)
        row["district"] = m.comp(a, 9) or m.get(seg, 12)
    phone, email = _contacts(m, m.reps(seg, 13))
    if not phone:
        phone = _contacts(m, m.reps(seg, 14))[0]
    row["phone"], row["email"] = phone, email

    marital = m.comps(seg, 16)
    if marital:
        code = m.comp(marital, 1).upper()
        row["marital_status"] = _MARITAL.get(code) or m.comp(marital, 2) or code
    ethnic = m.comps(seg, 22) or m.comps(seg, 10)  # ethnic group, else race
    if ethnic:
        row["ethnicity"] = m.comp(ethnic, 2) or m.comp(ethnic, 1)
    row["deceased_date"] = m.date(seg, 29, "deceased_date")
    return _clean(row)


def _contacts(m: _Message, reps: list[list[str]]) -> tuple[str, str]:
    """(phone, e-mail) from XTN repetitions: the first of each."""
    phone = email = ""
    for c in reps:
        equipment = m.comp(c, 3).upper()
        mail = m.comp(c, 4)
        if mail and not email and ("@" in mail or equipment in ("INTERNET", "X.400")):
            email = mail
        if phone or equipment in ("INTERNET", "X.400"):
            continue
        number = m.comp(c, 1) or m.comp(c, 12)
        if not number and m.comp(c, 7):
            country, area, local, ext = m.comp(c, 5), m.comp(c, 6), m.comp(c, 7), m.comp(c, 8)
            number = " ".join(x for x in (f"+{country}" if country else "", area, local) if x)
            if ext:
                number += f" x{ext}"
        if number and "@" not in number:
            phone = number
    return phone, email


def _encounter(m: _Message, seg: _Seg, patient_id: str) -> Row:
    """PV1 -> encounter."""
    visit = m.get(seg, 19)
    if not visit:
        visit = f"{_control_id(m, 'the visit (PV1-19 is empty)')}-visit"
    cls = m.get(seg, 2).upper()
    row: Row = {
        "id": visit,
        "patient_id": patient_id,
        "encounter_class": _ENCOUNTER_CLASS.get(cls, "other") if cls else None,
        "start_time": m.ts(seg, 44, "start_time"),
        "end_time": m.ts(seg, 45, "end_time"),
        "department": m.get(seg, 10) or m.get(seg, 3),
        "discharge_disposition": m.get(seg, 36),
    }
    return _clean(row)


def _control_id(m: _Message, needed_for: str) -> str:
    if not m.control_id:
        raise MappingError(Reason.MISSING_FIELD, f"MSH-10 message control id is empty; it is needed to identify "
                                                 f"{needed_for}")
    return m.control_id


def _condition(m: _Message, seg: _Seg, patient_id: str, visit: str | None, encounter_id: str | None,
               index: int) -> Row:
    """DG1 -> condition. DG1-2 (the deprecated coding method) names the system DG1-3 leaves out."""
    concept = m.concept("condition", seg, 3, default_system=m.get(seg, 2), text=m.get(seg, 4))
    base = visit or _control_id(m, "the diagnosis (no PV1)")
    onset = m.date(seg, 5, "onset_date")
    row: Row = {
        "id": f"{base}-DG1-{m.get(seg, 1) or index}",
        "patient_id": patient_id,
        "encounter_id": encounter_id,
        "onset_date": onset,
        "recorded_date": m.date(seg, 19, "recorded_date") or onset,
    }
    _coded(row, concept)
    return _clean(row)


def _procedure(m: _Message, seg: _Seg, patient_id: str, visit: str | None, encounter_id: str | None,
               index: int) -> Row:
    """PR1 -> procedure."""
    concept = m.concept("procedure", seg, 3, default_system=m.get(seg, 2), text=m.get(seg, 4))
    base = visit or _control_id(m, "the procedure (no PV1)")
    row: Row = {
        "id": f"{base}-PR1-{m.get(seg, 1) or index}",
        "patient_id": patient_id,
        "encounter_id": encounter_id,
        "performed_time": m.ts(seg, 5, "performed_time"),
    }
    _coded(row, concept)
    return _clean(row)


def _allergy(m: _Message, seg: _Seg, patient_id: str) -> Row:
    """AL1 -> allergy. Its id is the patient's and the substance's (code, else text), so a message that
    repeats the patient's allergies updates them rather than adding copies."""
    concept = m.concept("allergy", seg, 3)
    reactions = [m.comp(c, 1) for c in m.reps(seg, 5)]
    if concept.code:
        substance = concept.code
    else:  # text only: a short digest keeps the text out of the key and the key short
        key = (concept.display or "").casefold().encode("utf-8")
        substance = "t" + hashlib.blake2s(key, digest_size=8).hexdigest()
    row: Row = {
        "id": f"{patient_id}-AL1-{substance}",
        "patient_id": patient_id,
        "category": m.enum(m.get(seg, 2).upper(), _ALLERGY_CATEGORY, "category", _ALLERGY_CATEGORY_UNMAPPED),
        "criticality": m.enum(m.get(seg, 4).upper(), _CRITICALITY, "criticality"),
        "reaction": "; ".join(r for r in reactions if r),
        "recorded_date": m.date(seg, 6, "recorded_date"),
    }
    _coded(row, concept)
    return _clean(row)


class _ObsGroup:
    """An OBR and what its OBX rows share: the order number, the observation time and the section."""

    __slots__ = ("base", "count", "section", "time", "time_bad")

    def __init__(self, base: str, time: datetime | None, section: str, time_bad: bool = False) -> None:
        self.base, self.time, self.section, self.time_bad = base, time, section, time_bad
        self.count = 0  # OBX rows so far: the index of those without a set id


def _observation(m: _Message, seg: _Seg, group: _ObsGroup, base: str, patient_id: str,
                 encounter_id: str | None) -> Row:
    """OBX (in its OBR group) -> observation."""
    concept = m.concept("observation", seg, 3)
    code = concept.code
    row: Row = {
        "id": f"{base}-{m.get(seg, 1) or group.count}",
        "patient_id": patient_id,
        "encounter_id": encounter_id,
        "unit": m.get(seg, 6, 1) or m.get(seg, 6, 2),
        "interpretation": m.get(seg, 8),
        "status": m.enum(m.get(seg, 11).upper(), _OBS_STATUS, "status", _OBS_STATUS_UNMAPPED),
    }
    _coded(row, concept)
    when = m.get(seg, 14)
    if when:
        row["effective_time"] = m.parse_ts(when, "effective_time")
    elif group.time_bad:
        m.found.append(("effective_time", FindingKind.BAD_DATE))  # OBR-7, which it would have taken
    else:
        row["effective_time"] = group.time
    section = group.section
    if section in _LAB_SECTIONS:
        row["category"] = "laboratory"
    elif section in _IMAGING_SECTIONS:
        row["category"] = "imaging"
    elif code in _VITAL_SIGNS:
        row["category"] = "vital-signs"
    elif not section:
        row["category"] = "laboratory"  # ORU^R01 without a section is the laboratory result message
    _obx_value(m, seg, row)
    low, high = _reference_range(m.get(seg, 7))
    row["ref_low"], row["ref_high"] = low, high
    return _clean(row)


def _obx_value(m: _Message, seg: _Seg, row: Row) -> None:
    """OBX-5 by its value type OBX-2. A number that does not parse is kept as text, with a finding."""
    vt = m.get(seg, 2).upper()
    reps = m.reps(seg, 5)
    if not reps or vt in _NO_VALUE_TYPES:
        return
    first = reps[0]
    if vt == "NM":
        v = m.comp(first, 1)
        if v:
            x = _number(v)
            if x is None:
                row["value_text"] = v
                m.found.append(("value_num", FindingKind.BAD_VALUE))
            else:
                row["value_num"] = x
    elif vt == "SN":
        comparator, n1, sep, n2 = (m.comp(first, k) for k in (1, 2, 3, 4))
        if (n1 and _number(n1) is None) or (n2 and _number(n2) is None):
            m.found.append(("value_num", FindingKind.BAD_VALUE))
            row["value_text"] = f"{comparator}{n1}{sep}{n2}"
        elif n1 and not sep and comparator in ("", "="):
            row["value_num"] = _number(n1)
        else:
            row["value_text"] = f"{comparator}{n1}{sep}{n2}"
    elif vt in _TEXT_TYPES:
        row["value_text"] = "\n".join(t for t in (m.text(m.cs.join(c)) for c in reps) if t)
    elif vt in _CODED_TYPES:
        row["value_text"] = m.comp(first, 2) or m.comp(first, 1)
    else:
        text = m.text(m.cs.join(first))
        if not vt and text:
            x = _number(text)
            if x is not None:
                row["value_num"] = x
                return
        row["value_text"] = text  # an untyped value that is not a number is kept as text


def _reference_range(text: str) -> tuple[float | None, float | None]:
    """OBX-7 "3.5-5.0", "<5" or ">3" as (low, high); free text such as "negative" gives neither."""
    if not text:
        return None, None
    m = _RANGE.match(text)
    if m:
        low, high = float(m.group(1)), float(m.group(2))
        if math.isfinite(low) and math.isfinite(high):
            return low, high
        return None, None
    m = _BOUND.match(text)
    if m:
        bound = float(m.group(2))
        if not math.isfinite(bound):
            return None, None
        return (None, bound) if m.group(1) == "<" else (bound, None)
    return None, None


class _Order:
    """A pharmacy order group being collected: ORC, TQ1, RXE or RXA, and the RXR that follows it."""

    __slots__ = ("encounter_bad", "encounter_id", "give", "index", "orc", "patient_id", "rxr", "tq1")

    def __init__(self, orc: _Seg | None, tq1: _Seg | None, give: _Seg, index: int, patient_id: str,
                 encounter_id: str | None, encounter_bad: bool) -> None:
        self.orc, self.tq1, self.give, self.index = orc, tq1, give, index
        self.patient_id, self.encounter_id, self.encounter_bad = patient_id, encounter_id, encounter_bad
        self.rxr: _Seg | None = None


def _order_id(m: _Message, order: _Order, seen: dict[str, int]) -> str:
    """ORC-2 placer or ORC-3 filler order number; else `<MSH-10>-<RXE|RXA>-<n>`."""
    sid = order.give.sid
    oid = (m.get(order.orc, 2) or m.get(order.orc, 3)) if order.orc is not None else ""
    if not oid:
        return f"{_control_id(m, f'the order ({sid} without ORC-2/ORC-3)')}-{sid}-{order.index}"
    if sid == "RXA":
        return f"{oid}-RXA-{m.get(order.give, 2) or order.index}"
    seen[oid] = seen.get(oid, 0) + 1
    return oid if seen[oid] == 1 else f"{oid}-RXE-{seen[oid]}"


def _medication(m: _Message, order: _Order, seen: dict[str, int]) -> Row:
    """ORC/TQ1/RXE/RXR or ORC/RXA/RXR -> medication."""
    g, orc, tq1 = order.give, order.orc, order.tq1
    concept = m.concept("medication", g, 2 if g.sid == "RXE" else 5)
    row: Row = {"id": _order_id(m, order, seen), "patient_id": order.patient_id,
                "encounter_id": order.encounter_id}
    if g.sid == "RXE":
        row["dose_value"] = m.num(g, 3, "dose_value")
        row["dose_unit"] = m.get(g, 5, 1) or m.get(g, 5, 2)
        row["frequency"] = m.get(g, 1, 2) or (m.get(tq1, 3) if tq1 is not None else "") or m.get(g, 1, 8)
        # When it started, else when it was ordered: TQ1-7, RXE-1.4, RXE-32, ORC-9.
        start = ((m.date(tq1, 7, "start_date") if tq1 is not None else None) or m.date(g, 1, "start_date", 4)
                 or m.date(g, 32, "start_date"))
        row["end_date"] = (m.date(tq1, 8, "end_date") if tq1 is not None else None) or m.date(g, 1, "end_date", 5)
    else:
        row["dose_value"] = m.num(g, 6, "dose_value")
        row["dose_unit"] = m.get(g, 7, 1) or m.get(g, 7, 2)
        start = m.date(g, 3, "start_date")
        row["end_date"] = m.date(g, 4, "end_date")
        row["status"] = m.enum(m.get(g, 20).upper(), _ADMIN_STATUS, "status")
    if start is None and orc is not None:
        start = m.date(orc, 9, "start_date")
    row["start_date"] = start
    _coded(row, concept)
    if orc is not None and not row.get("status"):
        row["status"] = (m.enum(m.get(orc, 5).upper(), _ORDER_STATUS, "status")
                         or _ORDER_CONTROL.get(m.get(orc, 1).upper()))
    if order.rxr is not None:
        route = m.comps(order.rxr, 1)
        row["route"] = m.comp(route, 2) or m.comp(route, 1)
    if order.encounter_bad:
        m.found.append(("encounter_id", FindingKind.BAD_REFERENCE))
    return _clean(row)


class Mapped(NamedTuple):
    """What one HL7 v2 message gives: the rows to store, their data-quality findings, and the segments
    whose rows could not be stored (each quarantined alone; the message's other rows are stored)."""

    rows: list[tuple[str, Row]]
    findings: list[tuple[str, str, FindingKind, int]]  # (table, field, kind, segment number) of stored rows
    failed: list[tuple[int, MappingError]]  # (segment number, why)
    z_segments: int  # site-defined Z-segments, never mapped


# One row built from a segment, waiting for its final check: (table, row, segment number, its findings).
_Pending = tuple[str, Row, int, list[tuple[str, FindingKind]] | None]


def _collect(m: _Message, wanted: frozenset[str], failed: list[tuple[int, MappingError]]) -> list[_Pending]:
    """Walk the segments in order, each mapped with the patient, visit, OBR and ORC it belongs to. A row
    that cannot be built is noted in `failed`; MappingError only if the message has no patient."""
    pending: list[_Pending] = []
    found = m.found
    patient_id: str | None = None
    encounter: Row | None = None
    visit: str | None = None  # the visit's id, which rows' ids start with
    encounter_bad = False  # the last PV1 could not be mapped: its rows' reference is unresolved
    group = _ObsGroup("", None, "")  # OBX before any OBR: no order number, time or section
    obr_count = dg1_index = pr1_index = 0
    orc: _Seg | None = None
    tq1: _Seg | None = None
    orders: list[_Order] = []
    last_order: _Order | None = None
    seen_ids: dict[tuple[str, str], int] = {}

    def add(table: str, row: Row, pos: int) -> None:
        if table in _POSITIONAL_IDS:
            key = (table, row["id"])
            k = seen_ids.get(key, 0) + 1
            seen_ids[key] = k
            if k > 1:
                row["id"] = f"{row['id']}-dup{k}"  # a repeated set id: another result, not a correction
        if encounter_bad and table in _VISIT_ROWS:
            found.append(("encounter_id", FindingKind.BAD_REFERENCE))
        if found:
            pending.append((table, row, pos, found[:]))
            found.clear()
        else:
            pending.append((table, row, pos, None))

    for seg in m.segments:
        sid = seg.sid
        if sid not in wanted:
            continue
        if sid == "PID":
            patient = _patient(m, seg)  # no identifier: the message cannot be tied to a patient
            patient_id = patient["id"]
            add("patient", patient, seg.pos)
            encounter, visit, encounter_bad, orc, tq1, last_order = None, None, False, None, None, None
            group = _ObsGroup("", None, "")
            continue
        if patient_id is None:
            failed.append((seg.pos, MappingError(Reason.MISSING_FIELD, f"{sid} (segment {seg.pos}) comes before "
                                                                       "any PID segment: it has no patient")))
            continue
        encounter_id = encounter["id"] if encounter is not None else None
        try:
            if sid == "PV1":
                encounter, visit, encounter_bad = None, None, False
                try:
                    row = _encounter(m, seg, patient_id)
                except MappingError:
                    encounter_bad = True
                    raise
                encounter, visit = row, row["id"]
                add("encounter", row, seg.pos)
            elif sid == "PV2":
                reason = m.comps(seg, 3)
                text = m.comp(reason, 2) or m.comp(reason, 1)
                if encounter is not None and text:
                    encounter["reason"] = text
            elif sid == "DG1":
                dg1_index += 1
                add("condition", _condition(m, seg, patient_id, visit, encounter_id, dg1_index), seg.pos)
            elif sid == "PR1":
                pr1_index += 1
                add("procedure", _procedure(m, seg, patient_id, visit, encounter_id, pr1_index), seg.pos)
            elif sid == "AL1":
                add("allergy", _allergy(m, seg, patient_id), seg.pos)
            elif sid == "OBR":
                obr_count += 1
                time = m.ts(seg, 7, "effective_time")
                group = _ObsGroup(m.get(seg, 3) or m.get(seg, 2), time, m.get(seg, 24).upper(), bool(found))
                found.clear()  # OBR-7 is noted on each OBX that would have taken it
            elif sid == "OBX":
                group.count += 1
                base = group.base
                if not base:
                    base = _control_id(m, "the observation (OBR-2 and OBR-3 are empty)")
                    if obr_count > 1:
                        base = f"{base}-OBR{obr_count}"  # several unnumbered orders in one message stay apart
                add("observation", _observation(m, seg, group, base, patient_id, encounter_id), seg.pos)
            elif sid == "ORC":
                orc, tq1, last_order = seg, None, None
            elif sid == "TQ1":
                if last_order is not None:
                    last_order.tq1 = last_order.tq1 or seg
                else:
                    tq1 = tq1 or seg
            elif sid in ("RXE", "RXA"):
                last_order = _Order(orc, tq1, seg, len(orders) + 1, patient_id, encounter_id, encounter_bad)
                orders.append(last_order)
            elif sid == "RXR" and last_order is not None and last_order.rxr is None:
                # An RXR before the RXE/RXA belongs to the RXO (what was asked for), not to what is given.
                last_order.rxr = seg
        except MappingError as e:
            found.clear()
            failed.append((seg.pos, e))
    if patient_id is None:
        raise MappingError(Reason.MISSING_FIELD, "the message has no PID segment")
    seen: dict[str, int] = {}
    encounter_bad = False  # from here each order notes its own visit's (in _medication)
    for o in orders:
        try:
            row = _medication(m, o, seen)
        except MappingError as e:
            found.clear()
            failed.append((o.give.pos, e))
            continue
        add("medication", row, o.give.pos)
    return pending


def _map(m: _Message, wanted: frozenset[str]) -> Mapped:
    """Map a message's segments, then check each row: a row that fails the check is left out with its
    segment (a patient's failure fails the message), and rows that referred to a visit left out lose
    that reference. Values noted bad are stored as null."""
    failed: list[tuple[int, MappingError]] = []
    pending = _collect(m, wanted, failed)
    rows: list[tuple[str, Row]] = []
    findings: list[tuple[str, str, FindingKind, int]] = []
    dropped_visits: set[str] = set()
    for table, row, pos, notes in pending:
        if dropped_visits and table in _VISIT_ROWS and row.get("encounter_id") in dropped_visits:
            notes = [*(notes or ()), ("encounter_id", FindingKind.BAD_REFERENCE)]
        if notes is not None:
            for name, kind in notes:
                if kind in _NULLED:
                    row.pop(name, None)
        try:
            complete(table, row, CONNECTOR)
        except MappingError as e:
            if table == "patient":
                raise
            if table == "encounter":
                dropped_visits.add(row["id"])
            failed.append((pos, e))
            continue
        rows.append((table, row))
        if notes is not None:
            findings.extend((table, name, kind, pos) for name, kind in notes)
    failed.sort(key=lambda f: f[0])
    return Mapped(rows, findings, failed, m.z_segments)


def map_message_full(raw: bytes) -> Mapped:
    """Map one HL7 v2 message: its rows, findings and failed segments; MappingError if the message as a
    whole cannot be mapped (not parsed, type not mapped, not tied to a patient)."""
    try:
        m = _Message(raw)
        if not m.type:
            raise MappingError(Reason.MISSING_FIELD, "MSH-9 message type is empty")
        wanted = _MAPPED_TYPES.get((m.type, m.event))
        if wanted is None:
            name = f"{m.type}^{m.event}" if m.event else m.type
            shown = name if _MSG_TYPE_SHAPE.fullmatch(name) else "in MSH-9"
            raise MappingError(Reason.UNSUPPORTED_MESSAGE, f"message type {shown} is not mapped; mapped: ADT "
                                                           "A01-A08, A13, ORU^R01, RDE^O11, RDE^O25, RAS^O17")
        return _map(m, wanted)
    except MappingError:
        raise
    except Exception as e:  # the contract is that only MappingError leaves; say where, never what was read
        raise MappingError(Reason.PARSE_ERROR, f"message could not be read ({type(e).__name__})") from None


def map_message(raw: bytes, source: str) -> list[tuple[str, Row]]:
    """The rows one HL7 v2 message stores (see `map_message_full`); MappingError if it cannot be mapped."""
    # `source` names where the message came from; rows carry the connector name, not the file.
    return map_message_full(raw).rows


# --- ingest ----------------------------------------------------------------------------------------

def ingest_hl7_stream(stream: BinaryIO, source: str, sink: Sink) -> None:
    """Ingest every message of an HL7 v2 stream: rows added, then their findings; a message that cannot
    be mapped, or a segment whose row cannot be stored, is quarantined."""
    z_segments = 0
    messages = split_messages(stream)
    while True:
        # Only reading the stream is guarded: an error of the sink is not the source's.
        try:
            n, raw = next(messages)
        except StopIteration:
            break
        except (OSError, EOFError) as e:
            raise SourceError(f"{source}: cannot read: {e}") from None
        try:
            mapped = map_message_full(raw)
        except MappingError as e:
            sink.quarantine(Quarantined(connector=CONNECTOR, source=source, position=f"message {n}",
                                        reason=e.reason, detail=e.detail, raw=raw))
            continue
        z_segments += mapped.z_segments
        for table, row in mapped.rows:
            sink.add(table, row)
        if mapped.findings:
            _emit_findings(sink, source, n, mapped.findings)
        for pos, err in mapped.failed:
            sink.quarantine(Quarantined(connector=CONNECTOR, source=source, position=f"message {n}, segment {pos}",
                                        reason=err.reason, detail=err.detail, raw=raw))
    if z_segments:
        sink.skip("HL7 v2 Z-segment", z_segments)


def _emit_findings(sink: Sink, source: str, n: int, findings: list[tuple[str, str, FindingKind, int]]) -> None:
    """One finding per (table, field, kind) of a message, counting its rows, at the first one's segment."""
    counts: dict[tuple[str, str, FindingKind], list[int]] = {}
    for table, name, kind, pos in findings:
        hit = counts.get((table, name, kind))
        if hit is None:
            counts[(table, name, kind)] = [1, pos]
        else:
            hit[0] += 1
    for (table, name, kind), (count, pos) in counts.items():
        sink.finding(Finding(CONNECTOR, source, f"message {n}, segment {pos}", table, name, kind), count)


def ingest_hl7_file(path: Path, sink: Sink) -> None:
    """Ingest an HL7 v2 file (.gz read transparently); SourceError if it cannot be read."""
    path = Path(path)
    with ExitStack() as stack:
        try:
            fh: BinaryIO = stack.enter_context(path.open("rb"))
        except OSError as e:
            raise SourceError(f"{path}: cannot read: {e}") from None
        if path.suffix == ".gz":
            # GzipFile reads like a binary file; typeshed just does not call it a BinaryIO.
            fh = cast(BinaryIO, stack.enter_context(gzip.GzipFile(fileobj=fh, mode="rb")))
        ingest_hl7_stream(fh, str(path), sink)
