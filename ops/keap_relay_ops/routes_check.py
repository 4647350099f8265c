"""`keap-relay routes check`: is a routes file fine before it touches Keap — offline, and with --live against the app.

Offline: the schema, keys the chosen API cannot run (the check the functions make at start), placeholders
naming no field of the event, rules that can never match, ids both added and removed by one rule. `--live`:
every referenced id exists in the app, read with listing calls only (keap_relay_ops.catalog). Exit 0 fine,
1 problems, 2 could not check.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from keap_relay.events.canonical import inlined_schema
from keap_relay.keap.v2_contact import maps_to_v2
from keap_relay.routing.plan import TEMPLATE_PLACEHOLDER as PLACEHOLDER
from keap_relay.routing.routes import API_LIMITS, KEAP_APIS, SECTION_KINDS, Routes, RoutesError, Rule, load_routes
from keap_relay.routing.routes import routes_path as default_routes_path
from keap_relay_ops.catalog import Catalog, CatalogError, CatalogUnsupported

OK, MISSING, UNCHECKED = "ok", "missing", "unchecked"
MARKS = {OK: "✓", MISSING: "✗", UNCHECKED: "-"}
STYLES = {OK: "green", MISSING: "bold red", UNCHECKED: "yellow"}

# Rule keys that add and that take away the same thing: an id in both of one rule is a mistake. (Only
# unsubscribe rules remove, and they start no sequence: tags are the one pair the schema lets meet.)
OPPOSITES: tuple[tuple[str, str], ...] = (("tags", "remove_tags"),)
GOALS_UNCHECKED = (
    "cannot be checked: neither REST v2's goal listing nor XML-RPC gives a goal's integration or call name"
)


class CheckError(Exception):
    """The check could not run (unreadable file, Keap unreachable); exit 2 with this one line."""


@dataclass(frozen=True)
class Problem:
    """Something wrong with the routes file: where (file, rule, field, id) and what."""

    file: str
    message: str
    section: str | None = None
    index: int | None = None
    name: str | None = None
    field: str | None = None
    id: str | None = None

    def __str__(self) -> str:
        parts = [self.file]
        if self.section is not None:
            parts.append(f"rule {self.section}[{self.index}]" + (f" ({self.name})" if self.name else ""))
        if self.field:
            parts.append(f"field {self.field}")
        if self.id is not None:
            parts.append(f"id {self.id}")
        return ": ".join([*parts, self.message])


@dataclass
class Reference:
    """One id a rule names, and (with --live) whether the app has it and what it calls it."""

    section: str
    index: int
    name: str | None
    field: str
    kind: str  # tag | legacy sequence | sequence | action set | custom field | goal
    id: str
    campaign: int | None = None
    status: str = UNCHECKED
    keap_name: str | None = None
    note: str | None = None

    @property
    def rule(self) -> str:
        return f"{self.section}[{self.index}]" + (f" ({self.name})" if self.name else "")

    def line(self) -> str:
        what = f"{self.kind} {self.id}" + (f" in campaign {self.campaign}" if self.campaign is not None else "")
        shown = f'{what} "{self.keap_name}"' if self.keap_name is not None else what
        tail = f" — {self.note}" if self.note else ""
        if self.status == UNCHECKED:
            tail = " — unchecked" + (f": {self.note}" if self.note else "")
        return f"{MARKS[self.status]} {shown}  ({self.rule} {self.field}){tail}"


# ---------------------------------------------------------------------------------------------- the file


def read_routes(path: str) -> tuple[Routes | None, list[Problem]]:
    """The routes as the functions load them, or the problem that stops them loading.

    CheckError when the file cannot be read at all: that is "could not check", not a problem of the file.
    """
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise CheckError(f"{path}: cannot read the routes file: {exc.strerror or exc}") from None
    try:
        return load_routes(path), []
    except RoutesError as err:
        message = " ".join(str(err).split())  # a YAML error spans lines; a problem is one
        return None, [Problem(path, message.removeprefix(f"{path}: "))]


def _rules(routes: Routes) -> Iterator[Rule]:
    for kind in SECTION_KINDS.values():
        yield from routes.for_kind(kind)


def _problem(routes: Routes, rule: Rule, field: str, message: str, ident: Any = None) -> Problem:
    return Problem(
        routes.path, message, rule.section, rule.index, rule.name, field, None if ident is None else str(ident)
    )


# ---------------------------------------------------------------------------------------------- offline


def _branches(schema: Any) -> Iterator[dict[str, Any]]:
    if isinstance(schema, dict):
        yield schema
        for sub in schema.get("allOf", []):
            yield from _branches(sub)


def known_path(schema: Any, parts: list[str]) -> bool:
    """Whether an event valid against `schema` can have a value at the dotted path `parts`."""
    if not parts or schema is True:
        return True
    branches = list(_branches(schema))
    if not branches or any("type" in b and "object" not in b["type"] for b in branches):
        return False  # false, or a string / number / array: nothing under it
    head, rest = parts[0], parts[1:]
    found = [b["properties"][head] for b in branches if head in b.get("properties", {})]
    if found:
        return all(sub is not False for sub in found) and all(known_path(sub, rest) for sub in found)
    extra = [b["additionalProperties"] for b in branches if "additionalProperties" in b]
    return all(sub is not False for sub in extra) and all(known_path(sub, rest) for sub in extra)


def offline_problems(routes: Routes, api: str) -> list[Problem]:
    """What is wrong without asking Keap: unrunnable keys, unknown placeholders, dead rules, add-and-remove."""
    problems: list[Problem] = []
    limits = API_LIMITS[api]
    schemas = {kind: inlined_schema(kind) for kind in SECTION_KINDS.values()}
    for rule in _rules(routes):
        problems += [_problem(routes, rule, key, limits[key]) for key in rule.ids if key in limits]
        for field, value in rule.fields.items():
            if api == "rest" and not maps_to_v2(field):
                problems.append(
                    _problem(routes, rule, f"fields.{field}", "the Contact field has no REST v2 counterpart")
                )
            for placeholder in PLACEHOLDER.findall(value) if isinstance(value, str) else []:
                if not known_path(schemas[SECTION_KINDS[rule.section]], placeholder.split(".")):
                    message = f"{{{{{placeholder}}}}} names no field of a {SECTION_KINDS[rule.section]} event"
                    problems.append(_problem(routes, rule, f"fields.{field}", message))
        low, high = rule.match.get("min_total"), rule.match.get("max_total")
        if low is not None and high is not None and low > high:
            message = f"never matches: min_total {low} is greater than max_total {high}"
            problems.append(_problem(routes, rule, "match", message))
        for add, remove in OPPOSITES:
            for ident in sorted(set(rule.ids.get(add, ())) & set(rule.ids.get(remove, ()))):
                problems.append(_problem(routes, rule, f"{add}, {remove}", f"both {add} and {remove}", ident))
    return problems


# ---------------------------------------------------------------------------------------------- live


def references(routes: Routes, api: str) -> list[Reference]:
    """Every id the rules name, in file order, as the chosen API would use it."""
    # rule key -> what kind of thing its ids are. On XML-RPC a `sequences` entry runs as its legacy sequence id.
    kinds = {
        "tags": "tag",
        "remove_tags": "tag",
        "campaigns": "legacy sequence",
        "remove_campaigns": "legacy sequence",
        "pause_campaigns": "legacy sequence",
        "sequences": "sequence" if api == "rest" else "legacy sequence",
        "remove_sequences": "sequence" if api == "rest" else "legacy sequence",
        "action_sets": "action set",
        "goals": "goal",
    }
    out: list[Reference] = []
    for rule in _rules(routes):
        where = (rule.section, rule.index, rule.name)
        for key, entries in rule.ids.items():
            for entry in entries:
                if key == "goals":
                    out.append(Reference(*where, key, "goal", f"{entry[0]}/{entry[1]}", note=GOALS_UNCHECKED))
                elif isinstance(entry, tuple):  # (sequence, campaign)
                    out.append(Reference(*where, key, kinds[key], str(entry[0]), campaign=entry[1]))
                else:
                    out.append(Reference(*where, key, kinds[key], str(entry)))
        out += [Reference(*where, "fields", "custom field", name) for name in rule.fields if name.startswith("_")]
    return out


def _lookups(catalog: Catalog) -> dict[str, Callable[[Reference], dict[Any, str] | None]]:
    # kind -> the listing that holds it (None: nothing to look in). Sequences are looked for in their campaign,
    # and only when the campaign exists: asking for an unknown campaign's sequences is an error on Keap.
    def sequence(ref: Reference) -> dict[Any, str] | None:
        if ref.campaign not in catalog.campaigns():
            ref.note = f"Keap has no campaign {ref.campaign}"
            return {}
        return catalog.sequences(int(ref.campaign))

    return {
        "tag": lambda ref: catalog.tags(),
        "legacy sequence": lambda ref: catalog.legacy_sequences(),
        "sequence": sequence,
        "action set": lambda ref: catalog.action_sets(),
        "custom field": lambda ref: catalog.custom_fields(),
        "goal": lambda ref: None,
    }


def check_live(refs: list[Reference], catalog: Catalog) -> None:
    """Look each reference up in the app's listings (one call per kind and page); marks them in place.

    A key the API cannot run is a problem already: when its listing cannot be read (XML-RPC's legacy
    sequences after its sunset), its ids stay unchecked rather than stop the check.
    """
    lookups = _lookups(catalog)
    unread: dict[str, str] = {}  # kind -> why its listing could not be read (asked once)
    for ref in refs:
        if ref.kind in unread:
            ref.note = unread[ref.kind]
            continue
        try:
            listing = lookups[ref.kind](ref)
        except CatalogError as exc:
            if not isinstance(exc, CatalogUnsupported) and ref.field not in API_LIMITS[catalog.api]:
                raise
            ref.note = unread[ref.kind] = str(exc)
            continue
        if listing is None:
            continue
        key: Any = ref.id if ref.kind == "custom field" else int(ref.id)
        ref.status = OK if key in listing else MISSING
        ref.keap_name = listing.get(key)
        if ref.status == MISSING and not ref.note:
            within = f" in campaign {ref.campaign}" if ref.kind == "sequence" else ""
            ref.note = f"Keap has no {ref.kind} {ref.id}{within}"


def live_problems(routes: Routes, refs: list[Reference]) -> list[Problem]:
    return [
        Problem(
            routes.path,
            ref.note or f"Keap has no {ref.kind} {ref.id}",
            ref.section,
            ref.index,
            ref.name,
            ref.field,
            ref.id,
        )
        for ref in refs
        if ref.status == MISSING
    ]


# ---------------------------------------------------------------------------------------------- the command


def run_check(path: str, api: str, live: bool, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The whole check as a JSON-ready report: file, api, live, references, problems, calls."""
    routes, problems = read_routes(path)
    refs: list[Reference] = []
    calls = 0
    if routes is not None:
        problems += offline_problems(routes, api)
        refs = references(routes, api)
        if live:
            try:
                with Catalog.from_env(api, env) as catalog:
                    check_live(refs, catalog)
                    calls = catalog.calls
            except CatalogError as exc:
                raise CheckError(str(exc)) from None
            problems += live_problems(routes, refs)
    return {
        "file": path,
        "api": api,
        "live": live,
        "references": [asdict(ref) for ref in refs],
        "problems": [asdict(problem) | {"text": str(problem)} for problem in problems],
        "keap_calls": calls,
    }


def _show(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.text import Text

    console = Console(markup=False, emoji=False, highlight=False, soft_wrap=True)
    mode = "live" if report["live"] else "offline"
    console.print(f"{report['file']}: KEAP_API={report['api']}, {mode}")
    for raw in report["references"] if report["live"] else []:
        ref = Reference(**raw)
        console.print(Text("  " + ref.line(), style=STYLES[ref.status]))
    if report["live"]:
        counts = {s: sum(r["status"] == s for r in report["references"]) for s in (OK, MISSING, UNCHECKED)}
        console.print(
            f"{len(report['references'])} references: {counts[OK]} found, {counts[MISSING]} missing, "
            f"{counts[UNCHECKED]} unchecked ({report['keap_calls']} Keap calls)"
        )
    if report["problems"]:
        console.print(Text(f"{len(report['problems'])} problem(s):", style="bold red"))
        for problem in report["problems"]:
            console.print("  " + problem["text"])
    else:
        console.print(Text("no problems", style="green"))


def cmd_check(args: argparse.Namespace) -> int:
    api = args.api or os.environ.get("KEAP_API") or KEAP_APIS[0]
    if api not in KEAP_APIS:
        print(f"keap-relay routes check: KEAP_API must be one of {', '.join(KEAP_APIS)}, not {api!r}", file=sys.stderr)
        return 2
    try:
        report = run_check(args.routes or default_routes_path(), api, args.live)
    except CheckError as exc:
        print(f"keap-relay routes check: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        _show(report)
    return 1 if report["problems"] else 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`routes check`'s options."""
    parser.add_argument(
        "--routes", metavar="FILE", help="the routes file (default: ROUTES_FILE, else config/routes.yaml)"
    )
    parser.add_argument("--api", choices=KEAP_APIS, help="the Keap API the routes must run on (default: KEAP_API)")
    live = "also look every id up in the Keap app of KEAP_URL / KEAP_REST_URL / KEAP_API_KEY (listing calls only)"
    parser.add_argument("--live", action="store_true", help=live)
    parser.add_argument("--json", action="store_true", help="print one JSON object for scripts")
    parser.set_defaults(handler=cmd_check)
