"""The pipeline through each trigger, against the emulator over HTTP and SQS on moto."""

import itertools
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from keap_emulator import FaultPlan
from keap_emulator.server import DEFAULT_API_KEY
from keap_relay.aws.config import Settings
from keap_relay.aws.pipeline import Pipeline
from keap_relay.events.sources import generic

ROOT = Path(__file__).resolve().parents[2]
KEY = DEFAULT_API_KEY
SECRET = "s3cret-for-tests"
# The XML-RPC routes (campaigns, action sets) shipped before REST v2 became the default.
ROUTES = str(ROOT / "tests" / "fixtures" / "routes-xmlrpc.yaml")


@pytest.fixture(autouse=True)
def fresh_world(emu):
    emu.reset()
    emu.set_faults(FaultPlan())
    yield


def queues(sqs, name):
    work = sqs.create_queue(QueueName=f"{name}-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    dlq = sqs.create_queue(QueueName=f"{name}-dlq-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    return work, dlq


def pipeline(kind, emu, routes=ROUTES, queue_url=None, dlq_url=None, max_receive=5, **more):
    settings = Settings(
        kind=kind,
        keap_api="xmlrpc",  # these tests read ContactService calls; REST v2: test_rest_port.py, e2e keap_apis
        keap_url=emu.url,
        routes_file=routes,
        queue_url=queue_url,
        dlq_url=dlq_url,
        max_receive_count=max_receive,
        keap_api_key_env=KEY,
        webhook_secrets_env=json.dumps({"generic": SECRET}),
        **more,
    )
    return Pipeline(kind, settings)


def form_event(email="ada@example.com", event_id=None, **over):
    ev = {
        "kind": "form_submission",
        "source": "generic",
        "id": event_id or uuid.uuid4().hex,
        "contact": {"email": email, "first_name": "Ada", "last_name": "Lovelace"},
        "form": {"id": "lT4Z3j", "name": "Webinar sign-up"},
    }
    ev.update(over)
    return ev


def http_event(kind_path, body, headers=None, method="POST", source="generic", b64=False):
    import base64

    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    hdrs = generic.sign(raw, SECRET) if headers is None else headers
    return {
        "version": "2.0",
        "routeKey": f"{method} /{kind_path}/{{source}}",
        "rawPath": f"/{kind_path}/{source}",
        "rawQueryString": "",
        "headers": hdrs,
        "pathParameters": {"source": source},
        "requestContext": {"http": {"method": method, "path": f"/{kind_path}/{source}"}, "requestId": "r1"},
        "body": base64.b64encode(raw).decode() if b64 else raw.decode("utf-8", "replace"),
        "isBase64Encoded": b64,
    }


def sqs_event(bodies, receive_count=1, message_attributes=None):
    sent = str(int(time.time() * 1000))
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "receiptHandle": f"h{i}",
                "body": body if isinstance(body, str) else json.dumps(body),
                "attributes": {"ApproximateReceiveCount": str(receive_count), "SentTimestamp": sent},
                "messageAttributes": message_attributes or {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                "awsRegion": "us-east-1",
            }
            for i, body in enumerate(bodies)
        ]
    }


def drain(sqs, url):
    got = []
    while True:
        msgs = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", [])
        if not msgs:
            return got
        got.extend(msgs)
        for m in msgs:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def attrs(message):
    return {k: v["StringValue"] for k, v in message.get("MessageAttributes", {}).items()}


def test_direct_form_event_applies_tags_and_sequence_in_keap(emu):
    out = pipeline("form_submission", emu).handle(form_event())
    assert out["status"] == "applied"
    result = out["result"]
    [cid] = result["contact_ids"]
    assert emu.model.contact_tags(cid) == {100, 101, 102}
    assert [(e["sequence_id"], e["state"]) for e in emu.model.enrolments(cid)] == [(11, "active")]
    calls = [s["call"] for s in result["steps"]]
    assert calls[0] == "ContactService.addWithDupCheck"
    assert sorted(calls[1:]) == ["ContactService.addToCampaign"] + ["ContactService.addToGroup"] * 3
    assert all(s["status"] == "ok" for s in result["steps"])
    assert emu.model.get_contact(cid)["_LeadSource"] == "Webinar sign-up"


def test_second_event_for_same_email_updates_the_same_contact(emu):
    p = pipeline("form_submission", emu)
    first = p.handle(form_event())["result"]["contact_ids"]
    second = p.handle(form_event(contact={"email": "ada@example.com", "company": "Engines"}))["result"]
    assert second["contact_ids"] == first
    assert emu.model.get_contact(first[0])["Company"] == "Engines"


def test_purchase_runs_action_set_once(emu):
    ev = {
        "kind": "purchase",
        "source": "generic",
        "id": "o-1",
        "contact": {"email": "bo@example.com"},
        "order": {"id": "1001", "total": "49.00", "currency": "USD", "items": [{"sku": "COURSE-101"}]},
    }
    result = pipeline("purchase", emu).handle(ev)["result"]
    [cid] = result["contact_ids"]
    assert len(emu.model.action_set_runs(cid)) == 1
    assert emu.model.contact_tags(cid) == {201}


def test_unsubscribe_removes_and_tags_every_contact_with_the_email(emu):
    p = pipeline("form_submission", emu)
    [cid] = p.handle(form_event(email="cy@example.com"))["result"]["contact_ids"]
    ev = {"kind": "unsubscribe", "source": "generic", "id": "u-1", "contact": {"email": "CY@example.com"}}
    result = pipeline("unsubscribe", emu).handle(ev)["result"]
    assert result["contact_ids"] == [cid]
    assert emu.model.contact_tags(cid) == {102, 300}
    assert [e["state"] for e in emu.model.enrolments(cid)] == ["removed"]
    assert len(emu.model.action_set_runs(cid)) == 1


def test_unsubscribe_of_unknown_email_is_a_recorded_success(emu):
    ev = {"kind": "unsubscribe", "source": "generic", "id": "u-2", "contact": {"email": "nobody@example.com"}}
    result = pipeline("unsubscribe", emu).handle(ev)["result"]
    assert result["status"] == "applied" and result["contact_ids"] == []
    assert "no contact" in result["note"]
    assert [s["call"] for s in result["steps"]] == ["ContactService.findByEmail"]


def test_eventbridge_event_is_processed(emu):
    ev = form_event(email="eb@example.com")
    out = pipeline("form_submission", emu).handle(
        {"version": "0", "id": "x", "detail-type": "form_submission", "source": "acme.crm", "detail": ev}
    )
    assert out["status"] == "applied"
    assert emu.model.find_ids_by_email("eb@example.com")


def test_eventbridge_event_of_another_kind_is_dead_lettered(emu, sqs):
    _, dlq = queues(sqs, "eb")
    out = pipeline("form_submission", emu, dlq_url=dlq).handle({"detail-type": "purchase", "detail": form_event()})
    assert out["status"] == "dead_lettered"
    [msg] = drain(sqs, dlq)
    assert attrs(msg)["ErrorClass"] == "EventInvalid"


# -- HTTP ------------------------------------------------------------------------------------------


def test_http_inline_signed_generic_webhook_is_applied(emu):
    ev = form_event(email="web@example.com")
    out = pipeline("form_submission", emu).handle(http_event("forms", ev))
    assert out["statusCode"] == 200
    body = json.loads(out["body"])
    assert body["status"] == "applied" and body["id"] == ev["id"]
    assert emu.model.find_ids_by_email("web@example.com")


def test_http_with_queue_answers_202_and_enqueues_the_canonical_event(emu, sqs):
    work, _ = queues(sqs, "forms")
    ev = form_event()
    out = pipeline("form_submission", emu, queue_url=work).handle(http_event("forms", ev, b64=True))
    assert out["statusCode"] == 202
    assert json.loads(out["body"])["id"] == ev["id"]
    [msg] = drain(sqs, work)
    assert json.loads(msg["Body"]) == ev
    assert emu.calls() == []  # the ingest path never calls Keap


def _bad(status, event, sqs, emu):
    work, _ = queues(sqs, "bad")
    out = pipeline("form_submission", emu, queue_url=work).handle(event)
    assert out["statusCode"] == status, out
    body = json.loads(out["body"])
    assert set(body) == {"error", "detail"}
    assert SECRET not in out["body"]
    assert drain(sqs, work) == []
    return body


def test_http_bad_requests_get_clear_4xx_and_enqueue_nothing(emu, sqs):
    ev = form_event()
    raw = json.dumps(ev).encode()
    assert "no source" in _bad(404, http_event("forms", ev, source="nosuch"), sqs, emu)["detail"]
    assert _bad(405, http_event("forms", ev, method="GET"), sqs, emu)["error"] == "method_not_allowed"
    assert _bad(401, http_event("forms", ev, headers={"content-type": "application/json"}), sqs, emu)
    wrong = generic.sign(raw, "not-the-secret")
    assert _bad(401, http_event("forms", raw, headers=wrong), sqs, emu)
    xml = {**generic.sign(raw, SECRET), "content-type": "text/xml"}
    assert _bad(415, http_event("forms", raw, headers=xml), sqs, emu)
    big = b'{"pad": "' + b"x" * (256 * 1024) + b'"}'
    assert _bad(413, http_event("forms", big), sqs, emu)
    assert _bad(400, http_event("forms", b"{not json"), sqs, emu)
    no_email = form_event(contact={"first_name": "Ada"})
    assert _bad(422, http_event("forms", no_email), sqs, emu)["detail"] == "contact.email: is required"
    wrong_kind = form_event(kind="purchase")
    assert "kind" in _bad(422, http_event("forms", wrong_kind), sqs, emu)["detail"]


# -- SQS -------------------------------------------------------------------------------------------


def bad_routes(tmp_path):
    path = tmp_path / "routes.yaml"
    path.write_text("version: 1\nforms:\n  - match: {}\n    tags: [100]\n    campaigns: [99]\n")
    return str(path)


def test_sqs_permanent_failure_goes_to_dlq_with_reason_at_once(emu, sqs, tmp_path):
    work, dlq = queues(sqs, "perm")
    ev = form_event(email="perm@example.com")
    p = pipeline("form_submission", emu, routes=bad_routes(tmp_path), queue_url=work, dlq_url=dlq)
    out = p.handle(sqs_event([ev]))
    assert out == {"batchItemFailures": []}  # handled: it is in the DLQ, not back in the queue
    [msg] = drain(sqs, dlq)
    assert json.loads(msg["Body"]) == ev
    a = attrs(msg)
    assert a["ErrorClass"] == "KeapLoadingError" or "Loading" in a["ErrorClass"]
    assert "[Loading]" in a["ErrorMessage"]
    assert a["FailedStep"].endswith("(ContactService.addToCampaign)")
    assert a["AttemptCount"] == "1" and a["Transient"] == "false" and a["EventId"] == ev["id"]


def number_attrs(**values):
    return {k: {"stringValue": str(v), "dataType": "Number"} for k, v in values.items()}


def test_sqs_transient_failure_is_requeued_as_a_new_message_then_applied(emu, sqs):
    work, dlq = queues(sqs, "trans")
    emu.set_faults(FaultPlan(rate_5xx=1.0, methods={"ContactService.addToGroup"}))
    p = pipeline("form_submission", emu, queue_url=work, dlq_url=dlq, retry_base_seconds=0)
    p.runner.keap.client.max_attempts = 1  # fail fast: the queue does the retrying here
    ev = form_event(email="fine@example.com")
    first_seen = time.time() - 600
    out = p.handle(sqs_event([ev], message_attributes=number_attrs(FirstSeenAt=first_seen, Retries=2)))
    assert out == {"batchItemFailures": []}  # the original is done with: a new message carries the retry
    assert drain(sqs, dlq) == []
    [msg] = drain(sqs, work)
    assert json.loads(msg["Body"]) == ev
    assert attrs(msg)["Retries"] == "3"
    assert float(attrs(msg)["FirstSeenAt"]) == pytest.approx(first_seen, abs=0.01)
    emu.set_faults(FaultPlan())
    retried = sqs_event(
        [msg["Body"]],
        message_attributes={
            k: {"stringValue": v["StringValue"], "dataType": v["DataType"]} for k, v in msg["MessageAttributes"].items()
        },
    )
    assert p.handle(retried) == {"batchItemFailures": []}
    [cid] = emu.model.find_ids_by_email("fine@example.com")
    assert emu.model.contact_tags(cid) == {100, 101, 102}
    assert drain(sqs, work) == [] and drain(sqs, dlq) == []


def test_retry_delay_grows_and_keaps_own_wait_wins():
    from keap_relay.aws.queue import MAX_DELAY_SECONDS, Retry

    delays = [Retry(1, n, 0.0, now=1.0).next_delay(30) for n in range(6)]
    assert all(b > a for a, b in itertools.pairwise(delays))
    assert 24 <= delays[0] <= 36
    assert Retry(1, 5, 0.0).next_delay(30, wait=7.5) == 7.5
    long_wait = Retry(1, 0, 0.0, now=1000.0).next(3600)
    assert long_wait["DelaySeconds"] == MAX_DELAY_SECONDS
    assert float(long_wait["MessageAttributes"]["NotBefore"]["StringValue"]) == 4600.0


def test_event_waiting_for_keaps_quota_is_requeued_without_calling_keap(emu, sqs):
    work, dlq = queues(sqs, "wait")
    p = pipeline("form_submission", emu, queue_url=work, dlq_url=dlq)
    not_before = time.time() + 1.8  # Keap said: quota back in under two seconds
    p.handle(sqs_event([form_event()], message_attributes=number_attrs(NotBefore=not_before, Retries=1)))
    assert emu.calls() == []
    [msg] = sqs.receive_message(QueueUrl=work, MessageAttributeNames=["All"], WaitTimeSeconds=5)["Messages"]
    assert attrs(msg)["Retries"] == "1"  # waiting is not a retry


def test_transient_failure_of_an_event_past_the_max_age_is_dead_lettered(emu, sqs):
    work, dlq = queues(sqs, "old")
    emu.set_faults(FaultPlan(rate_5xx=1.0))
    p = pipeline("form_submission", emu, queue_url=work, dlq_url=dlq, max_event_age_seconds=3600)
    p.runner.keap.client.max_attempts = 1
    old = number_attrs(FirstSeenAt=time.time() - 7200, Retries=9)
    assert p.handle(sqs_event([form_event()], message_attributes=old)) == {"batchItemFailures": []}
    assert drain(sqs, work) == []
    [msg] = drain(sqs, dlq)
    assert attrs(msg)["Transient"] == "true" and attrs(msg)["AttemptCount"] == "10"


def test_without_a_queue_to_resend_to_sqs_redelivers_until_the_last_receive(emu, sqs):
    _, dlq = queues(sqs, "noq")
    emu.set_faults(FaultPlan(rate_5xx=1.0, methods={"ContactService.addToGroup"}))
    p = pipeline("form_submission", emu, dlq_url=dlq, max_receive=3)
    p.runner.keap.client.max_attempts = 1
    ev = form_event()
    assert p.handle(sqs_event([ev], receive_count=1)) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert p.handle(sqs_event([ev], receive_count=3)) == {"batchItemFailures": []}
    [msg] = drain(sqs, dlq)
    assert attrs(msg)["Transient"] == "true" and attrs(msg)["AttemptCount"] == "3"


def test_sqs_unparseable_body_and_invalid_event_are_dead_lettered(emu, sqs):
    work, dlq = queues(sqs, "junk")
    p = pipeline("form_submission", emu, queue_url=work, dlq_url=dlq)
    out = p.handle(sqs_event(["{not json", {"kind": "form_submission", "id": "x", "source": "s", "contact": {}}]))
    assert out == {"batchItemFailures": []}
    got = sorted(attrs(m)["ErrorClass"] for m in drain(sqs, dlq))
    assert got == ["BodyUnparseable", "EventInvalid"]


def test_sqs_failure_without_a_dlq_is_returned_to_the_queue_not_dropped(emu, tmp_path):
    p = pipeline("form_submission", emu, routes=bad_routes(tmp_path))
    assert p.handle(sqs_event([form_event()])) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}


def test_handler_works_in_a_plain_python_process_configured_by_env(emu):
    env = {
        **os.environ,
        "KEAP_API": "xmlrpc",
        "KEAP_URL": emu.url,
        "KEAP_API_KEY": KEY,
        "ROUTES_FILE": ROUTES,
        "WEBHOOK_SECRETS": json.dumps({"generic": SECRET}),
        "PYTHONPATH": str(ROOT / "shared"),
    }
    for name in ("QUEUE_URL", "DLQ_URL", "AWS_ENDPOINT_URL"):
        env.pop(name, None)
    ev = form_event(email="proc@example.com")
    code = f"import json, app; print(json.dumps(app.handler({ev!r}, None)['status']))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT / "functions" / "forms",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == '"applied"'
    assert KEY not in out.stdout + out.stderr
    assert emu.model.find_ids_by_email("proc@example.com")


class ShortContext:
    """A Lambda context with `ms` milliseconds left."""

    def __init__(self, ms):
        self.ms = ms

    def get_remaining_time_in_millis(self):
        return self.ms


def test_records_left_when_the_invocation_runs_out_of_time_are_handed_back_unused(emu, sqs):
    work, dlq = queues(sqs, "late")
    p = pipeline("form_submission", emu, queue_url=work, dlq_url=dlq, function_timeout_seconds=30)
    events = [form_event(email=f"late{i}@example.com") for i in range(3)]
    assert p.handle(sqs_event(events), ShortContext(4000)) == {"batchItemFailures": []}
    # The first record always runs (every invocation makes progress); the rest wait for the next one.
    assert emu.model.find_ids_by_email("late0@example.com")
    assert not emu.model.find_ids_by_email("late1@example.com")
    got = drain(sqs, work)
    assert sorted(json.loads(m["Body"])["id"] for m in got) == sorted(e["id"] for e in events[1:])
    assert all(attrs(m)["Retries"] == "0" for m in got)  # handing back is not a retry
    assert p.handle(sqs_event(events[1:]), ShortContext(25000)) == {"batchItemFailures": []}
    assert all(emu.model.find_ids_by_email(e["contact"]["email"]) for e in events)


class DrainingContext:
    """A Lambda context whose clock runs: `start` ms left when first asked, then `later` ms."""

    def __init__(self, start, later):
        self.answers = [start]
        self.later = later

    def get_remaining_time_in_millis(self):
        return self.answers.pop() if self.answers else self.later


@pytest.mark.parametrize(("override", "handed_back"), [(None, 2), (30, 0)])
def test_the_time_left_at_the_start_is_the_functions_timeout_unless_overridden(emu, sqs, override, handed_back):
    # A 90 s function with 20 s left after its first event: under a third of 90 s, too little to start
    # another. FUNCTION_TIMEOUT_SECONDS=30, when set, wins: a third of it is 10 s, so the batch goes on.
    work, dlq = queues(sqs, "clock")
    p = pipeline("form_submission", emu, queue_url=work, dlq_url=dlq, function_timeout_seconds=override)
    events = [form_event(email=f"clock{i}-{override}@example.com") for i in range(3)]
    assert p.handle(sqs_event(events), DrainingContext(90_000, 20_000)) == {"batchItemFailures": []}
    assert len(drain(sqs, work)) == handed_back
    applied = [e for e in events if emu.model.find_ids_by_email(e["contact"]["email"])]
    assert len(applied) == 3 - handed_back


class RecordingRunner:
    """Stands in for the sequence runner: records each run's event id and whether it may rerun uncertain steps."""

    def __init__(self):
        self.reruns = {}

    def run(self, plan, checkpoints=None, rerun_uncertain=False):
        from keap_relay.routing.runner import RunResult

        self.reruns[plan.event_id] = rerun_uncertain
        return RunResult(plan.kind, plan.event_id, "applied")


def test_two_invocations_at_once_on_threads_keep_their_own_redrive_flag_and_context(emu):
    # The local function host runs invocations of one container on threads, sharing its Pipeline. A batch of
    # two redriven OutcomeUnknown dead letters, with minutes left, is paused inside its first event while a
    # plain one-record batch with one second left runs from start to end.
    redriven, plain = threading.Event(), threading.Event()

    class Paused(Pipeline):
        def process(self, event, attempts=1, **invocation):
            if event["id"] == "redriven-1":
                redriven.set()
                assert plain.wait(10)
            return super().process(event, attempts, **invocation)

    runner = RecordingRunner()
    p = Paused(
        "form_submission", Settings(kind="form_submission", keap_api="xmlrpc", routes_file=ROUTES), runner=runner
    )
    outcome_unknown = {"ErrorClass": {"stringValue": "OutcomeUnknown", "dataType": "String"}}
    batch = sqs_event([form_event(event_id=f"redriven-{i}") for i in (1, 2)], message_attributes=outcome_unknown)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(p.handle, batch, ShortContext(600_000))
        assert redriven.wait(10)
        second = pool.submit(p.handle, sqs_event([form_event(event_id="plain")]), ShortContext(1000))
        assert second.result(10) == {"batchItemFailures": []}
        plain.set()
        # The second redriven record still runs: the other invocation's one second left is not its time.
        assert first.result(10) == {"batchItemFailures": []}
    assert runner.reruns == {"redriven-1": True, "plain": False, "redriven-2": True}


def test_a_record_on_its_last_receive_is_sent_again_before_the_batch_is_worked(emu, sqs):
    """Functions that died with the record in their batch used up its receives: it is handed on as a new
    message (first-queued time kept) before anything is applied, so one more death cannot send it to the DLQ
    without a reason; past the event's max age it is dead-lettered with the reason instead."""
    work, dlq = queues(sqs, "lastrx")
    p = pipeline("form_submission", emu, queue_url=work, dlq_url=dlq, max_receive=5, max_event_age_seconds=3600)
    fresh, worn = form_event(email="fresh@example.com"), form_event(email="worn@example.com")
    first_seen = time.time() - 600
    batch = sqs_event([fresh, worn], receive_count=5, message_attributes=number_attrs(FirstSeenAt=first_seen))
    batch["Records"][0]["attributes"]["ApproximateReceiveCount"] = "2"
    assert p.handle(batch) == {"batchItemFailures": []}
    assert emu.model.find_ids_by_email("fresh@example.com")  # worked on as usual
    assert not emu.model.find_ids_by_email("worn@example.com")  # not in this invocation ...
    [msg] = drain(sqs, work)  # ... but sent again, as a fresh message
    assert json.loads(msg["Body"]) == worn
    assert attrs(msg)["Retries"] == "0" and float(attrs(msg)["FirstSeenAt"]) == pytest.approx(first_seen, abs=0.01)
    assert drain(sqs, dlq) == []

    old = number_attrs(FirstSeenAt=time.time() - 7200)
    assert p.handle(sqs_event([worn], receive_count=5, message_attributes=old)) == {"batchItemFailures": []}
    assert drain(sqs, work) == [] and not emu.model.find_ids_by_email("worn@example.com")
    [letter] = drain(sqs, dlq)
    assert attrs(letter)["ErrorClass"] == "FunctionEnded" and attrs(letter)["Transient"] == "false"
    assert "ended 5 times" in attrs(letter)["ErrorMessage"]
