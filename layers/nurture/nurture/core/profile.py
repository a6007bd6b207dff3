"""Turns the traits sources send (Segment's reserved traits in camelCase or
snake_case, form fields, group traits) into the lead's profile fields."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
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
# The numeric profile fields and the largest value each may take: more
# people than any employer has, more revenue than any company (in any
# currency's units) makes. Scores, reports and the table take these safely.
NUMERIC_LIMITS = {"employees": 10_000_000, "annual_revenue": 1e15}
MAX_EMAIL_CHARS = 254  # RFC 5321's longest forward path, less its brackets
MAX_TEXT_CHARS = 200  # a profile text field (title, company, country...)
MAX_DOMAIN_CHARS = 253  # DNS's longest name
_MAX_NUMBER_CHARS = 64  # no count or amount is written longer
InvalidTrait = Callable[[str, str], None]  # (trait path, reason): refuse, or None to drop quietly
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
    """Trimmed, lower-cased email, or None when it is not an address (or is
    longer than an address may be, 254 characters)."""
    if not isinstance(value, str) or len(value) > 4 * MAX_EMAIL_CHARS:
        return None
    email = value.strip().lower()
    return email if len(email) <= MAX_EMAIL_CHARS and _EMAIL.match(email) else None


def _number(value: Any) -> float | int | None:
    """The number a trait holds, or None when it holds none (finite or not:
    the caller checks the range)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    text = str(value).strip().replace(",", "").replace("+", "")
    if len(text) > _MAX_NUMBER_CHARS:
        return None
    if "-" in text:  # ranges such as "201-500" from form pick-lists: take the middle
        low, _, high = text.partition("-")
        try:
            middle = (float(low) + float(high)) / 2
        except ValueError:
            return None
        return int(middle) if math.isfinite(middle) else middle
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number.is_integer() else number


def _domain(website: str) -> str | None:
    host = re.sub(r"^[a-z]+://", "", website.strip().lower()).split("/")[0].split(":")[0]
    host = host.removeprefix("www.")
    return host if "." in host and len(host) <= MAX_DOMAIN_CHARS else None


def profile_updates(traits: Mapping[str, Any], invalid: InvalidTrait | None = None, at: str = "") -> dict[str, Any]:
    """Known, non-blank profile fields found in `traits` (blanks never overwrite).

    Text is kept to 200 characters (a domain to DNS's 253, else dropped). A
    numeric field that holds a number outside its range (NaN, infinity, a
    negative count, more than `NUMERIC_LIMITS`) is dropped, after telling
    `invalid` its path (the API refuses the call there; the consumer, reading
    what the API accepted, never sees one)."""
    updates: dict[str, Any] = {}
    for key, value in traits.items():
        lowered = key.lower()
        if lowered == "address" and isinstance(value, Mapping):
            address = {k: v for k, v in value.items() if k in ("country", "state", "city")}
            updates.update(profile_updates(address, invalid, f"{at}{key}."))
            continue
        if lowered == "company" and isinstance(value, Mapping):
            names = {
                "company": "name",
                "industry": "industry",
                "employees": "employee_count" if value.get("employee_count") else "employees",
                "website": "website",
                "annual_revenue": "annual_revenue",
            }
            for field, name in names.items():
                if value.get(name) is not None:
                    updates.update(profile_updates({field: value[name]}, _renamed(invalid, f"{at}{key}.{name}")))
            continue
        field = _TRAIT_FIELDS.get(lowered)
        if field is None or value is None or isinstance(value, Mapping | list):
            continue
        if field in NUMERIC_LIMITS:
            number = _number(value)
            if number is None:
                continue
            if (isinstance(number, int) or math.isfinite(number)) and 0 <= number <= NUMERIC_LIMITS[field]:
                updates[field] = number
            elif invalid is not None:
                invalid(f"{at}{key}", f"{value!r:.40} is not a number from 0 to {NUMERIC_LIMITS[field]:,.0f}")
            continue
        text = str(value).strip()
        if not text:
            continue
        if field == "email":
            email = normalize_email(text)
            if email:
                updates["email"] = email
        elif field == "country":
            updates["country"] = _COUNTRIES.get(text.lower(), text.lower()[:MAX_TEXT_CHARS])
        elif field == "industry":
            updates["industry"] = text.lower()[:MAX_TEXT_CHARS]
        elif field in ("website", "domain"):
            domain = _domain(text)
            if domain:
                updates["domain" if field == "domain" else "website"] = domain
        else:
            updates[field] = text[:MAX_TEXT_CHARS]
    return updates


def _renamed(invalid: InvalidTrait | None, path: str) -> InvalidTrait | None:
    """Report a company object's field under its own path (`company.employee_count`)."""
    if invalid is None:
        return None
    return lambda _, reason: invalid(path, reason)


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
