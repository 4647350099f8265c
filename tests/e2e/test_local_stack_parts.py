"""The local stack's pure parts: template reading, payload-v2 events, Lambda's batch rules, demo verdicts."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from e2e_support import REPO, STANDIN_TEMPLATE

from keap_relay_local.cli import running_stack
from keap_relay_local.demo import LATER_KINDS, Outcome, Sample, describe_contacts, load_samples, settle
from keap_relay_local.gateway import build_http_event, is_text_content, response_from_result
from keap_relay_local.invoke import failure_of
from keap_relay_local.poller import build_sqs_event, failed_message_ids
from keap_relay_local.stack import resolve_kind
from keap_relay_local.template import HttpRoute, read_stack
from keap_relay_ops.cli import build_parser

ROUTE = HttpRoute("POST", "/forms/{source}", "forms")


@pytest.fixture()
def standin_spec(tmp_path: Path):
    path = tmp_path / "template.yaml"
    path.write_text(STANDIN_TEMPLATE)
    return read_stack(path)


def test_template_reading_links_function_queue_dlq_rule_and_table(standin_spec) -> None:
    fn = standin_spec.functions["echo"]
    assert fn.code_dir == "functions/echo"
    assert fn.handler == "app.handler" and fn.timeout == 10
    assert [r.route_key for r in fn.routes] == ["POST /echo/{source}", "ANY /any/{rest+}"]
    queue = standin_spec.work_queue("echo")
    assert (queue.logical_id, queue.dlq, queue.max_receive_count) == ("EchoQueue", "EchoDLQ", 2)
    assert queue.attributes == {"VisibilityTimeout": "600"}
    assert fn.report_batch_item_failures and fn.batch_size == 10
    (rule,) = standin_spec.rules_for("echo")
    assert rule.event_pattern == {"source": ["e2e-source"], "detail-type": ["echo"]}
    assert rule.targets[0].queue == "EchoQueue"
    assert rule.targets[0].properties["InputPath"] == "$.detail"
    assert standin_spec.idempotency_table().name == "Table"


def test_template_environment_keeps_parameters_and_literals_but_not_resource_references(standin_spec) -> None:
    env = standin_spec.functions["echo"].environment
    assert env == {"FROM_PARAMETER": "e2e-source", "LITERAL": "plain"}


def test_the_project_template_gives_every_function_a_route_a_queue_and_a_dlq() -> None:
    spec = read_stack(REPO / "template.yaml")
    assert set(spec.functions) == {"forms", "purchases", "unsubscribes"}
    for name in spec.functions:
        assert any(r.method == "POST" and r.path == f"/{name}/{{source}}" for r in spec.functions[name].routes)
        assert spec.dead_letter_queue(name) is not None
        assert spec.work_queue(name).max_receive_count >= 1
        assert spec.rules_for(name), f"no EventBridge rule feeds the {name} queue"


def test_route_matching_takes_one_segment_per_parameter() -> None:
    assert ROUTE.match("POST", "/forms/typeform") == {"source": "typeform"}
    assert ROUTE.match("GET", "/forms/typeform") is None
    assert ROUTE.match("POST", "/forms/a/b") is None
    assert HttpRoute("ANY", "/x/{p+}", "f").match("PUT", "/x/a/b") == {"p": "a/b"}


@pytest.mark.parametrize(
    ("content_type", "text"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("text/plain", True),
        ("application/vnd.api+json", True),
        (None, True),
        ("application/x-www-form-urlencoded", False),
        ("multipart/form-data; boundary=x", False),
        ("application/octet-stream", False),
    ],
)
def test_which_bodies_an_http_api_passes_as_text(content_type: str | None, text: bool) -> None:
    assert is_text_content(content_type) is text


def test_http_event_joins_repeated_headers_and_query_values_with_commas() -> None:
    event = build_http_event(
        route=ROUTE,
        path_parameters={"source": "x"},
        method="POST",
        raw_path="/forms/x",
        raw_query="a=1&a=2&b=",
        headers=[("X-Dup", "1"), ("x-dup", "2"), ("Host", "127.0.0.1:3000")],
        body=b"",
        source_ip="127.0.0.1",
        request_id="rid",
        now=1795687333.18,
    )
    assert event["headers"]["x-dup"] == "1,2"
    assert event["headers"]["x-forwarded-port"] == "3000"
    assert event["queryStringParameters"] == {"a": "1,2", "b": ""}
    assert event["requestContext"]["timeEpoch"] == 1795687333180
    assert event["requestContext"]["time"] == "26/Nov/2026:10:02:13 +0000"
    assert event["requestContext"]["requestId"] == "rid"
    assert "body" not in event and event["isBase64Encoded"] is False


def test_lambda_results_become_http_responses() -> None:
    status, headers, body = response_from_result(
        {"statusCode": 202, "headers": {"content-type": "application/json"}, "body": '{"id":"1"}', "cookies": ["a=b"]}
    )
    assert (status, body) == (202, b'{"id":"1"}')
    assert ("Set-Cookie", "a=b") in headers
    raw = base64.b64encode(b"\x00\x01").decode()
    assert response_from_result({"statusCode": 200, "body": raw, "isBase64Encoded": True})[2] == b"\x00\x01"
    # payload 2.0 infers a JSON 200 from a result without statusCode
    assert response_from_result({"status": "ok"}) == (200, [("Content-Type", "application/json")], b'{"status": "ok"}')


def test_batch_item_failures_follow_lambdas_rules() -> None:
    ids = ["m1", "m2", "m3"]
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "m2"}]}, ids, True) == {"m2"}
    assert failed_message_ids({"batchItemFailures": []}, ids, True) == set()
    assert failed_message_ids(None, ids, True) == set()
    # an id not in the batch, or an empty one, fails the whole batch
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "zz"}]}, ids, True) == set(ids)
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": ""}]}, ids, True) == set(ids)
    # without ReportBatchItemFailures the list is ignored
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "m2"}]}, ids, False) == set()


def test_sqs_event_records_have_lambdas_shape() -> None:
    message = {
        "MessageId": "m1",
        "ReceiptHandle": "r1",
        "Body": "{}",
        "MD5OfBody": "99914b932bd37a50b983c5e7c90ae93b",
        "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1"},
        "MessageAttributes": {"Bin": {"DataType": "Binary", "BinaryValue": b"\x01"}},
    }
    (record,) = build_sqs_event([message], "arn:aws:sqs:us-east-1:123456789012:Q", "us-east-1")["Records"]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == "arn:aws:sqs:us-east-1:123456789012:Q"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"]["Bin"] == {
        "binaryValue": "AQ==",
        "dataType": "Binary",
        "stringListValues": [],
        "binaryListValues": [],
    }


def test_kinds_can_be_named_by_folder_or_event_kind() -> None:
    assert [resolve_kind(k) for k in ("forms", "form_submission", "purchase", "unsubscribe")] == [
        "forms",
        "forms",
        "purchases",
        "unsubscribes",
    ]


SNAPSHOT = {
    "contacts": [
        {"Id": 7, "Email": "Ada@Example.com", "tags": [100, 101]},
        {"Id": 8, "Email": "other@example.com", "tags": [300]},
    ],
    "enrolments": [{"contact_id": 7, "sequence_id": 11, "state": "active"}],
    "action_set_runs": [{"contact_id": 7, "action_set_id": 21}, {"contact_id": 7, "action_set_id": 21}],
    "goal_runs": [
        {"contact_id": 7, "goal_id": 41, "integration": "keaprelay", "call_name": "newcustomer"},
        {"contact_id": 8, "goal_id": 42, "integration": "keaprelay", "call_name": "unsubscribed"},
    ],
}


def _sample(kind: str, email: str) -> Sample:
    detail = {"kind": "x", "source": "generic", "id": "ev-1", "contact": {"email": email}}
    return Sample(Path(f"events/{kind}/eventbridge.json"), kind, "eventbridge", {"detail": detail})


def test_demo_reads_what_keap_holds_for_an_address() -> None:
    held = describe_contacts(SNAPSHOT, "ada@example.com")
    assert held == {
        "ids": [7],
        "tags": [100, 101],
        "sequences": ["11:active"],
        "action_sets": ["21x2"],
        "goals": ["keaprelay/newcustomer"],
    }


def test_demo_verdicts() -> None:
    applied = Outcome(_sample("forms", "ada@example.com"))
    settle(applied, SNAPSHOT, [])
    assert (applied.status, applied.applied) == ("applied", True)

    missing = Outcome(_sample("forms", "nobody@example.com"))
    settle(missing, SNAPSHOT, [])
    assert missing.applied is False

    gone = Outcome(_sample("unsubscribes", "nobody@example.com"))
    settle(gone, SNAPSHOT, [])
    assert gone.applied is True  # an unsubscribe for an unknown address is done, not failed

    letter = {"body": "{}", "attributes": {"EventId": "ev-1", "ErrorClass": "LoadingError", "ErrorMessage": "bad"}}
    dead = Outcome(_sample("forms", "ada@example.com"))
    settle(dead, SNAPSHOT, [letter])
    assert (dead.status, dead.applied) == ("in DLQ: LoadingError: bad", False)

    rejected = Outcome(_sample("forms", "ada@example.com"), rejected="rejected: HTTP 401")
    settle(rejected, SNAPSHOT, [])
    assert rejected.applied is False


def test_demo_email_column_is_the_canonical_events_email() -> None:
    by_name = {f"{s.kind}/{s.path.stem}": s for s in load_samples(REPO)}
    # Mailgun's body also holds the message's Message-Id, an address too; the recipient is the contact.
    assert by_name["unsubscribes/http-mailgun"].email == "zaphod@example.com"
    assert by_name["forms/http-webflow"].email == "zaphod@example.com"  # sent as zaphod@Example.com
    assert by_name["unsubscribes/http-mailchimp-validation"].email == ""  # a URL check: no event
    assert all(s.email == s.canonical["contact"]["email"] for s in by_name.values() if s.canonical)


def test_demo_samples_tell_one_story_every_unsubscribe_is_for_a_contact_the_demo_created() -> None:
    samples = load_samples(REPO)
    created = {s.email for s in samples if s.kind not in LATER_KINDS}
    leaving = {f"{s.kind}/{s.path.stem}": s.email for s in samples if s.kind in LATER_KINDS and s.email}
    assert leaving and {name: email for name, email in leaving.items() if email not in created} == {}


def test_demo_finds_the_run_stack_only_while_it_is_up(tmp_path: Path) -> None:
    import json
    import os
    import socket
    import subprocess
    import sys

    state = tmp_path / ".local-stack" / "stack.json"
    assert running_stack(tmp_path) == {}  # no state file
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        gateway = f"http://127.0.0.1:{listener.getsockname()[1]}"
        state.parent.mkdir()
        state.write_text(json.dumps({"gateway": gateway, "pid": os.getpid()}))
        assert running_stack(tmp_path)["gateway"] == gateway
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        state.write_text(json.dumps({"gateway": gateway, "pid": int(gone.stdout)}))
        assert running_stack(tmp_path) == {}  # left behind by a run that was killed
    state.write_text(json.dumps({"gateway": gateway, "pid": os.getpid()}))
    assert running_stack(tmp_path) == {}  # its gateway no longer answers


def test_invoke_counts_error_results_as_failures() -> None:
    assert failure_of({"statusCode": 202, "body": "{}"}) is None
    assert failure_of({"statusCode": 401, "body": "{}"}) == "HTTP error status"
    assert failure_of({"batchItemFailures": [{"itemIdentifier": "m"}]}) == "batch item failures"
    assert failure_of({"status": "dead_lettered"}) == "dead-lettered"
    assert failure_of({"status": "applied"}) is None


def test_cli_offers_run_demo_and_invoke() -> None:
    parser = build_parser()
    assert parser.parse_args(["run"]).gateway_port == 3000
    assert parser.parse_args(["run"]).emulator_port == 8765
    assert parser.parse_args(["run"]).moto_port == 5005
    assert parser.parse_args(["demo", "--gateway", "http://127.0.0.1:3000"]).gateway == "http://127.0.0.1:3000"
    args = parser.parse_args(["invoke", "--function", "forms", "--event", "events/forms/bare.json"])
    assert (args.function, args.event) == ("forms", "events/forms/bare.json")
    with pytest.raises(SystemExit):
        parser.parse_args(["invoke", "--event", "x.json"])  # --function is required
