#!/usr/bin/env python3
"""Ingest benchmark: a synthetic month of website traffic replayed through the
real track handler (functions/track/app.py), in-process.

    python bench/ingest.py [--events 20000] [--leads 2000] [--batch 100] [--seed 7]

Prints ONE JSON object on stdout (progress goes to stderr):

- DynamoDB write request units per event (AWS sizing rules, GSI included) and
  AWS API calls per event, from a replay under moto with the table that
  template.yaml declares;
- handler CPU per event versus a minimal "store each event" baseline handler,
  both with AWS answered in-process at the HTTP layer (so botocore's real
  client-side work is paid by both, the network and the service by neither);
- cold import time of each handler module versus `import boto3`;
- the goals and whether each is met, and the shape of the stream.

bench/README.md explains every figure. Timing figures belong here, never in
tests.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import cProfile
import hashlib
import importlib.util
import io
import json
import math
import os
import pstats
import random
import re
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TRACK_APP = ROOT / "functions" / "track" / "app.py"
API_APP = ROOT / "functions" / "api" / "app.py"
CONFIG_DIR = ROOT / "config"
REGION = "us-east-1"
GOALS = {
    "dynamodb_write_units_per_event": ("<=", 1.3),
    "aws_calls_per_event": ("<=", 0.3),
    "cpu_ratio": ("<=", 2.0),
    "import_ratio": ("<=", 1.3),
}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# =============================================================================
# 1. The synthetic stream
# =============================================================================

DAY = 86400.0
START = datetime(2025, 3, 3, tzinfo=UTC).timestamp()  # a Monday, 00:00 UTC
SITE = "https://www.revlytics.example"
BRAND = "Revlytics"

PAGES: dict[str, tuple[str, str]] = {  # path -> (title, section)
    "/": ("Revenue analytics for B2B go-to-market teams", "home"),
    "/product": ("Platform overview", "product"),
    "/product/forecasting": ("Forecasting", "product"),
    "/product/pipeline-analytics": ("Pipeline analytics", "product"),
    "/product/revenue-intelligence": ("Revenue intelligence", "product"),
    "/pricing": ("Pricing", "pricing"),
    "/blog": ("Blog", "blog"),
    "/blog/why-leads-go-cold": ("Why 70% of your leads go cold", "blog"),
    "/blog/forecast-misses": ("The hidden cost of forecast misses", "blog"),
    "/blog/revops-metrics-that-matter": ("RevOps metrics that matter", "blog"),
    "/blog/pipeline-coverage-ratio": ("What pipeline coverage ratio do you need?", "blog"),
    "/blog/sales-marketing-alignment": ("Sales and marketing alignment, measured", "blog"),
    "/blog/crm-data-hygiene": ("CRM data hygiene in five steps", "blog"),
    "/customers": ("Customers", "customers"),
    "/customers/fintech-forecasting": ("How a fintech cut forecast error by 40%", "customers"),
    "/customers/saas-pipeline": ("A SaaS scale-up doubles pipeline visibility", "customers"),
    "/customers/insurance-revops": ("RevOps at a top-20 insurer", "customers"),
    "/integrations": ("Integrations", "integrations"),
    "/integrations/salesforce": ("Salesforce integration", "integrations"),
    "/integrations/hubspot": ("HubSpot integration", "integrations"),
    "/compare/pipelineiq": ("Revlytics vs PipelineIQ", "compare"),
    "/careers": ("Careers", "careers"),
    "/careers/senior-backend-engineer": ("Senior Backend Engineer", "careers"),
    "/careers/account-executive": ("Account Executive, Mid-Market", "careers"),
    "/about": ("About us", "about"),
    "/security": ("Security at Revlytics", "about"),
    "/resources/revenue-analytics-guide": ("The revenue analytics buyer's guide", "resources"),
    "/resources/security-overview": ("Security and compliance overview", "resources"),
    "/webinars/pipeline-hygiene": ("Webinar: Pipeline hygiene, a RevOps playbook", "webinar"),
    "/webinars/pipeline-hygiene/live": ("Live now: Pipeline hygiene", "live"),
    "/roi-calculator": ("ROI calculator", "roi"),
    "/demo": ("Book a demo", "demo"),
}
SECTION_PAGES: dict[str, list[str]] = {}
for _path, (_title, _section) in PAGES.items():
    SECTION_PAGES.setdefault(_section, []).append(_path)

NEXT_SECTION: dict[str, dict[str, int]] = {
    "home": {"product": 35, "pricing": 18, "blog": 14, "customers": 14, "integrations": 9, "careers": 4, "about": 6},
    "blog": {"blog": 50, "home": 10, "product": 18, "resources": 8, "pricing": 6, "customers": 8},
    "product": {"product": 28, "pricing": 26, "integrations": 16, "customers": 16, "home": 6, "roi": 4, "compare": 4},
    "pricing": {
        "customers": 22,
        "product": 20,
        "integrations": 14,
        "compare": 10,
        "roi": 10,
        "home": 8,
        "about": 6,
        "blog": 10,
    },
    "customers": {"customers": 28, "pricing": 24, "product": 24, "integrations": 8, "home": 8, "blog": 8},
    "integrations": {"integrations": 30, "product": 28, "pricing": 24, "customers": 10, "home": 8},
    "compare": {"pricing": 40, "customers": 30, "product": 30},
    "careers": {"careers": 55, "about": 25, "home": 20},
    "about": {"careers": 15, "home": 30, "product": 35, "customers": 20},
    "resources": {"blog": 40, "product": 30, "home": 30},
    "roi": {"pricing": 50, "product": 30, "customers": 20},
    "webinar": {"product": 40, "blog": 30, "home": 30},
    "live": {"product": 45, "pricing": 25, "customers": 30},
    "demo": {"pricing": 50, "product": 50},
}
# fmt: off
FIRST_ENTRY = {
    "blog": 40, "home": 25, "product": 12, "customers": 5, "pricing": 4, "integrations": 4, "resources": 6,
    "compare": 4,
}
RETURN_ENTRY = {"home": 22, "product": 22, "pricing": 16, "blog": 18, "customers": 10, "integrations": 8, "compare": 4}
JOB_SEEKER_ENTRY = {"careers": 70, "home": 20, "about": 10}
SESSION_LENGTHS = {3: 14, 4: 14, 5: 13, 6: 12, 7: 10, 8: 9, 9: 8, 10: 7, 11: 7, 12: 6}

FIRST_NAMES = [
    "james", "mary", "robert", "patricia", "john", "jennifer", "michael", "linda", "david", "elizabeth", "william",
    "barbara", "richard", "susan", "joseph", "jessica", "thomas", "sarah", "chris", "karen", "daniel", "lisa",
    "matthew", "nancy", "anthony", "sandra", "mark", "ashley", "priya", "wei", "lukas", "sofia", "lea", "ahmed",
    "fatima", "kenji", "yuki", "olivia", "noah", "emma", "liam", "ava", "lucas", "mia", "arjun", "ananya", "mateo",
    "isabella", "finn", "hannah",
]
LAST_NAMES = [
    "smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis", "rodriguez", "martinez",
    "hernandez", "lopez", "wilson", "anderson", "thomas", "taylor", "moore", "jackson", "martin", "lee", "perez",
    "thompson", "white", "harris", "clark", "lewis", "robinson", "walker", "young", "allen", "king", "wright",
    "scott", "green", "baker", "adams", "nelson", "hill", "mueller", "schmidt", "schneider", "fischer", "weber",
    "dubois", "martin", "bernard", "sato", "suzuki", "patel", "sharma", "singh", "kumar", "nguyen", "kim", "park",
    "chen", "wang", "silva",
]
TITLES = {
    "VP Revenue Operations": 5, "Director of Revenue Operations": 6, "Revenue Operations Manager": 8,
    "Head of Marketing Operations": 4, "Marketing Operations Manager": 7, "Director of Demand Generation": 4,
    "Demand Generation Manager": 7, "VP Marketing": 4, "CMO": 2, "Chief Revenue Officer": 2, "VP Sales": 4,
    "Head of Sales": 4, "Sales Operations Analyst": 6, "Account Executive": 6,
    "Sales Development Representative": 6, "CRM Administrator": 4, "Growth Lead": 3, "CFO": 1,
    "Finance Controller": 2, "Procurement Manager": 2, "IT Director": 2, "Data Engineer": 4, "Software Engineer": 5,
    "Business Analyst": 4, "Founder": 2, "Product Manager": 3, "Student": 1,
}
COMPANY_WORDS = [
    "North", "Blue", "Bright", "Iron", "Silver", "Summit", "Vertex", "Harbor", "Maple", "Cedar", "Quantum", "Nova",
    "Apex", "Lumen", "Orbit", "Pioneer", "Crest", "Atlas", "Beacon", "Falcon", "Granite", "Willow", "Cobalt",
    "Meridian", "Sterling",
]
COMPANY_ENDINGS = [
    "wave", "stone", "field", "point", "line", "bridge", "works", "logic", "path", "gate", "scale", "core", "leaf",
    "peak", "river",
]
COMPANY_KINDS = {  # kind -> industries sent as traits (case varies on purpose)
    "Software": ["Software", "software", "SaaS"],
    "Cloud": ["SaaS", "Software"],
    "Analytics": ["Software", "SaaS"],
    "Bank": ["Financial Services"],
    "Capital": ["Financial Services", "Fintech"],
    "Pay": ["Fintech"],
    "Insurance": ["Insurance"],
    "Health": ["Healthcare Technology", "Healthcare"],
    "Consulting": ["Professional Services"],
    "Telecom": ["Telecommunications"],
    "Logistics": ["Logistics"],
    "Retail": ["Retail"],
    "Media": ["Media"],
    "Manufacturing": ["Manufacturing"],
    "University": ["Education"],
}
KIND_WEIGHTS = {
    "Software": 16, "Cloud": 10, "Analytics": 6, "Bank": 5, "Capital": 5, "Pay": 5, "Insurance": 6, "Health": 6,
    "Consulting": 8, "Telecom": 4, "Logistics": 6, "Retail": 7, "Media": 5, "Manufacturing": 8, "University": 3,
}
TLDS = {".com": 70, ".io": 12, ".de": 6, ".co.uk": 6, ".fr": 3, ".nl": 3}
COUNTRIES = {  # as typed into forms -> weight
    "United States": 30, "US": 8, "USA": 3, "United Kingdom": 6, "UK": 3, "Germany": 6, "Canada": 5, "France": 3,
    "Netherlands": 3, "Sweden": 2, "Australia": 3, "India": 5, "Brazil": 3, "Spain": 2, "Japan": 2, "Ireland": 2,
    "Singapore": 2,
}
COUNTRY_TZ = {
    "United States": -5, "US": -6, "USA": -7, "Canada": -5, "Brazil": -3, "United Kingdom": 0, "UK": 0,
    "Ireland": 0, "Germany": 1, "France": 1, "Netherlands": 1, "Sweden": 1, "Spain": 1, "India": 5.5,
    "Singapore": 8, "Japan": 9, "Australia": 10,
}
EMPLOYEE_BANDS = {(3, 49): 20, (50, 199): 25, (200, 999): 25, (1000, 4999): 18, (5000, 20000): 9, (20001, 120000): 3}
FREE_MAIL = ["gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "icloud.com"]
COMPETITORS = ["pipelineiq.example", "funnelforge.example", "leadlytics.example"]
# fmt: on
USER_AGENTS = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 "
    "Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36 "
    "Edg/122.0.2365.66",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:123.0) Gecko/20100101 Firefox/123.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.3.1 "
    "Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.3.1 Mobile/15E148 Safari/604.1",
]
CAMPAIGNS = [
    ("march-newsletter", "Your March RevOps digest"),
    ("forecast-webinar-invite", "Live: pipeline hygiene, a RevOps playbook"),
    ("buyers-guide-nurture", "The revenue analytics buyer's guide"),
    ("customer-story-fintech", "How a fintech cut forecast error by 40%"),
    ("product-update", "New: pipeline coverage alerts"),
    ("roi-nudge", "What would better forecasts be worth to you?"),
    ("webinar-replay", "The replay: pipeline hygiene"),
    ("pricing-faq", "Your pricing questions, answered"),
    ("april-newsletter", "Your April RevOps digest"),
]
# Email campaign sends: Tuesdays and Thursdays 15:00 UTC.  Webinars: two live sessions.
SENDS = [START + d * DAY + 15 * 3600 for d in range(31) if d % 7 in (1, 3)]
WEBINARS = [START + 9 * DAY + 16 * 3600, START + 23 * DAY + 16 * 3600]
LIBRARY = {"name": "analytics.js", "version": "npm:next-1.70.0"}


def wchoice(rng: random.Random, weights: dict[Any, float]) -> Any:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def rng_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Company:
    name: str
    domain: str
    industry: str
    employees: int
    country: str


@dataclass
class Device:
    anonymous_id: str
    user_agent: str
    ip: str
    timezone: str
    locale: str


@dataclass
class Person:
    index: int
    company: Company
    first: str
    last: str
    email: str
    title: str
    country: str
    intent: float
    job_seeker: bool
    identifies: bool
    first_purpose: str | None
    devices: list[Device]
    esp_id: str
    tz_hours: float
    first_visit: float
    gap_days: float


@dataclass
class PlannedSession:
    person: int
    kind: str  # web | email_open | email_click | webinar_live
    start: float
    length: int
    device: int = 0
    purpose: str | None = None  # a conversion (form) inside a web session: identify + track
    campaign: int = 0
    first: bool = False


@dataclass
class Call:
    t: float
    person: int
    session: int
    payload: dict[str, Any]


@dataclass
class Stream:
    batches: list[list[dict[str, Any]]]  # each: the SQS records of one handler invocation
    invoke_at: list[float]  # the clock each invocation runs at
    shape: dict[str, Any]
    people_per_batch: list[int] = field(default_factory=list)


def _daytime(t: float, tz_hours: float, rng: random.Random) -> float:
    """Move t into the visitor's waking hours (mostly working days), as B2B traffic is."""
    local = t + tz_hours * 3600
    hour = (local % DAY) / 3600
    if hour < 7.5 or hour > 21.5:
        day_start = local - local % DAY + (DAY if hour > 21.5 else 0)
        local = day_start + rng.uniform(8, 18) * 3600
    weekday = int((local - START) // DAY) % 7
    if weekday >= 5 and rng.random() < 0.75:
        local += (7 - weekday) * DAY
    return local - tz_hours * 3600


def _make_people(rng: random.Random, leads: int, days: float) -> tuple[list[Person], list[Company]]:
    companies: list[Company] = []
    seen: set[str] = set()
    n_companies = max(1, round(leads / 5))
    while len(companies) < n_companies:
        word, ending = rng.choice(COMPANY_WORDS), rng.choice(COMPANY_ENDINGS)
        kind = wchoice(rng, KIND_WEIGHTS)
        domain = f"{word}{ending}{'' if rng.random() < 0.6 else '-' + kind}".lower() + wchoice(rng, TLDS)
        if domain in seen:
            continue
        seen.add(domain)
        low, high = wchoice(rng, EMPLOYEE_BANDS)
        employees = int(math.exp(rng.uniform(math.log(low), math.log(high))))
        companies.append(
            Company(
                f"{word}{ending} {kind}", domain, rng.choice(COMPANY_KINDS[kind]), employees, wchoice(rng, COUNTRIES)
            )
        )
    # Bigger accounts send more people: everyone's first company, then Zipf-like.
    account_weights = [1.0 / (rank + 1) ** 0.8 for rank in range(len(companies))]
    people: list[Person] = []
    used_emails: set[str] = set()
    for index in range(leads):
        company = companies[index] if index < len(companies) else rng.choices(companies, account_weights)[0]
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        roll = rng.random()
        if roll < 0.003:
            domain = rng.choice(COMPETITORS)
        elif roll < 0.09:
            domain = rng.choice(FREE_MAIL)
        else:
            domain = company.domain
        local = rng.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}", f"{first}{last[0]}"])
        if domain in FREE_MAIL:
            local = f"{first}.{last}{rng.randint(1, 99)}"
        email = f"{local}@{domain}"
        while email in used_emails:
            email = f"{local}{rng.randint(2, 9)}@{domain}"
        used_emails.add(email)
        country = company.country if rng.random() < 0.8 else wchoice(rng, COUNTRIES)
        tz_hours = COUNTRY_TZ.get(country, 0)
        intent = rng.betavariate(1.2, 3.0)
        job_seeker = rng.random() < 0.04
        identifies = not job_seeker and rng.random() < 0.12 + 0.6 * intent
        first_purpose = None
        if identifies:
            first_purpose = wchoice(
                rng,
                {
                    "newsletter": 30 - 20 * intent,
                    "content": 35,
                    "webinar": 20,
                    "roi": 4 + 10 * intent,
                    "demo": 1 + 14 * intent,
                },
            )
        devices = []
        for _ in range(2 if rng.random() < 0.3 else 1):  # a work laptop, often a phone too
            devices.append(
                Device(
                    rng_uuid(rng),
                    rng.choice(USER_AGENTS),
                    f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                    "America/New_York"
                    if tz_hours < -2
                    else "Europe/Berlin"
                    if tz_hours < 3
                    else "Asia/Kolkata"
                    if tz_hours < 7
                    else "Australia/Sydney",
                    rng.choice(["en-US", "en-GB", "de-DE", "en-US", "fr-FR"]),
                )
            )
        first_visit = _daytime(START + rng.uniform(0, days * 0.97) * DAY, tz_hours, rng)
        people.append(
            Person(
                index,
                company,
                first.title(),
                last.title(),
                email,
                wchoice(rng, TITLES),
                country,
                intent,
                job_seeker,
                identifies,
                first_purpose,
                devices,
                rng_uuid(rng),
                tz_hours,
                first_visit,
                12.0 - 9.0 * intent,
            )
        )
    return people, companies


def _plan(people: list[Person], seed: int, days: float, gap_factor: float) -> list[PlannedSession]:
    """When each visitor comes back and what for; gap_factor scales return frequency."""
    rng = random.Random(f"{seed}-plan")
    end = START + days * DAY
    plan: list[PlannedSession] = []
    for person in people:
        times = [person.first_visit]
        t = person.first_visit
        while True:
            t = _daytime(t + rng.expovariate(1.0 / (person.gap_days * DAY * gap_factor)), person.tz_hours, rng)
            if t >= end:
                break
            times.append(t)
        web = []
        for i, start in enumerate(times):
            device = 1 if i and len(person.devices) > 1 and rng.random() < 0.35 else 0
            web.append(PlannedSession(person.index, "web", start, wchoice(rng, SESSION_LENGTHS), device, first=i == 0))
        if person.identifies:
            k = 0 if len(web) == 1 or rng.random() < 0.35 else rng.randrange(1, len(web))
            web[k].purpose = person.first_purpose
            identified_at = web[k].start
            for session in web[k + 1 :]:
                if rng.random() < 0.08 + 0.15 * person.intent:
                    session.purpose = wchoice(
                        rng,
                        {"content": 35, "webinar": 25, "roi": 5 + 20 * person.intent, "demo": 2 + 20 * person.intent},
                    )
            for c, send in enumerate(SENDS):
                if send < identified_at or rng.random() > 0.2 + 0.3 * person.intent:
                    continue
                opened = send + min(3 * DAY, rng.lognormvariate(math.log(2400), 1.3))
                if rng.random() < 0.25 + 0.2 * person.intent:
                    phone = len(person.devices) > 1 and rng.random() < 0.6  # emails are read on phones
                    plan.append(
                        PlannedSession(
                            person.index,
                            "email_click",
                            opened,
                            wchoice(rng, SESSION_LENGTHS),
                            1 if phone else 0,
                            campaign=c,
                        )
                    )
                else:
                    plan.append(PlannedSession(person.index, "email_open", opened, 1, campaign=c))
            for session in web:
                live = next((w for w in WEBINARS if w > session.start), None)
                if session.purpose == "webinar" and live and rng.random() < 0.45:
                    plan.append(
                        PlannedSession(
                            person.index,
                            "webinar_live",
                            live + rng.uniform(-300, 900),
                            rng.randint(3, 6),
                            session.device,
                        )
                    )
        plan.extend(web)
    return [s for s in plan if s.start < end]


def _conversion(purpose: str, rng: random.Random, next_webinar: float | None) -> list[tuple]:
    if purpose == "newsletter":
        return [("page", rng.choice(SECTION_PAGES["blog"][1:])), ("identify", "newsletter")]
    if purpose == "content":
        asset = rng.choice(
            [
                ("wp-revenue-analytics-guide", "/resources/revenue-analytics-guide"),
                ("wp-revenue-analytics-guide", "/resources/revenue-analytics-guide"),
                ("security-overview", "/resources/security-overview"),
            ]
        )
        return [
            ("page", asset[1]),
            ("identify", "full"),
            (
                "track",
                "Asset Downloaded",
                {"asset_id": asset[0], "asset_type": "white_paper", "title": PAGES[asset[1]][0], "format": "pdf"},
            ),
        ]
    if purpose == "webinar":
        props = {"webinar_id": "pipeline-hygiene", "webinar_title": "Pipeline hygiene: a RevOps playbook"}
        if next_webinar:
            props["starts_at"] = iso(next_webinar)
        return [("page", "/webinars/pipeline-hygiene"), ("identify", "full"), ("track", "Webinar Registered", props)]
    if purpose == "roi":
        return [("page", "/roi-calculator"), ("identify", "full"), ("track", "ROI Calculator Completed", _roi(rng))]
    if purpose == "demo":
        return [
            ("page", "/pricing"),
            ("page", "/demo"),
            ("identify", "full"),
            (
                "track",
                "form_submitted",
                {
                    "form_id": "demo-request",
                    "form_name": "Book a demo",
                    "product_interest": rng.choice(["forecasting", "pipeline", "platform"]),
                },
            ),
        ]
    raise ValueError(purpose)


def _roi(rng: random.Random) -> dict[str, Any]:
    seats = rng.choice([10, 25, 40, 75, 150, 300])
    return {
        "seats": seats,
        "currency": "USD",
        "annual_savings": seats * rng.randint(900, 3200),
        "payback_months": rng.randint(3, 14),
    }


def _steps(session: PlannedSession, person: Person, rng: random.Random) -> list[tuple]:
    """The calls of one session, in order: ("page", path) | ("track", name, props) |
    ("identify", "full" or "newsletter") | ("email", name)."""
    if session.kind == "email_open":
        return [("email", "Email Opened")]
    steps: list[tuple] = []
    length = session.length
    if session.kind == "email_click":
        steps = [("email", "Email Opened"), ("email", "Email Link Clicked")]
        if rng.random() < 0.6:  # the link carries ?ajs_trait_email=... (Segment's querystring API)
            steps.append(("identify", "link"))
        section = rng.choice(["blog", "resources", "product", "customers", "pricing", "webinar"])
    elif session.kind == "webinar_live":
        steps = [
            ("page", "/webinars/pipeline-hygiene/live"),
            ("track", "Webinar Attended", {"webinar_id": "pipeline-hygiene", "minutes_attended": rng.randint(8, 55)}),
        ]
        section = wchoice(rng, NEXT_SECTION["live"])
    else:
        entry = JOB_SEEKER_ENTRY if person.job_seeker else FIRST_ENTRY if session.first else RETURN_ENTRY
        section = wchoice(rng, entry)
    pending: list[tuple] = []
    insert_at = length
    if session.purpose:
        live = next((w for w in WEBINARS if w > session.start), None)
        pending = _conversion(session.purpose, rng, live)
        length = max(length, len(pending) + 1)
        insert_at = rng.randint(max(1, len(steps)), length - len(pending))
    previous = None
    while len(steps) < length or pending:
        if pending and len(steps) >= insert_at:
            steps += pending
            section = wchoice(rng, NEXT_SECTION[PAGES[pending[0][1]][1]])
            pending = []
            continue
        pages = [p for p in SECTION_PAGES[section] if p != previous] or SECTION_PAGES[section]
        path = rng.choice(pages)
        steps.append(("page", path))
        previous = path
        room = length - len(steps) - len(pending)
        if section == "roi" and room > 0 and rng.random() < 0.35:
            steps.append(("track", "ROI Calculator Completed", _roi(rng)))
        section = wchoice(rng, NEXT_SECTION[section])
    return steps


def _calls(session_id: int, session: PlannedSession, person: Person, rng: random.Random) -> list[Call]:
    device = person.devices[session.device]
    calls: list[Call] = []
    t = session.start
    page: dict[str, Any] | None = None
    campaign = None
    if session.kind == "email_click":
        name, _ = CAMPAIGNS[session.campaign % len(CAMPAIGNS)]
        campaign = {"name": name, "source": "email", "medium": "email"}
    elif session.first and rng.random() < 0.25:
        campaign = {"name": "revops-q1", "source": rng.choice(["linkedin", "google"]), "medium": "cpc"}
    referrer = rng.choice(["", "https://www.google.com/", "https://www.linkedin.com/", "https://www.bing.com/"])
    previous: tuple = ("",)
    for n, step in enumerate(_steps(session, person, rng)):
        previous_kind = previous[0]
        if n:
            if previous_kind == "email":
                t += rng.uniform(5, 300) if step[0] == "email" else rng.uniform(1, 3)  # open -> click -> site
            elif previous == ("identify", "link"):
                t += rng.uniform(0.1, 0.5)  # the landing page's page call follows the identify
            elif step[0] == "track" and previous_kind in ("identify", "page"):
                t += rng.uniform(0.3, 2.5) if previous_kind == "identify" else rng.uniform(3, 90)
            elif step[0] == "identify":
                t += rng.uniform(15, 120)  # filling in the form
            else:
                t += min(900.0, max(4.0, rng.lognormvariate(math.log(50), 0.9)))
        message: dict[str, Any] = {
            "messageId": rng_uuid(rng),
            "timestamp": iso(t),
            "originalTimestamp": iso(t),
            "sentAt": iso(t + rng.uniform(0.05, 1.5)),
            "integrations": {},
        }
        kind = step[0]
        if kind == "email":
            name, subject = CAMPAIGNS[session.campaign % len(CAMPAIGNS)]
            properties = {
                "campaign_id": f"cmp-{session.campaign:03d}",
                "campaign_name": name,
                "email_subject": subject,
                "email_id": f"em-{session.campaign:03d}-{person.index:05d}",
            }
            if step[1] == "Email Link Clicked":
                properties["link_url"] = f"{SITE}/?utm_source=email&utm_campaign={name}"
            message.update(
                {
                    "type": "track",
                    "event": step[1],
                    "anonymousId": person.esp_id,
                    "properties": properties,
                    "context": {
                        "traits": {"email": person.email},
                        "library": {"name": "esp-webhooks", "version": "2.3.0"},
                    },
                }
            )
        else:
            context: dict[str, Any] = {
                "ip": device.ip,
                "userAgent": device.user_agent,
                "locale": device.locale,
                "timezone": device.timezone,
                "library": LIBRARY,
            }
            if kind == "page":
                path = step[1]
                tagged = campaign and n < 3
                search = f"?utm_source={campaign['source']}&utm_campaign={campaign['name']}" if tagged else ""
                page = {
                    "path": path,
                    "referrer": referrer,
                    "search": search,
                    "title": f"{PAGES[path][0]} | {BRAND}",
                    "url": SITE + path + search,
                }
                referrer = SITE + path
                context["page"] = page
                if tagged:
                    context["campaign"] = campaign
                message.update({"type": "page", "anonymousId": device.anonymous_id, "properties": dict(page)})
            elif kind == "track":
                if page:
                    context["page"] = page
                message.update(
                    {"type": "track", "event": step[1], "anonymousId": device.anonymous_id, "properties": step[2]}
                )
            else:  # identify
                traits: dict[str, Any] = {"email": person.email}
                if step[1] == "full" or rng.random() < 0.5:
                    traits["firstName"] = person.first
                if step[1] == "full":
                    employees: Any = person.company.employees
                    form = rng.random()
                    if form < 0.25:  # a pick-list range
                        bands = [(1, 10), (11, 50), (51, 200), (201, 500), (501, 1000), (1001, 5000), (5001, 10000)]
                        low, high = next((b for b in bands if b[0] <= employees <= b[1]), (10001, 50000))
                        employees = f"{low}-{high}"
                    elif form < 0.4:
                        employees = str(employees)
                    traits.update(
                        {
                            "lastName": person.last,
                            "title": person.title,
                            "company": person.company.name,
                            "industry": person.company.industry,
                            "employees": employees,
                            "country": person.country,
                        }
                    )
                if page:
                    context["page"] = page
                message.update({"type": "identify", "anonymousId": device.anonymous_id, "traits": traits})
            message["context"] = context
        previous = step
        calls.append(Call(t, person.index, session_id, message))
    return calls


def build_stream(events: int, leads: int, batch: int, record_events: int, seed: int, days: float) -> Stream:
    from nurture.adapters.aws import _message_bodies
    from nurture.ingest.segment import parse_request

    rng = random.Random(seed)
    people, companies = _make_people(rng, leads, days)
    # Pick how often visitors come back so that the month holds `events` calls.
    low, high = math.log(0.01), math.log(200.0)
    factor = math.exp(high)
    for _ in range(28):
        middle = (low + high) / 2
        if sum(s.length for s in _plan(people, seed, days, math.exp(middle))) >= events:
            low, factor = middle, math.exp(middle)
        else:
            high = middle
    plan = sorted(_plan(people, seed, days, factor), key=lambda s: (s.start, s.person))
    calls: list[Call] = []
    for session_id, session in enumerate(plan):
        session_rng = random.Random(f"{seed}-session-{session.person}-{session_id}")
        calls += _calls(session_id, session, people[session.person], session_rng)
    calls.sort(key=lambda c: (c.t, c.person, c.session))
    # Trim to exactly `events`: the last return visits go first, so every
    # person keeps their first session whenever the budget allows.
    excess = len(calls) - events
    if excess > 0:
        keep = [True] * len(calls)
        for i in range(len(calls) - 1, -1, -1):
            if excess and not plan[calls[i].session].first:
                keep[i], excess = False, excess - 1
        calls = [c for c, kept in zip(calls, keep, strict=True) if kept]
        del calls[events:]

    # Pack: a record is one /v1/batch request of `record_events` consecutive calls
    # (validated by the API's parser, queued in the API's message format);
    # an invocation gets batch/record_events records, as the SQS event source
    # (BatchSize 10 in template.yaml) delivers them.
    records: list[dict[str, Any]] = []
    record_people: list[set[int]] = []
    record_at: list[float] = []
    body_bytes = []
    for start in range(0, len(calls), record_events):
        chunk = calls[start : start + record_events]
        received = chunk[-1].t + rng.uniform(0.2, 1.5)
        body = json.dumps(
            {"batch": [c.payload for c in chunk], "sentAt": iso(received - 0.1)}, separators=(",", ":")
        ).encode()
        parsed = parse_request(body, None, "website", received).events
        for message_body in _message_bodies(parsed):
            body_bytes.append(len(message_body))
            records.append(
                {
                    "messageId": rng_uuid(rng),
                    "receiptHandle": "bench-" + rng_uuid(rng),
                    "body": message_body,
                    "attributes": {
                        "ApproximateReceiveCount": "1",
                        "SentTimestamp": str(int(received * 1000)),
                        "SenderId": "AROAEXAMPLE:nurture-api",
                        "ApproximateFirstReceiveTimestamp": str(int((received + 0.05) * 1000)),
                    },
                    "messageAttributes": {},
                    "md5OfBody": hashlib.md5(message_body.encode()).hexdigest(),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:nurture-IngestQueue",
                    "awsRegion": REGION,
                }
            )
            record_people.append({c.person for c in chunk})
            record_at.append(received)
    per_invocation = max(1, math.ceil(batch / record_events))
    batches, invoke_at, people_per_batch = [], [], []
    for start in range(0, len(records), per_invocation):
        batches.append(records[start : start + per_invocation])
        invoke_at.append(record_at[min(len(records), start + per_invocation) - 1] + rng.uniform(0.1, 1.0))
        people_per_batch.append(len(set().union(*record_people[start : start + per_invocation])))

    # Shape of what was generated.
    sessions_in_stream = sorted({c.session for c in calls})
    span: dict[int, list[float]] = {}
    for c in calls:
        span.setdefault(c.session, [c.t, c.t])[1] = c.t
    starts = sorted(s[0] for s in span.values())
    ends = sorted(s[1] for s in span.values())
    concurrency = [bisect.bisect_right(starts, c.t) - bisect.bisect_left(ends, c.t) for c in calls]
    kinds = Counter(c.payload["type"] for c in calls)
    names = Counter(c.payload.get("event") for c in calls if c.payload["type"] == "track")
    people_seen = {c.person for c in calls}
    identified = {c.person for c in calls if c.payload["type"] == "identify"}
    identify_sessions = {c.session for c in calls if c.payload["type"] == "identify"}
    web_sessions = [s for s in sessions_in_stream if plan[s].kind != "email_open"]
    anonymous_ids = {c.payload["anonymousId"] for c in calls}
    invocation_ids = [
        len({m.get("aid") or m.get("uid") for r in b for m in json.loads(r["body"])["events"]}) for b in batches
    ]
    shape = {
        "events": len(calls),
        "leads": len(people_seen),
        "accounts": len({people[p].company.domain for p in people_seen}),
        "batches": len(batches),
        "events_per_batch": round(len(calls) / max(1, len(batches)), 1),
        "sqs_records_per_batch": per_invocation,
        "events_per_sqs_record": record_events,
        "distinct_leads_per_batch": round(statistics.fmean(people_per_batch), 2),
        "distinct_anonymous_ids_per_batch": round(statistics.fmean(invocation_ids), 2),
        "sessions": len(web_sessions),
        "single_email_opens": len(sessions_in_stream) - len(web_sessions),
        "events_per_session": round(
            sum(1 for c in calls if plan[c.session].kind != "email_open") / max(1, len(web_sessions)), 2
        ),
        "sessions_with_identify_pct": round(100 * len(identify_sessions) / max(1, len(web_sessions)), 1),
        "identified_leads": len(identified),
        "anonymous_ids": len(anonymous_ids),
        "concurrent_sessions_mean": round(statistics.fmean(concurrency), 2),
        "concurrent_sessions_p90": sorted(concurrency)[int(0.9 * (len(concurrency) - 1))],
        "simulated_days": round((calls[-1].t - calls[0].t) / DAY, 1) if calls else 0,
        "call_types": dict(sorted(kinds.items())),
        "track_events": dict(names.most_common()),
        "sqs_body_bytes_mean": round(statistics.fmean(body_bytes)) if body_bytes else 0,
    }
    return Stream(batches, invoke_at, shape, people_per_batch)


# =============================================================================
# 2. DynamoDB sizing (write units) and call accounting
# =============================================================================


def number_size(text: str) -> int:
    """Bytes DynamoDB bills for a number: 1 per two significant digits, plus 1."""
    mantissa = text.lstrip("+-").lower().split("e")[0]
    digits = mantissa.replace(".", "").strip("0")  # leading and trailing zeros are not stored
    return (len(digits) + 1) // 2 + 1


def value_size(value: dict[str, Any]) -> int:
    ((kind, v),) = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        return number_size(v)
    if kind == "B":
        return len(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in v)
    if kind == "NS":
        return sum(number_size(s) for s in v)
    if kind == "BS":
        return sum(len(b) for b in v)
    if kind == "L":
        return 3 + sum(1 + value_size(e) for e in v)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(e) for k, e in v.items())
    raise ValueError(kind)


def item_size(item: dict[str, Any] | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def _gsi_keys(item: dict[str, Any] | None) -> tuple | None:
    if item and "gsi1pk" in item and "gsi1sk" in item:
        return item["gsi1pk"]["S"], item["gsi1sk"]["S"]
    return None


def gsi_writes(old: dict[str, Any] | None, new: dict[str, Any] | None) -> int:
    """KEYS_ONLY index: a write only when the index keys appear, go or change
    (a change is a delete plus a put); each is 1 WRU as a keys-only entry is tiny."""
    before, after = _gsi_keys(old), _gsi_keys(new)
    if before == after:
        return 0
    return (before is not None) + (after is not None)


class WriteMeter:
    """Hooks one botocore DynamoDB client: captures each request's parameters
    (before-parameter-build) and, once the service answered (after-call),
    bills it by the AWS rules against a shadow copy of the table."""

    def __init__(self, client: Any, reader: Any, counter: CallCounter) -> None:
        self.reader = reader  # an unhooked client, to read an item after an UpdateItem
        self.counter = counter  # paused while the meter reads
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.wru: Counter[str] = Counter()
        self.lead_sizes: list[int] = []
        self.event_sizes: list[int] = []
        self.conditional_failures = 0
        self.writes: Counter[str] = Counter()  # items written, by category
        self.paused = False
        client.meta.events.register("before-parameter-build.dynamodb", self._capture)
        client.meta.events.register("after-call.dynamodb", self._bill)

    @staticmethod
    def _capture(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["bench_params"] = params

    @staticmethod
    def _key(item: dict[str, Any]) -> tuple[str, str]:
        return item["pk"]["S"], item["sk"]["S"]

    @staticmethod
    def _category(key: tuple[str, str], operation: str) -> str:
        pk, sk = key
        if sk == "PROFILE":
            return "lead_update_item" if operation == "UpdateItem" else "lead_put_item"
        if sk.startswith(("STAGE#", "EVT#stage-")):
            return "lifecycle_items"
        if sk.startswith("EVT#"):
            return "event_items"
        if sk == "ID":
            return "identity_items"
        return "other"

    def _put(self, item: dict[str, Any], operation: str) -> None:
        key = self._key(item)
        old = self.items.get(key)
        size = max(item_size(old), item_size(item))
        category = self._category(key, operation)
        self.wru[category] += write_units(size)
        self.writes[category] += 1
        self.wru["gsi"] += gsi_writes(old, item)
        self.items[key] = item
        if category == "lead_put_item":
            self.lead_sizes.append(item_size(item))
        elif category == "event_items":
            self.event_sizes.append(item_size(item))

    def _bill(self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if self.paused:
            return
        params = context.get("bench_params") or {}
        operation = model.name
        failed = http_response.status_code >= 300
        if operation == "PutItem":
            item = params["Item"]
            if failed:  # a failed conditional write is still billed
                self.conditional_failures += 1
                key = self._key(item)
                self.wru["failed_conditional_writes"] += write_units(
                    max(item_size(self.items.get(key)), item_size(item))
                )
            else:
                self._put(item, operation)
        elif operation == "BatchWriteItem":
            unprocessed = (
                {
                    json.dumps(r, sort_keys=True)
                    for table in (parsed.get("UnprocessedItems") or {}).values()
                    for r in table
                }
                if not failed
                else None
            )
            for table_requests in params["RequestItems"].values():
                for request in table_requests:
                    if unprocessed is None or json.dumps(request, sort_keys=True) in unprocessed:
                        continue
                    if "PutRequest" in request:
                        self._put(request["PutRequest"]["Item"], operation)
                    else:
                        key = self._key(request["DeleteRequest"]["Key"])
                        old = self.items.pop(key, None)
                        self.wru[self._category(key, "DeleteItem")] += write_units(item_size(old))
                        self.writes[self._category(key, "DeleteItem")] += 1
                        self.wru["gsi"] += gsi_writes(old, None)
        elif operation in ("UpdateItem", "DeleteItem"):
            key = self._key(params["Key"])
            old = self.items.get(key)
            if failed:
                self.conditional_failures += 1
                self.wru["failed_conditional_writes"] += write_units(item_size(old))
                return
            new = None
            if operation == "UpdateItem":
                self.paused, counting, self.counter.active = True, self.counter.active, False
                try:
                    new = self.reader.get_item(
                        TableName=params["TableName"], Key=params["Key"], ConsistentRead=True
                    ).get("Item")
                finally:
                    self.paused, self.counter.active = False, counting
            self.wru[self._category(key, operation)] += write_units(max(item_size(old), item_size(new)))
            self.writes[self._category(key, operation)] += 1
            self.wru["gsi"] += gsi_writes(old, new)
            if new is None:
                self.items.pop(key, None)
            else:
                self.items[key] = new
        elif operation in ("TransactWriteItems",):
            raise NotImplementedError("the benchmark does not bill transactions yet")


class CallCounter:
    """Counts every AWS API call made while `active` (all clients, all services)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.active = False
        import botocore.client

        self._original = botocore.client.BaseClient._make_api_call
        counter = self

        def counting(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
            if counter.active:
                counter.calls[f"{client.meta.service_model.service_name}.{operation_name}"] += 1
            return counter._original(client, operation_name, api_params)

        botocore.client.BaseClient._make_api_call = counting

    def restore(self) -> None:
        import botocore.client

        botocore.client.BaseClient._make_api_call = self._original


# =============================================================================
# 3. In-process AWS for the CPU measurement: answers at botocore's HTTP layer
# =============================================================================


class _RawBody(io.BytesIO):
    def stream(self, **_: Any):
        contents = self.read()
        while contents:
            yield contents
            contents = self.read()


class FakeAws:
    """A tiny DynamoDB + EventBridge answering botocore's `before-send`, i.e.
    after parameter validation, serialization and SigV4 signing, and before
    the response is parsed: the client-side work stays real. The CPU spent
    in here (the "service") is measured and subtracted from the handler's."""

    _CONDITION = re.compile(r"^\s*(?:attribute_not_exists\((\w+)\)|attribute_exists\((\w+)\)|(\w+)\s*=\s*(:\w+))\s*$")

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.cpu = 0.0
        self.calls = 0

    def attach(self, client: Any) -> None:
        client.meta.events.register_first("before-send", self._send)

    def _send(self, request: Any, **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        started = time.process_time()
        self.calls += 1
        target = request.headers.get("X-Amz-Target")
        target = target.decode() if isinstance(target, bytes) else str(target)
        operation = target.split(".")[-1]
        body = json.loads(request.body or b"{}")
        try:
            status, answer = 200, getattr(self, "_" + operation)(body)
        except _Conditional:
            status, answer = (
                400,
                {
                    "__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
                    "message": "The conditional request failed",
                },
            )
        payload = json.dumps(answer).encode()
        response = AWSResponse(
            request.url,
            status,
            {"Content-Type": "application/x-amz-json-1.0", "Content-Length": str(len(payload))},
            _RawBody(payload),
        )
        self.cpu += time.process_time() - started
        return response

    @staticmethod
    def _key(item: dict[str, Any]) -> tuple[str, str]:
        return item["pk"]["S"], item["sk"]["S"]

    def _check(self, current: dict[str, Any] | None, expression: str | None, values: dict[str, Any]) -> None:
        if not expression:
            return
        for clause in re.split(r"\s+AND\s+", expression, flags=re.IGNORECASE):
            match = self._CONDITION.match(clause)
            if not match:
                raise NotImplementedError(f"condition {clause!r}")
            missing, present, name, placeholder = match.groups()
            ok = (
                (missing and not (current and missing in current))
                or (present and current and present in current)
                or (name and current and current.get(name) == values.get(placeholder))
            )
            if not ok:
                raise _Conditional()

    def _BatchGetItem(self, body: dict[str, Any]) -> dict[str, Any]:
        responses = {}
        for table, request in body["RequestItems"].items():
            responses[table] = [self.items[k] for k in map(self._key, request["Keys"]) if k in self.items]
        return {"Responses": responses, "UnprocessedKeys": {}}

    def _BatchWriteItem(self, body: dict[str, Any]) -> dict[str, Any]:
        for requests in body["RequestItems"].values():
            for request in requests:
                if "PutRequest" in request:
                    item = request["PutRequest"]["Item"]
                    self.items[self._key(item)] = item
                else:
                    self.items.pop(self._key(request["DeleteRequest"]["Key"]), None)
        return {"UnprocessedItems": {}}

    def _PutItem(self, body: dict[str, Any]) -> dict[str, Any]:
        key = self._key(body["Item"])
        self._check(self.items.get(key), body.get("ConditionExpression"), body.get("ExpressionAttributeValues", {}))
        self.items[key] = body["Item"]
        return {}

    def _GetItem(self, body: dict[str, Any]) -> dict[str, Any]:
        item = self.items.get(self._key(body["Key"]))
        return {"Item": item} if item else {}

    def _UpdateItem(self, body: dict[str, Any]) -> dict[str, Any]:
        key = self._key(body["Key"])
        current = self.items.get(key)
        self._check(current, body.get("ConditionExpression"), body.get("ExpressionAttributeValues", {}))
        expression = body["UpdateExpression"].strip()
        if not expression.upper().startswith("REMOVE "):
            raise NotImplementedError(f"update {expression!r}")
        if current is not None:
            for name in expression[7:].split(","):
                current.pop(name.strip(), None)
        return {}

    def _PutEvents(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"FailedEntryCount": 0, "Entries": [{"EventId": str(uuid.uuid4())} for _ in body["Entries"]]}


class _Conditional(Exception):
    pass


# Powertools prints EMF metrics on stdout; stdout is reserved for the report.
# (With POWERTOOLS_METRICS_DISABLED=true, flush_metrics keeps the values, so they
# pile up across invocations and add_metric prints them every 100 values.)
_DEVNULL = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process


class NoopPublisher:
    def publish(self, entries: Any) -> None:
        return None


def load_handler(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def baseline_factory(client: Any, table: str):
    """The minimal SQS -> DynamoDB Lambda the handler is compared with."""

    def baseline_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        for record in event["Records"]:
            for message in json.loads(record["body"])["events"]:
                client.put_item(
                    TableName=table,
                    Item={
                        "pk": {"S": f"EVT#{message['id']}"},
                        "sk": {"S": "EVT"},
                        "k": {"S": message["k"]},
                        "n": {"S": message["n"]},
                        "ts": {"N": repr(message["ts"])},
                        "src": {"S": message["src"]},
                        "pr": {"S": json.dumps(message.get("pr") or {}, separators=(",", ":"))},
                    },
                )
        return {"batchItemFailures": []}

    return baseline_handler


def baseline_dict_factory(items: dict[tuple[str, str], dict[str, Any]]):
    def baseline_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        for record in event["Records"]:
            for message in json.loads(record["body"])["events"]:
                items[(f"EVT#{message['id']}", "EVT")] = {
                    "k": message["k"],
                    "n": message["n"],
                    "ts": message["ts"],
                    "src": message["src"],
                    "pr": json.dumps(message.get("pr") or {}, separators=(",", ":")),
                }
        return {"batchItemFailures": []}

    return baseline_handler


def _replay_cpu(
    handler: Any, stream: Stream, context: Any, fake: FakeAws | None, profile: cProfile.Profile | None = None
) -> float:
    """CPU seconds the handler spent on the whole stream, the fake service's share removed."""
    from nurture.core.clock import FixedClock, set_clock

    clock = FixedClock(stream.invoke_at[0] if stream.invoke_at else START)
    set_clock(clock)
    total = 0.0
    for records, at in zip(stream.batches, stream.invoke_at, strict=True):
        clock._t = at
        event = {"Records": records}
        if profile:
            profile.enable()
        started = time.process_time()
        with contextlib.redirect_stdout(_DEVNULL):
            result = handler(event, context)
        total += time.process_time() - started
        if profile:
            profile.disable()
        if result.get("batchItemFailures"):
            raise RuntimeError(f"handler reported failures: {result['batchItemFailures'][:3]}")
    return total - (fake.cpu if fake else 0.0)


def _stubbed_handler_run(
    track: Any, stream: Stream, context: Any, profiler: cProfile.Profile | None = None
) -> tuple[float, int]:
    """The real handler in a warm container (config loaded, clients built and
    used once), its DynamoDB and EventBridge clients answered by FakeAws."""
    from nurture import wiring
    from nurture.adapters.aws import aws_client

    wiring.reset()
    wiring.get_tracker()
    fake = FakeAws()
    dynamodb, events_client = aws_client("dynamodb"), aws_client("events")
    fake.attach(dynamodb)
    fake.attach(events_client)
    dynamodb.batch_get_item(RequestItems={os.environ["TABLE_NAME"]: {"Keys": [{"pk": {"S": "w"}, "sk": {"S": "u"}}]}})
    events_client.put_events(
        Entries=[
            {"Source": "bench", "DetailType": "warm-up", "Detail": "{}", "EventBusName": os.environ["EVENT_BUS_NAME"]}
        ]
    )
    fake.cpu, fake.calls = 0.0, 0
    return _replay_cpu(track.handler, stream, context, fake, profiler), fake.calls


def _stubbed_baseline_run(stream: Stream, context: Any) -> tuple[float, int]:
    import boto3

    table = os.environ["TABLE_NAME"]
    client = boto3.session.Session().client("dynamodb")
    fake = FakeAws()
    fake.attach(client)
    client.put_item(TableName=table, Item={"pk": {"S": "w"}, "sk": {"S": "u"}})
    fake.cpu, fake.calls = 0.0, 0
    return _replay_cpu(baseline_factory(client, table), stream, context, fake), fake.calls


def _in_memory_handler_run(track: Any, stream: Stream, context: Any) -> float:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # the in-memory store is a test double (tests/fakes.py)
    from nurture import wiring
    from tests.fakes import InMemoryLeadStore

    wiring.reset()
    tracker = wiring.get_tracker()
    tracker.store, tracker.publisher = InMemoryLeadStore(), NoopPublisher()
    return _replay_cpu(track.handler, stream, context, None)


def _cold_setup_ms() -> dict[str, float]:
    """What the first invocation pays before any event: config, then clients."""
    from nurture import wiring

    wiring.reset()
    started = time.perf_counter()
    wiring.get_config()
    loaded = time.perf_counter()
    wiring.get_tracker()
    done = time.perf_counter()
    wiring.reset()
    return {
        "config_load_ms": round((loaded - started) * 1000, 1),
        "clients_and_tracker_ms": round((done - loaded) * 1000, 1),
    }


def measure_cpu(track: Any, stream: Stream, repeats: int, profile: bool) -> dict[str, Any]:
    from nurture import wiring
    from nurture_tools.local.apigw import lambda_context

    context = lambda_context("TrackFunction")
    events = stream.shape["events"]
    setup = _cold_setup_ms()
    runs: dict[str, list[float]] = {"handler": [], "baseline": [], "handler_in_memory": [], "baseline_dict": []}
    calls: dict[str, int] = {}
    for repeat in range(repeats):  # interleaved, so drift hits both alike
        cpu, calls["handler"] = _stubbed_handler_run(track, stream, context)
        runs["handler"].append(cpu)
        cpu, calls["baseline"] = _stubbed_baseline_run(stream, context)
        runs["baseline"].append(cpu)
        runs["handler_in_memory"].append(_in_memory_handler_run(track, stream, context))
        runs["baseline_dict"].append(_replay_cpu(baseline_dict_factory({}), stream, context, None))
        log(
            f"cpu run {repeat + 1}/{repeats}: handler {runs['handler'][-1]:.2f}s, "
            f"baseline {runs['baseline'][-1]:.2f}s, handler/in-memory store {runs['handler_in_memory'][-1]:.2f}s, "
            f"baseline/dict {runs['baseline_dict'][-1]:.2f}s"
        )
    if profile:  # an extra, untimed run
        profiler = cProfile.Profile()
        _stubbed_handler_run(track, stream, context, profiler)
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(35)
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("cumulative").print_stats(45)
        print(out.getvalue(), file=sys.stderr)
    wiring.reset()
    per_event = {name: statistics.median(values) / max(1, events) * 1e6 for name, values in runs.items()}
    return {
        "handler_cpu_us_per_event": round(per_event["handler"], 1),
        "baseline_cpu_us_per_event": round(per_event["baseline"], 1),
        "cpu_ratio": round(per_event["handler"] / per_event["baseline"], 2),
        "cpu_runs": repeats,
        "cpu_runs_us_per_event": {
            name: [round(v / max(1, events) * 1e6, 1) for v in values] for name, values in runs.items()
        },
        "cpu_stub_calls": calls,
        "first_invocation_setup": setup,
        "cpu_without_botocore": {
            "handler_in_memory_store_us_per_event": round(per_event["handler_in_memory"], 1),
            "baseline_dict_us_per_event": round(per_event["baseline_dict"], 1),
            "ratio": round(per_event["handler_in_memory"] / per_event["baseline_dict"], 2),
        },
    }


# =============================================================================
# 4. The replay under moto: write units and AWS calls
# =============================================================================


def measure_aws(track: Any, stream: Stream, counter: CallCounter, reader: Any) -> dict[str, Any]:
    from nurture import wiring
    from nurture.adapters.aws import aws_client
    from nurture.core.clock import FixedClock, set_clock
    from nurture_tools.local.apigw import lambda_context

    wiring.reset()
    meter = WriteMeter(aws_client("dynamodb"), reader, counter)
    wiring.get_tracker()
    context = lambda_context("TrackFunction")
    clock = FixedClock(START)
    set_clock(clock)
    failures = 0
    started = time.perf_counter()
    n = len(stream.batches)
    step = max(1, n // 20)
    events_done = 0
    for i, (records, at) in enumerate(zip(stream.batches, stream.invoke_at, strict=True)):
        clock._t = at
        counter.active = True
        try:
            with contextlib.redirect_stdout(_DEVNULL):
                result = track.handler({"Records": records}, context)
        finally:
            counter.active = False
        failures += len(result.get("batchItemFailures", []))
        events_done += sum(len(json.loads(r["body"])["events"]) for r in records)
        if (i + 1) % step == 0 or i + 1 == n:
            elapsed = time.perf_counter() - started
            rate = events_done / elapsed
            log(
                f"moto replay: batch {i + 1}/{n}, {events_done} events, {rate:.0f} events/s, "
                f"eta {(stream.shape['events'] - events_done) / rate:.0f}s"
            )
    events = stream.shape["events"]
    total_wru = sum(meter.wru.values())
    dynamodb_calls = sum(v for k, v in counter.calls.items() if k.startswith("dynamodb."))
    leads = [item for (pk, sk), item in meter.items.items() if sk == "PROFILE"]
    stored = sum(1 for key in meter.items if meter._category(key, "") == "event_items")
    lead_puts = meter.writes["lead_put_item"]

    def pct(values: list[int], q: float) -> int:
        return sorted(values)[int(q * (len(values) - 1))] if values else 0

    return {
        "dynamodb_write_units_per_event": round(total_wru / events, 3),
        "aws_calls_per_event": round(sum(counter.calls.values()) / events, 3),
        "wru_breakdown_per_event": {k: round(v / events, 3) for k, v in sorted(meter.wru.items(), key=lambda x: -x[1])},
        "aws_calls_breakdown_per_event": {k: round(v / events, 4) for k, v in counter.calls.most_common()},
        "aws_calls_per_batch": round(sum(counter.calls.values()) / len(stream.batches), 2),
        "dynamodb_calls_per_event": round(dynamodb_calls / events, 3),
        "lead_writes_per_batch": round(lead_puts / len(stream.batches), 2),
        "lead_item_bytes": {
            "mean": round(statistics.fmean(meter.lead_sizes)) if meter.lead_sizes else 0,
            "p50": pct(meter.lead_sizes, 0.5),
            "p95": pct(meter.lead_sizes, 0.95),
            "max": max(meter.lead_sizes, default=0),
        },
        "lead_wru_per_put": round(meter.wru["lead_put_item"] / max(1, len(meter.lead_sizes)), 2),
        "event_item_bytes": {
            "mean": round(statistics.fmean(meter.event_sizes)) if meter.event_sizes else 0,
            "max": max(meter.event_sizes, default=0),
        },
        "conditional_write_failures": meter.conditional_failures,
        "failed_records": failures,
        "events_stored": stored,
        "lead_items": len(leads),
        "merged_lead_items": sum(1 for item in leads if "mi" in item),
        "leads_by_lifecycle": dict(Counter(item.get("lc", {}).get("S", "visitor") for item in leads).most_common()),
        "items_written_per_event": {k: round(v / events, 3) for k, v in meter.writes.most_common()},
        "aws_calls_total": sum(counter.calls.values()),
        "replay_seconds": round(time.perf_counter() - started, 1),
    }


# =============================================================================
# 5. Import (cold start) times
# =============================================================================

_IMPORT_SNIPPET = """
import sys, time
started = time.perf_counter()
{body}
print((time.perf_counter() - started) * 1000)
"""
_IMPORT_MODULE = """
import importlib.util
sys.path.insert(0, {folder!r})
spec = importlib.util.spec_from_file_location("app", {path!r})
module = importlib.util.module_from_spec(spec)
sys.modules["app"] = module
spec.loader.exec_module(module)
"""


def _import_env(lambda_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_", "POWERTOOLS_"))}
    env.update(lambda_env)
    env.update({"AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, "PYTHONDONTWRITEBYTECODE": ""})
    env.pop("PYTHONDONTWRITEBYTECODE")
    return env


def _import_ms(body: str, cwd: Path, env: dict[str, str], runs: int) -> list[float]:
    code = _IMPORT_SNIPPET.format(body=body)
    times = []
    for i in range(runs + 1):  # the first run warms the bytecode cache and is dropped
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=False
        )
        if out.returncode:
            raise RuntimeError(f"import failed:\n{out.stderr}")
        if i:
            times.append(float(out.stdout.strip().splitlines()[-1]))
    return times


def _import_breakdown(body: str, cwd: Path, env: dict[str, str], top: int = 6) -> dict[str, float]:
    """Top-level packages by cumulative import time (python -X importtime)."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", body], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    totals: Counter[str] = Counter()
    for line in out.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)", line)
        if match and len(match.group(3)) == 1:  # first level below the script
            totals[match.group(4).split(".")[0]] += int(match.group(2))
    return {name: round(us / 1000, 1) for name, us in totals.most_common(top)}


def measure_imports(lambda_env: dict[str, str], runs: int) -> dict[str, Any]:
    env = _import_env(lambda_env)
    results: dict[str, Any] = {"handler_import_ms": {}, "import_ratio": {}, "import_breakdown_ms": {}}
    boto = _import_ms("import boto3", ROOT, env, runs)
    results["boto3_import_ms"] = round(statistics.median(boto), 1)
    results["import_breakdown_ms"]["boto3"] = _import_breakdown("import boto3", ROOT, env)
    for name, path in (("track", TRACK_APP), ("api", API_APP)):
        body = _IMPORT_MODULE.format(folder=str(path.parent), path=str(path))
        times = _import_ms(body, path.parent, env, runs)
        median = statistics.median(times)
        results["handler_import_ms"][name] = round(median, 1)
        results["import_ratio"][name] = round(median / results["boto3_import_ms"], 2)
        results["import_breakdown_ms"][name] = _import_breakdown("import sys\n" + body, path.parent, env)
        log(
            f"import {name}: {median:.1f} ms (runs {', '.join(f'{t:.0f}' for t in times)}); "
            f"boto3 {results['boto3_import_ms']:.1f} ms"
        )
    # The whole cold start up to the first AWS call: the import, then what the
    # first invocation builds (config, boto3 and its clients). No AWS call is made.
    results["cold_start_to_first_call_ms"] = {}
    for name, path, factory in (("track", TRACK_APP, "get_tracker"), ("api", API_APP, "get_ingestor")):
        body = _IMPORT_MODULE.format(folder=str(path.parent), path=str(path))
        body += f"from nurture.wiring import {factory}\n{factory}()\n"
        results["cold_start_to_first_call_ms"][name] = round(
            statistics.median(_import_ms(body, path.parent, env, runs)), 1
        )
    log(f"cold start up to the first AWS call: {results['cold_start_to_first_call_ms']}")
    return results


# =============================================================================
# main
# =============================================================================


def _goal(value: float, goal: tuple[str, float]) -> dict[str, Any]:
    op, target = goal
    return {"goal": f"{op} {target}", "value": value, "met": value <= target if op == "<=" else value >= target}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20000, help="events in the stream (default 20000)")
    parser.add_argument("--leads", type=int, default=2000, help="people visiting the site (default 2000)")
    parser.add_argument("--batch", type=int, default=100, help="events per handler invocation (default 100)")
    parser.add_argument(
        "--record-events", type=int, default=10, help="events per SQS record, i.e. per API request (default 10)"
    )
    parser.add_argument("--days", type=float, default=30.0, help="simulated days (default 30)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--cpu-repeats", type=int, default=3, help="CPU runs, the median is reported (default 3)")
    parser.add_argument("--import-runs", type=int, default=5, help="import timing runs (default 5)")
    parser.add_argument("--skip-moto", action="store_true", help="skip the moto replay (no WRU / call figures)")
    parser.add_argument("--profile", action="store_true", help="print the handler's cProfile (first CPU run) to stderr")
    args = parser.parse_args(argv)
    if args.batch % args.record_events:
        parser.error("--batch must be a multiple of --record-events")

    # AWS: fake credentials, no endpoint override, so nothing can reach a real account.
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            del os.environ[name]
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }
    )
    bench_started = time.perf_counter()

    log(f"building the stream: {args.events} events, {args.leads} people, seed {args.seed}")
    stream = build_stream(args.events, args.leads, args.batch, args.record_events, args.seed, args.days)
    log("stream: " + json.dumps({k: v for k, v in stream.shape.items() if not isinstance(v, dict)}))

    import boto3
    from moto import mock_aws

    from nurture import wiring
    from nurture_tools.local.moto_runtime import MOTO_CONFIG
    from nurture_tools.local.template import LocalStack

    report: dict[str, Any] = {}
    aws: dict[str, Any] = {}
    with mock_aws(config=MOTO_CONFIG):
        session = boto3.session.Session(region_name=REGION)
        stack = LocalStack(ROOT, session, prefix="nurture-bench")
        stack.provision(
            {"admin": "x", "website": "x", "product_app": "x", "forms_signing": "x", "forms_key": "x"},
            overrides={"NurtureApi": "https://api.bench.invalid"},
        )
        lambda_env = stack.function_environment()
        lambda_env.update(
            {
                "NURTURE_CONFIG_DIR": str(CONFIG_DIR),
                "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_LOG_LEVEL": "WARNING",
            }
        )
        os.environ.update(lambda_env)
        wiring.reset()
        track = load_handler(TRACK_APP, "bench_track_app")
        if not args.skip_moto:
            log(f"replaying {stream.shape['events']} events through the handler under moto")
            counter = CallCounter()
            try:
                aws = measure_aws(track, stream, counter, session.client("dynamodb"))
            finally:
                counter.restore()
        wiring.reset()

    # Outside mock_aws: moto's botocore hook would otherwise also run (and bill
    # its CPU to the handler) for every request the in-process fake answers.
    log(f"measuring CPU ({args.cpu_repeats} runs of handler and baseline)")
    cpu = measure_cpu(track, stream, args.cpu_repeats, args.profile)
    if aws:
        aws["stub_and_moto_calls_match"] = aws["aws_calls_total"] == cpu["cpu_stub_calls"]["handler"]

    log("measuring import times")
    imports = measure_imports(lambda_env, args.import_runs)

    report["dynamodb_write_units_per_event"] = aws.get("dynamodb_write_units_per_event")
    report["aws_calls_per_event"] = aws.get("aws_calls_per_event")
    report["handler_cpu_us_per_event"] = cpu["handler_cpu_us_per_event"]
    report["baseline_cpu_us_per_event"] = cpu["baseline_cpu_us_per_event"]
    report["cpu_ratio"] = cpu["cpu_ratio"]
    report["handler_import_ms"] = imports["handler_import_ms"]
    report["boto3_import_ms"] = imports["boto3_import_ms"]
    report["import_ratio"] = imports["import_ratio"]
    goals = {}
    if aws:
        goals["dynamodb_write_units_per_event"] = _goal(
            aws["dynamodb_write_units_per_event"], GOALS["dynamodb_write_units_per_event"]
        )
        goals["aws_calls_per_event"] = _goal(aws["aws_calls_per_event"], GOALS["aws_calls_per_event"])
    goals["cpu_ratio"] = _goal(cpu["cpu_ratio"], GOALS["cpu_ratio"])
    for name, ratio in imports["import_ratio"].items():
        goals[f"import_ratio_{name}"] = _goal(ratio, GOALS["import_ratio"])
    report["goals"] = goals
    report["all_goals_met"] = all(g["met"] for g in goals.values())
    report["stream"] = stream.shape
    report["details"] = {
        **{k: v for k, v in aws.items() if k not in ("dynamodb_write_units_per_event", "aws_calls_per_event")},
        **{
            k: v
            for k, v in cpu.items()
            if k not in ("handler_cpu_us_per_event", "baseline_cpu_us_per_event", "cpu_ratio")
        },
        "cold_start_to_first_call_ms": imports["cold_start_to_first_call_ms"],
        "import_breakdown_ms": imports["import_breakdown_ms"],
        "args": vars(args),
        "python": sys.version.split()[0],
        "bench_seconds": round(time.perf_counter() - bench_started, 1),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
