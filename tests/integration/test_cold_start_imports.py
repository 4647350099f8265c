"""What a cold start loads: each path imports only what it uses, and every AWS client shares one boto3 session.

Each test is a fresh Python process, as a Lambda container is: it imports functions/forms/app.py, answers one
event (webhook, or an SQS batch of one) with SQS, DynamoDB and Secrets Manager on moto and Keap on the
emulator, and reports which modules it loaded and how many botocore sessions it made.
"""

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import pytest

from keap_emulator.server import DEFAULT_API_KEY
from keap_relay.events.sources import SOURCE_NAMES, generic

ROOT = Path(__file__).resolve().parents[2]
KEY = DEFAULT_API_KEY
SECRET = "s3cret-for-cold-start"

# Loaded only by the worker path: the planner, the runner and the Keap clients, the routes file's parser,
# Powertools' idempotency and batch.
WORKER_ONLY = (
    "keap_relay.routing.plan",
    "keap_relay.routing.runner",
    "keap_relay.keap.rest",
    "keap_relay.keap.client",
    "keap_relay.routing.keap_port",
    "yaml",
    "aws_lambda_powertools.utilities.idempotency",
    "aws_lambda_powertools.utilities.batch",
)
# Loaded only by the webhook path: the request parsing and the adapter of the request's source (generic).
WEBHOOK_ONLY = (
    "keap_relay.aws.ingest",
    "keap_relay.events.sources",
    "keap_relay.events.sources._bodies",
    "keap_relay.events.sources._signatures",
    "keap_relay.events.sources.generic",
)
# Never loaded by a generic webhook: the other sources' adapters.
OTHER_ADAPTERS = tuple(f"keap_relay.events.sources.{name}" for name in SOURCE_NAMES if name != "generic")

CHILD = """
import json, sys
import botocore.session

sessions = []
_init = botocore.session.Session.__init__
def _counted(self, *args, **kwargs):
    sessions.append(1)
    _init(self, *args, **kwargs)
botocore.session.Session.__init__ = _counted

import app
from keap_relay.aws import queue

out = app.handler(json.loads(sys.argv[1]), None)
print("RESULT " + json.dumps({
    "out": out,
    "modules": sorted(name for name in json.loads(sys.argv[2]) if name in sys.modules),
    "sessions": len(sessions),
    "sqs_clients": queue.sqs_client.cache_info().currsize,
}))
"""


@pytest.fixture
def world(aws_env, emu):
    """A work queue, a DLQ, an idempotency table and the two secrets, on moto; the function's environment."""
    sqs, dynamodb, secrets = (boto3.client(name) for name in ("sqs", "dynamodb", "secretsmanager"))
    tag = uuid.uuid4().hex[:8]
    work = sqs.create_queue(QueueName=f"cold-{tag}")["QueueUrl"]
    dlq = sqs.create_queue(QueueName=f"cold-dlq-{tag}")["QueueUrl"]
    table = f"cold-{tag}"
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    key_arn = secrets.create_secret(Name=f"keap-key-{tag}", SecretString=KEY)["ARN"]
    hooks_arn = secrets.create_secret(Name=f"hooks-{tag}", SecretString=json.dumps({"generic": SECRET}))["ARN"]
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("KEAP_API_KEY", "WEBHOOK_SECRETS")},
        "PYTHONPATH": str(ROOT / "shared"),
        "KEAP_URL": emu.url,
        "ROUTES_FILE": str(ROOT / "config" / "routes.yaml"),
        "QUEUE_URL": work,
        "DLQ_URL": dlq,
        "IDEMPOTENCY_TABLE": table,
        "KEAP_RATE_LIMIT": "1000",
        "KEAP_API_KEY_SECRET_ARN": key_arn,
        "WEBHOOK_SECRETS_ARN": hooks_arn,
    }
    return {"env": env, "sqs": sqs, "work": work, "dlq": dlq}


def form_event(email):
    return {
        "kind": "form_submission",
        "source": "generic",
        "id": uuid.uuid4().hex,
        "contact": {"email": email, "first_name": "Ada"},
        "form": {"id": "lT4Z3j", "name": "Webinar sign-up"},
    }


def cold_start(env, event):
    probes = json.dumps([*WORKER_ONLY, *WEBHOOK_ONLY, *OTHER_ADAPTERS])
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(event), probes],
        cwd=ROOT / "functions" / "forms",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def test_a_webhook_is_queued_without_loading_the_keap_clients_or_the_worker_utilities(world):
    body = json.dumps(form_event("cold-hook@example.com")).encode()
    event = {
        "version": "2.0",
        "routeKey": "POST /forms/{source}",
        "rawPath": "/forms/generic",
        "rawQueryString": "",
        "headers": {"content-type": "application/json", **generic.sign(body, SECRET)},
        "pathParameters": {"source": "generic"},
        "requestContext": {"http": {"method": "POST", "path": "/forms/generic"}, "requestId": "r1"},
        "body": body.decode(),
        "isBase64Encoded": False,
    }
    got = cold_start(world["env"], event)
    assert got["out"]["statusCode"] == 202, got["out"]
    queued = world["sqs"].receive_message(QueueUrl=world["work"], WaitTimeSeconds=0).get("Messages", [])
    assert [json.loads(m["Body"])["contact"]["email"] for m in queued] == ["cold-hook@example.com"]
    assert got["modules"] == sorted(WEBHOOK_ONLY)
    # The Secrets Manager and SQS clients come from one session (a second one loads botocore's data again).
    assert got["sessions"] == 1


def test_an_sqs_record_is_applied_without_loading_the_webhook_parsing_or_an_sqs_client(world, emu):
    event = {
        "Records": [
            {
                "messageId": "m0",
                "receiptHandle": "h0",
                "body": json.dumps(form_event("cold-worker@example.com")),
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000))},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                "awsRegion": "us-east-1",
            }
        ]
    }
    got = cold_start(world["env"], event)
    assert got["out"] == {"batchItemFailures": []}
    assert emu.model.find_ids_by_email("cold-worker@example.com")
    assert got["modules"] == sorted(WORKER_ONLY)
    # Nothing was re-queued or dead-lettered, so no SQS client was made; Secrets Manager and DynamoDB share one.
    assert got["sqs_clients"] == 0
    assert got["sessions"] == 1
