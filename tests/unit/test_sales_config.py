"""config/sales.yaml and progressive profiling in sources.yaml: loaded, and
every error names the file, the path and what is wrong."""

from __future__ import annotations

import pytest

from tests.conftest import CONFIG_DIR
from tests.unit.test_config import edit, load_error


def test_shipped_sales_config_loads(config):
    sales = config.sales

    assert sales.sla_hours == 4
    assert sales.recycle_cooldown_days == 30
    assert sales.lost_reactivate_after_days == 180
    assert sales.rejection_reasons["wrong_contact"].engagement_factor == 0
    assert sales.rejection_reasons["not_ready"].engagement_factor == 0.5
    assert config.forms["demo-request"].progressive_fields[:2] == ("company", "title")
    assert config.forms["demo-request"].progressive_max == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["rejection_reasons"]["not_ready"].update(engagement=2),
            "sales.yaml: rejection_reasons.not_ready.engagement: expected `reset` or a factor between 0 and 1",
        ),
        (
            lambda d: d["rejection_reasons"]["not_ready"].update(engagement="halve"),
            "sales.yaml: rejection_reasons.not_ready.engagement: expected a number",
        ),
        (lambda d: d["handoff"].update(sla_hours=0), "sales.yaml: handoff.sla_hours: expected a positive number"),
        (
            lambda d: d["lost"].update(reactivate_after_days="soon"),
            "sales.yaml: lost.reactivate_after_days: expected a number",
        ),
        (lambda d: d["recycle"].update(cooldown="30d"), "sales.yaml: recycle.cooldown: unknown key"),
        (lambda d: d.update(rejection_reasons={}), "sales.yaml: rejection_reasons: name at least one reason"),
    ],
)
def test_a_bad_sales_setting_names_its_path(config_dir, change, message):
    edit(config_dir, "sales.yaml", change)

    assert str(load_error(config_dir)).startswith(message)


def test_a_progressive_field_must_be_a_profile_field(config_dir):
    edit(config_dir, "sources.yaml", lambda d: d["forms"]["demo-request"]["progressive"]["fields"].append("shoe_size"))

    error = load_error(config_dir)

    assert error.file == "sources.yaml"
    assert error.path == "forms.demo-request.progressive.fields[6]"


def test_sales_yaml_is_required(config_dir):
    (config_dir / "sales.yaml").unlink()

    assert str(load_error(config_dir)) == f"sales.yaml: <root>: file not found in {config_dir}"
    assert (CONFIG_DIR / "sales.yaml").is_file()
