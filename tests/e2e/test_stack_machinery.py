"""The local stack's own parts, driven through a stand-in function: gateway, pollers, redrive, restarts."""

from __future__ import annotations

import base64
import http.client
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from e2e_support import http_request, wait_for

from keap_relay_local.defaults import LOCAL_WEBHOOK_SECRET
from keap_relay_local.fnhost import FunctionError
from keap_relay_local.stack import LocalStack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def record_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("records") / "records.jsonl"


@pytest.fixture(scope="module")
def stack(standin_root: Path, record_file: Path) -> Any:
    with LocalStack(
        root=standin_root,
        routes_file="routes.yaml",
        visibility_timeout=1,
        function_env={"RECORD_FILE": str(record_file)},
    ) as running:
        yield running


def records(record_file: Path) -> list[dict[str, Any]]:
    if not record_file.exists():
        return []
    return [json.loads(line) for line in record_file.read_text().splitlines()]


def test_every_server_listens_on_loopback_only(stack: LocalStack) -> None:
    urls = [stack.gateway_url, stack.moto_url, stack.emulator.base_url, stack.queue_url("echo")]
    assert all(url.startswith("http://127.0.0.1:") for url in urls)
    assert stack.gateway.port != 0


def test_gateway_builds_a_payload_v2_event_from_the_request(stack: LocalStack) -> None:
    status, headers, raw = http_request(
        stack.gateway_url + "/echo/acme?b=2&a=1&a=3",
        body=b'{"x": 1}',
        headers={"Content-Type": "application/json", "X-Custom": "Yes", "Cookie": "c1=v1; c2=v2"},
    )
    assert status == 200
    assert headers["x-echo"] == "1"
    event = json.loads(raw)
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /echo/{source}"
    assert event["rawPath"] == "/echo/acme"
    assert event["rawQueryString"] == "b=2&a=1&a=3"
    assert event["queryStringParameters"] == {"a": "1,3", "b": "2"}
    assert event["pathParameters"] == {"source": "acme"}
    assert event["headers"]["x-custom"] == "Yes"
    assert "cookie" not in event["headers"]
    assert event["cookies"] == ["c1=v1", "c2=v2"]
    context = event["requestContext"]
    assert context["http"]["method"] == "POST"
    assert context["http"]["path"] == "/echo/acme"
    assert context["http"]["sourceIp"] == "127.0.0.1"
    assert context["stage"] == "$default"
    assert context["routeKey"] == "POST /echo/{source}"
    assert isinstance(context["timeEpoch"], int)
    assert context["requestId"] == headers["apigw-requestid"]
    assert event["body"] == '{"x": 1}'
    assert event["isBase64Encoded"] is False


def test_gateway_base64_encodes_form_posts_like_an_http_api(stack: LocalStack) -> None:
    body = b"email=a%40example.com&name=Ada"
    _, _, raw = http_request(
        stack.gateway_url + "/echo/forms", body=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    event = json.loads(raw)
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body


def test_gateway_greedy_any_route_takes_every_method(stack: LocalStack) -> None:
    status, _, raw = http_request(stack.gateway_url + "/any/a/b/c", method="DELETE")
    assert status == 200
    event = json.loads(raw)
    assert event["pathParameters"] == {"rest": "a/b/c"}
    assert event["routeKey"] == "ANY /any/{rest+}"
    assert "body" not in event


def test_gateway_answers_unknown_routes_like_api_gateway(stack: LocalStack) -> None:
    for method, path in (("POST", "/nowhere"), ("GET", "/echo/acme")):
        status, _, raw = http_request(stack.gateway_url + path, method=method)
        assert (status, json.loads(raw)) == (404, {"message": "Not Found"})


def test_gateway_turns_an_unhandled_error_into_500(stack: LocalStack) -> None:
    status, _, raw = http_request(stack.gateway_url + "/echo/boom", body=b"{}")
    assert (status, json.loads(raw)) == (500, {"message": "Internal Server Error"})


def test_gateway_refuses_bodies_over_ten_megabytes(stack: LocalStack) -> None:
    port = int(stack.gateway_url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("POST", "/echo/acme")
        conn.putheader("Content-Length", str(10 * 1024 * 1024 + 1))
        conn.endheaders()
        response = conn.getresponse()
        assert (response.status, json.loads(response.read())) == (413, {"message": "Request Entity Too Large"})
    finally:
        conn.close()


def test_functions_get_the_env_contract_wired_to_local_parts(stack: LocalStack) -> None:
    env = stack.invoke("echo", {"env": True})
    assert env["QUEUE_URL"] == stack.queue_url("echo")
    assert env["DLQ_URL"] == stack.dlq_url("echo")
    assert env["MAX_RECEIVE_COUNT"] == "2"
    assert env["IDEMPOTENCY_TABLE"] == "Table"
    assert env["AWS_ENDPOINT_URL"] == stack.moto_url
    assert env["KEAP_URL"] == stack.emulator.url
    assert env["ROUTES_FILE"] == str(stack.root / "routes.yaml")
    secrets = json.loads(env["WEBHOOK_SECRETS"])  # the local secrets every sample in events/ is signed with
    assert secrets == json.loads((Path(__file__).resolve().parents[2] / "events" / "local-secrets.json").read_text())
    assert secrets["generic"] == LOCAL_WEBHOOK_SECRET
    assert env["AWS_ACCESS_KEY_ID"] == "testing"
    # template values: parameters and literals carry over, references to AWS resources do not
    assert env["FROM_PARAMETER"] == "e2e-source"
    assert env["LITERAL"] == "plain"
    assert "SECRET_ARN" not in env


def test_a_failed_record_returns_after_the_visibility_timeout_and_its_batch_mates_do_not(
    stack: LocalStack, record_file: Path
) -> None:
    stack.sqs.send_message(QueueUrl=stack.queue_url("echo"), MessageBody=json.dumps({"n": "once"}))
    stack.sqs.send_message(QueueUrl=stack.queue_url("echo"), MessageBody=json.dumps({"n": "retry", "fail_until": 2}))
    stack.wait_drained(30)
    seen = [r for r in records(record_file) if r["body"].get("n") in ("once", "retry")]
    assert sorted((r["body"]["n"], r["count"]) for r in seen) == [("once", 1), ("retry", 1), ("retry", 2)]
    assert stack.dead_letters("echo") == []


def test_a_record_failing_every_receive_is_moved_to_the_dlq_by_the_redrive(stack: LocalStack) -> None:
    stack.sqs.send_message(
        QueueUrl=stack.queue_url("echo"),
        MessageBody=json.dumps({"n": "poison", "fail_until": 99}),
        MessageAttributes={"Origin": {"DataType": "String", "StringValue": "e2e"}},
    )
    letters = wait_for(lambda: stack.dead_letters("echo"), 30, "a dead letter")
    assert [json.loads(letter["body"])["n"] for letter in letters] == ["poison"]
    assert letters[0]["attributes"] == {"Origin": "e2e"}
    # read without deleting: a second look sees the same message
    assert [letter["message_id"] for letter in stack.dead_letters("echo")] == [letters[0]["message_id"]]
    stack.wait_drained(30)


def test_sqs_records_carry_lambda_shaped_attributes(stack: LocalStack, record_file: Path) -> None:
    stack.sqs.send_message(
        QueueUrl=stack.queue_url("echo"),
        MessageBody=json.dumps({"n": "attrs"}),
        MessageAttributes={"Kind": {"DataType": "String", "StringValue": "form_submission"}},
    )
    stack.wait_drained(30)
    record = next(r for r in records(record_file) if r["body"].get("n") == "attrs")
    assert record["attrs"] == {
        "Kind": {"stringValue": "form_submission", "stringListValues": [], "binaryListValues": [], "dataType": "String"}
    }


def test_put_event_goes_through_the_rule_and_input_path_to_the_queue(stack: LocalStack, record_file: Path) -> None:
    stack.put_event("echo", {"n": "from-the-bus"})
    stack.wait_drained(30)
    bodies = [r["body"] for r in records(record_file)]
    assert {"n": "from-the-bus"} in bodies  # the detail alone, as the template's InputPath says


def test_killed_function_fails_its_invocation_and_comes_back(stack: LocalStack, tmp_path: Path) -> None:
    before = stack.invoke("echo", {"hello": 1})["pid"]
    errors: list[BaseException] = []
    marker = tmp_path / "running"

    def slow_invoke() -> None:
        try:
            stack.invoke("echo", {"sleep": 5, "marker": str(marker)})
        except FunctionError as exc:
            errors.append(exc)

    worker = threading.Thread(target=slow_invoke)
    worker.start()
    wait_for(marker.exists, 10, "the slow invocation to be running")
    new_pid = stack.kill_function("echo")
    worker.join(30)
    assert len(errors) == 1 and errors[0].error_type == "Runtime.ExitError"
    after = stack.invoke("echo", {"hello": 2})["pid"]
    assert before != after == new_pid


def test_a_crashed_function_is_replaced_on_the_next_invoke(stack: LocalStack) -> None:
    host = stack.function_host("echo")
    host.kill()
    assert not host.alive
    assert stack.invoke("echo", {"hello": 3})["event"] == {"hello": 3}
    assert host.alive


def test_an_unhandled_error_is_a_failed_invocation(stack: LocalStack) -> None:
    with pytest.raises(FunctionError) as caught:
        stack.invoke("echo", {"boom": 1})
    assert caught.value.error_type == "RuntimeError"
