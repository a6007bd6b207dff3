"""Sweeps over the in-memory store: the due index each write maintains, waking
the dead, score-decay demotion, the daily budget, and re-runs the same day."""

from __future__ import annotations

import dataclasses
import json

import jsonschema
import pytest

from nurture.config.loader import load_config
from nurture.core.errors import ConfigError
from nurture.ingest.consumer import Tracker
from nurture.leads.view import describe_lead
from nurture.scoring.scores import engagement_at
from nurture.sweeps.scheduled import (
    Sweeper,
    demotion_due,
    due_at,
    due_index_function,
    next_firing,
    sweep_firings,
)
from nurture.timelines.decisions import in_holdout
from nurture.timelines.use_cases import Enroller
from tests.conftest import PROJECT_DIR
from tests.fakes import InMemoryLeadStore, InMemoryTimelineStore
from tests.unit.builders import (
    DAY,
    ICP_TRAITS,
    RETENTION,
    T0,
    RecordingPublisher,
    identify,
    page,
    track,
    tracking_events,
)
from tests.unit.timeline_builders import FakeExecutions, a_lead, lead_id_where, shipped_track


@pytest.fixture
def leads(config) -> InMemoryLeadStore:
    return InMemoryLeadStore(due=due_index_function(config))


@pytest.fixture
def sweeper(leads, publisher, config) -> Sweeper:
    return Sweeper(leads, publisher, config)


def save(leads: InMemoryLeadStore, lead) -> None:
    current = leads.get_leads([lead.lead_id]).get(lead.lead_id)
    leads.save_lead(lead, current.version if current else 0)


def lost_lead(lead_id: str, lost_at: float = T0, **overrides):
    """A lead sales marked lost at `lost_at` (the outcome's time; the stage moved when it was applied)."""
    fields = {"lifecycle": "lost", "lost_at": lost_at, "lifecycle_at": lost_at + 60, "last_seen_at": lost_at - DAY}
    return a_lead(lead_id, **{**fields, **overrides})


def dormant_events(publisher: RecordingPublisher) -> list[dict]:
    return [entry for entry in publisher.entries if entry["type"] == "lead.dormant"]


def test_a_lost_lead_falls_due_the_configured_days_after_it_was_lost(config):
    # Given a lead lost at T0
    lead = lost_lead("lead-lou")

    # When its due moment is computed
    due = due_at(lead, config)

    # Then it is sales.yaml's lost.reactivate_after_days later
    assert due == T0 + config.sales.lost_reactivate_after_days * DAY


def test_the_demotion_moment_is_when_the_decayed_score_reaches_the_demotion_line(config):
    # Given a warm A-fit lead with 40 points at T0 (the warm line for A is 20, demoted below 20 x 0.8)
    lead = a_lead("lead-wes", engagement=40.0, engagement_at=T0)

    # When the demotion moment is computed in closed form
    moment = demotion_due(lead, config)

    # Then the decayed score there is exactly the demotion line, and later than T0
    assert moment > T0
    assert engagement_at(lead, moment, config) == pytest.approx(20 * config.lifecycle.demote_ratio)


def test_leads_nothing_will_fall_due_for_stay_out_of_the_index(leads, config):
    # Given a subscriber, an unsubscribed lost lead and a lost lead without an email
    save(leads, a_lead("lead-sub", lifecycle="subscriber", engagement=3.0, engagement_at=T0))
    save(leads, lost_lead("lead-uns", consent="unsubscribed"))
    save(leads, lost_lead("lead-anon", email=None))

    # When the index is read far in the future
    due, _ = leads.due_leads(T0 + 3650 * DAY, 100)

    # Then none of them is there
    assert due == []


def test_a_lost_lead_is_not_woken_before_its_time(leads, sweeper, publisher, config):
    # Given a lead lost at T0
    save(leads, lost_lead("lead-lou"))

    # When the sweep runs a day before reactivation is due
    result = sweeper.run(T0 + (config.sweeps.lost_after_days - 1) * DAY)

    # Then nothing was read or published
    assert result.examined == 0
    assert publisher.entries == []


def test_a_lost_lead_is_woken_with_lead_dormant_once_its_time_has_come(leads, sweeper, publisher, config):
    # Given a lead lost at T0
    save(leads, lost_lead("lead-lou"))

    # When the sweep runs when reactivation is due
    now = T0 + config.sweeps.lost_after_days * DAY + 3600
    result = sweeper.run(now)

    # Then lead.dormant went out with the reason, and the lead records when it was woken
    (event,) = dormant_events(publisher)
    assert event["detail"]["lead_id"] == "lead-lou"
    assert event["detail"]["reason"] == "lost_aged"
    assert result.woken == {"lost_aged": 1}
    assert leads.get_leads(["lead-lou"])["lead-lou"].woken_at == now
    assert leads.get_leads(["lead-lou"])["lead-lou"].outbox == []


def test_a_second_run_the_same_day_wakes_nobody(leads, sweeper, publisher, config):
    # Given a swept day with three lost leads due
    for n in range(3):
        save(leads, lost_lead(f"lead-{n}"))
    now = T0 + config.sweeps.lost_after_days * DAY + 3600
    sweeper.run(now)
    published = len(publisher.entries)

    # When the sweep runs again that day
    result = sweeper.run(now + 3 * 3600)

    # Then it read nobody and published nothing
    assert result.examined == 0
    assert len(publisher.entries) == published == 3


def test_a_woken_lead_that_stays_silent_is_woken_again_only_after_the_rewake_period(leads, sweeper, publisher, config):
    # Given a lost lead woken once
    save(leads, lost_lead("lead-lou"))
    first = T0 + config.sweeps.lost_after_days * DAY
    sweeper.run(first)

    # When sweeps run just before and just after the re-wake period
    sweeper.run(first + (config.sweeps.rewake_after_days - 1) * DAY)
    before = len(dormant_events(publisher))
    sweeper.run(first + config.sweeps.rewake_after_days * DAY)

    # Then it was woken again only after it
    assert before == 1
    assert len(dormant_events(publisher)) == 2


@pytest.mark.parametrize(
    ("lifecycle", "engagement", "days_setting", "reason"),
    [("hot", 10_000.0, "hot_silent_days", "hot_silent"), ("warm", 120.0, "warm_dormant_days", "warm_dormant")],
)
def test_silent_hot_and_dormant_warm_leads_are_woken(
    leads, sweeper, publisher, config, lifecycle, engagement, days_setting, reason
):
    # Given a lead whose engagement keeps it in its stage but who has been silent since T0
    save(leads, a_lead("lead-sil", lifecycle=lifecycle, last_seen_at=T0, engagement=engagement, engagement_at=T0))

    # When the sweep runs the configured number of days later
    sweeper.run(T0 + getattr(config.sweeps, days_setting) * DAY + 60)

    # Then it is woken with the reason
    (event,) = dormant_events(publisher)
    assert event["detail"]["reason"] == reason


def test_a_silent_hot_lead_that_sales_accepted_is_left_to_sales(leads, sweeper, publisher, config):
    # Given a hot lead silent since T0 whose hand-off sales accepted
    hot = a_lead("lead-acc", lifecycle="hot", lifecycle_at=T0 - DAY, last_seen_at=T0, engagement=10_000.0)
    hot.engagement_at, hot.sales = T0, {"accepted_at": T0}
    save(leads, hot)

    # When the sweep runs long after the silent-hot delay
    sweeper.run(T0 + config.sweeps.hot_silent_days * DAY + 60)

    # Then nurture does not wake it: it is sales' until they record an outcome
    assert dormant_events(publisher) == []


def test_a_warm_lead_whose_score_decayed_is_demoted_with_events(leads, sweeper, publisher, config):
    # Given a warm A-fit lead with 40 points at T0, active until then
    save(leads, a_lead("lead-wes", engagement=40.0, engagement_at=T0, last_seen_at=T0))
    demotion = demotion_due(a_lead("x", engagement=40.0, engagement_at=T0), config)

    # When the sweep runs just after its score decayed below the demotion line
    result = sweeper.run(demotion + 60)

    # Then the lead is back to "lead", with lead.demoted and lead.stage_changed published
    lead = leads.get_leads(["lead-wes"])["lead-wes"]
    assert lead.lifecycle == "lead"
    assert result.demoted == 1
    assert [e["type"] for e in publisher.entries] == ["lead.demoted", "lead.stage_changed"]
    assert publisher.entries[1]["detail"]["from_stage"] == "warm"
    assert publisher.entries[1]["detail"]["to_stage"] == "lead"


def test_a_silent_mql_decay_demoted_to_lead_is_still_woken_after_the_warm_dormant_days(
    leads, sweeper, publisher, config
):
    # Given a warm lead last active at T0, demoted by the sweep when its score decayed
    save(leads, a_lead("lead-wes", engagement=40.0, engagement_at=T0, last_seen_at=T0))
    sweeper.run(demotion_due(a_lead("x", engagement=40.0, engagement_at=T0), config) + 60)
    assert leads.get_leads(["lead-wes"])["lead-wes"].lifecycle == "lead"

    # When the sweep runs warm_dormant_days after its last activity
    sweeper.run(T0 + config.sweeps.warm_dormant_days * DAY + 60)

    # Then it is woken as a dormant MQL
    (event,) = dormant_events(publisher)
    assert event["detail"]["reason"] == "warm_dormant"
    assert event["detail"]["lifecycle"] == "lead"


def test_a_demotion_is_kept_in_the_lead_lifecycle_history(leads, sweeper, config):
    # Given a warm lead whose score decays below the demotion line
    save(leads, a_lead("lead-wes", engagement=40.0, engagement_at=T0, last_seen_at=T0))
    moment = demotion_due(a_lead("x", engagement=40.0, engagement_at=T0), config) + 60

    # When the sweep demotes it
    sweeper.run(moment)

    # Then the move is stored like every lifecycle move, with its reason, and the lead view shows it
    (move,) = [e for e in leads.lead_events("lead-wes") if e.kind == "lifecycle"]
    assert (move.properties["from"], move.properties["to"]) == ("warm", "lead")
    assert move.properties["reason"].startswith("engagement decayed to")
    view = describe_lead(leads, config, "lead-wes", moment)
    assert [(h["from"], h["to"]) for h in view["lifecycle"]["history"]] == [("warm", "lead")]
    assert view["sweeps"]["demoted_from"] == "warm"


def test_a_warm_lead_is_not_demoted_before_its_score_decays(leads, sweeper, publisher, config):
    # Given a warm A-fit lead with 40 points at T0
    save(leads, a_lead("lead-wes", engagement=40.0, engagement_at=T0, last_seen_at=T0))
    demotion = demotion_due(a_lead("x", engagement=40.0, engagement_at=T0), config)

    # When the sweep runs a minute before the demotion moment
    sweeper.run(demotion - 60)

    # Then it is still warm and nothing was published
    assert leads.get_leads(["lead-wes"])["lead-wes"].lifecycle == "warm"
    assert publisher.entries == []


def test_the_daily_budget_caps_a_day_and_the_rest_follow_the_next_day(leads, publisher, config):
    # Given five lost leads due and a budget of three leads a day, two per page
    policy = dataclasses.replace(config.sweeps, daily_budget=3, page_size=2)
    sweeper = Sweeper(leads, publisher, dataclasses.replace(config, sweeps=policy))
    for n in range(5):
        save(leads, lost_lead(f"lead-{n}", lost_at=T0 + n))
    now = T0 + config.sweeps.lost_after_days * DAY + 3600

    # When the sweep runs twice that day and once the next day
    first = sweeper.run(now)
    again = sweeper.run(now + 60)
    next_day = sweeper.run(now + DAY)

    # Then the oldest three went the first day, nobody on the re-run, the other two the next day
    assert first.woken == {"lost_aged": 3} and first.budget_exhausted
    assert again.examined == 0
    assert next_day.woken == {"lost_aged": 2}
    assert sorted(e["detail"]["lead_id"] for e in dormant_events(publisher)) == [f"lead-{n}" for n in range(5)]


def test_events_that_could_not_be_published_go_out_with_the_next_sweep(leads, config):
    # Given a sweep whose publication failed
    save(leads, lost_lead("lead-lou"))
    publisher = RecordingPublisher(fail_next=1)
    sweeper = Sweeper(leads, publisher, config)
    now = T0 + config.sweeps.lost_after_days * DAY
    sweeper.run(now)
    assert publisher.entries == []

    # When the sweep runs again
    result = sweeper.run(now + 60)

    # Then the pending lead.dormant went out, once, and the lead left the due set
    assert [e["detail"]["reason"] for e in dormant_events(publisher)] == ["lost_aged"]
    assert result.republished == 1
    assert sweeper.run(now + 120).examined == 0


def test_an_unsubscribed_lead_leaves_the_due_index(leads, config):
    # Given a lost lead in the due index
    save(leads, lost_lead("lead-lou"))

    # When it unsubscribes
    leads.set_consent("lead-lou", "unsubscribed", T0 + DAY)

    # Then no sweep ever finds it
    assert leads.due_leads(T0 + 3650 * DAY, 100)[0] == []


def test_lead_dormant_enrolls_in_the_reactivation_track(leads, config):
    # Given a lost lead outside the reactivation holdout
    track = shipped_track(config, "reactivation")
    lead_id = lead_id_where(lambda candidate: not in_holdout(candidate, track))
    save(leads, lost_lead(lead_id))
    executions = FakeExecutions()
    enroller = Enroller(leads, InMemoryTimelineStore(), executions, config)

    # When the sweep's lead.dormant arrives twice (a re-delivery)
    first = enroller.on_event("lead.dormant", {"lead_id": lead_id, "reason": "lost_aged"}, T0)
    second = enroller.on_event("lead.dormant", {"lead_id": lead_id, "reason": "lost_aged"}, T0 + 60)

    # Then it is enrolled in the reactivation track once
    assert first[0].outcome == "enrolled"
    assert first[0].detail.startswith("reactivation")
    assert second[0].outcome == "duplicate"
    assert len(executions.started) == 1


def test_becoming_lost_enrolls_nobody_at_once(leads, config):
    # Given a lead that sales just marked lost
    save(leads, lost_lead("lead-lou"))
    executions = FakeExecutions()
    enroller = Enroller(leads, InMemoryTimelineStore(), executions, config)

    # When its stage change arrives
    results = enroller.on_event("lead.stage_changed", {"lead_id": "lead-lou", "to_stage": "lost"}, T0)

    # Then no track starts: the sweep wakes it when reactivation is due
    assert [r.outcome for r in results] == ["ignored"]
    assert executions.started == {}


def test_sweeps_yaml_names_the_setting_it_rejects(config_dir):
    # Given a sweeps.yaml with an unknown graymail action
    (config_dir / "sweeps.yaml").write_text("graymail: {action: archive}\n")

    # When the configuration loads
    with pytest.raises(ConfigError) as raised:
        load_config(config_dir)

    # Then the error names the file and the setting
    assert "sweeps.yaml" in str(raised.value)
    assert "graymail.action" in str(raised.value)


def test_sweep_events_follow_the_published_contracts(leads, sweeper, publisher, config):
    # Given a warm lead about to be demoted and a lost lead about to be woken
    save(leads, a_lead("lead-wes", engagement=40.0, engagement_at=T0, last_seen_at=T0))
    save(leads, lost_lead("lead-lou", lost_at=T0 - config.sweeps.lost_after_days * DAY))

    # When the sweep runs after the demotion moment
    sweeper.run(demotion_due(a_lead("x", engagement=40.0, engagement_at=T0), config) + 60)

    # Then every event validates against its schema in infra/events/
    lifecycle = json.loads((PROJECT_DIR / "infra/events/lead-lifecycle.schema.json").read_text())
    sweeps = json.loads((PROJECT_DIR / "infra/events/lead-sweeps.schema.json").read_text())
    assert sorted(e["type"] for e in publisher.entries) == ["lead.demoted", "lead.dormant", "lead.stage_changed"]
    for entry in publisher.entries:
        jsonschema.validate(entry["detail"], sweeps if entry["type"] == "lead.dormant" else lifecycle)


def _woken_lead(leads, tracker, config) -> str:
    """A known lead, lost long ago and woken by the sweep; returns its id."""
    tracker.process([("r1", tracking_events(identify("lou@initech.com", user_id="lou", at=T0), received_at=T0))], T0)
    (lead_id,) = leads.lookup_identities(["user#lou"]).values()
    lead = leads.get_leads([lead_id])[lead_id]
    lead.lifecycle, lead.lifecycle_at = "lost", T0
    leads.save_lead(lead, lead.version)
    Sweeper(leads, RecordingPublisher(), config).run(T0 + config.sweeps.lost_after_days * DAY)
    return lead_id


def test_the_first_thing_a_woken_lead_does_publishes_lead_reactivated_once(leads, config):
    # Given a lost lead the sweep woke
    publisher = RecordingPublisher()
    tracker = Tracker(leads, publisher, config, RETENTION)
    lead_id = _woken_lead(leads, tracker, config)
    later = T0 + (config.sweeps.lost_after_days + 2) * DAY

    # When it visits the site twice afterwards
    for n in range(2):
        tracker.process(
            [(f"p{n}", tracking_events(page("/blog/x", user_id="lou", at=later + n), received_at=later + n))], later + n
        )

    # Then lead.reactivated went out once, as its contract describes
    reactivated = [e for e in publisher.entries if e["type"] == "lead.reactivated"]
    assert [e["detail"]["lead_id"] for e in reactivated] == [lead_id]
    jsonschema.validate(
        reactivated[0]["detail"], json.loads((PROJECT_DIR / "infra/events/lead-sweeps.schema.json").read_text())
    )


def test_a_machine_open_neither_reactivates_a_woken_lead_nor_counts_as_activity(leads, config):
    # Given a lost lead the sweep woke
    publisher = RecordingPublisher()
    tracker = Tracker(leads, publisher, config, RETENTION)
    lead_id = _woken_lead(leads, tracker, config)
    later = T0 + (config.sweeps.lost_after_days + 2) * DAY
    seen = leads.get_leads([lead_id])[lead_id].last_seen_at

    # When a security scanner opens the reactivation email
    tracker.process(
        [("m", tracking_events(track("Email Opened (machine)", user_id="lou", at=later), received_at=later))], later
    )

    # Then nothing is published and the lead was not seen
    assert [e for e in publisher.entries if e["type"] == "lead.reactivated"] == []
    assert leads.get_leads([lead_id])[lead_id].last_seen_at == seen


DAILY = "cron(15 6 * * ? *)"  # template.yaml's SweepSchedule default


@pytest.mark.parametrize(
    ("schedule", "firings"),
    [
        (DAILY, (86400, 6 * 3600 + 15 * 60)),
        ("cron(0 0 * * ? *)", (86400, 0)),
        ("cron(30 * * * ? *)", (3600, 1800)),
        ("rate(1 day)", None),
        ("cron(0 6,18 * * ? *)", None),
        ("cron(0 6 ? * MON-FRI *)", None),
        ("cron(75 6 * * ? *)", None),
        ("", None),
        (None, None),
    ],
)
def test_the_sweeps_schedule_is_read_when_it_fires_at_fixed_times(schedule, firings):
    assert sweep_firings(schedule) == firings


def test_a_rounded_due_key_lets_each_scheduled_sweep_take_the_leads_due_by_then():
    # Given due moments all around the daily firings (on them, a second either side, anywhere)
    firings = sweep_firings(DAILY)
    first = next_firing(T0, firings)
    moments = [first + day * DAY + shift for day in range(3) for shift in (-DAY / 2, -1, 0, 1, 4, 3600, DAY - 1)]

    for moment in moments:
        key = next_firing(moment, firings)
        # Then each key is a firing, never before the moment and less than a period after it
        assert (key - firings[1]) % firings[0] == 0
        assert moment <= key < moment + firings[0]
        for day in range(-1, 4):
            fired = first + day * DAY
            # ... a sweep started at a firing takes the lead keyed by the firing exactly
            # when it would take it keyed by the exact moment
            assert (key <= fired) == (moment <= fired), (moment, fired)
            # ... and one started seconds into it differs only for a lead that fell due
            # in those seconds: that one waits for the next firing
            started = fired + 5
            if not fired < moment <= started:
                assert (key <= started) == (moment <= started), (moment, started)
            else:
                assert key > started and key == fired + DAY


def test_with_the_schedule_known_a_hot_leads_due_key_moves_less_often(config):
    # Given the same hot, subscribed lead browsing for an hour, in a store keyed to the
    # exact moment and in one keyed to the daily sweep
    keys = {}
    for schedule in (None, DAILY):
        store = InMemoryLeadStore(due=due_index_function(config, schedule))
        tracker = Tracker(store, RecordingPublisher(), config, RETENTION)
        events = [identify("wes@initech.com", user_id="u-wes", message_id="i-1", **ICP_TRAITS)]
        events += [page("/pricing", user_id="u-wes", message_id="p-1", at=T0 + 60)]
        events += [track("ROI Calculator Completed", user_id="u-wes", message_id="roi", at=T0 + 60)]
        events += [track("Trial Started", user_id="u-wes", message_id="trial", at=T0 + 60)]
        tracker.process([("r-0", tracking_events(*events))], T0 + 60)
        keys[schedule] = []
        for n in range(12):
            at = T0 + 120 + n * 300
            visit = page(f"/blog/{n}", user_id="u-wes", message_id=f"v-{n}", at=at)
            tracker.process([(f"r-{n + 1}", tracking_events(visit, received_at=at))], at)
            item = next(i for (pk, sk), i in store.items.items() if sk == "PROFILE" and i.get("em"))
            keys[schedule].append(item.get("gsi2sk"))

    # Then the rounded key moves less often (each move is an index write): a scored
    # view pushes the demotion moment by hours, which moves the exact key every
    # time and the day's firing only when it crosses one
    assert all(keys[None]) and all(keys[DAILY])
    assert len(set(keys[DAILY])) < len(set(keys[None]))
