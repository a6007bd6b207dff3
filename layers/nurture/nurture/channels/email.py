"""Nurture email: render a touch from the user's templates, build the MIME
message, sign unsubscribe links and hand the message to SES.

Rendering happens here, not in SES: the user's templates live in
config/emails/ next to the rest of their configuration, and the local stack
(moto's SESv2) has no templates, suppression list or event destinations.
Jinja2, the stdlib `email` package and botocore are imported inside the
functions that need them, so importing this module costs nothing at cold start.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from nurture.core.errors import AuthenticationError, NurtureError, SettingsError

if TYPE_CHECKING:
    from nurture.config.loader import ContentTag
    from nurture.core.domain import Lead

HTML_TEMPLATE = "nurture.html.j2"
TEXT_TEMPLATE = "nurture.txt.j2"
UTM_SOURCE = "nurture"
UTM_MEDIUM = "email"

# Headers build_mime writes itself; extra headers may not replace them.
_MANAGED_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
    }
)
_HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
_CTA_LABELS = {
    "article": "Read the article",
    "blog": "Read the article",
    "case_study": "Read the customer story",
    "demo": "Take the tour",
    "white_paper": "Get the guide",
    "ebook": "Get the guide",
    "webinar": "Watch the webinar",
    "video": "Watch the video",
}

# Unsubscribe tokens: base64url(lead id) "." base64url(HMAC-SHA256 truncated to 128 bits).
# The context string keeps a MAC made with the same secret for another purpose
# from ever being a valid unsubscribe token.
_TOKEN_CONTEXT = b"nurture.unsubscribe.v1:"
_TOKEN_MAC_BYTES = 16
_TOKEN_MAX_CHARS = 512
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")

# SES message tags: the API reference allows only these characters, 256 at most.
_SES_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_SES_TAG_MAX_CHARS = 256


class EmailTemplateError(NurtureError):
    """A template (file or subject) does not render, or drops the legally required footer."""

    code = "EmailTemplateError"


class EmailRejectedError(NurtureError):
    """SES answered with an error, so nothing was sent: the caller may retry
    (throttling) or give up (e.g. MessageRejected); `aws_code` says which."""

    status = 502
    code = "EmailRejected"

    def __init__(self, message: str, aws_code: str = "", field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.aws_code = aws_code


@dataclass(frozen=True)
class CompanyInfo:
    """Who sends the email: the footer's sender identity and where links point."""

    name: str
    postal_address: str  # lines separated by newlines; shown in every footer (CAN-SPAM)
    sender: str  # the From address, e.g. "Acme Revenue Cloud <hello@example.com>"
    base_url: str  # the public API base that unsubscribe/preferences links start with


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


# --- rendering ------------------------------------------------------------------


def _autoescape(template_name: str | None) -> bool:
    # Subjects (from_string, no name) and text templates are not HTML.
    return template_name is not None and template_name.endswith((".html.j2", ".htm.j2", ".html", ".htm"))


@lru_cache(maxsize=8)
def _environment(templates_dir: str) -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        autoescape=_autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


@lru_cache(maxsize=256)
def _subject_template(templates_dir: str, subject: str) -> Any:
    return _environment(templates_dir).from_string(subject)


def one_line(value: Any) -> str:
    """`value` as a single line: control characters (CR, LF, tabs, line and
    paragraph separators) become spaces and runs of spaces collapse. What goes
    into a header can then never start a new one."""
    text = "" if value is None else str(value)
    cleaned = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in text)
    return " ".join(cleaned.split())


def tracked_url(url: str, *, campaign: str, content: str) -> str:
    """`url` with this touch's UTM parameters; the page's own query and fragment are kept."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"content links must be absolute http(s) URLs, not {url!r}")
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not k.startswith("utm_")]
    query += [
        ("utm_source", UTM_SOURCE),
        ("utm_medium", UTM_MEDIUM),
        ("utm_campaign", campaign),
        ("utm_content", content),
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


def render_touch(
    lead: Lead,
    content: ContentTag,
    subject: str,
    unsubscribe_url: str,
    preferences_url: str | None,
    company: CompanyInfo,
    templates_dir: str,
    *,
    track_id: str,
    step_id: str,
    variant: str | None = None,
) -> RenderedEmail:
    """Render one nurture email from `templates_dir`/nurture.{html,txt}.j2.

    Guarantees: lead fields are HTML-escaped in the HTML part; the subject is
    one line (its `{{ placeholders }}` see the same variables, unescaped); both
    parts carry the company's postal address and the unsubscribe link, or
    EmailTemplateError is raised rather than a non-compliant email rendered.
    An unknown variable in any template is an EmailTemplateError, never a blank.
    """
    if not content.url:
        raise ValueError(f"content {content.id!r} has no url: only sendable content can be emailed")
    address_lines = [line.strip() for line in company.postal_address.splitlines() if line.strip()]
    if not address_lines:
        raise EmailTemplateError("the company postal address is empty; every email must show it", "postal_address")
    if not unsubscribe_url:
        raise EmailTemplateError("every email needs an unsubscribe link", "unsubscribe_url")
    context: dict[str, Any] = {
        "first_name": one_line(lead.profile.get("first_name")) or "there",
        "last_name": one_line(lead.profile.get("last_name")),
        "lead_company": one_line(lead.profile.get("company")),
        "content_id": content.id,
        "content_kind": content.kind,
        "content_title": content.title,
        "content_summary": content.summary,
        "content_url": tracked_url(content.url, campaign=track_id, content=content.id),
        "cta_label": _CTA_LABELS.get(content.kind, "Read more"),
        "company_name": company.name,
        "company_address_lines": address_lines,
        "company_address": ", ".join(address_lines),
        "unsubscribe_url": unsubscribe_url,
        "preferences_url": preferences_url,
        "track_id": track_id,
        "step_id": step_id,
        "variant": variant,
    }
    templates_dir = str(templates_dir)
    environment = _environment(templates_dir)
    context["subject"] = one_line(_render("subject", lambda: _subject_template(templates_dir, subject), context))
    context["subject"] = context["subject"] or content.title
    html = _render(HTML_TEMPLATE, lambda: environment.get_template(HTML_TEMPLATE), context)
    text = _render(TEXT_TEMPLATE, lambda: environment.get_template(TEXT_TEMPLATE), context)
    _require_footer(html, text, unsubscribe_url, address_lines)
    return RenderedEmail(subject=context["subject"], html=html, text=text)


def _render(label: str, template: Any, context: Mapping[str, Any]) -> str:
    """Load (lazily, so a missing file is reported too) and render one template."""
    import jinja2

    try:
        return template().render(context)
    except jinja2.TemplateError as exc:
        raise EmailTemplateError(f"{label}: {type(exc).__name__}: {exc}", field=label) from exc


def _require_footer(html: str, text: str, unsubscribe_url: str, address_lines: list[str]) -> None:
    from markupsafe import escape

    for template, body, shown in (
        (TEXT_TEMPLATE, text, str),
        (HTML_TEMPLATE, html, lambda value: str(escape(value))),
    ):
        if shown(unsubscribe_url) not in body:
            raise EmailTemplateError(f"{template} must show the unsubscribe link ({{{{ unsubscribe_url }}}})", template)
        if not all(shown(line) in body for line in address_lines):
            raise EmailTemplateError(
                f"{template} must show the company postal address ({{{{ company_address_lines }}}})", template
            )


# --- MIME -----------------------------------------------------------------------


def build_mime(
    rendered: RenderedEmail,
    sender: str,
    recipient: str,
    unsubscribe_url: str,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """The raw message: multipart/alternative (text, then HTML), UTF-8 in
    quoted-printable, with RFC 8058 one-click unsubscribe headers. No
    Message-ID or Date: SES adds them."""
    from email.message import EmailMessage
    from email.policy import SMTP

    if not re.fullmatch(r"[!-~]+", unsubscribe_url) or "<" in unsubscribe_url or ">" in unsubscribe_url:
        raise ValueError("the unsubscribe URL must be printable ASCII without spaces or angle brackets")
    # refold_source="none": the raw List-Unsubscribe value goes out verbatim; the
    # default policy would RFC 2047-encode a long URL and break one-click.
    message = EmailMessage(policy=SMTP.clone(refold_source="none"))
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = one_line(rendered.subject)
    message.set_raw("List-Unsubscribe", f"<{unsubscribe_url}>")
    message.set_raw("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    for name, value in (headers or {}).items():
        if not _HEADER_NAME.match(name) or name.lower() in _MANAGED_HEADERS:
            raise ValueError(f"{name!r} cannot be set as an extra header")
        if one_line(value) != str(value).strip():
            raise ValueError(f"header {name} must be a single line")
        message[name] = str(value).strip()
    message.set_content(rendered.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="quoted-printable")
    for part in message.iter_parts():
        del part["MIME-Version"]  # belongs on the top level only
    return message.as_bytes()


# --- unsubscribe tokens ------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def unsubscribe_token(secret: str, lead_id: str) -> str:
    """An unguessable, URL-safe token naming `lead_id`, for unsubscribe links.

    It does not expire: an unsubscribe link must keep working for as long as
    the email sits in an inbox. Rotating `secret` invalidates every link sent.
    """
    if not secret:
        raise SettingsError("the unsubscribe signing secret is empty", field="unsubscribe_secret")
    if not lead_id:
        raise ValueError("lead_id is empty")
    mac = hmac.new(secret.encode(), _TOKEN_CONTEXT + lead_id.encode(), hashlib.sha256).digest()
    return f"{_b64(lead_id.encode())}.{_b64(mac[:_TOKEN_MAC_BYTES])}"


def verify_unsubscribe_token(secret: str, token: str) -> str:
    """The lead id a token was issued for; AuthenticationError (field "token")
    if it is malformed, forged, tampered with or signed with another secret.
    The comparison is constant-time."""
    if not isinstance(token, str) or len(token) > _TOKEN_MAX_CHARS or not _TOKEN_SHAPE.match(token):
        raise AuthenticationError("the unsubscribe link is malformed", field="token")
    try:
        lead_id = _unb64(token.split(".", 1)[0]).decode("utf-8")
    except (ValueError, UnicodeDecodeError) as exc:
        raise AuthenticationError("the unsubscribe link is malformed", field="token") from exc
    if not lead_id:
        raise AuthenticationError("the unsubscribe link is malformed", field="token")
    # Comparing whole tokens also rejects non-canonical encodings of a valid one.
    if not hmac.compare_digest(unsubscribe_token(secret, lead_id).encode(), token.encode()):
        raise AuthenticationError("the unsubscribe link is not valid", field="token")
    return lead_id


# --- SES --------------------------------------------------------------------------


def ses_tag(value: Any) -> str:
    """A message tag name or value SES accepts: [A-Za-z0-9_-], at most 256 characters."""
    cleaned = _SES_TAG_UNSAFE.sub("_", "" if value is None else str(value))[:_SES_TAG_MAX_CHARS]
    return cleaned or "none"


class SesEmailSender:
    """Sends a raw MIME message through SES v2 with a configuration set (so
    delivery, bounce and complaint events are published) and message tags.

    At most once per call: a botocore ClientError means SES refused the request
    and sent nothing, raised as EmailRejectedError so the caller may retry. Any
    other exception (timeout, dropped connection) is ambiguous — SES may have
    sent the email — and propagates untouched: the caller must not resend at
    once (TouchSender leaves its claim to lapse with its lease first).

    Under moto 5.2.5 (the local stack and tests), SESv2 `send_email` with Raw
    content reuses SES v1's `send_raw_email`, which requires the From address or
    its domain to be a verified identity: `sesv2.create_email_identity(
    EmailIdentity="hello@example.com")` (or `example.com`), or SES v1
    `verify_email_identity` / `verify_domain_identity`; otherwise it answers
    MessageRejected. moto ignores ConfigurationSetName (it need not exist) and
    EmailTags, and it appends the message's To/Cc/Bcc headers to the
    destinations it records. The message lands in
    `moto.ses.models.ses_backends[account][region].sent_messages`.
    """

    def __init__(self, client: Any, configuration_set: str, sender: str) -> None:
        self._client = client
        self._configuration_set = configuration_set
        self._sender = sender

    def send(self, raw: bytes, recipient: str, tags: Mapping[str, str]) -> str:
        """Send `raw` to `recipient`; returns the SES MessageId."""
        from botocore.exceptions import ClientError

        try:
            response = self._client.send_email(
                FromEmailAddress=self._sender,
                Destination={"ToAddresses": [recipient]},
                Content={"Raw": {"Data": raw}},
                ConfigurationSetName=self._configuration_set,
                EmailTags=[{"Name": ses_tag(name), "Value": ses_tag(value)} for name, value in tags.items()],
            )
        except ClientError as exc:
            error = exc.response.get("Error", {})
            aws_code = str(error.get("Code", ""))
            raise EmailRejectedError(
                f"SES did not send the email: {aws_code}: {error.get('Message', '')}", aws_code
            ) from exc
        return response["MessageId"]
