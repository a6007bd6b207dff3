"""Progressive profiling: which profile fields a form should ask this lead next.

A form lists the fields it may ask, in priority order, and how many at most
(`progressive` in config/sources.yaml). Fields the lead's profile already
holds are skipped, so each visit asks something new; an unknown visitor is
asked the first ones. (Submissions never blank a known value: blank fields
are dropped before they reach the profile, see nurture.core.profile.)

Who may ask about whom: the admin key, or a source whose secret never leaves
a server, names the lead by id or email and hears its id. A public form key
(a source of `auth: key`, whose key a page carries in its URL) names the
visitor by the browser's anonymous id only, the analytics.js
`ajs_anonymous_id` cookie (a random UUID nobody else knows), and every answer
has the same shape, `form`, `fields` and `max`: it cannot tell whether an
email belongs to a lead, nor anything of a lead it cannot name.
"""

from __future__ import annotations

from typing import Any

from nurture.config.loader import Config
from nurture.core.domain import Lead
from nurture.core.errors import NotFoundError, ValidationError
from nurture.core.ports import LeadStore
from nurture.store.lookup import find_lead
from nurture.store.repository import identity_key


def _known(lead: Lead, field: str) -> bool:
    value = lead.email if field == "email" else lead.profile.get(field)
    return value not in (None, "")


class ProfileAdvisor:
    """GET /v1/leads/{lead}/next-fields: the next unknown profile fields a form should ask."""

    def __init__(self, store: LeadStore, config: Config) -> None:
        self.store = store
        self.config = config

    def next_fields(self, reference: str, form_name: str | None, by_anonymous_id: bool = False) -> dict[str, Any]:
        """The next fields `form_name` should ask the lead `reference` names
        (its id or email; with `by_anonymous_id`, a browser's anonymous id,
        and the answer without the lead's id)."""
        if not form_name:
            raise ValidationError("name the form: ?form=<source name in config/sources.yaml>", field="form")
        form = self.config.forms.get(form_name)
        if form is None:
            raise NotFoundError(f"no form source named {form_name!r:.100} is configured", field="form")
        lead = self._visitor(reference) if by_anonymous_id else self._lead(reference)
        unknown = [f for f in form.progressive_fields if lead is None or not _known(lead, f)]
        answer: dict[str, Any] = {"form": form.name, "lead_id": lead.lead_id if lead is not None else None}
        if by_anonymous_id:
            del answer["lead_id"]
        return {**answer, "fields": unknown[: form.progressive_max], "max": form.progressive_max}

    def _lead(self, reference: str) -> Lead | None:
        try:
            return find_lead(self.store, reference)
        except NotFoundError:
            return None  # someone new: ask the first fields

    def _visitor(self, anonymous_id: str) -> Lead | None:
        key = identity_key("anon", anonymous_id)
        lead_id = self.store.lookup_identities([key]).get(key)
        return self._lead(lead_id) if lead_id else None
