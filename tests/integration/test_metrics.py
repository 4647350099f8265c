"""The metrics the functions emit (EMF on stdout), read back from what a real invocation prints: each path's
duration, webhooks by status, events' age, Keap calls, 429s and the quota left, against the emulator."""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from keap_emulator import QuotaPlan
from keap_emulator.server import DEFAULT_API_KEY
from keap_relay.aws import observe
from keap_relay.aws.config import Settings
from keap_relay.aws.pipeline import Pipeline
from keap_relay.aws.queue import EventFailed
from keap_relay.events.sources import generic

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cret-for-metrics"
KIND = "form_submission"


def emitted(out: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], list[float]]:
    """(metric name, its dimensions) -> values, from the EMF blobs among the printed lines."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]] = defaultdict(list)
    for line in out.splitlines():
        try:
            blob = json.loads(line)
        except ValueError:
            continue
        if not isinstance(blob, dict) or "_aws" not in blob:
            continue
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == observe.NAMESPACE
            for dimension_set in directive["Dimensions"]:
                dims = tuple((d, blob[d]) for d in dimension_set)
                for metric in directive["Metrics"]:
                    assert metric["Unit"] == observe.METRICS[metric["Name"]].unit
                    values = blob[metric["Name"]]
                    found[(metric["Name"], dims)].extend(values if isinstance(values, list) else [values])
    return found


def by_kind(name: str, kind: str = KIND) -> tuple[str, tuple[tuple[str, str], ...]]:
    return (name, (("service", kind),))


STACK = (("service", observe.STACK_SERVICE),)


@pytest.fixture
def pipeline(emu, monkeypatch):
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE", raising=False)
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)

    def build(api: str = "xmlrpc", **more: Any) -> Pipeline:
        routes = ROOT / ("config/routes.yaml" if api == "rest" else "tests/fixtures/routes-xmlrpc.yaml")
        settings = Settings(
            kind=KIND,
            keap_api=api,
            keap_url=emu.url,
            routes_file=str(routes),
            keap_api_key_env=DEFAULT_API_KEY,
            webhook_secrets_env=json.dumps({"generic": SECRET}),
            **more,
        )
        return Pipeline(KIND, settings)

    return build


def form_event(**over: Any) -> dict[str, Any]:
    event = {
        "kind": KIND,
        "source": "generic",
        "id": uuid.uuid4().hex,
        "contact": {"email": "ada@example.com", "first_name": "Ada"},
        "form": {"id": "lT4Z3j", "name": "Webinar sign-up"},
    }
    event.update(over)
    return event


def http_event(body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    raw = json.dumps(body).encode()
    return {
        "version": "2.0",
        "routeKey": "POST /forms/{source}",
        "rawPath": "/forms/generic",
        "rawQueryString": "",
        "headers": generic.sign(raw, SECRET) if headers is None else headers,
        "pathParameters": {"source": "generic"},
        "requestContext": {"http": {"method": "POST", "path": "/forms/generic"}, "requestId": "r1"},
        "body": raw.decode(),
        "isBase64Encoded": False,
    }


def sqs_event(body: dict[str, Any], first_seen: float) -> dict[str, Any]:
    attributes = {"FirstSeenAt": {"stringValue": f"{first_seen:.3f}", "dataType": "Number"}}
    record = {
        "messageId": "m0",
        "receiptHandle": "h0",
        "body": json.dumps(body),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000))},
        "messageAttributes": attributes,
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
        "awsRegion": "us-east-1",
    }
    return {"Records": [record]}


def test_a_webhook_reports_its_own_duration_and_its_answer_by_status(pipeline, capsys):
    p = pipeline()  # no queue: the events are applied before the answer
    assert p.handle(http_event(form_event()))["statusCode"] == 200
    assert p.handle(http_event(form_event(), headers={"content-type": "application/json"}))["statusCode"] == 401
    got = emitted(capsys.readouterr().out)
    assert got[by_kind("WebhooksAccepted")] == [1.0]
    assert got[by_kind("WebhooksRejected")] == [1.0]
    for status in ("200", "401"):
        assert got[("WebhookResponses", (("service", KIND), ("status", status)))] == [1.0]
    assert len(got[by_kind("WebhookDuration")]) == 2 and all(v > 0 for v in got[by_kind("WebhookDuration")])
    assert by_kind("WorkerDuration") not in got  # the worker path's time is apart


def test_the_worker_reports_each_events_age_since_first_queued_and_its_own_duration(pipeline, capsys):
    p = pipeline()
    first_seen = time.time() - 7200  # retried for two hours: SQS's own age would say seconds
    assert p.handle(sqs_event(form_event(), first_seen)) == {"batchItemFailures": []}
    got = emitted(capsys.readouterr().out)
    [age] = got[by_kind("EventAge")]
    assert 7200 <= age < 7260
    assert got[by_kind("EventsApplied")] == [1.0]
    assert len(got[by_kind("WorkerDuration")]) == 1 and by_kind("WebhookDuration") not in got


def test_keap_calls_are_counted_as_the_emulator_logged_them_and_429s_apart(pipeline, emu, capsys):
    p = pipeline()
    p.handle(form_event())
    answered = len(emu.calls())
    assert answered > 0
    emu.reset()
    emu.set_quota(QuotaPlan(per_day=1))  # the first call passes, the rest are answered 429
    p.runner.keap.client.max_attempts = 1
    with pytest.raises(EventFailed):  # a direct invoke raises what the queue would have retried
        p.handle(form_event(contact={"email": "grace@example.com"}))
    logged = emu.calls()
    got = emitted(capsys.readouterr().out)
    calls, rate_limited = got[by_kind("KeapCalls")], got[by_kind("KeapCallsRateLimited")]
    assert calls == [float(answered), float(len(logged))]
    assert rate_limited == [0.0, float(sum(c["http_status"] == 429 for c in logged))]
    assert rate_limited[1] >= 1


@pytest.mark.parametrize("api", ["xmlrpc", "rest"])
def test_the_quota_left_is_one_stack_level_series_from_keaps_headers(pipeline, emu, capsys, api):
    emu.set_quota(QuotaPlan(per_day=200))
    p = pipeline(api)
    p.handle(form_event())
    used = len(emu.calls())
    got = emitted(capsys.readouterr().out)
    assert got[("KeapQuotaLeft", STACK)] == [float(200 - used)]
    assert got[("KeapQuotaLeftPercent", STACK)] == [pytest.approx(100 * (200 - used) / 200)]
    assert not [key for key in got if key[0].startswith("KeapQuota") and key[1] != STACK]


def test_without_quota_headers_no_quota_is_published(pipeline, emu, capsys):
    p = pipeline()  # the emulator sends quota headers only when it enforces a quota
    p.handle(form_event())
    got = emitted(capsys.readouterr().out)
    assert got[by_kind("KeapCalls")] and not [key for key in got if key[0].startswith("KeapQuota")]


def test_a_metric_outside_the_table_cannot_be_emitted():
    with pytest.raises(KeyError):
        observe.count("EventsFailed", KIND)
