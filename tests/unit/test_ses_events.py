"""SES feedback through EventBridge: bounces and complaints suppress the lead
for good, opens and clicks raise engagement only when a person made them,
and every record is safe to deliver twice.

The records in tests/events/ses/ are the examples of the SES Developer Guide
("Examples of event data that Amazon SES publishes") in the EventBridge
envelope SES's event destination wraps them in, with the message tags
TouchSender sets (track, step, content, variant, enrollment) added to
mail.tags. Their recipient is recipient@example.com.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from nurture.channels.ses_feedback import (
    ALL_LINKS_AT_ONCE,
    APPLE_MAIL_PRIVACY_PROXY,
    EVENT_PATTERN,
    HUMAN,
    SCANNER_IP_RANGE,
    SECURITY_SCANNER_USER_AGENT,
    TOO_SOON_AFTER_DELIVERY,
    Click,
    Effect,
    Outcome,
    SesFeedbackProcessor,
    SuppressionSettings,
    classify_engagement,
    parse_ses_event,
)
from nurture.core.domain import Touch
from nurture.core.errors import ValidationError
from nurture.ingest.consumer import Tracker, lead_id_for
from nurture.scoring.scores import engagement_at
from nurture.store.timelines import touch_from_item
from nurture.timelines.use_cases import TouchSender
from tests.fakes import InMemoryLeadStore, InMemoryTimelineStore
from tests.unit.builders import RETENTION, identify, lead_by, lead_count, load_event, tracking_events
from tests.unit.timeline_builders import COMPANY, RecordingSender, UnsubscribeKey

ADDRESS = "recipient@example.com"
LEAD_ID = lead_id_for(f"email#{ADDRESS}")  # the lead an identify call with ADDRESS creates
ENROLLMENT = f"mql-revenue-teams-{LEAD_ID}-1"  # the enrollment tag in the fixtures
KNOWN_SINCE = datetime(2016, 10, 1, tzinfo=UTC).timestamp()  # before every guide record
GUIDE_MESSAGE_ID = "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000"


# --- fakes and builders ----------------------------------------------------------------------


class FeedbackLeads(InMemoryLeadStore):
    """The in-memory lead store with the transient-bounce counter SES feedback needs."""

    def __init__(self) -> None:
        super().__init__()
        self.transient_bounces: dict[str, dict[str, float]] = {}

    def increment_transient_bounces(
        self, lead_id: str, message_id: str, bounced_at: float, window_seconds: float
    ) -> int:
        bounced = self.transient_bounces.setdefault(lead_id, {})
        bounced.setdefault(message_id, bounced_at)
        return sum(1 for at in bounced.values() if at >= bounced_at - window_seconds)


class Touches(InMemoryTimelineStore):
    """The in-memory timeline store with the touch lookup by enrollment + step."""

    def find_touch(self, lead_id: str, enrollment_id: str, step_id: str) -> Touch | None:
        item = self.items.get((f"LEAD#{lead_id}", f"TOUCH#{enrollment_id}#{step_id}"))
        return touch_from_item(dict(item)) if item else None


def record(name: str) -> dict[str, Any]:
    """An SES record from tests/events/ses/ (a fresh copy)."""
    return load_event(f"ses/{name}.json")


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sent_at(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["detail"]["mail"]["timestamp"]).timestamp()


def an_open(*, seconds_after_send: float = 30.0, user_agent: str | None = None, ip: str | None = None) -> dict:
    """The guide's Open record, `seconds_after_send` after SES accepted the email."""
    event = record("open")
    details = event["detail"]["open"]
    details["timestamp"] = iso(sent_at(event) + seconds_after_send)
    if user_agent is not None:
        details["userAgent"] = user_agent
    if ip is not None:
        details["ipAddress"] = ip
    return event


def a_click(
    link: str | None = None, *, seconds_after_send: float = 80.0, user_agent: str | None = None, ip: str | None = None
) -> dict:
    """The guide's Click record on `link`, `seconds_after_send` after SES accepted the email."""
    event = record("click")
    details = event["detail"]["click"]
    details["timestamp"] = iso(sent_at(event) + seconds_after_send)
    if link is not None:
        details["link"] = link
    if user_agent is not None:
        details["userAgent"] = user_agent
    if ip is not None:
        details["ipAddress"] = ip
    return event


def a_transient_bounce(message_id: str, *, subtype: str = "MailboxFull") -> dict:
    """The guide's Bounce record as a transient bounce of email `message_id`."""
    event = record("bounce")
    event["detail"]["bounce"].update(bounceType="Transient", bounceSubType=subtype)
    event["detail"]["mail"]["messageId"] = message_id
    return event


def handled_at(event: dict[str, Any]) -> float:
    """A minute after the record's own time: when the consumer sees it."""
    return datetime.fromisoformat(event["time"]).timestamp() + 60


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def leads() -> FeedbackLeads:
    return FeedbackLeads()


@pytest.fixture
def timelines() -> Touches:
    return Touches()


@pytest.fixture
def tracker(leads, publisher, config) -> Tracker:
    return Tracker(leads, publisher, config, RETENTION)


@pytest.fixture
def processor(leads, timelines, tracker, publisher) -> SesFeedbackProcessor:
    return SesFeedbackProcessor(leads, timelines, tracker, publisher)


@pytest.fixture
def known_lead(tracker, leads) -> str:
    """recipient@example.com is a known, subscribed lead (a visitor who gave the address on the website)."""
    call = identify(ADDRESS, anonymous_id="anon-recipient", at=KNOWN_SINCE)
    result = tracker.process([("identify", tracking_events(call, received_at=KNOWN_SINCE))], KNOWN_SINCE)
    assert result.failed_records == []
    assert lead_by(leads, "email", ADDRESS).lead_id == LEAD_ID
    return LEAD_ID


def handle(processor: SesFeedbackProcessor, event: dict[str, Any]) -> Outcome:
    return processor.handle(event, handled_at(event))


def consent(leads) -> str:
    return lead_by(leads, "email", ADDRESS).consent


def engagement(leads, config, event: dict[str, Any]) -> float:
    """The lead's engagement score as of the time of the SES record's event."""
    return engagement_at(lead_by(leads, "email", ADDRESS), parse_ses_event(event).timestamp, config)


def points(config, event_name: str) -> float:
    return sum(rule.points for rule in config.rules_by_event.get(event_name, ()))


def stored(leads, name: str) -> list:
    return [event for event in leads.lead_events(LEAD_ID) if event.name == name]


# --- the guide's records ---------------------------------------------------------------------


def test_permanent_bounce_marks_the_lead_bounced(processor, leads, known_lead):
    # Given a subscribed lead
    # When SES reports a permanent bounce of an email to it (the guide's Bounce record)
    outcome = handle(processor, record("bounce"))

    # Then the lead is bounced
    assert consent(leads) == "bounced"
    assert outcome == Outcome(
        "bounce", GUIDE_MESSAGE_ID, "bounced", (Effect(LEAD_ID, "bounced", reason="Permanent/General"),)
    )


def test_complaint_marks_the_lead_complained(processor, leads, known_lead):
    # Given a subscribed lead
    # When the recipient reports the email as abuse (the guide's Complaint record)
    outcome = handle(processor, record("complaint"))

    # Then the lead is complained
    assert consent(leads) == "complained"
    assert outcome.action == "complained"


def test_subscription_opt_out_of_everything_unsubscribes_the_lead(processor, leads, publisher, known_lead):
    # Given a subscribed lead
    # When it opts out of all email through the SES list-unsubscribe header (the guide's Subscription record)
    outcome = handle(processor, record("subscription"))

    # Then the lead is unsubscribed and lead.unsubscribed is published, so its timelines stop
    assert consent(leads) == "unsubscribed"
    assert outcome.action == "unsubscribed"
    [entry] = [entry for entry in publisher.entries if entry["type"] == "lead.unsubscribed"]
    assert entry["detail"]["lead_id"] == LEAD_ID
    assert entry["detail"]["reason"] == "ses-subscription"


def test_human_open_raises_engagement_by_the_configured_points(processor, leads, config, known_lead):
    # Given a known lead and the guide's Open record: an iPhone mail client, 30 s after the send
    event = record("open")
    before = engagement(leads, config, event)

    # When it is handled
    outcome = handle(processor, event)

    # Then the lead's engagement rises by the email-opened points, from a stored "Email Opened" event
    assert outcome.action == "engaged"
    assert engagement(leads, config, event) == pytest.approx(before + points(config, "Email Opened"))
    [opened] = stored(leads, "Email Opened")
    assert opened.points == [["email-opened", points(config, "Email Opened")]]
    assert opened.source == "ses"


def test_human_click_raises_engagement_by_the_configured_points(processor, leads, config, known_lead):
    # Given a known lead and the guide's Click record: Chrome on Windows, 80 s after the send
    event = record("click")
    before = engagement(leads, config, event)

    # When it is handled
    outcome = handle(processor, event)

    # Then the lead's engagement rises by the email-clicked points and the link is stored with the touch's tags
    assert outcome.action == "engaged"
    assert engagement(leads, config, event) == pytest.approx(before + points(config, "Email Link Clicked"))
    [clicked] = stored(leads, "Email Link Clicked")
    assert clicked.properties == {
        "track": "mql-revenue-teams",
        "step": "guide",
        "content": "wp-revenue-analytics-guide",
        "variant": "question",
        "enrollment": ENROLLMENT,
        "url": "http://docs.aws.amazon.com/ses/latest/DeveloperGuide/send-email-smtp.html",
        "message_id": GUIDE_MESSAGE_ID,
    }


@pytest.mark.parametrize("name", ["send", "delivery", "reject", "rendering_failure", "delivery_delay"])
def test_records_that_change_nothing_are_ignored(processor, leads, config, known_lead, name):
    # Given a known, subscribed lead
    event = record(name)
    before = engagement(leads, config, event)

    # When SES reports a send, delivery, rejection, rendering failure or delivery delay
    outcome = handle(processor, event)

    # Then the lead stays subscribed with the same engagement, and nothing is stored
    assert outcome.action == "ignored"
    assert consent(leads) == "subscribed"
    assert engagement(leads, config, event) == before
    assert [e for e in leads.lead_events(LEAD_ID) if e.source == "ses"] == []


# --- suppression ----------------------------------------------------------------------------


def test_bounced_lead_is_never_emailed_again(processor, leads, timelines, config, known_lead):
    # Given a lead whose address bounced permanently
    handle(processor, record("bounce"))
    ses = RecordingSender()
    sender = TouchSender(leads, timelines, config, COMPANY, ses, UnsubscribeKey())

    # When its timeline's next email is due
    result = sender.send(
        {
            "enrollment_id": ENROLLMENT,
            "lead_id": LEAD_ID,
            "track_id": "mql-revenue-teams",
            "step_id": "guide",
            "content_id": "wp-revenue-analytics-guide",
            "decided_at": handled_at(record("bounce")),
        },
        handled_at(record("bounce")),
    )

    # Then nothing is sent
    assert result == {"sent": False, "reason": "lead bounced"}
    assert ses.sent == []


def test_transient_bounces_suppress_only_after_three_emails(processor, leads, known_lead):
    # Given two emails to the lead bounced transiently (a full mailbox)
    first = [handle(processor, a_transient_bounce(f"message-{n}")) for n in (1, 2)]
    assert [outcome.effects[0].transient_bounces for outcome in first] == [1, 2]
    assert consent(leads) == "subscribed"

    # When a third email bounces transiently
    outcome = handle(processor, a_transient_bounce("message-3"))

    # Then the lead is bounced
    assert outcome.effects == (Effect(LEAD_ID, "bounced", reason="3 transient bounces", transient_bounces=3),)
    assert consent(leads) == "bounced"


def test_the_same_transient_bounce_delivered_three_times_counts_once(processor, leads, known_lead):
    # Given a transient bounce of one email
    event = a_transient_bounce("message-1")

    # When EventBridge delivers it three times
    outcomes = [handle(processor, copy.deepcopy(event)) for _ in range(3)]

    # Then it counts as one bounce and the lead stays subscribed
    assert [outcome.effects[0].transient_bounces for outcome in outcomes] == [1, 1, 1]
    assert consent(leads) == "subscribed"


def test_transient_bounce_threshold_is_a_setting(leads, timelines, tracker, publisher, known_lead):
    # Given suppression after one transient bounce
    processor = SesFeedbackProcessor(
        leads, timelines, tracker, publisher, SuppressionSettings(transient_bounces_to_suppress=1)
    )

    # When one email bounces transiently
    handle(processor, a_transient_bounce("message-1"))

    # Then the lead is bounced
    assert consent(leads) == "bounced"


@pytest.mark.parametrize("then", ["bounce", "subscription"])
def test_complained_lead_stays_complained(processor, leads, known_lead, then):
    # Given a lead that complained
    handle(processor, record("complaint"))

    # When its address later bounces, or it opts out through SES
    outcome = handle(processor, record(then))

    # Then it stays complained: nothing here ever loosens a suppression
    assert outcome.action == "already_suppressed"
    assert consent(leads) == "complained"


def test_complaint_after_a_bounce_makes_the_lead_complained(processor, leads, known_lead):
    # Given a lead whose address bounced
    handle(processor, record("bounce"))

    # When a complaint about an earlier email arrives
    handle(processor, record("complaint"))

    # Then the lead is complained
    assert consent(leads) == "complained"


def test_not_spam_feedback_is_no_complaint(processor, leads, known_lead):
    # Given a complaint record whose ARF feedback type is "not-spam" (the person rescued the email from spam)
    event = record("complaint")
    event["detail"]["complaint"]["complaintFeedbackType"] = "not-spam"

    # When it is handled
    outcome = handle(processor, event)

    # Then the lead stays subscribed
    assert outcome.action == "ignored"
    assert consent(leads) == "subscribed"


def test_bounce_of_an_unknown_recipient_is_ignored(processor, leads):
    # Given no lead has recipient@example.com
    # When SES reports a permanent bounce to it
    outcome = handle(processor, record("bounce"))

    # Then nothing happens and no lead is created
    assert outcome == Outcome("bounce", GUIDE_MESSAGE_ID, "unknown_recipient", reason="no lead has the address")
    assert lead_count(leads) == 0


def test_open_by_an_unknown_recipient_creates_no_lead(processor, leads):
    # Given no lead has recipient@example.com
    # When SES reports an open by it
    outcome = handle(processor, record("open"))

    # Then no lead is created
    assert outcome.action == "unknown_recipient"
    assert lead_count(leads) == 0


# --- human or machine -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (an_open(user_agent="Mozilla/5.0"), APPLE_MAIL_PRIVACY_PROXY),
        (an_open(seconds_after_send=3), TOO_SOON_AFTER_DELIVERY),
        (an_open(ip="148.163.150.20"), SCANNER_IP_RANGE),
        (an_open(user_agent=""), SECURITY_SCANNER_USER_AGENT),
    ],
    ids=["apple-mpp", "3s-after-send", "proofpoint-network", "no-user-agent"],
)
def test_machine_open_is_stored_but_scores_nothing(processor, leads, config, known_lead, event, reason):
    # Given a known lead and an open a machine made
    before = engagement(leads, config, event)

    # When it is handled
    outcome = handle(processor, event)

    # Then engagement is unchanged and the open is stored as a machine open with the reason
    assert outcome.action == "machine_engagement"
    assert outcome.effects[0].reason == reason
    assert engagement(leads, config, event) == before
    [machine_open] = stored(leads, "Email Opened (machine)")
    assert machine_open.properties["machine_reason"] == reason
    assert machine_open.points == []
    assert stored(leads, "Email Opened") == []


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (a_click(user_agent="Mozilla/5.0 (compatible; Barracuda Link Protection)"), SECURITY_SCANNER_USER_AGENT),
        (a_click(user_agent="python-requests/2.31.0"), SECURITY_SCANNER_USER_AGENT),
        (a_click(ip="64.235.150.1"), SCANNER_IP_RANGE),
        (a_click(seconds_after_send=2), TOO_SOON_AFTER_DELIVERY),
    ],
    ids=["barracuda-agent", "http-library", "barracuda-network", "2s-after-send"],
)
def test_machine_click_is_stored_but_scores_nothing(processor, leads, config, known_lead, event, reason):
    # Given a known lead and a click a machine made
    before = engagement(leads, config, event)

    # When it is handled
    outcome = handle(processor, event)

    # Then engagement is unchanged and the click is stored as a machine click with the reason
    assert (outcome.action, outcome.effects[0].reason) == ("machine_engagement", reason)
    assert engagement(leads, config, event) == before
    [machine_click] = stored(leads, "Email Link Clicked (machine)")
    assert machine_click.properties["machine_reason"] == reason


def test_gmail_image_proxy_open_is_a_human_open(processor, leads, config, known_lead):
    # Given an open fetched through Gmail's image proxy five minutes after the send
    event = an_open(
        seconds_after_send=300,
        user_agent="Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
        ip="66.249.84.1",
    )
    before = engagement(leads, config, event)

    # When it is handled
    outcome = handle(processor, event)

    # Then it counts: Gmail fetches images through its proxy when the person opens the email
    assert outcome.action == "engaged"
    assert engagement(leads, config, event) == pytest.approx(before + points(config, "Email Opened"))


def test_scanner_clicking_every_link_at_once_scores_only_until_the_burst_shows(processor, leads, known_lead):
    # Given a scanner clicks three different links of one email within two seconds, 80 s after the send
    links = [f"https://www.example.com/{page}" for page in ("guide", "pricing", "blog")]
    events = [a_click(link, seconds_after_send=80 + n) for n, link in enumerate(links)]

    # When the clicks are handled in order
    outcomes = [handle(processor, event) for event in events]

    # Then the third is recognised as a machine click: every link of the email at once
    assert [outcome.action for outcome in outcomes] == ["engaged", "engaged", "machine_engagement"]
    assert outcomes[2].effects[0].reason == ALL_LINKS_AT_ONCE


def test_click_on_the_unsubscribe_link_is_no_engagement(processor, leads, config, known_lead):
    # Given a click on the footer's unsubscribe link
    event = a_click("https://api.example.com/v1/unsubscribe/token-123")
    before = engagement(leads, config, event)

    # When it is handled
    outcome = handle(processor, event)

    # Then it is stored under its own name and scores nothing
    assert outcome.action == "unsubscribe_link_clicked"
    assert engagement(leads, config, event) == before
    assert len(stored(leads, "Email Unsubscribe Link Clicked")) == 1


def test_classify_all_links_at_once():
    # Given two other links of the same email clicked in the last three seconds
    feedback = parse_ses_event(a_click("https://www.example.com/c", seconds_after_send=80))
    recent = [Click(feedback.timestamp - 3, "https://www.example.com/a"), (feedback.timestamp - 1, "https://b")]

    # When the click is classified
    verdict = classify_engagement(feedback, None, recent)

    # Then it is a machine's
    assert verdict == ALL_LINKS_AT_ONCE


def test_classify_measures_from_delivery_when_known():
    # Given an open 30 s after the send but 4 s after delivery
    feedback = parse_ses_event(an_open(seconds_after_send=30))

    # When it is classified with the delivery time
    verdict = classify_engagement(feedback, feedback.timestamp - 4, [])

    # Then it is too soon after delivery for a person
    assert verdict == TOO_SOON_AFTER_DELIVERY
    assert classify_engagement(feedback, None, []) == HUMAN


# --- at least once --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["open", "click"])
def test_the_same_engagement_delivered_twice_counts_once(processor, leads, config, known_lead, name):
    # Given a human open (or click) handled once
    event = record(name)
    before = engagement(leads, config, event)
    handle(processor, copy.deepcopy(event))

    # When EventBridge delivers the same record again
    outcome = handle(processor, copy.deepcopy(event))

    # Then it changes nothing more
    assert outcome.action == "duplicate"
    expected = points(config, "Email Opened" if name == "open" else "Email Link Clicked")
    assert engagement(leads, config, event) == pytest.approx(before + expected)
    assert len([e for e in leads.lead_events(LEAD_ID) if e.source == "ses"]) == 1


def test_redelivered_click_judged_differently_later_still_counts_once(processor, leads, config, known_lead):
    # Given a click counted as human, then two more links clicked at once (the burst shows)
    links = [f"https://www.example.com/{page}" for page in ("guide", "pricing", "blog")]
    events = [a_click(link, seconds_after_send=80 + n) for n, link in enumerate(links)]
    for event in events:
        handle(processor, copy.deepcopy(event))
    score = engagement(leads, config, events[0])

    # When the first click is delivered again (now it would be judged part of the burst)
    outcome = handle(processor, events[0])

    # Then it is a duplicate and nothing changes
    assert outcome.action == "duplicate"
    assert engagement(leads, config, events[0]) == score


def test_repeated_bounce_is_already_suppressed(processor, leads, known_lead):
    # Given a permanent bounce handled once
    handle(processor, record("bounce"))

    # When it is delivered again
    outcome = handle(processor, record("bounce"))

    # Then nothing more changes
    assert outcome.action == "already_suppressed"
    assert consent(leads) == "bounced"


# --- the touch -------------------------------------------------------------------------------


def test_engagement_names_the_touch_it_answers(processor, leads, timelines, known_lead):
    # Given the touch TouchSender recorded for the guide step, without a variant
    touch = Touch(LEAD_ID, ENROLLMENT, "mql-revenue-teams", "guide", "email", KNOWN_SINCE, message_id=GUIDE_MESSAGE_ID)
    timelines.claim_touch(touch)
    event = record("open")
    event["detail"]["mail"]["tags"]["variant"] = ["none"]

    # When an open of that email is handled
    handle(processor, event)

    # Then the stored open names the touch and carries no variant
    [opened] = stored(leads, "Email Opened")
    assert opened.properties["touch"] == f"{ENROLLMENT}#guide"
    assert "variant" not in opened.properties


# --- the boundary ---------------------------------------------------------------------------


def test_parse_reads_the_guide_bounce():
    # Given the guide's Bounce record
    # When it is parsed
    feedback = parse_ses_event(record("bounce"))

    # Then the bounce, its recipient, times and first tag values are read
    assert (feedback.kind, feedback.message_id, feedback.recipients) == ("bounce", GUIDE_MESSAGE_ID, (ADDRESS,))
    assert (feedback.bounce_type, feedback.bounce_subtype) == ("Permanent", "General")
    assert feedback.timestamp == datetime(2017, 8, 5, 0, 41, 2, 669000, tzinfo=UTC).timestamp()
    assert feedback.sent_at == datetime(2017, 8, 5, 0, 40, 2, 12000, tzinfo=UTC).timestamp()
    assert feedback.tags["ses:configuration-set"] == "ConfigSet"
    assert feedback.tags["enrollment"] == ENROLLMENT


def test_parse_normalises_recipients():
    # Given a complaint naming its recipient with a display name and capitals
    event = record("complaint")
    event["detail"]["complaint"]["complainedRecipients"] = [{"emailAddress": "Ana <Recipient@Example.COM>"}]

    # When it is parsed
    feedback = parse_ses_event(event)

    # Then the recipient is the bare, lower-cased address
    assert feedback.recipients == (ADDRESS,)
    assert feedback.complaint_feedback_type == "abuse"


def _without(path: str):
    def change(event):
        *parents, last = path.split(".")
        target = event
        for key in parents:
            target = target[key]
        del target[last]

    return change


def _set(path: str, value: Any):
    def change(event):
        *parents, last = path.split(".")
        target = event
        for key in parents:
            target = target[key]
        target[last] = value

    return change


@pytest.mark.parametrize(
    ("name", "change", "field"),
    [
        ("bounce", _without("detail"), "detail"),
        ("bounce", _set("source", "aws.sns"), "source"),
        ("bounce", _set("detail-type", "Email Opened"), "detail-type"),
        ("bounce", _set("detail.eventType", "Bounced"), "detail.eventType"),
        ("bounce", _without("detail.mail"), "detail.mail"),
        ("bounce", _without("detail.mail.messageId"), "detail.mail.messageId"),
        ("bounce", _set("detail.mail.timestamp", "yesterday"), "detail.mail.timestamp"),
        ("bounce", _set("detail.mail.destination", "recipient@example.com"), "detail.mail.destination"),
        ("bounce", _set("detail.mail.tags", {"step": "guide"}), "detail.mail.tags.step"),
        ("bounce", _without("detail.bounce.bounceType"), "detail.bounce.bounceType"),
        ("bounce", _set("detail.bounce.bouncedRecipients", []), "detail.bounce.bouncedRecipients"),
        (
            "bounce",
            _set("detail.bounce.bouncedRecipients", [{"emailAddress": "nobody"}]),
            "detail.bounce.bouncedRecipients[0].emailAddress",
        ),
        ("open", _without("detail.open"), "detail.open"),
        ("open", _without("detail.open.timestamp"), "detail.open.timestamp"),
        ("click", _without("detail.click.link"), "detail.click.link"),
        ("click", _set("detail.click.timestamp", "2017-08-09T23:51:25"), "detail.click.timestamp"),
        ("complaint", _set("detail.complaint.complainedRecipients", None), "detail.complaint.complainedRecipients"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_malformed_record_is_rejected_naming_the_field(processor, known_lead, name, change, field):
    # Given an SES record with one field missing or wrong
    event = record(name)
    change(event)

    # When it is handled
    with pytest.raises(ValidationError) as raised:
        processor.handle(event, KNOWN_SINCE)

    # Then the error names the field
    assert raised.value.field == field


def test_event_pattern_routes_only_what_changes_leads():
    # Given the EventBridge rule pattern for the SES feedback consumer
    # Then it matches SES's own events of the five kinds that change a lead
    assert EVENT_PATTERN == {
        "source": ["aws.ses"],
        "detail-type": [
            "Email Bounced",
            "Email Complaint Received",
            "Email Opened",
            "Email Clicked",
            "Email Subscribed",
        ],
    }
