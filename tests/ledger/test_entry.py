"""Audit events: canonical encoding, refusal of patient data, salted subject commitments and their erasure."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medspace.ledger.check import check
from medspace.ledger.entry import (
    Action,
    AuditEvent,
    Purpose,
    Role,
    SaltStore,
    commit_subject,
    destroy_salt,
    encode_all,
    find,
)
from medspace.ledger.errors import EntryError
from medspace.ledger.sqlite_store import SqliteLogStore

T0 = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
H1 = hashlib.sha256(b"input").hexdigest()
H2 = hashlib.sha256(b"output").hexdigest()


def _event(**overrides: Any) -> AuditEvent:
    fields: dict[str, Any] = {
        "actor": "user:alice@hosp-a",
        "role": Role.RESEARCHER,
        "action": Action.TASK_SUBMIT,
        "purpose": Purpose.HRESCH,
        "resource": "task:T-77",
        "time": T0,
        "contract_id": "C-12",
        "input_hashes": (H1,),
        "output_hashes": (H2,),
    }
    fields.update(overrides)
    return AuditEvent(**fields)


def test_encoding_is_the_documented_canonical_json() -> None:
    e = _event()
    assert e.encode() == (
        b'{"action":"task.submit","actor":"user:alice@hosp-a","contract_id":"C-12",'
        b'"input_hashes":["' + H1.encode() + b'"],"output_hashes":["' + H2.encode() + b'"],'
        b'"purpose":"HRESCH","resource":"task:T-77","role":"researcher","subject_commitment":null,'
        b'"time":"2026-03-01T12:30:15.123456Z","v":1}'
    )
    assert AuditEvent.from_bytes(e.encode()) == e


def test_time_is_normalised_to_utc() -> None:
    local = T0.astimezone(timezone(timedelta(hours=8)))
    assert _event(time=local).encode() == _event().encode()
    with pytest.raises(EntryError, match="time"):
        _event(time=datetime(2026, 3, 1, 12, 0))  # naive


def test_strings_are_accepted_for_vocabularies() -> None:
    e = _event(role="clinician", action="lookup.emergency", purpose="ETREAT", input_hashes=[H1, H2])
    assert e.role is Role.CLINICIAN and e.purpose is Purpose.ETREAT and e.input_hashes == (H1, H2)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("purpose", "RESEARCH"),
        ("role", "doctor"),
        ("action", "delete.everything"),
        ("input_hashes", ["abc"]),
        ("input_hashes", [H1.upper()]),
        ("output_hashes", H1),  # a bare string, not a list
        ("subject_commitment", "John Smith"),
        ("subject_commitment", H1[:-1]),
        ("contract_id", "contract with spaces"),
        ("resource", "no-kind-prefix"),
        ("actor", ""),
    ],
)
def test_malformed_fields_are_refused(field: str, value: object) -> None:
    with pytest.raises(EntryError, match=field):
        _event(**{field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("resource", "patient:110105199003071234"),  # a resident ID number (GB 11643)
        ("resource", "patient:11010519900307123X"),
        ("resource", "record:123-45-6789"),  # an SSN
        ("resource", "phone:+86-138-0013-8000"),
        ("resource", "mrn:004512399"),
        ("resource", "patient:1990-03-07"),  # a birth date
        ("resource", "visit:07.03.1990"),
        ("contract_id", "C-19900307"),
        ("actor", "user:13800138000"),
        ("resource", "patient:john.smith@mail.example"),
    ],
)
def test_patient_data_in_free_fields_is_refused(field: str, value: str) -> None:
    with pytest.raises(EntryError, match=field) as err:
        _event(**{field: value})
    assert value not in str(err.value)  # messages name the field, never the value


def test_identifiers_with_digits_that_are_not_patient_data_pass() -> None:
    uid = str(uuid.UUID(int=1234567890123456789012345678901234))
    _event(resource=f"task:{uid}", contract_id=f"C-{uid}")
    _event(resource=f"dataset:{H1}")  # a hash
    _event(resource="task:T-2026-77", contract_id="C-12345678")


def test_a_patient_actor_is_a_commitment() -> None:
    c, _ = commit_subject("patient-42")
    _event(actor=c, role=Role.PATIENT, action=Action.CONSENT_REVOKE, purpose=Purpose.PATRQT, subject_commitment=c)
    with pytest.raises(EntryError, match="actor"):
        _event(actor="patient:anna", role=Role.PATIENT)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: orjson.dumps(d, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS),  # whitespace
        lambda d: orjson.dumps(dict(reversed(list(d.items())))),  # key order
        lambda d: orjson.dumps({**d, "extra": 1}, option=orjson.OPT_SORT_KEYS),
        lambda d: orjson.dumps({**d, "v": 2}, option=orjson.OPT_SORT_KEYS),
        lambda d: orjson.dumps({**d, "time": "2026-03-01T12:30:15Z"}, option=orjson.OPT_SORT_KEYS),
        lambda d: orjson.dumps({k: v for k, v in d.items() if k != "contract_id"}, option=orjson.OPT_SORT_KEYS),
        lambda d: b"not json",
    ],
)
def test_non_canonical_bytes_are_refused(mutate: Any) -> None:
    with pytest.raises(EntryError):
        AuditEvent.from_bytes(mutate(_event().to_dict()))


_token = st.from_regex(r"[a-z]{1,8}(-[A-Z]{1,3})?", fullmatch=True)
_hash = st.binary(min_size=1, max_size=8).map(lambda b: hashlib.sha256(b).hexdigest())


@given(
    actor=_token,
    role=st.sampled_from([r for r in Role if r is not Role.PATIENT]),
    action=st.sampled_from(list(Action)),
    purpose=st.sampled_from(list(Purpose)),
    resource=_token.map(lambda t: f"task:{t}"),
    time=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    contract=st.none() | _token,
    inputs=st.lists(_hash, max_size=4),
    outputs=st.lists(_hash, max_size=4),
    subject=st.none() | _hash,
)
@settings(max_examples=200, deadline=None)
def test_round_trip_is_exact(
    actor: str,
    role: Role,
    action: Action,
    purpose: Purpose,
    resource: str,
    time: datetime,
    contract: str | None,
    inputs: list[str],
    outputs: list[str],
    subject: str | None,
) -> None:
    e = AuditEvent(actor, role, action, purpose, resource, time, contract, tuple(inputs), tuple(outputs), subject)
    data = e.encode()
    assert AuditEvent.from_bytes(data) == e
    assert AuditEvent.from_bytes(data).encode() == data
    assert data.isascii()


def test_commitment_is_hmac_of_the_value_under_the_salt() -> None:
    c1, s1 = commit_subject("PSEUDO-abc")
    c2, s2 = commit_subject("PSEUDO-abc")
    assert s1 != s2 and c1 != c2  # fresh salts: two entries about one patient do not link
    assert commit_subject(" PSEUDO-abc ", s1) == (c1, s1)  # trimmed
    assert c1 == hmac.new(s1, b"medspace.subject.v1:PSEUDO-abc", "sha256").hexdigest()
    with pytest.raises(EntryError):
        commit_subject("")
    with pytest.raises(EntryError):
        commit_subject("x", b"short")


def test_find_and_destroy(tmp_path: Path) -> None:
    salts = SaltStore(tmp_path / "salts.db")
    log = SqliteLogStore(tmp_path / "log.db")
    events = []
    for i in range(40):
        who = ["PSEUDO-anna", "PSEUDO-bo", None][i % 3]
        commitment = salts.commit(who) if who else None
        events.append(_event(resource=f"lookup:L-{i}", subject_commitment=commitment, action=Action.LOOKUP_EMERGENCY))
    log.append(encode_all(events))
    anna = find("PSEUDO-anna", salts, log)
    assert anna == list(range(0, 40, 3))
    assert find("PSEUDO-bo", salts, log) == list(range(1, 40, 3))
    assert find("PSEUDO-nobody", salts, log) == []
    # Erasure: destroy one commitment's salt, then all of a patient's.
    first = AuditEvent.from_bytes(log.entry(0)).subject_commitment
    assert first is not None
    first_salt = salts.salt(first)
    assert first_salt is not None and len(first_salt) == 32
    assert destroy_salt(salts, first) is True
    assert destroy_salt(salts, first) is False
    assert salts.salt(first) is None
    assert find("PSEUDO-anna", salts, log) == list(range(3, 40, 3))
    assert salts.destroy_subject("PSEUDO-anna") == 13
    assert find("PSEUDO-anna", salts, log) == []
    assert find("PSEUDO-bo", salts, log) == list(range(1, 40, 3))
    assert len(salts) == 13
    # The log itself is untouched and still verifies.
    assert check(log).size == 40
    salts.close()
    log.close()
    # The salt's bytes are gone from the salt file (secure_delete), not just unlinked from the table.
    raw = (tmp_path / "salts.db").read_bytes()
    assert first_salt not in raw and first.encode() not in raw
    assert not (tmp_path / "salts.db-journal").exists()


def test_salts_kept_together_are_each_fresh_and_found(tmp_path: Path) -> None:
    with SaltStore(tmp_path / "salts.sqlite") as salts:
        many = salts.commit_many(["patient-1", "patient-1", "patient-2"])
        assert len(set(many)) == 3 and len(salts) == 3
        assert sorted(salts.find("patient-1")) == sorted(many[:2]) and salts.find("patient-2") == [many[2]]
        assert salts.commit_many([]) == []
