"""Credentials for pulling from a FHIR server: a bearer token (environment or file), or SMART Backend Services.

SMART Backend Services (SMART App Launch v2, "backend services") is OAuth 2.0 client credentials where the
client proves who it is with a JWT signed by its private key (RFC 7523 client assertion, RS384 or ES384).
No token, assertion or key material ever appears in an error message or a log line.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import math
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import orjson
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from medspace.connect.errors import ConnectError
from medspace.private_files import PrivateFileError, read_private_file

__all__ = [
    "ASSERTION_LIFETIME",
    "ASSERTION_TYPE",
    "DEFAULT_SCOPE",
    "DEFAULT_TOKEN_ENV",
    "AuthError",
    "BearerToken",
    "SigningKey",
    "SmartBackendAuth",
    "credentials_for",
    "load_signing_key",
    "parse_http_url",
    "safe_url",
    "token_from_env",
    "token_from_file",
]

DEFAULT_TOKEN_ENV = "MEDSPACE_FHIR_TOKEN"
DEFAULT_SCOPE = "system/*.rs"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# The spec allows at most five minutes; a little less leaves room for a server clock running behind ours.
ASSERTION_LIFETIME = 240
_MAX_SECRET_BYTES = 64 * 1024
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")  # RFC 6750 b64token and friends: printable ASCII, no spaces
_OAUTH_ERROR = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
_HINTS = {
    "invalid_client": "the server does not accept this client or its key (check the client id, the key id and "
                      "the public key registered with the server)",
    "invalid_scope": "the requested scope is not granted to this client",
    "unauthorized_client": "this client may not use the client_credentials grant",
    "unsupported_grant_type": "the server does not offer the client_credentials grant",
}


class AuthError(ConnectError):
    """Credentials are missing, unreadable or refused; the message never holds a secret."""


def safe_url(url: httpx.URL | str) -> str:
    """A URL without user info or query string, fit for a message (queries may carry search values)."""
    u = url if isinstance(url, httpx.URL) else httpx.URL(url)
    return f"{u.scheme}://{u.host}{f':{u.port}' if u.port else ''}{u.path}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _require_secure(url: httpx.URL, what: str, allow_http: bool) -> None:
    # Bearer tokens and assertions are credentials: in clear text only where the network cannot be read.
    if url.scheme == "http" and not allow_http and not _is_loopback(url.host):
        raise AuthError(f"refusing to send {what} over plain http to {url.host}; use https "
                        "(or allow http on a trusted network)")


def _read_secret_file(path: Path, what: str) -> bytes:
    try:
        data = read_private_file(path, what, _MAX_SECRET_BYTES)
    except PrivateFileError as e:
        # this module's own wording, which its tests pin: the OS's reason as the OS words it, and "chmod 600 it"
        if e.os_error is not None:
            raise AuthError(f"cannot read {what} {path}: {e.os_error.strerror}") from None
        if e.shared:
            raise AuthError(f"{what} {path} is accessible by group or others; chmod 600 it") from None
        raise AuthError(str(e)) from None
    if len(data) > _MAX_SECRET_BYTES:
        raise AuthError(f"{what} {path} is larger than {_MAX_SECRET_BYTES // 1024} KiB")
    return data


def _clean_token(raw: str, where: str) -> str:
    token = raw.strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    if not token:
        raise AuthError(f"{where} is empty")
    if not _TOKEN_CHARS.fullmatch(token):
        raise AuthError(f"{where} does not hold a single token (spaces, line breaks or non-ASCII characters)")
    return token


class BearerToken(httpx.Auth):
    """A fixed bearer token sent with every FHIR request."""

    def __init__(self, token: str, source: str) -> None:
        self._token = _clean_token(token, source)
        self.source = source

    def __repr__(self) -> str:
        return f"BearerToken(source={self.source!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the token to the request."""
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


def token_from_env(name: str, environ: Mapping[str, str] | None = None) -> BearerToken:
    """A bearer token from an environment variable."""
    env = os.environ if environ is None else environ
    value = env.get(name)
    if value is None:
        raise AuthError(f"environment variable {name} is not set")
    return BearerToken(value, f"environment variable {name}")


def token_from_file(path: str | os.PathLike[str]) -> BearerToken:
    """A bearer token from a file that only its owner may read."""
    p = Path(path)
    data = _read_secret_file(p, "token file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise AuthError(f"token file {p} is not UTF-8 text") from None
    return BearerToken(text, f"token file {p}")


@dataclass(frozen=True)
class SigningKey:
    """A client's private key, the JWS algorithm it signs with (RS384 or ES384) and its key id."""

    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    alg: str
    kid: str

    def __repr__(self) -> str:
        return f"SigningKey(alg={self.alg!r}, kid={self.kid!r})"

    def public_jwk(self) -> dict[str, Any]:
        """The public half as a JWK, to register with the authorization server (in a JWKS)."""
        jwk = _public_jwk(self.private_key)
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig", "key_ops": ["verify"]}

    def public_jwks(self) -> dict[str, Any]:
        """The public half as a JWK Set."""
        return {"keys": [self.public_jwk()]}


def _public_jwk(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        jwk: Any = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return dict(jwk)


def _thumbprint(jwk: Mapping[str, Any]) -> str:
    # RFC 7638: SHA-256 over the required members, sorted, without whitespace.
    members = ("e", "kty", "n") if jwk["kty"] == "RSA" else ("crv", "kty", "x", "y")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode("ascii")).digest()).rstrip(b"=").decode("ascii")


def load_signing_key(path: str | os.PathLike[str], kid: str | None = None) -> SigningKey:
    """Load a PEM private key (RSA >= 2048 bits for RS384, or EC P-384 for ES384) that only its owner may
    read; without `kid`, the key id is its RFC 7638 JWK thumbprint."""
    p = Path(path)
    data = _read_secret_file(p, "SMART private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise AuthError(f"SMART private key {p} is encrypted; give an unencrypted PEM key file (mode 600)") from None
    except (ValueError, UnsupportedAlgorithm):
        raise AuthError(f"SMART private key {p} is not a PEM private key") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise AuthError(f"SMART private key {p} is RSA of {key.key_size} bits; RS384 needs at least 2048")
        alg = "RS384"
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP384R1):
            raise AuthError(f"SMART private key {p} is EC on {key.curve.name}; ES384 needs P-384 (secp384r1)")
        alg = "ES384"
    else:
        raise AuthError(f"SMART private key {p} is neither RSA nor EC P-384 (SMART signs with RS384 or ES384)")
    if kid is not None and not kid.strip():
        raise AuthError("the SMART key id is empty")
    return SigningKey(key, alg, kid.strip() if kid else _thumbprint(_public_jwk(key)))


def _oauth_error(resp: httpx.Response) -> str | None:
    # Only the RFC 6749 error code: a description is free text that could echo what we sent.
    try:
        doc = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        return None
    code = doc.get("error") if isinstance(doc, dict) else None
    return code if isinstance(code, str) and _OAUTH_ERROR.fullmatch(code) else None


def parse_http_url(raw: str) -> httpx.URL:
    """An absolute http(s) URL, or ValueError saying what it is not (without repeating it)."""
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
        url = httpx.URL(raw)
    except (ValueError, httpx.InvalidURL, TypeError):
        raise ValueError("is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or not url.host:
        raise ValueError("is not an absolute http(s) URL")
    return url


def _absolute_http_url(raw: str, what: str) -> httpx.URL:
    try:
        return parse_http_url(raw)
    except ValueError as e:
        raise AuthError(f"{what} {e}") from None


class SmartBackendAuth(httpx.Auth):
    """SMART Backend Services: fetch an access token with a signed client assertion, send it as Bearer, and
    fetch a new one before it expires (or once when the server refuses it)."""

    def __init__(
        self,
        fhir_base: str,
        client_id: str,
        key: SigningKey,
        *,
        scope: str = DEFAULT_SCOPE,
        token_url: str | None = None,
        allow_http: bool = False,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not client_id.strip():
            raise AuthError("the SMART client id is empty")
        if not scope.strip():
            raise AuthError("the SMART scope is empty")
        self.fhir_base = fhir_base.rstrip("/")
        self.client_id = client_id.strip()
        self.key = key
        self.scope = " ".join(scope.split())
        self.allow_http = allow_http
        self._token_url = token_url
        if token_url is not None:
            _require_secure(_absolute_http_url(token_url, "the SMART token URL"), "a client assertion", allow_http)
        self._own_client = client is None
        self._http = client if client is not None else httpx.Client(timeout=_TIMEOUT)
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self.tokens_fetched = 0

    def __repr__(self) -> str:
        return f"SmartBackendAuth(client_id={self.client_id!r}, kid={self.key.kid!r})"

    def __enter__(self) -> SmartBackendAuth:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP client used for discovery and token requests, if this object made it."""
        if self._own_client:
            self._http.close()

    @property
    def token_url(self) -> str:
        """The token endpoint: as given, or from the server's `.well-known/smart-configuration`."""
        if self._token_url is None:
            self._token_url = self._discover()
        return self._token_url

    def _discover(self) -> str:
        url = httpx.URL(f"{self.fhir_base}/.well-known/smart-configuration")
        where = safe_url(url)
        try:
            resp = self._http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as e:
            raise AuthError(f"cannot reach {where} ({type(e).__name__})") from None
        if not resp.is_success:
            raise AuthError(f"no SMART configuration at {where} (HTTP {resp.status_code}); give the token URL")
        try:
            doc = orjson.loads(resp.content)
        except orjson.JSONDecodeError:
            doc = None
        endpoint = doc.get("token_endpoint") if isinstance(doc, dict) else None
        if not isinstance(endpoint, str):
            raise AuthError(f"the SMART configuration at {where} names no token_endpoint; give the token URL")
        assert isinstance(doc, dict)
        methods = doc.get("token_endpoint_auth_methods_supported")
        if isinstance(methods, list) and methods and "private_key_jwt" not in methods:
            raise AuthError(f"the server at {where} does not accept private_key_jwt client authentication")
        algs = doc.get("token_endpoint_auth_signing_alg_values_supported")
        if isinstance(algs, list) and algs and self.key.alg not in algs:
            offered = ", ".join(a for a in algs if isinstance(a, str) and _OAUTH_ERROR.fullmatch(a))
            raise AuthError(f"the server at {where} does not accept {self.key.alg} client assertions "
                            f"(it accepts {offered or 'none we know'})")
        token_url = _absolute_http_url(endpoint, f"the token_endpoint in {where}")
        _require_secure(token_url, "a client assertion", self.allow_http)
        return endpoint

    def client_assertion(self, audience: str | None = None) -> str:
        """A fresh RFC 7523 client assertion: iss = sub = client id, aud = token URL, unique jti, short life."""
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": audience if audience is not None else self.token_url,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
            "jti": secrets.token_urlsafe(24),
        }
        return jwt.encode(claims, self.key.private_key, algorithm=self.key.alg,
                          headers={"kid": self.key.kid, "typ": "JWT"})

    def access_token(self, *, refused: str | None = None) -> str:
        """The access token to use now: fetched when none is held, when it is about to expire, or when the
        server refused `refused` and it is still the one held."""
        with self._lock:
            if self._token is None or self._token == refused or self._clock() >= self._renew_at:
                self._fetch()
            assert self._token is not None
            return self._token

    def _fetch(self) -> None:
        token_url = self.token_url
        where = safe_url(token_url)
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.client_assertion(token_url),
            "scope": self.scope,
        }
        try:
            resp = self._http.post(token_url, data=form, headers={"Accept": "application/json"})
        except httpx.HTTPError as e:
            raise AuthError(f"cannot reach the SMART token endpoint {where} ({type(e).__name__})") from None
        if not resp.is_success:
            code = _oauth_error(resp)
            hint = f": {code}, {_HINTS[code]}" if code in _HINTS else (f": {code}" if code else "")
            raise AuthError(f"the SMART token endpoint {where} refused client {self.client_id} "
                            f"(HTTP {resp.status_code}){hint}")
        try:
            doc = orjson.loads(resp.content)
        except orjson.JSONDecodeError:
            doc = None
        token = doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not _TOKEN_CHARS.fullmatch(token):
            raise AuthError(f"the SMART token endpoint {where} answered without a usable access_token")
        assert isinstance(doc, dict)
        token_type = doc.get("token_type")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise AuthError(f"the SMART token endpoint {where} issued a token that is not a bearer token")
        expires_in = doc.get("expires_in")
        now = self._clock()
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0:
            # Renew a little early so a page request never leaves with a token that expires in flight.
            self._renew_at = now + expires_in - min(30.0, expires_in / 10)
        else:
            self._renew_at = math.inf  # no lifetime given: used until the server refuses it
        self._token = token
        self.tokens_fetched += 1

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Send the request with the current token; on 401, fetch a new token and send it once more."""
        token = self.access_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {self.access_token(refused=token)}"
            yield request


def credentials_for(
    base_url: str,
    *,
    token_env: str | None = None,
    token_file: str | os.PathLike[str] | None = None,
    smart_client_id: str | None = None,
    smart_key: str | os.PathLike[str] | None = None,
    smart_kid: str | None = None,
    smart_scope: str = DEFAULT_SCOPE,
    smart_token_url: str | None = None,
    allow_http: bool = False,
    environ: Mapping[str, str] | None = None,
) -> httpx.Auth | None:
    """The credentials the options ask for: SMART Backend Services, a token file, a token from the named
    environment variable, else a token from MEDSPACE_FHIR_TOKEN if it is set, else none."""
    env = os.environ if environ is None else environ
    smart = smart_client_id is not None or smart_key is not None
    chosen = [name for name, given in (("a token variable", token_env is not None),
                                       ("a token file", token_file is not None),
                                       ("SMART client credentials", smart)) if given]
    if len(chosen) > 1:
        raise AuthError(f"give one kind of credentials, not {' and '.join(chosen)}")
    if not smart and (smart_kid is not None or smart_token_url is not None):
        raise AuthError("the SMART key id and token URL need a SMART client id and key")
    auth: httpx.Auth | None
    if smart:
        if smart_client_id is None or smart_key is None:
            raise AuthError("SMART Backend Services needs both a client id and a private key file")
        _require_secure(_absolute_http_url(base_url, "the FHIR base URL"), "an access token", allow_http)
        return SmartBackendAuth(base_url, smart_client_id, load_signing_key(smart_key, smart_kid), scope=smart_scope,
                                token_url=smart_token_url, allow_http=allow_http)
    if token_file is not None:
        auth = token_from_file(token_file)
    elif token_env is not None:
        auth = token_from_env(token_env, env)
    elif env.get(DEFAULT_TOKEN_ENV, "").strip():
        auth = token_from_env(DEFAULT_TOKEN_ENV, env)
    else:
        return None
    _require_secure(_absolute_http_url(base_url, "the FHIR base URL"), "a bearer token", allow_http)
    return auth
