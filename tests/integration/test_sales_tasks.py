"""Timeline sales-call steps become call tasks on the sales topic, once."""

from __future__ import annotations

import json

from nurture import wiring
from tests.integration.conftest import ingest_record


def test_a_sales_call_step_becomes_one_call_task_with_its_reason(deployed):
    from sales_tasks.app import handler
    from track.app import handler as track

    # Given a known lead who read the buyer's guide, and sales subscribed to the topic
    calls = [
        {
            "type": "identify",
            "userId": "u-call",
            "messageId": "id-call",
            "traits": {"email": "cal@globex.com", "title": "Head of Sales", "phone": "+14155550123"},
        },
        {
            "type": "track",
            "userId": "u-call",
            "event": "Asset Downloaded",
            "messageId": "wp-call",
            "properties": {"asset_id": "wp-revenue-analytics-guide", "asset_type": "white_paper"},
        },
    ]
    track({"Records": [ingest_record(*calls)]}, None)
    (lead_id,) = wiring.get_store().lookup_identities(["email#cal@globex.com"]).values()
    sqs, sns = deployed.client("sqs"), deployed.client("sns")
    inbox = sqs.create_queue(QueueName="crm-inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=deployed.env["SALES_ALERTS_TOPIC_ARN"], Protocol="sqs", Endpoint=arn)

    # When the timeline's sales-call step is consumed, and SQS delivers it twice
    step = {
        "enrollment_id": "mql-revenue-teams-x-1",
        "lead_id": lead_id,
        "track_id": "mql-revenue-teams",
        "step_id": "sales-check-in",
        "channel": "sales_call",
        "note": "Engaged with The revenue analytics buyer's guide during nurture; offer a forecast health check",
    }
    record = {"messageId": "s1", "body": json.dumps(step)}
    assert handler({"Records": [record]}, None) == {"batchItemFailures": []}
    assert handler({"Records": [record]}, None) == {"batchItemFailures": []}

    # Then sales got exactly one call task, with the reason and what the lead read
    messages = sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10).get("Messages", [])
    (task,) = [json.loads(json.loads(m["Body"])["Message"]) for m in messages]
    assert task["type"] == "call_task" and task["phone"] == "+14155550123"
    assert task["reason"].startswith("Engaged with The revenue analytics buyer's guide")
    assert task["recently_consumed"] == ["The revenue analytics buyer's guide"]
