"""A synthetic B2B market for the demo: accounts with buying committees, the
people in them and how they behave. A model, not data: every number here is an
assumption chosen to look like a mid-market revenue-analytics market, and the
report produced from it says so.

Everything is drawn from `random.Random` seeded with the run's seed and a
name for the decision (the person, the email, the session), so the same seed
builds the same market and makes the same choices however the pipeline's
timing falls.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from dataclasses import dataclass, field

DAY = 86400.0

# (industry, weight, on-target for the example ideal customer profile)
INDUSTRIES = (
    ("Fintech", 14),
    ("Software", 16),
    ("SaaS", 14),
    ("Financial Services", 10),
    ("Insurance", 6),
    ("Healthcare Technology", 6),
    ("Professional Services", 7),
    ("Telecommunications", 4),
    ("Manufacturing", 9),
    ("Retail", 8),
    ("Education", 6),
)
# (country code, weight, time zones)
COUNTRIES = (
    ("US", 46, ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles")),
    ("CA", 6, ("America/Toronto", "America/Vancouver")),
    ("GB", 12, ("Europe/London",)),
    ("IE", 3, ("Europe/Dublin",)),
    ("DE", 8, ("Europe/Berlin",)),
    ("NL", 5, ("Europe/Amsterdam",)),
    ("FR", 5, ("Europe/Paris",)),
    ("SE", 3, ("Europe/Stockholm",)),
    ("AU", 6, ("Australia/Sydney",)),
    ("IN", 4, ("Asia/Kolkata",)),
    ("BR", 2, ("America/Sao_Paulo",)),
)
EMPLOYEES = ((25, 10), (120, 16), (350, 22), (900, 20), (2500, 16), (8000, 10), (30000, 6))
NAME_PARTS = (
    "North",
    "Blue",
    "Iron",
    "Bright",
    "Clear",
    "Silver",
    "Cedar",
    "Summit",
    "Harbor",
    "Vector",
    "Granite",
    "Orbit",
    "Quantum",
    "Lumen",
    "Atlas",
    "Beacon",
)
NAME_ENDS = ("wind", "stone", "field", "line", "point", "bridge", "gate", "path", "works", "ware", "scale", "peak")
FIRST_NAMES = [
    "Ana",
    "Ben",
    "Chloe",
    "Dev",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jon",
    "Kai",
    "Lena",
    "Marco",
    "Nadia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sam",
    "Tariq",
    "Uma",
    "Victor",
    "Wen",
    "Ximena",
    "Yusuf",
    "Zoe",
    "Liam",
    "Mia",
    "Noah",
    "Ava",
    "Arjun",
    "Sofia",
    "Lucas",
    "Emma",
    "Kenji",
    "Hana",
    "Mateo",
    "Layla",
    "Oskar",
    "Freya",
]
LAST_NAMES = [
    "Garcia",
    "Smith",
    "Chen",
    "Patel",
    "Muller",
    "Rossi",
    "Kowalski",
    "Nguyen",
    "Okafor",
    "Silva",
    "Johansson",
    "Dubois",
    "Kim",
    "Haddad",
    "Novak",
    "Murphy",
    "Tanaka",
    "Costa",
    "Berg",
    "Moreau",
    "Fischer",
    "Shah",
    "Lopez",
    "Brown",
    "Ivanova",
    "Walsh",
    "Adeyemi",
    "Larsen",
    "Romero",
    "Ahmed",
]
# (title, weight, committee role) — the configuration's regexes turn titles into persona and seniority.
TITLES = (
    ("VP Revenue Operations", 5, "champion"),
    ("Director of Revenue Operations", 6, "champion"),
    ("Marketing Operations Manager", 7, "user"),
    ("Head of Sales Operations", 4, "champion"),
    ("Chief Marketing Officer", 3, "decision_maker"),
    ("VP Marketing", 5, "decision_maker"),
    ("Director of Demand Generation", 6, "influencer"),
    ("Chief Revenue Officer", 3, "decision_maker"),
    ("VP Sales", 5, "decision_maker"),
    ("Sales Manager", 6, "user"),
    ("Account Executive", 4, "user"),
    ("CFO", 2, "approver"),
    ("Finance Director", 3, "approver"),
    ("IT Director", 3, "gatekeeper"),
    ("Data Engineer", 4, "gatekeeper"),
    ("Marketing Coordinator", 4, "user"),
)
TOPICS = ("forecasting", "pipeline", "lead-management", "revops", "platform", "integrations", "security", "roi")
FREE_MAIL = ("gmail.com", "outlook.com", "yahoo.com")


def rng(seed: int, *names: object) -> random.Random:
    """A generator for one named decision: independent of every other decision
    and of the order decisions are made in."""
    key = "|".join(str(n) for n in (seed, *names))
    return random.Random(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big"))


def _weighted(r: random.Random, options: tuple) -> tuple:
    return r.choices(options, weights=[o[1] for o in options])[0]


@dataclass
class Account:
    domain: str
    name: str
    industry: str
    employees: int
    country: str
    in_market: bool  # actively looking this quarter
    deal_size: int  # annual contract value if it buys, USD


@dataclass
class Person:
    key: str  # stable id, also the Segment userId
    anonymous_id: str
    first_name: str
    last_name: str
    email: str
    title: str
    role: str
    account: Account
    timezone: str
    intent: float  # 0..1: how actively this person is looking; rises with relevant content
    topics: tuple[str, ...]  # what they care about
    open_rate: float  # chance of opening an email that interests them
    click_rate: float  # chance of clicking, once opened, an email that interests them
    privacy_proxy: bool  # Apple Mail Privacy Protection: every email "opened" by a machine
    bad_address: bool  # the address hard-bounces
    arrives_at: float  # first visit to the website (simulated time)
    stage: int = 0  # 0..5: how far along the buying journey they are
    clicked_content: set[str] = field(default_factory=set)


@dataclass
class Market:
    seed: int
    accounts: list[Account]
    people: list[Person]


def build_market(seed: int, leads: int, start: float, days: float) -> Market:
    """`leads` people across accounts of 1-5 (buying committees), arriving on
    the website over the first two thirds of the period."""
    r = rng(seed, "market")
    accounts: list[Account] = []
    people: list[Person] = []
    used_domains: set[str] = set()
    while len(people) < leads:
        industry = _weighted(r, INDUSTRIES)[0]
        country, _, zones = _weighted(r, COUNTRIES)
        employees = _weighted(r, EMPLOYEES)[0]
        name = f"{r.choice(NAME_PARTS)}{r.choice(NAME_ENDS)}"
        suffix = industry.split()[0].lower()
        domain = f"{name.lower()}-{suffix}.example"
        if domain in used_domains:
            continue
        used_domains.add(domain)
        in_market = r.random() < 0.45
        deal_size = int(round(employees**0.55 * r.uniform(350, 650), -3)) or 5000
        account = Account(domain, f"{name} {industry}", industry, employees, country, in_market, deal_size)
        accounts.append(account)
        committee = min(leads - len(people), 1 + min(4, int(r.expovariate(1 / 1.3))))
        zone = r.choice(zones)
        for _ in range(committee):
            n = len(people)
            first, last = r.choice(FIRST_NAMES), r.choice(LAST_NAMES)
            title, _, role = _weighted(r, TITLES)
            mailbox = f"{first}.{last}{n}".lower()
            email = f"{mailbox}@{r.choice(FREE_MAIL)}" if r.random() < 0.06 else f"{mailbox}@{domain}"
            base = r.uniform(0.45, 0.9) if in_market else r.uniform(0.05, 0.4)
            people.append(
                Person(
                    key=f"demo-{seed}-{n:04d}",
                    anonymous_id=f"anon-{seed}-{n:04d}",
                    first_name=first,
                    last_name=last,
                    email=email,
                    title=title,
                    role=role,
                    account=account,
                    timezone=zone,
                    intent=round(base, 3),
                    topics=tuple(r.sample(TOPICS, 2)),
                    open_rate=r.uniform(0.25, 0.6),
                    click_rate=r.uniform(0.2, 0.45),
                    privacy_proxy=r.random() < 0.2,
                    bad_address=r.random() < 0.03,
                    arrives_at=start + r.uniform(0, days * 0.6) * DAY,
                    stage=r.choices((0, 1, 2, 3), weights=(30, 35, 20, 15) if in_market else (60, 30, 10, 0))[0],
                )
            )
    return Market(seed, accounts, people)


# --- On the website ----------------------------------------------------------------------
# What the ingest benchmark (bench/) replays besides the market above: how each
# person comes to the website and types into its forms, and the competitors'
# staff who look around. Each is drawn from its own named decision, so adding
# it changes nothing the demo draws; the demo's visits respond to the email
# the pipeline sends instead (simulation.py).

# The example configuration's competitors (config/scoring.yaml, competitor_domains).
COMPETITOR_DOMAINS = ("pipelineiq.example", "funnelforge.example", "leadlytics.example")
COMPETITOR_SHARE = 0.003  # of the people on the website
# How a country is typed into a form, by the account's country code: (as typed, weight).
TYPED_COUNTRIES = {
    "US": (("United States", 30), ("US", 8), ("USA", 3)),
    "CA": (("Canada", 5),),
    "GB": (("United Kingdom", 6), ("UK", 3)),
    "IE": (("Ireland", 2),),
    "DE": (("Germany", 6),),
    "NL": (("Netherlands", 3),),
    "FR": (("France", 3),),
    "SE": (("Sweden", 2),),
    "AU": (("Australia", 3),),
    "IN": (("India", 5),),
    "BR": (("Brazil", 3),),
}
BROWSERS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 "
    "Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36 "
    "Edg/122.0.2365.66",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:123.0) Gecko/20100101 Firefox/123.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.3.1 "
    "Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.3.1 Mobile/15E148 Safari/604.1",
)
LOCALES = ("en-US", "en-GB", "de-DE", "en-US", "fr-FR")
# The forms a person fills in on the website (each identifies them).
FORMS = ("newsletter", "content", "webinar", "roi", "demo")


@dataclass
class Device:
    anonymous_id: str  # the website's cookie on this device
    user_agent: str
    ip: str
    locale: str


@dataclass
class SiteHabits:
    """How one person uses the website, decided up front."""

    devices: list[Device]  # a work laptop, often a phone too; the first carries `Person.anonymous_id`
    job_seeker: bool  # here for the careers pages: never fills in a form
    converts: bool  # fills in a form at some point
    first_form: str | None  # which, the first time (one of FORMS)
    return_days: float  # mean days between visits, before the traffic's own scaling
    email_contact_id: str  # the email tool's id for the person (its events' anonymousId)
    country_typed: str  # the account's country as this person types it
    industry_typed: str  # the account's industry as this person types it


def site_habits(seed: int, person: Person) -> SiteHabits:
    """The rates are assumptions like every number here: about a quarter of the
    people ever fill in a form, the more so the more they are looking; the
    more they are looking, the sooner they come back."""
    r = rng(seed, person.key, "website")
    intent = person.intent
    job_seeker = r.random() < 0.04
    converts = not job_seeker and r.random() < 0.12 + 0.4 * intent
    first_form = None
    if converts:
        weights = (30 - 13 * intent, 35, 20, 4 + 7 * intent, 1 + 9 * intent)  # in the order of FORMS
        first_form = r.choices(FORMS, weights=weights)[0]
    devices = [
        Device(
            person.anonymous_id if n == 0 else _uuid(r),
            r.choice(BROWSERS),
            f"{r.randint(11, 223)}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}",
            r.choice(LOCALES),
        )
        for n in range(2 if r.random() < 0.3 else 1)
    ]
    country = person.account.country
    typed = TYPED_COUNTRIES.get(country, ((country, 1),))
    industry = person.account.industry
    return SiteHabits(
        devices=devices,
        job_seeker=job_seeker,
        converts=converts,
        first_form=first_form,
        return_days=12.0 - 6.0 * intent,
        email_contact_id=_uuid(r),
        country_typed=_weighted(r, typed)[0],
        industry_typed=industry.lower() if r.random() < 0.15 else industry,
    )


def competitor_staff(seed: int, count: int, start: float, days: float) -> list[Person]:
    """`count` people at the competitors, looking around the website over the
    period; never in the market, never a buyer."""
    r = rng(seed, "competitors")
    accounts = [
        Account(domain, domain.split(".")[0].title(), "Software", employees, "US", False, 0)
        for domain, employees in zip(COMPETITOR_DOMAINS, (180, 420, 60), strict=True)
    ]
    people = []
    for n in range(count):
        account = r.choice(accounts)
        first, last = r.choice(FIRST_NAMES), r.choice(LAST_NAMES)
        title, _, role = _weighted(r, TITLES)
        people.append(
            Person(
                key=f"competitor-{seed}-{n:04d}",
                anonymous_id=f"anon-{seed}-c{n:04d}",
                first_name=first,
                last_name=last,
                email=f"{first}.{last}{n}".lower() + f"@{account.domain}",
                title=title,
                role=role,
                account=account,
                timezone="America/New_York",
                intent=round(r.uniform(0.05, 0.4), 3),
                topics=tuple(r.sample(TOPICS, 2)),
                open_rate=r.uniform(0.25, 0.6),
                click_rate=r.uniform(0.2, 0.45),
                privacy_proxy=r.random() < 0.2,
                bad_address=False,
                arrives_at=start + r.uniform(0, days * 0.6) * DAY,
            )
        )
    return people


def website_visitors(seed: int, leads: int, start: float, days: float) -> list[Person]:
    """The `leads` people on the website: the market's, and a few competitors' staff."""
    competitors = round(leads * COMPETITOR_SHARE)
    return build_market(seed, leads - competitors, start, days).people + competitor_staff(
        seed, competitors, start, days
    )


def _uuid(r: random.Random) -> str:
    return str(uuid.UUID(int=r.getrandbits(128), version=4))
