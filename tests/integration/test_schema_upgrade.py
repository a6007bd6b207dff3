"""A table written before items carried their kind: `nurture tag-items` tags
every item by its key, after which the models' queries find them all."""

from __future__ import annotations

import boto3
from moto import mock_aws

from nurture.store.schema import NurtureItem, table_definition, tag_untyped_items
from nurture.store.timelines import DynamoTimelineStore
from nurture.store.values import to_item

TABLE = "leads"


def _untagged_items() -> list[dict]:
    # Items as the store wrote them before the kind attribute (the layout is the same)
    return [
        {"pk": "LEAD#L1", "sk": "PROFILE", "lid": "L1", "em": "ana@globex.com", "v": 2},
        {
            "pk": "LEAD#L1",
            "sk": "ENR#welcome#001",
            "enrollment_id": "E1",
            "lead_id": "L1",
            "track_id": "welcome",
            "seq": 1,
            "status": "active",
            "version": 1,
        },
        {
            "pk": "LEAD#L1",
            "sk": "TOUCH#E1#s1",
            "lead_id": "L1",
            "enrollment_id": "E1",
            "track_id": "welcome",
            "step_id": "s1",
            "channel": "email",
            "at": 5,
            "status": "sent",
        },
        {"pk": "LEAD#L1", "sk": "EVT#m1", "k": "track", "n": "Viewed", "ts": 1, "src": "web"},
        {"pk": "ID#email#ana@globex.com", "sk": "ID", "lid": "L1"},
        {"pk": "SOMETHING#else", "sk": "x"},
    ]


def test_tagging_an_old_table_makes_every_item_visible_to_the_models():
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(**table_definition(TABLE))
        for item in _untagged_items():
            client.put_item(TableName=TABLE, Item=to_item(item))
        timelines = DynamoTimelineStore(client, TABLE)
        # Given the models' queries cannot see untagged items
        assert timelines.enrollments("L1") == [] and timelines.touches("L1") == []

        # When the table is tagged (twice: the second run finds nothing to do)
        first = tag_untyped_items(client, TABLE)
        second = tag_untyped_items(client, TABLE)

        # Then every item of a known kind has its kind, the rest is left alone
        assert first == {"lead": 1, "enrollment": 1, "touch": 1, "event": 1, "identity": 1, "unknown": 1}
        assert second == {"unknown": 1}
        items = client.scan(TableName=TABLE)["Items"]
        assert sum(NurtureItem.kind.attr_name in item for item in items) == 5
        # ... and the models find the enrollment and the touch
        assert [e.enrollment_id for e in timelines.enrollments("L1")] == ["E1"]
        assert [t.touch_id for t in timelines.touches("L1")] == ["E1#s1"]
