"""The nurture timeline's decisions: enrollment, what to do when a lead's
timeline wakes (touch now, wait, or exit), content selection, the contact
policy and experiment assignment. Pure functions over domain objects; the
Step Functions loop and the handlers do the I/O."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nurture.config.loader import Config, ContentTag
from nurture.config.tracks import PAUSE_DAYS, ContactPolicy, Step, Track
from nurture.core.domain import MARKETING, Enrollment, Lead, Touch
from nurture.core.rules import all_match
from nurture.core.stages import BUYING_STAGES
from nurture.scoring.scores import decayed
from nurture.scoring.segments import audience_subject

DAY = 86400.0
SUBSCRIBED = "subscribed"


def enrollment_id(lead_id: str, track_id: str, seq: int) -> str:
    # Step Functions execution names: at most 80 of [A-Za-z0-9-_]
    return f"{track_id}-{lead_id}-{seq}"[:80]


def bucket(*parts: str) -> float:
    """A stable number in [0, 1) for the parts (hash, not random): the same lead
    always lands in the same variant or holdout group."""
    digest = hashlib.sha256("|".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_holdout(lead_id: str, track: Track) -> bool:
    return track.holdout > 0 and bucket("holdout", track.id, lead_id) < track.holdout


def assign_variant(lead_id: str, step: Step) -> str | None:
    if not step.variants:
        return None
    point = bucket("experiment", step.experiment_id or "", lead_id) * sum(v.weight for v in step.variants)
    for variant in step.variants:
        point -= variant.weight
        if point < 0:
            return variant.id
    return step.variants[-1].id


def matching_track(config: Config, trigger: str, lead: Lead) -> Track | None:
    """The highest-priority track this trigger enrolls this lead in, if any."""
    subject = audience_subject(lead)
    turned_off = topics_off(lead)
    for track in config.tracks:  # sorted by priority, highest first
        if track.topics & turned_off:
            continue
        if trigger in track.triggers and all_match(track.audience, subject, config.lists):
            return track
    return None


def topics_off(lead: Lead) -> frozenset[str]:
    """The content topics the lead turned off on the preference page."""
    return frozenset(lead.preferences.get("topics_off") or ())


def may_enroll(track: Track, previous: list[Enrollment], now: float) -> tuple[bool, str]:
    """Re-entry policy: never, or after N days since the last enrollment ended, at most N times."""
    if not previous:
        return True, "first enrollment"
    if any(e.status == "active" for e in previous):
        return False, "already enrolled"
    if track.reentry_after_days is None:
        return False, "this track never re-enrolls"
    if len(previous) >= track.reentry_max_times:
        return False, f"already enrolled {len(previous)} times"
    last_end = max((e.ended_at or e.started_at) for e in previous)
    if now - last_end < track.reentry_after_days * DAY:
        return False, f"re-entry only {track.reentry_after_days:g} days after the last enrollment"
    return True, "re-entry"


# --- time in the lead's own zone ------------------------------------------------


def lead_zone(lead: Lead, policy: ContactPolicy) -> ZoneInfo:
    for name in (lead.profile.get("timezone"), policy.timezone):
        if name:
            try:
                return ZoneInfo(str(name))
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def _business_day(moment: datetime) -> bool:
    return moment.weekday() < 5


def schedule(after: float, step: Step, zone: ZoneInfo) -> float:
    """When a step is due: `after_days` later, at its lead-local time of day,
    moved to the next business day if the step asks for business days."""
    local = datetime.fromtimestamp(after + step.after_days * DAY, zone)
    if step.at is not None:
        candidate = local.replace(hour=step.at[0], minute=step.at[1], second=0, microsecond=0)
        if candidate < local:
            candidate += timedelta(days=1)
        local = candidate
    while step.business_days and not _business_day(local):
        local += timedelta(days=1)
    return local.timestamp()


def _quiet(local: datetime, policy: ContactPolicy) -> bool:
    minutes = local.hour * 60 + local.minute
    start = policy.quiet_from[0] * 60 + policy.quiet_from[1]
    end = policy.quiet_to[0] * 60 + policy.quiet_to[1]
    if start > end:  # spans midnight, e.g. 19:00-08:00
        return minutes >= start or minutes < end
    return start <= minutes < end


def next_allowed(now: float, policy: ContactPolicy, zone: ZoneInfo) -> float:
    """The first moment at or after `now` outside quiet hours (and on a business
    day if the policy says so), in the lead's own time zone."""
    local = datetime.fromtimestamp(now, zone)
    opens = {"hour": policy.quiet_to[0], "minute": policy.quiet_to[1], "second": 0, "microsecond": 0}
    for _ in range(16):
        if _quiet(local, policy):
            candidate = local.replace(**opens)
            local = candidate if candidate > local else candidate + timedelta(days=1)
        elif policy.business_days_only and not _business_day(local):
            local = (local + timedelta(days=1)).replace(**opens)
        else:
            break
    return local.timestamp()


def frequency_clear_at(now: float, marketing_touch_times: list[float], policy: ContactPolicy) -> float:
    """When the lead's marketing-email cap next allows a send (now if it does)."""
    window = policy.per_days * DAY
    recent = sorted(t for t in marketing_touch_times if now - window < t <= now)
    if len(recent) < policy.max_marketing_emails:
        return now
    return recent[len(recent) - policy.max_marketing_emails] + window


def email_allowed_at(
    moment: float, lead: Lead, marketing_times: list[float], policy: ContactPolicy, zone: ZoneInfo
) -> float:
    """The first moment at or after `moment` the contact policy lets a marketing
    email go to the lead: outside quiet hours, within the frequency cap (the
    policy's and the one the lead chose), after the lead's pause; `moment`
    itself when nothing defers it."""
    allowed = max(next_allowed(moment, policy, zone), frequency_clear_at(moment, marketing_times, policy))
    chosen = policy.preferences.frequency(lead.preferences.get("frequency"))
    if chosen is not None:
        cap = replace(policy, max_marketing_emails=chosen.max_marketing_emails, per_days=chosen.per_days)
        allowed = max(allowed, frequency_clear_at(moment, marketing_times, cap))
    paused_until = float(lead.preferences.get("paused_until") or 0)
    if allowed > moment + 1 or paused_until > moment:
        return next_allowed(max(allowed, paused_until), policy, zone)
    return moment


# --- content ----------------------------------------------------------------


def choose_content(step: Step, lead: Lead, sent: set[str], config: Config, now: float) -> ContentTag | None:
    """The best unsent piece for the lead now: fits its buying stage (or the
    next one), persona and industry; prefers topics it showed interest in.
    A fixed pool is tried in order of fit; the whole library otherwise."""
    library = {tag.id: tag for tag in config.content if tag.sendable}
    pool = [library[c] for c in step.content if c in library] if step.content else list(library.values())
    persona = lead.profile.get("persona")
    industry = str(lead.profile.get("industry") or "").lower()
    stage = lead.buying_stage or BUYING_STAGES[0]
    stage_rank = BUYING_STAGES.index(stage)
    turned_off = topics_off(lead)
    best, best_score = None, float("-inf")
    for position, tag in enumerate(pool):
        if tag.id in sent or turned_off.intersection(tag.topics):
            continue
        if tag.personas and persona not in tag.personas:
            continue
        if tag.industries and industry not in tag.industries:
            continue
        distance = min(abs(BUYING_STAGES.index(s) - stage_rank) for s in tag.stages)
        ahead = any(BUYING_STAGES.index(s) == stage_rank + 1 for s in tag.stages)
        if not step.content and distance > 1:
            continue  # from the whole library, only what fits the stage
        interest = sum(
            decayed(w, at, now, config.buying_half_life_seconds)
            for topic, (w, at) in lead.interests.items()
            if topic in tag.topics
        )
        score = -3 * distance + (1 if ahead else 0) + min(interest, 3) - 0.01 * position
        if score > best_score:
            best, best_score = tag, score
    return best


# --- the decision at wake time ---------------------------------------------------


@dataclass
class Decision:
    action: str  # email | retargeting | sales_call | wait | exit
    wake_at: float
    reason: str
    step_id: str | None = None
    content_id: str | None = None
    variant: str | None = None
    subject: str | None = None
    audience: str | None = None
    exhausted: list[str] = field(default_factory=list)  # steps that found no content
    decided_at: float = 0.0  # the moment the touch is for (its send time in the contact policy's terms)
    ends: bool = False  # the timeline ends after this touch (its last step)

    def to_state(self, decision_id: str, enrollment: Enrollment, lead: Lead) -> dict[str, Any]:
        """The JSON the state machine routes on ($.decision)."""
        return {
            "id": decision_id,
            "action": self.action,
            # Whole seconds, rounded up: a wake a fraction early would find the step not yet due.
            "wake_at": datetime.fromtimestamp(math.ceil(self.wake_at), UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "reason": self.reason,
            "touch": {
                "enrollment_id": enrollment.enrollment_id,
                "lead_id": lead.lead_id,
                "track_id": enrollment.track_id,
                "step_id": self.step_id,
                "channel": self.action,
                "content_id": self.content_id,
                "variant": self.variant,
                "subject": self.subject,
                "audience": self.audience,
                "decided_at": self.decided_at,
                "note": self.reason,
            }
            if self.action in ("email", "retargeting", "sales_call")
            else None,
            "exhausted": self.exhausted,
            # The state machine's one branch: wait for wake_at, or end here.
            "end": self.action == "exit" or self.ends,
        }


def exit_reason(enrollment: Enrollment, lead: Lead, track: Track, goal_events: set[str]) -> str | None:
    if enrollment.status != "active":
        return f"enrollment is {enrollment.status}"
    if lead.merged_into:
        return "lead merged"
    if lead.consent != SUBSCRIBED:
        return f"lead {lead.consent}"
    if lead.lifecycle in track.exit_lifecycle:
        return f"lead became {lead.lifecycle}"
    turned_off = track.topics & topics_off(lead)
    if turned_off:
        return f"lead turned off the topic {sorted(turned_off)[0]}"
    reached = goal_events & track.exit_events
    if reached:
        return f"goal reached: {sorted(reached)[0]}"
    return None


def decide(
    enrollment: Enrollment,
    lead: Lead,
    track: Track,
    config: Config,
    now: float,
    *,
    touches: list[Touch],
    goal_events: set[str],
) -> Decision:
    """What the timeline does now. Mutates the enrollment (step, pending, due
    time); the caller saves it conditionally, so a decision is made once."""
    reason = exit_reason(enrollment, lead, track, goal_events)
    if reason:
        if enrollment.status == "active":  # an enrollment that already ended keeps its outcome
            _end(enrollment, "exited", reason, now)
        return Decision("exit", now, reason)
    zone = lead_zone(lead, config.policy)
    if enrollment.pending is not None:
        # The loop came back: the handed-off touch is done. The next step's due
        # time was set when that touch was decided.
        enrollment.pending = None
        enrollment.step += 1
    exhausted: list[str] = []
    while True:
        if enrollment.step >= len(track.steps):
            _end(enrollment, "completed", "all steps done", now)
            return Decision("exit", now, "all steps done", exhausted=exhausted)
        step = track.steps[enrollment.step]
        if now < enrollment.due_at:
            return Decision(
                "wait", enrollment.due_at, f"step {step.id} is due later", step_id=step.id, exhausted=exhausted
            )
        if step.channel != "email":
            return _touch(
                enrollment,
                step,
                track,
                (lead, touches, config, zone),
                now,
                Decision(
                    step.channel,
                    now,
                    _call_reason(step, lead, config) or f"step {step.id}",
                    step_id=step.id,
                    audience=step.audience,
                    exhausted=exhausted,
                ),
            )
        marketing_times = [t.at for t in touches if t.klass == MARKETING and t.channel == "email"]
        allowed = email_allowed_at(now, lead, marketing_times, config.policy, zone)
        if allowed > now + 1:
            paused = float(lead.preferences.get("paused_until") or 0) > now
            why = "paused by the lead" if paused else "deferred by the contact policy"
            return Decision("wait", allowed, f"step {step.id} {why}", step_id=step.id, exhausted=exhausted)
        # Never a piece the lead was sent, nor one it already read on the site.
        already_had = {t.content_id for t in touches if t.content_id} | set(lead.consumed)
        content = choose_content(step, lead, already_had, config, now)
        if content is None:
            exhausted.append(step.id)
            if track.on_exhausted == "exit":
                _end(enrollment, "exited", "content exhausted", now)
                return Decision("exit", now, "content exhausted", exhausted=exhausted)
            if track.on_exhausted == "pause":
                # New content in the library, or a move to another buying stage, resumes it.
                enrollment.due_at = now + PAUSE_DAYS * DAY
                return Decision(
                    "wait",
                    enrollment.due_at,
                    f"step {step.id} paused: content exhausted",
                    step_id=step.id,
                    exhausted=exhausted,
                )
            enrollment.step += 1
            if enrollment.step < len(track.steps):
                enrollment.due_at = schedule(now, track.steps[enrollment.step], zone)
            continue
        variant = enrollment.variants.get(step.experiment_id or "") or assign_variant(lead.lead_id, step)
        if variant and step.experiment_id:
            enrollment.variants[step.experiment_id] = variant
        subject = next((v.subject for v in step.variants if v.id == variant and v.subject), None) or step.subject
        return _touch(
            enrollment,
            step,
            track,
            (lead, touches, config, zone),
            now,
            Decision(
                "email",
                now,
                f"step {step.id}",
                step_id=step.id,
                content_id=content.id,
                variant=variant,
                subject=subject or content.title,
                exhausted=exhausted,
            ),
        )


def _call_reason(step: Step, lead: Lead, config: Config) -> str | None:
    """A sales-call step's reason, grounded in what the lead last consumed."""
    if not step.reason:
        return None
    titles = {tag.id: tag.title for tag in config.content}
    recent = [titles.get(content_id, content_id) for content_id in reversed(lead.consumed[-3:])]
    return step.reason.replace("{content}", ", ".join(recent) or "our content")


def _touch(
    enrollment: Enrollment,
    step: Step,
    track: Track,
    context: tuple[Lead, list[Touch], Config, ZoneInfo],
    now: float,
    decision: Decision,
) -> Decision:
    """The touch decided now; the timeline wakes next when the following step
    can go (no wake that would only find it deferred), or ends with this touch
    when it is the last step."""
    lead, touches, config, zone = context
    decision.decided_at = now
    following = enrollment.step + 1
    if following >= len(track.steps):
        enrollment.step = following
        _end(enrollment, "completed", "all steps done", now)
        decision.ends, decision.wake_at = True, now
        return decision
    enrollment.pending = {"step": enrollment.step, "step_id": step.id, "channel": step.channel}
    enrollment.due_at = schedule(now, track.steps[following], zone)
    decision.wake_at = enrollment.due_at
    if track.steps[following].channel == "email":
        # What the next wake's contact policy will say, with this touch counted
        # if it is an email: the frequency cap, quiet hours, business days, a pause.
        marketing_times = [t.at for t in touches if t.klass == MARKETING and t.channel == "email"]
        if decision.action == "email":
            marketing_times.append(now)
        decision.wake_at = email_allowed_at(enrollment.due_at, lead, marketing_times, config.policy, zone)
    return decision


def _end(enrollment: Enrollment, status: str, reason: str, now: float) -> None:
    enrollment.status = status
    enrollment.exit_reason = reason
    enrollment.ended_at = now
    enrollment.pending = None
