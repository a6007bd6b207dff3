"""Nurture email: rendering from config/emails/, the MIME message, unsubscribe
tokens and the SES sender (the only tests here that use moto)."""

from __future__ import annotations

import email
import json
import re
from email import policy
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from nurture.channels.email import (
    HTML_TEMPLATE,
    TEXT_TEMPLATE,
    CompanyInfo,
    EmailRejectedError,
    EmailTemplateError,
    RenderedEmail,
    SesEmailSender,
    build_mime,
    render_touch,
    unsubscribe_token,
    verify_unsubscribe_token,
)
from nurture.config.loader import ContentTag
from nurture.core.domain import Lead
from nurture.core.errors import AuthenticationError
from tests.conftest import CONFIG_DIR

TEMPLATES_DIR = str(CONFIG_DIR / "emails")
SECRET = "unsubscribe-signing-secret"
UNSUBSCRIBE_URL = "https://api.example.com/unsubscribe/cDE.AvrcZQK9gt0osvoLTXeRBA"
COMPANY = CompanyInfo(
    name="Acme Revenue Cloud",
    postal_address="Acme, Inc.\n548 Market St #12345\nSan Francisco, CA 94104, USA",
    sender="Acme Revenue Cloud <hello@example.com>",
    base_url="https://api.example.com",
)
GUIDE = ContentTag(
    id="wp-revenue-analytics-guide",
    kind="white_paper",
    title="The revenue analytics buyer's guide",
    events=frozenset({"Asset Downloaded"}),
    conditions=(),
    stages=("solution_exploration",),
    topics=("forecasting",),
    url="https://www.example.com/resources/revenue-analytics-buyers-guide",
    summary="A 12-page guide to what revenue analytics should do for your team.",
)


def a_lead(**profile) -> Lead:
    return Lead(lead_id="p0123456789abcdef", email="ana@globex.com", profile=profile)


def render(
    lead: Lead | None = None,
    content: ContentTag = GUIDE,
    subject: str = "The revenue analytics buyer's guide",
    preferences_url: str | None = None,
    templates_dir: str = TEMPLATES_DIR,
) -> RenderedEmail:
    return render_touch(
        lead or a_lead(first_name="Ana"),
        content,
        subject,
        UNSUBSCRIBE_URL,
        preferences_url,
        COMPANY,
        templates_dir,
        track_id="mql-revenue-teams",
        step_id="guide",
        variant="plain",
    )


def cta_link(rendered: RenderedEmail) -> str:
    return re.search(r"Get the guide: (\S+)", rendered.text).group(1)


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)


# --- rendering ------------------------------------------------------------------


def test_email_greets_the_lead_by_first_name():
    # Given a lead whose first name is known
    lead = a_lead(first_name="Ana")

    # When the touch is rendered
    rendered = render(lead)

    # Then both parts greet her by name
    assert "Hi Ana," in rendered.text
    assert "Hi Ana," in rendered.html


def test_email_greets_there_when_the_first_name_is_unknown():
    # Given a lead with no first name
    lead = a_lead()

    # When the touch is rendered
    rendered = render(lead)

    # Then the greeting falls back to "there"
    assert "Hi there," in rendered.text
    assert "Hi there," in rendered.html


def test_lead_fields_are_escaped_in_the_html_part():
    # Given a lead whose first name and company are markup
    lead = a_lead(first_name="<script>alert(1)</script>", company='"><img src=x onerror=alert(1)>')

    # When the touch is rendered
    rendered = render(lead)

    # Then the HTML part shows them as text, never as markup
    assert "<script>" not in rendered.html
    assert "<img" not in rendered.html
    assert "Hi &lt;script&gt;alert(1)&lt;/script&gt;," in rendered.html


def test_email_shows_the_content_title_and_summary():
    # Given a piece of content with a title and summary
    # When the touch is rendered
    rendered = render()

    # Then both parts show them (the HTML one escaped)
    assert GUIDE.title in rendered.text
    assert GUIDE.summary in rendered.text
    assert "The revenue analytics buyer&#39;s guide" in rendered.html
    assert GUIDE.summary in rendered.html


def test_call_to_action_links_to_the_content_with_utm_parameters():
    # Given content at a plain URL
    # When the touch is rendered for the mql-revenue-teams track
    link = cta_link(render())

    # Then the link goes to the content, tagged with the track and the content id
    parts = urlsplit(link)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == GUIDE.url
    assert parse_qs(parts.query) == {
        "utm_source": ["nurture"],
        "utm_medium": ["email"],
        "utm_campaign": ["mql-revenue-teams"],
        "utm_content": ["wp-revenue-analytics-guide"],
    }


def test_call_to_action_keeps_the_pages_own_query_and_fragment():
    # Given content whose URL already has a query, a stale UTM tag and a fragment
    content = ContentTag(**{**GUIDE.__dict__, "url": "https://www.example.com/guide?lang=en&utm_source=blog#pricing"})

    # When the touch is rendered
    link = cta_link(render(content=content))

    # Then the page's query and fragment survive and the UTM tags are this touch's
    parts = urlsplit(link)
    query = parse_qs(parts.query)
    assert query["lang"] == ["en"]
    assert query["utm_source"] == ["nurture"]
    assert parts.fragment == "pricing"


def test_call_to_action_link_is_escaped_in_the_html_part():
    # Given the tracked link, which has several query parameters
    # When the touch is rendered
    rendered = render()

    # Then the HTML part's href escapes the ampersands between them
    assert 'href="' + cta_link(rendered).replace("&", "&amp;") + '"' in rendered.html


def test_footer_with_postal_address_and_unsubscribe_link_is_in_both_parts():
    # Given the company's postal address and an unsubscribe link
    # When the touch is rendered
    rendered = render()

    # Then the text part and the HTML part both carry every address line and the link
    for line in COMPANY.postal_address.splitlines():
        assert line in rendered.text
        assert line in rendered.html
    assert f"Unsubscribe: {UNSUBSCRIBE_URL}" in rendered.text
    assert f'href="{UNSUBSCRIBE_URL}"' in rendered.html


def test_preferences_link_appears_only_when_given():
    # Given one touch with a preferences page and one without
    with_page = render(preferences_url="https://api.example.com/preferences/abc")
    without_page = render(preferences_url=None)

    # Then only the first offers it
    assert "https://api.example.com/preferences/abc" in with_page.text
    assert 'href="https://api.example.com/preferences/abc"' in with_page.html
    assert "preferences" not in without_page.text.lower()
    assert "preferences" not in without_page.html.lower()


def test_subject_placeholders_are_filled_without_html_escaping():
    # Given a subject naming the lead, whose name has characters HTML would escape
    lead = a_lead(first_name="Zoë & Co")

    # When the touch is rendered
    rendered = render(lead, subject="{{ first_name }}, your guide to {{ content_title }}")

    # Then the subject is filled in as plain text
    assert rendered.subject == "Zoë & Co, your guide to The revenue analytics buyer's guide"


def test_subject_is_stripped_of_line_breaks():
    # Given a first name that tries to smuggle a header into the subject
    lead = a_lead(first_name="Ana\r\nBcc: victim@example.org")

    # When the touch is rendered
    rendered = render(lead, subject="Hi {{ first_name }}\n, your guide")

    # Then the subject is a single line
    assert "\r" not in rendered.subject
    assert "\n" not in rendered.subject
    assert rendered.subject == "Hi Ana Bcc: victim@example.org , your guide"


def test_unknown_subject_placeholder_is_a_template_error():
    # Given a subject naming a variable that does not exist
    # When the touch is rendered
    with pytest.raises(EmailTemplateError) as raised:
        render(subject="Hi {{ frist_name }}")

    # Then the error names the subject rather than sending a blank
    assert raised.value.field == "subject"


def test_template_without_the_unsubscribe_link_is_refused(tmp_path: Path):
    # Given templates whose HTML part dropped the unsubscribe link
    (tmp_path / TEXT_TEMPLATE).write_text((Path(TEMPLATES_DIR) / TEXT_TEMPLATE).read_text())
    (tmp_path / HTML_TEMPLATE).write_text("<p>Hi {{ first_name }}</p><p>{{ company_address }}</p>")

    # When a touch is rendered with them
    with pytest.raises(EmailTemplateError) as raised:
        render(templates_dir=str(tmp_path))

    # Then rendering fails, naming the template
    assert raised.value.field == HTML_TEMPLATE


# --- MIME -----------------------------------------------------------------------


def test_mime_is_multipart_alternative_with_text_then_html():
    # Given a rendered touch
    rendered = render()

    # When it is built into a MIME message
    message = parse(build_mime(rendered, COMPANY.sender, "ana@globex.com", UNSUBSCRIBE_URL, {}))

    # Then it holds the text part, then the HTML part, both UTF-8 (with SMTP's CRLF line ends)
    assert message.get_content_type() == "multipart/alternative"
    text_part, html_part = message.iter_parts()
    assert (text_part.get_content_type(), text_part.get_content_charset()) == ("text/plain", "utf-8")
    assert (html_part.get_content_type(), html_part.get_content_charset()) == ("text/html", "utf-8")
    assert text_part.get_content().replace("\r\n", "\n") == rendered.text
    assert html_part.get_content().replace("\r\n", "\n") == rendered.html


def test_mime_addresses_the_message():
    # Given a rendered touch with a non-ASCII subject
    rendered = RenderedEmail(subject="José, your guide", html="<p>x</p>", text="x")

    # When it is built into a MIME message
    message = parse(build_mime(rendered, COMPANY.sender, "ana@globex.com", UNSUBSCRIBE_URL, {}))

    # Then sender, recipient and subject read back as given
    assert message["From"] == COMPANY.sender
    assert message["To"] == "ana@globex.com"
    assert message["Subject"] == "José, your guide"


def test_mime_has_one_click_unsubscribe_headers():
    # Given a rendered touch and a long unsubscribe URL
    long_url = "https://api.example.com/prod/unsubscribe/" + "A" * 60 + "." + "B" * 22

    # When it is built into a MIME message
    raw = build_mime(render(), COMPANY.sender, "ana@globex.com", long_url, {})

    # Then it carries RFC 8058's headers verbatim on one line each, never RFC 2047-encoded
    assert f"\r\nList-Unsubscribe: <{long_url}>\r\n".encode() in raw
    assert b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in raw


def test_mime_carries_extra_headers():
    # Given a header naming the touch
    headers = {"X-Nurture-Touch": "mql-revenue-teams-p0123456789abcdef-1#guide"}

    # When the message is built with it
    message = parse(build_mime(render(), COMPANY.sender, "ana@globex.com", UNSUBSCRIBE_URL, headers))

    # Then the header is on the message
    assert message["X-Nurture-Touch"] == "mql-revenue-teams-p0123456789abcdef-1#guide"


def test_mime_refuses_an_extra_header_with_a_line_break():
    # Given an extra header value that would start another header
    headers = {"X-Nurture-Touch": "t1\r\nBcc: victim@example.org"}

    # When the message is built, Then it is refused
    with pytest.raises(ValueError):
        build_mime(render(), COMPANY.sender, "ana@globex.com", UNSUBSCRIBE_URL, headers)


def test_mime_refuses_an_extra_header_that_replaces_a_managed_one():
    # Given extra headers trying to set the recipient list
    headers = {"Bcc": "victim@example.org"}

    # When the message is built, Then it is refused
    with pytest.raises(ValueError):
        build_mime(render(), COMPANY.sender, "ana@globex.com", UNSUBSCRIBE_URL, headers)


def test_mime_is_seven_bit_clean():
    # Given a touch full of non-ASCII text
    rendered = render(a_lead(first_name="Zoë"), subject="Für {{ first_name }}")

    # When it is built into a MIME message
    raw = build_mime(rendered, COMPANY.sender, "ana@globex.com", UNSUBSCRIBE_URL, {})

    # Then every byte is ASCII (quoted-printable bodies, encoded-word subject)
    assert raw.isascii()
    assert parse(raw)["Subject"] == "Für Zoë"


# --- unsubscribe tokens -------------------------------------------------------------


def test_unsubscribe_token_round_trips_to_the_lead_id():
    # Given a token issued for a lead
    token = unsubscribe_token(SECRET, "p0123456789abcdef")

    # When it is verified
    lead_id = verify_unsubscribe_token(SECRET, token)

    # Then it names that lead
    assert lead_id == "p0123456789abcdef"


def test_unsubscribe_token_is_url_safe_and_carries_at_least_128_bits_of_mac():
    # Given a token
    token = unsubscribe_token(SECRET, "p0123456789abcdef")

    # Then it is URL-safe base64 without padding, and its MAC part is at least 16 bytes
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", token)
    mac_part = token.split(".")[1]
    assert len(mac_part) * 6 // 8 >= 16


def test_token_signed_with_another_secret_is_rejected():
    # Given a token forged by someone who knows the lead id but not the secret
    forged = unsubscribe_token("guessed-secret", "p0123456789abcdef")

    # When it is verified, Then it is rejected, naming the token
    with pytest.raises(AuthenticationError) as raised:
        verify_unsubscribe_token(SECRET, forged)
    assert raised.value.field == "token"


def test_tampered_token_is_rejected():
    # Given a valid token with one character of its MAC changed
    token = unsubscribe_token(SECRET, "p0123456789abcdef")
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")

    # When it is verified, Then it is rejected
    with pytest.raises(AuthenticationError):
        verify_unsubscribe_token(SECRET, tampered)


def test_token_of_one_lead_cannot_unsubscribe_another():
    # Given Ana's token with its lead part swapped for Bob's
    ana_token = unsubscribe_token(SECRET, "p-ana")
    bob_part = unsubscribe_token(SECRET, "p-bob").split(".")[0]
    swapped = bob_part + "." + ana_token.split(".")[1]

    # When it is verified, Then it is rejected
    with pytest.raises(AuthenticationError):
        verify_unsubscribe_token(SECRET, swapped)


@pytest.mark.parametrize("token", ["", "no-dot", "a.b.c", "!!.??", "cDE.", ".AvrcZQK9gt0osvoLTXeRBA", "x" * 600 + ".y"])
def test_malformed_token_is_rejected(token: str):
    # Given something that is not a token at all
    # When it is verified, Then it is rejected, naming the token
    with pytest.raises(AuthenticationError) as raised:
        verify_unsubscribe_token(SECRET, token)
    assert raised.value.field == "token"


# --- SES (moto) -----------------------------------------------------------------------


@pytest.fixture
def sesv2():
    """A moto SESv2 client with the sender's address verified, as moto requires."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("sesv2", region_name="us-east-1")
        client.create_email_identity(EmailIdentity="hello@example.com")
        yield client


def sent_by_moto() -> list:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    return ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages


def sent_requests(client) -> list[dict]:
    """The SendEmail request bodies as they go on the wire (moto itself drops
    the configuration set and the tags)."""
    bodies: list[dict] = []
    client.meta.events.register(
        "before-call.sesv2.SendEmail", lambda params, **_: bodies.append(json.loads(params["body"]))
    )
    return bodies


def test_ses_sender_sends_the_raw_message(sesv2):
    # Given a built message and a sender on the verified address
    raw = build_mime(render(), COMPANY.sender, "ana@globex.com", UNSUBSCRIBE_URL, {"X-Nurture-Touch": "t1#guide"})
    sender = SesEmailSender(sesv2, "nurture-marketing", COMPANY.sender)

    # When it is sent
    message_id = sender.send(raw, "ana@globex.com", {"track": "mql-revenue-teams"})

    # Then SES stored exactly that message, for that recipient, under the returned id
    (stored,) = sent_by_moto()
    assert stored.id == message_id
    assert "ana@globex.com" in stored.destinations
    assert parse(stored.raw_data.encode())["X-Nurture-Touch"] == "t1#guide"


def test_ses_sender_passes_the_configuration_set_and_sanitised_tags(sesv2):
    # Given tags whose values hold characters SES does not allow
    requests = sent_requests(sesv2)
    sender = SesEmailSender(sesv2, "nurture-marketing", COMPANY.sender)
    raw = build_mime(render(), COMPANY.sender, "ana@globex.com", UNSUBSCRIBE_URL, {})

    # When the email is sent
    sender.send(raw, "ana@globex.com", {"track": "mql.revenue teams", "touch": "mql-p1-1#guide", "variant": ""})

    # Then the request names the configuration set and carries SES-safe tags
    (request,) = requests
    assert request["ConfigurationSetName"] == "nurture-marketing"
    assert request["FromEmailAddress"] == COMPANY.sender
    assert request["EmailTags"] == [
        {"Name": "track", "Value": "mql_revenue_teams"},
        {"Name": "touch", "Value": "mql-p1-1_guide"},
        {"Name": "variant", "Value": "none"},
    ]


def test_ses_rejection_is_a_typed_error(sesv2):
    # Given a sender whose address SES has not verified
    sender = SesEmailSender(sesv2, "nurture-marketing", "Mallory <mallory@unverified.example>")
    raw = build_mime(render(), "Mallory <mallory@unverified.example>", "ana@globex.com", UNSUBSCRIBE_URL, {})

    # When it sends, Then SES's refusal is an EmailRejectedError naming SES's code, and nothing was stored
    with pytest.raises(EmailRejectedError) as raised:
        sender.send(raw, "ana@globex.com", {})
    assert raised.value.aws_code == "MessageRejected"
    assert sent_by_moto() == []
