"""motohttp: moto's application on waitress, bound to loopback — boto3's calls share a kept-alive connection,
stop() closes every connection and the port, and the module entry point serves moto with the SQS
message-move tasks that moto_sqs_move patches in (for as long as moto lacks them)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import moto
import pytest
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from keap_relay_local import moto_sqs_move
from keap_relay_local.motohttp import MotoHTTPServer
from keap_relay_local.resources import client

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"


def unique(prefix: str) -> str:
    # moto's state is per process and other tests' servers share it: names must not collide.
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def peers() -> Iterator[tuple[MotoHTTPServer, list[str]]]:
    """A server over moto's own application that notes the client port of every request it answers."""
    seen: list[str] = []
    moto_app = DomainDispatcherApplication(create_backend_app)

    def noting(environ, start_response):
        seen.append(environ["REMOTE_PORT"])
        return moto_app(environ, start_response)

    server = MotoHTTPServer(port=0, app=noting)
    server.start()
    yield server, seen
    server.stop()


def url_of(server: MotoHTTPServer) -> str:
    host, port = server.get_host_and_port()
    return f"http://{host}:{port}"


def test_a_clients_calls_share_one_kept_alive_connection(peers):
    server, seen = peers
    sqs = client("sqs", url_of(server), REGION)
    queue_url = sqs.create_queue(QueueName=unique("motohttp"))["QueueUrl"]
    for n in range(5):
        sqs.send_message(QueueUrl=queue_url, MessageBody=f"m{n}")
    bodies = sorted(m["Body"] for m in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"])
    dynamodb = client("dynamodb", url_of(server), REGION)
    dynamodb.list_tables()
    dynamodb.list_tables()

    assert bodies == [f"m{n}" for n in range(5)]
    assert len(seen) == 9
    assert len(set(seen[:7])) == 1  # every SQS call on one connection
    assert len(set(seen[7:])) == 1  # and DynamoDB's client on its own


def test_it_binds_loopback_only():
    for address in ("0.0.0.0", "", "10.0.0.1", "localhost", "::1"):
        with pytest.raises(ValueError, match="loopback"):
            MotoHTTPServer(ip_address=address, port=0)
    server = MotoHTTPServer(port=0)
    server.start()
    try:
        assert server.get_host_and_port()[0] == "127.0.0.1"
    finally:
        server.stop()


def test_stop_closes_kept_alive_connections_the_port_and_its_threads():
    before = set(threading.enumerate())
    server = MotoHTTPServer(port=0)
    server.start()
    address = server.get_host_and_port()
    sock = socket.create_connection(address, timeout=10)  # a guard, not a measurement
    sock.sendall(b"GET /moto-api/data.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    stream = sock.makefile("rb")
    assert stream.readline().startswith(b"HTTP/1.1 200")
    assert set(threading.enumerate()) > before

    server.stop()

    while stream.read(65536):  # the rest of the answer, then EOF: the server closed its side
        pass
    sock.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=5)
    assert set(threading.enumerate()) <= before  # the loop's thread and waitress's workers have ended


# ----------------------------------------------------------------------------------------- moto_sqs_move


def test_the_message_move_patch_is_for_the_pinned_moto_that_lacks_the_actions():
    from moto.sqs.responses import SQSResponse

    # When this fails, moto changed: check whether it now has the actions itself; then drop moto_sqs_move.
    assert moto.__version__ == moto_sqs_move.MOTO_VERSION
    moto_sqs_move.install()
    for name, patch in moto_sqs_move.ACTIONS.items():
        assert getattr(SQSResponse, name) is patch, f"moto has {name} natively now: drop moto_sqs_move"


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
        sqs = client("sqs", line.split(" on ", 1)[1].strip(), REGION)
        dlq = sqs.create_queue(QueueName=unique("dlq"))["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sqs.create_queue(
            QueueName=unique("work"),
            Attributes={"RedrivePolicy": f'{{"deadLetterTargetArn": "{dlq_arn}", "maxReceiveCount": 1}}'},
        )

        # moto 5.2.5 has no StartMessageMoveTask: it answers only because the process patched it in.
        assert sqs.start_message_move_task(SourceArn=dlq_arn)["TaskHandle"]
        assert [t["SourceArn"] for t in sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"]] == [dlq_arn]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr


def test_the_entry_point_refuses_a_non_loopback_address():
    proc = entry_point("-H", "0.0.0.0", "-p", "0")
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "loopback" in stderr
