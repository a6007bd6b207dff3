"""The traffic the benchmark replays: a simulated month of a B2B website's
Segment calls (page views, forms, email engagement), packed as the API queues
them and the SQS event source hands them to the track handler.

The people are the demo's market (nurture_tools.local.market: who they are,
their intent, how they use the website); this module holds the website
itself and what a visit, a form and a campaign email produce.

Deterministic for a seed: every random choice, every `messageId`, comes from
seeded `random.Random` instances. bench/README.md describes the stream.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import random
import statistics
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from nurture_tools.local.market import Person, SiteHabits, site_habits, website_visitors
from nurture_tools.local.market import rng as decision_rng

from .common import REGION

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
# fmt: on
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
class Visitor:
    """One person on the website: who they are (the demo's market,
    nurture_tools.local.market) and how they use the site."""

    index: int
    person: Person
    habits: SiteHabits
    tz_hours: float  # the person's UTC offset over the simulated month
    first_visit: float


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


def _visitors(seed: int, leads: int, days: float) -> list[Visitor]:
    visitors = []
    for index, person in enumerate(website_visitors(seed, leads, START, days)):
        offset = datetime.fromtimestamp(START, ZoneInfo(person.timezone)).utcoffset()
        tz_hours = offset.total_seconds() / 3600 if offset else 0.0
        first_visit = _daytime(person.arrives_at, tz_hours, decision_rng(seed, person.key, "first visit"))
        visitors.append(Visitor(index, person, site_habits(seed, person), tz_hours, first_visit))
    return visitors


def _plan(visitors: list[Visitor], seed: int, days: float, gap_factor: float) -> list[PlannedSession]:
    """When each visitor comes back and what for; gap_factor scales return frequency."""
    rng = random.Random(f"{seed}-plan")
    end = START + days * DAY
    plan: list[PlannedSession] = []
    for visitor in visitors:
        person, habits, intent = visitor.person, visitor.habits, visitor.person.intent
        times = [visitor.first_visit]
        t = visitor.first_visit
        while True:
            t = _daytime(t + rng.expovariate(1.0 / (habits.return_days * DAY * gap_factor)), visitor.tz_hours, rng)
            if t >= end:
                break
            times.append(t)
        web = []
        for i, start in enumerate(times):
            device = 1 if i and len(habits.devices) > 1 and rng.random() < 0.35 else 0
            web.append(PlannedSession(visitor.index, "web", start, wchoice(rng, SESSION_LENGTHS), device, first=i == 0))
        if habits.converts:
            k = 0 if len(web) == 1 or rng.random() < 0.35 else rng.randrange(1, len(web))
            web[k].purpose = habits.first_form
            identified_at = web[k].start
            for session in web[k + 1 :]:
                if rng.random() < 0.08 + 0.1 * intent:
                    session.purpose = wchoice(
                        rng,
                        {"content": 35, "webinar": 25, "roi": 5 + 13 * intent, "demo": 2 + 13 * intent},
                    )
            for c, send in enumerate(SENDS):
                # A campaign goes to the whole list: half as likely opened as email chosen for them.
                if send < identified_at or rng.random() > 0.5 * person.open_rate:
                    continue
                opened = send + min(3 * DAY, rng.lognormvariate(math.log(2400), 1.3))
                if rng.random() < person.click_rate:
                    phone = len(habits.devices) > 1 and rng.random() < 0.6  # emails are read on phones
                    plan.append(
                        PlannedSession(
                            visitor.index,
                            "email_click",
                            opened,
                            wchoice(rng, SESSION_LENGTHS),
                            1 if phone else 0,
                            campaign=c,
                        )
                    )
                else:
                    plan.append(PlannedSession(visitor.index, "email_open", opened, 1, campaign=c))
            for session in web:
                live = next((w for w in WEBINARS if w > session.start), None)
                if session.purpose == "webinar" and live and rng.random() < 0.45:
                    plan.append(
                        PlannedSession(
                            visitor.index,
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


def _steps(session: PlannedSession, visitor: Visitor, rng: random.Random) -> list[tuple]:
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
        entry = JOB_SEEKER_ENTRY if visitor.habits.job_seeker else FIRST_ENTRY if session.first else RETURN_ENTRY
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


def _calls(session_id: int, session: PlannedSession, visitor: Visitor, rng: random.Random) -> list[Call]:
    person, habits = visitor.person, visitor.habits
    device = habits.devices[session.device]
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
    for n, step in enumerate(_steps(session, visitor, rng)):
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
                "email_id": f"em-{session.campaign:03d}-{visitor.index:05d}",
            }
            if step[1] == "Email Link Clicked":
                properties["link_url"] = f"{SITE}/?utm_source=email&utm_campaign={name}"
            message.update(
                {
                    "type": "track",
                    "event": step[1],
                    "anonymousId": habits.email_contact_id,
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
                "timezone": person.timezone,
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
                    traits["firstName"] = person.first_name
                if step[1] == "full":
                    employees: Any = person.account.employees
                    form = rng.random()
                    if form < 0.25:  # a pick-list range
                        bands = [(1, 10), (11, 50), (51, 200), (201, 500), (501, 1000), (1001, 5000), (5001, 10000)]
                        low, high = next((b for b in bands if b[0] <= employees <= b[1]), (10001, 50000))
                        employees = f"{low}-{high}"
                    elif form < 0.4:
                        employees = str(employees)
                    traits.update(
                        {
                            "lastName": person.last_name,
                            "title": person.title,
                            "company": person.account.name,
                            "industry": habits.industry_typed,
                            "employees": employees,
                            "country": habits.country_typed,
                        }
                    )
                if page:
                    context["page"] = page
                message.update({"type": "identify", "anonymousId": device.anonymous_id, "traits": traits})
            message["context"] = context
        previous = step
        calls.append(Call(t, visitor.index, session_id, message))
    return calls


@dataclass(frozen=True)
class Shape:
    """How the calls reach the track handler.

    - `browser`: one call per HTTP request, as analytics.js sends them; each
      request is one SQS message; the event source mapping closes a batch at
      `batch_size` messages or `window` seconds after its first message
      (BatchSize and MaximumBatchingWindowInSeconds in template.yaml).
    - `batched`: `record_events` consecutive calls per request (a server-side
      relay or a batching SDK's /v1/batch), `batch` calls per invocation."""

    name: str
    batch_size: int = 10
    window: float = 1.0
    record_events: int = 10
    batch: int = 100


@dataclass
class Traffic:
    calls: list[Call]
    plan: list[PlannedSession]
    visitors: list[Visitor]


def build_traffic(events: int, leads: int, seed: int, days: float) -> Traffic:
    """The site's calls over `days`, exactly `events` of them, sorted by time."""
    visitors = _visitors(seed, leads, days)
    # Pick how often visitors come back so that the period holds `events` calls.
    low, high = math.log(0.0002), math.log(200.0)
    factor = math.exp(high)
    for _ in range(28):
        middle = (low + high) / 2
        if sum(s.length for s in _plan(visitors, seed, days, math.exp(middle))) >= events:
            low, factor = middle, math.exp(middle)
        else:
            high = middle
    plan = sorted(_plan(visitors, seed, days, factor), key=lambda s: (s.start, s.person))
    calls: list[Call] = []
    for session_id, session in enumerate(plan):
        session_rng = random.Random(f"{seed}-session-{session.person}-{session_id}")
        calls += _calls(session_id, session, visitors[session.person], session_rng)
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
    if len(calls) < events:
        raise ValueError(f"{leads} people make only {len(calls)} calls in {days:.2f} days; ask for more people or days")
    return Traffic(calls, plan, visitors)


def _sqs_record(message_body: str, received: float, rng: random.Random) -> dict[str, Any]:
    return {
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


def _requests(calls: list[Call], shape: Shape, rng: random.Random) -> list[tuple[float, bytes, str | None, set[int]]]:
    """The HTTP requests the calls make: (received at, body, call type or None for /v1/batch, people)."""
    requests = []
    if shape.name == "browser":
        for call in calls:
            # analytics.js posts each call on its own, at once (sentAt is set then).
            received = call.t + rng.uniform(0.05, 0.4)
            payload = {**call.payload, "sentAt": iso(received - 0.02)}
            body = json.dumps(payload, separators=(",", ":")).encode()
            requests.append((received, body, call.payload["type"], {call.person}))
        return requests
    for start in range(0, len(calls), shape.record_events):
        chunk = calls[start : start + shape.record_events]
        received = chunk[-1].t + rng.uniform(0.2, 1.5)
        body = json.dumps(
            {"batch": [c.payload for c in chunk], "sentAt": iso(received - 0.1)}, separators=(",", ":")
        ).encode()
        requests.append((received, body, None, {c.person for c in chunk}))
    return requests


def _invocations(record_at: list[float], shape: Shape, rng: random.Random) -> list[tuple[int, int, float]]:
    """(first record, end record, invoked at) of each invocation."""
    invocations = []
    if shape.name == "browser":
        start = 0
        while start < len(record_at):
            closes = record_at[start] + shape.window
            end = start + 1
            while end < len(record_at) and end - start < shape.batch_size and record_at[end] <= closes:
                end += 1
            at = record_at[end - 1] if end - start == shape.batch_size else closes
            invocations.append((start, end, at + rng.uniform(0.01, 0.05)))
            start = end
        return invocations
    per_invocation = max(1, math.ceil(shape.batch / shape.record_events))
    for start in range(0, len(record_at), per_invocation):
        end = min(len(record_at), start + per_invocation)
        invocations.append((start, end, record_at[end - 1] + rng.uniform(0.1, 1.0)))
    return invocations


def build_stream(traffic: Traffic, shape: Shape, seed: int) -> Stream:
    """The traffic as the track handler receives it in `shape`: each request
    parsed by the API's own parser (`nurture.ingest.segment.parse_request`),
    queued in the API's message format (`nurture.adapters.aws._message_bodies`),
    one SQS record per message, grouped into invocations."""
    from nurture.adapters.aws import _message_bodies
    from nurture.ingest.segment import parse_request

    rng = random.Random(f"{seed}-{shape.name}")
    calls, plan, visitors = traffic.calls, traffic.plan, traffic.visitors
    records: list[dict[str, Any]] = []
    record_people: list[set[int]] = []
    record_at: list[float] = []
    body_bytes = []
    for received, body, call_type, people in sorted(_requests(calls, shape, rng), key=lambda r: r[0]):
        parsed = parse_request(body, call_type, "website", received)
        if parsed.rejected:
            raise ValueError(f"the API refused a generated call: {parsed.rejected[:3]}")
        for message_body in _message_bodies(parsed.events):
            body_bytes.append(len(message_body))
            records.append(_sqs_record(message_body, received, rng))
            record_people.append(people)
            record_at.append(received)
    batches, invoke_at, people_per_batch = [], [], []
    for start, end, at in _invocations(record_at, shape, rng):
        batches.append(records[start:end])
        invoke_at.append(at)
        people_per_batch.append(len(set().union(*record_people[start:end])))

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
    seconds = (calls[-1].t - calls[0].t) if len(calls) > 1 else 0.0
    shape_figures = {
        "shape": shape.name,
        "events": len(calls),
        "leads": len(people_seen),
        "accounts": len({visitors[p].person.account.domain for p in people_seen}),
        "batches": len(batches),
        "events_per_batch": round(len(calls) / max(1, len(batches)), 2),
        "messages_per_invocation_mean": round(len(records) / max(1, len(batches)), 3),
        "messages_per_invocation_max": max((len(b) for b in batches), default=0),
        "distinct_leads_per_batch": round(statistics.fmean(people_per_batch), 2) if batches else 0,
        "distinct_anonymous_ids_per_batch": round(statistics.fmean(invocation_ids), 2) if batches else 0,
        "events_per_second_mean": round(len(calls) / seconds, 4) if seconds else 0,
        "sessions": len(web_sessions),
        "single_email_opens": len(sessions_in_stream) - len(web_sessions),
        "events_per_session": round(
            sum(1 for c in calls if plan[c.session].kind != "email_open") / max(1, len(web_sessions)), 2
        ),
        "sessions_with_identify_pct": round(100 * len(identify_sessions) / max(1, len(web_sessions)), 1),
        "identified_leads": len(identified),
        "anonymous_ids": len(anonymous_ids),
        "concurrent_sessions_mean": round(statistics.fmean(concurrency), 2) if concurrency else 0,
        "concurrent_sessions_p90": sorted(concurrency)[int(0.9 * (len(concurrency) - 1))] if concurrency else 0,
        "simulated_days": round(seconds / DAY, 2),
        "call_types": dict(sorted(kinds.items())),
        "track_events": dict(names.most_common()),
        "sqs_body_bytes_mean": round(statistics.fmean(body_bytes)) if body_bytes else 0,
    }
    if shape.name == "browser":
        shape_figures["event_source"] = {"batch_size": shape.batch_size, "batching_window_s": shape.window}
    else:
        shape_figures["events_per_sqs_record"] = shape.record_events
        shape_figures["sqs_records_per_batch"] = max(1, math.ceil(shape.batch / shape.record_events))
    return Stream(batches, invoke_at, shape_figures, people_per_batch)


def arrival_batching(traffic: Traffic, shape: Shape, seed: int) -> dict[str, float]:
    """Messages per invocation of the browser shape from the arrival times
    alone (no payloads): cheap enough for a whole month of a large site."""
    rng = random.Random(f"{seed}-arrivals")
    record_at = sorted(call.t + rng.uniform(0.05, 0.4) for call in traffic.calls)
    invocations = _invocations(record_at, shape, rng)
    sizes = [end - start for start, end, _ in invocations]
    seconds = record_at[-1] - record_at[0] if len(record_at) > 1 else 0.0
    return {
        "events": len(record_at),
        "events_per_second_mean": round(len(record_at) / seconds, 4) if seconds else 0.0,
        "invocations": len(invocations),
        "messages_per_invocation_mean": round(statistics.fmean(sizes), 3) if sizes else 0.0,
        "single_message_invocations_pct": round(100 * sizes.count(1) / max(1, len(sizes)), 1),
    }
