"""presidio-evaluator 0.3.2 (Microsoft, MIT): its sentence generator run with its own templates, fixed seed.

``PresidioSentenceFaker`` fills the 209 templates of ``raw_data/templates.txt`` (customer-service and
personal sentences: "My name is {{person}}", addresses, cards, IBANs...) with values from Faker (en_US) and the
package's own FakeNameGenerator.com records, providers for addresses, phones, IPs, ages... It is run with
``random_seed=SEED`` and ``lower_case_ratio=0.05`` (the package's own example settings) for `COUNT` sentences,
so the corpus is fixed for a given Faker version (the ``[bench]`` extra pins Faker).

The package itself is not installed (it needs spaCy, transformers, scikit-learn): its wheel is fetched with
``pip download --no-deps`` into the corpus cache and imported from there, with empty stand-ins for the
modules the generator imports but does not use (spaCy, presidio-analyzer/-anonymizer, python-dotenv,
requests, tqdm when absent). So this
corpus is for the benchmark only (tests do not download).

Label mapping (the generator's raw template entity -> scored type): person, name*, first_name*, last_name*
-> NAME; date_time, date_of_birth -> DATE; year, day_of_week -> neutral (a year alone or a weekday is not a
date element Safe Harbor removes); phone_number -> PHONE; email -> EMAIL; url -> URL; ip_address -> IP; ssn,
credit_card_number, iban, us_driver_license -> ID; address, street_name, building_number, secondary_address,
postcode, zipcode -> ADDRESS; city -> LOCATION; age -> AGE over 89, else plain text; state, state_abbr,
country, nationality, nation_*, organization, job, prefix*, religion -> neutral.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import sys
import types
import warnings
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any
from unittest import mock

from phi_corpora import Doc, GoldSpan, age_type
from phi_corpora._dist import extracted

PROJECT, VERSION = "presidio-evaluator", "0.3.2"
LICENCE = "MIT"
SEED = 42
COUNT = 1500
TODAY = datetime(2025, 1, 1, 12, 0, 0)  # Faker's "now" for dates and birth dates, so the corpus stays the same

NEUTRAL = "NEUTRAL"
MAP = {
    "person": "NAME", "name": "NAME", "first_name": "NAME", "last_name": "NAME", "name_female": "NAME",
    "name_male": "NAME", "first_name_female": "NAME", "first_name_male": "NAME", "first_name_nonbinary": "NAME",
    "last_name_female": "NAME", "last_name_male": "NAME",
    "date_time": "DATE", "date_of_birth": "DATE", "birthday": "DATE", "year": NEUTRAL, "day_of_week": NEUTRAL,
    "phone_number": "PHONE", "email": "EMAIL", "url": "URL", "ip_address": "IP",
    "ssn": "ID", "credit_card_number": "ID", "credit_card": "ID", "iban": "ID", "us_driver_license": "ID",
    "address": "ADDRESS", "street_name": "ADDRESS", "building_number": "ADDRESS", "secondary_address": "ADDRESS",
    "postcode": "ADDRESS", "zipcode": "ADDRESS",
    "city": "LOCATION",
    "state": NEUTRAL, "state_abbr": NEUTRAL, "country": NEUTRAL, "nationality": NEUTRAL, "nation_man": NEUTRAL,
    "nation_woman": NEUTRAL, "nation_plural": NEUTRAL, "organization": NEUTRAL, "company": NEUTRAL,
    "job": NEUTRAL, "prefix": NEUTRAL, "prefix_male": NEUTRAL, "prefix_female": NEUTRAL, "religion": NEUTRAL,
    "age": "AGE",
}


def _stub(name: str, **attrs: Any) -> None:
    if name in sys.modules:
        return
    try:
        importlib.import_module(name)
        return
    except ImportError:
        pass
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    sys.modules[name] = mod


def _stand_ins() -> None:
    """Empty modules for what presidio_evaluator imports but the sentence generator never calls."""
    class _Any:
        def __init__(self, *a: Any, **k: Any) -> None:
            pass

    for name in ("spacy", "spacy.language", "spacy.tokens", "spacy.training"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["spacy.language"].__dict__.setdefault("Language", _Any)
    sys.modules["spacy.tokens"].__dict__.update(Doc=_Any, DocBin=_Any)
    sys.modules["spacy.training"].__dict__.setdefault("iob_to_biluo", lambda tags: tags)
    _stub("dotenv", load_dotenv=lambda *a, **k: None)
    _stub("presidio_analyzer", RecognizerResult=_Any)
    _stub("presidio_anonymizer", AnonymizerEngine=_Any)
    _stub("requests")
    _stub("tqdm", tqdm=lambda it, *a, **k: it)


class _FixedDatetime(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> Any:
        fixed = cls(TODAY.year, TODAY.month, TODAY.day, TODAY.hour, tzinfo=UTC)
        return fixed.astimezone(tz) if tz else fixed.replace(tzinfo=None)


class _FixedDate(date):
    @classmethod
    def today(cls) -> Any:
        return cls(TODAY.year, TODAY.month, TODAY.day)


@contextlib.contextmanager
def _frozen_today() -> Iterator[None]:
    """Faker's date providers count from the clock; pin their clock (and local time zone) to TODAY in UTC."""
    import faker.providers.date_time as fdt

    with mock.patch.object(fdt, "datetime", _FixedDatetime), mock.patch.object(fdt, "dtdate", _FixedDate), \
            mock.patch.object(fdt, "_get_local_timezone", lambda: UTC):
        yield


def generate(count: int = COUNT, seed: int = SEED, download: bool = True) -> list[Any]:
    """Run the package's generator: `count` fake sentence results with raw template entity types."""
    root = extracted(PROJECT, VERSION, download)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    _stand_ins()
    from presidio_evaluator.data_generator import (  # type: ignore[import-not-found]
        PresidioSentenceFaker,
        presidio_additional_entity_providers,
    )

    # HospitalProvider queries WikiData when built; no template uses it, and nothing is fetched at run time
    providers = [p for p in presidio_additional_entity_providers if p.__name__ != "HospitalProvider"]

    identity = {k: k for k in PresidioSentenceFaker.ENTITY_TYPE_MAPPING}
    # it builds its person records (with random middle initials) before it seeds: seed first
    PresidioSentenceFaker.seed(seed)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), _frozen_today(), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its pandas calls are deprecated in pandas 3
        faker = PresidioSentenceFaker("en_US", lower_case_ratio=0.05, entity_providers=providers,
                                      entity_type_mapping=identity, random_seed=seed)
        return list(faker.generate_new_fake_sentences(count))


def _newlines(text: str) -> tuple[str, list[int]]:
    """The text with the templates' written "\\n" turned into line breaks, and old offset -> new offset."""
    out: list[str] = []
    where = []
    i = 0
    while i < len(text):
        where.append(len(out))
        if text.startswith("\\n", i):
            out.append("\n")
            where.append(len(out))
            i += 2
            continue
        out.append(text[i])
        i += 1
    where.append(len(out))
    return "".join(out), where


def load(download: bool = True, count: int = COUNT) -> list[Doc]:
    """The fixed corpus: `count` generated sentences as documents.

    Several templates write line breaks as a backslash and "n" (multi-line addresses and signatures); they
    are turned into real line breaks, as in a note, and the spans moved with them.
    """
    docs = []
    for i, result in enumerate(generate(count, SEED, download)):
        text, where = _newlines(result.full_text)
        spans = []
        for sp in result.spans:
            raw = sp.entity_type.lower()
            kind = MAP.get(raw)
            if kind is None:
                raise ValueError(f"presidio:{i}: unmapped entity type {sp.entity_type}")
            if kind == "AGE":
                kind = age_type(str(sp.entity_value))
            if kind:
                s, e = where[sp.start_position], where[sp.end_position]
                spans.append(GoldSpan(s, e, kind, raw))
        docs.append(Doc(f"presidio:{i}", text, "en", sorted(spans)))
    return docs
