"""Drives a synthetic market through the real pipeline on the local stack.

People visit the website (Segment calls with their own timestamps), fill in
forms (the signed demo-request webhook, the keyed content-download form), read
or ignore the email the pipeline actually sent (moto's SES outbox is their
mailbox; opens, clicks, bounces and complaints come back as SES's own
EventBridge records on the default bus, one-click unsubscribes as the POST the
email's List-Unsubscribe header names), and sales acts on hot leads through
`POST /v1/leads/{lead}/outcome`. Everything happens at a simulated time on
the product clock; the driver waits for that time, then acts.

Behaviour responds to nurture: an email whose content interests the person is
opened and clicked more, and a click raises their intent and moves them along
their buying journey — the effect the report's holdout comparison measures.
"""

from __future__ import annotations

import base64
import email as email_parser
import hashlib
import heapq
import json
import re
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from nurture.core.clock import get_clock
from nurture.ingest.api import SIGNATURE_WINDOW_SECONDS, sign_form
from nurture_tools.local.market import DAY, Market, Person, rng

HOUR = 3600.0
MINUTE = 60.0
# What a person does at each step of the buying journey (Gartner's six stages):
# content ids of the example library, or plain pages.
JOURNEY = (
    ("blog-why-leads-go-cold", "blog-forecast-misses", "/blog/pipeline-math", "/blog/forecast-rituals"),
    ("/product", "webinar-pipeline-hygiene", "wp-revenue-analytics-guide", "product-tour", "/pricing"),
    ("integrations-page", "product-tour", "security-whitepaper", "/product/forecasting"),
    ("/pricing", "/compare", "/pricing", "/customers"),
    ("case-study-fintech", "roi-calculator", "/pricing"),
    ("business-case-template", "roi-calculator", "demo-request"),
)
# How the site tells Nurture that a piece of content was consumed.
CONSUMPTION = {
    "blog-why-leads-go-cold": ("page", "/blog/why-leads-go-cold"),
    "blog-forecast-misses": ("page", "/blog/forecast-misses"),
    "product-tour": ("page", "/product/tour"),
    "integrations-page": ("page", "/integrations"),
    "case-study-fintech": ("page", "/customers/fintech-forecast-accuracy"),
    "wp-revenue-analytics-guide": ("asset", "wp-revenue-analytics-guide"),
    "security-whitepaper": ("asset", "security-overview"),
    "business-case-template": ("asset", "business-case-template"),
    "webinar-pipeline-hygiene": ("webinar", "pipeline-hygiene"),
    "roi-calculator": ("event", "ROI Calculator Completed"),
}
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605",
)
PEOPLE_PER_REQUEST = 5
_LEAD_IN_ENROLLMENT = re.compile(r"-([pa][0-9a-f]{20})-\d+$")


@dataclass(order=True)
class _Action:
    at: float
    seq: int
    kind: str = field(compare=False)
    person: Person | None = field(compare=False, default=None)
    payload: dict[str, Any] = field(compare=False, default_factory=dict)


@dataclass
class SimulationStats:
    sessions: int = 0
    segment_calls: int = 0
    forms: int = 0
    emails_seen: int = 0
    ses_records: Counter = field(default_factory=Counter)
    unsubscribes: int = 0
    hot: int = 0
    outcomes: Counter = field(default_factory=Counter)
    outcomes_refused: Counter = field(default_factory=Counter)
    outcome_endpoint: str = "unknown"  # available | missing | unknown
    errors: Counter = field(default_factory=Counter)


class Simulation:
    """One run: `run(end)` returns when the product clock reaches `end`."""

    def __init__(self, market: Market, runtime: Any, config: Any, start: float) -> None:
        self.market, self.runtime, self.config, self.start = market, runtime, config, start
        self.seed = market.seed
        self.queue: list[_Action] = []
        self._seq = 0
        self.stats = SimulationStats()
        self.by_email = {person.email: person for person in market.people}
        self.identified: set[str] = set()
        self.session_count: Counter = Counter()
        self._sessions_planned: Counter = Counter()
        self.demo_requested: set[str] = set()
        self.sales_started: set[str] = set()
        self.lead_ids: dict[str, str] = {}  # person key -> lead id, as sales learnt it
        self.content = {tag.id: tag for tag in config.content}
        self._mailbox_seen = 0
        self._last_tap = 0.0
        import boto3

        session = boto3.session.Session(region_name="us-east-1")
        self.events = session.client("events", endpoint_url=runtime.endpoint)
        self.sqs = session.client("sqs", endpoint_url=runtime.endpoint)
        self.dynamodb = session.client("dynamodb", endpoint_url=runtime.endpoint)
        self.table = runtime.environment["TABLE_NAME"]
        self.write_auth = "Basic " + base64.b64encode(f"{runtime.keys.write_key}:".encode()).decode()
        for person in market.people:
            self._plan_session(person, person.arrives_at)

    # --- the loop ----------------------------------------------------------------------

    def run(self, end: float, progress: Callable[[float, SimulationStats], None] | None = None) -> None:
        """Act on everything due, as the clock reaches it, until `end`; what
        falls due before `end` is done even if the driver runs behind."""
        last_report = 0.0
        while True:
            now = get_clock().timestamp()
            due: list[_Action] = []
            while self.queue and self.queue[0].at <= min(now, end):
                due.append(heapq.heappop(self.queue))
            self._act(due, min(now, end))
            self._watch_mailbox(now)
            if time.monotonic() - self._last_tap > 0.3:
                self._watch_bus(now)
                self._last_tap = time.monotonic()
            if progress and time.monotonic() - last_report > 0.5:
                progress(min(now, end), self.stats)
                last_report = time.monotonic()
            if now >= end and not (self.queue and self.queue[0].at <= end):
                break
            time.sleep(0.02)
        if progress:
            progress(end, self.stats)

    def _plan(self, at: float, kind: str, person: Person | None = None, **payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self.queue, _Action(at, self._seq, kind, person, payload))

    def _act(self, due: list[_Action], now: float) -> None:
        segment: list[dict[str, Any]] = []
        ses: list[dict[str, Any]] = []
        for action in due:
            if action.kind == "session":
                segment += self._session(action.person, action.at)
            elif action.kind == "segment":
                segment.append(action.payload["call"])
            elif action.kind == "form":
                self._form(action.person, action.payload["form"], action.at)
            elif action.kind == "ses":
                ses.append(action.payload["entry"])
            elif action.kind == "unsubscribe":
                self._unsubscribe(action.payload["url"])
            elif action.kind == "outcome":
                self._outcome(action.person, action.payload["outcome"], action.at)
        # A few people's calls per request (a request is one ingest message): many
        # would make the track function's batches, and the moment between dating a
        # lifecycle move and committing it, long; one each would cost a request apiece.
        by_person: dict[str, list[dict[str, Any]]] = {}
        for call in segment:
            by_person.setdefault(call["anonymousId"], []).append(call)
        people = list(by_person.values())
        for start in range(0, len(people), PEOPLE_PER_REQUEST):
            chunk = [call for calls in people[start : start + PEOPLE_PER_REQUEST] for call in calls]
            status, _ = self._http("POST", "/v1/batch", {"batch": chunk}, {"Authorization": self.write_auth})
            if 200 <= status < 300:
                self.stats.segment_calls += len(chunk)
            else:
                self.stats.errors[f"batch {status}"] += 1
        for start in range(0, len(ses), 10):
            response = self.events.put_events(Entries=ses[start : start + 10])
            if response.get("FailedEntryCount"):
                self.stats.errors["ses put_events"] += response["FailedEntryCount"]
            for entry in ses[start : start + 10]:
                self.stats.ses_records[entry["DetailType"]] += 1

    # --- the website ----------------------------------------------------------------------

    def _session(self, person: Person, at: float) -> list[dict[str, Any]]:
        """A visit: a few pages or assets of the person's journey stage, maybe
        identifying themselves; then the next visit is planned."""
        n = self.session_count[person.key]
        self.session_count[person.key] += 1
        self.stats.sessions += 1
        r = rng(self.seed, person.key, "session", n)
        calls: list[dict[str, Any]] = []
        identified = person.key in self.identified
        if not identified and (n >= 1 or person.stage >= 1) and r.random() < 0.55 + 0.4 * person.intent:
            calls.append(self._identify(person, at))
            identified = True
        for i in range(1 + int(r.random() * (2.5 + 3 * person.intent))):
            step = r.choice(JOURNEY[person.stage])
            moment = at + (i + 1) * r.uniform(40, 240)
            if step == "demo-request":
                if identified and person.key not in self.demo_requested and r.random() < 0.4 + 0.5 * person.intent:
                    self.demo_requested.add(person.key)
                    self._plan(moment, "form", person, form="demo-request")
                continue
            if step == "wp-revenue-analytics-guide" and not identified:
                identified = True  # the gated guide asks who you are
                self._plan(moment, "form", person, form="content-download")
                continue
            calls.append(self._consume(person, step, moment, identified))
        if r.random() < 0.2 + 0.5 * person.intent:
            person.stage = min(len(JOURNEY) - 1, person.stage + 1)
        gap = r.expovariate((0.3 + 1.5 * person.intent) / 4) * DAY
        self._plan_session(person, at + max(gap, 0.5 * DAY))
        return calls

    def _plan_session(self, person: Person, at: float) -> None:
        """The next visit, moved into the person's working day (weekdays mostly)."""
        self._sessions_planned[person.key] += 1
        r = rng(self.seed, person.key, "visit time", self._sessions_planned[person.key])
        self._plan(_working_hours(at, person.timezone, r), "session", person)

    def _identify(self, person: Person, at: float) -> dict[str, Any]:
        self.identified.add(person.key)
        return self._call(
            person,
            "identify",
            at,
            True,
            traits={
                "email": person.email,
                "firstName": person.first_name,
                "lastName": person.last_name,
                "title": person.title,
                "company": person.account.name,
                "industry": person.account.industry,
                "employees": person.account.employees,
                "country": person.account.country,
                "timezone": person.timezone,
            },
        )

    def _consume(self, person: Person, step: str, at: float, identified: bool) -> dict[str, Any]:
        kind, value = CONSUMPTION.get(step, ("page", step))
        if kind == "page":
            return self._call(
                person, "page", at, identified, properties={"path": value, "url": f"https://www.example.com{value}"}
            )
        if kind == "asset":
            return self._call(
                person,
                "track",
                at,
                identified,
                event="Asset Downloaded",
                properties={"asset_id": value, "asset_type": "white_paper"},
            )
        if kind == "webinar":
            return self._call(
                person, "track", at, identified, event="Webinar Attended", properties={"webinar_id": value}
            )
        return self._call(person, "track", at, identified, event=value)

    def _call(self, person: Person, kind: str, at: float, identified: bool, **fields: Any) -> dict[str, Any]:
        call: dict[str, Any] = {
            "type": kind,
            "anonymousId": person.anonymous_id,
            "messageId": f"sim-{self.seed}-{person.key}-{self._message_digest(person, kind, at, fields)}",
            "timestamp": _iso_ms(at),
            "context": {"timezone": person.timezone},
            **fields,
        }
        if identified:
            call["userId"] = person.key
        return call

    @staticmethod
    def _message_digest(person: Person, kind: str, at: float, fields: dict[str, Any]) -> str:
        text = json.dumps([person.key, kind, round(at, 3), fields], sort_keys=True)
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

    def _form(self, person: Person, form: str, at: float) -> None:
        self.identified.add(person.key)
        if form == "demo-request":
            body = {
                "submission_id": f"sim-{self.seed}-{person.key}-demo",
                "email": person.email,
                "first_name": person.first_name,
                "last_name": person.last_name,
                "job_title": person.title,
                "company": person.account.name,
                "company_size": person.account.employees,
                "country": person.account.country,
                "product": "forecasting",
            }
            raw = json.dumps(body).encode()
            # A signature is valid for 5 simulated minutes either side of its time,
            # a few milliseconds when time runs accelerated: date it 5 minutes ahead,
            # so it holds from the moment it is sent until 10 simulated minutes later.
            for _ in range(8):
                stamp = str(int(get_clock().timestamp() + SIGNATURE_WINDOW_SECONDS - 10))
                headers = {
                    "X-Nurture-Timestamp": stamp,
                    "X-Nurture-Signature": "sha256=" + sign_form(self.runtime.keys.form_secret, stamp, raw),
                }
                status, _ = self._http("POST", "/v1/forms/demo-request", raw, headers)
                if status != 401:
                    break
        else:
            body = {
                "response_id": f"sim-{self.seed}-{person.key}-guide",
                "asset_id": "wp-revenue-analytics-guide",
                "asset_type": "white_paper",
                "contact": {
                    "email": person.email,
                    "first_name": person.first_name,
                    "last_name": person.last_name,
                    "title": person.title,
                    "company": person.account.name,
                    "industry": person.account.industry,
                },
            }
            status, _ = self._http(
                "POST", "/v1/forms/content-download", body, {"X-Nurture-Key": self.runtime.keys.form_secret}
            )
        if 200 <= status < 300:
            self.stats.forms += 1
        else:
            self.stats.errors[f"form {form} {status}"] += 1

    # --- the mailbox ----------------------------------------------------------------------

    def _watch_mailbox(self, now: float) -> None:
        from moto.ses.models import ses_backends

        sent = ses_backends["123456789012"]["us-east-1"].sent_messages
        while self._mailbox_seen < len(sent):
            message = sent[self._mailbox_seen]
            self._mailbox_seen += 1
            try:
                self._receive(message, now)
            except Exception:  # one unreadable email must not end the run
                self.stats.errors["mailbox"] += 1

    def _receive(self, message: Any, now: float) -> None:
        parsed = email_parser.message_from_bytes(
            message.raw_data.encode() if isinstance(message.raw_data, str) else message.raw_data
        )
        recipient = str(parsed["To"]).strip().lower()
        person = self.by_email.get(recipient)
        touch_id = parsed.get("X-Nurture-Touch")
        if person is None or not touch_id:
            return
        self.stats.emails_seen += 1
        touch = self._touch(recipient, touch_id)
        if touch is None:
            return
        sent_at = float(touch["at"])
        tags = {
            "track": touch["track_id"],
            "step": touch["step_id"],
            "content": touch.get("content_id") or "none",
            "variant": touch.get("variant") or "none",
            "enrollment": touch["enrollment_id"],
        }
        record = _SesRecord(message.id, recipient, sent_at, tags, self.runtime.environment.get("SENDER_EMAIL", ""))
        r = rng(self.seed, person.key, "email", touch_id)
        if person.bad_address:
            self._plan(sent_at + r.uniform(20, 300), "ses", entry=record.bounce(sent_at + r.uniform(20, 300)))
            return
        if person.privacy_proxy:
            opened = sent_at + r.uniform(60, 1200)
            self._plan(opened, "ses", entry=record.engagement("Open", opened, "Mozilla/5.0", "17.58.103.9"))
        content = self.content.get(touch.get("content_id") or "")
        relevant = content is not None and (
            bool(set(content.topics) & set(person.topics))
            or any(_stage_index(s) in (person.stage, person.stage + 1) for s in content.stages)
        )
        transactional = touch.get("klass") == "transactional"
        subject = str(touch.get("subject") or "")
        p_open = person.open_rate * (1.3 if relevant else 0.6) * (1.25 if subject.endswith("?") else 1.0)
        if transactional:
            p_open = max(p_open, 0.8)  # they asked for it
        if r.random() < 0.004 and not transactional:
            self._plan(sent_at + r.uniform(1, 30) * HOUR, "ses", entry=record.complaint(sent_at + 2 * HOUR))
            return
        if r.random() >= min(p_open, 0.95):
            return
        agent = r.choice(USER_AGENTS)
        opened = _waking(sent_at + r.lognormvariate(0.8, 1.1) * HOUR, person.timezone)
        self._plan(opened, "ses", entry=record.engagement("Open", opened, agent, _ip(r)))
        links = [link for link in _links(parsed) if "/v1/unsubscribe/" not in link]
        if not transactional and r.random() < (0.025 if relevant else 0.06):
            url = _unsubscribe_url(parsed)
            if url:
                self._plan(opened + r.uniform(20, 120), "unsubscribe", url=url)
            return
        if not links or r.random() >= person.click_rate * (1.5 if relevant else 0.4):
            return
        clicked = opened + r.uniform(30, 600)
        self._plan(clicked, "ses", entry=record.engagement("Click", clicked, agent, _ip(r), link=links[0]))
        if content is not None and content.id in CONSUMPTION:
            self._plan(
                clicked + r.uniform(5, 60), "segment", call=self._consume(person, content.id, clicked + 30, True)
            )
        if relevant and content is not None and content.id not in person.clicked_content and not transactional:
            # The market's response to relevant content: more intent, a step along the journey.
            person.clicked_content.add(content.id)
            person.intent = min(1.0, person.intent + 0.12)
            if r.random() < 0.6:
                person.stage = min(len(JOURNEY) - 1, person.stage + 1)
            self._plan_session(person, clicked + r.uniform(0.5, 2) * DAY)

    def _touch(self, email: str, touch_id: str) -> dict[str, Any] | None:
        from nurture.store.schema import TouchItem, read
        from nurture.store.values import key_item
        from nurture_tools.export import item_fields

        lead_id = self._lead_id(email, touch_id)
        if lead_id is None:
            return None
        response = self.dynamodb.get_item(
            TableName=self.table,
            Key=key_item(*TouchItem.key(lead_id, touch_id)),
            ConsistentRead=True,
        )
        return item_fields(read(response["Item"], TouchItem), TouchItem) if "Item" in response else None

    def _lead_id(self, email: str, touch_id: str) -> str | None:
        match = _LEAD_IN_ENROLLMENT.search(touch_id.split("#", 1)[0])
        if match:
            return match.group(1)
        from nurture.store.repository import identity_key
        from nurture.store.schema import IdentityItem, read
        from nurture.store.values import key_item

        key = key_item(*IdentityItem.key(identity_key("email", email)))
        response = self.dynamodb.get_item(TableName=self.table, Key=key)
        return read(response["Item"], IdentityItem).lead_id if "Item" in response else None

    def _unsubscribe(self, url: str) -> None:
        path = url.split("://", 1)[-1].split("/", 1)[1]
        status, _ = self._http(
            "POST", "/" + path, b"List-Unsubscribe=One-Click", {"Content-Type": "application/x-www-form-urlencoded"}
        )
        if 200 <= status < 300:
            self.stats.unsubscribes += 1
        else:
            self.stats.errors[f"unsubscribe {status}"] += 1

    # --- sales --------------------------------------------------------------------------

    def _watch_bus(self, now: float) -> None:
        """Sales reads the bus (as a CRM integration would): a lead that
        became hot is worked, and its outcomes come back through the API."""
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.runtime.bus_tap_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not messages:
                return
            self.sqs.delete_message_batch(
                QueueUrl=self.runtime.bus_tap_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
            for message in messages:
                event = json.loads(message["Body"])
                if event.get("detail-type") not in ("lead.became_hot", "lead.handed_off"):
                    continue
                detail = event.get("detail", {})
                person = self.by_email.get(str(detail.get("email") or "").lower())
                if person is None or person.key in self.sales_started:
                    continue
                self.sales_started.add(person.key)
                self.lead_ids[person.key] = detail["lead_id"]
                self.stats.hot += 1
                self._plan_sales(person, now)

    def _plan_sales(self, person: Person, hot_at: float) -> None:
        """The sales team's verdicts on a hot lead, decided up front from the seed;
        reasons are the ones the configuration lists (sales.yaml)."""
        r = rng(self.seed, person.key, "sales")
        sales = getattr(self.config, "sales", None)
        rejections = sorted(getattr(sales, "rejection_reasons", None) or ["not_ready"])
        losses = sorted(getattr(sales, "lost_reasons", None) or ["no_decision"])
        at = hot_at + r.uniform(0.3, 1.5) * DAY
        if r.random() > 0.85 - (0.3 if person.account.employees < 50 else 0):
            self._plan(at, "outcome", person, outcome={"outcome": "rejected", "reason": r.choice(rejections)})
            return
        self._plan(at, "outcome", person, outcome={"outcome": "accepted"})
        if r.random() > 0.3 + 0.5 * person.intent:
            return
        at += r.uniform(1, 5) * DAY
        self._plan(at, "outcome", person, outcome={"outcome": "opportunity_created"})
        at += r.uniform(4, 15) * DAY  # a short cycle, so a demo's weeks see deals close
        if r.random() < 0.3 + 0.4 * person.intent:
            outcome = {"outcome": "won", "revenue": person.account.deal_size, "currency": "USD"}
        else:
            outcome = {"outcome": "lost", "reason": r.choice(losses)}
        self._plan(at, "outcome", person, outcome=outcome)

    def _outcome(self, person: Person, outcome: dict[str, Any], at: float) -> None:
        if self.stats.outcome_endpoint == "missing":
            self.stats.outcomes_refused[outcome["outcome"]] += 1
            return
        body = {**outcome, "outcome_id": f"sim-{self.seed}-{person.key}-{outcome['outcome']}"}
        lead = self.lead_ids.get(person.key, person.email)
        status, answer = self._http(
            "POST", f"/v1/leads/{lead}/outcome", body, {"Authorization": f"Bearer {self.runtime.keys.admin_key}"}
        )
        if status in (200, 202):
            self.stats.outcome_endpoint = "available"
            self.stats.outcomes[outcome["outcome"]] += 1
        elif status in (404, 405) and answer.get("field") is None and self.stats.outcome_endpoint == "unknown":
            self.stats.outcome_endpoint = "missing"  # this build of the API has no outcome route
            self.stats.outcomes_refused[outcome["outcome"]] += 1
        else:
            self.stats.outcomes_refused[outcome["outcome"]] += 1
            self.stats.errors[f"outcome {status}"] += 1

    # --- HTTP -----------------------------------------------------------------------------

    def _http(self, method: str, path: str, body: Any, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **headers}
        request = urllib.request.Request(self.runtime.api_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read()
                return response.status, _json_or_empty(text)
        except urllib.error.HTTPError as error:
            return error.code, _json_or_empty(error.read())


class _SesRecord:
    """SES event-publishing records about one sent email, as EventBridge entries."""

    def __init__(self, message_id: str, recipient: str, sent_at: float, tags: dict[str, str], sender: str) -> None:
        self.message_id, self.recipient, self.sent_at, self.tags, self.sender = (
            message_id,
            recipient,
            sent_at,
            tags,
            sender or "hello@example.com",
        )

    def _entry(self, detail_type: str, event_type: str, body_name: str, body: dict[str, Any]) -> dict[str, Any]:
        detail = {
            "eventType": event_type,
            "mail": {
                "timestamp": _iso_ms(self.sent_at),
                "source": self.sender,
                "messageId": self.message_id,
                "destination": [self.recipient],
                "tags": {name: [value] for name, value in self.tags.items()},
            },
            body_name: body,
        }
        return {"Source": "aws.ses", "DetailType": detail_type, "Detail": json.dumps(detail)}

    def engagement(self, kind: str, at: float, agent: str, ip: str, link: str | None = None) -> dict[str, Any]:
        body = {"timestamp": _iso_ms(at), "userAgent": agent, "ipAddress": ip}
        if kind == "Click":
            body["link"] = link
            return self._entry("Email Clicked", "Click", "click", body)
        return self._entry("Email Opened", "Open", "open", body)

    def bounce(self, at: float) -> dict[str, Any]:
        return self._entry(
            "Email Bounced",
            "Bounce",
            "bounce",
            {
                "bounceType": "Permanent",
                "bounceSubType": "General",
                "bouncedRecipients": [{"emailAddress": self.recipient, "status": "5.1.1", "action": "failed"}],
                "timestamp": _iso_ms(at),
            },
        )

    def complaint(self, at: float) -> dict[str, Any]:
        return self._entry(
            "Email Complaint Received",
            "Complaint",
            "complaint",
            {
                "complainedRecipients": [{"emailAddress": self.recipient}],
                "complaintFeedbackType": "abuse",
                "timestamp": _iso_ms(at),
            },
        )


def _json_or_empty(text: bytes) -> dict[str, Any]:
    try:
        value = json.loads(text or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _links(message: Any) -> list[str]:
    for part in message.walk():
        if part.get_content_type() == "text/html":
            html = part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8", "replace")
            return re.findall(r'href="(https?://[^"]+)"', html)
    return []


def _unsubscribe_url(message: Any) -> str | None:
    match = re.search(r"<(https?://[^>]+)>", str(message.get("List-Unsubscribe") or ""))
    return match.group(1) if match else None


def _stage_index(stage: str) -> int:
    from nurture.core.stages import BUYING_STAGES

    return BUYING_STAGES.index(stage) if stage in BUYING_STAGES else -1


def _working_hours(at: float, zone: str, r: Any) -> float:
    """Moved into the person's working day (09:00-18:00 local, weekdays mostly)."""
    local = datetime.fromtimestamp(at, ZoneInfo(zone))
    if local.weekday() >= 5 and r.random() < 0.8:
        local += timedelta(days=7 - local.weekday())
    if not 9 <= local.hour < 18:
        local = local.replace(hour=9, minute=0) + timedelta(days=1 if local.hour >= 18 else 0)
        local += timedelta(minutes=r.uniform(0, 9 * 60))
    return local.timestamp()


def _waking(at: float, zone: str) -> float:
    local = datetime.fromtimestamp(at, ZoneInfo(zone))
    if local.hour < 7:
        local = local.replace(hour=7, minute=local.minute)
    elif local.hour >= 23:
        local = (local + timedelta(days=1)).replace(hour=7, minute=local.minute)
    return local.timestamp()


def _ip(r: Any) -> str:
    return f"198.51.100.{r.randrange(1, 254)}"


def _iso_ms(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
