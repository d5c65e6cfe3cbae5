"""Credentials for FHIR pulls without a server: key and token files, client assertions, option resolution.

The pulls themselves, against a loopback SMART authorization server, are in test_fhir_rest.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given
from hypothesis import strategies as st

from medspace.connect.smart_auth import (
    ASSERTION_LIFETIME,
    AuthError,
    BearerToken,
    SmartBackendAuth,
    _thumbprint,
    credentials_for,
    load_signing_key,
    token_from_env,
    token_from_file,
)

TOKEN_URL = "https://auth.hospital.example/oauth/token"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: object, password: bytes | None = None) -> bytes:
    enc = (serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)  # type: ignore[attr-defined]


def _secret(path: Path, data: bytes | str, mode: int = 0o600) -> Path:
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    path.chmod(mode)
    return path


def test_key_id_is_the_rfc7638_thumbprint() -> None:
    # The example of RFC 7638, section 3.1.
    jwk = {
        "kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
             "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAt"
             "aSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHa"
             "Q-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    }
    assert _thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_rsa_and_ec_keys(rsa_key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    key = load_signing_key(_secret(tmp_path / "rsa.pem", _pem(rsa_key)))
    assert key.alg == "RS384"
    jwk = key.public_jwk()
    assert key.kid == _thumbprint(jwk) and jwk["kty"] == "RSA" and jwk["alg"] == "RS384" and "d" not in jwk
    ec_key = load_signing_key(_secret(tmp_path / "ec.pem", _pem(ec.generate_private_key(ec.SECP384R1()))), kid="k1")
    assert (ec_key.alg, ec_key.kid) == ("ES384", "k1")
    assert ec_key.public_jwk()["crv"] == "P-384" and "d" not in ec_key.public_jwk()
    assert "PRIVATE" not in repr(key) and repr(key) == f"SigningKey(alg='RS384', kid={key.kid!r})"


@pytest.mark.parametrize(("make", "message"), [
    (lambda: _pem(ec.generate_private_key(ec.SECP256R1())), "ES384 needs P-384"),
    (lambda: _pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)), "at least 2048"),
    (lambda: _pem(ed25519.Ed25519PrivateKey.generate()), "neither RSA nor EC P-384"),
    (lambda: _pem(ec.generate_private_key(ec.SECP384R1()), b"pass phrase"), "is encrypted"),
    (lambda: ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo), "not a PEM private key"),
    (lambda: b"-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n", "not a PEM private key"),
    (lambda: b"", "not a PEM private key"),
])
def test_unusable_key_files_are_refused_in_one_line(make: object, message: str, tmp_path: Path) -> None:
    path = _secret(tmp_path / "k.pem", make())  # type: ignore[operator]
    with pytest.raises(AuthError, match=message) as e:
        load_signing_key(path)
    assert len(str(e.value).splitlines()) == 1 and str(path) in str(e.value)


def test_key_files_others_may_read_or_missing_are_refused(rsa_key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    path = _secret(tmp_path / "k.pem", _pem(rsa_key), mode=0o644)
    with pytest.raises(AuthError, match="accessible by group or others; chmod 600"):
        load_signing_key(path)
    with pytest.raises(AuthError, match=r"cannot read SMART private key .*No such file"):
        load_signing_key(tmp_path / "absent.pem")
    with pytest.raises(AuthError, match="not a regular file"):
        load_signing_key(tmp_path)
    path.chmod(0o600)
    with pytest.raises(AuthError, match="key id is empty"):
        load_signing_key(path, kid="  ")


def test_client_assertion_claims(rsa_key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    key = load_signing_key(_secret(tmp_path / "k.pem", _pem(rsa_key)), kid="node-a")
    auth = SmartBackendAuth("https://fhir.hospital.example/r4", "client-7", key, token_url=TOKEN_URL)
    first, second = auth.client_assertion(), auth.client_assertion()
    # Verified against the public JWKS the client registers, the way a server does.
    jwks = jwt.PyJWKSet.from_dict(key.public_jwks())
    claims = [jwt.decode(a, jwks["node-a"].key, algorithms=["RS384"], audience=TOKEN_URL, issuer="client-7",
                         options={"require": ["iss", "sub", "aud", "exp", "jti"]}) for a in (first, second)]
    assert jwt.get_unverified_header(first) == {"alg": "RS384", "kid": "node-a", "typ": "JWT"}
    for c in claims:
        assert c["sub"] == "client-7"
        assert c["exp"] - c["iat"] == ASSERTION_LIFETIME <= 300 and abs(c["iat"] - time.time()) < 5
    assert claims[0]["jti"] != claims[1]["jti"] and len(claims[0]["jti"]) >= 22
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(first, jwks["node-a"].key, algorithms=["RS384"], audience="https://other.example/token")
    auth.close()


def test_smart_arguments_are_checked(rsa_key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    key = load_signing_key(_secret(tmp_path / "k.pem", _pem(rsa_key)))
    with pytest.raises(AuthError, match="client id is empty"):
        SmartBackendAuth("https://fhir.example/r4", " ", key)
    with pytest.raises(AuthError, match="scope is empty"):
        SmartBackendAuth("https://fhir.example/r4", "c", key, scope="")
    with pytest.raises(AuthError, match="plain http"):
        SmartBackendAuth("https://fhir.example/r4", "c", key, token_url="http://auth.example/token")
    with pytest.raises(AuthError, match="not an absolute http"):
        SmartBackendAuth("https://fhir.example/r4", "c", key, token_url="/token")
    auth = SmartBackendAuth("https://fhir.example/r4", "c", key, token_url="http://auth.example/token",
                            allow_http=True, scope="system/Patient.rs   system/Observation.rs")
    assert auth.scope == "system/Patient.rs system/Observation.rs"
    auth.close()


def test_token_files(tmp_path: Path) -> None:
    token = "eyJhbGciOiJub25lIn0.c2VjcmV0.x-y_z"
    auth = token_from_file(_secret(tmp_path / "t", f"Bearer {token}\n"))
    request = httpx.Request("GET", "https://fhir.example/r4/Patient")
    next(auth.auth_flow(request))
    assert request.headers["Authorization"] == f"Bearer {token}"
    assert token not in repr(auth)
    cases = [
        (_secret(tmp_path / "open", token, mode=0o640), "accessible by group or others"),
        (_secret(tmp_path / "empty", "\n"), "is empty"),
        (_secret(tmp_path / "two", f"{token}\n{token}\n"), "does not hold a single token"),
        (_secret(tmp_path / "binary", b"\xff\xfe" + token.encode()), "not UTF-8"),
        (_secret(tmp_path / "big", "x" * (70 * 1024)), "larger than 64 KiB"),
        (tmp_path / "absent", "cannot read token file"),
    ]
    for path, message in cases:
        with pytest.raises(AuthError, match=message) as e:
            token_from_file(path)
        assert token not in str(e.value) and len(str(e.value).splitlines()) == 1


def test_token_from_environment() -> None:
    assert isinstance(token_from_env("T", {"T": " abc.def "}), BearerToken)
    with pytest.raises(AuthError, match="environment variable T is not set"):
        token_from_env("T", {})
    with pytest.raises(AuthError, match="environment variable T is empty"):
        token_from_env("T", {"T": "  "})


@given(st.text(max_size=60))
def test_token_errors_never_hold_the_value(raw: str) -> None:
    # Whatever a variable holds, a refusal is one of two fixed sentences: nothing of the value is echoed.
    try:
        BearerToken(raw, "environment variable T")
    except AuthError as e:
        assert str(e) in ("environment variable T is empty", "environment variable T does not hold a single token "
                          "(spaces, line breaks or non-ASCII characters)")
    else:
        assert raw.strip()


def test_which_credentials_the_options_give(rsa_key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    base = "https://fhir.hospital.example/r4"
    key_file = _secret(tmp_path / "k.pem", _pem(rsa_key))
    token_file = _secret(tmp_path / "t", "file-token")
    env = {"MEDSPACE_FHIR_TOKEN": "default-token", "OTHER": "other-token"}

    def header(auth: httpx.Auth | None) -> str | None:
        if auth is None:
            return None
        request = httpx.Request("GET", f"{base}/Patient")
        next(auth.auth_flow(request))
        return request.headers["Authorization"]

    assert credentials_for(base, environ={}) is None
    assert credentials_for(base, environ={"MEDSPACE_FHIR_TOKEN": ""}) is None  # set but empty: as if unset
    assert header(credentials_for(base, environ=env)) == "Bearer default-token"
    assert header(credentials_for(base, token_env="OTHER", environ=env)) == "Bearer other-token"
    assert header(credentials_for(base, token_file=token_file, environ=env)) == "Bearer file-token"
    smart = credentials_for(base, smart_client_id="c", smart_key=key_file, environ=env)
    assert isinstance(smart, SmartBackendAuth) and smart.scope == "system/*.rs"
    smart.close()
    with pytest.raises(AuthError, match="not a token variable and a token file"):
        credentials_for(base, token_env="OTHER", token_file=token_file, environ=env)
    with pytest.raises(AuthError, match="not a token file and SMART client credentials"):
        credentials_for(base, token_file=token_file, smart_client_id="c", smart_key=key_file, environ=env)
    with pytest.raises(AuthError, match="needs both a client id and a private key"):
        credentials_for(base, smart_client_id="c", environ=env)
    with pytest.raises(AuthError, match="need a SMART client id and key"):
        credentials_for(base, smart_kid="k", environ=env)
    # Credentials go in clear text only to this machine, or where the user says the network is trusted.
    with pytest.raises(AuthError, match=r"refusing to send a bearer token over plain http to fhir\.lan"):
        credentials_for("http://fhir.lan/r4", environ=env)
    with pytest.raises(AuthError, match="refusing to send an access token over plain http"):
        credentials_for("http://fhir.lan/r4", smart_client_id="c", smart_key=key_file, environ=env)
    assert header(credentials_for("http://fhir.lan/r4", allow_http=True, environ=env)) == "Bearer default-token"
    for local in ("http://localhost:8080/fhir", "http://127.0.0.1/fhir", "http://[::1]:8080/fhir"):
        assert credentials_for(local, environ=env) is not None
