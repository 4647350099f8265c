"""Canonical event schemas: valid events pass; a failure names the field and the reason."""

import json
from pathlib import Path

import pytest

from keap_relay.events.canonical import KINDS, EventInvalid, schema_for, validate_event

ROOT = Path(__file__).resolve().parents[2]


def event(kind="form_submission", **over):
    base = {"kind": kind, "source": "typeform", "id": "evt-1", "contact": {"email": "ada@example.com"}}
    base.update(over)
    return base


def reason(ev, kind=None):
    with pytest.raises(EventInvalid) as info:
        validate_event(ev, kind)
    return info.value.field, info.value.reason


def test_minimal_event_of_each_kind_is_valid():
    for kind in KINDS:
        assert validate_event(event(kind)) ["kind"] == kind


def test_full_architecture_example_is_valid():
    ev = event(
        "purchase",
        occurred_at="2026-11-26T10:00:00Z",
        contact={
            "email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace",
            "phone": "+44 20 7946 0000", "company": "Analytical Engines Ltd",
            "address": {"line1": "", "line2": "", "city": "", "region": "", "postal_code": "",
                        "country_code": "GB"},
            "fields": {"_LeadSource": "spring-webinar"},
        },
        order={"id": "1001", "total": "49.00", "currency": "USD",
               "items": [{"sku": "COURSE-101", "product_id": "7", "name": "Course", "quantity": 1,
                          "unit_price": "49.00"}]},
    )
    assert validate_event(ev) is ev


@pytest.mark.parametrize(
    ("mutate", "field", "words"),
    [
        (lambda e: e["contact"].pop("email"), "contact.email", "required"),
        (lambda e: e["contact"].update(email="not-an-email"), "contact.email", "email"),
        (lambda e: e.pop("id"), "id", "required"),
        (lambda e: e.update(id=""), "id", "non-empty"),
        (lambda e: e.update(source="Type Form"), "source", "lower-case"),
        (lambda e: e.update(occurred_at="yesterday"), "occurred_at", "ISO 8601"),
        (lambda e: e.update(order={"total": "49,00"}), "order.total", "decimal"),
        (lambda e: e.update(order={"currency": "usd"}), "order.currency", "ISO 4217"),
        (lambda e: e.update(order={"items": [{"quantity": -1}]}), "order.items[0].quantity", "minimum"),
        (lambda e: e["contact"].update(nickname="x"), "contact.nickname", "not a known field"),
        (lambda e: e["contact"].update(fields={"bad name": "x"}), "contact.fields", "Keap field name"),
        (lambda e: e.update(form={"id": "x"}), "form", "not allowed in a purchase"),
    ],
)
def test_failure_names_field_and_reason(mutate, field, words):
    ev = event("purchase")
    mutate(ev)
    got_field, got_reason = reason(ev)
    assert got_field == field
    assert words in got_reason


def test_function_kind_must_match():
    assert reason(event("purchase"), "unsubscribe") == (
        "kind", "must be 'unsubscribe' for this function, got 'purchase'")


def test_unknown_kind_and_non_object():
    assert reason(event("refund"))[0] == "kind"
    assert reason(["not", "an", "object"]) == ("(event)", "must be a JSON object")


def test_schemas_are_draft_2020_12_and_one_per_kind():
    for kind in KINDS:
        schema = schema_for(kind)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["properties"]["kind"] == {"const": kind}


def test_every_sample_event_in_events_dir_is_valid():
    samples = sorted((ROOT / "events").glob("*/bare.json"))
    assert samples, "events/<fn>/bare.json samples are missing"
    for path in samples:
        validate_event(json.loads(path.read_text()))
