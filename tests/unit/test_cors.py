"""Which web origins a source accepts, and how a bad entry in sources.yaml is named."""

from __future__ import annotations

import pytest

from nurture.config.loader import load_config
from nurture.config.origins import Origins, origin_pattern_problem, preflight_headers
from nurture.core.errors import ConfigError


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://www.example.com", True),
        ("HTTPS://WWW.EXAMPLE.COM", True),
        ("https://shop.example.com", True),
        ("https://a.b.example.com", True),
        ("https://example.com", False),  # the wildcard is for subdomains only
        ("https://www.example.com:8443", False),
        ("http://www.example.com", False),
        ("https://evilexample.com", False),
        ("https://www.example.com.evil.net", False),
        ("null", False),
        ("", False),
        (None, False),
    ],
)
def test_exact_and_subdomain_entries(origin, allowed):
    origins = Origins(("https://www.example.com", "https://*.example.com"))
    assert origins.allows(origin) is allowed


def test_any_origin_only_when_written_out():
    assert Origins(("*",)).allows("https://anywhere.example.org")
    assert not Origins(()).allows("https://www.example.com")


@pytest.mark.parametrize(
    "entry", ["https://www.example.com/", "https://www.example.com/path", "www.example.com", "https://WWW.example.com"]
)
def test_entries_that_are_not_origins_are_refused(entry):
    assert origin_pattern_problem(entry)


def test_a_bad_entry_names_its_place_in_sources_yaml(config_dir):
    # Given a website source whose origin carries a path
    path = config_dir / "sources.yaml"
    path.write_text(path.read_text().replace("- https://www.example.com\n", "- https://www.example.com/shop\n", 1))

    # When the configuration loads
    with pytest.raises(ConfigError) as caught:
        load_config(config_dir)

    # Then the file and the entry are named
    assert "sources.yaml: segment.website.allowed_origins[0]" in str(caught.value)


def test_a_preflight_grants_only_the_headers_the_api_reads():
    headers = preflight_headers("https://www.example.com", "POST, OPTIONS", "Authorization, X-Evil, content-type")
    assert headers["Access-Control-Allow-Headers"] == "authorization, content-type"
    assert headers["Access-Control-Allow-Origin"] == "https://www.example.com"
    assert headers["Vary"] == "Origin"
