"""The shared calls/second budget: every container together stays within the key's rate."""

import threading
import uuid

import boto3
import pytest

from keap_relay.aws import durability
from keap_relay.aws.budget import SharedBudget


@pytest.fixture
def table(aws_env):
    durability.dynamodb_client.cache_clear()
    name = f"budget-{uuid.uuid4().hex[:8]}"
    boto3.client("dynamodb").create_table(
        TableName=name, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    yield name
    durability.dynamodb_client.cache_clear()


def test_two_containers_share_one_budget(table):
    # Two "containers" (two budgets on the same table) book 12 calls at the same instant: 4 per second.
    a, b = SharedBudget(table, 4), SharedBudget(table, 4)
    now = 1_000_000.25
    waits = sorted([a.reserve(now) for _ in range(6)] + [b.reserve(now) for _ in range(6)])
    assert waits == pytest.approx([0] * 4 + [0.75] * 4 + [1.75] * 4)


def test_concurrent_bookings_never_overfill_a_window(table):
    budget = SharedBudget(table, 5)
    now = 2_000_000.0
    waits: list[float] = []
    lock = threading.Lock()

    def book():
        wait = budget.reserve(now)
        with lock:
            waits.append(wait)

    threads = [threading.Thread(target=book) for _ in range(15)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(waits) == pytest.approx([0] * 5 + [1] * 5 + [2] * 5)


def test_rates_below_one_call_per_second_use_longer_windows(table):
    budget = SharedBudget(table, 0.5)
    assert [budget.reserve(10.0), budget.reserve(10.0)] == [0.0, 2.0]


def test_bad_rate_is_refused():
    with pytest.raises(ValueError, match="positive"):
        SharedBudget("t", 0)
