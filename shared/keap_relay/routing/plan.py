"""The planner: a canonical event and the routes become the Keap calls to make, each once."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from .routes import Routes, Rule

# Canonical contact path -> Keap Contact field. Custom fields (`_Name`) come from contact.fields.
CONTACT_FIELDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("first_name",), "FirstName"),
    (("last_name",), "LastName"),
    (("email",), "Email"),
    (("phone",), "Phone1"),
    (("company",), "Company"),
    (("address", "line1"), "StreetAddress1"),
    (("address", "line2"), "StreetAddress2"),
    (("address", "city"), "City"),
    (("address", "region"), "State"),
    (("address", "postal_code"), "PostalCode"),
    (("address", "country_code"), "Country"),
)


def _plain(entry: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    return (entry,), (entry,)


def _sequence(entry: tuple[int, int]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    # A sequence is one call whether a rule names it bare (campaigns) or with its campaign (sequences).
    return (entry[0],), entry


# Port operations, in the order a follow-up runs them (all after the contact is known).
# rule key -> (port operation applied per contact, entry -> (what makes two entries one call, the call's args)).
# When two entries are one call, the one with more args (a sequence with its campaign id) wins.
FOLLOW_UPS: tuple[tuple[str, str, Callable[[Any], tuple[tuple[Any, ...], tuple[Any, ...]]]], ...] = (
    ("remove_tags", "remove_tag", _plain),
    ("remove_campaigns", "stop_sequence", _plain),
    ("remove_sequences", "stop_sequence", _sequence),
    ("pause_campaigns", "pause_sequence", _plain),
    ("tags", "apply_tag", _plain),
    ("campaigns", "start_sequence", _plain),
    ("sequences", "start_sequence", _sequence),
    ("action_sets", "run_action_set", _plain),
    ("goals", "achieve_goal", lambda entry: (entry, entry)),
)

# Operations made at most once per contact, whose key is the operation alone (their args carry no id; the
# email address stays out of step keys and checkpoints).
ONCE_PER_CONTACT: frozenset[str] = frozenset({"update_contact", "opt_out"})

# A `{{contact.x}}` placeholder in a routes `fields` value; routes check reads the same pattern.
TEMPLATE_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\s*\}\}")


@dataclass(frozen=True)
class Call:
    """One port operation; `args` exclude the contact id, which is known only at run time."""

    op: str
    args: tuple[Any, ...]

    @property
    def key(self) -> str:
        """Stable name of this step within its event (used for results and checkpoints)."""
        if not self.args or isinstance(self.args[0], dict) or self.op in ONCE_PER_CONTACT:
            return self.op
        return f"{self.op}:{':'.join(str(a) for a in self.args)}"


@dataclass(frozen=True)
class Plan:
    """What one event does in Keap: a first call that yields contact ids, then follow-ups per contact."""

    kind: str
    event_id: str
    first: Call  # upsert_contact (forms, purchases) or find_contacts (unsubscribes)
    follow_ups: tuple[Call, ...]
    rules: tuple[str, ...]  # labels of the rules that matched


def _lookup(event: dict[str, Any], dotted: str) -> Any:
    node: Any = event
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _render(value: Any, event: dict[str, Any]) -> Any:
    if not isinstance(value, str):
        return value
    return TEMPLATE_PLACEHOLDER.sub(lambda m: str(_lookup(event, m.group(1)) or ""), value)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip()
    return value


def _items(event: dict[str, Any]) -> list[dict[str, Any]]:
    return list((event.get("order") or {}).get("items") or [])


def _total(event: dict[str, Any]) -> Decimal | None:
    try:
        return Decimal(str((event.get("order") or {}).get("total")))
    except (InvalidOperation, ValueError):
        return None


def _any_item(attr: str) -> Callable[[dict[str, Any], Any], bool]:
    return lambda event, want: any(str(item.get(attr, "")) in want for item in _items(event))


def _field(*path: str) -> Callable[[dict[str, Any], Any], bool]:
    return lambda event, want: str(_lookup(event, ".".join(path)) or "") in want


def _bound(compare: Callable[[Decimal, Decimal], bool]) -> Callable[[dict[str, Any], Any], bool]:
    def check(event: dict[str, Any], want: Decimal) -> bool:
        total = _total(event)
        return total is not None and compare(total, want)

    return check


# match key -> predicate(event, wanted). Every key of a rule's match must hold.
MATCHERS: dict[str, Callable[[dict[str, Any], Any], bool]] = {
    "source": _field("source"),
    "form": _field("form", "id"),
    "form_name": _field("form", "name"),
    "sku": _any_item("sku"),
    "product_id": _any_item("product_id"),
    "currency": _field("order", "currency"),
    "min_total": _bound(lambda total, bound: total >= bound),
    "max_total": _bound(lambda total, bound: total <= bound),
    "list_id": _field("unsubscribe", "list_id"),
}


def matches(rule: Rule, event: dict[str, Any]) -> bool:
    """Whether every condition of the rule's match holds for the event."""
    return all(MATCHERS[key](event, want) for key, want in rule.match.items())


def contact_fields(event: dict[str, Any], rules: list[Rule] | tuple[Rule, ...] = ()) -> dict[str, Any]:
    """The Keap Contact fields for an event: mapped, custom and rule fields; trimmed; empties left out."""
    contact = event.get("contact") or {}
    out: dict[str, Any] = {}
    for path, keap_name in CONTACT_FIELDS:
        out[keap_name] = _lookup(contact, ".".join(path))
    out.update(contact.get("fields") or {})
    for rule in rules:
        out.update({name: _render(value, event) for name, value in rule.fields.items()})
    cleaned = {name: _clean(value) for name, value in out.items()}
    return {name: value for name, value in cleaned.items() if value is not None and value != ""}


def opt_out_reason(event: dict[str, Any]) -> str:
    """What Keap records as the reason an address opted out: the source, and the sender's reason if any."""
    reason = str((event.get("unsubscribe") or {}).get("reason") or "").strip()
    text = f"keap-relay: unsubscribed via {event.get('source') or 'webhook'}" + (f" ({reason})" if reason else "")
    return text[:200]


def plan(event: dict[str, Any], routes: Routes) -> Plan:
    """Build the plan of a validated canonical event: every matching rule contributes, ids unioned."""
    kind = event["kind"]
    matched = [rule for rule in routes.for_kind(kind) if matches(rule, event)]
    calls: dict[tuple[str, tuple[Any, ...]], tuple[Any, ...]] = {}  # (op, identity) -> args, in order
    for id_key, op, form in FOLLOW_UPS:
        for rule in matched:
            for entry in rule.ids.get(id_key, ()):
                identity, args = form(entry)
                known = calls.get((op, identity))
                if known is None or len(args) > len(known):
                    calls[(op, identity)] = args
    follow_ups = [Call(op, args) for (op, _), args in calls.items()]
    labels = tuple(rule.label for rule in matched)
    if kind == "unsubscribe":
        if any(rule.opt_out for rule in matched):
            follow_ups.append(Call("opt_out", (contact_fields(event)["Email"], opt_out_reason(event))))
        fields = {
            name: value
            for name, value in contact_fields(event, matched).items()
            if any(name in rule.fields for rule in matched)
        }
        if fields:
            follow_ups.insert(0, Call("update_contact", (fields,)))
        first = Call("find_contacts", (contact_fields(event)["Email"],))
        return Plan(kind, event["id"], first, tuple(follow_ups), labels)
    dup_check = next((rule.dup_check for rule in matched if rule.dup_check), routes.dup_check)
    first = Call("upsert_contact", (contact_fields(event, matched), dup_check))
    return Plan(kind, event["id"], first, tuple(follow_ups), labels)


# What a replay of archived events may re-apply, by routes key. The first call (the contact's upsert or look-up)
# and the contact's fields (a rule's `fields`, `opt_out`) always run; tags by default too. The rest only when
# asked for: re-adding a contact to a sequence restarts it, and a once-only step runs its flow again.
REPLAY_PARTS: dict[str, tuple[str, ...]] = {
    "tags": ("tags", "remove_tags"),
    "sequences": ("campaigns", "sequences", "remove_campaigns", "remove_sequences", "pause_campaigns"),
    "once-only": ("action_sets", "goals"),
}
REPLAY_DEFAULT: tuple[str, ...] = ("tags",)
_OP_OF_KEY = {id_key: op for id_key, op, _ in FOLLOW_UPS}


def replay_ops(include: Iterable[str]) -> frozenset[str]:
    """The follow-up operations a replay with these parts runs (beside the first call and the contact's fields)."""
    parts = set(include) | set(REPLAY_DEFAULT)
    unknown = parts - set(REPLAY_PARTS)
    if unknown:
        raise ValueError(f"unknown replay part(s) {', '.join(sorted(unknown))}; known: {', '.join(REPLAY_PARTS)}")
    return frozenset(_OP_OF_KEY[key] for part in parts for key in REPLAY_PARTS[part]) | ONCE_PER_CONTACT


def for_replay(planned: Plan, include: Iterable[str] = ()) -> Plan:
    """The plan as a replay runs it: the first call, the contact's fields, tags, and only the parts included."""
    kept = replay_ops(include)
    return replace(planned, follow_ups=tuple(call for call in planned.follow_ups if call.op in kept))
