"""`keap-relay replay`: a kind's archived events of a time window, applied again with the routes deployed now.

The fix for "our routes were wrong last week": each archived event (aws/archive.py) is sent to its kind's work
queue with a replay marker (queue.Replay, as message attributes), and the function applies it as it applies any
event, but once per replay name (the name is part of its idempotency and checkpoint keys) and only the parts of its
plan a replay re-applies (routing.plan.for_replay: the contact, its fields and tags; sequences and once-only steps
when asked). So running the same replay again applies nothing twice. Contacts whose unsubscribe arrived after the
event are skipped. `--dry-run` prints what each event would do (explain's account of the replayed plan) and sends
nothing. Works on the local stack (default) and on a deployed stack (`--stack NAME`), finding the queues as `dlq`
does and the tables among the stack's resources.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from keap_relay.aws import idempotency, queue
from keap_relay.aws.archive import parse_stamp
from keap_relay.aws.observe import redact
from keap_relay.events.kinds import FOLDERS, Kind, kind_named
from keap_relay.routing.plan import REPLAY_DEFAULT

from .archive_cli import parse_time
from .dlq import SQS_BATCH, DeadLetterQueue, _kind, aws_queues, local_queues, parse_duration
from .output import show
from .where import add_where

IDEMPOTENCY_TABLE = "IdempotencyTable"  # the template's logical id
# A replay is recorded in the archive table (pk `replay#<kind>`, sk its name): the archive is what it replays, and a
# record is a few hundred bytes with no personal data. Kept a year, so overlaps are warned about long after.
RECORD_PREFIX = "replay#"
RECORD_KEEP_SECONDS = 365 * 86400
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=:-]{0,99}$")  # no `#`: it separates the parts of a key
DEFAULT_WAIT = 300.0
POLL_SECONDS = 2.0
PROGRESS_EVERY = 100  # events between progress lines when stderr is not a terminal
BATCH_GET = 100  # DynamoDB's most keys per BatchGetItem
REASON_TEXT = 160


class ReplayError(Exception):
    """The replay cannot run (exit 2): the archive is off, nothing is archived in the window, a name is taken."""


# ---------------------------------------------------------------------------------------------------- where


@dataclass(frozen=True)
class Target:
    """Where a replay reads and sends: the kind's queues, the archive, and the record of what the function applied."""

    kind: Kind
    queues: DeadLetterQueue
    archive: Any  # keap_relay.aws.archive.Archive, with the stack's DynamoDB client
    idempotency_table: str
    function_name: str  # the function's AWS_LAMBDA_FUNCTION_NAME: the prefix of its idempotency records

    @property
    def dynamodb(self) -> Any:
        return self.archive.client


def find_target(args: argparse.Namespace) -> Target:
    """The archive as `keap-relay archive` finds it, the queues as `dlq` does; the idempotency table and the
    function from the stack's resources (deployed) or the template (local)."""
    from .archive_cli import OFF, ArchiveOff, archive_for

    kind = kind_named(args.kind)
    try:
        archive, _ = archive_for(args)
    except ArchiveOff:
        raise ReplayError(OFF.format(what="replay")) from None
    if args.stack:
        import boto3

        queues = aws_queues(kind.folder, stack=args.stack, region=args.region)
        cloudformation = boto3.client("cloudformation", region_name=args.region)

        def physical(logical_id: str) -> str:
            found = cloudformation.describe_stack_resource(StackName=args.stack, LogicalResourceId=logical_id)
            return str(found["StackResourceDetail"]["PhysicalResourceId"])

        return Target(kind, queues, archive, physical(IDEMPOTENCY_TABLE), physical(kind.function))
    from keap_relay_local.defaults import ROOT
    from keap_relay_local.runtime import local_function_name
    from keap_relay_local.template import read_stack

    queues = local_queues(kind.folder, args.endpoint_url, region=args.region, root=args.root)
    table = read_stack((args.root or ROOT) / "template.yaml", queues.sqs.meta.region_name).idempotency_table()
    if table is None:
        raise ReplayError(f"the template at {args.root or ROOT} has no idempotency table")
    return Target(kind, queues, archive, table.name, local_function_name(kind.folder))


# ---------------------------------------------------------------------------------------------------- the replay


def iso(moment: datetime | None) -> str:
    """A time as the replay prints and records it (ISO 8601 UTC, to the second); None is "now"."""
    return "now" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stamp(moment: datetime) -> str:
    # Readable in a name: to the minute, with seconds only when the window was given with them.
    return moment.strftime("%Y%m%dT%H%M%SZ" if moment.second or moment.microsecond else "%Y%m%dT%H%MZ")


@dataclass(frozen=True)
class Window:
    """What a replay takes from the archive, and what it re-applies."""

    kind: Kind
    since: datetime
    until: datetime | None  # None: up to the moment it runs
    source: str | None = None
    include: tuple[str, ...] = ()  # the parts beside the contact and its tags, in REPLAY_PARTS' order

    def default_name(self) -> str:
        """Derived from the kind, the window, the source and the parts: the same command is the same replay (so
        running it again applies nothing twice), and a name in a dead letter says what it was."""
        name = f"{self.kind.folder}-{_stamp(self.since)}-{_stamp(self.until) if self.until else 'open'}"
        return name + (f"-{self.source}" if self.source else "") + "".join(f"+{part}" for part in self.include)

    def describe(self) -> str:
        text = f"{self.kind.name} events received from {iso(self.since)} to {iso(self.until)}"
        return text + (f" from source {self.source}" if self.source else "")


@dataclass(frozen=True)
class Record:
    """A replay that ran, as recorded in the archive table (for the overlap warning and the name check)."""

    name: str
    since: datetime
    until: datetime | None
    source: str | None
    include: tuple[str, ...]
    ran: datetime
    events: int = 0

    @property
    def end(self) -> datetime:
        return self.until or self.ran

    def overlaps(self, other: Record) -> bool:
        same_source = self.source is None or other.source is None or self.source == other.source
        return same_source and self.since <= other.end and other.since <= self.end

    def item(self, kind: Kind) -> dict[str, Any]:
        values = {
            "since": iso(self.since),
            "until": iso(self.until) if self.until else "",
            "source": self.source or "",
            "include": ",".join(self.include),
            "ran": iso(self.ran),
        }
        item = {name: {"S": value} for name, value in values.items()}
        return {
            "pk": {"S": RECORD_PREFIX + kind.name},
            "sk": {"S": self.name},
            **item,
            "events": {"N": str(self.events)},
            "expires": {"N": str(int(time.time()) + RECORD_KEEP_SECONDS)},
        }

    @classmethod
    def of(cls, item: dict[str, Any]) -> Record:
        text = {name: str(value.get("S", "")) for name, value in item.items() if "S" in value}
        return cls(
            name=text["sk"],
            since=parse_stamp(text["since"]),
            until=parse_stamp(text["until"]) if text.get("until") else None,
            source=text.get("source") or None,
            include=tuple(part for part in text.get("include", "").split(",") if part),
            ran=parse_stamp(text["ran"]),
            events=int(item.get("events", {}).get("N", 0)),
        )


def earlier_replays(target: Target) -> list[Record]:
    """Every replay of the target's kind recorded in the archive table, oldest run first."""
    records: list[Record] = []
    paging: dict[str, Any] = {}
    while True:
        response = target.dynamodb.query(
            TableName=target.archive.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": RECORD_PREFIX + target.kind.name}},
            **paging,
        )
        records += [Record.of(item) for item in response.get("Items") or []]
        if not response.get("LastEvaluatedKey"):
            return sorted(records, key=lambda record: record.ran)
        paging = {"ExclusiveStartKey": response["LastEvaluatedKey"]}


def check_earlier(this: Record, earlier: list[Record]) -> list[str]:
    """Warnings about earlier replays whose windows overlap this one's; ReplayError when this name was used for
    other parts (its events would count as applied, and the added parts never run)."""
    same = next((record for record in earlier if record.name == this.name), None)
    if same is not None and same.include != this.include:
        parts = ", ".join(("contact", *REPLAY_DEFAULT, *same.include))
        raise ReplayError(f"replay {this.name!r} already ran re-applying {parts}; give this one another --name")
    return [
        f"warning: replay {record.name} (run {iso(record.ran)}, {iso(record.since)} to "
        f"{iso(record.until) if record.until else 'its run'}) overlaps this window: "
        "events in both are applied again by this replay"
        for record in earlier
        if record.name != this.name and record.overlaps(this)
    ]


@dataclass
class Selection:
    """The archived events a replay sends, and those it skips with why."""

    events: list[Any] = field(default_factory=list)  # ArchivedEvent
    skipped: list[tuple[Any, str]] = field(default_factory=list)


def select(archive: Any, window: Window, now: datetime) -> Selection:
    """The window's archived events, less those of contacts whose unsubscribe was received after the event."""
    found = list(archive.events(window.kind.name, window.since, window.until, window.source))
    chosen = Selection()
    unsubscribed: dict[str, datetime] = {}
    if window.kind.name != "unsubscribe" and found:
        for unsubscribe in archive.events("unsubscribe", found[0].received, now):
            if unsubscribe.email:
                latest = unsubscribed.get(unsubscribe.email, unsubscribe.received)
                unsubscribed[unsubscribe.email] = max(latest, unsubscribe.received)
    for archived in found:
        later = unsubscribed.get(archived.email or "")
        if later is not None and later > archived.received:
            chosen.skipped.append((archived, f"unsubscribed {iso(later)}"))
        else:
            chosen.events.append(archived)
    return chosen


def _entries(events: list[Any], replay: queue.Replay) -> Iterator[tuple[list[dict[str, Any]], list[Any]]]:
    for start in range(0, len(events), SQS_BATCH):
        chunk = events[start : start + SQS_BATCH]
        yield (
            [
                {
                    "Id": str(number),
                    "MessageBody": queue.message_body(archived.event),
                    "MessageAttributes": {**queue.event_attributes(archived.event), **replay.attributes()},
                }
                for number, archived in enumerate(chunk)
            ],
            chunk,
        )


def send(target: Target, events: list[Any], replay: queue.Replay, progress: Progress) -> int:
    """Send the events to the kind's work queue with the replay's marker, ten a call; how many went."""
    sent = 0
    for entries, chunk in _entries(events, replay):
        for attempt in range(3):  # SQS may refuse some entries of a batch for a moment; those are sent again
            time.sleep(0.2 * attempt)
            response = target.queues.sqs.send_message_batch(QueueUrl=target.queues.queue_url, Entries=entries)
            sent += len(response.get("Successful") or [])
            failed = {entry["Id"] for entry in response.get("Failed") or []}
            entries = [entry for entry in entries if entry["Id"] in failed]
            if not entries:
                break
        if entries:
            raise RuntimeError(f"SQS refused {len(entries)} message(s) of the replay; sent {sent}. Run it again.")
        progress.sent(sent, len(chunk))
    return sent


# ---------------------------------------------------------------------------------------------------- waiting


def _ident(source: Any, event_id: Any) -> tuple[str, str]:
    return str(source), str(event_id)


class Applied:
    """Reads whether the function applied an event under a replay's name: its Powertools idempotency record,
    found by the same key the function writes (identity + RECORD_FUNCTION_NAME), COMPLETED."""

    def __init__(self, target: Target, name: str) -> None:
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

        self.target, self.name = target, name
        self.store = DynamoDBPersistenceLayer(table_name=str(target.idempotency_table), boto3_client=target.dynamodb)
        prefix = f"{target.function_name}.{idempotency.RECORD_FUNCTION_NAME}"
        self.store.configure(IdempotencyConfig(event_key_jmespath=idempotency.IDENTITY_PATH), key_prefix=prefix)

    def record_id(self, event: dict[str, Any]) -> str:
        # Powertools' own key function: the record id is `<prefix>#<hash of the identity>`, as the function wrote it.
        return str(self.store._get_hashed_idempotency_key(idempotency.identity(event, self.name)))

    def completed(self, record_ids: Iterable[str]) -> set[str]:
        ids, done = list(record_ids), set()
        for start in range(0, len(ids), BATCH_GET):
            keys: list[dict[str, Any]] = [{"id": {"S": record_id}} for record_id in ids[start : start + BATCH_GET]]
            while keys:
                request = {"Keys": keys, "ProjectionExpression": "id, #s", "ExpressionAttributeNames": {"#s": "status"}}
                response = self.target.dynamodb.batch_get_item(RequestItems={self.store.table_name: request})
                for item in (response.get("Responses") or {}).get(self.store.table_name, []):
                    if item.get("status", {}).get("S") == "COMPLETED":
                        done.add(item["id"]["S"])
                keys = ((response.get("UnprocessedKeys") or {}).get(self.store.table_name) or {}).get("Keys") or []
                time.sleep(0.1 if keys else 0)  # throttled: DynamoDB hands back what it did not read
        return done


@dataclass
class Outcome:
    """What became of the events sent: applied, dead-lettered (with the reason), or still waiting."""

    applied: list[tuple[str, str]] = field(default_factory=list)
    dead_lettered: list[tuple[tuple[str, str], str]] = field(default_factory=list)
    waiting: list[tuple[str, str]] = field(default_factory=list)


def settle(target: Target, events: list[Any], name: str, sent_at: float, timeout: float, progress: Progress) -> Outcome:
    """Wait until every event sent is applied (its idempotency record COMPLETED) or dead-lettered (a letter in the
    kind's DLQ marked with this replay, sent since the replay began), at most `timeout` seconds."""
    check = Applied(target, name)
    pending = {_ident(a.source, a.event_id): check.record_id(a.event) for a in events}
    outcome = Outcome()
    deadline = time.monotonic() + timeout
    while pending:
        done = check.completed(pending.values())
        for ident, record_id in list(pending.items()):
            if record_id in done:
                outcome.applied.append(ident)
                del pending[ident]
        for letter in target.queues.letters():
            ident = _ident(letter.attributes.get("Source"), letter.event_id)
            ours = letter.attributes.get("ReplayName") == name and letter.sent_at >= sent_at - 1
            if ours and ident in pending:
                outcome.dead_lettered.append((ident, letter.reason(REASON_TEXT)))
                del pending[ident]
        progress.settled(len(outcome.applied), len(outcome.dead_lettered), len(pending))
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(POLL_SECONDS)
    outcome.waiting = sorted(pending)
    return outcome


# ---------------------------------------------------------------------------------------------------- progress


class Progress:
    """Progress on stderr: a rich bar on a terminal, else a line every PROGRESS_EVERY events (and on each change
    while waiting, at most every 10 s)."""

    def __init__(self, name: str, total: int) -> None:
        self.name, self.total = name, total
        self.bar: Any = None
        self._last_line = 0.0
        self._last_settled: tuple[int, int, int] | None = None
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import Progress as Bar

            self.bar = Bar(console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(f"replay {name}: sending", total=total)

    def sent(self, sent: int, batch: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=sent)
        elif self.total >= PROGRESS_EVERY and (
            sent // PROGRESS_EVERY != (sent - batch) // PROGRESS_EVERY or sent == self.total
        ):
            print(f"replay {self.name}: sent {sent} of {self.total}", file=sys.stderr, flush=True)

    def settled(self, applied: int, dead: int, waiting: int) -> None:
        state = (applied, dead, waiting)
        if self.bar is not None:
            description = f"replay {self.name}: applied {applied}, dead-lettered {dead}, waiting {waiting}"
            self.bar.update(self.task, completed=applied + dead, description=description)
        elif (
            self.total >= PROGRESS_EVERY
            and state != self._last_settled
            and (time.monotonic() - self._last_line > 10 or not waiting)
        ):
            self._last_line = time.monotonic()
            self._last_settled = state
            print(f"replay {self.name}: applied {applied}, dead-lettered {dead}, waiting {waiting}", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


# ---------------------------------------------------------------------------------------------------- the command


def _contact(archived: Any, show_pii: bool) -> str:
    email = archived.email or ""
    return email if show_pii else redact(email)


def _dry_run(args: argparse.Namespace, window: Window, chosen: Selection) -> dict[str, Any]:
    """Each event's account as `explain` gives it, for the plan as the replay would run it; nothing is sent."""
    from keap_relay.aws.config import Settings
    from keap_relay.routing.plan import for_replay, plan
    from keap_relay.routing.routes import load_routes

    from .explain import explain_event

    settings = Settings.from_env(window.kind.name)
    routes_file = args.routes or settings.routes_file
    routes = load_routes(routes_file, settings.keap_api)
    explained = [
        {
            "received": iso(archived.received),
            **explain_event(
                archived.event,
                routes,
                settings,
                show_pii=args.show_pii,
                planned=for_replay(plan(archived.event, routes), window.include),
            ),
        }
        for archived in chosen.events
    ]
    return {"routes": routes_file, "api": settings.keap_api, "events": explained}


def _summary(window: Window, name: str, chosen: Selection, show_pii: bool) -> dict[str, Any]:
    return {
        "name": name,
        "kind": window.kind.name,
        "since": iso(window.since),
        "until": iso(window.until) if window.until else None,
        "source": window.source,
        "re_applies": ["contact", "fields", *REPLAY_DEFAULT, *window.include],
        "archived": len(chosen.events) + len(chosen.skipped),
        "skipped": [
            {
                "source": archived.source,
                "event_id": archived.event_id,
                "contact": _contact(archived, show_pii),
                "reason": why,
            }
            for archived, why in chosen.skipped
        ],
    }


def _print(report: dict[str, Any]) -> None:
    from rich import box
    from rich.table import Table

    from .explain import _print_event

    parts: list[Any] = [
        f"replay {report['name']}: {report['archived']} archived {report['kind']} event(s) received from "
        f"{report['since']} to {report['until'] or 'now'}" + (f" from {report['source']}" if report["source"] else ""),
        "re-applies: " + ", ".join(report["re_applies"]),
    ]
    for number, explained in enumerate(report.get("events") or [], 1):
        parts += ["", f"{number}. received {explained['received']}", *_print_event(explained, False)]
    if report["dry_run"]:
        parts += ["", f"dry run: {len(report.get('events') or [])} event(s) would be sent; nothing was sent"]
    else:
        counts = [f"sent {report['sent']}"]
        if report.get("waited"):
            counts += [f"applied {report['applied']}", f"dead-lettered {len(report['dead_lettered'])}"]
            counts += [f"still waiting {len(report['waiting'])}"] if report["waiting"] else []
        counts.append(f"skipped {len(report['skipped'])}")
        parts += ["", ", ".join(counts)]
    if report["skipped"]:
        table = Table("event id", "source", "contact", "skipped because", box=box.SIMPLE)
        for skip in report["skipped"]:
            table.add_row(skip["event_id"], skip["source"], skip["contact"], skip["reason"])
        parts += ["skipped (the contact unsubscribed after the event):", table]
    if report.get("dead_lettered"):
        table = Table("event id", "source", "reason", box=box.SIMPLE)
        for letter in report["dead_lettered"]:
            table.add_row(letter["event_id"], letter["source"], letter["reason"])
        parts += ["dead-lettered (`keap-relay dlq list --kind " + report["folder"] + "`):", table]
    parts += [f"note: {note}" for note in report.get("notes") or []]
    show(*parts)


def run(args: argparse.Namespace) -> int:
    from botocore.exceptions import EndpointConnectionError

    try:
        return _replay(args)
    except ReplayError as exc:
        print(f"keap-relay replay: {exc}", file=sys.stderr)
        return 2
    except EndpointConnectionError as exc:
        hint = "" if args.stack else " Is the local stack running (`keap-relay run`)? For AWS give --stack NAME."
        raise ConnectionError(f"{exc}.{hint}") from exc


def _replay(args: argparse.Namespace) -> int:
    include = tuple(part for part, wanted in (("sequences", args.sequences), ("once-only", args.once_only)) if wanted)
    until = args.until
    if until is not None and until <= args.since:
        raise ReplayError(f"--until {iso(until)} is not after --since {iso(args.since)}")
    window = Window(kind_named(args.kind), args.since, until, args.source, include)
    name = args.name or window.default_name()
    target = find_target(args)
    now = datetime.now(UTC)
    chosen = select(target.archive, window, now)
    if not chosen.events and not chosen.skipped:
        raise ReplayError(f"nothing archived: no {window.describe()}")
    this = Record(name, window.since, window.until, window.source, include, now, len(chosen.events))
    for warning in check_earlier(this, earlier_replays(target)):
        print(f"keap-relay replay: {warning}", file=sys.stderr)
    report = {**_summary(window, name, chosen, args.show_pii), "folder": window.kind.folder, "dry_run": args.dry_run}
    if args.dry_run:
        report.update(_dry_run(args, window, chosen))
        _output(args, report)
        return 0
    # Recorded before sending: a replay cut short is still known to the next one's overlap check.
    target.dynamodb.put_item(TableName=target.archive.table, Item=this.item(window.kind))
    replay = queue.Replay(name, include)
    progress = Progress(name, len(chosen.events))
    started = time.time()
    try:
        report["sent"] = send(target, chosen.events, replay, progress)
        outcome = None
        if args.wait > 0 and chosen.events:
            outcome = settle(target, chosen.events, name, started, args.wait, progress)
    finally:
        progress.close()
    report.update(_outcome(args, window, name, outcome))
    _output(args, report)
    return 1 if report.get("dead_lettered") or report.get("waiting") else 0


def _outcome(args: argparse.Namespace, window: Window, name: str, outcome: Outcome | None) -> dict[str, Any]:
    rerun = "run the same command again to see (nothing applies twice)"
    if outcome is None:
        follow = f"not waited for; dead letters are marked ReplayName={name} in `keap-relay dlq list --kind "
        return {"waited": False, "notes": [f"{follow}{window.kind.folder}`; {rerun}"]}
    notes = []
    if outcome.waiting:
        notes.append(f"{len(outcome.waiting)} event(s) not applied within --wait {args.wait:g} s (retrying?); {rerun}")
    return {
        "waited": True,
        "applied": len(outcome.applied),
        "dead_lettered": [
            {"source": source, "event_id": event_id, "reason": reason}
            for (source, event_id), reason in outcome.dead_lettered
        ],
        "waiting": [{"source": source, "event_id": event_id} for source, event_id in outcome.waiting],
        "notes": notes,
    }


def _output(args: argparse.Namespace, report: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k != "folder"}, indent=2, ensure_ascii=False))
    else:
        _print(report)


# ---------------------------------------------------------------------------------------------------- argparse


def _time(text: str) -> datetime:
    """An absolute time only (not an age such as 7d): the same command must be the same window when run again."""
    try:
        parse_duration(text)
    except ValueError:
        return parse_time(text)
    raise argparse.ArgumentTypeError(f"not a time: {text!r} (give a date and time, e.g. 2026-12-01T00:00Z)")


def _name(text: str) -> str:
    if not NAME_PATTERN.match(text):
        raise argparse.ArgumentTypeError(f"not a replay name: {text!r} (letters, digits and . _ + = : -; at most 100)")
    return text


def _wait(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


DESCRIPTION = (
    "Re-apply a kind's archived events of a time window with the routes deployed now: each is sent to the kind's "
    "work queue marked with the replay's name, and applied once per name. By default a replay re-applies the "
    "contact, its fields and tags; sequences and once-only steps (action sets, goals) only when asked for. "
    "Contacts whose unsubscribe arrived after the event are skipped and listed."
)
EPILOG = (
    "Exit status: 0 every event sent was applied (or, with --wait 0, sent); 1 some were dead-lettered or not "
    "applied within --wait; 2 could not run (an unknown kind, a malformed time, the archive off, nothing archived "
    "in the window). Where: by default the local stack (`keap-relay run`); --stack NAME a deployed stack in AWS. "
    "See docs/operations.md (Replaying archived events)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`keap-relay replay`'s options (an entry of keap_relay_ops.cli.COMMANDS)."""
    parser.description, parser.epilog = DESCRIPTION, EPILOG
    kinds = "{" + ",".join(FOLDERS) + "}"
    parser.add_argument("--kind", required=True, type=_kind, metavar=kinds, help="the kind of event to replay")
    since = "replay events received from this time (ISO 8601, e.g. 2026-12-01T00:00Z; UTC unless an offset is given)"
    parser.add_argument("--since", required=True, type=_time, metavar="TIME", help=since)
    parser.add_argument("--until", type=_time, metavar="TIME", help="... up to this time (default: now)")
    parser.add_argument("--source", metavar="SOURCE", help="only events from this source (e.g. shopify)")
    parser.add_argument(
        "--dry-run", action="store_true", help="print what each event would do (as explain); send nothing"
    )
    parser.add_argument(
        "--include-sequences",
        dest="sequences",
        action="store_true",
        help="also start and stop sequences (restarts them)",
    )
    parser.add_argument(
        "--include-once-only",
        dest="once_only",
        action="store_true",
        help="also run action sets and achieve goals (runs their flows again)",
    )
    name = "the replay's name (default: from the kind, window, source and parts; the same name never applies twice)"
    parser.add_argument("--name", type=_name, metavar="NAME", help=name)
    wait = f"wait this long for the events to be applied or dead-lettered (default {DEFAULT_WAIT:g}s; 0: do not wait)"
    parser.add_argument("--wait", type=_wait, default=DEFAULT_WAIT, metavar="DURATION", help=wait)
    parser.add_argument(
        "--routes",
        metavar="FILE",
        help="with --dry-run: the routes file (default: ROUTES_FILE, else config/routes.yaml)",
    )
    parser.add_argument(
        "--show-pii", action="store_true", help="show email addresses (masked as in the logs by default)"
    )
    parser.add_argument(
        "--json", action="store_true", help="one JSON object: the replay, its events and what became of them"
    )
    add_where(
        parser,
        stack_help="a deployed keap-relay stack in AWS (its outputs and resources)",
        endpoint_help="a local AWS endpoint, e.g. a test stack's moto",
    )
    parser.set_defaults(handler=run)
