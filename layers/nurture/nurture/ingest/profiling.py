"""Progressive profiling: which profile fields a form should ask this lead next.

A form lists the fields it may ask, in priority order, and how many at most
(`progressive` in config/sources.yaml). Fields the lead's profile already
holds are skipped, so each visit asks something new; an unknown visitor is
asked the first ones. (Submissions never blank a known value: blank fields
are dropped before they reach the profile, see nurture.core.profile.)
"""

from __future__ import annotations

from typing import Any

from nurture.config.loader import Config
from nurture.core.domain import Lead
from nurture.core.errors import NotFoundError, ValidationError
from nurture.core.ports import LeadStore
from nurture.store.lookup import find_lead


def _known(lead: Lead, field: str) -> bool:
    value = lead.email if field == "email" else lead.profile.get(field)
    return value not in (None, "")


class ProfileAdvisor:
    """GET /v1/leads/{lead}/next-fields: the next unknown profile fields a form should ask."""

    def __init__(self, store: LeadStore, config: Config) -> None:
        self.store = store
        self.config = config

    def next_fields(self, reference: str, form_name: str | None) -> dict[str, Any]:
        if not form_name:
            raise ValidationError("name the form: ?form=<source name in config/sources.yaml>", field="form")
        form = self.config.forms.get(form_name)
        if form is None:
            raise NotFoundError(f"no form source named {form_name!r} is configured", field="form")
        try:
            lead: Lead | None = find_lead(self.store, reference)
        except NotFoundError:
            lead = None  # someone new: ask the first fields
        unknown = [f for f in form.progressive_fields if lead is None or not _known(lead, f)]
        return {
            "form": form.name,
            "lead_id": lead.lead_id if lead is not None else None,
            "fields": unknown[: form.progressive_max],
            "max": form.progressive_max,
        }
