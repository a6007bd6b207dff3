"""The unsubscribe and preference use cases and the pages their links open.

A link in an email is fetched by mail scanners and link previewers, so a GET
only shows a confirmation page; the opt-out happens on POST — the page's
button or a mailbox provider's RFC 8058 one-click request.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from nurture.core.domain import Lead, lead_event
from nurture.core.errors import NotFoundError, ValidationError

if TYPE_CHECKING:
    from nurture.config.tracks import PreferenceOptions
    from nurture.core.ports import LeadEventPublisher, LeadStore

UNSUBSCRIBED = "unsubscribed"
LEAD_UNSUBSCRIBED = "lead.unsubscribed"


def unsubscribe(
    store: LeadStore, publisher: LeadEventPublisher, lead_id: str, now: float, reason: str = "one-click"
) -> bool:
    """Opt the lead out of marketing email and publish `lead.unsubscribed`.

    Returns False, and publishes nothing, if there is no such lead.
    Idempotent: unsubscribing again leaves the lead unsubscribed and publishes
    again (consumers dedupe on event_id). The consent is written first — it is
    what stops the timelines — so if publishing raises, the lead is already
    opted out and repeating the call publishes the event at least once.
    """
    if not store.set_consent(lead_id, UNSUBSCRIBED, now):
        return False
    event_id = f"{lead_id}-unsub-{int(now)}"
    publisher.publish([lead_event(LEAD_UNSUBSCRIBED, event_id, lead_id, now, reason=reason)])
    return True


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<style>
  body {{ margin: 0; padding: 48px 16px; background: #f3f4f6; color: #111827;
         font-family: -apple-system, BlinkMacSystemFont, "Segoe UI", Helvetica, Arial, sans-serif; }}
  main {{ max-width: 440px; margin: 0 auto; padding: 32px; background: #fff; border-radius: 8px; text-align: center; }}
  h1 {{ margin: 0 0 12px; font-size: 22px; }}
  p {{ margin: 0 0 24px; line-height: 1.5; color: #374151; }}
  fieldset {{ margin: 0 0 20px; padding: 0; border: 0; text-align: left; }}
  legend {{ margin-bottom: 8px; font-weight: 600; }}
  label {{ display: block; padding: 4px 0; }}
  .saved {{ color: #047857; font-weight: 600; }}
  .small {{ margin: 24px 0 0; font-size: 14px; }}
  button {{ padding: 12px 24px; border: 0; border-radius: 6px; background: #4f46e5; color: #fff;
           font-size: 16px; font-weight: 600; cursor: pointer; }}
</style>
</head>
<body>
<main>
{body}
</main>
</body>
</html>
"""


def confirmation_page(token: str, action_url: str, done: bool) -> str:
    """The HTML page behind an unsubscribe link: before (`done` False) a button
    that POSTs the token to `action_url`; after, the confirmation. Self-contained
    (no external assets) and every value is escaped."""
    if done:
        title = "You're unsubscribed"
        body = (
            f"<h1>{title}</h1>\n"
            "<p>You will no longer receive marketing email from us. "
            "Messages you ask for, such as receipts and password resets, still arrive.</p>"
        )
    else:
        title = "Unsubscribe from marketing email?"
        body = (
            f"<h1>{title}</h1>\n"
            "<p>Confirm below and we will stop sending you marketing email.</p>\n"
            f'<form method="post" action="{escape(action_url, quote=True)}">\n'
            f'<input type="hidden" name="token" value="{escape(token, quote=True)}">\n'
            '<input type="hidden" name="List-Unsubscribe" value="One-Click">\n'
            '<button type="submit">Unsubscribe</button>\n'
            "</form>"
        )
    return _PAGE.format(title=escape(title), body=body)


# --- the preference page ------------------------------------------------------------


def parse_preferences(body: str, options: PreferenceOptions, now: float) -> dict[str, Any]:
    """The preference form (application/x-www-form-urlencoded) as the lead's
    preferences: `topic` repeated for each topic kept, `frequency` ("regular" or
    a configured id), `pause` (0 or a configured number of days). A field that
    names something not offered is a ValidationError naming it."""
    form = parse_qs(body, keep_blank_values=True)
    kept = form.get("topic", [])
    for topic in kept:
        if topic not in options.topics:
            raise ValidationError(f"{topic!r} is not a topic on the preference page", field="topic")
    preferences: dict[str, Any] = {}
    topics_off = sorted(set(options.topics) - set(kept))
    if topics_off:
        preferences["topics_off"] = topics_off
    frequency = _single(form, "frequency", "regular")
    if frequency != "regular":
        if options.frequency(frequency) is None:
            raise ValidationError(f"{frequency!r} is not a frequency on the preference page", field="frequency")
        preferences["frequency"] = frequency
    pause = _single(form, "pause", "0")
    if pause != "0":
        if not (pause.isascii() and pause.isdigit()) or int(pause) not in options.pause_days:
            raise ValidationError(f"{pause!r} is not a pause on the preference page", field="pause")
        preferences["paused_until"] = now + int(pause) * 86400
    return preferences


def _single(form: dict[str, list[str]], name: str, default: str) -> str:
    values = form.get(name, [default])
    if len(values) != 1:
        raise ValidationError(f"give {name} once", field=name)
    return values[0].strip() or default


class ConsentKeeper:
    """The unsubscribe and preference links of every email: opt-outs and the
    lead's own choices, on the lead and on the bus."""

    def __init__(self, store: LeadStore, publisher: LeadEventPublisher) -> None:
        self.store = store
        self.publisher = publisher

    def lead(self, lead_id: str) -> Lead:
        """The lead a link belongs to, as it is now; NotFoundError if it is gone."""
        lead = self.store.get_leads([lead_id], consistent=True).get(lead_id)
        if lead is None:
            raise NotFoundError("no such lead", field="token")
        return lead

    def unsubscribe(self, lead_id: str, now: float, reason: str = "one-click") -> bool:
        """See `unsubscribe`."""
        return unsubscribe(self.store, self.publisher, lead_id, now, reason)

    def save_preferences(self, lead_id: str, preferences: dict[str, Any], now: float) -> None:
        """Replace the lead's preferences; its timelines apply them at their next
        step (topics turned off end the tracks about them, a pause or a lower
        frequency defers the next email). NotFoundError if there is no such lead."""
        if not self.store.set_preferences(lead_id, preferences, now):
            raise NotFoundError("no such lead", field="token")


def preference_page(
    options: PreferenceOptions, preferences: dict[str, Any], now: float, unsubscribe_url: str, *, saved: bool = False
) -> str:
    """The page behind the preference link: the lead's current choices as a form
    that POSTs back to the same address, and a way out of all marketing email."""
    topics_off = set(preferences.get("topics_off") or ())
    chosen = preferences.get("frequency") or "regular"
    paused_until = float(preferences.get("paused_until") or 0)
    rows = ["<h1>Your email preferences</h1>"]
    if saved:
        rows.append('<p class="saved" role="status">Saved. Your choices apply from the next email.</p>')
    rows.append('<form method="post" action="">')
    if options.topics:
        rows.append("<fieldset><legend>Topics you want to hear about</legend>")
        for topic, label in options.topics.items():
            checked = "" if topic in topics_off else " checked"
            rows.append(
                f'<label><input type="checkbox" name="topic" value="{escape(topic, quote=True)}"{checked}> '
                f"{escape(label)}</label>"
            )
        rows.append("</fieldset>")
    if options.frequencies:
        rows.append("<fieldset><legend>How often</legend>")
        choices = [("regular", "As often as there is something relevant")]
        choices += [(f.id, f.label) for f in options.frequencies]
        for value, label in choices:
            checked = " checked" if value == chosen else ""
            rows.append(
                f'<label><input type="radio" name="frequency" value="{escape(value, quote=True)}"{checked}> '
                f"{escape(label)}</label>"
            )
        rows.append("</fieldset>")
    if options.pause_days:
        rows.append("<fieldset><legend>Take a break</legend>")
        if paused_until > now:
            until = datetime.fromtimestamp(paused_until, UTC).strftime("%d %B %Y")
            rows.append(f"<p>Paused until {escape(until)}. Choose again to change it.</p>")
        rows.append('<label><input type="radio" name="pause" value="0" checked> No pause</label>')
        for days in options.pause_days:
            rows.append(f'<label><input type="radio" name="pause" value="{days}"> Pause for {days} days</label>')
        rows.append("</fieldset>")
    rows.append('<button type="submit">Save preferences</button>')
    rows.append("</form>")
    rows.append(
        f'<p class="small">Rather hear nothing? <a href="{escape(unsubscribe_url, quote=True)}">'
        "Unsubscribe from all marketing email</a>.</p>"
    )
    return _PAGE.format(title="Your email preferences", body="\n".join(rows))
