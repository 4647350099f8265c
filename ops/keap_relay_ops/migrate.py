"""`keap-relay routes migrate --to rest`: a routes file's XML-RPC keys rewritten as REST v2 runs them, comments kept.

`campaigns: [S]` → `sequences: [{campaign: C, sequence: S}]` and `remove_campaigns` → `remove_sequences`, where C is
the campaign that holds sequence S in the app (listed through keap_relay_ops.catalog; never one call per id). That a
legacy follow-up sequence id is the v2 sequence id is UNVERIFIED, so each mapping is printed with both names for a
person to confirm. What REST v2 cannot run stays in place under a comment saying what to do, and is listed at the
end. The file is edited as round-trip YAML (ruamel.yaml): its comments, order and quoting stay.
Exit 0 when the result passes the REST routes check, 1 when something needs a person, 2 when it could not run.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from keap_relay.keap.v2_contact import maps_to_v2
from keap_relay.routing.routes import SECTION_KINDS, RoutesError, check_routes, parse_routes, routes_path
from keap_relay_ops.catalog import Catalog, CatalogError

PROG = "keap-relay routes migrate"
# The XML-RPC key -> the REST v2 key that does the same, given the sequence's campaign.
RENAMES: tuple[tuple[str, str], ...] = (("campaigns", "sequences"), ("remove_campaigns", "remove_sequences"))
# What REST v2 has no call for -> what a person does instead ({ids}: the rule's ids under that key).
NO_REST_CALL: dict[str, str] = {
    "action_sets": "REST v2 cannot run an action set: add an API goal at the start of a Campaign Builder sequence "
    "that does what action set {ids} did, write goals: [{{integration: I, call_name: N}}], then delete action_sets",
    "pause_campaigns": "REST v2 cannot pause a sequence: stop sequence {ids} with remove_sequences: "
    "[{{campaign: C, sequence: S}}] instead, then delete pause_campaigns",
}
MARK = "routes migrate:"  # starts every comment this command writes, so a person can search for them
NOTE_WIDTH = 110  # the comments it writes are wrapped to this width
UNVERIFIED = (
    "UNVERIFIED: that a legacy follow-up sequence id (XML-RPC addToCampaign) is the same as the REST v2 sequence id; "
    "check each pair of names below is one sequence"
)


class MigrateError(Exception):
    """The migration could not run (unreadable file, bad YAML, no key, Keap unreachable): exit 2, one line."""


@dataclass(frozen=True)
class Mapped:
    """One legacy sequence found in a campaign: what the rule said and what it says now."""

    rule: str
    key: str
    sequence: int
    campaign: int
    campaign_name: str
    v2_name: str
    legacy_name: str | None  # None: the legacy listing (XML-RPC) could not be read

    def __str__(self) -> str:
        legacy = "(legacy name unknown)" if self.legacy_name is None else f'"{self.legacy_name}"'
        differ = "" if self.legacy_name in (None, self.v2_name) else "  <- the names differ: check"
        new_key = dict(RENAMES)[self.key]
        return (
            f"{self.rule}: {self.key} {self.sequence} → {new_key} {{campaign: {self.campaign}, sequence: "
            f'{self.sequence}}}: legacy {legacy} = v2 "{self.v2_name}" in campaign "{self.campaign_name}"{differ}'
        )


@dataclass(frozen=True)
class Todo:
    """Something the migration left for a person, where it is and what to do."""

    rule: str
    key: str
    what: str
    id: int | None = None

    def __str__(self) -> str:
        return f"{self.rule}: {self.key}: {self.what}"


def _round_trip() -> Any:
    from ruamel.yaml import YAML  # the ops extra; imported here so `keap-relay --help` does not need it

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long line the file had on one
    return yaml


def _label(section: str, index: int, rule: Any) -> str:
    name = rule.get("name") if isinstance(rule, dict) else None
    return f"{section}[{index}]" + (f" ({name})" if name else "")


def _rules(doc: Any) -> list[tuple[str, Any]]:
    return [
        (_label(section, i, rule), rule)
        for section in SECTION_KINDS
        for i, rule in enumerate(doc.get(section) or [])
        if isinstance(rule, dict)
    ]


def _note(rule: Any, key: str, text: str) -> None:
    """Comment lines above `key`, at the column of the rule's keys."""
    column = getattr(getattr(rule, "lc", None), "col", None) or 4
    lines = textwrap.wrap(f"{MARK} {text}", width=max(40, NOTE_WIDTH - column), break_on_hyphens=False)
    rule.yaml_set_comment_before_after_key(key, before="\n".join(lines), indent=column)


def _flow_entries(pairs: list[tuple[int, int]]) -> Any:
    from ruamel.yaml.comments import CommentedSeq

    entries = CommentedSeq()
    entries.fa.set_flow_style()
    for sequence, campaign in pairs:
        entries.append(_flow_entry(campaign, sequence))
    return entries


def _flow_entry(campaign: int, sequence: int) -> Any:
    from ruamel.yaml.comments import CommentedMap

    entry = CommentedMap([("campaign", campaign), ("sequence", sequence)])
    entry.fa.set_flow_style()
    return entry


class Campaigns:
    """Where each v2 sequence lives, read from the app once (campaigns, then each campaign's sequences)."""

    def __init__(self, catalog: Catalog) -> None:
        self.names = catalog.campaigns()
        self.homes: dict[int, list[tuple[int, str]]] = {}  # sequence id -> [(campaign id, sequence name)]
        for campaign in self.names:
            for sequence, name in catalog.sequences(campaign).items():
                self.homes.setdefault(sequence, []).append((campaign, name))
        try:
            self.legacy: dict[int, str] | None = catalog.legacy_sequences()
            self.legacy_problem = None
        except CatalogError as exc:  # XML-RPC may already be gone: the mapping is still made, without its names
            self.legacy, self.legacy_problem = None, str(exc)


def _rename(rule: Any, label: str, key: str, campaigns: Campaigns, mapped: list[Mapped], todo: list[Todo]) -> None:
    """Move the sequences of `rule[key]` found in exactly one campaign to the REST key; note those left."""
    new_key = dict(RENAMES)[key]
    found: list[tuple[int, int]] = []
    left: list[Todo] = []
    for raw in rule[key]:
        sequence = int(raw)
        homes = campaigns.homes.get(sequence, [])
        if len(homes) == 1:
            campaign, v2_name = homes[0]
            found.append((sequence, campaign))
            legacy = None if campaigns.legacy is None else campaigns.legacy.get(sequence, "(not in the legacy list)")
            mapped.append(Mapped(label, key, sequence, campaign, campaigns.names.get(campaign, ""), v2_name, legacy))
        elif not homes:
            what = (
                f"sequence {sequence} is in no campaign of this app: find the campaign that should start it "
                f"and write {new_key}: [{{campaign: C, sequence: {sequence}}}]"
            )
            left.append(Todo(label, key, what, sequence))
        else:
            where = ", ".join(f'{c} "{campaigns.names.get(c, "")}"' for c, _ in homes)
            what = f"sequence {sequence} is in several campaigns ({where}): write {new_key} with the right one"
            left.append(Todo(label, key, what, sequence))
    todo.extend(left)
    if found:
        if new_key in rule:
            present = {(int(e["sequence"]), int(e["campaign"])) for e in rule[new_key]}
            rule[new_key].extend(_flow_entry(c, s) for s, c in found if (s, c) not in present)
        else:
            rule.insert(list(rule).index(key), new_key, _flow_entries(found))
    if not left:
        comment = rule.ca.items.pop(key, None)
        if comment is not None and new_key not in rule.ca.items:
            rule.ca.items[new_key] = comment  # the key's own comment, and the comment lines below it
        del rule[key]
        return
    kept = {item.id for item in left}
    entries = rule[key]  # edited in place: it keeps its style and comments
    for i in reversed(range(len(entries))):
        if int(entries[i]) not in kept:
            del entries[i]
    for item in left:
        _note(rule, key, item.what)


def _mark_what_rest_cannot_run(rule: Any, label: str, todo: list[Todo]) -> None:
    for key, what in NO_REST_CALL.items():
        if rule.get(key):
            ids = ", ".join(str(i) for i in rule[key])
            todo.append(Todo(label, key, what.format(ids=ids)))
            _note(rule, key, todo[-1].what)
    fields = rule.get("fields") or {}
    orphans = [name for name in fields if not maps_to_v2(str(name))]
    if orphans:
        todo.append(
            Todo(
                label,
                "fields",
                f"REST v2 has no Contact property for {', '.join(orphans)}: drop it or keep the value in a "
                "custom field (a name starting with _)",
            )
        )
        _note(rule, "fields", todo[-1].what)


def migrate(
    text: str, path: str, catalog_factory: Callable[[], Catalog] | None = None
) -> tuple[str, list[Mapped], list[Todo], str | None]:
    """The migrated text, the mappings made, what needs a person, and a note on the legacy names (or None).

    `catalog_factory` makes the Catalog (default: Catalog.from_env for REST); it is called only when the file
    names legacy sequences.
    """
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.util import load_yaml_guess_indent

    yaml = _round_trip()
    try:
        _, indent, block_seq_indent = load_yaml_guess_indent(text)
        doc = yaml.load(text)
    except YAMLError as exc:
        raise MigrateError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    try:  # the functions' own reading of the file: a file they refuse is not migrated
        parse_routes(_safe_load(text), path)
    except RoutesError as exc:
        raise MigrateError(str(exc)) from None
    # Keep the file's own indentation: `forms:\n  - name:` is sequence 4, offset 2; `forms:\n- name:` 2 and 0.
    offset = block_seq_indent if indent else 2
    yaml.indent(mapping=max(2, (indent or 4) - offset), sequence=indent or 4, offset=offset)
    mapped: list[Mapped] = []
    todo: list[Todo] = []
    note = None
    rules = _rules(doc)
    if any(rule.get(key) for _, rule in rules for key, _ in RENAMES):
        campaigns = _read_campaigns(catalog_factory or (lambda: Catalog.from_env(api="rest")))
        if campaigns.legacy_problem:
            note = f"legacy names unknown (XML-RPC listing failed: {campaigns.legacy_problem})"
        for label, rule in rules:
            for key, _ in RENAMES:
                if rule.get(key):
                    _rename(rule, label, key, campaigns, mapped, todo)
    for label, rule in rules:
        _mark_what_rest_cannot_run(rule, label, todo)
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue(), mapped, todo, note


def _read_campaigns(catalog_factory: Callable[[], Catalog]) -> Campaigns:
    try:
        catalog = catalog_factory()
        try:
            return Campaigns(catalog)
        finally:
            catalog.close()
    except CatalogError as exc:
        raise MigrateError(f"cannot list the app's campaigns: {exc}") from None


def _safe_load(text: str) -> Any:
    import yaml  # PyYAML, as the functions read routes files

    return yaml.safe_load(text)


def passes_rest_check(text: str, path: str) -> str | None:
    """None when the text is a routes file REST v2 runs (the functions' own check, offline), else why not."""
    try:
        check_routes(parse_routes(_safe_load(text), path), "rest")
    except RoutesError as exc:
        return str(exc)
    return None


def _write(path: Path, text: str) -> None:
    """Write whole or not at all: a temporary file beside the target, then renamed over it."""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644  # mkstemp's own 0600 would hide the file
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def report(mapped: list[Mapped], todo: list[Todo], note: str | None, verdict: str | None, out: TextIO) -> None:
    if mapped:
        print(UNVERIFIED, file=out)
        for item in mapped:
            print(f"  {item}", file=out)
    if note:
        print(note, file=out)
    if todo:
        print(f"Needs a person ({len(todo)}; each is marked '# {MARK}' in the file):", file=out)
        for item in todo:
            print(f"  {item}", file=out)
    elif verdict:
        print(f"The result does not pass the REST routes check: {verdict}", file=out)
    else:
        print("The result passes the REST routes check (keap-relay routes check --api rest).", file=out)


def run(args: argparse.Namespace) -> int:
    """`keap-relay routes migrate --to rest [--routes FILE] [--out FILE]`: 0 done, 1 needs a person, 2 could not run."""
    if getattr(args, "to", "rest") != "rest":
        print(f"{PROG}: --to must be rest, not {args.to!r}", file=sys.stderr)
        return 2
    source = Path(args.routes or routes_path())
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(
            f"{PROG}: {source}: cannot read the routes file: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr
        )
        return 2
    try:
        result, mapped, todo, note = migrate(text, str(source))
    except MigrateError as exc:
        print(f"{PROG}: {exc}".splitlines()[0], file=sys.stderr)
        return 2
    verdict = passes_rest_check(result, str(args.out or source))
    if args.out:
        try:
            _write(Path(args.out), result)
        except OSError as exc:
            print(f"{PROG}: {args.out}: cannot write: {exc.strerror or exc}", file=sys.stderr)
            return 2
        report(mapped, todo, note, verdict, sys.stdout)
    else:
        sys.stdout.write(result)
        sys.stdout.flush()
        report(mapped, todo, note, verdict, sys.stderr)  # stdout carries the file alone
    return 0 if verdict is None and not todo else 1
