"""Text Keap cannot carry (NUL, other controls, a lone surrogate) through each producer: webhook, queue, bus.

Before, such a webhook was answered 202 and the event failed in the worker as an encode error, ending in the
DLQ; now free text loses the characters at ingest and an email or id holding one is a 422 naming it.
"""

import json

from test_pipeline_triggers import attrs, drain, form_event, http_event, pipeline, queues, sqs_event


def test_a_webhook_with_a_nul_in_the_first_name_is_accepted_with_it_dropped(emu, sqs):
    work, _ = queues(sqs, "nul")
    ev = form_event(contact={"email": "ada@example.com", "first_name": "A\u0000da", "last_name": "Love\ud800lace"})
    out = pipeline("form_submission", emu, queue_url=work).handle(http_event("forms", ev))
    assert out["statusCode"] == 202, out
    [msg] = drain(sqs, work)
    kept = {"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace"}
    assert json.loads(msg["Body"])["contact"] == kept


def test_a_webhook_applied_inline_reaches_keap_without_the_characters(emu):
    ev = form_event(contact={"email": "ada@example.com", "first_name": "A\u0000da", "company": "Engines\u000b"})
    out = pipeline("form_submission", emu).handle(http_event("forms", ev))
    assert out["statusCode"] == 200, out  # was a 502: the XML-RPC encoder refused U+0000
    [cid] = emu.model.find_ids_by_email("ada@example.com")
    contact = emu.model.get_contact(cid)
    assert (contact["FirstName"], contact["Company"]) == ("Ada", "Engines")


def test_a_webhook_with_a_control_character_in_the_email_is_a_422_naming_contact_email(emu, sqs):
    work, _ = queues(sqs, "bademail")
    ev = form_event(email="ada\u0001@example.com")
    out = pipeline("form_submission", emu, queue_url=work).handle(http_event("forms", ev))
    assert out["statusCode"] == 422, out
    detail = json.loads(out["body"])["detail"]
    assert detail.startswith("contact.email: ") and "U+0001" in detail and "ada" not in detail
    assert drain(sqs, work) == []
    assert emu.calls() == []


def test_a_queued_event_from_another_producer_is_repaired_or_dead_lettered_as_event_invalid(emu, sqs):
    work, dlq = queues(sqs, "producer")
    p = pipeline("form_submission", emu, queue_url=work, dlq_url=dlq)
    fine = form_event(email="grace@example.com", contact={"email": "grace@example.com", "first_name": "Gr\u0000ace"})
    bad = form_event(email="bad\u0000@example.com")
    assert p.handle(sqs_event([fine, bad])) == {"batchItemFailures": []}
    [cid] = emu.model.find_ids_by_email("grace@example.com")
    assert emu.model.get_contact(cid)["FirstName"] == "Grace"
    [letter] = drain(sqs, dlq)
    assert attrs(letter)["ErrorClass"] == "EventInvalid" and attrs(letter)["Transient"] == "false"
    assert attrs(letter)["ErrorMessage"].startswith("contact.email: holds character U+0000")


def test_an_eventbridge_event_with_a_bad_id_is_dead_lettered_as_event_invalid(emu, sqs):
    _, dlq = queues(sqs, "busid")
    ev = form_event(event_id="ev\u0002-1")
    out = pipeline("form_submission", emu, dlq_url=dlq).handle({"detail-type": "form_submission", "detail": ev})
    assert out["status"] == "dead_lettered" and out["reason"].startswith("id: holds character U+0002")
    assert emu.calls() == []
