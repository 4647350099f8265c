"""motohttp: moto's application over HTTP/1.1 keep-alive on loopback — boto3 works against it, calls share a
connection, requests are framed exactly (bodies read whole, Connection: close honoured), bad requests and
application errors are answered and closed without harming the server, and the module entry point serves
moto with the SQS message-move tasks patched in."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3.util.connection
from botocore.exceptions import ClientError

from keap_relay_local.motohttp import MotoHTTPServer
from keap_relay_local.resources import client

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
# moto does not check signatures; a credential scope is how it tells which service a raw request is for.
DYNAMODB_AUTH = "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/dynamodb/aws4_request, SignedHeaders=host"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoHTTPServer]:
    server = MotoHTTPServer(ip_address="127.0.0.1", port=0)
    server.start()
    yield server
    server.stop()


def url_of(server: MotoHTTPServer) -> str:
    host, port = server.get_host_and_port()
    return f"http://{host}:{port}"


def unique(prefix: str) -> str:
    # moto's state is per process and other tests' servers share it: names must not collide.
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def connect(server: MotoHTTPServer) -> socket.socket:
    return socket.create_connection(server.get_host_and_port(), timeout=10)  # a guard, not a measurement


def read_response(stream: Any) -> tuple[int, dict[str, str], bytes]:
    """(status, headers by lower-case name, body) of one answer, read by its Content-Length."""
    status_line = stream.readline()
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = stream.read(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


def describe_table(name: str, *, chunked: bool = False, extra: str = "") -> bytes:
    """A raw DynamoDB DescribeTable request; moto's answer names the table, so it shows which body it read."""
    body = f'{{"TableName": "{name}"}}'.encode()
    head = (
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-amz-json-1.0\r\n"
        f"X-Amz-Target: DynamoDB_20120810.DescribeTable\r\nAuthorization: {DYNAMODB_AUTH}\r\n{extra}"
    ).encode()
    if chunked:  # two chunks, one with a chunk extension, then an empty trailer section
        first, rest = body[:7], body[7:]
        framed = b"%x\r\n%s\r\n%x;note=1\r\n%s\r\n0\r\n\r\n" % (len(first), first, len(rest), rest)
        return head + b"Transfer-Encoding: chunked\r\n\r\n" + framed
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


def assert_closed_by_server(sock: socket.socket, stream: Any) -> None:
    assert stream.read() == b""  # EOF: the server closed its side
    sock.close()


# ---------------------------------------------------------------------------------------------- boto3 against it


def test_sqs_create_send_receive_delete(moto):
    sqs = client("sqs", url_of(moto), REGION)
    queue_url = sqs.create_queue(QueueName=unique("motohttp"))["QueueUrl"]
    sqs.send_message(
        QueueUrl=queue_url,
        MessageBody="hello",
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "forms"}},
    )

    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])[
        "Messages"
    ]
    assert [m["Body"] for m in messages] == ["hello"]
    assert messages[0]["MessageAttributes"]["kind"]["StringValue"] == "forms"
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=messages[0]["ReceiptHandle"])
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_dynamodb_put_get_update_and_a_failed_condition(moto):
    dynamodb = client("dynamodb", url_of(moto), REGION)
    table = unique("motohttp")
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "a"}, "n": {"N": "1"}})
    updated = dynamodb.update_item(
        TableName=table,
        Key={"pk": {"S": "a"}},
        UpdateExpression="ADD n :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
        ReturnValues="ALL_NEW",
    )
    assert updated["Attributes"]["n"] == {"N": "2"}

    with pytest.raises(dynamodb.exceptions.ConditionalCheckFailedException):
        dynamodb.put_item(TableName=table, Item={"pk": {"S": "a"}}, ConditionExpression="attribute_not_exists(pk)")
    with pytest.raises(dynamodb.exceptions.ConditionalCheckFailedException):
        dynamodb.update_item(
            TableName=table,
            Key={"pk": {"S": "a"}},
            UpdateExpression="SET n = :ten",
            ConditionExpression="n = :five",
            ExpressionAttributeValues={":ten": {"N": "10"}, ":five": {"N": "5"}},
        )
    assert dynamodb.get_item(TableName=table, Key={"pk": {"S": "a"}})["Item"] == {"pk": {"S": "a"}, "n": {"N": "2"}}
    with pytest.raises(ClientError) as missing:
        dynamodb.get_item(TableName=unique("absent"), Key={"pk": {"S": "a"}})
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_calls_of_one_client_share_one_connection(moto, monkeypatch):
    connects: list[tuple[str, int]] = []
    real_create_connection = urllib3.util.connection.create_connection

    def counting(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        connects.append(address)
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", counting)
    sqs = client("sqs", url_of(moto), REGION)
    accepted, served = moto.connections_accepted, moto.requests_served

    queue_url = sqs.create_queue(QueueName=unique("reuse"))["QueueUrl"]
    for i in range(10):
        sqs.send_message(QueueUrl=queue_url, MessageBody=str(i))
    assert len(sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]) == 10

    assert connects == [moto.get_host_and_port()]
    assert moto.connections_accepted - accepted == 1
    assert moto.requests_served - served == 12


# ------------------------------------------------------------------------------------------------ HTTP framing


def test_connection_close_from_the_client_is_honoured(moto):
    sock = connect(moto)
    stream = sock.makefile("rb")
    sock.sendall(describe_table("closing", extra="Connection: close\r\n"))

    status, headers, body = read_response(stream)
    assert status == 400
    assert b"closing" in body
    assert headers["connection"] == "close"
    assert_closed_by_server(sock, stream)


def test_pipelined_requests_are_answered_in_order_each_from_its_own_body(moto):
    accepted = moto.connections_accepted
    sock = connect(moto)
    stream = sock.makefile("rb")
    # One write: a chunked body, then a Content-Length one; neither may be read into the other.
    sock.sendall(describe_table("first-table", chunked=True) + describe_table("second-table"))

    answers = [read_response(stream), read_response(stream)]
    assert [status for status, _, _ in answers] == [400, 400]
    assert b"Table: first-table not found" in answers[0][2]
    assert b"Table: second-table not found" in answers[1][2]
    assert all("connection" not in headers for _, headers, _ in answers)

    sock.sendall(describe_table("third-table"))  # and the connection is still usable
    assert b"Table: third-table not found" in read_response(stream)[2]
    assert moto.connections_accepted == accepted + 1
    sock.close()


LONG = "x" * 70_000
BAD_REQUESTS = {
    "not a request line": (b"NONSENSE\r\n\r\n", 400),
    "bad HTTP version": (b"GET / HTTP/x.y\r\n\r\n", 400),
    "request line too long": (f"GET /{LONG} HTTP/1.1\r\n\r\n".encode(), 414),
    "header line too long": (f"GET / HTTP/1.1\r\nX-Long: {LONG}\r\n\r\n".encode(), 431),
    "Content-Length not a number": (b"POST / HTTP/1.1\r\nContent-Length: ten\r\n\r\n", 400),
    "two different Content-Lengths": (b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc", 400),
    "Content-Length and chunked": (
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    "chunk size not hex": (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400),
    "chunk longer than its size": (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n0\r\n\r\n", 400),
    "transfer coding other than chunked": (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
}


@pytest.mark.parametrize("raw, expected", list(BAD_REQUESTS.values()), ids=list(BAD_REQUESTS))
def test_a_bad_request_is_refused_and_closed_and_the_server_keeps_serving(moto, raw, expected):
    sock = connect(moto)
    stream = sock.makefile("rb")
    sock.sendall(raw)

    status, headers, _ = read_response(stream)
    assert status == expected
    assert headers["connection"] == "close"
    assert_closed_by_server(sock, stream)
    queue = unique("after-bad-request")
    sqs = client("sqs", url_of(moto), REGION)
    assert sqs.create_queue(QueueName=queue)["QueueUrl"].endswith("/" + queue)


# --------------------------------------------------------------------------------------- application failures


def fragile_app(environ: dict[str, Any], start_response: Any) -> Any:
    """An application that fails in each way a WSGI app can, by path; answers 'hello' otherwise."""
    path = environ["PATH_INFO"]
    if path == "/raise-before-start":
        raise RuntimeError("boom")
    if path == "/bad-header":
        start_response("200 OK", [("X-Injected", "a\r\nSet-Cookie: b")])
        return [b"never"]
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    if path == "/raise-while-iterating":

        def parts() -> Iterator[bytes]:
            yield b"hel"
            raise RuntimeError("boom")

        return parts()
    return [b"hello"]


@pytest.fixture
def fragile() -> Iterator[MotoHTTPServer]:
    server = MotoHTTPServer(port=0, app=fragile_app)
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("path", ["/raise-before-start", "/raise-while-iterating", "/bad-header"])
def test_an_application_error_is_answered_500_and_the_connection_closed(fragile, path):
    sock = connect(fragile)
    stream = sock.makefile("rb")
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())

    status, headers, body = read_response(stream)
    assert status == 500
    assert headers["connection"] == "close"
    assert b"hel" not in body and b"never" not in body and "set-cookie" not in headers
    assert_closed_by_server(sock, stream)

    again = connect(fragile)
    again_stream = again.makefile("rb")
    again.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(again_stream)[::2] == (200, b"hello")
    again.close()


def test_a_head_answer_has_no_body_and_the_next_request_is_read_right(fragile):
    sock = connect(fragile)
    stream = sock.makefile("rb")
    sock.sendall(b"HEAD /ok HTTP/1.1\r\nHost: x\r\n\r\nGET /ok HTTP/1.1\r\nHost: x\r\n\r\n")

    status_line = stream.readline()
    head_headers = []
    while (line := stream.readline()) != b"\r\n":
        head_headers.append(line.lower())
    assert status_line.startswith(b"HTTP/1.1 200")
    assert b"content-length: 5\r\n" in head_headers  # the length of what GET would send; none sent
    assert read_response(stream)[::2] == (200, b"hello")
    sock.close()


# ------------------------------------------------------------------------------------------ binding and stopping


def test_it_binds_loopback_only(moto):
    assert moto.get_host_and_port()[0] == "127.0.0.1"
    for address in ("0.0.0.0", "", "10.0.0.1", "localhost"):
        with pytest.raises(ValueError, match="loopback"):
            MotoHTTPServer(ip_address=address, port=0)


def test_stop_closes_kept_alive_idle_connections():
    server = MotoHTTPServer(port=0, app=fragile_app)
    server.start()
    address = server.get_host_and_port()
    sock = connect(server)
    stream = sock.makefile("rb")
    sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(stream)[0] == 200

    server.stop()
    assert_closed_by_server(sock, stream)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=5)


# -------------------------------------------------------------------------------------------------- entry point


def entry_point(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "local"), str(ROOT / "shared")])}
    return subprocess.Popen(
        [sys.executable, "-m", "keap_relay_local.motohttp", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_the_entry_point_serves_moto_with_message_move_tasks_and_stops_on_sigterm():
    proc = entry_point("-H", "127.0.0.1", "-p", "0")
    try:
        line = proc.stdout.readline()
        assert line.startswith("moto (keep-alive) on http://127.0.0.1:"), line
        url = line.split(" on ", 1)[1].strip()
        sqs = client("sqs", url, REGION)
        dlq = sqs.create_queue(QueueName=unique("dlq"))["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sqs.create_queue(
            QueueName=unique("work"),
            Attributes={"RedrivePolicy": f'{{"deadLetterTargetArn": "{dlq_arn}", "maxReceiveCount": 1}}'},
        )

        # moto 5.2.5 has no StartMessageMoveTask: it answers only because the process patched it in.
        handle = sqs.start_message_move_task(SourceArn=dlq_arn)["TaskHandle"]
        tasks = sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"]
        assert handle
        assert [t["SourceArn"] for t in tasks] == [dlq_arn]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr


def test_the_entry_point_refuses_a_non_loopback_address():
    proc = entry_point("-H", "0.0.0.0", "-p", "0")
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "loopback" in stderr
