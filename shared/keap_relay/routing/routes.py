"""The routes file: which tags, sequences, action sets and goals each event gets — schema-checked, loaded once."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from ..events.kinds import KINDS

DEFAULT_ROUTES_FILE = "config/routes.yaml"

# routes-file section -> the event kind it serves
SECTION_KINDS: dict[str, str] = {kind.routes_section: kind.name for kind in KINDS}
# Rule keys that name Keap things; every matching rule's entries are unioned per key. Entry as the file
# has it -> the hashable form kept in Rule.ids: an id, (sequence, campaign), or (integration, call_name).
ID_KEYS: dict[str, Callable[[Any], Any]] = {
    "tags": int,
    "campaigns": int,
    "sequences": lambda entry: (entry["sequence"], entry["campaign"]),
    "action_sets": int,
    "goals": lambda entry: (entry["integration"], entry["call_name"]),
    "remove_tags": int,
    "remove_campaigns": int,
    "remove_sequences": lambda entry: (entry["sequence"], entry["campaign"]),
    "pause_campaigns": int,
}

# The Keap APIs a deployment can drive (KEAP_API), the default first: REST v2, as Keap retires XML-RPC (reported
# for 2026-12-31, with brownouts before it); xmlrpc stays supported for those not migrated yet.
KEAP_APIS: tuple[str, ...] = ("rest", "xmlrpc")

# API -> rule key it has no call for -> what to write instead. The routes check names every rule that uses one.
API_LIMITS: dict[str, dict[str, str]] = {
    "xmlrpc": {},
    "rest": {
        "campaigns": "REST v2 starts a sequence only with its campaign id; write sequences: [{campaign: C, "
        "sequence: S}]",
        "remove_campaigns": "REST v2 stops a sequence only with its campaign id; write remove_sequences: "
        "[{campaign: C, sequence: S}]",
        "pause_campaigns": "REST v2 has no call to pause a sequence; stop it with remove_sequences instead",
        "action_sets": "REST v2 has no call to run an action set; achieve an automation goal with goals: "
        "[{integration: I, call_name: N}] instead",
    },
}
MONEY_KEYS: frozenset[str] = frozenset({"min_total", "max_total"})


class RoutesError(ValueError):
    """The routes file is missing, unreadable or breaks its schema; the message names file, rule and field."""


@dataclass(frozen=True)
class Rule:
    """One rule of a section: a match and what it contributes."""

    section: str
    index: int
    name: str | None
    match: dict[str, Any]  # key -> frozenset[str] of accepted values, or Decimal for money bounds
    ids: dict[str, tuple[Any, ...]]  # ID_KEYS key -> entries in their hashable form
    fields: dict[str, Any] = field(default_factory=dict)
    dup_check: str | None = None
    opt_out: bool = False

    @property
    def label(self) -> str:
        named = f" ({self.name})" if self.name else ""
        return f"{self.section}[{self.index}]{named}"


@dataclass(frozen=True)
class Routes:
    """A loaded routes file."""

    path: str
    dup_check: str
    rules: dict[str, tuple[Rule, ...]]  # kind -> rules, in file order

    def for_kind(self, kind: str) -> tuple[Rule, ...]:
        return self.rules.get(kind, ())


def _pointer(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@functools.cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    # Not checked against the metaschema here (~20 ms of a worker's cold start): it ships with the code, and
    # a unit test checks it.
    text = resources.files("keap_relay.routing").joinpath("routes.schema.json").read_text("utf-8")
    return Draft202012Validator(json.loads(text))


def _schema_error(path: str, doc: dict[str, Any]) -> RoutesError | None:
    from jsonschema.exceptions import best_match

    error = best_match(_validator().iter_errors(doc))
    if error is None:
        return None
    parts = list(error.absolute_path)
    where = "top level"
    if len(parts) >= 2 and parts[0] in SECTION_KINDS and isinstance(parts[1], int):
        rule = doc[parts[0]][parts[1]]
        name = rule.get("name") if isinstance(rule, dict) else None
        where = f"rule {parts[0]}[{parts[1]}]" + (f" ({name})" if name else "")
        parts = parts[2:]
    leaf = _pointer(parts)
    if error.validator == "required":
        missing = next((p for p in error.validator_value if p not in error.instance), "?")
        leaf, reason = (f"{leaf}.{missing}" if leaf else missing), "is required"
    elif error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        unknown = extra[0] if extra else "?"
        leaf, reason = (f"{leaf}.{unknown}" if leaf else unknown), f"is not a known key (allowed: {allowed})"
    else:
        reason = error.message
    return RoutesError(f"{path}: {where}: field {leaf or '(file)'!s}: {reason}")


def _values(raw: Any) -> frozenset[str]:
    # YAML reads `form: 12345` as an int; events carry ids as strings, so compare as strings.
    items = raw if isinstance(raw, list) else [raw]
    return frozenset(str(item) for item in items)


def _rule(section: str, index: int, raw: dict[str, Any]) -> Rule:
    match = {
        key: Decimal(str(value)) if key in MONEY_KEYS else _values(value)
        for key, value in (raw.get("match") or {}).items()
    }
    ids = {key: tuple(dict.fromkeys(form(e) for e in raw[key])) for key, form in ID_KEYS.items() if raw.get(key)}
    return Rule(
        section,
        index,
        raw.get("name"),
        match,
        ids,
        dict(raw.get("fields") or {}),
        raw.get("dup_check"),
        bool(raw.get("opt_out")),
    )


def parse_routes(doc: Any, path: str = "<routes>") -> Routes:
    """Check a parsed routes document against the schema and build Routes from it."""
    if not isinstance(doc, dict):
        raise RoutesError(
            f"{path}: top level: must be a mapping with `version: 1` and sections {', '.join(SECTION_KINDS)}"
        )
    error = _schema_error(path, doc)
    if error is not None:
        raise error
    rules = {
        kind: tuple(_rule(section, i, raw) for i, raw in enumerate(doc.get(section) or []))
        for section, kind in SECTION_KINDS.items()
    }
    return Routes(path=path, dup_check=doc.get("dup_check", "Email"), rules=rules)


def routes_path() -> str:
    """The routes file in force: ROUTES_FILE, else config/routes.yaml."""
    return os.environ.get("ROUTES_FILE") or DEFAULT_ROUTES_FILE


def check_routes(routes: Routes, api: str) -> None:
    """Refuse routes that cannot run on `api` (xmlrpc | rest); the error names every such rule and field."""
    if api not in API_LIMITS:
        raise RoutesError(f"{routes.path}: KEAP_API must be one of {', '.join(KEAP_APIS)}, not {api!r}")
    limits = API_LIMITS[api]
    problems = []
    for kind in SECTION_KINDS.values():
        for rule in routes.for_kind(kind):
            where = f"rule {rule.label}"
            problems += [f"{where}: field {key}: {limits[key]}" for key in rule.ids if key in limits]
            if api == "rest":
                from ..keap.v2_contact import maps_to_v2

                problems += [
                    f"{where}: field fields.{name}: the Contact field has no REST v2 counterpart"
                    for name in rule.fields
                    if not maps_to_v2(name)
                ]
    if problems:
        lines = "\n  ".join(problems)
        raise RoutesError(f"{routes.path}: {len(problems)} rule field(s) cannot run with KEAP_API={api}:\n  {lines}")


@functools.cache
def load_routes(path: str | None = None, api: str | None = None) -> Routes:
    """Load and check a routes file once per container (cached per path and API).

    With `api`, the routes must also be runnable on that Keap API (see check_routes).
    """
    path = path or routes_path()
    routes = _load(path)
    if api is not None:
        check_routes(routes, api)
    return routes


@functools.cache
def _load(path: str) -> Routes:
    return read_routes(path)


def read_routes(path: str, api: str | None = None) -> Routes:
    """Read and check a routes file now, uncached (load_routes is what a function uses: once per container)."""
    import yaml

    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise RoutesError(f"{path}: cannot read the routes file: {exc.strerror or exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RoutesError(f"{path}: not valid YAML: {exc}") from None
    routes = parse_routes(doc, path)
    if api is not None:
        check_routes(routes, api)
    return routes
