"""sweeps.yaml: the settings of the scheduled sweeps (waking the dead, the daily
budget, graymail), validated with the path of any problem. Optional: without
the file, the defaults below hold."""

from __future__ import annotations

from dataclasses import dataclass, field

from nurture.config.yaml_file import YamlFile

GRAYMAIL_ACTIONS = ("reactivation", "suppress")


@dataclass(frozen=True)
class Graymail:
    """HubSpot's graymail rule: a lead that never opened or clicked a marketing
    email is unengaged after 11 sends; one that did, after 16 sends since its
    last open or click."""

    never_engaged_sends: int = 11
    sends_since_engagement: int = 16
    action: str = "reactivation"  # reactivation | suppress


@dataclass(frozen=True)
class SweepPolicy:
    # From sales.yaml (lost.reactivate_after_days), the one place the delay is set.
    lost_after_days: float = 180.0
    hot_silent_days: float = 21.0
    warm_dormant_days: float = 60.0
    rewake_after_days: float = 180.0
    daily_budget: int = 2000
    page_size: int = 100
    graymail: Graymail = field(default_factory=Graymail)


def load_sweep_policy(f: YamlFile) -> SweepPolicy:
    """sweeps.yaml (a YamlFile), validated with the path of any problem."""
    f.only(f.root, "", ("waking_the_dead", "daily_budget", "page_size", "graymail"))
    wake = f.mapping(f.root.get("waking_the_dead"), "waking_the_dead", required=False)
    f.only(wake, "waking_the_dead", ("hot_silent_days", "warm_dormant_days", "rewake_after_days"))
    defaults = SweepPolicy()

    def days(name: str) -> float:
        value = wake.get(name, getattr(defaults, name))
        return f.number(value, f"waking_the_dead.{name}", positive=True)

    def whole(container: dict, name: str, path: str, default: int) -> int:
        value = container.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            f.fail(path, "expected a whole number of at least 1")
        return value

    gray = f.mapping(f.root.get("graymail"), "graymail", required=False)
    f.only(gray, "graymail", ("never_engaged_sends", "sends_since_engagement", "action"))
    graymail = Graymail(
        never_engaged_sends=whole(gray, "never_engaged_sends", "graymail.never_engaged_sends", 11),
        sends_since_engagement=whole(gray, "sends_since_engagement", "graymail.sends_since_engagement", 16),
        action=f.choice(gray.get("action", "reactivation"), "graymail.action", GRAYMAIL_ACTIONS),
    )
    page_size = whole(f.root, "page_size", "page_size", defaults.page_size)
    if page_size > 1000:
        f.fail("page_size", "at most 1000 leads per page")
    return SweepPolicy(
        hot_silent_days=days("hot_silent_days"),
        warm_dormant_days=days("warm_dormant_days"),
        rewake_after_days=days("rewake_after_days"),
        daily_budget=whole(f.root, "daily_budget", "daily_budget", defaults.daily_budget),
        page_size=page_size,
        graymail=graymail,
    )
