"""What the browser SDKs fetch before they send anything, answered by Nurture
itself so a website's snippet needs only Nurture's URL.

- analytics.js (`@segment/analytics-next`) reads `<cdn>/v1/projects/<writeKey>/settings`
  where `<cdn>` is `analytics._cdn`; `integrations["Segment.io"].apiHost` tells it
  where to post (`<protocol>://<apiHost>/t`, `/p`, `/i`…).
- RudderStack's JS SDK v3 reads `<configUrl>/sourceConfig?writeKey=…`; it posts
  to the data-plane URL it was loaded with.

Both answers turn off what would call their vendors' own services (device-mode
destinations, remote plugins, the SDKs' error and usage telemetry).
"""

from __future__ import annotations

from typing import Any

from nurture.config.loader import SegmentSource


def api_host(scheme: str, host: str, base_path: str) -> tuple[str, str]:
    """analytics.js's (protocol, apiHost): apiHost is host and path without the
    scheme, up to and including `/v1`, as Segment's own `api.segment.io/v1`."""
    protocol = "http" if scheme.lower() == "http" else "https"
    return protocol, f"{host}{base_path.rstrip('/')}/v1"


def segment_settings(write_key: str, protocol: str, host: str) -> dict[str, Any]:
    """Segment's CDN settings document for one write key, delivering to Nurture."""
    return {
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": host,
                "protocol": protocol,
                "unbundledIntegrations": [],
                "addBundledMetadata": True,
                "maybeBundledConfigIds": {},
                "versionSettings": {"version": "4.4.7", "componentTypes": ["browser"]},
            }
        },
        "plan": {
            "track": {"__default": {"enabled": True, "integrations": {}}},
            "identify": {"__default": {"enabled": True}},
            "group": {"__default": {"enabled": True}},
        },
        "edgeFunction": {},
        "analyticsNextEnabled": True,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0},
        "legacyVideoPluginsEnabled": False,
        "remotePlugins": [],
    }


def rudderstack_source_config(source: SegmentSource, write_key: str, updated_at: str) -> dict[str, Any]:
    """RudderStack's source configuration for one write key: enabled, no device-mode destinations."""
    return {
        "isHosted": False,
        "updatedAt": updated_at,
        "source": {
            "id": source.name,
            "name": source.name,
            "writeKey": write_key,
            "enabled": True,
            "workspaceId": "nurture",
            "config": {"statsCollection": {"errors": {"enabled": False}, "metrics": {"enabled": False}}},
            "destinations": [],
        },
    }
