"""Helpers for the end-to-end tests: signed webhooks, canonical events, waiting, a stand-in repository."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from keap_relay.events.sources import generic
from keap_relay_local.defaults import LOCAL_WEBHOOK_SECRET
from keap_relay_local.stack import LocalStack

REPO = Path(__file__).resolve().parents[2]

# Routes whose forms fail for good: sequence 99 is not in the emulator's world, so addToCampaign answers a
# [Loading] fault, and every form event ends in the forms DLQ.
# The functions' environment for tests of the XML-RPC path: REST v2 is the default API.
XMLRPC_ENV = {"KEAP_API": "xmlrpc"}
DEAD_END_ROUTES = """\
version: 1
dup_check: Email
forms:
  - match: {}
    tags: [100]
    campaigns: [99]
purchases: []
unsubscribes: []
"""


def signed_headers(body: bytes, secret: str = LOCAL_WEBHOOK_SECRET) -> dict[str, str]:
    """The generic source's headers for `body` (`x-relay-signature`, JSON), made by its adapter's sign()."""
    return generic.sign(body, secret)


@contextlib.contextmanager
def stack_with_routes(folder: Path, routes: str, **options: Any) -> Iterator[LocalStack]:
    """The local stack with `routes` as its routes file (written into `folder`); a failed record returns after 1 s."""
    path = folder / "routes.yaml"
    path.write_text(routes)
    with LocalStack(routes_file=path, visibility_timeout=1, **options) as running:
        yield running


def http_request(
    url: str, method: str = "POST", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1", "tests only ever talk to loopback"
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, target, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def post_webhook(url: str, event: dict[str, Any], secret: str = LOCAL_WEBHOOK_SECRET) -> tuple[int, dict[str, Any]]:
    """POST a canonical event as the generic source does: compact JSON, signed over the exact bytes."""
    body = json.dumps(event, separators=(",", ":")).encode()
    status, _, raw = http_request(url, body=body, headers=signed_headers(body, secret))
    return status, json.loads(raw or b"null")


def unique_email(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}@example.com"


def canonical(kind: str, email: str, **extra: Any) -> dict[str, Any]:
    """A minimal canonical event of `kind` for `email` from the generic source."""
    event: dict[str, Any] = {
        "kind": kind,
        "source": "generic",
        "id": f"e2e-{uuid.uuid4().hex}",
        "occurred_at": "2026-11-26T10:00:00Z",
        "contact": {"email": email, "first_name": "Test", "last_name": "Person"},
    }
    event.update(extra)
    return event


def form_event(email: str, form_id: str = "lT4Z3j") -> dict[str, Any]:
    return canonical("form_submission", email, form={"id": form_id, "name": "Webinar sign-up"})


def purchase_event(email: str, sku: str = "COURSE-101", total: str = "49.00") -> dict[str, Any]:
    item = {"sku": sku, "product_id": "7", "name": "Course", "quantity": 1, "unit_price": total}
    return canonical(
        "purchase", email, order={"id": uuid.uuid4().hex[:8], "total": total, "currency": "USD", "items": [item]}
    )


def unsubscribe_event(email: str) -> dict[str, Any]:
    return canonical("unsubscribe", email, unsubscribe={"reason": "e2e", "list_id": ""})


def wait_for(condition: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    """Poll until `condition()` is truthy; a bound on waiting, not a measurement."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.1)


def contact_of(emulator: Any, email: str) -> int:
    ids = emulator.model.find_ids_by_email(email)
    assert len(ids) == 1, f"expected one contact for {email}, found {ids}"
    return ids[0]


# ------------------------------------------------------------------------------------------------
# A stand-in repository root: a small template and handlers written into tmp_path, so the stack's own
# machinery (gateway, pollers, redrive, restarts) is tested without the real functions.

STANDIN_TEMPLATE = textwrap.dedent("""\
    AWSTemplateFormatVersion: "2010-09-09"
    Transform: AWS::Serverless-2016-10-31
    Parameters:
      MaxReceiveCount: {Type: Number, Default: 2}
      Source: {Type: String, Default: e2e-source}
    Globals:
      Function:
        Handler: app.handler
        Timeout: 10
        Environment:
          Variables:
            FROM_PARAMETER: !Ref Source
            SECRET_ARN: !Ref SomeSecret
    Resources:
      SomeSecret:
        Type: AWS::SecretsManager::Secret
      EchoFunction:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: functions/echo/
          Environment:
            Variables:
              QUEUE_URL: !Ref EchoQueue
              LITERAL: plain
          Events:
            Post:
              Type: HttpApi
              Properties: {Method: POST, Path: "/echo/{source}"}
            Anything:
              Type: HttpApi
              Properties: {Method: ANY, Path: "/any/{rest+}"}
            Queue:
              Type: SQS
              Properties:
                Queue: !GetAtt EchoQueue.Arn
                BatchSize: 10
                FunctionResponseTypes: [ReportBatchItemFailures]
      EchoQueue:
        Type: AWS::SQS::Queue
        Properties:
          VisibilityTimeout: 600
          RedrivePolicy:
            deadLetterTargetArn: !GetAtt EchoDLQ.Arn
            maxReceiveCount: !Ref MaxReceiveCount
      EchoDLQ:
        Type: AWS::SQS::Queue
      EchoRule:
        Type: AWS::Events::Rule
        Properties:
          EventPattern:
            source: [!Ref Source]
            detail-type: [echo]
          Targets:
            - Id: echo-queue
              Arn: !GetAtt EchoQueue.Arn
              InputPath: $.detail
      Table:
        Type: AWS::DynamoDB::Table
        Properties:
          BillingMode: PAY_PER_REQUEST
          AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
          KeySchema: [{AttributeName: id, KeyType: HASH}]
    """)

# The stand-in handler: HTTP events are echoed back; SQS records are logged to RECORD_FILE and fail
# while their receive count is below the body's `fail_until`; {"sleep": s, "marker": path} touches the
# marker file and sleeps; {"boom": 1} raises; {"env": 1} returns the environment.
STANDIN_HANDLER = textwrap.dedent("""\
    import json, os, time

    def handler(event, context):
        if "requestContext" in event:
            if event["rawPath"].endswith("/boom"):
                raise RuntimeError("boom")
            return {"statusCode": 200, "headers": {"content-type": "application/json", "x-echo": "1"},
                    "body": json.dumps(event)}
        if "Records" in event:
            failures = []
            with open(os.environ["RECORD_FILE"], "a") as log:
                for record in event["Records"]:
                    body = json.loads(record["body"])
                    count = int(record["attributes"]["ApproximateReceiveCount"])
                    log.write(json.dumps({"body": body, "count": count, "id": record["messageId"],
                                          "attrs": record["messageAttributes"]}) + "\\n")
                    if count < body.get("fail_until", 0):
                        failures.append({"itemIdentifier": record["messageId"]})
            return {"batchItemFailures": failures}
        if event.get("sleep"):
            if event.get("marker"):
                open(event["marker"], "w").close()
            time.sleep(event["sleep"])
            return {"slept": event["sleep"]}
        if event.get("boom"):
            raise RuntimeError("boom")
        if event.get("env"):
            return dict(os.environ)
        return {"pid": os.getpid(), "event": event}
    """)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id still exists (a reaped child is gone; the function host reaps its own)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
