"""The shared calls/second budget: every container together stays within the key's rate."""

from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from keap_relay.aws.budget import SharedBudget


@pytest.fixture
def table(dynamo_table):
    return dynamo_table


def test_two_containers_share_one_budget(table):
    # Two "containers" (two budgets on the same table) book 12 calls at the same instant: 4 per second.
    a, b = SharedBudget(table, 4), SharedBudget(table, 4)
    now = 1_000_000.25
    waits = sorted([a.reserve(now) for _ in range(6)] + [b.reserve(now) for _ in range(6)])
    assert waits == pytest.approx([0] * 4 + [0.75] * 4 + [1.75] * 4)


def test_concurrent_bookings_never_overfill_a_window(table):
    budget = SharedBudget(table, 5)
    now = 2_000_000.0
    with ThreadPoolExecutor(15) as pool:
        waits = list(pool.map(lambda _: budget.reserve(now), range(15)))
    assert sorted(waits) == pytest.approx([0] * 5 + [1] * 5 + [2] * 5)


def test_rates_below_one_call_per_second_use_longer_windows(table):
    budget = SharedBudget(table, 0.5)
    assert [budget.reserve(10.0), budget.reserve(10.0)] == [0.0, 2.0]


def test_bad_rate_is_refused():
    with pytest.raises(ValueError, match="positive"):
        SharedBudget("t", 0)


def test_expected_calls_are_booked_in_one_write(table):
    budget = SharedBudget(table, 10)
    now = 3_000_000.0
    budget.expect(5)
    assert [budget.reserve(now + i * 0.01) for i in range(5)] == [0.0] * 5
    assert budget.writes == 1
    counter = boto3.client("dynamodb").get_item(TableName=table, Key={"id": {"S": "budget#keap#3000000"}})
    assert counter["Item"]["calls"]["N"] == "5"


def test_more_expected_than_a_window_holds_spills_into_the_next(table):
    budget = SharedBudget(table, 4)
    now = 4_000_000.5
    budget.expect(6)
    assert [budget.reserve(now) for _ in range(6)] == pytest.approx([0] * 4 + [0.5] * 2)
    assert budget.writes == 2


def test_a_lease_dies_with_its_window(table):
    # Slots booked in one second and not used are not carried into the next, which others may have filled.
    a, b = SharedBudget(table, 4), SharedBudget(table, 4)
    now = 5_000_000.0
    a.expect(4)
    assert a.reserve(now) == 0.0  # a holds 3 more slots of this second
    b.expect(4)
    assert [b.reserve(now + 1.0) for _ in range(4)] == [0.0] * 4  # b fills the next second
    assert a.reserve(now + 1.2) == pytest.approx(0.8)  # a's old slots are gone: it waits for the third second
    assert a.writes == 3  # its first booking, then the full second, then the third


def test_containers_booking_blocks_never_overfill_a_window(table):
    # Three containers, each booking blocks of a different size at the same instants: every call gets a slot
    # and no window holds more than the limit.
    budgets = [SharedBudget(table, 5) for _ in range(3)]
    now = 6_000_000.0
    windows: list[int] = []
    for round_ in range(4):
        for size, budget in zip((2, 3, 4), budgets, strict=True):
            budget.expect(size)
            for _ in range(size):
                windows.append(int(now + round_ * 0.1 + budget.reserve(now + round_ * 0.1)))
    assert len(windows) == 4 * (2 + 3 + 4)
    counts = {w: windows.count(w) for w in set(windows)}
    assert max(counts.values()) <= 5
    assert sum(budget.writes for budget in budgets) < len(windows)  # blocks: fewer writes than calls
