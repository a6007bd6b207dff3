"""Timeline use cases: enrolling leads (one Step Functions execution per
enrollment), advancing a timeline when it wakes, and sending an email touch."""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nurture.channels.form_responses import RESPONSES_TRACK
from nurture.config.loader import Config
from nurture.config.tracks import behaviour_trigger
from nurture.core.deadline import current as current_deadline
from nurture.core.delivery import claim_delivery, mark_sent
from nurture.core.domain import MARKETING, Enrollment, Lead, Touch, lead_event
from nurture.core.errors import ConcurrentUpdateError
from nurture.core.observability import add_metric, bounded
from nurture.core.ports import Executions, KeyProvider, LeadEventPublisher, LeadReader, TimelineStore
from nurture.sweeps.scheduled import sunset_in_force
from nurture.timelines.decisions import (
    DAY,
    SUBSCRIBED,
    decide,
    email_allowed_at,
    enrollment_id,
    in_holdout,
    lead_zone,
    matching_track,
    may_enroll,
    schedule,
)

logger = logging.getLogger(__name__)

# Lifecycle stages that enroll a lead in the tracks listening for them as soon
# as the lead reaches them. Not `recycled` (the lead rests for a cool-down
# first; lead.recycled enrolls it after) nor `lost` (reactivation is due only
# N days after the loss).
TRIGGER_OF_STAGE = {
    "customer": "lead.became_customer",
    "dormant": "lead.dormant",
}
# Bus events that are themselves track triggers.
TRIGGER_EVENTS = ("lead.became_warm", "lead.recycled", "lead.dormant")  # lead.dormant: the sweeps' wake-up
STOP_NOW = {"lead.became_hot": "lead became hot", "lead.unsubscribed": "lead unsubscribed"}


class StepFunctionsExecutions:
    """Standard executions of the nurture timeline, named after the enrollment,
    so a duplicate trigger can never start a second timeline."""

    def __init__(self, client: Any, state_machine_arn: str) -> None:
        self._client = client
        self._arn = state_machine_arn

    def start(self, name: str, payload: dict[str, Any]) -> bool:
        try:
            self._client.start_execution(stateMachineArn=self._arn, name=name, input=json.dumps(payload))
        except self._client.exceptions.ExecutionAlreadyExists:
            return False
        return True

    def stop(self, name: str, cause: str) -> None:
        execution_arn = self._arn.replace(":stateMachine:", ":execution:") + f":{name}"
        with contextlib.suppress(self._client.exceptions.ExecutionDoesNotExist):
            self._client.stop_execution(executionArn=execution_arn, cause=cause[:256])


class SqsHandOffs:
    """The hand-off queues a touch other than email goes to: the audience-sync
    consumer adds the lead to a retargeting audience, the sales-task consumer
    creates the call task. Both consumers deliver each touch once, so a message
    sent again on a retry adds nothing."""

    def __init__(self, client: Any, queue_urls: Mapping[str, str]) -> None:
        self._client = client
        self._urls = queue_urls

    def send(self, channel: str, touch: Mapping[str, Any]) -> None:
        self._client.send_message(QueueUrl=self._urls[channel], MessageBody=json.dumps(touch, separators=(",", ":")))


def start_payload(enrollment: Enrollment, wake_at: float | None = None) -> dict[str, Any]:
    """The execution's input: it first waits until the first step can go
    (`wake_at`, else the step's due time), then Advance decides."""
    return {
        "enrollment_id": enrollment.enrollment_id,
        "lead_id": enrollment.lead_id,
        "track_id": enrollment.track_id,
        "seq": enrollment.seq,
        "decision": {"id": None, "wake_at": _iso(enrollment.due_at if wake_at is None else wake_at)},
    }


def _iso(moment: float) -> str:
    """A Wait state's timestamp: whole seconds, rounded up, so the wake never comes before the moment."""
    return datetime.fromtimestamp(math.ceil(moment), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class EnrollResult:
    outcome: str  # enrolled | holdout | duplicate | stopped | ignored
    detail: str
    enrollment_id: str | None = None


STOP_ATTEMPTS = 3  # marks of an enrollment exited, read back after a concurrent save


class Enroller:
    """Reacts to lead lifecycle events: enrolls in the highest-priority matching
    track (re-entry policy, holdout), or stops timelines that must end now.
    Idempotent: a repeated event finds the enrollment and the execution already there."""

    def __init__(self, leads: LeadReader, timelines: TimelineStore, executions: Executions, config: Config) -> None:
        self.leads = leads
        self.timelines = timelines
        self.executions = executions
        self.config = config

    def on_event(self, detail_type: str, detail: Mapping[str, Any], now: float) -> list[EnrollResult]:
        lead_id = detail.get("lead_id")
        if not lead_id:
            return [EnrollResult("ignored", "event without lead_id")]
        results = []
        if detail_type == "lead.erased":
            return self.stop_erased(detail.get("executions") or [])
        if detail_type in STOP_NOW:
            results += self.stop_all(lead_id, STOP_NOW[detail_type], now)
        trigger = detail_type if detail_type in TRIGGER_EVENTS else None
        if detail_type == "lead.behaviour_triggered" and detail.get("track_id"):
            trigger = behaviour_trigger(str(detail["track_id"]))
        if detail_type == "lead.stage_changed":
            stage = detail.get("to_stage")
            results += self._stop_tracks_exiting_on(lead_id, stage, now)
            trigger = TRIGGER_OF_STAGE.get(stage)
        if trigger:
            results.append(self.enroll(lead_id, trigger, now))
        return results or [EnrollResult("ignored", f"{detail_type} enrolls and stops nothing")]

    def enroll(self, lead_id: str, trigger: str, now: float) -> EnrollResult:
        lead = self.leads.get_leads([lead_id], consistent=True).get(lead_id)
        if lead is None or lead.merged_into:
            return EnrollResult("ignored", "no such lead")
        if lead.consent != SUBSCRIBED:
            return EnrollResult("ignored", f"lead is {lead.consent}")
        track = matching_track(self.config, trigger, lead)
        if track is None:
            return EnrollResult("ignored", f"no track for {trigger} matches the lead")
        if lead.lifecycle in track.exit_lifecycle:
            # A trigger handled late (lead.became_warm after the lead became hot) enrolls nothing.
            return EnrollResult("ignored", f"lead is already {lead.lifecycle}")
        previous = [e for e in self.timelines.enrollments(lead_id) if e.track_id == track.id]
        allowed, why = may_enroll(track, previous, now)
        if not allowed:
            active = next((e for e in previous if e.status == "active"), None)
            if active is not None:  # a repeated trigger: make sure its timeline runs
                self.executions.start(active.enrollment_id, start_payload(active))
                return EnrollResult("duplicate", why, active.enrollment_id)
            return EnrollResult("ignored", why)
        seq = len(previous) + 1
        enrollment = Enrollment(
            enrollment_id=enrollment_id(lead_id, track.id, seq),
            lead_id=lead_id,
            track_id=track.id,
            seq=seq,
            started_at=now,
            due_at=schedule(now, track.steps[0], lead_zone(lead, self.config.policy)),
            trigger=trigger,
        )
        if in_holdout(lead_id, track):
            enrollment.status, enrollment.ended_at, enrollment.exit_reason = "holdout", now, "holdout group"
            self.timelines.create_enrollment(enrollment)
            return EnrollResult(
                "holdout", f"in the {track.holdout:.0%} holdout of {track.id}", enrollment.enrollment_id
            )
        created = self.timelines.create_enrollment(enrollment)
        first = track.steps[0]
        wake_at = enrollment.due_at
        if first.channel == "email":  # no first wake that would only find the step deferred
            marketing_times = [
                t.at for t in self.timelines.touches(lead_id) if t.klass == MARKETING and t.channel == "email"
            ]
            zone = lead_zone(lead, self.config.policy)
            wake_at = email_allowed_at(enrollment.due_at, lead, marketing_times, self.config.policy, zone)
        started = self.executions.start(enrollment.enrollment_id, start_payload(enrollment, wake_at))
        outcome = "enrolled" if created or started else "duplicate"
        return EnrollResult(outcome, f"{track.id} ({why})", enrollment.enrollment_id)

    def stop_erased(self, execution_names: list[str]) -> list[EnrollResult]:
        """An erased lead's timelines: its enrollments are gone, so they are stopped by name."""
        for name in execution_names:
            self.executions.stop(str(name), "lead erased")
        return [EnrollResult("stopped", "lead erased", str(name)) for name in execution_names]

    def stop_all(self, lead_id: str, reason: str, now: float) -> list[EnrollResult]:
        return [self._stop(e, reason, now) for e in self.timelines.enrollments(lead_id) if e.status == "active"]

    def _stop_tracks_exiting_on(self, lead_id: str, stage: str | None, now: float) -> list[EnrollResult]:
        tracks = {track.id: track for track in self.config.tracks}
        return [
            self._stop(e, f"lead became {stage}", now)
            for e in self.timelines.enrollments(lead_id)
            if e.status == "active" and e.track_id in tracks and stage in tracks[e.track_id].exit_lifecycle
        ]

    def _stop(self, enrollment: Enrollment, reason: str, now: float) -> EnrollResult:
        """Mark the enrollment exited, then stop its execution. In that order a
        failure anywhere is safe: if the mark fails the invocation fails and
        its retry does both; if the stop fails, the timeline's next wake finds
        the enrollment exited and ends there. A concurrent save (its Advance
        task) is read back and the mark made on top of it."""
        current: Enrollment | None = enrollment
        for attempt in range(STOP_ATTEMPTS):
            if current is None or current.status != "active":
                break
            expected = current.version
            current.status, current.exit_reason, current.ended_at, current.pending = "exited", reason, now, None
            try:
                self.timelines.save_enrollment(current, expected)
                break
            except ConcurrentUpdateError:
                if attempt == STOP_ATTEMPTS - 1:
                    raise
                current = self.timelines.get_enrollment(enrollment.lead_id, enrollment.track_id, enrollment.seq)
        self.executions.stop(enrollment.enrollment_id, reason)
        return EnrollResult("stopped", reason, enrollment.enrollment_id)


ADVANCE_ATTEMPTS = 3
# The touch is delivered on the first attempts of the Advance task (the ASL
# retries it, `$$.State.RetryCount` says which attempt this is); from this
# retry on, a touch that still fails is given up and the timeline goes on to
# its next step, as it did when sending was a task of its own with a Catch.
DELIVERY_RETRIES = 3


class Advancer:
    """The timeline's Advance task: decide at wake time against fresh state,
    then deliver the touch decided — the email sent (TouchSender: consent
    checked last, once per enrollment + step), a hand-off queued to its
    consumer — so a touch costs the state machine no state of its own.

    A Lambda retry of the same wake returns the decision already made (the
    state carries the previous decision's id) and delivers it again, which
    the touch's claim makes once-only, so a retry never skips or repeats a
    step."""

    def __init__(
        self,
        leads: LeadReader,
        timelines: TimelineStore,
        publisher: LeadEventPublisher,
        config: Config,
        emails: Callable[[], TouchSender] | None = None,
        handoffs: Callable[[], SqsHandOffs] | None = None,
    ) -> None:
        self.leads = leads
        self.timelines = timelines
        self.publisher = publisher
        self.config = config
        self._emails = emails
        self._handoffs = handoffs

    def advance(self, state: Mapping[str, Any], now: float) -> dict[str, Any]:
        """Decide once, then deliver the decision's touch. Raises while a
        delivery fails on the task's first attempts (the ASL retries it); later
        attempts give the touch up and say so in `delivery`."""
        decision = self.decide(state, now)
        attempt = int(state.get("attempt") or 0)
        try:
            delivery = self._deliver(decision, now)
        except Exception as error:
            if attempt < DELIVERY_RETRIES:
                raise
            logger.exception("touch %s given up after %d attempts", decision.get("id"), attempt + 1)
            delivery = f"failed: {type(error).__name__}"
        return {**decision, "delivery": delivery}

    def decide(self, state: Mapping[str, Any], now: float) -> dict[str, Any]:
        """Decide once against fresh state. If the enrollment changed while deciding
        (the lead became hot or unsubscribed and the enroller ended it), decide
        again on top of that change rather than fail the timeline."""
        for _ in range(ADVANCE_ATTEMPTS - 1):
            with contextlib.suppress(ConcurrentUpdateError):
                return self._decide(state, now)
        return self._decide(state, now)

    def _decide(self, state: Mapping[str, Any], now: float) -> dict[str, Any]:
        lead_id, track_id, seq = state["lead_id"], state["track_id"], int(state["seq"])
        enrollment = self.timelines.get_enrollment(lead_id, track_id, seq)
        if enrollment is None:
            return _exit_state(state, now, "no such enrollment")
        previous_id = (state.get("decision") or {}).get("id")
        if enrollment.last_decision and enrollment.last_decision.get("id") != previous_id:
            # A retry of a wake that already decided: the same decision, and its
            # hand-off recorded if the attempt that decided failed before it was.
            self._record_handoff(enrollment.last_decision, now)
            return enrollment.last_decision
        lead = self.leads.get_leads([lead_id], consistent=True).get(lead_id)
        track = next((t for t in self.config.tracks if t.id == track_id), None)
        if lead is None or track is None:
            return _exit_state(state, now, "lead or track no longer exists")
        goal_events = {name for name, at in lead.milestones.items() if at >= enrollment.started_at}
        expected = enrollment.version
        decision = decide(
            enrollment, lead, track, self.config, now, touches=self.timelines.touches(lead_id), goal_events=goal_events
        )
        enrollment.decision_seq += 1
        result = decision.to_state(f"{enrollment.enrollment_id}:{enrollment.decision_seq}", enrollment, lead)
        enrollment.last_decision = result
        self.timelines.save_enrollment(enrollment, expected)
        self._record_handoff(result, now)
        if decision.exhausted:
            self._publish_exhausted(lead, enrollment, decision.exhausted, now)
        return result

    def _deliver(self, decision: Mapping[str, Any], now: float) -> str:
        """The decision's touch, delivered: what became of it."""
        action, touch = decision.get("action"), decision.get("touch")
        if not touch or action not in ("email", "retargeting", "sales_call"):
            return "none"
        if action == "email":
            if self._emails is None:
                raise RuntimeError("this Advance task has no email sender")
            sent = self._emails().send(touch, now)
            return "sent" if sent["sent"] else f"skipped: {sent['reason']}"
        if self._handoffs is None:
            raise RuntimeError("this Advance task has no hand-off queues")
        self._handoffs().send(str(action), touch)
        return "queued"

    def _record_handoff(self, decision: Mapping[str, Any], now: float) -> None:
        """A hand-off (retargeting, sales call) is recorded here, once, before
        it is queued to its channel: the claim is conditional, so the retry of
        a wake whose first attempt saved the decision but failed before
        recording it records it, and one that recorded it adds nothing."""
        touch = decision.get("touch")
        if decision.get("action") not in ("retargeting", "sales_call") or not touch:
            return
        self.timelines.claim_touch(
            Touch(
                touch["lead_id"],
                touch["enrollment_id"],
                touch["track_id"],
                touch["step_id"],
                decision["action"],
                float(touch.get("decided_at") or now),
                subject=decision.get("reason"),
                status="handed_off",
            )
        )

    def _publish_exhausted(self, lead: Lead, enrollment: Enrollment, steps: list[str], now: float) -> None:
        event_id = f"{enrollment.enrollment_id}-exhausted-{enrollment.decision_seq}"
        try:
            exhausted = lead_event(
                "lead.content_exhausted",
                event_id,
                lead.lead_id,
                now,
                email=lead.email,
                track_id=enrollment.track_id,
                enrollment_id=enrollment.enrollment_id,
                steps=steps,
                buying_stage=lead.buying_stage,
            )
            self.publisher.publish([exhausted])
        except Exception:
            logger.exception("lead.content_exhausted for %s not published", enrollment.enrollment_id)


def _exit_state(state: Mapping[str, Any], now: float, reason: str) -> dict[str, Any]:
    return {
        "id": f"{state.get('enrollment_id')}:exit",
        "action": "exit",
        "reason": reason,
        "touch": None,
        "wake_at": _iso(now),
        "exhausted": [],
        "end": True,
    }


def metric_track_ids(config: Config) -> frozenset[str]:
    """The values a `track` metric dimension may take: the configured tracks
    and the timely-response pseudo-track."""
    return frozenset({track.id for track in config.tracks} | {RESPONSES_TRACK})


class TouchSender:
    """An email touch, sent by the Advance task. Guarantees: never mails a lead who unsubscribed,
    bounced or complained; never sends marketing email to a lead the graymail
    rule sunset, but the reactivation track's when so configured; sends each
    enrollment + step once, and never loses one:

    - the touch is claimed under a lease (nurture.core.delivery) before SES is
      called, so no two sends of it ever run at once; a definite SES rejection
      releases the claim for the retry;
    - a send that dies mid-way (timeout, crash, an ambiguous SES error) leaves
      the claim to lapse with its lease (the invocation's deadline), and the
      state machine's retry of Advance (30 s later, then 90 s, ...) takes it
      over once the lease lapsed and sends (a retry within it is told to come
      back: DeliveryInProgressError);
    - the write marking the touch sent is retried while the invocation has
      time (nurture.core.delivery.mark_sent), so a failed write does not
      leave it "sending";
    - the one window left: SES accepted the email, then the invocation died
      before the touch was marked sent (the write right after SES's answer,
      or that write failing until the deadline), or SES's answer was lost on
      the way back. SES has no idempotency key, so the retry after the lease
      sends that email once more — at most once per lapsed lease."""

    def __init__(
        self,
        leads: LeadReader,
        timelines: TimelineStore,
        config: Config,
        company: Any,
        sender: Any,
        unsubscribe_key: KeyProvider,
        publisher: LeadEventPublisher | None = None,
    ) -> None:
        self.leads = leads
        self.timelines = timelines
        self.config = config
        self.company = company
        self.sender = sender
        self.unsubscribe_key = unsubscribe_key
        self.publisher = publisher

    def send(self, touch_state: Mapping[str, Any], now: float) -> dict[str, Any]:
        """Send the touch (counted as EmailsSent per track) or say why not (EmailsSkipped)."""
        result = self._send(touch_state, now)
        if result["sent"]:
            add_metric("EmailsSent", track=bounded(touch_state.get("track_id"), metric_track_ids(self.config)))
        else:
            add_metric("EmailsSkipped")
        return result

    def _send(self, touch_state: Mapping[str, Any], now: float) -> dict[str, Any]:
        from nurture.channels.email import EmailRejectedError, build_mime, render_touch, unsubscribe_token

        lead_id = touch_state["lead_id"]
        lead = self.leads.get_leads([lead_id], consistent=True).get(lead_id)
        if lead is None or not lead.email:
            return {"sent": False, "reason": "no address"}
        klass = touch_state.get("klass") or MARKETING
        # Marketing needs consent; a transactional reply (the asset the lead just
        # asked for) only needs an address that has not bounced or complained.
        if lead.consent != SUBSCRIBED and (klass == MARKETING or lead.consent in ("bounced", "complained")):
            return {"sent": False, "reason": f"lead {lead.consent}"}
        if klass == MARKETING and self._graymailed(lead, touch_state["track_id"], now):
            return {"sent": False, "reason": "graymail sunset"}
        content = next((c for c in self.config.content if c.id == touch_state.get("content_id")), None)
        if content is None or not content.sendable:
            return {"sent": False, "reason": "content no longer in the library"}
        # The touch is dated when it was decided: the moment the contact policy
        # cleared (a send follows within milliseconds, or seconds on a retry).
        touch = Touch(
            lead_id,
            touch_state["enrollment_id"],
            touch_state["track_id"],
            touch_state["step_id"],
            "email",
            float(touch_state.get("decided_at") or now),
            content_id=content.id,
            variant=touch_state.get("variant"),
            subject=touch_state.get("subject"),
            status="sending",
            recipient=lead.email,
            klass=klass,
        )
        # Render before claiming, so a template error cannot leave a claimed touch unsent.
        token = unsubscribe_token(self.unsubscribe_key.keys()["value"], lead.lead_id)
        unsubscribe_url = f"{self.company.base_url}/v1/unsubscribe/{token}"
        rendered = render_touch(
            lead,
            content,
            touch.subject or content.title,
            unsubscribe_url,
            f"{self.company.base_url}/v1/preferences/{token}" if self.config.policy.preferences.topics else None,
            self.company,
            str(self.config.directory) + "/emails",
            track_id=touch.track_id,
            step_id=touch.step_id,
            variant=touch.variant,
        )
        raw = build_mime(
            rendered, self.company.sender, lead.email, unsubscribe_url, {"X-Nurture-Touch": touch.touch_id}
        )
        touch.subject = rendered.subject
        if claim_delivery(self.timelines, touch, current_deadline().lease()) is not None:
            return {"sent": False, "reason": "already sent"}
        # The cap was checked when the step was decided; another track may have
        # sent since. The send log settles it atomically.
        policy = self.config.policy
        if klass == MARKETING and not self.timelines.reserve_marketing_send(
            touch, policy.max_marketing_emails, policy.per_days * DAY
        ):
            self.timelines.release_touch(touch)
            return {"sent": False, "reason": "frequency cap"}
        tags = {
            "track": touch.track_id,
            "step": touch.step_id,
            "content": content.id,
            "variant": touch.variant or "none",
            "enrollment": touch.enrollment_id,
        }
        try:
            message_id = self.sender.send(raw, lead.email, tags)
        except EmailRejectedError:
            # Definitely not sent: a retry may send.
            if klass == MARKETING:
                self.timelines.release_marketing_send(touch)
            self.timelines.release_touch(touch)
            raise
        # Nothing between SES's answer and this write: it is the whole window
        # in which a crash makes the retry send again (the class docstring).
        mark_sent(self.timelines, touch, message_id)
        return {"sent": True, "message_id": message_id}

    def _graymailed(self, lead: Lead, track_id: str, now: float) -> bool:
        """Whether this marketing email must not go: the lead is sunset, or the
        graymail rule sunsets it now (lead.sunset, and lead.dormant with reason
        graymail when the action is reactivation). A sunset lead still gets the
        reactivation track's emails when the action is reactivation."""
        rule = self.config.sweeps.graymail
        if not sunset_in_force(lead):
            limit = rule.sends_since_engagement if lead.email_engaged_at else rule.never_engaged_sends
            sent = [
                touch
                for touch in self.timelines.touches(lead.lead_id)
                if touch.channel == "email"
                and touch.klass == MARKETING
                and touch.status == "sent"
                and touch.at > lead.email_engaged_at
            ]
            if len(sent) < limit:
                return False
            self._sunset(lead, len(sent), now)
        reactivating = lead.sunset.get("action") == "reactivation"
        return not (reactivating and track_id in self._reactivation_tracks())

    def _reactivation_tracks(self) -> set[str]:
        return {track.id for track in self.config.tracks if "lead.dormant" in track.triggers}

    def _sunset(self, lead: Lead, sends: int, now: float) -> None:
        action = self.config.sweeps.graymail.action
        for _ in range(3):
            expected = lead.version
            lead.sunset = {"at": now, "action": action, "sends": sends}
            kinds = ["lead.sunset"] + (["lead.dormant"] if action == "reactivation" else [])
            for n, detail_type in enumerate(kinds):
                extra = (
                    {"action": action, "unengaged_sends": sends}
                    if detail_type == "lead.sunset"
                    else {"reason": "graymail", "lifecycle": lead.lifecycle, "fit_grade": lead.fit_grade}
                )
                event_id = f"{lead.lead_id}-{expected + 1}-sunset-{n}"
                lead.outbox.append(lead_event(detail_type, event_id, lead.lead_id, now, email=lead.email, **extra))
            try:
                self.leads.save_lead(lead, expected)
                break
            except ConcurrentUpdateError:
                fresh = self.leads.get_leads([lead.lead_id], consistent=True).get(lead.lead_id)
                if fresh is None:
                    return
                lead.__dict__.update(fresh.__dict__)
        else:
            return  # kept changing: not sent this time; the next touch decides again
        if self.publisher is not None:
            try:
                self.publisher.publish(lead.outbox)
                self.leads.clear_outbox(lead)
            except Exception:  # the outbox keeps the lead due: the next sweep publishes it
                logger.exception("graymail events of lead %s not published; the sweep retries", lead.lead_id)
