"""`keap-relay dlq list|show|redrive|purge` against the local stack: reasons shown, redrive applies once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_support import XMLRPC_ENV, contact_of, form_event, post_webhook, unique_email, wait_for

from keap_relay.routing.runner import OUTCOME_UNKNOWN
from keap_relay_local.stack import LocalStack
from keap_relay_ops import dlq
from keap_relay_ops.cli import build_parser, main

pytestmark = pytest.mark.e2e

MISSING_SEQUENCE = 99  # not in the emulator's world: addToCampaign answers a [Loading] fault, a permanent one
SEQUENCE = 11


def routes_starting(sequence: int) -> str:
    """Routes that tag every form 100 and start `sequence`."""
    forms = [{"match": {}, "tags": [100], "campaigns": [sequence]}]
    return yaml.safe_dump({"version": 1, "dup_check": "Email", "forms": forms, "purchases": [], "unsubscribes": []})


@pytest.fixture(scope="module")
def routes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("routes")
    (folder / "broken.yaml").write_text(routes_starting(MISSING_SEQUENCE))
    (folder / "fixed.yaml").write_text(routes_starting(SEQUENCE))
    return folder


@pytest.fixture(scope="module")
def stack(routes_dir: Path) -> Iterator[LocalStack]:
    with LocalStack(routes_file=routes_dir / "broken.yaml", visibility_timeout=1, function_env=XMLRPC_ENV) as running:
        yield running


@pytest.fixture(scope="module")
def failed(stack: LocalStack) -> dict[str, Any]:
    """A form event that the broken routes send to the forms DLQ."""
    email = unique_email("dlq-cli")
    event = form_event(email)
    assert post_webhook(stack.webhook_url("forms"), event)[0] == 202
    stack.wait_drained(60)
    wait_for(lambda: stack.dead_letters("forms"), 30, "the event in the forms DLQ")
    return {"event": event, "email": email}


def dlq_cli(stack: LocalStack, *args: str) -> int:
    action, rest = args[0], args[1:]
    return main(["dlq", action, "--kind", "forms", "--endpoint-url", stack.moto_url, *rest])


def starts_of(stack: LocalStack, contact_id: int, sequence_id: int) -> list[dict[str, Any]]:
    return [
        s
        for s in stack.emulator.model.sequence_starts(contact_id)
        if s["sequence_id"] == sequence_id and s["outcome"] != "already_active"
    ]


def test_help_names_the_four_actions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["dlq", "--help"])
    assert done.value.code == 0
    shown = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.startswith("    ")]
    assert shown == ["list", "show", "redrive", "purge"]


def test_a_stack_that_is_not_running_is_one_line_on_stderr_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as unused:  # a port nothing listens on once closed
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    assert main(["dlq", "list", "--kind", "forms", "--endpoint-url", f"http://127.0.0.1:{port}"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith("keap-relay dlq list: ") and "Is the local stack running" in line


def test_an_unknown_kind_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["dlq", "purge", "--kind", "refunds", "--yes"])
    assert done.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "unknown kind 'refunds'" in line and "forms, purchases, unsubscribes" in line


def test_list_shows_each_dead_letter_with_its_reason_and_leaves_it_there(
    stack: LocalStack, failed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    event_id = failed["event"]["id"]
    assert dlq_cli(stack, "list") == 0
    text = capsys.readouterr().out
    assert event_id in text
    assert "Loading" in text and "99" in text  # the error class and the failed step
    assert "1 dead letter" in text
    lines = text.splitlines()
    (row,) = [number for number, line in enumerate(lines) if event_id in line]  # whole, when piped
    assert "generic" in lines[row] and "Loading" in lines[row + 1]  # the reason, unwrapped, under its id

    assert dlq_cli(stack, "list", "--json") == 0
    (letter,) = json.loads(capsys.readouterr().out)
    assert letter["EventId"] == event_id
    assert "Loading" in letter["ErrorClass"] + letter["ErrorMessage"]
    assert "99" in letter["FailedStep"]
    assert letter["AttemptCount"] == "1"
    assert letter["Transient"] == "false"
    assert letter["Source"] == "generic"
    assert letter["AgeSeconds"] >= 0
    # listing twice did not consume it
    assert [m["message_id"] for m in stack.dead_letters("forms")] == [letter["MessageId"]]


def test_show_prints_the_body_and_every_attribute(
    stack: LocalStack, failed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert dlq_cli(stack, "show", failed["event"]["id"]) == 0
    text = capsys.readouterr().out
    body = text.split("body:\n", 1)[1]
    assert json.loads(body) == failed["event"]  # pretty-printed, and whole
    assert "\n  " in body
    for name in ("ErrorClass", "FailedStep", "ErrorMessage", "AttemptCount", "FailedAt", "ApproximateReceiveCount"):
        assert name in text

    assert dlq_cli(stack, "show", "no-such-event") == 1


def test_redrive_after_fixing_the_routes_applies_the_event_exactly_once(
    stack: LocalStack, failed: dict[str, Any], routes_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    contact = contact_of(stack.emulator, failed["email"])  # the upsert ran before the failing step
    assert starts_of(stack, contact, SEQUENCE) == []
    stack.reconfigure(routes_file=routes_dir / "fixed.yaml")

    assert dlq_cli(stack, "redrive", "--max-per-second", "5") == 0
    text = capsys.readouterr().out
    assert "COMPLETED: moved 1 of 1" in text
    stack.wait_drained(60)

    assert stack.dead_letters("forms") == []
    assert len(starts_of(stack, contact, SEQUENCE)) == 1  # the fixed step ran, once
    assert stack.emulator.model.find_ids_by_email(failed["email"]) == [contact]
    assert stack.emulator.model.contact_tags(contact) >= {100}

    assert dlq_cli(stack, "redrive", "--status") == 0
    assert "COMPLETED" in capsys.readouterr().out


def test_redriving_an_event_already_applied_calls_keap_zero_times(
    stack: LocalStack, failed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # A stale copy of an applied event in the DLQ (as SQS's own redrive leaves one after maxReceiveCount).
    stack.sqs.send_message(
        QueueUrl=stack.dlq_url("forms"),
        MessageBody=json.dumps(failed["event"]),
        MessageAttributes={"ErrorClass": {"DataType": "String", "StringValue": "Stale"}},
    )
    contact = contact_of(stack.emulator, failed["email"])
    calls_before = len(stack.emulator.calls())
    starts_before = starts_of(stack, contact, SEQUENCE)

    assert dlq_cli(stack, "redrive") == 0
    stack.wait_drained(60)

    assert stack.dead_letters("forms") == []
    assert len(stack.emulator.calls()) == calls_before  # the idempotency record answered it
    assert starts_of(stack, contact, SEQUENCE) == starts_before


def _send_dead_letter(stack: LocalStack, event_id: str) -> None:
    stack.sqs.send_message(
        QueueUrl=stack.dlq_url("forms"),
        MessageBody=json.dumps({"kind": "form_submission", "source": "generic", "id": event_id}),
        MessageAttributes={
            "ErrorClass": {"DataType": "String", "StringValue": "EventInvalid"},
            "Transient": {"DataType": "String", "StringValue": "false"},
            "EventId": {"DataType": "String", "StringValue": event_id},
        },
    )


def test_purge_asks_first_and_older_than_keeps_recent_letters(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for n in range(3):
        _send_dead_letter(stack, f"purge-me-{n}")
    assert len(stack.dead_letters("forms")) == 3

    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert dlq_cli(stack, "purge") == 1
    assert len(stack.dead_letters("forms")) == 3

    assert dlq_cli(stack, "purge", "--older-than", "7d", "--yes") == 0
    assert "nothing to purge" in capsys.readouterr().out
    assert len(stack.dead_letters("forms")) == 3

    asked: list[str] = []

    def yes_then_one_more_arrives(prompt: str) -> str:
        asked.append(prompt)
        _send_dead_letter(stack, "arrived-while-asking")
        return "y"

    monkeypatch.setattr("builtins.input", yes_then_one_more_arrives)
    assert dlq_cli(stack, "purge") == 0
    assert "delete 3 of 3 dead letters" in asked[0]
    assert "deleted 3" in capsys.readouterr().out
    # Only what was counted and asked about goes: the letter that arrived meanwhile stays.
    assert [json.loads(m["body"])["id"] for m in stack.dead_letters("forms")] == ["arrived-while-asking"]
    assert dlq_cli(stack, "purge", "--yes") == 0
    assert stack.dead_letters("forms") == []


def test_list_says_a_person_decides_an_outcome_unknown_letter(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.sqs.send_message(
        QueueUrl=stack.dlq_url("forms"),
        MessageBody=json.dumps({"kind": "form_submission", "source": "generic", "id": "lost-answer"}),
        MessageAttributes={"ErrorClass": {"DataType": "String", "StringValue": OUTCOME_UNKNOWN}},
    )
    assert dlq_cli(stack, "list") == 0
    text = capsys.readouterr().out
    assert f"1 dead letter is {OUTCOME_UNKNOWN}: Keap may have run the step" in text
    assert dlq_cli(stack, "purge", "--yes") == 0
    assert stack.dead_letters("forms") == []


def _age_in_moto(stack: LocalStack, queue_url: str, event_id: str, seconds: float) -> None:
    """Make one message look `seconds` older to SQS (moto runs in this process)."""
    from moto.sqs.models import sqs_backends

    account, name = queue_url.rstrip("/").split("/")[-2:]
    queue = sqs_backends[account][stack.region].get_queue(name)
    (message,) = [m for m in queue._messages if json.loads(m.body).get("id") == event_id]
    message.sent_timestamp -= int(seconds * 1000)


def test_purge_older_than_deletes_only_the_old_ones(stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    _send_dead_letter(stack, "old-one")
    _send_dead_letter(stack, "new-one")
    # Two hours, not days: moto measures SQS's 12 h visibility limit from the send, so it would refuse to
    # release an older message after `list` looked at it.
    _age_in_moto(stack, stack.dlq_url("forms"), "old-one", 2 * 3600)

    assert dlq_cli(stack, "list") == 0
    assert "2h ago" in capsys.readouterr().out
    assert dlq_cli(stack, "purge", "--older-than", "90m", "--yes") == 0
    assert "deleted 1" in capsys.readouterr().out
    assert [json.loads(m["body"])["id"] for m in stack.dead_letters("forms")] == ["new-one"]
    assert dlq_cli(stack, "purge", "--yes") == 0
    assert stack.dead_letters("forms") == []


def test_move_tasks_are_refused_where_aws_refuses_them_and_can_be_cancelled(stack: LocalStack) -> None:
    sqs = stack.sqs
    pair = dlq.local_queues("forms", stack.moto_url)
    assert (pair.queue_url, pair.dlq_url) == (stack.queue_url("forms"), stack.dlq_url("forms"))  # the template's
    dlq_arn, queue_arn = pair.arn(pair.dlq_url), pair.arn(pair.queue_url)

    with pytest.raises(sqs.exceptions.ClientError, match="Dead Letter Queue"):
        sqs.start_message_move_task(SourceArn=queue_arn)  # a work queue is no DLQ
    with pytest.raises(sqs.exceptions.ClientError, match="MaxNumberOfMessagesPerSecond"):
        sqs.start_message_move_task(SourceArn=dlq_arn, MaxNumberOfMessagesPerSecond=501)

    # A task kept busy by a letter held invisible (as a `dlq list` holds it) stays RUNNING.
    _send_dead_letter(stack, "held")
    held = sqs.receive_message(QueueUrl=pair.dlq_url, VisibilityTimeout=30)["Messages"][0]
    handle = sqs.start_message_move_task(SourceArn=dlq_arn)["TaskHandle"]
    with pytest.raises(sqs.exceptions.ClientError, match="already a task running"):
        sqs.start_message_move_task(SourceArn=dlq_arn)
    (task,) = sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"]
    assert (task["Status"], task["TaskHandle"], task["ApproximateNumberOfMessagesToMove"]) == ("RUNNING", handle, 1)
    assert sqs.cancel_message_move_task(TaskHandle=handle)["ApproximateNumberOfMessagesMoved"] == 0
    wait_for(
        lambda: sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"][0]["Status"] == "CANCELLED", 10, "cancel"
    )
    sqs.delete_message(QueueUrl=pair.dlq_url, ReceiptHandle=held["ReceiptHandle"])


class _FakeCloudFormation:
    def __init__(self, outputs: dict[str, str]) -> None:
        self.outputs = outputs
        self.asked: list[str] = []

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        self.asked.append(StackName)
        return {"Stacks": [{"Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in self.outputs.items()]}]}


def test_a_deployed_stack_names_the_queues_through_its_outputs() -> None:
    base = "https://sqs.eu-west-1.amazonaws.com/111122223333/keap-relay-"
    cloudformation = _FakeCloudFormation(
        {
            "FormsQueueUrl": base + "FormsQueue",
            "FormsDLQUrl": base + "FormsDLQ",
            "PurchasesQueueUrl": base + "PurchasesQueue",
            "PurchasesDLQUrl": base + "PurchasesDLQ",
        }
    )
    pair = dlq.aws_queues(
        "purchases", stack="keap-relay", region="eu-west-1", sqs=object(), cloudformation=cloudformation
    )
    assert (pair.kind.folder, pair.queue_url, pair.dlq_url) == (
        "purchases",
        base + "PurchasesQueue",
        base + "PurchasesDLQ",
    )
    assert cloudformation.asked == ["keap-relay"]
    with pytest.raises(LookupError, match="UnsubscribesQueueUrl"):
        dlq.aws_queues("unsubscribes", stack="keap-relay", sqs=object(), cloudformation=cloudformation)


def test_ages_are_read_and_shown_in_plain_units() -> None:
    assert [dlq.parse_duration(t) for t in ("7d", "12h", "30m", "45s", "90", "2w")] == [
        7 * 86400,
        12 * 3600,
        1800,
        45,
        90,
        14 * 86400,
    ]
    with pytest.raises(ValueError):
        dlq.parse_duration("a week")
    assert [dlq.human_age(s) for s in (0, 59, 61, 7200, 3 * 86400 + 5)] == ["0s", "59s", "1m", "2h", "3d"]
