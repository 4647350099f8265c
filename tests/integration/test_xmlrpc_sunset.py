"""An XML-RPC brownout: the dead letter names the way out (REST), and REST, the default, does not see it."""

import json
import time
import uuid

from keap_emulator import FaultPlan
from keap_emulator.server import DEFAULT_API_KEY as KEY
from keap_relay.aws.config import Settings
from keap_relay.aws.pipeline import Pipeline

ROUTES = "version: 1\nforms:\n  - match: {}\n    tags: [100]\n    sequences: [{campaign: 5, sequence: 11}]\n"
WAY_OUT = "set KEAP_API=rest after `keap-relay routes migrate --to rest`"


def pipeline(emu, tmp_path, **more):
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    settings = Settings(kind="form_submission", keap_url=emu.url, routes_file=str(routes), keap_api_key_env=KEY, **more)
    return Pipeline("form_submission", settings)


def event(email):
    return {"kind": "form_submission", "source": "generic", "id": uuid.uuid4().hex, "contact": {"email": email}}


def sqs_record(body, first_seen):
    attributes = {"FirstSeenAt": {"stringValue": str(first_seen), "dataType": "Number"}}
    sent = str(int(time.time() * 1000))
    return {
        "Records": [
            {
                "messageId": "m0",
                "receiptHandle": "h0",
                "body": json.dumps(body),
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": sent},
                "messageAttributes": attributes,
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
            }
        ]
    }


def test_a_brownout_outlasting_the_events_age_dead_letters_it_naming_the_way_out(emu, sqs, tmp_path):
    work = sqs.create_queue(QueueName=f"sunset-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    dlq = sqs.create_queue(QueueName=f"sunset-dlq-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    emu.set_faults(FaultPlan(outages=[(0, 4e9)], surfaces={"xmlrpc"}))
    p = pipeline(emu, tmp_path, keap_api="xmlrpc", queue_url=work, dlq_url=dlq, max_event_age_seconds=3600)
    p.runner.keap.client.max_attempts = 1
    assert p.handle(sqs_record(event("late@example.com"), time.time() - 7200)) == {"batchItemFailures": []}
    [letter] = sqs.receive_message(QueueUrl=dlq, MessageAttributeNames=["All"], WaitTimeSeconds=1)["Messages"]
    attributes = {k: v["StringValue"] for k, v in letter["MessageAttributes"].items()}
    assert attributes["ErrorClass"] == "KeapServiceUnavailable" and attributes["Transient"] == "true"
    assert WAY_OUT in attributes["ErrorMessage"]
    assert {c["injected"] for c in emu.calls()} == {"outage"}  # nothing reached Keap


def test_the_default_api_is_rest_and_applies_the_event_through_an_xmlrpc_brownout(emu, tmp_path):
    emu.set_faults(FaultPlan(outages=[(0, 4e9)], surfaces={"xmlrpc"}))
    p = pipeline(emu, tmp_path)
    assert p.settings.keap_api == "rest"
    assert p.handle(event("ada@example.com"))["status"] == "applied"
    [cid] = emu.model.find_ids_by_email("ada@example.com")
    assert emu.model.contact_tags(cid) == {100}
    assert [(e["sequence_id"], e["state"]) for e in emu.model.enrolments(cid)] == [(11, "active")]
    assert {c["surface"] for c in emu.calls()} == {"rest"}
