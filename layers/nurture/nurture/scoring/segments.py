"""A lead's segment: the fields tracks and retargeting audiences select on
(persona, seniority, industry, country, fit grade, buying stage, lifecycle,
product interest, company size)."""

from __future__ import annotations

from typing import Any

from nurture.core.domain import Lead


def audience_subject(lead: Lead) -> dict[str, Any]:
    return {
        "persona": lead.profile.get("persona"),
        "seniority": lead.profile.get("seniority"),
        "industry": lead.profile.get("industry"),
        "country": lead.profile.get("country"),
        "fit_grade": lead.fit_grade,
        "buying_stage": lead.buying_stage,
        "lifecycle": lead.lifecycle,
        "product_interest": lead.profile.get("product_interest"),
        "employees": lead.profile.get("employees"),
    }
