"""`keap-relay archive` and `keap-relay replay` against a deployed stack (`--stack NAME`), with no --endpoint-url:
the stack is made by moto's CloudFormation (the moto server, reached through AWS_ENDPOINT_URL as boto3 reaches
AWS) from template.yaml's own table definitions, so the commands find the archive by the stack's outputs and
the idempotency table and function by its resources, as in AWS. The replay is applied by the real worker under
the function's physical name, and the replay's own check must find what that worker wrote."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from test_pipeline_triggers import form_event

from keap_emulator import FaultPlan
from keap_emulator.server import DEFAULT_API_KEY
from keap_relay.aws import idempotency
from keap_relay.aws.archive import Archive
from keap_relay.aws.config import Settings
from keap_relay.aws.pipeline import Pipeline
from keap_relay.aws.queue import REPLAY_ATTRIBUTES
from keap_relay.events.kinds import KINDS, kind_named
from keap_relay_local.poller import build_sqs_event
from keap_relay_local.template import load_template
from keap_relay_ops.cli import main

ROOT = Path(__file__).resolve().parents[2]
TABLES = ("IdempotencyTable", "ArchiveTable")
ROUTES = "version: 1\nforms:\n  - match: {}\n    tags: [100, 101]\npurchases: []\nunsubscribes: []\n"


def stack_template() -> dict[str, Any]:
    """The resources and outputs the commands look up: the template's two tables as written there, each kind's
    queue, DLQ and function (a stand-in: moto runs none), and the template's output names."""
    real = load_template(ROOT / "template.yaml")["Resources"]
    resources: dict[str, Any] = {
        name: {"Type": real[name]["Type"], "Properties": real[name]["Properties"]} for name in TABLES
    }
    outputs = {f"{name}Name": {"Value": {"Ref": name}} for name in TABLES}
    for kind in KINDS:
        for queue in (kind.queue, kind.dlq):
            resources[queue] = {"Type": "AWS::SQS::Queue"}
            outputs[f"{queue}Url"] = {"Value": {"Ref": queue}}
        # The function's stand-in: CloudFormation names a function `<stack>-<logical id>-<suffix>`, and so moto
        # names a log group. (A moto Lambda function stays tracked for the whole process, and the moto server's
        # moto-api/data.json, which a test of its own reads, then asks for a Docker engine.)
        resources[kind.function] = {"Type": "AWS::Logs::LogGroup"}
    return {"Resources": resources, "Outputs": outputs}


@pytest.fixture
def deployed(aws_env: str) -> dict[str, str]:
    """A stack in moto's CloudFormation; its name and outputs."""
    idempotency.dynamodb_client.cache_clear()
    name = f"relay-{uuid.uuid4().hex[:8]}"
    cloudformation = boto3.client("cloudformation")
    cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(stack_template()))
    found = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    assert found["StackStatus"] == "CREATE_COMPLETE"
    yield {"stack": name, **{o["OutputKey"]: o["OutputValue"] for o in found["Outputs"]}}
    cloudformation.delete_stack(StackName=name)
    idempotency.dynamodb_client.cache_clear()


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, json.loads(out) if out.strip() else None, err


def archived(outputs: dict[str, str], *emails: str) -> tuple[datetime, list[dict[str, Any]]]:
    """Form events archived a minute ago, one per email; the window's start and the events."""
    received = datetime.now(UTC) - timedelta(minutes=1)
    events = [form_event(email=email) for email in emails]
    Archive(outputs["ArchiveTableName"], 30).put_many([(event, received) for event in events])
    return received - timedelta(seconds=1), events


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_archive_list_and_forget_find_the_table_by_the_stacks_output(deployed, capsys) -> None:
    since, events = archived(deployed, "kept@example.com", "forgotten@example.com")
    window = ("--kind", "forms", "--since", stamp(since), "--stack", deployed["stack"], "--json")
    status, listed, _ = cli(capsys, "archive", "list", *window)
    assert status == 0
    assert sorted(e["event_id"] for e in listed) == sorted(e["id"] for e in events)
    status, erased, _ = cli(
        capsys, "archive", "forget", "forgotten@example.com", "--yes", "--stack", deployed["stack"], "--json"
    )
    assert (status, erased["erased"]) == (0, 1)
    _, listed, _ = cli(capsys, "archive", "list", *window)
    assert [e["event_id"] for e in listed] == [events[0]["id"]]


def test_a_stack_that_is_not_there_is_one_line_and_exit_2(aws_env, capsys) -> None:
    status, out, err = cli(
        capsys, "archive", "list", "--kind", "forms", "--since", "2026-12-01T00:00Z", "--stack", "no-such-stack"
    )
    assert (status, out) == (2, None)
    (line,) = err.splitlines()
    assert line.startswith("keap-relay archive list: ") and "no-such-stack" in line


def test_a_replay_on_a_deployed_stack_is_sent_applied_by_the_worker_and_seen_applied(
    deployed, emu, tmp_path, monkeypatch, capsys
) -> None:
    emu.reset()
    emu.set_faults(FaultPlan())
    since, events = archived(deployed, "first@example.com", "second@example.com")
    replay = ("replay", "--kind", "forms", "--since", stamp(since), "--stack", deployed["stack"], "--name", "fix-tags")
    forms = kind_named("forms")
    sqs = boto3.client("sqs")

    status, dry, _ = cli(capsys, *replay, "--dry-run", "--json", "--routes", str(write(tmp_path, ROUTES)))
    assert status == 0 and dry["dry_run"] and len(dry["events"]) == 2
    assert waiting(sqs, deployed[f"{forms.queue}Url"]) == 0  # a dry run sends nothing

    # Sent to the stack's queue, marked; no function polls it here, so the wait runs out: exit 1.
    status, report, _ = cli(capsys, *replay, "--wait", "1s", "--json")
    assert (status, report["sent"], report["applied"], len(report["waiting"])) == (1, 2, 0, 2)
    messages = receive(sqs, deployed[f"{forms.queue}Url"])
    assert sorted(json.loads(m["Body"])["id"] for m in messages) == sorted(e["id"] for e in events)
    assert {m["MessageAttributes"][REPLAY_ATTRIBUTES[0]]["StringValue"] for m in messages} == {"fix-tags"}

    # The real worker applies them as the deployed function would: its records carry the function's name.
    function = boto3.client("cloudformation").describe_stack_resource(
        StackName=deployed["stack"], LogicalResourceId=forms.function
    )["StackResourceDetail"]["PhysicalResourceId"]
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", function)
    worker = Pipeline(
        forms.name,
        Settings(
            kind=forms.name,
            keap_api="xmlrpc",
            keap_url=emu.url,
            routes_file=str(write(tmp_path, ROUTES)),
            keap_api_key_env=DEFAULT_API_KEY,
            idempotency_table=deployed["IdempotencyTableName"],
        ),
    )
    assert worker.handle(build_sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:forms", "us-east-1")) == {
        "batchItemFailures": []
    }
    for event in events:
        (contact,) = emu.model.find_ids_by_email(event["contact"]["email"])
        assert {100, 101} <= emu.model.contact_tags(contact)

    # The same command again: a safe retry. It finds both applied under the replay's name, and the worker
    # applies the re-sent copies no second time.
    capsys.readouterr()  # the worker's own log lines
    calls = len(emu.calls())
    status, report, _ = cli(capsys, *replay, "--wait", "30s", "--json")
    assert (status, report["sent"], report["applied"], report["waiting"]) == (0, 2, 2, [])
    again = receive(sqs, deployed[f"{forms.queue}Url"])
    assert worker.handle(build_sqs_event(again, "arn:aws:sqs:us-east-1:123456789012:forms", "us-east-1")) == {
        "batchItemFailures": []
    }
    assert len(emu.calls()) == calls


def write(directory: Path, text: str) -> Path:
    path = directory / f"routes-{uuid.uuid4().hex[:6]}.yaml"  # routes are loaded once per path
    path.write_text(text)
    return path


def waiting(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def receive(sqs: Any, url: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], AttributeNames=["All"]
    ).get("Messages"):
        messages += batch
    return messages
