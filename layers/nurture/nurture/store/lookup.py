"""Finding a lead by what people know it by: its id or an email address,
following merges to the lead that survived."""

from __future__ import annotations

from nurture.core.domain import Lead
from nurture.core.errors import NotFoundError
from nurture.core.ports import LeadStore
from nurture.core.profile import normalize_email
from nurture.store.repository import identity_key


def find_lead(store: LeadStore, reference: str) -> Lead:
    """A lead by id or email, following merges to the surviving lead."""
    lead_id = reference
    if "@" in reference:
        email = normalize_email(reference)
        if email is None:
            raise NotFoundError(f"{reference!r} is not an email address", field="lead")
        lead_id = store.lookup_identities([identity_key("email", email)]).get(identity_key("email", email), "")
    for _ in range(3):
        lead = store.get_leads([lead_id]).get(lead_id) if lead_id else None
        if lead is None:
            raise NotFoundError(f"no lead {reference!r}", field="lead")
        if not lead.merged_into:
            return lead
        lead_id = lead.merged_into
    raise NotFoundError(f"lead {reference!r} merges in a loop", field="lead")
