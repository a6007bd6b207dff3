"""The unsubscribe use case and the page an unsubscribe link opens.

A link in an email is fetched by mail scanners and link previewers, so a GET
only shows a confirmation page; the opt-out happens on POST — the page's
button or a mailbox provider's RFC 8058 one-click request.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nurture.store import LeadStore
    from nurture.track import LeadEventPublisher

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
    publisher.publish(
        [
            {
                "id": event_id,
                "type": LEAD_UNSUBSCRIBED,
                "detail": {
                    "event_id": event_id,
                    "lead_id": lead_id,
                    "reason": reason,
                    "occurred_at": datetime.fromtimestamp(now, UTC).isoformat(),
                },
            }
        ]
    )
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
