"""Canonical event schemas: valid events pass; a failure names the field and the reason."""

import json
from pathlib import Path

import hypothesis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keap_relay.events.canonical import KINDS, EventInvalid, inlined_schema, schema_for, validate_event

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
        assert validate_event(event(kind))["kind"] == kind


def test_full_architecture_example_is_valid():
    ev = event(
        "purchase",
        occurred_at="2026-11-26T10:00:00Z",
        contact={
            "email": "ada@example.com",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "phone": "+44 20 7946 0000",
            "company": "Analytical Engines Ltd",
            "address": {"line1": "", "line2": "", "city": "", "region": "", "postal_code": "", "country_code": "GB"},
            "fields": {"_LeadSource": "spring-webinar"},
        },
        order={
            "id": "1001",
            "total": "49.00",
            "currency": "USD",
            "items": [{"sku": "COURSE-101", "product_id": "7", "name": "Course", "quantity": 1, "unit_price": "49.00"}],
        },
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
        "kind",
        "must be 'unsubscribe' for this function, got 'purchase'",
    )


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


# -- the inlined schemas the functions check with mean what the published ones mean ------------------------------

_SAMPLES = {
    kind: json.loads((ROOT / "events" / fn / "bare.json").read_text())
    for kind, fn in (("form_submission", "forms"), ("purchase", "purchases"), ("unsubscribe", "unsubscribes"))
}


def _published(kind):
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    base = json.loads((ROOT / "shared/keap_relay/events/schemas/event.schema.json").read_text())
    registry = Registry().with_resource(base["$id"], Resource.from_contents(base))
    return Draft202012Validator(schema_for(kind), registry=registry)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))


_JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=12),
    st.just(""),
    st.just("x" * 300),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["a", "Email", "_X"]), st.text(max_size=3)),
)


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(KINDS), data=st.data())
def test_the_inlined_schema_accepts_and_rejects_as_the_published_one(kind, data):
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    event = json.loads(json.dumps(_SAMPLES[kind]))
    for _ in range(data.draw(st.integers(0, 3))):
        path = data.draw(st.sampled_from(list(_paths(event))[1:]))
        parent = event
        for key in path[:-1]:
            parent = parent[key]
        if data.draw(st.booleans()):
            parent[path[-1]] = data.draw(_JUNK)
        else:
            parent.pop(path[-1], None)
        if not isinstance(event, dict):
            break
    inlined = Draft202012Validator(inlined_schema(kind))
    published = _published(kind)
    event_valid = published.is_valid(event)
    hypothesis.event("valid" if event_valid else "invalid")
    assert inlined.is_valid(event) == published.is_valid(event)
    mine, theirs = best_match(inlined.iter_errors(event)), best_match(published.iter_errors(event))
    assert (mine is None) == (theirs is None)
    if mine is not None:
        assert (list(mine.absolute_path), mine.message) == (list(theirs.absolute_path), theirs.message)


def test_inlined_schemas_have_no_refs_left():
    for kind in KINDS:
        assert "$ref" not in json.dumps(inlined_schema(kind))
