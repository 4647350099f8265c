"""`keap-relay archive list|forget`: the event archive of a stack, listed by kind, time and source, or one person
erased from it.

Works on the local stack's moto (default) and on a deployed stack in AWS (`--stack NAME`: its ArchiveTableName
output). The archive itself is keap_relay.aws.archive; docs/archive.md says what it holds and for how long.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich import box
from rich.table import Table

from keap_relay.aws.archive import Archive, stamp
from keap_relay.events.kinds import FOLDERS, kind_named

from .dlq import _confirm, _kind, parse_duration
from .output import show
from .where import add_where, stack_outputs

ARCHIVE_OUTPUT = "ArchiveTableName"  # the template's output naming the archive table
OFF = "the archive is off (ArchiveDays=0): nothing is archived, so there is nothing to {what}"


class ArchiveOff(LookupError):
    """The stack has no archive table (ArchiveDays=0, or deployed before the archive existed)."""


# ---------------------------------------------------------------------------------------------------- where


def local_archive(endpoint_url: str | None, region: str | None, root: Path | None) -> tuple[Archive, str]:
    """The local stack's archive: the running `keap-relay run` stack's (.local-stack/stack.json), else the
    template's table in moto on run's port (or at `endpoint_url`, e.g. a test stack's moto)."""
    from keap_relay_local.cli import DEFAULT_PORTS, LOCAL_REGION, read_state
    from keap_relay_local.defaults import ROOT
    from keap_relay_local.resources import client
    from keap_relay_local.template import read_stack

    root = root or ROOT
    state = read_state(root) if endpoint_url is None else {}
    endpoint = endpoint_url or state.get("moto") or f"http://127.0.0.1:{DEFAULT_PORTS['moto']}"
    region = region or state.get("region") or LOCAL_REGION
    if "tables" in state:
        name = next((n for logical_id, n in state["tables"].items() if "archive" in logical_id.lower()), None)
    else:
        table = read_stack(root / "template.yaml", region).archive_table()
        name = table.name if table is not None else None
    if name is None:
        raise ArchiveOff()
    # dummy credentials: this client can only ever reach moto
    return Archive(name, 0, client("dynamodb", endpoint, region)), f"local moto at {endpoint}"


def aws_archive(stack: str, region: str | None) -> tuple[Archive, str]:
    """A deployed stack's archive, from its ArchiveTableName output."""
    import boto3

    outputs = stack_outputs(boto3.client("cloudformation", region_name=region), stack)
    if ARCHIVE_OUTPUT not in outputs:
        if not any(key.endswith("QueueUrl") for key in outputs):
            raise LookupError(f"stack {stack} has no keap-relay outputs; is it a keap-relay stack?")
        raise ArchiveOff()
    return Archive(outputs[ARCHIVE_OUTPUT], 0, boto3.client("dynamodb", region_name=region)), f"stack {stack}"


def archive_for(args: argparse.Namespace) -> tuple[Archive, str]:
    """Where the command acts: a deployed stack with --stack, else the local stack."""
    if args.stack:
        return aws_archive(
            args.stack, args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        )
    return local_archive(args.endpoint_url, args.region, args.root)


# ---------------------------------------------------------------------------------------------------- commands


def _count(number: int) -> str:
    return f"{number} archived event" + ("" if number == 1 else "s")


def cmd_forget(args: argparse.Namespace) -> int:
    """Erase one person's archived events: 0 erased (or none held), 1 not confirmed, 2 could not run."""
    archive, where = archive_for(args)
    email = args.email.strip().lower()
    held = archive.held(email)
    if held and not args.yes and not _confirm(f"erase {_count(held)} of {email} from the archive ({where})? [y/N] "):
        print("nothing erased", file=sys.stderr)
        return 1
    erased = archive.forget(email) if held else 0
    if args.json:
        print(json.dumps({"email": email, "erased": erased, "where": where}))
    elif erased:
        print(f"erased {_count(erased)} of {email} ({where})")
    else:
        print(f"no archived events of {email} ({where}): nothing to erase")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    archive, where = archive_for(args)
    kind = kind_named(args.kind).name
    found = []
    for event in archive.events(kind, args.since, args.until, args.source):
        found.append(event)
        if args.limit and len(found) >= args.limit:
            break
    if args.json:
        rows = [
            {
                "kind": e.kind,
                "source": e.source,
                "event_id": e.event_id,
                "received": stamp(e.received),
                "email": e.email,
                "event": e.event,
            }
            for e in found
        ]
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    until = "now" if args.until is None else stamp(args.until)
    heading = f"{where}: {_count(len(found))} of kind {kind} received {stamp(args.since)} .. {until}"
    if args.source:
        heading += f" from {args.source}"
    if not found:
        show(heading)
        return 0
    table = Table("received", "source", "event id", "email", box=box.SIMPLE)
    for event in found:
        table.add_row(stamp(event.received), event.source, event.event_id, event.email or "-")
    show(heading, table)
    return 0


# ---------------------------------------------------------------------------------------------------- argparse


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """`2026-12-01T00:00Z`, `2026-12-01` (UTC unless an offset is given), or an age: `7d`, `12h` (ago)."""
    try:
        return (now or datetime.now(UTC)) - timedelta(seconds=parse_duration(text))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        example = "use e.g. 2026-12-01T00:00Z, 2026-12-01 or 7d"
        raise argparse.ArgumentTypeError(f"not a time: {text!r} ({example})") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _forget_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("email", metavar="EMAIL", help="the person's email (any case)")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--json", action="store_true", help="one JSON object: the email and how many were erased")


def _list_options(parser: argparse.ArgumentParser) -> None:
    kinds = "{" + ",".join(FOLDERS) + "}"
    parser.add_argument("--kind", required=True, type=_kind, metavar=kinds, help="which kind's events")
    when = "received at or after T: 2026-12-01T00:00Z, 2026-12-01 (UTC) or an age such as 7d, 12h"
    parser.add_argument("--since", required=True, type=parse_time, metavar="T", help=when)
    parser.add_argument("--until", type=parse_time, metavar="T", help="received at or before T (default: now)")
    parser.add_argument("--source", metavar="S", help="only events of this source (typeform, shopify, ...)")
    parser.add_argument("--limit", type=int, metavar="N", help="show at most N (the oldest)")
    parser.add_argument("--json", action="store_true", help="one JSON array of the events, canonical event included")


def _add_where(parser: argparse.ArgumentParser) -> None:
    add_where(
        parser,
        stack_help="a deployed keap-relay stack in AWS (its ArchiveTableName output)",
        endpoint_help="a local DynamoDB endpoint, e.g. a test stack's moto",
    )


# action → (help, its own options, run)
ACTIONS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "list": ("a kind's archived events in a time window, oldest first", _list_options, cmd_list),
    "forget": ("erase every archived event of one person (an erasure request)", _forget_options, cmd_forget),
}


def _run(args: argparse.Namespace) -> int:
    from botocore.exceptions import ClientError, EndpointConnectionError

    try:
        return int(args.archive_action(args))
    except ArchiveOff:
        raise LookupError(OFF.format(what="list" if args.action == "list" else "erase")) from None
    except EndpointConnectionError as exc:
        hint = "" if args.stack else " Is the local stack running (`keap-relay run`)? For AWS give --stack NAME."
        raise ConnectionError(f"{exc}.{hint}") from exc
    except ClientError as exc:  # e.g. the table is not there (a local stack not running), or access denied
        error = exc.response.get("Error", {})
        raise RuntimeError(f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")) from exc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`keap-relay archive`'s actions and their options (an entry of keap_relay_ops.cli.COMMANDS)."""
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, (help_text, add_options, run) in ACTIONS.items():
        sub = actions.add_parser(name, help=help_text, description=help_text)
        add_options(sub)
        _add_where(sub)
        sub.set_defaults(handler=_run, archive_action=run)
