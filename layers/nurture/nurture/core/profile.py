"""Turns the traits sources send (Segment's reserved traits in camelCase or
snake_case, form fields, group traits) into the lead's profile fields."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TRAIT_FIELDS = {
    "email": "email",
    "firstname": "first_name",
    "first_name": "first_name",
    "lastname": "last_name",
    "last_name": "last_name",
    "title": "title",
    "jobtitle": "title",
    "job_title": "title",
    "company": "company",
    "companyname": "company",
    "company_name": "company",
    "industry": "industry",
    "employees": "employees",
    "employee_count": "employees",
    "employeecount": "employees",
    "numberofemployees": "employees",
    "company_size": "employees",
    "annualrevenue": "annual_revenue",
    "annual_revenue": "annual_revenue",
    "revenue": "annual_revenue",
    "phone": "phone",
    "website": "website",
    "country": "country",
    "state": "state",
    "city": "city",
    "timezone": "timezone",
    "product_interest": "product_interest",
    "productinterest": "product_interest",
    "domain": "domain",
}
_NUMERIC = ("employees", "annual_revenue")
_COUNTRIES = {
    "united states": "us",
    "usa": "us",
    "united states of america": "us",
    "canada": "ca",
    "united kingdom": "gb",
    "uk": "gb",
    "england": "gb",
    "ireland": "ie",
    "germany": "de",
    "netherlands": "nl",
    "france": "fr",
    "sweden": "se",
    "denmark": "dk",
    "australia": "au",
    "spain": "es",
    "italy": "it",
    "india": "in",
    "brazil": "br",
    "japan": "jp",
    "singapore": "sg",
}


def normalize_email(value: Any) -> str | None:
    """Trimmed, lower-cased email, or None when it is not an address."""
    if not isinstance(value, str):
        return None
    email = value.strip().lower()
    return email if _EMAIL.match(email) else None


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    text = str(value).strip().replace(",", "").replace("+", "")
    if "-" in text:  # ranges such as "201-500" from form pick-lists: take the middle
        low, _, high = text.partition("-")
        try:
            return int((float(low) + float(high)) / 2)
        except ValueError:
            return None
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number.is_integer() else number


def _domain(website: str) -> str | None:
    host = re.sub(r"^[a-z]+://", "", website.strip().lower()).split("/")[0].split(":")[0]
    host = host.removeprefix("www.")
    return host if "." in host else None


def profile_updates(traits: Mapping[str, Any]) -> dict[str, Any]:
    """Known, non-blank profile fields found in `traits` (blanks never overwrite)."""
    updates: dict[str, Any] = {}
    for key, value in traits.items():
        lowered = key.lower()
        if lowered == "address" and isinstance(value, Mapping):
            updates.update(profile_updates({k: v for k, v in value.items() if k in ("country", "state", "city")}))
            continue
        if lowered == "company" and isinstance(value, Mapping):
            company = {
                "company": value.get("name"),
                "industry": value.get("industry"),
                "employees": value.get("employee_count") or value.get("employees"),
                "website": value.get("website"),
                "annual_revenue": value.get("annual_revenue"),
            }
            updates.update(profile_updates({k: v for k, v in company.items() if v is not None}))
            continue
        field = _TRAIT_FIELDS.get(lowered)
        if field is None or value is None or isinstance(value, Mapping | list):
            continue
        if field in _NUMERIC:
            number = _number(value)
            if number is not None:
                updates[field] = number
            continue
        text = str(value).strip()
        if not text:
            continue
        if field == "email":
            email = normalize_email(text)
            if email:
                updates["email"] = email
        elif field == "country":
            updates["country"] = _COUNTRIES.get(text.lower(), text.lower())
        elif field == "industry":
            updates["industry"] = text.lower()
        elif field in ("website", "domain"):
            domain = _domain(text)
            if domain:
                updates["domain" if field == "domain" else "website"] = domain
        else:
            updates[field] = text[:200]
    return updates


def apply_profile(profile: dict[str, Any], updates: Mapping[str, Any], free_mail: frozenset[str]) -> bool:
    """Merge updates into the profile and derive the company domain; True if anything changed."""
    changed = False
    for key, value in updates.items():
        if key != "email" and profile.get(key) != value:
            profile[key] = value
            changed = True
    if "domain" not in profile:
        email = updates.get("email")
        domain = email.rsplit("@", 1)[1] if email else None
        if domain and domain not in free_mail:
            profile["domain"] = domain
            changed = True
        elif profile.get("website"):
            profile["domain"] = profile["website"]
            changed = True
    return changed
