"""tracks.yaml: the shipped tracks and contact policy load, and every mistake
is reported with the file, the path inside it and the reason."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from nurture.config.loader import load_config
from nurture.core.errors import ConfigError
from tests.conftest import CONFIG_DIR


def edit_tracks(config_dir: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply `change` to the parsed tracks.yaml and write it back."""
    path = config_dir / "tracks.yaml"
    document = yaml.safe_load(path.read_text())
    change(document)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def track_spec(document: dict[str, Any], track_id: str) -> dict[str, Any]:
    return next(spec for spec in document["tracks"] if spec["id"] == track_id)


def load_error(config_dir: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(config_dir)
    return caught.value


# tracks.yaml lists mql-revenue-teams first: tracks[0] in every path below.
REVENUE_TEAMS = "tracks[0]"


# --- the shipped file -------------------------------------------------------------


def test_shipped_tracks_load_highest_priority_first():
    # Given the tracks.yaml shipped in config/ (written in another order)
    # When the configuration is loaded
    config = load_config(CONFIG_DIR)

    # Then the tracks come highest priority first, so the first match wins
    assert [(track.id, track.priority) for track in config.tracks] == [
        ("pricing-follow-up", 60),
        ("customer-onboarding", 50),
        ("reactivation", 40),
        ("recycled", 30),
        ("mql-revenue-teams", 20),
        ("mql-everyone-else", 10),
    ]


def test_shipped_contact_policy_loads():
    # Given the shipped contact policy
    # When the configuration is loaded
    policy = load_config(CONFIG_DIR).policy

    # Then its time zone, cap, quiet hours and business-day rule are parsed
    assert policy.timezone == "America/New_York"
    assert (policy.max_marketing_emails, policy.per_days) == (2, 7.0)
    assert (policy.quiet_from, policy.quiet_to) == ((19, 0), (8, 0))
    assert policy.business_days_only is True


def test_shipped_track_steps_parse_times_experiments_and_audiences():
    # Given the shipped revenue-teams track
    # When the configuration is loaded
    config = load_config(CONFIG_DIR)
    track = next(t for t in config.tracks if t.id == "mql-revenue-teams")
    guide, retarget = track.steps[0], track.steps[1]

    # Then its steps carry lead-local times, the experiment and the retargeting audience
    assert [step.id for step in track.steps] == ["guide", "retarget-platform", "proof", "next-step", "sales-check-in"]
    assert guide.at == (10, 0) and guide.business_days is True
    assert guide.content == ("wp-revenue-analytics-guide", "blog-why-leads-go-cold")
    assert guide.experiment_id == "mql-guide-subject"
    assert [(v.id, v.weight) for v in guide.variants] == [("plain", 1.0), ("question", 1.0)]
    assert (retarget.channel, retarget.audience, retarget.at) == ("retargeting", "nurture-revenue-teams", None)
    assert track.steps[-1].channel == "sales_call"


def test_shipped_track_policies_parse_holdout_reentry_and_exits():
    # Given the shipped tracks
    # When the configuration is loaded
    config = load_config(CONFIG_DIR)
    tracks = {track.id: track for track in config.tracks}

    # Then holdout, re-entry ("never" when omitted) and exits are parsed, and goal events indexed
    revenue = tracks["mql-revenue-teams"]
    assert revenue.holdout == 0.1
    assert (revenue.reentry_after_days, revenue.reentry_max_times) == (120.0, 2)
    assert revenue.exit_lifecycle == {"hot", "opportunity", "customer", "disqualified"}
    assert revenue.exit_events == {"Demo Requested", "Trial Started"}
    assert tracks["customer-onboarding"].reentry_after_days is None
    assert tracks["customer-onboarding"].holdout == 0.0
    assert config.goal_events == {"Demo Requested", "Trial Started"}


# --- mistakes, each named by file, path and reason -------------------------------------


def test_unknown_trigger_is_named(config_dir):
    # Given a track triggered by an event that does not exist
    edit_tracks(config_dir, lambda doc: track_spec(doc, "mql-revenue-teams").update(triggers=["lead.became_tepid"]))

    # When the configuration is loaded
    error = load_error(config_dir)

    # Then the error names the file, the trigger's path and the allowed triggers
    assert (error.file, error.path) == ("tracks.yaml", f"{REVENUE_TEAMS}.triggers[0]")
    assert "'lead.became_tepid' is not one of" in error.reason and "lead.became_warm" in error.reason
    assert str(error).startswith(f"tracks.yaml: {REVENUE_TEAMS}.triggers[0]: ")


def test_unknown_channel_is_named(config_dir):
    # Given a step on a channel the product does not have
    edit_tracks(config_dir, lambda doc: track_spec(doc, "mql-revenue-teams")["steps"][0].update(channel="sms"))

    # When the configuration is loaded
    error = load_error(config_dir)

    # Then the error names the step's channel and the channels that exist
    assert (error.file, error.path) == ("tracks.yaml", f"{REVENUE_TEAMS}.steps[0].channel")
    assert error.reason == "'sms' is not one of email, retargeting, sales_call"


def test_content_missing_from_content_yaml_is_named(config_dir):
    # Given a step whose pool names a piece content.yaml does not define
    edit_tracks(
        config_dir,
        lambda doc: track_spec(doc, "mql-revenue-teams")["steps"][0].update(
            content=["wp-revenue-analytics-guide", "wp-does-not-exist"]
        ),
    )

    # When the configuration is loaded
    error = load_error(config_dir)

    # Then the error points at that entry of the pool and at content.yaml
    assert (error.file, error.path) == ("tracks.yaml", f"{REVENUE_TEAMS}.steps[0].content[1]")
    assert error.reason == "no content 'wp-does-not-exist' in content.yaml"


def test_retargeting_step_without_audience_is_named(config_dir):
    # Given a retargeting step that does not say which audience to add the lead to
    edit_tracks(config_dir, lambda doc: track_spec(doc, "mql-revenue-teams")["steps"][1].pop("audience"))

    # When the configuration is loaded
    error = load_error(config_dir)

    # Then the error names the missing audience
    assert (error.file, error.path) == ("tracks.yaml", f"{REVENUE_TEAMS}.steps[1].audience")
    assert error.reason == "expected a non-empty string"


def test_audience_on_an_email_step_is_named(config_dir):
    # Given an email step that names a retargeting audience
    edit_tracks(
        config_dir,
        lambda doc: track_spec(doc, "mql-revenue-teams")["steps"][0].update(audience="nurture-revenue-teams"),
    )

    # When the configuration is loaded
    error = load_error(config_dir)

    # Then the error says only retargeting steps have one
    assert (error.file, error.path) == ("tracks.yaml", f"{REVENUE_TEAMS}.steps[0].audience")
    assert error.reason == "only retargeting steps name an audience"


def test_experiment_with_one_variant_is_named(config_dir):
    # Given an experiment with nothing to compare against
    edit_tracks(
        config_dir,
        lambda doc: track_spec(doc, "mql-revenue-teams")["steps"][0]["experiment"].update(
            variants=[{"id": "plain", "subject": "The guide"}]
        ),
    )

    # When the configuration is loaded
    error = load_error(config_dir)

    # Then the error names the variants list
    assert (error.file, error.path) == ("tracks.yaml", f"{REVENUE_TEAMS}.steps[0].experiment.variants")
    assert error.reason == "an experiment needs at least two variants"


def test_experiment_with_duplicate_variant_ids_is_named(config_dir):
    # Given an experiment whose two variants share an id
    edit_tracks(
        config_dir,
        lambda doc: track_spec(doc, "mql-revenue-teams")["steps"][0]["experiment"].update(
            variants=[{"id": "plain", "subject": "The guide"}, {"id": "plain", "subject": "Is your forecast true?"}]
        ),
    )

    # When the configuration is loaded
    error = load_error(config_dir)

    # Then the error names the variants list
    assert (error.file, error.path) == ("tracks.yaml", f"{REVENUE_TEAMS}.steps[0].experiment.variants")


@pytest.mark.parametrize("holdout", [1.5, 1, -0.1])
def test_holdout_outside_zero_to_one_is_named(config_dir, holdout):
    # Given a holdout share that is not in [0, 1)
    edit_tracks(config_dir, lambda doc: track_spec(doc, "mql-revenue-teams").update(holdout=holdout))

    # When the configuration is loaded
    error = load_error(config_dir)

    # Then the error names the holdout and what a share looks like
    assert (error.file, error.path) == ("tracks.yaml", f"{REVENUE_TEAMS}.holdout")
    assert error.reason == "expected a share in [0, 1), e.g. 0.1 for 10%"


def test_step_time_out_of_range_is_named(config_dir):
    # Given a step sent at 25:00
    edit_tracks(config_dir, lambda doc: track_spec(doc, "mql-revenue-teams")["steps"][0].update(at="25:00"))

    # When the configuration is loaded
    error = load_error(config_dir)

    # Then the error names the step's time and the expected form
    assert (error.file, error.path) == ("tracks.yaml", f"{REVENUE_TEAMS}.steps[0].at")
    assert '24-hour time such as "09:30"' in error.reason


def test_quiet_hours_out_of_range_are_named(config_dir):
    # Given quiet hours that end at 25:00
    edit_tracks(config_dir, lambda doc: doc["contact_policy"]["quiet_hours"].update(to="25:00"))

    # When the configuration is loaded
    error = load_error(config_dir)

    # Then the error names the quiet hours' end
    assert (error.file, error.path) == ("tracks.yaml", "contact_policy.quiet_hours.to")
    assert '24-hour time such as "09:30"' in error.reason


def test_unquoted_time_read_by_yaml_as_minutes_is_named_with_a_hint_to_quote_it(config_dir):
    # Given a step time written without quotes: YAML 1.1 reads 10:00 as the integer 600
    path = config_dir / "tracks.yaml"
    path.write_text(path.read_text().replace('at: "10:00"', "at: 10:00", 1))
    assert yaml.safe_load(path.read_text())["tracks"][0]["steps"][0]["at"] == 600

    # When the configuration is loaded
    error = load_error(config_dir)

    # Then the error points at that time and says to quote it, rather than failing later or sending at 600
    assert (error.file, error.path) == ("tracks.yaml", f"{REVENUE_TEAMS}.steps[0].at")
    assert "quote it in YAML" in error.reason
    hint = 'expected a 24-hour time such as "09:30" (quote it in YAML)'
    assert str(error) == f"tracks.yaml: {REVENUE_TEAMS}.steps[0].at: {hint}"


@pytest.mark.parametrize("timezone", ["Mars/Olympus_Mons", "EST+5", "../../etc/passwd"])
def test_unknown_time_zone_is_named(config_dir, timezone):
    # Given a contact policy in a time zone that does not exist
    edit_tracks(config_dir, lambda doc: doc["contact_policy"].update(timezone=timezone))

    # When the configuration is loaded
    error = load_error(config_dir)

    # Then the error names the time zone and gives an example of a valid one
    assert (error.file, error.path) == ("tracks.yaml", "contact_policy.timezone")
    assert error.reason == f"{timezone!r} is not an IANA time zone (e.g. America/New_York)"


def test_audience_on_a_field_leads_do_not_have_is_named(config_dir):
    # Given a track audience on a field that is not a lead field
    edit_tracks(
        config_dir, lambda doc: track_spec(doc, "mql-revenue-teams")["audience"].update(email_domain="globex.com")
    )

    # When the configuration is loaded
    error = load_error(config_dir)

    # Then the error names the condition and lists the fields an audience can use
    assert (error.file, error.path) == ("tracks.yaml", f"{REVENUE_TEAMS}.audience.email_domain")
    assert error.reason.startswith("not a lead field; use one of persona, seniority, industry")


def test_duplicate_step_ids_are_named(config_dir):
    # Given a track with two steps called "proof"
    edit_tracks(config_dir, lambda doc: track_spec(doc, "mql-revenue-teams")["steps"][3].update(id="proof"))

    # When the configuration is loaded
    error = load_error(config_dir)

    # Then the error names the track's steps
    assert (error.file, error.path) == ("tracks.yaml", f"{REVENUE_TEAMS}.steps")
    assert error.reason == "step ids must be unique within a track"


def test_duplicate_track_ids_are_named(config_dir):
    # Given two tracks with the same id (the second one, tracks[1], is renamed)
    edit_tracks(config_dir, lambda doc: doc["tracks"][1].update(id="mql-revenue-teams"))

    # When the configuration is loaded
    error = load_error(config_dir)

    # Then the error names the second track's id
    assert (error.file, error.path) == ("tracks.yaml", "tracks[1].id")
    assert error.reason == "duplicate track id 'mql-revenue-teams'"


def test_missing_contact_policy_is_named(config_dir):
    # Given a tracks.yaml without a contact policy
    edit_tracks(config_dir, lambda doc: doc.pop("contact_policy"))

    # When the configuration is loaded
    error = load_error(config_dir)

    # Then the error names the missing section
    assert (error.file, error.path) == ("tracks.yaml", "contact_policy")
    assert error.reason == "expected a mapping"


def test_a_retargeting_step_naming_an_undefined_audience_is_named(config_dir):
    # Given a retargeting step whose audience audiences.yaml does not define
    def rename(document):
        step = next(s for s in document["tracks"][0]["steps"] if s["channel"] == "retargeting")
        step["audience"] = "no-such-audience"

    edit_tracks(config_dir, rename)

    # When the configuration is loaded
    error = load_error(config_dir)

    # Then the error names tracks.yaml and the step
    assert (error.file, error.path) == ("tracks.yaml", "tracks")
    assert "no-such-audience" in error.reason
