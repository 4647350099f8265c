"""Fixtures shared by the suite: a moto server and AWS settings that point boto3 at it (loopback only)."""

import pytest

FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def moto_url():
    """One moto server (SQS, DynamoDB, EventBridge, Secrets Manager) for the session, on 127.0.0.1, with
    keep-alive connections as AWS's endpoints and the local stack's moto have them."""
    from keap_relay_local.motohttp import MotoHTTPServer

    server = MotoHTTPServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(moto_url, monkeypatch):
    """Environment in which every boto3 client (and the pipeline's cached SQS client) talks to moto."""
    from keap_relay.aws import queue

    for name, value in FAKE_AWS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    queue.sqs_client.cache_clear()
    yield moto_url
    queue.sqs_client.cache_clear()


@pytest.fixture
def sqs(aws_env):
    import boto3

    return boto3.client("sqs")
