"""The event archive on the local stack: made from template.yaml (not at ArchiveDays=0), filled by the workers
whatever the channel, listed and erased with `keap-relay archive`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_support import contact_of, form_event, post_webhook, stack_with_routes, unique_email

from keap_relay.aws.archive import EMAIL_INDEX
from keap_relay_local.stack import LocalStack
from keap_relay_ops.cli import main

pytestmark = pytest.mark.e2e

ROUTES = """\
version: 1
forms:
  - match: {}
    tags: [100]
purchases: []
unsubscribes: []
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with stack_with_routes(tmp_path_factory.mktemp("archive"), ROUTES) as running:
        yield running


def archive_cli(capsys: pytest.CaptureFixture[str], stack: LocalStack, *args: str) -> tuple[int, Any]:
    status = main(["archive", *args, "--endpoint-url", stack.moto_url])
    out, err = capsys.readouterr()
    assert err == ""
    return status, json.loads(out)


def test_the_archive_table_is_the_templates_with_its_index_and_ttl(stack: LocalStack) -> None:
    name = stack.deployed.table_names["ArchiveTable"]
    dynamodb = stack_client(stack)
    table = dynamodb.describe_table(TableName=name)["Table"]
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == [EMAIL_INDEX]
    assert [(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]] == [("pk", "HASH"), ("sk", "RANGE")]
    ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires")
    for kind in stack.kinds:
        env = stack.function_environment(kind)
        assert (env["ARCHIVE_TABLE"], env["ARCHIVE_DAYS"]) == (name, "30")


def test_a_signed_webhook_and_a_bus_event_end_up_archived_listed_and_erasable(stack: LocalStack, capsys) -> None:
    email = unique_email("archived")
    hooked, bused = form_event(email), form_event(email)
    status, _ = post_webhook(stack.webhook_url("forms"), hooked)
    assert status == 202
    stack.put_event("forms", bused)
    stack.wait_drained()
    assert stack.emulator.model.contact_tags(contact_of(stack.emulator, email)) == {100}
    status, listed = archive_cli(capsys, stack, "list", "--kind", "forms", "--since", "10m", "--json")
    mine = [row for row in listed if row["email"] == email]
    assert status == 0 and sorted(row["event_id"] for row in mine) == sorted([hooked["id"], bused["id"]])
    assert {row["event_id"]: row["event"] for row in mine}[hooked["id"]] == hooked
    status, answer = archive_cli(capsys, stack, "forget", email, "--yes", "--json")
    assert (status, answer["erased"]) == (0, 2)
    status, listed = archive_cli(capsys, stack, "list", "--kind", "forms", "--since", "10m", "--json")
    assert [row for row in listed if row["email"] == email] == []


def stack_client(stack: LocalStack) -> Any:
    from keap_relay_local.resources import client

    return client("dynamodb", stack.moto_url, stack.region)
