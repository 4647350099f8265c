"""DynamoDB on an event's critical path: one round trip before its first Keap call, one after its last, and
fewer calls per event when a batch is applied together (DynamoDB on moto, the emulator over HTTP)."""

import json
import threading
import time
from pathlib import Path

import boto3
import pytest

from keap_emulator.server import DEFAULT_API_KEY
from keap_relay.aws import idempotency
from keap_relay.aws.config import Settings
from keap_relay.aws.pipeline import Pipeline

KEY = DEFAULT_API_KEY
ROUTES = "version: 1\nforms:\n  - match: {}\n    tags: [101, 102, 103]\n    sequences: [{campaign: 5, sequence: 11}]\n"


class Recorded:
    """A DynamoDB client that records each call (name, start, end). Calls listed in `together` must arrive
    together: each waits at a barrier for the others of its group, so calls made one after another would
    break it (threading.BrokenBarrierError) instead of passing."""

    def __init__(self, client):
        self._client = client
        self.calls = []
        self._lock = threading.Lock()
        self._slots = []

    def arm(self, together=()):
        """Forget the calls so far; the next calls arrive in groups of these sizes."""
        with self._lock:
            self.calls = []
            self._slots = [b for b in (threading.Barrier(n, timeout=10) for n in together) for _ in range(b.parties)]

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if name.startswith("_") or not callable(attr) or name in ("meta", "exceptions", "can_paginate"):
            return attr

        def call(**kwargs):
            with self._lock:
                barrier = self._slots.pop(0) if self._slots else None
            started = time.time()
            if barrier is not None:
                barrier.wait()
            try:
                return attr(**kwargs)
            finally:
                item = str((kwargs.get("Key") or {}).get("id", {}).get("S", ""))
                with self._lock:
                    self.calls.append((name, started, time.time(), item))

        return call


@pytest.fixture
def recorded(aws_env, dynamo_table, monkeypatch):
    """The recording client, as every DynamoDB user of a container (idempotency, checkpoints, budget) gets it."""
    client = Recorded(boto3.client("dynamodb"))

    def made():
        return client

    made.cache_clear = lambda: None
    monkeypatch.setattr(idempotency, "dynamodb_client", made)
    return client


def worker(emu, table, tmp_path):
    path = Path(tmp_path) / "routes.yaml"
    path.write_text(ROUTES)
    settings = Settings(
        kind="form_submission",
        keap_api="rest",
        keap_url=emu.url,
        routes_file=str(path),
        keap_api_key_env=KEY,
        idempotency_table=table,
        keap_rate_limit=100.0,  # the budget shared in DynamoDB, high enough never to wait
    )
    return Pipeline("form_submission", settings)


def at_the_start_of_a_second():
    """The shared budget's windows are seconds, and a lease dies with its window: an event that straddles one
    books again. Starting just after a second begins keeps a short run inside one window."""
    time.sleep(1.02 - time.time() % 1)


def sqs(n, prefix):
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "receiptHandle": f"h{i}",
                "body": json.dumps(
                    {
                        "kind": "form_submission",
                        "source": "generic",
                        "id": f"{prefix}-{i}",
                        "contact": {"email": f"{prefix}-{i}@example.com"},
                    }
                ),
                "eventSource": "aws:sqs",
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
                "messageAttributes": {},
            }
            for i in range(n)
        ]
    }


def test_one_event_makes_one_round_trip_before_its_first_keap_call_and_one_after_its_last(
    emu, dynamo_table, tmp_path, recorded
):
    p = worker(emu, dynamo_table, tmp_path)
    p.handle(sqs(1, "warm"))  # the contact model read and the connections: not this test's subject
    # The claim, the checkpoint read and the budget's booking go together; so do the result and the checkpoints.
    client = recorded
    client.arm(together=(3, 2))
    emu.reset()
    at_the_start_of_a_second()
    assert p.handle(sqs(1, "one")) == {"batchItemFailures": []}
    keap = [c["at"] for c in emu.calls() if c["surface"] == "rest"]
    assert len(keap) == 5  # the upsert, three tags and the sequence
    names = sorted(name for name, *_ in client.calls)
    assert names == sorted(["put_item", "batch_get_item", "update_item", "update_item", "update_item"])
    before = [c[0] for c in client.calls if c[2] <= min(keap)]
    after = [c[0] for c in client.calls if c[1] >= max(keap)]
    assert sorted(before) == ["batch_get_item", "put_item", "update_item"]
    assert sorted(after) == ["update_item", "update_item"]


def test_a_batch_of_ten_reads_its_checkpoints_and_books_its_calls_once(emu, dynamo_table, tmp_path, recorded):
    p = worker(emu, dynamo_table, tmp_path)
    p.handle(sqs(1, "warm"))
    client = recorded
    client.arm()
    at_the_start_of_a_second()
    assert p.handle(sqs(10, "ten")) == {"batchItemFailures": []}
    names = [name for name, *_ in client.calls]
    bookings = [c for c in client.calls if c[0] == "update_item" and c[3].startswith("budget#")]
    # Per event: its claim, its result and its checkpoints. Per batch: one read and one booking (another if the
    # batch ran into the next second: a lease dies with its window).
    assert names.count("put_item") == 10 and names.count("batch_get_item") == 1
    assert names.count("update_item") == 10 + 10 + len(bookings) and 1 <= len(bookings) <= 2
    assert len(names) == 31 + len(bookings)  # 3.2 calls an event and a booking per batch; 4 and one each alone
