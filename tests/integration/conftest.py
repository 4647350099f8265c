"""What the integration tests share: the emulator they call, a DynamoDB table, the event archive's table,
recorded backoffs, and an error's dead-letter name.

The emulator's key is the test module's KEY (default: the emulator's published key); a module that needs
another emulator (a fake clock, a quota) defines its own `server` or `emu`.
"""

import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest

from keap_emulator import EmulatorServer
from keap_emulator.server import DEFAULT_API_KEY
from keap_relay.aws import idempotency
from keap_relay.keap.errors import KeapError

KEY = DEFAULT_API_KEY
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[EmulatorServer]:
    """One emulator for the module, on 127.0.0.1, accepting the module's KEY."""
    with EmulatorServer(port=0, api_key=getattr(request.module, "KEY", KEY)) as emulator:
        yield emulator


@pytest.fixture
def emu(server: EmulatorServer) -> EmulatorServer:
    """The module's emulator with no contacts, faults or quota left from the test before."""
    server.reset()
    server.set_faults(None)
    server.set_quota(None)
    return server


class Sleeps(list):
    """A client's `sleep` that records each backoff instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@contextmanager
def _raises_named(error_class: str, match: str | None = None) -> Iterator[pytest.ExceptionInfo[KeapError]]:
    with pytest.raises(KeapError, match=match) as caught:
        yield caught
    assert caught.value.error_class == error_class


@pytest.fixture
def raises_named() -> Callable[..., AbstractContextManager[pytest.ExceptionInfo[KeapError]]]:
    """`with raises_named("KeapRecordNotFound"):` is pytest.raises(KeapError) that also checks the error's
    dead-letter name (error_class)."""
    return _raises_named


@pytest.fixture
def dynamo_table(aws_env: str) -> Iterator[str]:
    """A fresh DynamoDB table on moto, keyed as the relay's idempotency table is (hash key `id`)."""
    idempotency.dynamodb_client.cache_clear()
    name = f"table-{uuid.uuid4().hex[:8]}"
    boto3.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    yield name
    idempotency.dynamodb_client.cache_clear()


@pytest.fixture(scope="session")
def archive_table_spec() -> Any:
    """template.yaml's ArchiveTable as the local stack reads it (keys, the `by-email` index, TTL)."""
    from keap_relay_local.template import read_stack

    return read_stack(ROOT / "template.yaml").tables["ArchiveTable"]


@pytest.fixture
def archive_table(aws_env: str, archive_table_spec: Any) -> Iterator[str]:
    """A fresh event archive table on moto, made from the template's definition."""
    from keap_relay_local.resources import create_table

    idempotency.dynamodb_client.cache_clear()
    yield create_table(boto3.client("dynamodb"), archive_table_spec, f"archive-{uuid.uuid4().hex[:8]}")
    idempotency.dynamodb_client.cache_clear()
