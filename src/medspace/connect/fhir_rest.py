"""Pull resources from a FHIR R4 REST server: one search per resource type, following `next` links."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import orjson

from medspace.connect.base import Sink
from medspace.connect.errors import SourceError
from medspace.connect.fhir import MedicationIndex, ingest_fhir_bundle

__all__ = ["DEFAULT_RESOURCE_TYPES", "pull_fhir_server"]

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


def _where(url: httpx.URL) -> str:
    # Paths name resource types only; query strings may carry search values, so they stay out.
    return f"{url.scheme}://{url.host}{f':{url.port}' if url.port else ''}{url.path}"


def _get_page(client: httpx.Client, url: httpx.URL) -> dict[str, Any]:
    try:
        resp = client.get(url, headers=_HEADERS)
    except httpx.HTTPError as e:
        raise SourceError(f"cannot reach FHIR server at {_where(url)} ({type(e).__name__})") from None
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
            nxt = current.join(link["url"])
            # Follow pages only on the server we were pointed at: a client may carry credentials.
            if (nxt.scheme, nxt.host, nxt.port) != (current.scheme, current.host, current.port):
                raise SourceError(f"next link of {_where(current)} points to another server")
            return nxt
    return None


def pull_fhir_server(
    base_url: str,
    sink: Sink,
    *,
    resource_types: Sequence[str] = DEFAULT_RESOURCE_TYPES,
    page_size: int = 500,
    strict: bool = False,
    client: httpx.Client | None = None,
    since: str | None = None,
) -> None:
    """Search each resource type on a FHIR server, page by page, and ingest every entry."""
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    base = base_url.rstrip("/")
    http = client if client is not None else httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0))
    medications: MedicationIndex = {}
    try:
        for rt in resource_types:
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
                page = _get_page(http, url)
                ingest_fhir_bundle(page, key, sink, strict=strict, medications=medications)
                url = _next_url(page, url)
    finally:
        if client is None:
            http.close()
