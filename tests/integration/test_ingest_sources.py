"""Every source's webhook through the real pipeline (HTTP event → ingest → SQS on moto): what is queued,
and what each kind of bad request gets back."""

import base64
import json
import re
import time
import uuid
from pathlib import Path

import pytest

from keap_relay.aws.config import Settings
from keap_relay.aws.pipeline import Pipeline
from keap_relay.events.errors import BodyUnparseable
from keap_relay.events.kinds import FOLDERS, kind_named
from keap_relay.events.sources import SOURCES, SignedRequest, mailgun, sign_request, source_spec, stripe, webflow

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
SECRETS = json.loads((EVENTS / "local-secrets.json").read_text(encoding="utf-8"))
EMAIL = re.compile(r"[\w.+-]+(@|%40)[\w-]+(\.[\w-]+)+")
# Another P-256 private key: SendGrid's "wrong secret" is a signature by a key other than the configured one.
OTHER_SENDGRID_KEY = (
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgu6I1QUesuFuMDmk6Hvp0U/F4ridnaHv/XleVMyLyiB+hRANCAA"
    "TTHrFbNko+VDOSOKdFxpD16GUll0BIGjfCJanIFrVx+v5PXTHfifo9nbaRFhBRtfPB08B5QPXz8/X1zo2yDVjb"
)


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


SAMPLES = {  # source -> (function folder, sample), one POST sample per source
    path.stem.removeprefix("http-"): (path.parent.name, load(path))
    for path in sorted(EVENTS.glob("*/http-*.json"))
    if load(path)["requestContext"]["http"]["method"] == "POST" and path.stem != "http-generic"
}
SAMPLES["generic"] = ("forms", load(EVENTS / "forms" / "http-generic.json"))


def body_of(sample):
    raw = sample["body"]
    return base64.b64decode(raw) if sample.get("isBase64Encoded") else raw.encode()


def http_event(folder, source, body, headers, query=None, method="POST"):
    """A payload-v2 event as API Gateway builds it: form and multipart bodies arrive base64-encoded."""
    b64 = headers.get("content-type", "").startswith(("application/x-www-form-urlencoded", "multipart/"))
    return {
        "version": "2.0",
        "routeKey": f"{method} /{folder}/{{source}}",
        "rawPath": f"/{folder}/{source}",
        "rawQueryString": "&".join(f"{k}={v}" for k, v in (query or {}).items()),
        "headers": headers,
        **({"queryStringParameters": dict(query)} if query else {}),
        "pathParameters": {"source": source},
        "requestContext": {"http": {"method": method, "path": f"/{folder}/{source}"}, "requestId": "r1"},
        "body": base64.b64encode(body).decode() if b64 else body.decode("utf-8", "surrogateescape"),
        "isBase64Encoded": b64,
    }


def signed_event(source, body=None, *, secret=None, content_type=None, **kw):
    """The source's sample (or `body`), signed now with the local secret, the way the vendor would."""
    folder, sample = SAMPLES[source]
    raw = body_of(sample) if body is None else body
    try:
        signed = sign_request(source, raw, secret or SECRETS[source], **kw)
    except BodyUnparseable:  # Mailgun signs inside the body: one that is not JSON goes as it is
        signed = SignedRequest(raw, SOURCES[source].sign(raw, secret or SECRETS[source]), {})
    headers = {**sample["headers"], **signed.headers}
    headers["content-type"] = content_type or sample["headers"]["content-type"]
    return http_event(folder, source, signed.body, headers, signed.query)


@pytest.fixture
def work_queue(sqs):
    return sqs.create_queue(QueueName=f"ingest-{uuid.uuid4().hex[:8]}")["QueueUrl"]


def pipeline(kind, queue_url):
    settings = Settings(
        kind=kind, keap_url="http://127.0.0.1:9", queue_url=queue_url, webhook_secrets_env=json.dumps(SECRETS)
    )  # the queue path never calls Keap
    return Pipeline(kind, settings)


def handle(source, event, queue_url, folder=None):
    return pipeline(kind_named(folder or SAMPLES[source][0]).name, queue_url).handle(event)


def drain(sqs, url):
    got = []
    while msgs := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", []):
        got.extend(json.loads(m["Body"]) for m in msgs)
        for m in msgs:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return got


def no_secret_in(out):
    assert not any(secret in out["body"] for secret in SECRETS.values())


# -- accepted --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("source", sorted(SAMPLES))
def test_each_sources_sample_is_queued_as_canonical_events(source, sqs, work_queue):
    out = handle(source, signed_event(source), work_queue)
    # These vendors count only a 200 as delivered; every other one gets 202 Accepted.
    assert out["statusCode"] == (200 if source in {"elementor", "gumroad", "lemonsqueezy", "mailgun"} else 202), out
    reply = json.loads(out["body"])
    queued = drain(sqs, work_queue)
    assert [event["id"] for event in queued] == reply["ids"] and reply["status"] == "queued"
    kind = kind_named(SAMPLES[source][0]).name
    for event in queued:
        assert event["kind"] == kind and event["source"] in (source, "generic") and event["contact"]["email"]
    no_secret_in(out)


@pytest.mark.parametrize("source", sorted(SAMPLES))
def test_a_redelivery_maps_to_the_same_event_ids(source, sqs, work_queue):
    # A retry is signed anew (Stripe and SendGrid sign a fresh timestamp; Mailgun a fresh token).
    kw = {"timestamp": int(time.time()) - 30} if source in ("stripe", "sendgrid") else {}
    first = json.loads(handle(source, signed_event(source, **kw), work_queue)["body"])["ids"]
    again = json.loads(handle(source, signed_event(source), work_queue)["body"])["ids"]
    assert first == again
    assert len(drain(sqs, work_queue)) == 2 * len(first)  # both queued: the worker's idempotency drops one


def test_stored_samples_carry_true_signatures_and_tokens():
    for source, (_folder, sample) in SAMPLES.items():
        spec, headers, body = source_spec(source), sample["headers"], body_of(sample)
        if spec.auth == ("token",):
            assert sample["queryStringParameters"] == {"token": SECRETS[source]}, source
            assert sample["rawQueryString"] == f"token={SECRETS[source]}", source
        elif source == "stripe":
            stamp = int(headers["stripe-signature"].split(",")[0][2:])
            stripe.verify(headers, body, SECRETS[source], now=stamp)
        elif source == "webflow":
            webflow.verify(headers, body, SECRETS[source], now=int(headers["x-webflow-timestamp"]) / 1000)
        elif source == "mailgun":
            mailgun.verify(headers, body, SECRETS[source], now=int(json.loads(body)["signature"]["timestamp"]))
        else:
            SOURCES[source].verify(headers, body, SECRETS[source])
        assert headers["content-length"] == str(len(body)), source


def test_mailchimp_validation_and_woocommerce_ping_are_200_with_nothing_queued(sqs, work_queue):
    check = load(EVENTS / "unsubscribes" / "http-mailchimp-validation.json")
    out = handle("mailchimp", check, work_queue)
    assert out["statusCode"] == 200 and json.loads(out["body"])["status"] == "ok"
    ping = http_event(
        "purchases", "woocommerce", b"webhook_id=12", {"content-type": "application/x-www-form-urlencoded"}
    )
    out = handle("woocommerce", ping, work_queue)
    assert out["statusCode"] == 200 and json.loads(out["body"])["status"] == "ok"
    assert drain(sqs, work_queue) == []


def test_events_keap_relay_does_not_act_on_are_200_ignored_with_nothing_queued(sqs, work_queue):
    refund = json.loads(body_of(SAMPLES["stripe"][1]))
    refund["type"] = "charge.refunded"
    out = handle("stripe", signed_event("stripe", json.dumps(refund).encode()), work_queue)
    assert out["statusCode"] == 200
    reply = json.loads(out["body"])
    assert reply["status"] == "ignored" and "charge.refunded" in reply["detail"]
    assert drain(sqs, work_queue) == []


# -- refused ---------------------------------------------------------------------------------------------
def unparseable(source):
    """A body that cannot be read as the source's content type."""
    media = source_spec(source).content_types[0]
    return {"application/json": b'{"not json', "multipart/form-data": b"no parts here"}.get(media, b"a=\xff\xfe")


def unsigned(source):
    """The sample's body with no signature in it (Mailgun's is in the body)."""
    body = body_of(SAMPLES[source][1])
    if source == "mailgun":
        return json.dumps({k: v for k, v in json.loads(body).items() if k != "signature"}).encode()
    return body


def without_emails(source):
    text = body_of(SAMPLES[source][1]).decode()
    return EMAIL.sub("", text).encode()


BAD = {  # name -> (status, error, event maker)
    "unknown source": (
        404,
        "unknown_source",
        lambda s: {**signed_event(s), "pathParameters": {"source": "nosuch"}, "rawPath": "/x/nosuch"},
    ),
    "wrong method": (
        405,
        "method_not_allowed",
        lambda s: {**signed_event(s), "requestContext": {"http": {"method": "PUT"}}},
    ),
    "wrong content type": (415, "unsupported_media_type", lambda s: signed_event(s, content_type="text/xml")),
    "wrong secret": (
        401,
        "unauthorized",
        lambda s: signed_event(s, secret=OTHER_SENDGRID_KEY if s == "sendgrid" else "not-the-secret"),
    ),
    "no authentication": (
        401,
        "unauthorized",
        lambda s: http_event(SAMPLES[s][0], s, unsigned(s), {"content-type": SAMPLES[s][1]["headers"]["content-type"]}),
    ),
    "over 256 KiB": (413, "payload_too_large", lambda s: signed_event(s, b'{"pad": "' + b"x" * (256 * 1024) + b'"}')),
    "unparseable body": (400, "bad_request", lambda s: signed_event(s, unparseable(s))),
    "no email": (422, "invalid_event", lambda s: signed_event(s, without_emails(s))),
}


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("source", sorted(SAMPLES))
def test_each_bad_request_gets_its_status_a_json_error_and_queues_nothing(source, case, sqs, work_queue):
    status, error, make = BAD[case]
    out = handle(source, make(source), work_queue)
    assert out["statusCode"] == status, out
    body = json.loads(out["body"])
    assert set(body) == {"error", "detail"} and body["error"] == error and body["detail"]
    if case == "no email":
        assert "contact.email" in body["detail"]
    no_secret_in(out)
    assert drain(sqs, work_queue) == []


@pytest.mark.parametrize("source", sorted(set(SAMPLES) - {"generic"}))
def test_a_source_posted_to_another_kinds_url_is_404_naming_its_own(source, work_queue):
    folder = next(f for f in FOLDERS if f != SAMPLES[source][0])
    out = handle(source, signed_event(source), work_queue, folder=folder)
    assert out["statusCode"] == 404
    assert f"/{SAMPLES[source][0]}/{source}" in json.loads(out["body"])["detail"]
