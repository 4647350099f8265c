"""`keap-relay dlq list|show|redrive|purge`: a kind's dead letters, read with their reasons, redriven or purged.

Works on the local stack's moto (default) and on a deployed stack in AWS (`--stack NAME`, or queue URLs).
Redrive is SQS StartMessageMoveTask in both places (the local stack adds it to moto: moto_sqs_move.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich import box
from rich.json import JSON
from rich.padding import Padding
from rich.table import Column, Table
from rich.text import Text

from keap_relay.aws.queue import DEAD_LETTER_ATTRIBUTES
from keap_relay.events.kinds import FOLDERS, Kind, kind_named
from keap_relay.routing.runner import OUTCOME_UNKNOWN

from .output import show
from .where import add_where, stack_outputs

SUMMARY_MESSAGE = 120  # characters of ErrorMessage `list` shows; `show` prints all of it
PEEK_HOLD_SECONDS = 20  # how long a listed message stays hidden if we died before releasing it
SQS_BATCH = 10  # SQS's most messages per receive and entries per batch call
ACTIVE_TASK = ("RUNNING", "CANCELLING")
TASK_POLL_SECONDS = 0.5

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """`7d`, `12h`, `30m`, `45s`, `90` (seconds) → seconds."""
    match = _DURATION.match(text or "")
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 7d, 12h, 30m, 45s)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def human_age(seconds: float) -> str:
    """3s, 4m, 5h, 2d: the largest unit, rounded down."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _clip(text: str, limit: int | None) -> str:
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class DeadLetter:
    """One message of a DLQ: its body, the reason attributes and SQS's own attributes."""

    message_id: str
    body: str
    attributes: dict[str, Any]
    system_attributes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, message: dict[str, Any]) -> DeadLetter:
        return cls(
            message_id=message["MessageId"],
            body=message.get("Body", ""),
            attributes={
                name: value.get("StringValue", value.get("BinaryValue"))
                for name, value in (message.get("MessageAttributes") or {}).items()
            },
            system_attributes=dict(message.get("Attributes") or {}),
        )

    @property
    def event_id(self) -> str:
        """The EventId attribute, else the id of the event in the body (a canonical event or an EventBridge
        envelope's detail)."""
        known = self.attributes.get("EventId")
        if known and known not in ("(unknown)", "-"):
            return str(known)
        try:
            doc = json.loads(self.body)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and "detail-type" in doc:
            doc = doc.get("detail")
        return str((doc.get("id") if isinstance(doc, dict) else None) or known or "")

    @property
    def sent_at(self) -> float:
        """When the message entered the DLQ (SentTimestamp; for a message SQS moved there itself, when it was
        first sent to the work queue)."""
        raw = self.system_attributes.get("SentTimestamp")
        return int(raw) / 1000 if raw else time.time()

    @property
    def permanent(self) -> bool:
        return str(self.attributes.get("Transient", "")).lower() == "false"

    @property
    def outcome_unknown(self) -> bool:
        """A once-only step whose answer was lost: a person checks Keap before it is redriven or purged."""
        return self.attributes.get("ErrorClass") == OUTCOME_UNKNOWN

    @property
    def error_class(self) -> str:
        """The pipeline's ErrorClass, or EventBridge's ERROR_CODE, or why there is none."""
        attrs = self.attributes
        error = attrs.get("ErrorClass") or (f"EventBridge {attrs['ERROR_CODE']}" if attrs.get("ERROR_CODE") else None)
        return str(error or "(no reason attached: SQS moved it here after maxReceiveCount receives)")

    def reason(self, limit: int | None = None) -> str:
        """ErrorClass at FailedStep: ErrorMessage (the pipeline's), or EventBridge's ERROR_CODE/ERROR_MESSAGE."""
        attrs = self.attributes
        message = _clip(str(attrs.get("ErrorMessage") or attrs.get("ERROR_MESSAGE") or ""), limit)
        step = attrs.get("FailedStep")
        return self.error_class + (f" at {step}" if step else "") + (f": {message}" if message else "")

    def summary(self, now: float) -> dict[str, Any]:
        """One dead letter as `list --json` prints it."""
        shown = {name: self.attributes.get(name) for name in DEAD_LETTER_ATTRIBUTES}
        if isinstance(shown["ErrorMessage"], str):
            shown["ErrorMessage"] = _clip(shown["ErrorMessage"], SUMMARY_MESSAGE)
        shown["EventId"] = self.event_id
        age = now - self.sent_at
        return {
            "MessageId": self.message_id,
            **shown,
            "SentAt": _iso(self.sent_at),
            "AgeSeconds": round(age, 1),
            "Age": human_age(age),
        }

    def matches(self, ident: str) -> bool:
        return ident in (self.message_id, self.event_id)


@dataclass(frozen=True)
class DeadLetterQueue:
    """The DLQ of one kind (and its work queue, where a redrive sends the letters): read without consuming,
    redrive with StartMessageMoveTask, purge."""

    kind: Kind
    queue_url: str
    dlq_url: str
    sqs: Any
    where: str  # for messages: "local moto at ...", "stack keap-relay" ...

    @property
    def label(self) -> str:
        return f"{self.kind.folder} DLQ {self.dlq_url} ({self.where})"

    def arn(self, url: str) -> str:
        return str(self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])

    def count(self) -> int:
        """Messages in the DLQ, visible or not (SQS's approximate counts)."""
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=self.dlq_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(v) for v in attrs.values())

    def _receive_all(self, limit: int | None = None) -> tuple[list[DeadLetter], dict[str, str]]:
        """The dead letters (oldest first) and, by message id, the newest receipt handle now holding each hidden."""
        # VisibilityTimeout 0 would hand the same first ten back on every call, so the messages are held
        # while we page through them and released right after. Each receive counts as one on the message;
        # that matters only to a redrive policy on the DLQ itself (the template has none), and a redriven
        # message starts from zero, since SQS sends it as a new message.
        letters: dict[str, DeadLetter] = {}
        receipts: dict[str, str] = {}  # SQS deletes and releases by the newest handle
        while limit is None or len(letters) < limit:
            response = self.sqs.receive_message(
                QueueUrl=self.dlq_url,
                MaxNumberOfMessages=SQS_BATCH,
                WaitTimeSeconds=0,
                VisibilityTimeout=PEEK_HOLD_SECONDS,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["All"],
            )
            messages = response.get("Messages") or []
            if not messages:
                break
            for message in messages:
                receipts[message["MessageId"]] = message["ReceiptHandle"]
                letters.setdefault(message["MessageId"], DeadLetter.of(message))
        return sorted(letters.values(), key=lambda letter: letter.sent_at), receipts

    def _batches(self, receipts: list[str], **entry: Any) -> Iterator[list[dict[str, Any]]]:
        for start in range(0, len(receipts), SQS_BATCH):
            chunk = receipts[start : start + SQS_BATCH]
            yield [{"Id": str(i), "ReceiptHandle": r, **entry} for i, r in enumerate(chunk)]

    def _release(self, receipts: list[str]) -> None:
        from botocore.exceptions import ClientError

        for entries in self._batches(receipts, VisibilityTimeout=0):
            try:
                self.sqs.change_message_visibility_batch(QueueUrl=self.dlq_url, Entries=entries)
            except ClientError as exc:
                # Not fatal: the letters come back by themselves when the hold ends. (moto refuses this for a
                # message sent more than 12 h ago, measuring SQS's 12 h visibility limit from the send.)
                print(f"note: {len(entries)} letter(s) stay hidden for {PEEK_HOLD_SECONDS} s: {exc}", file=sys.stderr)

    def letters(self, limit: int | None = None) -> list[DeadLetter]:
        """Every dead letter (oldest first, at most `limit`), left in the queue."""
        letters, receipts = self._receive_all(limit)
        self._release(list(receipts.values()))
        return letters

    def purge(self, message_ids: Collection[str]) -> int:
        """Delete these dead letters; how many went.

        Deletes by receipt handle rather than calling PurgeQueue: exactly the messages that were counted (and
        shown in the question) are removed, and a letter arriving meanwhile stays.
        """
        _, receipts = self._receive_all()
        doomed = [message_id for message_id in receipts if message_id in message_ids]
        self._release([receipt for message_id, receipt in receipts.items() if message_id not in message_ids])
        deleted = 0
        for entries in self._batches([receipts[message_id] for message_id in doomed]):
            response = self.sqs.delete_message_batch(QueueUrl=self.dlq_url, Entries=entries)
            deleted += len(response.get("Successful") or [])
        return deleted

    def redrive(self, max_per_second: int | None = None) -> str:
        """StartMessageMoveTask from this DLQ to the kind's work queue; the task handle."""
        pace = {} if max_per_second is None else {"MaxNumberOfMessagesPerSecond": int(max_per_second)}
        source, destination = self.arn(self.dlq_url), self.arn(self.queue_url)
        return str(self.sqs.start_message_move_task(SourceArn=source, DestinationArn=destination, **pace)["TaskHandle"])

    def tasks(self, max_results: int = 1) -> list[dict[str, Any]]:
        """ListMessageMoveTasks for this DLQ: the most recent first."""
        response = self.sqs.list_message_move_tasks(SourceArn=self.arn(self.dlq_url), MaxResults=max_results)
        return list(response.get("Results") or [])

    def cancel(self) -> dict[str, Any] | None:
        """Cancel the DLQ's running move task, if there is one; the task as it was."""
        running = next((t for t in self.tasks(10) if t.get("Status") == "RUNNING" and t.get("TaskHandle")), None)
        if running is not None:
            self.sqs.cancel_message_move_task(TaskHandle=running["TaskHandle"])
        return running

    def watch(self, started_ms: int, timeout: float) -> Iterator[dict[str, Any]]:
        """The move task started at `started_ms`, polled until it is no longer RUNNING/CANCELLING;
        TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            task = next(iter(self.tasks(1)), {})
            if int(task.get("StartedTimestamp") or 0) >= started_ms - 1000:  # else ours is not listed yet
                yield task
                if task.get("Status") not in ACTIVE_TASK:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the move task is still {task.get('Status', 'not listed')} after {timeout:g} s")
            time.sleep(TASK_POLL_SECONDS)


# ---------------------------------------------------------------------------------------------------- where


def local_queues(
    kind: str,
    endpoint_url: str | None = None,
    *,
    region: str | None = None,
    root: Path | None = None,
    queue_url: str | None = None,
    dlq_url: str | None = None,
) -> DeadLetterQueue:
    """The kind's queues in a local moto: the running `keap-relay run` stack by default (its
    .local-stack/stack.json, else moto on run's port), found by the template's queue names."""
    # The local stack's modules only here: the AWS path needs neither moto nor the template reader.
    from keap_relay_local.cli import DEFAULT_PORTS, LOCAL_REGION, read_state
    from keap_relay_local.defaults import ROOT
    from keap_relay_local.resources import client
    from keap_relay_local.template import read_stack

    named, root = kind_named(kind), root or ROOT
    state = read_state(root) if endpoint_url is None else {}
    endpoint = endpoint_url or state.get("moto") or f"http://127.0.0.1:{DEFAULT_PORTS['moto']}"
    region = region or state.get("region") or LOCAL_REGION
    sqs = client("sqs", endpoint, region)  # dummy credentials: this client can only ever reach moto
    known = (state.get("queues") or {}).get(named.folder) or {}
    queue_url, dlq_url = queue_url or known.get("queue"), dlq_url or known.get("dlq")
    if not (queue_url and dlq_url):
        spec = read_stack(root / "template.yaml", region)
        dlq = spec.dead_letter_queue(named.folder)
        if dlq is None:
            raise LookupError(f"{named.folder}: the template gives its work queue no dead-letter queue")
        queue_url = queue_url or sqs.get_queue_url(QueueName=spec.work_queue(named.folder).name)["QueueUrl"]
        dlq_url = dlq_url or sqs.get_queue_url(QueueName=dlq.name)["QueueUrl"]
    return DeadLetterQueue(named, str(queue_url), str(dlq_url), sqs, f"local moto at {endpoint}")


def aws_queues(
    kind: str,
    *,
    stack: str | None = None,
    region: str | None = None,
    queue_url: str | None = None,
    dlq_url: str | None = None,
    sqs: Any = None,
    cloudformation: Any = None,
) -> DeadLetterQueue:
    """The kind's queues in AWS: from the stack's `<Kind>QueueUrl` / `<Kind>DLQUrl` outputs, or as given."""
    import boto3

    named = kind_named(kind)
    if stack:
        cloudformation = cloudformation or boto3.client("cloudformation", region_name=region)
        outputs = stack_outputs(cloudformation, stack)
        keys = (f"{named.queue}Url", f"{named.dlq}Url")  # FormsQueueUrl, FormsDLQUrl
        missing = [key for key in keys if key not in outputs]
        if missing and not (queue_url and dlq_url):
            raise LookupError(f"stack {stack} has no output {' / '.join(missing)}; is it a keap-relay stack?")
        queue_url, dlq_url = queue_url or outputs[keys[0]], dlq_url or outputs[keys[1]]
    if not (queue_url and dlq_url):
        raise LookupError("give --stack NAME, or both --queue-url and --dlq-url")
    where = f"stack {stack}" if stack else "AWS"
    return DeadLetterQueue(named, queue_url, dlq_url, sqs or boto3.client("sqs", region_name=region), where)


def queues_for(args: argparse.Namespace) -> DeadLetterQueue:
    """Where the command acts, from its options: local unless --stack or AWS queue URLs are given."""
    if args.stack or (bool(args.queue_url or args.dlq_url) and not (args.local or args.endpoint_url)):
        region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        return aws_queues(args.kind, stack=args.stack, region=region, queue_url=args.queue_url, dlq_url=args.dlq_url)
    return local_queues(
        args.kind, args.endpoint_url, region=args.region, root=args.root, queue_url=args.queue_url, dlq_url=args.dlq_url
    )


# ---------------------------------------------------------------------------------------------------- commands


def _count(number: int, what: str = "dead letter") -> str:
    return f"{number} {what}" + ("" if number == 1 else "s")


def cmd_list(args: argparse.Namespace) -> int:
    dlq = queues_for(args)
    letters = dlq.letters(args.limit)
    now = time.time()
    if args.json:
        print(json.dumps([letter.summary(now) for letter in letters], indent=2))
        return 0
    heading = f"{dlq.label}: {_count(len(letters))}"
    if not letters:
        show(heading)
        return 0
    # One row a letter: its id (what `show` takes; never cut), and under it the reason, wrapped to the terminal.
    widest_id = max(len(letter.event_id or letter.message_id) for letter in letters)
    about_column = Column("event (or message) id, reason", min_width=widest_id, overflow="fold")
    table = Table("#", "source", "age", "tries", about_column, box=box.SIMPLE)
    for number, letter in enumerate(letters, 1):
        source, attempts = letter.attributes.get("Source") or "?", letter.attributes.get("AttemptCount") or "?"
        about = Text(letter.event_id or letter.message_id, style="bold").append("\n" + letter.reason(SUMMARY_MESSAGE))
        table.add_row(str(number), source, human_age(now - letter.sent_at) + " ago", str(attempts), about)
    unknown = sum(letter.outcome_unknown for letter in letters)
    note = (
        f"{_count(unknown)} {'is' if unknown == 1 else 'are'} {OUTCOME_UNKNOWN}: Keap may have run the step. "
        "Look for its effects in Keap, then purge (they are there) or redrive (they are not); see docs/operations.md."
    )
    show(heading, table, *([note] if unknown else []))
    return 0


def _grid(rows: list[tuple[str, Any]], indent: int = 0) -> Padding:
    grid = Table.grid(padding=(0, 2))
    for name, value in rows:
        grid.add_row(name, str(value))
    return Padding(grid, (0, 0, 0, indent), expand=False)


def cmd_show(args: argparse.Namespace) -> int:
    dlq = queues_for(args)
    found = [letter for letter in dlq.letters() if letter.matches(args.id)]  # maybe several
    if not found:
        print(f"no dead letter with message id or event id {args.id!r} in the {dlq.kind.folder} DLQ", file=sys.stderr)
        return 1
    now = time.time()
    for index, letter in enumerate(found):
        since = f"since {_iso(letter.sent_at)} ({human_age(now - letter.sent_at)})"
        summary = [("message id", letter.message_id), ("event id", letter.event_id), ("in the DLQ", since)]
        ordered = [n for n in DEAD_LETTER_ATTRIBUTES if n in letter.attributes]
        ordered += sorted(n for n in letter.attributes if n not in DEAD_LETTER_ATTRIBUTES)
        try:
            body: Any = JSON(letter.body)  # indented, and never wrapped, so that it can be copied whole
        except ValueError:
            body = Text(letter.body)
        show(
            *([""] if index else []),
            _grid([*summary, ("reason", letter.reason())]),
            "attributes:",
            _grid([(name, letter.attributes[name]) for name in ordered], indent=2),
            "sqs attributes:",
            _grid(sorted(letter.system_attributes.items()), indent=2),
            "body:",
            body,
        )
    return 0


def _task_line(task: dict[str, Any]) -> str:
    started = int(task.get("StartedTimestamp") or 0) / 1000
    line = (
        f"{task.get('Status')}: moved {task.get('ApproximateNumberOfMessagesMoved', 0)}"
        f" of {task.get('ApproximateNumberOfMessagesToMove', '?')}, started {_iso(started) if started else '?'}"
    )
    if task.get("MaxNumberOfMessagesPerSecond"):
        line += f", at most {task['MaxNumberOfMessagesPerSecond']}/s"
    if task.get("FailureReason"):
        line += f" — {task['FailureReason']}"
    return line


def cmd_redrive(args: argparse.Namespace) -> int:
    dlq = queues_for(args)
    if args.status:
        tasks = dlq.tasks(10)
        print("\n".join(_task_line(task) for task in tasks) or f"no move tasks for the {dlq.kind.folder} DLQ")
        return 0
    if args.cancel:
        print("cancelled the running move task" if dlq.cancel() else "no move task is running")
        return 0
    waiting = dlq.count()
    if waiting == 0:
        print(f"the {dlq.kind.folder} DLQ is empty: nothing to redrive")
        return 0
    started_ms = int(time.time() * 1000)
    handle = dlq.redrive(args.max_per_second)
    print(f"redriving {_count(waiting)} from {dlq.dlq_url} to {dlq.queue_url} ({dlq.where})")
    print(f"task {handle}", flush=True)
    if args.no_wait:
        print(f"not waiting; `keap-relay dlq redrive --status --kind {dlq.kind.folder}` shows how it goes")
        return 0
    task: dict[str, Any] = {}
    shown = ""
    try:
        for task in dlq.watch(started_ms, args.timeout):
            if _task_line(task) != shown:
                shown = _task_line(task)
                print(shown, flush=True)
    except TimeoutError as exc:
        print(f"keap-relay dlq redrive: {exc}; it goes on in SQS (see --status, or --cancel)", file=sys.stderr)
        return 1
    return 0 if task.get("Status") == "COMPLETED" else 1


def _confirm(prompt: str) -> bool:
    try:
        return input(prompt).strip().lower() in ("y", "yes")
    except (EOFError, OSError):  # no terminal to answer: the answer is no
        return False


def cmd_purge(args: argparse.Namespace) -> int:
    dlq = queues_for(args)
    letters = dlq.letters()
    cutoff = None if args.older_than is None else time.time() - args.older_than
    chosen = [letter for letter in letters if cutoff is None or letter.sent_at <= cutoff]
    scope = "" if args.older_than is None else f" in it for more than {human_age(args.older_than)}"
    if not chosen:
        print(f"no dead letters{scope} in the {dlq.kind.folder} DLQ: nothing to purge")
        return 0
    question = f"delete {len(chosen)} of {_count(len(letters))}{scope} from {dlq.label}? [y/N] "
    if not args.yes and not _confirm(question):
        print("nothing deleted")
        return 1
    deleted = dlq.purge({letter.message_id for letter in chosen})
    print(f"deleted {_count(deleted)} from the {dlq.kind.folder} DLQ")
    return 0


# ---------------------------------------------------------------------------------------------------- argparse

WHERE_HELP = (
    "Where: by default the local stack's moto (`keap-relay run`; its URLs are read from .local-stack/stack.json, "
    "else moto on run's port and the template's queue names). --stack NAME uses a deployed stack in AWS (its "
    "<Kind>QueueUrl/<Kind>DLQUrl outputs, your AWS credentials and region); --queue-url/--dlq-url name the "
    "queues directly (in AWS, unless --local or --endpoint-url is given)."
)


def _kind(word: str) -> str:
    try:
        return kind_named(word).folder
    except KeyError as exc:
        raise argparse.ArgumentTypeError(exc.args[0]) from None


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_where(parser: argparse.ArgumentParser) -> None:
    kinds = "{" + ",".join(FOLDERS) + "}"
    which = "which function's DLQ (form_submission, purchase and unsubscribe work too)"
    parser.add_argument("--kind", required=True, type=_kind, metavar=kinds, help=which)
    where = add_where(
        parser,
        stack_help="a deployed keap-relay stack in AWS (CloudFormation outputs)",
        endpoint_help="a local SQS endpoint, e.g. a test stack's moto",
    )
    where.add_argument("--queue-url", metavar="URL", help="the kind's work queue URL (the redrive destination)")
    where.add_argument("--dlq-url", metavar="URL", help="the kind's dead-letter queue URL")
    where.add_argument("--local", action="store_true", help="the local stack's moto (the default)")


def _list_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON array of the dead letters and their reasons")
    parser.add_argument("--limit", type=int, metavar="N", help="show at most N (the oldest)")


def _show_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="the SQS message id or the event id of the dead letter")


def _redrive_options(parser: argparse.ArgumentParser) -> None:
    rate = "move at most N messages a second (1-500; default: SQS chooses). Keep it near Keap's budget."
    parser.add_argument("--max-per-second", type=int, metavar="N", help=rate)
    parser.add_argument("--no-wait", action="store_true", help="start the move task and return")
    wait = "how long to wait for it (default %(default)s)"
    parser.add_argument("--timeout", type=float, default=300, metavar="SECONDS", help=wait)
    parser.add_argument("--status", action="store_true", help="show the DLQ's recent move tasks; start none")
    parser.add_argument("--cancel", action="store_true", help="cancel the DLQ's running move task")


def _purge_options(parser: argparse.ArgumentParser) -> None:
    age = "only dead letters in the DLQ longer than AGE (7d, 12h, 30m, 45s)"
    parser.add_argument("--older-than", type=_duration, metavar="AGE", help=age)
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")


# action → (help, its own options, run)
ACTIONS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "list": ("each dead letter with its reason, left in the queue", _list_options, cmd_list),
    "show": ("one dead letter in full: body and every attribute", _show_options, cmd_show),
    "redrive": ("send the dead letters back to the work queue (SQS move task)", _redrive_options, cmd_redrive),
    "purge": ("delete the dead letters (asks first), or only the old ones", _purge_options, cmd_purge),
}


def _run(args: argparse.Namespace) -> int:
    from botocore.exceptions import EndpointConnectionError

    try:
        return args.dlq_action(args)
    except EndpointConnectionError as exc:
        hint = "" if args.stack else " Is the local stack running (`keap-relay run`)? For AWS give --stack NAME."
        raise ConnectionError(f"{exc}.{hint}") from exc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`keap-relay dlq`'s actions and their options (an entry of keap_relay_ops.cli.COMMANDS)."""
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, (help_text, add_options, run) in ACTIONS.items():
        sub = actions.add_parser(name, help=help_text, description=help_text, epilog=WHERE_HELP)
        add_options(sub)
        _add_where(sub)
        sub.set_defaults(handler=_run, dlq_action=run)
