"""`keap-relay status` against the local stack (healthy, events waiting and never received, dead letters,
unreachable) and against a deployed stack in moto's AWS (its metrics and alarms).

The tests run in file order: the moto-only ones first, since moto's state is one per process and the local
stack's fixture lives until the module ends."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_support import (
    DEAD_END_ROUTES,
    REPO,
    XMLRPC_ENV,
    form_event,
    post_webhook,
    stack_with_routes,
    unique_email,
    wait_for,
)

from keap_relay.events.kinds import FOLDERS
from keap_relay_local.resources import MotoServer, client, provision
from keap_relay_local.stack import LocalStack
from keap_relay_local.template import read_stack
from keap_relay_ops import status as status_cli
from keap_relay_ops.cli import main

pytestmark = pytest.mark.e2e

REGION = "us-east-1"


def status(capsys: pytest.CaptureFixture[str], moto_url: str, *args: str) -> tuple[int, str, str]:
    code = main(["status", "--endpoint-url", moto_url, *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_stack_that_cannot_be_reached_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as unused:  # a port nothing listens on once closed
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    code, out, err = status(capsys, f"http://127.0.0.1:{port}")
    assert code == 2
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith("keap-relay status: ") and "Is the local stack running" in line


@pytest.fixture
def stopped() -> Iterator[tuple[str, str]]:
    """The template's queues in moto with no function polling them (a stack whose functions are stopped):
    moto's URL and the forms work queue's."""
    moto = MotoServer()
    moto.start()
    try:
        spec = read_stack(REPO / "template.yaml", REGION)
        deployed = provision(spec, moto.url, REGION, 30)
        yield moto.url, deployed.queue_urls[spec.work_queue("forms").logical_id]
    finally:
        moto.stop()


def test_events_waiting_are_counted_from_attributes_and_never_received(
    stopped: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    moto_url, queue = stopped
    sqs = client("sqs", moto_url, REGION)
    body = json.dumps(form_event(unique_email("status-waiting")))
    sqs.send_message(QueueUrl=queue, MessageBody=body)
    sqs.send_message(QueueUrl=queue, MessageBody=body, DelaySeconds=900)

    code, out, _ = status(capsys, moto_url)
    assert code == 0  # waiting is not a problem by itself; an old event is, and its age is known in AWS only
    (row,) = [line.split() for line in out.splitlines() if line.split()[:1] == ["forms"]]
    assert row[1:5] == ["1", "1", "0", "n/a"]  # waiting, delayed, in flight, oldest (not available locally)
    assert "not available locally" in out
    assert out.rstrip().endswith("healthy")

    code, out, _ = status(capsys, moto_url, "--json")
    forms = next(k for k in json.loads(out)["kinds"] if k["kind"] == "forms")
    assert (forms["waiting"], forms["delayed"], forms["in_flight"]) == (1, 1, 0)

    # status received nothing: the message is still visible, and its first receive is ours
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
    assert attributes["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "0"
    (message,) = sqs.receive_message(QueueUrl=queue, MessageSystemAttributeNames=["ApproximateReceiveCount"])[
        "Messages"
    ]
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"


# A deployed stack, as moto's CloudFormation builds it: the queues and the outputs `dlq --stack` reads, and the
# template's per-stack metrics namespace (a stack deployed before it existed has no MetricsNamespace output).
def aws_template(namespace_output: bool = True) -> dict[str, Any]:
    queues = [f"{prefix}{suffix}" for prefix in ("Forms", "Purchases", "Unsubscribes") for suffix in ("Queue", "DLQ")]
    outputs: dict[str, Any] = {f"{queue}Url": {"Value": {"Ref": queue}} for queue in queues}
    if namespace_output:
        outputs["MetricsNamespace"] = {"Value": {"Fn::Sub": "KeapRelay/${AWS::StackName}"}}
    return {
        "Parameters": {"KeapApi": {"Type": "String", "Default": "rest"}},
        "Resources": {queue: {"Type": "AWS::SQS::Queue"} for queue in queues},
        "Outputs": outputs,
    }


def test_a_deployed_stack_shows_its_metrics_and_alarms(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--stack against moto's AWS: CloudWatch's EventAge, EventsApplied and KeapQuotaLeft, and a firing alarm."""
    import boto3
    from moto import mock_aws

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")  # mock_aws answers every call; nothing leaves the process
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        boto3.client("cloudformation").create_stack(StackName="relay", TemplateBody=json.dumps(aws_template()))
        cloudwatch = boto3.client("cloudwatch")
        # moto's CloudFormation cannot create an AWS::CloudWatch::Alarm: the stack's alarm is made beside it,
        # and the stack's list of alarms (ListStackResources in AWS) is this one.
        alarm = {"Namespace": "AWS/SQS", "MetricName": "ApproximateNumberOfMessagesVisible", "Statistic": "Maximum"}
        cloudwatch.put_metric_alarm(
            AlarmName="relay-FormsDLQAlarm-1",
            **alarm,
            Period=60,
            EvaluationPeriods=1,
            Threshold=0,
            ComparisonOperator="GreaterThanThreshold",
        )
        monkeypatch.setattr(status_cli, "stack_alarms", lambda _cloudformation, stack: [f"{stack}-FormsDLQAlarm-1"])
        service = [{"Name": "service", "Value": "form_submission"}]

        cloudwatch.put_metric_data(
            Namespace="KeapRelay/relay",
            MetricData=[
                {"MetricName": "EventAge", "Dimensions": service, "Value": 7200, "Unit": "Seconds"},
                {"MetricName": "EventsApplied", "Dimensions": service, "Value": 3, "Unit": "Count"},
            ],
        )

        def quota(namespace: str, left: float) -> None:
            cloudwatch.put_metric_data(Namespace=namespace, MetricData=[{"MetricName": "KeapQuotaLeft", "Value": left}])

        # Another stack in the same account and region publishes its own quota: not this stack's. (Only the quota
        # shows it: moto's GetMetricData ignores the namespace of a query with dimensions.)
        quota("KeapRelay/relay", 1234)
        quota("KeapRelay/staging", 5)
        code, out, err = main(["status", "--stack", "relay"]), *capsys.readouterr()
        assert (code, err) == (1, ""), out
        (forms,) = [line.split() for line in out.splitlines() if line.split()[:1] == ["forms"]]
        assert forms[1:5] == ["0", "0", "0", "2h"]  # oldest: EventAge's
        assert forms[5].startswith("<") and forms[6] == "ago"  # last applied, to CloudWatch's 5 minutes
        assert "Keap quota left: 1234" in out
        assert "alarms firing: none" in out
        assert "forms: an event waiting 2h (over 1h)" in out

        cloudwatch.set_alarm_state(AlarmName="relay-FormsDLQAlarm-1", StateValue="ALARM", StateReason="test")
        assert main(["status", "--stack", "relay", "--json", "--max-age", "3h"]) == 1
        shown = json.loads(capsys.readouterr().out)
        assert shown["alarms_firing"] == ["relay-FormsDLQAlarm-1"]
        assert shown["problems"] == ["alarm relay-FormsDLQAlarm-1 is firing"]
        assert shown["kinds"][0]["age_source"] == "EventAge" and shown["kinds"][0]["oldest_age"] == 7200
        assert status_cli.XMLRPC_NOTE not in shown["notes"]  # KeapApi=rest, the default

        # A stack deployed before the namespace was per stack (no MetricsNamespace output) published to KeapRelay.
        # It still drives XML-RPC: a note names the sunset and the way out, without failing the status.
        boto3.client("cloudformation").create_stack(
            StackName="old",
            TemplateBody=json.dumps(aws_template(False)),
            Parameters=[{"ParameterKey": "KeapApi", "ParameterValue": "xmlrpc"}],
        )
        quota("KeapRelay", 99)
        assert main(["status", "--stack", "old", "--json", "--max-age", "3h"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["keap_quota_left"] == 99
        assert shown["notes"] == [status_cli.XMLRPC_NOTE] and "2026-12-31" in status_cli.XMLRPC_NOTE

        assert main(["status", "--stack", "no-such-stack"]) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith("keap-relay status: ")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The local stack, with routes that send every form event to the forms DLQ."""
    with stack_with_routes(tmp_path_factory.mktemp("routes"), DEAD_END_ROUTES, function_env=XMLRPC_ENV) as running:
        yield running


def test_a_stack_with_nothing_waiting_is_healthy(stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = status(capsys, stack.moto_url)
    assert (code, err) == (0, "")
    assert f"local moto at {stack.moto_url}" in out
    for kind in FOLDERS:
        (row,) = [line.split() for line in out.splitlines() if line.split()[:1] == [kind]]
        assert row[1:4] == ["0", "0", "0"] and row[-1] == "0"
    assert out.rstrip().endswith("healthy")


def test_dead_letters_need_a_person_and_show_their_top_reason(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    event = form_event(unique_email("status-dead"))
    assert post_webhook(stack.webhook_url("forms"), event)[0] == 202
    stack.wait_drained(60)
    (letter,) = wait_for(lambda: stack.dead_letters("forms"), 30, "the event in the forms DLQ")
    error_class = letter["attributes"]["ErrorClass"]

    code, out, _ = status(capsys, stack.moto_url)
    assert code == 1
    (row,) = [line for line in out.splitlines() if line.split()[:1] == ["forms"]]
    assert f"1 (1 {error_class})" in row
    assert "needs a person: forms: 1 dead letter" in out
    assert "keap-relay dlq list" in out

    # peeking left the letter in the DLQ, visible
    assert [m["message_id"] for m in stack.dead_letters("forms")] == [letter["message_id"]]


def test_json_shape(stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = status(capsys, stack.moto_url, "--json", "--max-age", "30m")
    shown = json.loads(out)
    assert code == 1 and shown["healthy"] is False  # the dead letter of the test before
    assert shown["problems"] == ["forms: 1 dead letter"]
    assert set(shown) == {
        "where",
        "healthy",
        "problems",
        "max_age_seconds",
        "kinds",
        "keap_quota_left",
        "alarms_firing",
        "notes",
    }
    assert shown["max_age_seconds"] == 1800
    assert [k["kind"] for k in shown["kinds"]] == list(FOLDERS)
    for kind in shown["kinds"]:
        assert set(kind) == {
            "kind",
            "waiting",
            "delayed",
            "in_flight",
            "dead_letters",
            "reasons",
            "peeked",
            "oldest_age",
            "age_source",
            "last_applied",
        }
        assert kind["oldest_age"] is None and kind["last_applied"] is None  # no CloudWatch locally
    forms = shown["kinds"][0]
    assert forms["dead_letters"] == forms["peeked"] == 1
    ((reason,),) = [[r["error_class"] for r in forms["reasons"] if r["count"] == 1]]
    assert reason == stack.dead_letters("forms")[0]["attributes"]["ErrorClass"]
    assert shown["keap_quota_left"] is None and shown["alarms_firing"] is None
    assert any("not available locally" in note for note in shown["notes"])
