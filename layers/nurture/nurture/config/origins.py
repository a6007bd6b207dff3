"""Cross-origin access for browser SDKs: which web origins may send a source's
events, and the headers that tell the browser so.

Each source in `sources.yaml` lists its `allowed_origins`: exact origins
(`https://www.example.com`), every subdomain of a domain
(`https://*.example.com`), or `*` (any origin) only when written out. A source
with none accepts no browser traffic. The preflight carries no credentials, so
it is answered for an origin that any source of the route allows; the request
itself is then checked against the source its key names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from nurture.core.errors import ForbiddenError

ANY_ORIGIN = "*"
_ORIGIN = re.compile(
    r"^(https?)://(\*\.)?([a-z0-9]([a-z0-9-]*[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:\d{1,5})?$"
)
# What the two browser SDKs send beside the CORS-safelisted headers:
# Authorization (the write key), X-Retry-Count (analytics.js), AnonymousId
# (RudderStack), Content-Encoding (gzip bodies).
ALLOWED_HEADERS = ("authorization", "content-type", "content-encoding", "x-retry-count", "anonymousid")
MAX_AGE_SECONDS = 7200  # the longest Chromium honours


def origin_pattern_problem(value: str) -> str | None:
    """Why an `allowed_origins` entry is not usable, or None if it is."""
    if value == ANY_ORIGIN:
        return None
    if value != value.lower():
        return "write origins in lower case"
    if value.endswith("/"):
        return "an origin has no path: drop the trailing '/'"
    if not _ORIGIN.match(value):
        return "expected scheme://host[:port], e.g. https://www.example.com or https://*.example.com"
    return None


@dataclass(frozen=True)
class Origins:
    """The web origins one source accepts requests from."""

    patterns: tuple[str, ...] = ()

    def allows(self, origin: str | None) -> bool:
        if not origin:
            return False
        origin = origin.strip().lower()
        for pattern in self.patterns:
            if pattern in (ANY_ORIGIN, origin):
                return True
            if "://*." in pattern:
                scheme, rest = pattern.split("://*.", 1)
                prefix, suffix = f"{scheme}://", "." + rest
                if origin.startswith(prefix) and origin.endswith(suffix) and len(origin) > len(prefix + suffix):
                    return True
        return False

    def require(self, origin: str | None, what: str) -> None:
        """Refuse a request from a web page (it carries an Origin) of an origin
        not listed; servers send no Origin and are not affected."""
        if origin is not None and not self.allows(origin):
            raise ForbiddenError(
                f"web pages of {origin} may not {what}: add the origin to its allowed_origins", field="Origin"
            )


def any_allows(origins: Iterable[Origins], origin: str | None) -> bool:
    return any(each.allows(origin) for each in origins)


def allow_headers(origin: str) -> dict[str, str]:
    """The headers of an answer the browser may hand to a page of `origin`."""
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


def preflight_headers(origin: str, methods: str, requested: str | None) -> dict[str, str]:
    """The answer to an allowed preflight: the requested headers the API reads, no others."""
    asked = [name.strip().lower() for name in (requested or "").split(",") if name.strip()]
    granted = [name for name in asked if name in ALLOWED_HEADERS] or list(ALLOWED_HEADERS[:2])
    return {
        **allow_headers(origin),
        "Access-Control-Allow-Methods": methods,
        "Access-Control-Allow-Headers": ", ".join(granted),
        "Access-Control-Max-Age": str(MAX_AGE_SECONDS),
    }
