"""Pull resources from a FHIR R4 REST server: one search per resource type, following `next` links."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from medspace.connect.base import Sink
from medspace.connect.errors import SourceError
from medspace.connect.fhir import MedicationIndex, ingest_fhir_bundle
from medspace.connect.smart_auth import AuthError, parse_http_url, safe_url

__all__ = ["DEFAULT_RESOURCE_TYPES", "PullProgress", "parse_base_url", "pull_fhir_server"]

DEFAULT_RESOURCE_TYPES: tuple[str, ...] = (
    "Patient", "Encounter", "Condition", "MedicationRequest", "Observation", "Procedure",
    "AllergyIntolerance", "DocumentReference",
)
# Medication orders often point at a Medication resource; asking the server to include it in the
# same page lets the mapper resolve the drug code without a second round trip.
_INCLUDES = {
    "MedicationRequest": "MedicationRequest:medication",
    "MedicationStatement": "MedicationStatement:medication",
    "MedicationAdministration": "MedicationAdministration:medication",
}
_HEADERS = {"Accept": "application/fhir+json"}


@dataclass(frozen=True)
class PullProgress:
    """Where a pull stands: the type being searched, types finished, and pages and resources so far."""

    resource_type: str
    types_done: int
    types_total: int
    pages: int
    resources: int


def _where(url: httpx.URL) -> str:
    # Paths name resource types only; query strings may carry search values, so they stay out.
    return safe_url(url)


def parse_base_url(base_url: str) -> httpx.URL:
    """The FHIR base URL, refused (SourceError) unless it is an absolute http(s) URL."""
    try:
        return parse_http_url(base_url)
    except ValueError as e:
        raise SourceError(f"the FHIR base URL {e} (e.g. https://fhir.example.org/r4)") from None


def _get_page(client: httpx.Client, url: httpx.URL, auth: httpx.Auth | None) -> dict[str, Any]:
    try:
        resp = client.get(url, headers=_HEADERS, auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT)
    except httpx.HTTPError as e:
        raise SourceError(f"cannot reach FHIR server at {_where(url)} ({type(e).__name__})") from None
    if resp.status_code == 401:
        if auth is None and client.auth is None:
            raise AuthError(f"FHIR server requires authentication (HTTP 401) for {_where(url)}; "
                            "give a bearer token or SMART client credentials")
        raise AuthError(f"FHIR server refused the credentials (HTTP 401) for {_where(url)}")
    if resp.status_code == 403:
        raise AuthError(f"FHIR server forbids {_where(url)} (HTTP 403): the credentials do not cover it")
    if not resp.is_success:
        raise SourceError(f"FHIR server answered HTTP {resp.status_code} for {_where(url)}")
    try:
        doc = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        raise SourceError(f"FHIR server sent a page that is not JSON for {_where(url)}") from None
    if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle":
        raise SourceError(f"FHIR server sent something other than a Bundle for {_where(url)}")
    return doc


def _next_url(bundle: dict[str, Any], current: httpx.URL) -> httpx.URL | None:
    links = bundle.get("link")
    if not isinstance(links, list):
        return None
    for link in links:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            try:
                nxt = current.join(link["url"])
            except httpx.InvalidURL:
                raise SourceError(f"next link of {_where(current)} is not a URL") from None
            # Follow pages only on the server we were pointed at: a client may carry credentials.
            if (nxt.scheme, nxt.host, nxt.port) != (current.scheme, current.host, current.port):
                raise SourceError(f"next link of {_where(current)} points to another server")
            return nxt
    return None


def _entry_count(bundle: dict[str, Any]) -> int:
    entries = bundle.get("entry")
    return sum(1 for e in entries if isinstance(e, dict) and "resource" in e) if isinstance(entries, list) else 0


def pull_fhir_server(
    base_url: str,
    sink: Sink,
    *,
    resource_types: Sequence[str] = DEFAULT_RESOURCE_TYPES,
    page_size: int = 500,
    strict: bool = False,
    client: httpx.Client | None = None,
    since: str | None = None,
    auth: httpx.Auth | None = None,
    progress: Callable[[PullProgress], None] | None = None,
) -> None:
    """Search each resource type on a FHIR server, page by page, and ingest every entry; `auth` adds
    credentials to every request, `progress` hears of every page and every finished type."""
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    parse_base_url(base_url)
    base = base_url.rstrip("/")
    http = client if client is not None else httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0))
    medications: MedicationIndex = {}
    pages = resources = 0
    try:
        for done, rt in enumerate(resource_types):
            params: dict[str, str] = {"_count": str(page_size)}
            if since:
                params["_lastUpdated"] = f"ge{since}"
            if rt in _INCLUDES:
                params["_include"] = _INCLUDES[rt]
            url: httpx.URL | None = httpx.URL(f"{base}/{rt}", params=params)
            seen: set[str] = set()
            while url is not None:
                key = str(url)
                if key in seen:
                    raise SourceError(f"FHIR server paging loops at {_where(url)}")
                seen.add(key)
                page = _get_page(http, url, auth)
                ingest_fhir_bundle(page, key, sink, strict=strict, medications=medications)
                pages += 1
                resources += _entry_count(page)
                if progress is not None:
                    progress(PullProgress(rt, done, len(resource_types), pages, resources))
                url = _next_url(page, url)
            if progress is not None:
                progress(PullProgress(rt, done + 1, len(resource_types), pages, resources))
    finally:
        if client is None:
            http.close()
