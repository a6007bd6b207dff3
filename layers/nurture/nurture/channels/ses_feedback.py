"""Amazon SES feedback: the records a configuration set's EventBridge
destination publishes, turned into product effects.

SES publishes one EventBridge event per record on the account's default bus:
`"source": "aws.ses"`, a `detail-type` such as "Email Bounced" and, as
`detail`, the event-publishing record (eventType, mail, and the bounce,
complaint, delivery, open, click, ... object). The product acts on five kinds:

- a permanent bounce makes the lead `bounced`; transient bounces are counted
  and make it `bounced` after N distinct messages within a window;
- a complaint (other than an ARF "not-spam" report) makes it `complained`;
- a subscription record that opts out of everything makes it `unsubscribed`;
- an open or click becomes a tracking event, scored only if a human made it.
  Mail scanners, Apple's privacy proxy and link checkers open and click
  marketing email too: those are stored under a "(machine)" name that no
  scoring rule matches, with the reason they were judged automated.

Suppression only ever tightens (subscribed < unsubscribed < bounced <
complained): nothing here sets a lead back to `subscribed`.

Route only what is acted on (see EVENT_PATTERN); every other record parses and
is ignored.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple

from nurture.channels.consent import unsubscribe
from nurture.core.domain import CONSENTS, EMAIL_CLICKED, EMAIL_OPENED, MACHINE_ENGAGEMENT, Lead, TrackingEvent
from nurture.core.errors import NurtureError, ValidationError
from nurture.core.observability import add_metric, bounded
from nurture.core.ports import EngagementTracker, FeedbackLeadStore, TouchFinder
from nurture.core.profile import normalize_email
from nurture.store.repository import identity_key

if TYPE_CHECKING:
    from nurture.core.ports import LeadEventPublisher

logger = logging.getLogger(__name__)

SES_SOURCE = "aws.ses"
SOURCE = "ses"  # TrackingEvent.source of everything this module records

# eventType in the record -> kind; EventBridge detail-type -> kind.
KIND_OF_EVENT_TYPE = {
    "Send": "send",
    "Delivery": "delivery",
    "Bounce": "bounce",
    "Complaint": "complaint",
    "Reject": "reject",
    "Open": "open",
    "Click": "click",
    "Rendering Failure": "rendering_failure",
    "DeliveryDelay": "delivery_delay",
    "Subscription": "subscription",
}
KIND_OF_DETAIL_TYPE = {
    "Email Sent": "send",
    "Email Delivered": "delivery",
    "Email Bounced": "bounce",
    "Email Complaint Received": "complaint",
    "Email Rejected": "reject",
    "Email Opened": "open",
    "Email Clicked": "click",
    "Email Rendering Failed": "rendering_failure",
    "Email Delivery Delayed": "delivery_delay",
    "Email Subscribed": "subscription",
}
# The object that carries each kind's details in the record.
_DETAIL_OBJECT = {
    "send": "send",
    "delivery": "delivery",
    "bounce": "bounce",
    "complaint": "complaint",
    "reject": "reject",
    "open": "open",
    "click": "click",
    "rendering_failure": "failure",
    "delivery_delay": "deliveryDelay",
    "subscription": "subscription",
}
_REQUIRED_OBJECT = frozenset({"bounce", "complaint", "delivery", "open", "click", "delivery_delay", "subscription"})
ACTED_ON = ("bounce", "complaint", "open", "click", "subscription")
EVENT_PATTERN = {
    "source": [SES_SOURCE],
    "detail-type": [detail_type for detail_type, kind in KIND_OF_DETAIL_TYPE.items() if kind in ACTED_ON],
}

OPENED, CLICKED = EMAIL_OPENED, EMAIL_CLICKED  # the names config/scoring.yaml scores
MACHINE_SUFFIX = MACHINE_ENGAGEMENT
UNSUBSCRIBE_LINK_CLICKED = "Email Unsubscribe Link Clicked"
HUMAN = "human"
APPLE_MAIL_PRIVACY_PROXY = "apple_mail_privacy_proxy"
SECURITY_SCANNER_USER_AGENT = "security_scanner_user_agent"
SCANNER_IP_RANGE = "scanner_ip_range"
TOO_SOON_AFTER_DELIVERY = "too_soon_after_delivery"
ALL_LINKS_AT_ONCE = "all_links_at_once"

SUBSCRIBED, UNSUBSCRIBED, BOUNCED, COMPLAINED = "subscribed", "unsubscribed", "bounced", "complained"
_SUPPRESSION_RANK = {consent: rank for rank, consent in enumerate(CONSENTS)}

# Lower-cased user-agent fragments of link and image fetchers that are not a
# person reading the email. Vendor names come from the gateways' own link
# rewriting/sandboxing products as field guides list them (Barracuda Link
# Protection, Proofpoint URL Defense, Mimecast URL Protect, Cisco Secure Email /
# IronPort, Symantec MessageLabs, Trend Micro); "bingpreview" is Microsoft's
# link-preview fetcher, "google-safety" Google's documented abuse/malware
# crawler. The rest are HTTP libraries and headless browsers no mail client
# uses. Deliberately absent: "GoogleImageProxy" (Gmail fetches images through
# it when the person opens the message, so it is a human open with a masked
# address), and "Microsoft Office"/"okhttp"/"CFNetwork", which real clients send.
SCANNER_USER_AGENT_TOKENS = (
    "barracuda",
    "proofpoint",
    "mimecast",
    "ironport",
    "ciscosecureemail",
    "messagelabs",
    "trendmicro",
    "bingpreview",
    "google-safety",
    "headlesschrome",
    "phantomjs",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "go-http-client",
    "curl/",
    "wget/",
    "apache-httpclient",
    "java/",
    "libwww-perl",
    "scrapy",
    "bot;",
    "spider",
)
# Networks secure email gateways scan from: the vendors' published egress
# ranges for their hosted services (Barracuda Email Security Service, US;
# Proofpoint's hosted pphosted.com network). Keep this a setting: vendors move
# ranges, and a sender's own data (clicks seconds after delivery from one
# network) is the best source of additions.
SCANNER_NETWORKS = (
    "64.235.144.0/20",  # Barracuda Email Security Service (US)
    "209.222.80.0/21",  # Barracuda Email Security Service (US)
    "148.163.128.0/19",  # Proofpoint hosted (pphosted.com)
    "67.231.144.0/20",  # Proofpoint hosted (pphosted.com)
)

_ANGLE_ADDRESS = re.compile(r"<([^<>]+)>\s*$")


class FeedbackNotAppliedError(NurtureError):
    """Engagement from an SES record could not be saved; retry the record (it is idempotent)."""

    code = "FeedbackNotApplied"


# --- the boundary: parse one EventBridge event ------------------------------------------


@dataclass(frozen=True)
class SesFeedback:
    """One SES event-publishing record, reduced to what the product uses."""

    kind: str  # send | delivery | bounce | complaint | reject | open | click | rendering_failure | ...
    message_id: str  # SES MessageId of the email (mail.messageId)
    recipients: tuple[str, ...]  # normalised addresses the record is about
    timestamp: float  # when the event happened (the kind object's timestamp, else the send time)
    sent_at: float  # when SES accepted the email (mail.timestamp)
    tags: dict[str, str] = field(default_factory=dict)  # message tags, first value of each
    event_id: str | None = None  # the EventBridge event id
    raw_timestamp: str = ""  # the event's timestamp as SES wrote it (stable across redeliveries)
    bounce_type: str | None = None  # Permanent | Transient | Undetermined
    bounce_subtype: str | None = None
    complaint_feedback_type: str | None = None  # abuse | auth-failure | fraud | not-spam | other | virus
    complaint_subtype: str | None = None
    user_agent: str | None = None  # open, click, complaint
    ip: str | None = None  # open, click
    url: str | None = None  # click: the link as written in the email
    delivered_at: float | None = None  # delivery
    reject_reason: str | None = None
    delay_type: str | None = None
    unsubscribe_all: bool | None = None  # subscription
    opted_out_topics: tuple[str, ...] = ()
    all_topics_opted_out: bool = False
    error_message: str | None = None  # rendering failure

    @property
    def enrollment_id(self) -> str | None:
        return self.tags.get("enrollment")

    @property
    def step_id(self) -> str | None:
        return self.tags.get("step")


def parse_ses_event(event: Any) -> SesFeedback:
    """Parse an EventBridge event from an SES configuration set's event destination.

    Raises ValidationError naming the field (e.g. "detail.mail.messageId") when
    the event is not an SES event-publishing record of a known type.
    """
    if not isinstance(event, Mapping):
        raise ValidationError("expected a JSON object", field="event")
    source = event.get("source")
    if source is not None and source != SES_SOURCE:
        raise ValidationError(f"{source!r} is not {SES_SOURCE}", field="source")
    detail = _object(event, "detail", "")
    event_type = detail.get("eventType")
    if not isinstance(event_type, str) or event_type not in KIND_OF_EVENT_TYPE:
        raise ValidationError(f"{event_type!r} is not one of {', '.join(KIND_OF_EVENT_TYPE)}", field="detail.eventType")
    kind = KIND_OF_EVENT_TYPE[event_type]
    detail_type = event.get("detail-type")
    if detail_type is not None and KIND_OF_DETAIL_TYPE.get(detail_type) != kind:
        raise ValidationError(f"{detail_type!r} does not carry {event_type} records", field="detail-type")

    mail = _object(detail, "mail", "detail.")
    message_id = _string(mail, "messageId", "detail.mail.")
    raw_sent = _string(mail, "timestamp", "detail.mail.")
    sent_at = _time(raw_sent, "detail.mail.timestamp")
    destination = _addresses(mail.get("destination"), "detail.mail.destination")
    tags = _tags(mail.get("tags"), "detail.mail.tags")

    name = _DETAIL_OBJECT[kind]
    at = f"detail.{name}."
    body = _object(detail, name, "detail.") if kind in _REQUIRED_OBJECT else _optional_object(detail, name, "detail.")
    if kind in ("open", "click"):
        raw_timestamp = _string(body, "timestamp", at)  # an engagement without its own time cannot be judged
    else:
        raw_timestamp = body.get("timestamp", raw_sent)
        if not isinstance(raw_timestamp, str):
            raise ValidationError("expected an ISO 8601 timestamp string", field=f"{at}timestamp")
    values: dict[str, Any] = {
        "kind": kind,
        "message_id": message_id,
        "recipients": destination,
        "timestamp": _time(raw_timestamp, f"{at}timestamp"),
        "sent_at": sent_at,
        "tags": tags,
        "event_id": event.get("id") if isinstance(event.get("id"), str) else None,
        "raw_timestamp": raw_timestamp,
    }
    if kind in ("open", "click"):
        values["user_agent"] = _optional_string(body, "userAgent", at)
        values["ip"] = _optional_string(body, "ipAddress", at)
        if kind == "click":
            values["url"] = _string(body, "link", at)
    elif kind == "bounce":
        values["bounce_type"] = _string(body, "bounceType", at)
        values["bounce_subtype"] = _optional_string(body, "bounceSubType", at)
        values["recipients"] = _listed_recipients(body, "bouncedRecipients", at)
    elif kind == "complaint":
        values["complaint_feedback_type"] = _optional_string(body, "complaintFeedbackType", at)
        values["complaint_subtype"] = _optional_string(body, "complaintSubType", at)
        values["user_agent"] = _optional_string(body, "userAgent", at)
        values["recipients"] = _listed_recipients(body, "complainedRecipients", at)
    elif kind == "delivery":
        values["delivered_at"] = values["timestamp"]
        if "recipients" in body:
            values["recipients"] = _addresses(body["recipients"], f"{at}recipients")
    elif kind == "delivery_delay":
        values["delay_type"] = _optional_string(body, "delayType", at)
        values["recipients"] = _listed_recipients(body, "delayedRecipients", at)
    elif kind == "reject":
        values["reject_reason"] = _optional_string(body, "reason", at)
    elif kind == "rendering_failure":
        values["error_message"] = _optional_string(body, "errorMessage", at)
    elif kind == "subscription":
        values.update(_subscription(body, at))
    return SesFeedback(**values)


def _object(container: Mapping[str, Any], key: str, at: str) -> dict[str, Any]:
    value = container.get(key)
    if not isinstance(value, dict):
        raise ValidationError("expected a JSON object", field=f"{at}{key}")
    return value


def _optional_object(container: Mapping[str, Any], key: str, at: str) -> dict[str, Any]:
    return {} if container.get(key) is None else _object(container, key, at)


def _string(container: Mapping[str, Any], key: str, at: str) -> str:
    value = container.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("expected a non-empty string", field=f"{at}{key}")
    return value.strip()


def _optional_string(container: Mapping[str, Any], key: str, at: str) -> str | None:
    value = container.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError("expected a string", field=f"{at}{key}")
    return value.strip() or None


def _time(value: str, field_name: str) -> float:
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValidationError(f"{value!r} is not an ISO 8601 timestamp", field=field_name) from exc
    if parsed.tzinfo is None:
        raise ValidationError(f"{value!r} has no time zone", field=field_name)
    return parsed.timestamp()


def _address(value: Any, field_name: str) -> str:
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, str) and (match := _ANGLE_ADDRESS.search(text)):
        text = match.group(1)  # "Name <address>"
    address = normalize_email(text)
    if address is None:
        raise ValidationError(f"{value!r} is not an email address", field=field_name)
    return address


def _addresses(value: Any, field_name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ValidationError("expected a non-empty list of email addresses", field=field_name)
    return tuple(dict.fromkeys(_address(item, f"{field_name}[{n}]") for n, item in enumerate(value)))


def _listed_recipients(body: Mapping[str, Any], key: str, at: str) -> tuple[str, ...]:
    listed = body.get(key)
    if not isinstance(listed, list) or not listed:
        raise ValidationError("expected a non-empty list of recipients", field=f"{at}{key}")
    recipients = []
    for n, recipient in enumerate(listed):
        if not isinstance(recipient, dict):
            raise ValidationError("expected a JSON object", field=f"{at}{key}[{n}]")
        recipients.append(_address(recipient.get("emailAddress"), f"{at}{key}[{n}].emailAddress"))
    return tuple(dict.fromkeys(recipients))


def _tags(value: Any, field_name: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError("expected a JSON object", field=field_name)
    tags = {}
    for name, values in value.items():
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValidationError("expected a list of strings", field=f"{field_name}.{name}")
        if values:
            tags[str(name)] = values[0]
    return tags


def _subscription(body: Mapping[str, Any], at: str) -> dict[str, Any]:
    preferences = _optional_object(body, "newTopicPreferences", at)
    unsubscribe_all = preferences.get("unsubscribeAll")
    if unsubscribe_all is not None and not isinstance(unsubscribe_all, bool):
        raise ValidationError("expected true or false", field=f"{at}newTopicPreferences.unsubscribeAll")
    statuses = preferences.get("topicSubscriptionStatus") or []
    if not isinstance(statuses, list):
        raise ValidationError("expected a list", field=f"{at}newTopicPreferences.topicSubscriptionStatus")
    opted_out, topics = [], 0
    for n, status in enumerate(statuses):
        where = f"{at}newTopicPreferences.topicSubscriptionStatus[{n}]"
        if not isinstance(status, dict):
            raise ValidationError("expected a JSON object", field=where)
        topics += 1
        if status.get("subscriptionStatus") == "OptOut":
            opted_out.append(_string(status, "topicName", f"{where}."))
    return {
        "unsubscribe_all": unsubscribe_all,
        "opted_out_topics": tuple(opted_out),
        "all_topics_opted_out": topics > 0 and len(opted_out) == topics,
    }


# --- human or machine ---------------------------------------------------------------------


class Click(NamedTuple):
    """An earlier click on the same email: when, and on which link."""

    at: float
    url: str


@dataclass(frozen=True)
class EngagementRules:
    """Thresholds that tell a person from a machine.

    Field guides on gateway link scanning agree on the signals: fetches within
    seconds of delivery, every link of an email clicked together, and scanner
    user agents or networks. A person needs more than a few seconds to open an
    email and more than a few seconds to click three different links in it.
    """

    min_seconds_after_delivery: float = 10.0
    burst_links: int = 3  # distinct links (this click included) ...
    burst_seconds: float = 5.0  # ... clicked within this many seconds
    scanner_user_agent_tokens: tuple[str, ...] = SCANNER_USER_AGENT_TOKENS
    scanner_networks: tuple[str, ...] = SCANNER_NETWORKS


@lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def _in_networks(ip: str | None, cidrs: tuple[str, ...]) -> bool:
    if not ip:
        return False
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return False
    return any(address in network for network in _networks(cidrs) if network.version == address.version)


def classify_engagement(
    feedback: SesFeedback,
    delivered_at: float | None,
    recent_clicks: Sequence[Click | tuple[float, str]] = (),
    rules: EngagementRules | None = None,
) -> str:
    """Return "human", or why a machine made this open or click.

    - scanner_ip_range: fetched from a secure email gateway's network;
    - security_scanner_user_agent: a scanner, link previewer or HTTP library
      user agent, or none at all (every browser and mail client sends one);
    - apple_mail_privacy_proxy: an open whose user agent is exactly
      "Mozilla/5.0". Apple Mail with Mail Privacy Protection preloads images
      through Apple's relay (the iCloud Private Relay egress, hosted by CDNs, so
      the address is no reliable signal) with that bare user agent, whether
      or not the person ever reads the email. A click never is: MPP does not
      follow links, and a person's click through a relay is still a click;
    - too_soon_after_delivery: within `min_seconds_after_delivery` of delivery
      (or, when the delivery time is unknown, of SES accepting the email,
      which is earlier, so this never flags more than it should);
    - all_links_at_once: this click and earlier clicks on the same email cover
      `burst_links` distinct links within `burst_seconds`.

    A Gmail image-proxy open ("GoogleImageProxy") is human: Gmail fetches
    images through its proxy when the person opens the message.
    """
    rules = rules or EngagementRules()
    user_agent = (feedback.user_agent or "").strip()
    agent = user_agent.lower()
    if _in_networks(feedback.ip, rules.scanner_networks):
        return SCANNER_IP_RANGE
    if feedback.kind == "open" and user_agent == "Mozilla/5.0":
        return APPLE_MAIL_PRIVACY_PROXY
    if not user_agent or user_agent == "Mozilla/5.0" or any(t in agent for t in rules.scanner_user_agent_tokens):
        return SECURITY_SCANNER_USER_AGENT
    reference = delivered_at if delivered_at is not None else feedback.sent_at
    if feedback.timestamp - reference < rules.min_seconds_after_delivery:
        return TOO_SOON_AFTER_DELIVERY
    if feedback.kind == "click" and feedback.url:
        links = {feedback.url} | {
            url for at, url in recent_clicks if abs(feedback.timestamp - at) <= rules.burst_seconds
        }
        if len(links) >= rules.burst_links:
            return ALL_LINKS_AT_ONCE
    return HUMAN


# --- the use case -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SuppressionSettings:
    """A transient bounce is one SES already retried for hours; a few of them,
    on different emails within a month, mean the address does not work."""

    transient_bounces_to_suppress: int = 3
    transient_bounce_window_days: float = 30.0
    # Links whose clicks are no engagement (the unsubscribe page's path).
    non_engagement_links: tuple[str, ...] = ("/v1/unsubscribe/",)


@dataclass(frozen=True)
class Effect:
    """What one SES record did to one lead."""

    lead_id: str
    action: str  # bounced | complained | unsubscribed | already_suppressed | transient_bounce_counted
    #              engaged | machine_engagement | unsubscribe_link_clicked | duplicate | ignored
    reason: str | None = None  # machine reason, or why nothing changed
    transient_bounces: int | None = None
    message_id: str | None = None  # the tracking event recorded, if any
    track: str | None = None  # the track of the email engaged with, if known


@dataclass(frozen=True)
class Outcome:
    """What handling one SES record did, for logs and metrics (one count per effect action)."""

    kind: str
    message_id: str
    action: str  # the effects' action when they agree, else "mixed"; ignored | unknown_recipient without effects
    effects: tuple[Effect, ...] = ()
    reason: str | None = None


class SesFeedbackProcessor:
    """Applies SES feedback to leads.

    Guarantees: at-least-once delivery is safe. A redelivered record changes
    nothing more: suppression is a state that only tightens, a transient bounce
    counts once per email, and an open or click becomes a tracking event whose
    id is derived from the SES message id, the kind, the link and SES's own
    timestamp, which the track use case applies once. Records about addresses
    no lead has are ignored (no lead is ever created from SES feedback).
    Raises FeedbackNotAppliedError when engagement could not be saved, so the
    record is retried.
    """

    def __init__(
        self,
        leads: FeedbackLeadStore,
        timelines: TouchFinder,
        tracker: EngagementTracker,
        publisher: LeadEventPublisher,
        suppression: SuppressionSettings | None = None,
        rules: EngagementRules | None = None,
        tracks: Collection[str] = (),
    ) -> None:
        self.leads = leads
        self.timelines = timelines
        self.tracker = tracker
        self.publisher = publisher
        self.suppression = suppression or SuppressionSettings()
        self.rules = rules or EngagementRules()
        self.tracks = frozenset(tracks)  # the track ids metrics may name; others count as "other"

    def handle(self, event: Mapping[str, Any], now: float) -> Outcome:
        feedback = parse_ses_event(event)
        if feedback.kind not in ACTED_ON:
            return Outcome(feedback.kind, feedback.message_id, "ignored", reason=f"{feedback.kind} changes nothing")
        leads = self._leads_of(feedback.recipients)
        if not leads:
            return Outcome(feedback.kind, feedback.message_id, "unknown_recipient", reason="no lead has the address")
        apply = {
            "bounce": self._bounce,
            "complaint": self._complaint,
            "subscription": self._subscription,
            "open": self._engagement,
            "click": self._engagement,
        }[feedback.kind]
        effects = tuple(apply(feedback, lead, now) for lead in leads)
        for effect in effects:
            self._count(feedback, effect)
        actions = {effect.action for effect in effects}
        return Outcome(feedback.kind, feedback.message_id, actions.pop() if len(actions) == 1 else "mixed", effects)

    def _count(self, feedback: SesFeedback, effect: Effect) -> None:
        """Business metrics: human and machine engagement (per track for
        engagement rates), bounces, complaints and the suppressions they caused."""
        kind = feedback.kind
        if effect.action == "engaged":
            add_metric("HumanOpens" if kind == "open" else "HumanClicks", track=bounded(effect.track, self.tracks))
        elif effect.action == "machine_engagement":
            add_metric("MachineOpens" if kind == "open" else "MachineClicks")
        elif kind == "bounce":
            add_metric("Bounces", bounce_type=bounded(feedback.bounce_type, ("Permanent", "Transient", "Undetermined")))
        elif kind == "complaint" and effect.action != "ignored":
            add_metric("Complaints")
        if effect.action in (BOUNCED, COMPLAINED, UNSUBSCRIBED):
            add_metric("LeadsSuppressed", consent=effect.action)

    def _leads_of(self, recipients: Sequence[str]) -> list[Lead]:
        keys = {identity_key("email", address): address for address in recipients}
        lead_ids = self.leads.lookup_identities(keys)
        found = self.leads.get_leads(sorted(set(lead_ids.values())), consistent=True)
        return [found[lead_id] for lead_id in sorted(found) if not found[lead_id].merged_into]

    # --- suppression

    def _suppress(self, lead: Lead, consent: str, now: float, reason: str | None = None) -> Effect:
        if _SUPPRESSION_RANK.get(lead.consent, 1) >= _SUPPRESSION_RANK[consent]:
            return Effect(lead.lead_id, "already_suppressed", reason=f"lead is {lead.consent}")
        self.leads.set_consent(lead.lead_id, consent, now)
        return Effect(lead.lead_id, consent, reason=reason)

    def _bounce(self, feedback: SesFeedback, lead: Lead, now: float) -> Effect:
        detail = f"{feedback.bounce_type}/{feedback.bounce_subtype}" if feedback.bounce_subtype else None
        if feedback.bounce_type == "Permanent":
            return self._suppress(lead, BOUNCED, now, detail)
        # Transient and Undetermined: the address may work again.
        window = self.suppression.transient_bounce_window_days * 86400.0
        count = self.leads.increment_transient_bounces(lead.lead_id, feedback.message_id, feedback.timestamp, window)
        if count >= self.suppression.transient_bounces_to_suppress:
            effect = self._suppress(lead, BOUNCED, now, f"{count} transient bounces")
            return Effect(effect.lead_id, effect.action, effect.reason, count)
        return Effect(lead.lead_id, "transient_bounce_counted", detail, count)

    def _complaint(self, feedback: SesFeedback, lead: Lead, now: float) -> Effect:
        if feedback.complaint_feedback_type == "not-spam":
            # An ARF "not-spam" report says the person rescued the email from spam.
            return Effect(lead.lead_id, "ignored", reason="not-spam feedback")
        return self._suppress(lead, COMPLAINED, now, feedback.complaint_feedback_type)

    def _subscription(self, feedback: SesFeedback, lead: Lead, now: float) -> Effect:
        if not (feedback.unsubscribe_all or feedback.all_topics_opted_out):
            # Opting back in is the lead's own act through the product, never inferred here.
            return Effect(lead.lead_id, "ignored", reason="no opt-out from all email")
        if _SUPPRESSION_RANK.get(lead.consent, 1) >= _SUPPRESSION_RANK[UNSUBSCRIBED]:
            return Effect(lead.lead_id, "already_suppressed", reason=f"lead is {lead.consent}")
        unsubscribe(self.leads, self.publisher, lead.lead_id, now, reason="ses-subscription")
        return Effect(lead.lead_id, UNSUBSCRIBED)

    # --- engagement

    def _engagement(self, feedback: SesFeedback, lead: Lead, now: float) -> Effect:
        event_id = engagement_event_id(feedback)
        recent = self._recent_clicks(lead.lead_id, feedback.message_id, event_id) if feedback.kind == "click" else []
        verdict = classify_engagement(feedback, None, recent, self.rules)
        name = OPENED if feedback.kind == "open" else CLICKED
        properties = self._properties(feedback, lead)
        if verdict != HUMAN:
            name += MACHINE_SUFFIX
            properties["machine_reason"] = verdict
            action = "machine_engagement"
        elif feedback.url and any(part in feedback.url for part in self.suppression.non_engagement_links):
            name, action = UNSUBSCRIBE_LINK_CLICKED, "unsubscribe_link_clicked"
        else:
            action = "engaged"
        tracking_event = TrackingEvent(
            message_id=event_id,
            kind="track",
            name=name,
            timestamp=feedback.timestamp,
            received_at=now,
            source=SOURCE,
            email=lead.email or feedback.recipients[0],
            properties=properties,
            context={key: value for key, value in (("ip", feedback.ip), ("userAgent", feedback.user_agent)) if value},
        )
        result = self.tracker.process([(feedback.event_id or event_id, [tracking_event])], now)
        if result.failed_records:
            raise FeedbackNotAppliedError(f"{name} for lead {lead.lead_id} not saved; retry the record")
        if not result.applied:
            return Effect(lead.lead_id, "duplicate", reason="already recorded", message_id=event_id)
        return Effect(
            lead.lead_id,
            action,
            reason=None if verdict == HUMAN else verdict,
            message_id=event_id,
            track=properties.get("track"),
        )

    def _properties(self, feedback: SesFeedback, lead: Lead) -> dict[str, Any]:
        tags = feedback.tags
        touch = None
        if feedback.enrollment_id and feedback.step_id:
            touch = self.timelines.find_touch(lead.lead_id, feedback.enrollment_id, feedback.step_id)
            if touch is not None and touch.message_id and touch.message_id != feedback.message_id:
                logger.warning(
                    "SES message %s carries the tags of touch %s, sent as %s",
                    feedback.message_id,
                    touch.touch_id,
                    touch.message_id,
                )
        variant = tags.get("variant") or (touch.variant if touch else None)
        properties: dict[str, Any] = {
            "track": tags.get("track") or (touch.track_id if touch else None),
            "step": feedback.step_id,
            "content": tags.get("content") or (touch.content_id if touch else None),
            "variant": None if variant == "none" else variant,
            "enrollment": feedback.enrollment_id,
            "touch": touch.touch_id if touch else None,
            "url": feedback.url,
            "message_id": feedback.message_id,
        }
        return {key: value for key, value in properties.items() if value is not None}

    def _recent_clicks(self, lead_id: str, ses_message_id: str, except_id: str) -> list[Click]:
        names = (CLICKED, CLICKED + MACHINE_SUFFIX, UNSUBSCRIBE_LINK_CLICKED)
        return [
            Click(event.timestamp, str(event.properties.get("url", "")))
            for event in self.leads.lead_events(lead_id)
            if event.name in names
            and event.properties.get("message_id") == ses_message_id
            and event.message_id != except_id
        ]


def engagement_event_id(feedback: SesFeedback) -> str:
    """The tracking event id of an open or click: the same for every delivery of
    the same SES record (message, kind, link and SES's own timestamp), whatever
    it is later judged to be."""
    digest = hashlib.blake2b(
        "|".join((feedback.message_id, feedback.kind, feedback.url or "", feedback.raw_timestamp)).encode(),
        digest_size=10,
    ).hexdigest()
    return f"ses-{feedback.kind}-{digest}"
