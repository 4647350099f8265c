"""A full run's log output carries no secret and no clear-text email address."""

import dataclasses
import json
import logging
import uuid

import pytest

from keap_emulator import EmulatorServer, FaultPlan
from keap_relay.aws.config import Settings
from keap_relay.aws.pipeline import Pipeline
from keap_relay.events.sources import generic

KEAP_KEY = "KeapAK-SECRET-" + uuid.uuid4().hex
WEBHOOK_SECRET = "whsec-" + uuid.uuid4().hex
EMAIL = "ada.lovelace.secret@example.com"


def http_event(body: bytes, headers: dict) -> dict:
    return {
        "version": "2.0",
        "rawPath": "/forms/generic",
        "headers": headers,
        "pathParameters": {"source": "generic"},
        "requestContext": {"http": {"method": "POST"}, "requestId": "r"},
        "body": body.decode(),
        "isBase64Encoded": False,
    }


def test_full_run_logs_no_secret_and_no_clear_email(aws_env, sqs, capfd, caplog, tmp_path):
    # Our loggers at their most verbose; third-party libraries at INFO, as a function would run them
    # (botocore's DEBUG dumps whole request bodies and is never switched on in a deployment).
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="keap_relay")
    caplog.set_level(logging.DEBUG, logger="keap-relay")
    work = sqs.create_queue(QueueName=f"w-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    dlq = sqs.create_queue(QueueName=f"d-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    routes = tmp_path / "routes.yaml"
    routes.write_text("version: 1\nforms:\n  - match: {}\n    tags: [100]\n    campaigns: [99]\n")
    with EmulatorServer(port=0, api_key=KEAP_KEY) as emu:
        # Configured as a function is, by its environment.
        env = {
            "KEAP_API": "xmlrpc",  # the routes use campaigns (XML-RPC only)
            "KEAP_URL": emu.url,
            "ROUTES_FILE": str(routes),
            "QUEUE_URL": work,
            "DLQ_URL": dlq,
            "KEAP_API_KEY": KEAP_KEY,
            "RETRY_BASE_SECONDS": "0",
            "WEBHOOK_SECRETS": json.dumps({"generic": WEBHOOK_SECRET}),
        }
        p = Pipeline("form_submission", Settings.from_env("form_submission", env))
        event = {"kind": "form_submission", "source": "generic", "id": "e1", "contact": {"email": EMAIL}}
        body = json.dumps(event).encode()
        assert p.handle(http_event(body, generic.sign(body, WEBHOOK_SECRET)))["statusCode"] == 202
        assert p.handle(http_event(body, generic.sign(body, "wrong")))["statusCode"] == 401
        [msg] = sqs.receive_message(QueueUrl=work, AttributeNames=["All"])["Messages"]
        record = {
            "messageId": "m",
            "receiptHandle": "h",
            "body": msg["Body"],
            "eventSource": "aws:sqs",
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
            "messageAttributes": {},
        }
        emu.set_faults(FaultPlan(rate_5xx=1.0, methods={"ContactService.addWithDupCheck"}))
        client = p.runner.keap.client
        client.options = dataclasses.replace(client.options, max_attempts=2)
        p.handle({"Records": [record]})  # transient: re-queued
        emu.set_faults(FaultPlan())
        p.handle({"Records": [record]})  # permanent: [Loading] for sequence 99 → DLQ
        assert (
            sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
                "ApproximateNumberOfMessages"
            ]
            == "1"
        )
    out, err = capfd.readouterr()
    logged = out + err + caplog.text + "\n".join(repr(r.__dict__) for r in caplog.records)
    assert "dead-lettered" in logged and "retried" in logged  # the run did log what happened
    for secret in (KEAP_KEY, WEBHOOK_SECRET):
        assert secret not in logged
    assert EMAIL not in logged
    assert repr(p.settings).count("KeapAK") == 0 and KEAP_KEY not in repr(p.runner.keap)


@pytest.mark.parametrize("text", ["ada@example.com", "key KeapAK-SECRET-x"])
def test_redact_masks_emails_and_known_secrets(text):
    from keap_relay.aws.observe import redact, register_secret

    register_secret("KeapAK-SECRET-x")
    assert "ada@" not in redact(text) and "KeapAK-SECRET-x" not in redact(text)
