"""Text Keap cannot carry in a canonical event: dropped from free text, refused in an email or an id."""

import pytest

from keap_relay.events.canonical import EventInvalid, validate_event


def form(**contact: object) -> dict:
    return {
        "kind": "form_submission",
        "source": "generic",
        "id": "ev-1",
        "contact": {"email": "ada@example.com", **contact},
    }


# A free-text field with what a sender may put in it -> what is kept.
DROPPED = {
    "NUL in a first name": ("first_name", "A\x00da", "Ada"),
    "vertical tab in a company": ("company", "Acme\x0bLtd", "AcmeLtd"),
    "lone surrogate in a last name": ("last_name", "Love\ud800lace", "Lovelace"),
    "DEL and a C1 control in a phone": ("phone", "+44\x7f 20\x85", "+44 20"),
    "U+FFFF in a last name": ("last_name", "Lovelace\uffff", "Lovelace"),
    "tab, LF and CR are text": ("company", "A\tB\nC\rD", "A\tB\nC\rD"),
}


@pytest.mark.parametrize(("field", "sent", "kept"), DROPPED.values(), ids=DROPPED.keys())
def test_free_text_loses_what_keap_cannot_carry(field: str, sent: str, kept: str) -> None:
    event = form(**{field: sent})
    assert validate_event(event, "form_submission")["contact"][field] == kept
    assert event["contact"][field] == kept  # in place: the ingest path queues the event it validated


def test_address_lines_custom_fields_and_the_other_free_text_are_repaired() -> None:
    event = form(address={"line1": "1 Main\x00 St", "city": "Lon\x1fdon"}, fields={"_Note": "hi\x01", "_Size": 3})
    event["form"] = {"id": "f1", "name": "Sign\x02-up"}
    contact = validate_event(event)["contact"]
    assert contact["address"] == {"line1": "1 Main St", "city": "London"}
    assert contact["fields"] == {"_Note": "hi", "_Size": 3}
    assert event["form"]["name"] == "Sign-up"


def test_a_field_left_empty_is_left_out() -> None:
    event = validate_event(form(first_name="\x00", last_name="Lovelace"))
    assert event["contact"] == {"email": "ada@example.com", "last_name": "Lovelace"}


REFUSED = {
    "contact.email": form(email="ada\x00@example.com"),
    "id": {**form(), "id": "ev\x01-1"},
    "form.id": {**form(), "form": {"id": "f\ud8001"}},
    "order.id": {**form(), "kind": "purchase", "order": {"id": "1001\x0b"}},
    "order.items[1].sku": {**form(), "kind": "purchase", "order": {"items": [{"sku": "A"}, {"sku": "B\x00"}]}},
    "unsubscribe.list_id": {**form(), "kind": "unsubscribe", "unsubscribe": {"list_id": "l\x7f"}},
}


@pytest.mark.parametrize(("field", "event"), REFUSED.items(), ids=REFUSED.keys())
def test_an_email_or_an_id_that_holds_one_is_refused_naming_the_field(field: str, event: dict) -> None:
    with pytest.raises(EventInvalid) as caught:
        validate_event(event)
    assert caught.value.field == field
    assert "which Keap cannot carry" in caught.value.reason
    assert "ada" not in str(caught.value) and "1001" not in str(caught.value)  # the code point, never the value


def _free_strings(node: object, path: str = "") -> set[str]:
    """Paths of the schema's strings without a pattern or enum ("[]" any item, "*" any member)."""
    if not isinstance(node, dict):
        return set()
    kinds = node.get("type")
    found = {path} if "string" in (kinds if isinstance(kinds, list) else [kinds]) and "pattern" not in node else set()
    for name, sub in node.get("properties", {}).items():
        found |= _free_strings(sub, f"{path}.{name}" if path else name)
    if isinstance(node.get("additionalProperties"), dict):
        found |= _free_strings(node["additionalProperties"], f"{path}.*")
    found |= _free_strings(node.get("items"), f"{path}[]")
    for sub in node.get("allOf", []):
        found |= _free_strings(sub, path)
    return found


def test_every_string_the_schema_does_not_pattern_has_a_policy() -> None:
    from keap_relay.events.canonical import _policy, inlined_schema

    strings = set().union(*(_free_strings(inlined_schema(k)) for k in ("form_submission", "purchase", "unsubscribe")))
    assert "contact.address.line1" in strings and "order.items[].name" in strings
    assert {path for path in strings if _policy(path) is None} == set()
