"""Email-service sources: each vendor's sample, authenticated the vendor's way, becomes the right unsubscribe."""

import base64
import functools
import json

import pytest
import sources_support
from sources_support import SG_PRIVATE, SG_PUBLIC, ignored

from keap_relay.aws import ingest
from keap_relay.aws.http import Request
from keap_relay.events.errors import BodyUnparseable, MethodNotAllowed, SignatureInvalid
from keap_relay.events.sources import mailgun, sendgrid

SECRET = "mail-secret-for-tests"
KIND = "unsubscribe"


# Each request goes to this kind's URL, signed with SECRET (or `secret=`) and checked with that key (or `verify_with=`).
accept = functools.partial(sources_support.accept, KIND, secret=SECRET)
mapped = functools.partial(sources_support.mapped, kind=KIND)


# -- Mailchimp -------------------------------------------------------------------------------------------
MAILCHIMP = (  # Mailchimp's documented sample, data[reason] repeated as the doc has it
    b"type=unsubscribe&fired_at=2009-03-26+21%3A40%3A57&data[action]=unsub&data[reason]=manual&data[id]=8a25ff1d98"
    b"&data[list_id]=a6b5da1054&data[email]=api%2Bunsub%40mailchimp.com&data[email_type]=html"
    b"&data[merges][EMAIL]=api%2Bunsub%40mailchimp.com&data[merges][FNAME]=Mailchimp&data[merges][LNAME]=API"
    b"&data[merges][INTERESTS]=Group1%2CGroup2&data[ip_opt]=10.20.10.30&data[campaign_id]=cb398d21d2"
)


def test_mailchimp_unsubscribe_becomes_an_unsubscribe_with_a_stable_id():
    [event] = mapped(accept("mailchimp", MAILCHIMP), "mailchimp")
    assert event == {
        "id": event["id"],
        "occurred_at": "2009-03-26T21:40:57Z",
        "contact": {"email": "api+unsub@mailchimp.com", "first_name": "Mailchimp", "last_name": "API"},
        "unsubscribe": {"reason": "manual", "list_id": "a6b5da1054"},
    }
    assert accept("mailchimp", MAILCHIMP).events[0]["id"] == event["id"]  # a retry is the same event
    later = MAILCHIMP.replace(b"21%3A40%3A57", b"21%3A41%3A00")
    assert accept("mailchimp", later).events[0]["id"] != event["id"]


def test_mailchimp_cleaned_counts_and_other_types_are_ignored():
    cleaned = MAILCHIMP.replace(b"type=unsubscribe", b"type=cleaned").replace(
        b"data[reason]=manual", b"data[reason]=hard"
    )
    assert accept("mailchimp", cleaned).events[0]["unsubscribe"]["reason"] == "cleaned: hard"
    ignored(accept("mailchimp", MAILCHIMP.replace(b"type=unsubscribe", b"type=profile")), "profile")


def test_mailchimp_validation_get_is_answered_200_with_the_token_only():
    accepted = accept("mailchimp", b"", method="GET", headers={"user-agent": "MailChimp.com WebHook Validator"})
    assert accepted.events == [] and accepted.reply["status"] == "ok" and accepted.status == 200
    with pytest.raises(SignatureInvalid, match="token"):
        accept("mailchimp", b"", method="GET", query={})
    with pytest.raises(MethodNotAllowed):
        accept("mailchimp", MAILCHIMP, method="PUT")


def test_mailchimp_token_is_required_on_posts():
    with pytest.raises(SignatureInvalid) as caught:
        accept("mailchimp", MAILCHIMP, query={"token": "a-guess"})
    assert SECRET not in caught.value.detail


# -- SendGrid --------------------------------------------------------------------------------------------
def test_sendgrid_verifies_the_published_test_vector():
    # sendgrid-nodejs' own test vector: their key, timestamp, payload and signature
    key = (
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu"
        "/1FwCM/QmGUhA=="
    )
    headers = {
        "x-twilio-email-event-webhook-signature": "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8"
        "xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0=",
        "x-twilio-email-event-webhook-timestamp": "1588788367",
    }
    payload = b'{"category":"example_payload","event":"test_event","message_id":"message_id"}'
    sendgrid.verify(headers, payload, key)
    with pytest.raises(SignatureInvalid):
        sendgrid.verify(headers, payload.replace(b"example", b"exampel"), key)
    with pytest.raises(SignatureInvalid):
        sendgrid.verify({**headers, "x-twilio-email-event-webhook-timestamp": "1588788368"}, payload, key)


SENDGRID = [  # Symfony's fixtures from the facts file, plus an open that keap-relay does not act on
    {
        "email": "example@test.com",
        "timestamp": 1513299569,
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "event": "group_unsubscribe",
        "category": "cat facts",
        "sg_event_id": "sg_event_id",
        "sg_message_id": "sg_message_id",
        "useragent": "Mozilla/4.0 (compatible; MSIE 6.1; ...)",
        "ip": "255.255.255.255",
        "url": "http://www.sendgrid.com/",
        "asm_group_id": 10,
    },
    {
        "email": "other@test.com",
        "timestamp": 1513299570,
        "event": "spamreport",
        "sg_event_id": "sg_event_id_2",
        "sg_message_id": "sg_message_id",
    },
    {"email": "example@test.com", "timestamp": 1513299571, "event": "open", "sg_event_id": "sg_event_id_3"},
]


def test_sendgrid_batch_becomes_one_unsubscribe_per_unsubscribe_like_event():
    accepted = accept("sendgrid", SENDGRID, secret=SG_PRIVATE, verify_with=SG_PUBLIC)
    assert mapped(accepted, "sendgrid") == [
        {
            "id": "sg_event_id",
            "occurred_at": "2017-12-15T00:59:29Z",
            "contact": {"email": "example@test.com"},
            "unsubscribe": {"reason": "group_unsubscribe", "list_id": "10"},
        },
        {
            "id": "sg_event_id_2",
            "occurred_at": "2017-12-15T00:59:30Z",
            "contact": {"email": "other@test.com"},
            "unsubscribe": {"reason": "spam report"},
        },
    ]


def test_sendgrid_batch_with_a_repeated_event_id_keeps_it_once():
    repeated = [SENDGRID[0], {**SENDGRID[1], "sg_event_id": "sg_event_id"}]  # as Symfony's fixture has it
    assert len(accept("sendgrid", repeated, secret=SG_PRIVATE, verify_with=SG_PUBLIC).events) == 1


def test_sendgrid_batches_without_unsubscribes_are_ignored_and_objects_refused():
    ignored(accept("sendgrid", [SENDGRID[2]], secret=SG_PRIVATE, verify_with=SG_PUBLIC), "none of the 1")
    with pytest.raises(BodyUnparseable, match="array"):
        accept("sendgrid", SENDGRID[0], secret=SG_PRIVATE, verify_with=SG_PUBLIC)


def test_sendgrid_signature_from_another_key_or_a_bad_key_setting_is_401_without_the_key():
    other = (
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu"
        "/1FwCM/QmGUhA=="
    )
    with pytest.raises(SignatureInvalid):
        accept("sendgrid", SENDGRID, secret=SG_PRIVATE, verify_with=other)
    with pytest.raises(SignatureInvalid, match="configured sendgrid key") as caught:
        accept("sendgrid", SENDGRID, secret=SG_PRIVATE, verify_with="not-a-key")
    assert "not-a-key" not in caught.value.detail
    pem = "-----BEGIN PUBLIC KEY-----\n" + SG_PUBLIC + "\n-----END PUBLIC KEY-----\n"
    assert accept("sendgrid", SENDGRID, secret=SG_PRIVATE, verify_with=pem).events


def test_sendgrid_sign_needs_the_private_key():
    with pytest.raises(ValueError, match="private key"):
        sendgrid.sign(b"[]", SG_PUBLIC)
    headers = sendgrid.sign(b"[]", SG_PRIVATE, timestamp=1588788367)
    assert headers["x-twilio-email-event-webhook-timestamp"] == "1588788367"
    assert base64.b64decode(headers["x-twilio-email-event-webhook-signature"])[0] == 0x30  # DER sequence


# -- Mailgun ---------------------------------------------------------------------------------------------
MAILGUN = {  # Symfony's unsubscribes fixture from the facts file (signed with a key we do not have)
    "signature": {
        "token": "1483353025fd6e45b682f14b18d943c52cea11161c1721ee85",
        "timestamp": "1661621652",
        "signature": "83456337a19a70187a620658448ae21d3a50b0aca571bcdad43616741ca300b2",
    },
    "event-data": {
        "id": "Ase7i2zsRYeDXztHGENqRA",
        "timestamp": 1521243339.873676,
        "log-level": "info",
        "event": "unsubscribed",
        "message": {"headers": {"message-id": "20130503182626.18666.16540@app"}},
        "recipient": "alice@example.com",
        "recipient-domain": "example.com",
        "ip": "50.56.129.169",
        "tags": ["my_tag_1", "my_tag_2"],
        "user-variables": {"my_var_1": "Mailgun Variable #1"},
    },
}


def test_mailgun_unsubscribed_becomes_an_unsubscribe_answered_200():
    accepted = accept("mailgun", MAILGUN)
    assert accepted.status == 200
    assert mapped(accepted, "mailgun") == [
        {
            "id": "Ase7i2zsRYeDXztHGENqRA",
            "occurred_at": "2018-03-16T23:35:39.873676Z",
            "contact": {"email": "alice@example.com"},
            "unsubscribe": {"reason": "unsubscribed"},
        }
    ]


def test_mailgun_signature_is_checked_inside_the_body():
    raw = json.dumps(MAILGUN).encode()
    with pytest.raises(SignatureInvalid, match="does not match"):  # the fixture's own signature, another key
        ingest.accept(
            Request("POST", "/unsubscribes/mailgun", "mailgun", {"content-type": "application/json"}, {}, raw),
            KIND,
            {"mailgun": SECRET}.get,
        )
    signed = json.loads(mailgun.sign_body(raw, SECRET, timestamp=1_700_000_000, token="t" * 50))
    assert signed["signature"] == {  # hex HMAC-SHA256 of timestamp + token, computed once by hand
        "timestamp": "1700000000",
        "token": "t" * 50,
        "signature": "fa71a3d087bb6bd526116c203913b4c6411f62f75ef244e033d71511188cd4f1",
    }
    mailgun.verify({}, json.dumps(signed).encode(), SECRET, now=1_700_000_000 + 86_400)
    with pytest.raises(SignatureInvalid, match="tolerance"):
        mailgun.verify({}, json.dumps(signed).encode(), SECRET, now=1_700_000_000 + 86_401)
    with pytest.raises(SignatureInvalid, match="missing"):
        mailgun.verify({}, json.dumps(MAILGUN["event-data"]).encode(), SECRET)


def test_mailgun_permanent_failures_and_complaints_count_temporary_ones_do_not():
    failed = {**MAILGUN, "event-data": {**MAILGUN["event-data"], "event": "failed", "severity": "permanent"}}
    assert accept("mailgun", failed).events[0]["unsubscribe"] == {"reason": "failed: permanent"}
    complained = {**MAILGUN, "event-data": {**MAILGUN["event-data"], "event": "complained"}}
    assert accept("mailgun", complained).events[0]["unsubscribe"] == {"reason": "complained"}
    ignored(accept("mailgun", {**failed, "event-data": {**failed["event-data"], "severity": "temporary"}}), "failed")
    ignored(accept("mailgun", {**MAILGUN, "event-data": {**MAILGUN["event-data"], "event": "opened"}}), "opened")


# -- Postmark --------------------------------------------------------------------------------------------
POSTMARK = {  # Symfony's subscription_change fixture from the facts file
    "RecordType": "SubscriptionChange",
    "MessageID": "00000000-0000-0000-0000-000000000000",
    "ServerID": 23,
    "MessageStream": "outbound",
    "ChangedAt": "2022-09-02T14:32:30Z",
    "Recipient": "john@example.com",
    "Origin": "Recipient",
    "SuppressSending": True,
    "SuppressionReason": "HardBounce",
    "Tag": "welcome-email",
    "Metadata": {"example": "value", "example_2": "value"},
}


def test_postmark_suppression_becomes_an_unsubscribe_with_a_stable_id():
    [event] = mapped(accept("postmark", POSTMARK), "postmark")
    assert event == {
        "id": event["id"],
        "occurred_at": "2022-09-02T14:32:30Z",
        "contact": {"email": "john@example.com"},
        "unsubscribe": {"reason": "HardBounce", "list_id": "outbound"},
    }
    assert accept("postmark", dict(reversed(POSTMARK.items()))).events[0]["id"] == event["id"]


def test_postmark_reactivations_and_other_records_are_ignored_and_the_token_is_required():
    ignored(accept("postmark", {**POSTMARK, "SuppressSending": False}), "reactivates")
    ignored(accept("postmark", {**POSTMARK, "RecordType": "Bounce"}), "Bounce")
    with pytest.raises(SignatureInvalid, match="token"):
        accept("postmark", POSTMARK, query={})
