"""Retargeting audiences: loading audiences.yaml with precise errors, who is a
member, how leads are normalised and hashed per platform, mirror diffs, the
retargeting-step hand-off, and syncing through the adapters to local fakes."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from nurture.channels.audiences import (
    AudienceSync,
    MirrorDiff,
    UnknownAudienceError,
    e164,
    handoff,
    hashed_identity,
    lead_diff,
    members,
    mirror_diff,
    normalise_email,
    why_not,
)
from nurture.config.audiences import DEFAULT_EXCLUDE_LIFECYCLE, load_audiences, undefined_audiences
from nurture.core.domain import HashedIdentity, Lead
from nurture.core.errors import ConfigError
from tests.conftest import CONFIG_DIR
from tests.unit.fake_ad_platforms import (
    adapters_to,
    revenue_team_platforms,
)

TOKEN = "token-current"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def lead(lead_id: str = "l1", **fields: Any) -> Lead:
    """A subscribed, warm, A-fit revenue-ops lead; `fields` override."""
    profile = {"persona": "revops", "country": "us", "industry": "software", **fields.pop("profile", {})}
    defaults: dict[str, Any] = {
        "email": f"{lead_id}@example.com",
        "lifecycle": "warm",
        "fit_grade": "A",
        "consent": "subscribed",
    }
    return Lead(lead_id=lead_id, profile=profile, **{**defaults, **fields})


def evaluator(lead_id: str = "l1", **fields: Any) -> Lead:
    """A lead building requirements who read forecasting content."""
    defaults = {"buying_stage": "requirements_building", "interests": {"forecasting": [1.5, 0.0]}}
    return lead(lead_id, **{**defaults, **fields})


@pytest.fixture(scope="module")
def audiences():
    return load_audiences(CONFIG_DIR)


def edit(config_dir: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = config_dir / "audiences.yaml"
    document = yaml.safe_load(path.read_text())
    change(document)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def load_error(config_dir: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_audiences(config_dir)
    return caught.value


# --- loading --------------------------------------------------------------------------


def test_shipped_audiences_cover_every_retargeting_step(audiences, config):
    # Given the shipped audiences.yaml and tracks.yaml
    # Then every audience a retargeting step names is defined
    assert undefined_audiences(audiences, config.tracks) == []
    assert {"nurture-revenue-teams", "recycled-leads", "pricing-visitors"} <= set(audiences)
    # and the forecasting example reads as intended
    forecasting = audiences["forecasting-evaluators"]
    assert forecasting.min_buying_stage == "requirements_building"
    assert forecasting.interests == {"forecasting"}
    assert set(forecasting.platforms) == {"google", "linkedin"}
    google = forecasting.platforms["google"]
    assert (google.operating_account.account_type, google.operating_account.account_id) == ("GOOGLE_ADS", "1234567890")


def test_audiences_leave_customers_and_sales_handoffs_out_by_default(audiences):
    # Given an audience that does not set exclude_lifecycle
    # Then customers, hot leads and opportunities are excluded
    assert audiences["pricing-visitors"].exclude_lifecycle == set(DEFAULT_EXCLUDE_LIFECYCLE)


@pytest.mark.parametrize(
    ("change", "path", "reason"),
    [
        (lambda d: d["audiences"][0]["where"].update(title="VP"), "audiences[0].where.title", "not a lead field"),
        (
            lambda d: d["audiences"][3]["where"].update(buying_stage={"at_least": "ready"}),
            "audiences[3].where.buying_stage.at_least",
            "is not one of",
        ),
        (
            lambda d: d["audiences"][3]["where"].update(interests=["forecasting", "crypto"]),
            "audiences[3].where.interests[1]",
            "no content in content.yaml has the topic 'crypto'",
        ),
        (
            lambda d: d["audiences"][1]["where"].update(lifecycle="recycle"),
            "audiences[1].where.lifecycle",
            "'recycle' is not one of",
        ),
        (
            lambda d: d["audiences"][0]["where"].update(country={"in_list": "core_countries"}),
            "audiences[0].where.country",
            "no lists",
        ),
        (lambda d: d["audiences"][0]["platforms"].update(tiktok={}), "audiences[0].platforms.tiktok", "unknown key"),
        (
            lambda d: d["audiences"][0]["platforms"]["meta"].update(audience_id="abc"),
            "audiences[0].platforms.meta.audience_id",
            "numeric id",
        ),
        (
            lambda d: d["audiences"][0]["platforms"]["google"]["operating_account"].update(type="ADWORDS"),
            "audiences[0].platforms.google.operating_account.type",
            "is not one of",
        ),
        (
            lambda d: d["audiences"][0].update(exclude_lifecycle=["customers"]),
            "audiences[0].exclude_lifecycle[0]",
            "is not one of",
        ),
        (lambda d: d["audiences"][1].update(id="nurture-revenue-teams"), "audiences[1].id", "duplicate audience id"),
        (lambda d: d["audiences"][2].update(platforms={}), "audiences[2].platforms", "name at least one platform"),
    ],
)
def test_config_errors_name_the_file_the_path_and_the_reason(config_dir, change, path, reason):
    # Given an audiences.yaml with one mistake
    edit(config_dir, change)

    # When it is loaded
    error = load_error(config_dir)

    # Then the error says where and what
    assert (error.file, error.path) == ("audiences.yaml", path)
    assert reason in error.reason


# --- membership ---------------------------------------------------------------------------


def test_requirements_building_or_later_and_interested_is_a_member(audiences):
    # Given the "requirements building or later, interested in forecasting" audience
    forecasting = audiences["forecasting-evaluators"]

    # Then leads at or after requirements building are in, earlier ones are not
    assert members(forecasting, evaluator(buying_stage="requirements_building"))
    assert members(forecasting, evaluator(buying_stage="supplier_selection"))
    assert not members(forecasting, evaluator(buying_stage="solution_exploration"))
    assert not members(forecasting, evaluator(buying_stage=None))
    # and without an interest in forecasting it is not
    assert why_not(forecasting, evaluator(interests={"pricing": [2.0, 0.0]})) == "no interest in forecasting"


def test_customers_and_sales_handoffs_are_not_members(audiences):
    forecasting = audiences["forecasting-evaluators"]
    for stage in ("customer", "hot", "opportunity"):
        assert why_not(forecasting, evaluator(lifecycle=stage)) == f"lead is {stage}"


def test_only_subscribed_unmerged_leads_are_members(audiences):
    revenue_teams = audiences["nurture-revenue-teams"]
    assert members(revenue_teams, lead())
    assert why_not(revenue_teams, lead(consent="unsubscribed")) == "lead unsubscribed"
    assert why_not(revenue_teams, lead(consent="bounced")) == "lead bounced"
    assert why_not(revenue_teams, lead(merged_into="l9")) == "lead merged"


def test_where_conditions_use_the_lead_profile(audiences):
    revenue_teams = audiences["nurture-revenue-teams"]
    assert not members(revenue_teams, lead(profile={"persona": "finance"}))
    assert not members(revenue_teams, lead(fit_grade="C"))
    assert members(audiences["recycled-leads"], lead(lifecycle="recycled"))


# --- normalisation and hashing ----------------------------------------------------------------


def test_emails_are_trimmed_and_lower_cased_before_hashing():
    # Given a messy address
    messy = " John.Doe@Example.com "

    # Then every platform hashes "john.doe@example.com"
    for platform in ("meta", "google", "linkedin"):
        identity = hashed_identity(lead(email=messy, profile={"phone": None}), platform)
        assert identity == HashedIdentity(email=sha("john.doe@example.com"))
    assert sha("test@example.com") == "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"


def test_google_drops_dots_and_plus_suffix_of_gmail_addresses_only():
    assert normalise_email("John.Doe+ads@GoogleMail.com", "google") == "johndoe@googlemail.com"
    assert normalise_email("j.doe@gmail.com", "google") == "jdoe@gmail.com"
    assert normalise_email("user.name+NYC@Example.com", "google") == "user.name+nyc@example.com"
    # Meta and LinkedIn document only trimming and lower-casing
    assert normalise_email("John.Doe+ads@GoogleMail.com", "meta") == "john.doe+ads@googlemail.com"
    assert normalise_email("not-an-address", "meta") is None


@pytest.mark.parametrize(
    ("phone", "country", "expected"),
    [
        ("(415) 555-0100", "us", "+14155550100"),
        ("1-415-555-0100", "us", "+14155550100"),
        ("415.555.0100 ext. 12", "ca", "+14155550100"),
        ("020 7183 8750", "gb", "+442071838750"),
        ("+44 (0)20 7183 8750", None, "+442071838750"),
        ("0044 20 7183 8750", "us", "+442071838750"),
        ("030 1234567", "de", "+49301234567"),
        ("06 1234 5678", "it", "+390612345678"),  # Italian numbers keep their 0 after +39
        # countries a hand-written table of calling codes did not know
        ("(11) 91234-5678", "br", "+5511912345678"),
        ("0 21 11 91234-5678", "br", "+5511912345678"),  # trunk 0 and carrier code 21 dropped
        ("55 1234 5678", "mx", "+525512345678"),
        ("082 123 4567", "za", "+27821234567"),
        ("0803 123 4567", "ng", "+2348031234567"),
        ("010-1234-5678", "kr", "+821012345678"),
        ("+52 55 1234 5678", "us", "+525512345678"),  # written internationally: the profile country does not matter
        # what no numbering plan allows, or a national number with no country to read it in
        ("555-0100", "us", None),
        ("1234567890", "us", None),  # no area code 123
        ("+1 555 0100", None, None),
        ("020 7183 8750", None, None),
        ("020 7183 8750", "zz", None),
        ("020 7183 8750", "United Kingdom", None),
    ],
)
def test_phones_become_e164_using_the_profile_country(phone, country, expected):
    assert e164(phone, country) == expected


def test_reading_phone_numbers_costs_a_cold_start_nothing_until_one_is_read():
    # Given a fresh interpreter that imports the audiences module, as a handler's cold start does
    script = (
        "import sys; import nurture.channels.audiences as a; before = 'phonenumbers' in sys.modules; "
        "a.e164('020 7183 8750', 'gb'); print(before, 'phonenumbers' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)

    # Then the numbering plans are loaded when the first number is read, not before
    assert result.stdout.split() == ["False", "True"]


def test_each_platform_gets_the_phone_in_its_documented_form():
    # Given a US lead with a national phone number
    person = lead(email="ana@example.com", profile={"phone": "(415) 555-0100", "country": "us"})

    # Then Google hashes E.164 with +, Meta the digits, LinkedIn matches on email only
    assert hashed_identity(person, "google").phone == sha("+14155550100")
    assert hashed_identity(person, "meta").phone == sha("14155550100")
    assert hashed_identity(person, "linkedin") == HashedIdentity(email=sha("ana@example.com"))
    # ... and so for a lead anywhere, its national number read in its profile country
    person = lead(email="bia@example.com.br", profile={"phone": "(11) 91234-5678", "country": "br"})
    assert hashed_identity(person, "google").phone == sha("+5511912345678")
    assert hashed_identity(person, "meta").phone == sha("5511912345678")


def test_a_lead_with_nothing_to_match_on_has_no_identity():
    assert hashed_identity(lead(email=None, profile={"phone": "555"}), "meta") is None


# --- mirror diff ----------------------------------------------------------------------------


def test_mirror_adds_newcomers_and_removes_leavers(audiences):
    # Given four leads sent last time, one of which unsubscribed and one became a customer
    forecasting = audiences["forecasting-evaluators"]
    stays, unsubscribed, customer, newcomer = (
        evaluator("stays"),
        evaluator("unsub", consent="unsubscribed"),
        evaluator("cust", lifecycle="customer"),
        evaluator("new"),
    )
    previous = {
        person.lead_id: hashed_identity(evaluator(person.lead_id), "linkedin")
        for person in (stays, unsubscribed, customer)
    }

    # When the audience is mirrored against every lead
    diff = mirror_diff(forecasting, "linkedin", previous, [stays, unsubscribed, customer, newcomer])

    # Then the newcomer is added and the unsubscribed lead and the customer are removed
    assert set(diff.adds) == {"new"}
    assert set(diff.removes) == {"unsub", "cust"}
    assert set(diff.apply(previous)) == {"stays", "new"}


def test_a_changed_email_removes_the_old_identity_and_adds_the_new(audiences):
    forecasting = audiences["forecasting-evaluators"]
    before = hashed_identity(evaluator("l1", email="old@example.com"), "google")
    diff = mirror_diff(forecasting, "google", {"l1": before}, [evaluator("l1", email="new@example.com")])
    assert diff.removes == {"l1": before}
    assert diff.adds == {"l1": HashedIdentity(email=sha("new@example.com"))}


def test_a_lead_that_unsubscribes_is_removed_at_once(audiences):
    # Given a member that was sent to Meta
    revenue_teams = audiences["nurture-revenue-teams"]
    sent = hashed_identity(lead(), "meta")

    # When it unsubscribes
    diff = lead_diff(revenue_teams, "meta", lead(consent="unsubscribed"), sent)

    # Then its identity is in the removes
    assert diff == MirrorDiff(removes={"l1": sent})


def test_an_unchanged_member_needs_nothing(audiences):
    revenue_teams = audiences["nurture-revenue-teams"]
    assert lead_diff(revenue_teams, "meta", lead(), hashed_identity(lead(), "meta")).empty


# --- retargeting step hand-off ------------------------------------------------------------------


def test_a_retargeting_touch_adds_a_qualifying_lead_on_every_platform(audiences):
    outcome = handoff(audiences, "nurture-revenue-teams", lead(email="ana@example.com"))
    assert outcome.qualifies
    assert set(outcome.diffs) == {"meta", "google", "linkedin"}
    assert outcome.diffs["linkedin"].adds == {"l1": HashedIdentity(email=sha("ana@example.com"))}


def test_a_retargeting_touch_for_a_lead_that_no_longer_qualifies_adds_nothing(audiences):
    outcome = handoff(audiences, "pricing-visitors", lead(lifecycle="opportunity"))
    assert not outcome.qualifies and outcome.reason == "lead is opportunity" and outcome.diffs == {}


def test_an_unknown_audience_is_a_typed_error(audiences):
    with pytest.raises(UnknownAudienceError):
        handoff(audiences, "no-such-audience", lead())


# --- syncing through the adapters to the fakes --------------------------------------------------------


@pytest.fixture
def platforms() -> Iterator[dict[str, Any]]:
    with revenue_team_platforms(TOKEN) as fakes:
        yield fakes


@pytest.fixture
def sync(audiences, platforms) -> AudienceSync:
    return AudienceSync(audiences, adapters_to(platforms, TOKEN))


def test_hand_off_puts_the_lead_in_the_audience_on_every_platform(sync, platforms):
    # Given a qualifying lead with an email and a US phone
    person = lead(email="Ana@Example.com", profile={"phone": "(415) 555-0100"})

    # When its retargeting touch is handed off
    outcome, results = sync.hand_off("nurture-revenue-teams", person)

    # Then each platform holds it, hashed the way that platform documents
    assert outcome.qualifies and len(results) == 3
    assert platforms["meta"].members == {(sha("ana@example.com"), sha("14155550100"))}
    assert platforms["google"].members == {(sha("ana@example.com"), sha("+14155550100"))}
    assert platforms["linkedin"].members == {sha("ana@example.com")}


def test_mirroring_removes_a_lead_that_became_a_customer(sync, platforms):
    # Given two members mirrored to every platform
    ana, ben = lead("ana"), lead("ben")
    first = sync.mirror("nurture-revenue-teams", {}, [ana, ben])
    snapshots = {platform: outcome.snapshot for platform, outcome in first.items()}
    assert all(len(fake.members) == 2 for fake in platforms.values())

    # When Ben becomes a customer and the audience is mirrored again
    second = sync.mirror("nurture-revenue-teams", snapshots, [ana, lead("ben", lifecycle="customer")])

    # Then every platform holds only Ana, and the snapshots say so
    assert platforms["linkedin"].members == {sha("ana@example.com")}
    assert platforms["meta"].members == {(sha("ana@example.com"), "")}
    assert platforms["google"].members == {(sha("ana@example.com"), "")}
    assert all(set(outcome.snapshot) == {"ana"} for outcome in second.values())
    assert [call.method for call in platforms["meta"].calls] == ["POST", "DELETE"]


def test_a_failing_platform_keeps_its_snapshot_so_the_next_run_retries(sync, platforms):
    # Given LinkedIn failing for longer than the adapter retries
    platforms["linkedin"].fail_next(10, 503)

    # When the audience is mirrored
    outcomes = sync.mirror("nurture-revenue-teams", {}, [lead("ana")])

    # Then the other platforms were updated and LinkedIn's failure is reported, its snapshot unchanged
    assert outcomes["linkedin"].error is not None and outcomes["linkedin"].error.retryable
    assert outcomes["linkedin"].snapshot == {}
    assert set(outcomes["meta"].snapshot) == {"ana"} and len(platforms["google"].members) == 1
