"""The benchmark's in-process DynamoDB (bench/nurture_bench/fake_aws.py) reads
expressions as DynamoDB does, so a CPU run makes the calls a moto run makes."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from tests.conftest import PROJECT_DIR

TABLE = "leads"


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(PROJECT_DIR / "bench"))
    import nurture_bench.expressions
    import nurture_bench.fake_aws

    return nurture_bench


@pytest.fixture
def dynamodb(bench, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.session.Session(region_name="us-east-1").client("dynamodb")
    fake = bench.fake_aws.FakeAws()
    fake.attach(client)
    return client


def _lead(**attributes: Any) -> dict[str, Any]:
    return {"pk": {"S": "LEAD#p1"}, "sk": {"S": "LEAD"}, **attributes}


def _stored(client) -> dict[str, Any]:
    return client.get_item(TableName=TABLE, Key={"pk": {"S": "LEAD#p1"}, "sk": {"S": "LEAD"}})["Item"]


def test_remove_then_set_from_another_attribute_is_two_clauses(dynamodb):
    # Given a lead with an outbox and a due key
    dynamodb.put_item(
        TableName=TABLE,
        Item=_lead(ob={"L": [{"S": "e1"}]}, gdue={"S": "1700000000#p1"}, gsi2sk={"S": "1600000000#p1"}, v={"N": "3"}),
    )

    # When the outbox is cleared and the due key put back, on the version read
    dynamodb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": "LEAD#p1"}, "sk": {"S": "LEAD"}},
        UpdateExpression="REMOVE ob SET gsi2sk = gdue",
        ConditionExpression="v = :v",
        ExpressionAttributeValues={":v": {"N": "3"}},
    )

    # Then the outbox is gone and the index key holds the due key's value
    item = _stored(dynamodb)
    assert "ob" not in item
    assert item["gsi2sk"] == {"S": "1700000000#p1"}
    assert item["gdue"] == {"S": "1700000000#p1"}


def test_set_takes_several_clauses_with_functions_and_arithmetic(bench):
    # Given a lead with a score and a list of recent ids
    item = _lead(score={"N": "10"}, recent={"L": [{"S": "a"}]})

    # When one SET carries four clauses
    after = bench.expressions.apply_update(
        "SET score = score + :points, recent = list_append(recent, :ids), #first = if_not_exists(#first, :now), "
        "seen = if_not_exists(score, :zero)",
        item,
        {"#first": "first_seen"},
        {":points": {"N": "2.5"}, ":ids": {"L": [{"S": "b"}]}, ":now": {"N": "1700"}, ":zero": {"N": "0"}},
    )

    # Then each is applied, every operand read from the item as it was
    assert after["score"] == {"N": "12.5"}
    assert after["recent"] == {"L": [{"S": "a"}, {"S": "b"}]}
    assert after["first_seen"] == {"N": "1700"}
    assert after["seen"] == {"N": "10"}
    assert item["score"] == {"N": "10"}  # the input is not changed


def test_remove_takes_a_list_of_paths_nested_ones_too(bench):
    # Given a lead with an outbox, both due index keys and a nested profile
    item = _lead(
        ob={"L": []},
        gsi2pk={"S": "DUE#3"},
        gsi2sk={"S": "1#p1"},
        profile={"M": {"title": {"S": "CTO"}, "phone": {"S": "+1"}}},
        tags={"L": [{"S": "x"}, {"S": "y"}]},
    )

    # When they are removed in one clause
    after = bench.expressions.apply_update("REMOVE ob, gsi2pk, gsi2sk, profile.phone, tags[0]", item)

    # Then exactly those paths are gone
    assert set(after) == {"pk", "sk", "profile", "tags"}
    assert after["profile"] == {"M": {"title": {"S": "CTO"}}}
    assert after["tags"] == {"L": [{"S": "y"}]}


def test_add_counts_and_grows_sets_and_delete_shrinks_them(bench):
    # Given a lead with a counter and a set of channels
    item = _lead(visits={"N": "4"}, channels={"SS": ["web"]})

    # When ADD and DELETE apply, one creating an attribute
    after = bench.expressions.apply_update(
        "ADD visits :one, channels :email, hits :one DELETE channels :web",
        item,
        None,
        {":one": {"N": "1"}, ":email": {"SS": ["email"]}, ":web": {"SS": ["web"]}},
    )

    # Then the counter moved, the missing one started at the value, and the set changed
    assert after["visits"] == {"N": "5"}
    assert after["hits"] == {"N": "1"}
    assert after["channels"] == {"SS": ["email"]}


def test_a_condition_that_does_not_hold_refuses_the_write_as_dynamodb_does(dynamodb):
    # Given a lead at version 4
    dynamodb.put_item(TableName=TABLE, Item=_lead(v={"N": "4"}, consent={"S": "subscribed"}))

    # When an update expects version 3, or a looser consent
    with pytest.raises(dynamodb.exceptions.ConditionalCheckFailedException):
        dynamodb.update_item(
            TableName=TABLE,
            Key={"pk": {"S": "LEAD#p1"}, "sk": {"S": "LEAD"}},
            UpdateExpression="SET v = v + :one",
            ConditionExpression="v = :v AND attribute_exists(pk)",
            ExpressionAttributeValues={":v": {"N": "3"}, ":one": {"N": "1"}},
        )
    dynamodb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": "LEAD#p1"}, "sk": {"S": "LEAD"}},
        UpdateExpression="SET consent = :c",
        ConditionExpression="attribute_not_exists(consent) OR NOT (consent IN (:c, :d))",
        ExpressionAttributeValues={":c": {"S": "unsubscribed"}, ":d": {"S": "complained"}},
    )

    # Then only the write whose condition held changed the lead
    assert _stored(dynamodb)["v"] == {"N": "4"}
    assert _stored(dynamodb)["consent"] == {"S": "unsubscribed"}


def test_a_query_reads_a_partition_by_sort_key_condition(dynamodb):
    # Given a lead, two aliases and an event
    for sk in ("LEAD", "ALIAS#a1", "ALIAS#a2", "EV#m1"):
        dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "LEAD#p1"}, "sk": {"S": sk}})

    # When the aliases are queried
    found = dynamodb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :alias)",
        ExpressionAttributeValues={":pk": {"S": "LEAD#p1"}, ":alias": {"S": "ALIAS#"}},
        ProjectionExpression="sk",
    )

    # Then both, and only them, come back
    assert [item["sk"]["S"] for item in found["Items"]] == ["ALIAS#a1", "ALIAS#a2"]


def test_a_transaction_writes_nothing_when_one_condition_fails(dynamodb):
    # Given a lead at version 2
    dynamodb.put_item(TableName=TABLE, Item=_lead(v={"N": "2"}))

    # When a transaction puts an event and updates the lead on a stale version
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "LEAD#p1"}, "sk": {"S": "EV#m1"}}}},
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": {"pk": {"S": "LEAD#p1"}, "sk": {"S": "LEAD"}},
                        "UpdateExpression": "SET v = :three",
                        "ConditionExpression": "v = :one",
                        "ExpressionAttributeValues": {":three": {"N": "3"}, ":one": {"N": "1"}},
                    }
                },
            ]
        )

    # Then neither write happened
    assert "Item" not in dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "LEAD#p1"}, "sk": {"S": "EV#m1"}})
    assert _stored(dynamodb)["v"] == {"N": "2"}


def test_an_expression_it_cannot_read_is_an_error_not_a_guess(bench):
    # Given a lead
    item = _lead(ob={"L": []})

    # When an update expression is malformed (a comma between clauses, an unknown clause)
    # Then it is refused, naming the expression
    with pytest.raises(bench.expressions.ExpressionError, match="REMOVE ob"):
        bench.expressions.apply_update("REMOVE ob, SET gsi2sk = gdue", item)
    with pytest.raises(bench.expressions.ExpressionError, match="RENAME"):
        bench.expressions.apply_update("RENAME ob", item)
