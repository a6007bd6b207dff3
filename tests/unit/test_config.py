"""Configuration loading: the shipped files load, and every error names the
file, the path inside it and what is wrong."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from nurture.config.loader import DAY, load_config
from nurture.core.errors import ConfigError
from tests.conftest import CONFIG_DIR


def edit(config_dir: Path, name: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply `change` to the parsed YAML file and write it back."""
    path = config_dir / name
    document = yaml.safe_load(path.read_text())
    change(document)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def load_error(config_dir: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(config_dir)
    return caught.value


def test_shipped_config_loads():
    # Given the configuration shipped in config/
    # When it is loaded
    config = load_config(CONFIG_DIR)

    # Then every file contributed what it declares
    assert set(config.segment_sources) == {"website", "product-app"}
    assert set(config.forms) == {
        "demo-request",
        "content-download",
        "revops-assessment",
        "contact-us",
        "webinar-registration",
    }
    assert config.forms["content-download"].fields["email"] == "contact.email"
    assert config.half_life_seconds == 30 * DAY
    assert config.lifecycle.warm["A"] == 20 and config.lifecycle.hot["A"] == 55
    assert {rule.id for rule in config.rules_by_event["page"]} >= {"pricing-page", "careers-page"}
    assert "pricing-page" in {tag.id for tag in config.content_by_event["page"]}


def test_unknown_key_names_its_path(config_dir):
    # Given a fit rule whose `where` is misspelt
    def misspell(document):
        rule = document["fit"]["rules"][0]
        rule["wher"] = rule.pop("where")

    edit(config_dir, "scoring.yaml", misspell)

    # When the configuration is loaded
    error = load_error(config_dir)

    # Then the error names the file and the unknown key's path
    assert error.file == "scoring.yaml"
    assert error.path == "fit.rules[0].wher"
    assert "unknown key" in error.message
    assert error.message.startswith("scoring.yaml: fit.rules[0].wher: ")


def test_unknown_top_level_key_names_it(config_dir):
    # Given sources.yaml with a key the loader does not know
    edit(config_dir, "sources.yaml", lambda document: document.update(webhooks={}))

    # When the configuration is loaded
    error = load_error(config_dir)

    # Then the error names the key
    assert (error.file, error.path) == ("sources.yaml", "webhooks")
    assert "unknown key" in error.reason


def test_bad_operator_names_the_operator(config_dir):
    # Given an engagement rule using an operator that does not exist
    def bad_operator(document):
        document["engagement"]["rules"][0]["where"] = {"properties.path": {"starts_with": "/pricing"}}

    edit(config_dir, "scoring.yaml", bad_operator)

    # When the configuration is loaded
    error = load_error(config_dir)

    # Then the error points at the operator and lists the valid ones
    assert error.file == "scoring.yaml"
    assert error.path == "engagement.rules[0].where.properties.path.starts_with"
    assert "unknown operator" in error.reason and "prefix" in error.reason


def test_duplicate_rule_id_is_rejected(config_dir):
    # Given two engagement rules with the same id
    def duplicate(document):
        document["engagement"]["rules"][1]["id"] = document["engagement"]["rules"][0]["id"]

    edit(config_dir, "scoring.yaml", duplicate)

    # When the configuration is loaded
    error = load_error(config_dir)

    # Then the second rule's id is named
    assert (error.file, error.path) == ("scoring.yaml", "engagement.rules[1].id")
    assert "duplicate rule id 'pricing-page'" in error.reason


def test_form_without_email_mapping_is_rejected(config_dir):
    # Given a form source that does not map the submission's email
    edit(config_dir, "sources.yaml", lambda document: document["forms"]["demo-request"]["fields"].pop("email"))

    # When the configuration is loaded
    error = load_error(config_dir)

    # Then the form's field mapping is named
    assert (error.file, error.path) == ("sources.yaml", "forms.demo-request.fields")
    assert "email" in error.reason


def test_in_list_naming_an_undefined_list_is_rejected(config_dir):
    # Given a fit rule referring to a list that is not defined
    def undefined_list(document):
        document["fit"]["rules"][0]["where"] = {"industry": {"in_list": "dream_industries"}}

    edit(config_dir, "scoring.yaml", undefined_list)

    # When the configuration is loaded
    error = load_error(config_dir)

    # Then the error names the missing list
    assert (error.file, error.path) == ("scoring.yaml", "lists")
    assert "'dream_industries'" in error.reason


def test_grades_must_fall_from_a_to_c(config_dir):
    # Given grade thresholds where B is above A
    edit(config_dir, "scoring.yaml", lambda document: document["fit"].update(grades={"A": 50, "B": 75, "C": 25}))

    # When the configuration is loaded
    error = load_error(config_dir)

    # Then the grades are named
    assert (error.file, error.path) == ("scoring.yaml", "fit.grades")
    assert "fall from A to C" in error.reason


def test_hot_threshold_needs_a_lower_warm_threshold(config_dir):
    # Given grade D may become hot but has no warm threshold
    edit(config_dir, "scoring.yaml", lambda document: document["lifecycle"]["hot"].update(D=150))

    # When the configuration is loaded
    error = load_error(config_dir)

    # Then the offending hot threshold is named
    assert (error.file, error.path) == ("scoring.yaml", "lifecycle.hot.D")
    assert "lower warm threshold" in error.reason


def test_hot_threshold_at_or_below_warm_is_rejected(config_dir):
    # Given grade A's hot threshold equals its warm threshold
    edit(config_dir, "scoring.yaml", lambda document: document["lifecycle"]["hot"].update(A=20))

    # When the configuration is loaded
    error = load_error(config_dir)

    # Then the hot threshold is named
    assert (error.file, error.path) == ("scoring.yaml", "lifecycle.hot.A")


def test_invalid_yaml_names_the_file(config_dir):
    # Given content.yaml that is not YAML
    (config_dir / "content.yaml").write_text("content:\n  - id: [unclosed\n")

    # When the configuration is loaded
    error = load_error(config_dir)

    # Then the error names the file and says why
    assert (error.file, error.path) == ("content.yaml", "")
    assert "not valid YAML" in error.reason
    assert error.message.startswith("content.yaml: <root>: not valid YAML")


def test_missing_file_names_the_file(config_dir):
    # Given a configuration directory without sources.yaml
    (config_dir / "sources.yaml").unlink()

    # When the configuration is loaded
    error = load_error(config_dir)

    # Then the missing file is named
    assert (error.file, error.path) == ("sources.yaml", "")
    assert "file not found" in error.reason


def test_cap_with_fractional_count_is_rejected(config_dir):
    # Given a cap of 1.5 hits
    edit(config_dir, "scoring.yaml", lambda document: document["engagement"]["rules"][0]["cap"].update(count=1.5))

    # When the configuration is loaded
    error = load_error(config_dir)

    # Then the count is named
    assert (error.file, error.path) == ("scoring.yaml", "engagement.rules[0].cap.count")
    assert "whole number" in error.reason


def test_content_with_unknown_buying_stage_is_rejected(config_dir):
    # Given a content tag with a stage that is not one of Gartner's
    edit(config_dir, "content.yaml", lambda document: document["content"][0].update(stages=["awareness"]))

    # When the configuration is loaded
    error = load_error(config_dir)

    # Then the stage is named
    assert (error.file, error.path) == ("content.yaml", "content[0].stages[0]")
    assert "'awareness' is not one of" in error.reason


def test_numeric_threshold_with_thousands_separators_loads(config_dir):
    # Given a revenue threshold written the way people write money
    def with_separators(document):
        rule = next(r for r in document["fit"]["rules"] if r["id"] == "revenue-over-50m")
        rule["where"] = {"annual_revenue": {"gte": "50,000,000"}}

    edit(config_dir, "scoring.yaml", with_separators)

    # When the configuration is loaded
    config = load_config(config_dir)

    # Then the threshold means fifty million
    (condition,) = next(r for r in config.fit.rules if r.id == "revenue-over-50m").conditions
    assert condition.value == 50_000_000


def test_content_condition_naming_an_undefined_list_is_rejected(config_dir):
    # Given a content tag whose condition names a list that is not defined
    def undefined_list(document):
        document["content"][0]["where"] = {"properties.path": {"in_list": "blog_paths"}}

    edit(config_dir, "content.yaml", undefined_list)

    # When the configuration is loaded
    # Then it is rejected, naming the file and the list
    with pytest.raises(ConfigError) as caught:
        load_config(config_dir)
    assert caught.value.file == "content.yaml"
    assert "'blog_paths'" in caught.value.reason
