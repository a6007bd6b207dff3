"""The ingest benchmark's models: index writes billed by DynamoDB's rules
(bench/nurture_bench/capacity.py) and SQS batches formed as the event source
mapping forms them (bench/nurture_bench/traffic.py)."""

from __future__ import annotations

import random

import pytest

from tests.conftest import PROJECT_DIR


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(PROJECT_DIR / "bench"))
    import nurture_bench.capacity
    import nurture_bench.traffic

    return nurture_bench


@pytest.fixture
def due_index(bench):
    return bench.capacity.Index("gsi2", ("gsi2pk", "gsi2sk"), "KEYS_ONLY")


def _lead(**attributes):
    return {"pk": {"S": "LEAD#p1"}, "sk": {"S": "LEAD"}, "big": {"S": "x" * 3000}, **attributes}


def test_an_item_entering_or_leaving_a_keys_only_index_is_one_small_write(due_index):
    # Given a 3 KB lead without and with the due keys
    outside = _lead()
    inside = _lead(gsi2pk={"S": "DUE#3"}, gsi2sk={"S": "1700000000#p1"})

    # Then entering and leaving cost one write of the entry's size (keys only, not 3 KB)
    entry = len("pk") + 7 + len("sk") + 4 + len("gsi2pk") + 5 + len("gsi2sk") + 13
    assert due_index.writes(outside, inside) == [entry]
    assert due_index.writes(inside, None) == [entry]
    assert due_index.writes(outside, outside) == []
    assert due_index.writes(None, outside) == []


def test_a_changed_index_key_is_a_delete_and_a_put(due_index):
    # Given a lead whose due key moves
    before = _lead(gsi2pk={"S": "DUE#3"}, gsi2sk={"S": "1700000000#p1"})
    after = _lead(gsi2pk={"S": "DUE#3"}, gsi2sk={"S": "1700086400#p1"}, score={"N": "12"})

    # Then it costs two writes; other attributes changing cost nothing in a keys-only index
    assert len(due_index.writes(before, after)) == 2
    assert due_index.writes(before, {**before, "score": {"N": "12"}}) == []


def test_an_index_with_only_one_of_its_keys_does_not_hold_the_item(due_index):
    # Given a lead with a partition key for the index but no sort key
    half = _lead(gsi2pk={"S": "DUE#3"})

    # Then it is not in the (sparse) index
    assert due_index.entry(half) is None


def test_indexes_are_read_from_the_template(bench):
    # Given the table template.yaml declares
    from nurture_tools.local.template import load_template

    table = load_template(PROJECT_DIR / "template.yaml")["Resources"]["LeadsTable"]["Properties"]

    # Then both indexes are known with their keys and projection
    indexes = {index.name: index for index in bench.capacity.table_indexes(table)}
    assert indexes["gsi1"].keys == ("gsi1pk", "gsi1sk")
    assert indexes["gsi2"].keys == ("gsi2pk", "gsi2sk")
    assert {index.projection for index in indexes.values()} == {"KEYS_ONLY"}


def test_a_batch_closes_at_the_batch_size_or_when_the_window_passes(bench):
    # Given messages arriving: three within a second, then a burst of twelve, then one alone
    arrivals = [0.0, 0.3, 0.9, 5.0, *(5.1 + 0.01 * n for n in range(11)), 20.0]
    shape = bench.traffic.Shape("browser", batch_size=10, window=1.0)

    # When the event source forms invocations
    invocations = bench.traffic._invocations(arrivals, shape, random.Random(1))

    # Then the window closes the first, the batch size the burst's first, and the rest follow
    assert [end - start for start, end, _ in invocations] == [3, 10, 2, 1]
    assert invocations[0][2] >= 1.0  # invoked when the window passed
    assert invocations[1][2] < 6.0  # invoked when the tenth message arrived
