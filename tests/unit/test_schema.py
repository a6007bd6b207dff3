"""The store's PynamoDB models are the one definition of the table: template.yaml's
table is theirs, every item reads back as its own model, and no module outside
`nurture.store` spells a key prefix or a table attribute's stored name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from nurture.core.domain import Enrollment, Lead, Touch
from nurture.store import repository, schema

REPO = Path(__file__).resolve().parents[2]


class _CfnLoader(yaml.SafeLoader):
    pass


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def _leads_table() -> dict:
    template = yaml.load((REPO / "template.yaml").read_text(), Loader=_CfnLoader)
    (table,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::DynamoDB::Table"]
    return table["Properties"]


def test_template_yaml_declares_the_table_the_models_define():
    declared = _leads_table()
    defined = schema.table_definition("any")

    def by_name(definitions: list[dict]) -> dict:
        return {d["AttributeName"]: d["AttributeType"] for d in definitions}

    assert by_name(declared["AttributeDefinitions"]) == by_name(defined["AttributeDefinitions"])
    assert declared["KeySchema"] == defined["KeySchema"]
    assert declared["BillingMode"] == defined["BillingMode"]
    assert {i["IndexName"]: (i["KeySchema"], i["Projection"]) for i in declared["GlobalSecondaryIndexes"]} == {
        i["IndexName"]: (i["KeySchema"], i["Projection"]) for i in defined["GlobalSecondaryIndexes"]
    }
    assert declared["TimeToLiveSpecification"] == {
        "AttributeName": schema.time_to_live_attribute(),
        "Enabled": True,
    }


def _lead() -> Lead:
    lead = Lead(lead_id="L1", email="ana@globex.com", anonymous_ids=["a1"], version=3)
    lead.profile = {"domain": "globex.com", "employees": 250, "score": 1.25}
    lead.caps, lead.outbox = {"pricing": [1.5, 2.0]}, [{"id": "e1", "detail": {"x": None}}]
    return lead


@pytest.mark.parametrize("tagged", [True, False], ids=["by kind", "by key (items older than the kind)"])
def test_every_kind_of_item_reads_back_as_its_own_model(tagged):
    touch = Touch("L1", "E1", "welcome", "s1", "email", 10.0, content_id="c1", klass="marketing")
    items = {
        schema.LeadItem: repository.lead_to_item(_lead(), due=lambda lead: 100.0),
        schema.EventItem: repository.event_to_item(repository.StoredEvent("L1", "m1", "track", "Viewed", 1.0, "web")),
        schema.IdentityItem: repository.identity_item(schema.identity_key("email", "ana@globex.com"), "L1"),
        schema.EnrollmentItem: repository.enrollment_to_item(Enrollment("E1", "L1", "welcome", 1, version=2)),
        schema.TouchItem: repository.touch_to_item(touch),
        schema.ContentClaimItem: repository.content_claim_item(touch),
    }
    for model, document in items.items():
        raw = schema.to_item(document)
        if not tagged:
            raw.pop(schema.NurtureItem.kind.attr_name)
        assert type(schema.read(raw)) is model, model


def test_the_plain_items_and_the_models_agree_on_every_attribute():
    lead = _lead()
    item = schema.read(schema.to_item(repository.lead_to_item(lead)))
    assert isinstance(item, schema.LeadItem)
    for name in schema.LEAD_ATTRIBUTES:
        value = getattr(lead, name)
        assert getattr(item, name) == (value if value not in (None, [], {}, "") else None), name
    assert repository.lead_from_item(schema.from_item(item.serialize())) == lead


def test_an_enrollment_and_a_touch_round_trip_through_their_models():
    enrollment = Enrollment("E1", "L1", "welcome", 2, step=3, due_at=5.5, pending={"step": "s1"}, version=4)
    touch = Touch("L1", "E1", "welcome", "s1", "email", 10.0, subject="Hi", message_id="ses-1")
    assert repository.enrollment_from_item(repository.enrollment_to_item(enrollment)) == enrollment
    assert repository.touch_from_item(repository.touch_to_item(touch)) == touch


# Key prefixes and the stored names of attributes, as only nurture.store may write them.
_PREFIXES = ("LEAD#", "ID#", "EVT#", "STAGE#", "ENR#", "TOUCH#", "CONTENT#", "ERASED#", "ACCOUNT#", "DUE#")
_PREFIXES += ("SWEEP#", "AUDIENCE#", "MEMBER#")
_SORT_KEYS = {"PROFILE", "SENDLOG", "SOFTBOUNCE", "TOMBSTONE"}
# The ingest queue's message (core.domain.EventMessage) has short field names of
# its own, some the same as the event item's: those are the message's, not the table's.
_MESSAGE_FIELDS = {"id", "k", "n", "ts", "rt", "src", "uid", "aid", "em", "prev", "gid", "tr", "pr", "cx"}


def _stored_names() -> set[str]:
    names = set()
    for model in schema.MODELS:
        for name, attribute in model.get_attributes().items():
            if attribute.attr_name != name:
                names.add(attribute.attr_name)
    # One-letter names (the kind's `t`, the version's `v`) are words elsewhere
    # too (analytics.js's /v1/t path), so they are left out of this check.
    return {name for name in names - _MESSAGE_FIELDS if len(name) > 1}


def _spelled_outside_the_store(repo: Path = REPO) -> list[str]:
    stored = _stored_names()
    found = []
    roots = [repo / "layers" / "nurture" / "nurture", repo / "tools", repo / "bench", repo / "functions"]
    for path in (p for root in roots for p in root.rglob("*.py")):
        if "store" in path.relative_to(repo).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            where = f"{path.relative_to(repo)}:{getattr(node, 'lineno', '?')}"
            text = None
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
            elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
                text = node.values[0].value
            if isinstance(text, str) and (text.startswith(_PREFIXES) or text in _SORT_KEYS):
                found.append(f"{where} {text!r}")
            # an attribute's stored name used as an item's key: item["lc"], item.get("lc"), {"lc": ...}
            keys = []
            if isinstance(node, ast.Subscript):
                keys = [node.slice]
            elif isinstance(node, ast.Dict):
                keys = list(node.keys)
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "get" and node.args:
                keys = [node.args[0]]
            for key in keys:
                if isinstance(key, ast.Constant) and key.value in stored:
                    found.append(f"{where} item[{key.value!r}]")
    return list(dict.fromkeys(found))  # an f-string's text is also a constant of its own


def test_no_module_outside_the_store_spells_a_key_or_a_stored_attribute_name():
    assert _spelled_outside_the_store() == []


def test_the_check_sees_a_spelled_key_and_a_stored_name(tmp_path):
    # The check itself can fail: a module spelling both is found.
    module = tmp_path / "layers" / "nurture" / "nurture" / "report.py"
    module.parent.mkdir(parents=True)
    module.write_text('def f(item, lead_id):\n    return item["lc"], f"LEAD#{lead_id}"\n')
    for folder in ("tools", "bench", "functions"):
        (tmp_path / folder).mkdir()
    assert sorted(_spelled_outside_the_store(tmp_path)) == [
        "layers/nurture/nurture/report.py:2 'LEAD#'",
        "layers/nurture/nurture/report.py:2 item['lc']",
    ]
