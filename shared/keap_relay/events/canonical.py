"""Canonical events: the three kinds, their JSON Schemas, and validation that names the field and why."""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any

from .kinds import KIND_NAMES as KINDS
from .kinds import KINDS as _KINDS

# The kind-specific section each kind may carry; the others are not allowed on it.
SECTIONS: dict[str, str] = {kind.name: kind.section for kind in _KINDS}

# A failed `pattern` says nothing useful to a user; these say what the field should look like.
_PATTERN_REASONS: dict[str, str] = {
    "email": "is not an email address",
    "occurred_at": "is not an ISO 8601 date-time such as 2026-11-26T10:00:00Z",
    "total": 'is not a decimal string in major units such as "49.00"',
    "unit_price": 'is not a decimal string in major units such as "49.00"',
    "currency": "is not a three-letter ISO 4217 currency code such as USD",
    "source": "must be 1-64 lower-case letters, digits, '-' or '_'",
}


class EventInvalid(ValueError):
    """A canonical event that fails its schema; permanent: retrying cannot fix it."""

    transient = False

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


# Characters Keap cannot carry: control characters other than tab, LF and CR, lone surrogates, and U+FFFE/FFFF
# (XML 1.0 forbids them on XML-RPC; a surrogate cannot be encoded as UTF-8 for REST either). Accepted, such
# an event would fail in the worker, after the sender was told "accepted".
_NOT_CARRIED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")

# What such a character does to a field, by the field's path ("[]" any item, "*" any member). Free text a
# person typed loses it (the rest of the name still means the name); in an email or an id it would change
# which contact or which event is meant, so the event is refused naming the field. Fields not listed are
# left to the schema (patterns already refuse controls in kind, source, dates, money, currency).
DROP, REFUSE = "drop", "refuse"
TEXT_POLICY: dict[str, str] = {
    "id": REFUSE,
    "contact.email": REFUSE,
    "contact.first_name": DROP,
    "contact.last_name": DROP,
    "contact.phone": DROP,
    "contact.company": DROP,
    "contact.address.*": DROP,
    "contact.fields.*": DROP,
    "form.id": REFUSE,
    "form.name": DROP,
    "order.id": REFUSE,
    "order.items[].sku": REFUSE,
    "order.items[].product_id": REFUSE,
    "order.items[].name": DROP,
    "unsubscribe.reason": DROP,
    "unsubscribe.list_id": REFUSE,
}


def _policy(pattern: str) -> str | None:
    parent, _, _ = pattern.rpartition(".")
    return TEXT_POLICY.get(pattern) or (TEXT_POLICY.get(f"{parent}.*") if parent else None)


_DEPTH = 4  # the deepest text in the schema is order.items[].name; deeper is the schema's to refuse


def _repair(node: Any, pattern: str, where: str, depth: int = 0) -> Any:
    """`node` with free text repaired in place; raise EventInvalid at a string that cannot be."""
    if depth > _DEPTH:
        return node
    if isinstance(node, dict):
        for key in list(node):
            name = str(key)
            path = f"{pattern}.{name}" if pattern else name
            value = _repair(node[key], path, f"{where}.{name}" if where else name, depth + 1)
            if value == "" and node[key] != "":
                del node[key]  # nothing left to send: leaving it out keeps what Keap holds
            else:
                node[key] = value
        return node
    if isinstance(node, list):
        for number, item in enumerate(node):
            node[number] = _repair(item, f"{pattern}[]", f"{where}[{number}]", depth + 1)
        return node
    if not isinstance(node, str):
        return node
    bad = _NOT_CARRIED.search(node)
    if bad is None:
        return node
    policy = _policy(pattern)
    if policy == DROP:
        return _NOT_CARRIED.sub("", node)
    if policy == REFUSE:
        # The code point only: the value itself is personal data or a sender's id.
        raise EventInvalid(where, f"holds character U+{ord(bad.group()):04X}, which Keap cannot carry")
    return node


def repair_text(event: dict[str, Any]) -> dict[str, Any]:
    """Drop the characters Keap cannot carry from the event's free text, in place (TEXT_POLICY says which
    fields); raise EventInvalid naming an email or id that holds one. Returns the event."""
    return _repair(event, "", "")


def _load_schema(name: str) -> dict[str, Any]:
    return json.loads(resources.files("keap_relay.events").joinpath("schemas", name).read_text("utf-8"))


_LOCAL_DEF = "#/$defs/"
_BASE_REF = "event.schema.json"


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """`node` with every `{"$ref": "#/$defs/x"}` replaced by x itself (siblings kept beside it in an allOf)."""
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _inline(value, defs) for key, value in node.items() if key not in ("$ref", "$defs")}
    ref = node.get("$ref")
    if ref is None:
        return out
    if not ref.startswith(_LOCAL_DEF) or ref[len(_LOCAL_DEF) :] not in defs:
        raise ValueError(f"cannot inline $ref {ref!r}")
    target = _inline(defs[ref[len(_LOCAL_DEF) :]], defs)
    return {"allOf": [target], **out} if out else target


def inlined_schema(kind: str) -> dict[str, Any]:
    """The kind's schema as one document, every `$ref` replaced by what it points to.

    Same meaning as schema_for(kind) with event.schema.json beside it: the kind's schema is its own keywords
    and (allOf) the shared one. jsonschema resolves a `$ref` through its registry on every event it checks;
    inlined, the check costs about half the CPU (bench/bench_pipeline.py), and needs no registry.
    """
    base = _load_schema("event.schema.json")
    own = _load_schema(f"{kind}.schema.json")
    if own.get("$ref") != _BASE_REF:
        raise ValueError(f"{kind}.schema.json must refer to {_BASE_REF}")
    defs = base.get("$defs", {})
    shared = {k: v for k, v in _inline(base, defs).items() if k not in ("$id", "$schema")}
    siblings = {k: _inline(v, defs) for k, v in own.items() if k != "$ref"}
    return {**{k: siblings.pop(k) for k in ("$schema", "$id", "title") if k in siblings}, "allOf": [shared], **siblings}


@functools.cache
def _validator(kind: str) -> Any:
    # jsonschema is heavy to import and to compile: once per container, on first use. The schemas ship with
    # the code and a unit test checks them against the metaschema, so a cold start does not check them again.
    from jsonschema import Draft202012Validator

    return Draft202012Validator(inlined_schema(kind))


def schema_for(kind: str) -> dict[str, Any]:
    """The JSON Schema of one kind (it refers to event.schema.json for the shared parts)."""
    if kind not in KINDS:
        raise KeyError(kind)
    return _load_schema(f"{kind}.schema.json")


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(error: Any, kind: str) -> tuple[str, str]:
    where = _path(error.absolute_path)
    join = lambda name: f"{where}.{name}" if where else name  # noqa: E731
    if error.validator == "required":
        missing = next((p for p in error.validator_value if p not in error.instance), "?")
        return join(missing), "is required"
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return join(extra[0] if extra else "?"), "is not a known field"
    if "propertyNames" in error.schema_path:
        return where or "(event)", f"has a field name that is not a Keap field name: {error.instance!r}"
    if error.validator == "pattern":
        leaf = str(error.absolute_path[-1]) if error.absolute_path else ""
        return where or "(event)", _PATTERN_REASONS.get(leaf, f"does not match {error.validator_value}")
    return where or "(event)", error.message


def validate_event(event: Any, kind: str | None = None) -> dict[str, Any]:
    """Check `event` against its kind's schema; return it, or raise EventInvalid naming field and reason.

    With `kind`, the event must be of that kind (a function serves one kind only). The characters Keap
    cannot carry are dropped from free text first, in place (repair_text): every producer's event, webhook,
    queue or bus, passes here, at ingest and again in the worker.
    """
    if not isinstance(event, dict):
        raise EventInvalid("(event)", "must be a JSON object")
    event_kind = event.get("kind")
    if kind is not None and event_kind != kind:
        raise EventInvalid("kind", f"must be {kind!r} for this function, got {event_kind!r}")
    if event_kind not in KINDS:
        raise EventInvalid("kind", f"must be one of {', '.join(KINDS)}, got {event_kind!r}")
    for other in SECTIONS.values():
        if other in event and other != SECTIONS[event_kind]:
            raise EventInvalid(other, f"is not allowed in a {event_kind} event")
    repair_text(event)
    from jsonschema.exceptions import best_match

    error = best_match(_validator(event_kind).iter_errors(event))
    if error is not None:
        raise EventInvalid(*_describe(error, event_kind))
    return event
