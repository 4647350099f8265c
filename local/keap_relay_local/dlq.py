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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .stack import ROOT, resolve_kind

# Kind (the function folder) → the prefix of its stack outputs and template resources (FormsQueueUrl ...).
KINDS: dict[str, str] = {"forms": "Forms", "purchases": "Purchases", "unsubscribes": "Unsubscribes"}
LOCAL_ENDPOINT = "http://127.0.0.1:5005"  # `keap-relay run`'s moto port (cli.DEFAULT_PORTS)
STATE_FILE = Path(".local-stack") / "stack.json"  # written by `keap-relay run`
DEFAULT_REGION = "us-east-1"

# The reason the pipeline attaches to a dead letter (keap_relay.aws.queue.Failure), in display order.
REASON_ATTRIBUTES = (
    "ErrorClass",
    "FailedStep",
    "ErrorMessage",
    "AttemptCount",
    "Transient",
    "Kind",
    "Source",
    "EventId",
    "FailedAt",
)
SUMMARY_MESSAGE = 120  # characters of ErrorMessage `list` shows; `show` prints all of it
PEEK_HOLD_SECONDS = 20  # how long a listed message stays hidden if we died before releasing it
RECEIVE_MAX = 10
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


def _duration_arg(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def human_age(seconds: float) -> str:
    """3s, 4m, 5h, 2d: the largest unit, rounded down."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _attribute_value(value: dict[str, Any]) -> Any:
    for key in ("StringValue", "BinaryValue", "StringListValues", "BinaryListValues"):
        if key in value:
            return value[key]
    return None


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
            attributes={k: _attribute_value(v) for k, v in (message.get("MessageAttributes") or {}).items()},
            system_attributes=dict(message.get("Attributes") or {}),
        )

    @property
    def event(self) -> dict[str, Any] | None:
        """The body as a canonical event (or EventBridge envelope's detail), when it is one."""
        try:
            doc = json.loads(self.body)
        except ValueError:
            return None
        if isinstance(doc, dict) and "detail" in doc and "detail-type" in doc:
            doc = doc["detail"]
        return doc if isinstance(doc, dict) else None

    @property
    def event_id(self) -> str:
        known = self.attributes.get("EventId")
        if known and known not in ("(unknown)", "-"):
            return str(known)
        event = self.event or {}
        return str(event.get("id") or known or "")

    @property
    def sent_at(self) -> float:
        """When the message entered the DLQ (SentTimestamp; for a message SQS moved there itself, when it was
        first sent to the work queue)."""
        raw = self.system_attributes.get("SentTimestamp")
        return int(raw) / 1000 if raw else time.time()

    @property
    def permanent(self) -> bool:
        return str(self.attributes.get("Transient", "")).lower() == "false"

    def reason(self, limit: int | None = None) -> str:
        """ErrorClass at FailedStep: ErrorMessage (the pipeline's), or EventBridge's ERROR_CODE/ERROR_MESSAGE."""
        attrs = self.attributes
        message = str(attrs.get("ErrorMessage") or attrs.get("ERROR_MESSAGE") or "")
        if limit is not None and len(message) > limit:
            message = message[: limit - 1] + "…"
        error = attrs.get("ErrorClass") or (f"EventBridge {attrs['ERROR_CODE']}" if attrs.get("ERROR_CODE") else None)
        error = error or "(no reason attached: SQS moved it here after maxReceiveCount receives)"
        step = attrs.get("FailedStep")
        return f"{error}" + (f" at {step}" if step else "") + (f": {message}" if message else "")

    def summary(self, now: float | None = None) -> dict[str, Any]:
        """What `list` shows of one dead letter (also its --json form)."""
        now = time.time() if now is None else now
        shown = {name: self.attributes.get(name) for name in REASON_ATTRIBUTES}
        message = str(shown.get("ErrorMessage") or "")
        if len(message) > SUMMARY_MESSAGE:
            shown["ErrorMessage"] = message[: SUMMARY_MESSAGE - 1] + "…"
        shown["EventId"] = self.event_id
        return {
            "MessageId": self.message_id,
            **shown,
            "SentAt": _iso(self.sent_at),
            "AgeSeconds": round(now - self.sent_at, 1),
            "Age": human_age(now - self.sent_at),
        }

    def matches(self, ident: str) -> bool:
        return ident in (self.message_id, self.event_id)


@dataclass
class QueuePair:
    """Where one kind's work queue and DLQ live, and the SQS client that reaches them."""

    kind: str
    queue_url: str
    dlq_url: str
    sqs: Any
    where: str  # for messages: "local moto at ...", "stack keap-relay (us-east-1)" ...

    def arn(self, url: str) -> str:
        return str(self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


class DeadLetterQueue:
    """The DLQ of one kind: read without consuming, redrive with StartMessageMoveTask, purge."""

    def __init__(self, queues: QueuePair, clock: Callable[[], float] = time.time) -> None:
        self.queues = queues
        self.sqs = queues.sqs
        self.url = queues.dlq_url
        self._clock = clock

    def count(self) -> int:
        """Messages in the DLQ, visible or not (SQS's approximate counts)."""
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(v) for v in attrs.values())

    def _receive_all(self, limit: int | None) -> tuple[list[DeadLetter], list[tuple[str, str]]]:
        """The dead letters (oldest first) and every (receipt handle, message id) now holding one hidden."""
        # VisibilityTimeout 0 would hand the same first ten back on every call, so the messages are held
        # while we page through them and released right after. Each receive counts as one on the message;
        # that matters only to a redrive policy on the DLQ itself (the template has none), and a redriven
        # message starts from zero, since SQS sends it as a new message.
        letters: dict[str, DeadLetter] = {}
        held: list[tuple[str, str]] = []
        while limit is None or len(letters) < limit:
            messages = (
                self.sqs.receive_message(
                    QueueUrl=self.url,
                    MaxNumberOfMessages=RECEIVE_MAX,
                    WaitTimeSeconds=0,
                    VisibilityTimeout=PEEK_HOLD_SECONDS,
                    MessageAttributeNames=["All"],
                    MessageSystemAttributeNames=["All"],
                ).get("Messages")
                or []
            )
            if not messages:
                break
            for message in messages:
                held.append((message["ReceiptHandle"], message["MessageId"]))
                letters.setdefault(message["MessageId"], DeadLetter.of(message))
        return sorted(letters.values(), key=lambda letter: letter.sent_at), held

    def _release(self, receipts: list[str]) -> None:
        from botocore.exceptions import ClientError

        for start in range(0, len(receipts), RECEIVE_MAX):
            chunk = receipts[start : start + RECEIVE_MAX]
            try:
                self.sqs.change_message_visibility_batch(
                    QueueUrl=self.url,
                    Entries=[{"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": 0} for i, r in enumerate(chunk)],
                )
            except ClientError as exc:
                # Not fatal: the letters come back by themselves when the hold ends. (moto refuses this for a
                # message sent more than 12 h ago, measuring SQS's 12 h visibility limit from the send.)
                print(f"note: {len(chunk)} letter(s) stay hidden for {PEEK_HOLD_SECONDS} s: {exc}", file=sys.stderr)

    def _delete(self, receipts: list[str]) -> int:
        deleted = 0
        for start in range(0, len(receipts), RECEIVE_MAX):
            chunk = receipts[start : start + RECEIVE_MAX]
            response = self.sqs.delete_message_batch(
                QueueUrl=self.url, Entries=[{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(chunk)]
            )
            deleted += len(response.get("Successful") or [])
        return deleted

    def letters(self, limit: int | None = None) -> list[DeadLetter]:
        """Every dead letter (oldest first, at most `limit`), left in the queue."""
        letters, held = self._receive_all(limit)
        self._release([receipt for receipt, _ in held])
        return letters

    def find(self, ident: str) -> list[DeadLetter]:
        """The dead letters whose message id or event id is `ident` (an event may be there more than once)."""
        return [letter for letter in self.letters() if letter.matches(ident)]

    def purge(self, older_than: float | None = None) -> int:
        """Delete the dead letters (only those in the DLQ longer than `older_than` seconds); how many went.

        Deletes what it received rather than calling PurgeQueue: exactly the messages that were counted are
        removed, and a letter arriving meanwhile stays.
        """
        letters, held = self._receive_all(None)
        cutoff = None if older_than is None else self._clock() - older_than
        doomed = {letter.message_id for letter in letters if cutoff is None or letter.sent_at <= cutoff}
        latest = dict((message_id, receipt) for receipt, message_id in held)  # SQS deletes by the newest handle
        self._release([receipt for receipt, message_id in held if message_id not in doomed])
        return self._delete([latest[message_id] for message_id in doomed])

    # ------------------------------------------------------------------------------------------- redrive

    def redrive(self, max_per_second: int | None = None) -> str:
        """StartMessageMoveTask from this DLQ to the kind's work queue; the task handle."""
        args: dict[str, Any] = {
            "SourceArn": self.queues.arn(self.url),
            "DestinationArn": self.queues.arn(self.queues.queue_url),
        }
        if max_per_second is not None:
            args["MaxNumberOfMessagesPerSecond"] = int(max_per_second)
        return str(self.sqs.start_message_move_task(**args)["TaskHandle"])

    def tasks(self, max_results: int = 1) -> list[dict[str, Any]]:
        """ListMessageMoveTasks for this DLQ: the most recent first."""
        response = self.sqs.list_message_move_tasks(SourceArn=self.queues.arn(self.url), MaxResults=max_results)
        return list(response.get("Results") or [])

    def cancel(self) -> dict[str, Any] | None:
        """Cancel the DLQ's running move task, if there is one; the task as it was."""
        running = next((t for t in self.tasks(10) if t.get("Status") == "RUNNING" and t.get("TaskHandle")), None)
        if running is not None:
            self.sqs.cancel_message_move_task(TaskHandle=running["TaskHandle"])
        return running

    def wait(
        self,
        timeout: float,
        started_ms: int | None = None,
        progress: Callable[[dict[str, Any]], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> dict[str, Any]:
        """Poll the most recent move task until it is no longer RUNNING/CANCELLING; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            tasks = self.tasks(1)
            task = tasks[0] if tasks else {}
            if started_ms is not None and int(task.get("StartedTimestamp") or 0) < started_ms - 1000:
                task = {}  # an older task: ours is not listed yet
            if task and progress is not None:
                progress(task)
            if task and task.get("Status") not in ACTIVE_TASK:
                return task
            if time.monotonic() > deadline:
                raise TimeoutError(f"the move task is still {task.get('Status', 'not listed')} after {timeout:g} s")
            sleep(TASK_POLL_SECONDS)


# ---------------------------------------------------------------------------------------------------- where


def _local_state(root: Path) -> dict[str, Any]:
    path = root / STATE_FILE
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def _template_queue_names(root: Path, kind: str, region: str) -> tuple[str, str]:
    from .template import read_stack

    spec = read_stack(root / "template.yaml", region)
    dlq = spec.dead_letter_queue(kind)
    if dlq is None:
        raise LookupError(f"{kind}: the template gives its work queue no dead-letter queue")
    return spec.work_queue(kind).name, dlq.name


def local_queues(
    kind: str,
    endpoint_url: str | None = None,
    *,
    region: str | None = None,
    root: Path = ROOT,
    queue_url: str | None = None,
    dlq_url: str | None = None,
) -> QueuePair:
    """The kind's queues in a local moto: the running `keap-relay run` stack by default (its
    .local-stack/stack.json, else http://127.0.0.1:5005), found by the template's queue names."""
    from .resources import client

    state = _local_state(root) if endpoint_url is None else {}
    endpoint = endpoint_url or state.get("moto") or LOCAL_ENDPOINT
    region = region or state.get("region") or DEFAULT_REGION
    sqs = client("sqs", endpoint, region)  # dummy credentials: this client can only ever reach moto
    known = (state.get("queues") or {}).get(kind) or {}
    queue_url = queue_url or known.get("queue")
    dlq_url = dlq_url or known.get("dlq")
    if not (queue_url and dlq_url):
        queue_name, dlq_name = _template_queue_names(root, kind, region)
        queue_url = queue_url or sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
        dlq_url = dlq_url or sqs.get_queue_url(QueueName=dlq_name)["QueueUrl"]
    return QueuePair(kind, str(queue_url), str(dlq_url), sqs, f"local moto at {endpoint}")


def stack_outputs(stack: str, region: str | None, cloudformation: Any = None) -> dict[str, str]:
    """A deployed stack's outputs, by key."""
    import boto3

    cloudformation = cloudformation or boto3.client("cloudformation", region_name=region)
    stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in (stacks[0].get("Outputs") or [])}


def aws_queues(
    kind: str,
    *,
    stack: str | None = None,
    region: str | None = None,
    queue_url: str | None = None,
    dlq_url: str | None = None,
    sqs: Any = None,
    cloudformation: Any = None,
) -> QueuePair:
    """The kind's queues in AWS: from the stack's `<Kind>QueueUrl` / `<Kind>DLQUrl` outputs, or as given."""
    import boto3

    if stack:
        outputs = stack_outputs(stack, region, cloudformation)
        prefix = KINDS[kind]
        missing = [key for key in (f"{prefix}QueueUrl", f"{prefix}DLQUrl") if key not in outputs]
        if missing and not (queue_url and dlq_url):
            raise LookupError(f"stack {stack} has no output {' / '.join(missing)}; is it a keap-relay stack?")
        queue_url = queue_url or outputs[f"{prefix}QueueUrl"]
        dlq_url = dlq_url or outputs[f"{prefix}DLQUrl"]
    if not (queue_url and dlq_url):
        raise LookupError("give --stack NAME, or both --queue-url and --dlq-url")
    where = f"stack {stack}" if stack else "AWS"
    return QueuePair(kind, queue_url, dlq_url, sqs or boto3.client("sqs", region_name=region), where)


def queues_for(args: argparse.Namespace) -> QueuePair:
    """Where the command acts, from its options: local unless --stack or AWS queue URLs are given."""
    kind = resolve_kind(args.kind)
    in_aws = bool(args.stack) or (bool(args.queue_url or args.dlq_url) and not (args.local or args.endpoint_url))
    if in_aws:
        region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        return aws_queues(kind, stack=args.stack, region=region, queue_url=args.queue_url, dlq_url=args.dlq_url)
    return local_queues(
        kind, args.endpoint_url, region=args.region, root=args.root, queue_url=args.queue_url, dlq_url=args.dlq_url
    )


# ---------------------------------------------------------------------------------------------------- commands


def _print_letters(letters: list[DeadLetter], pair: QueuePair, out: TextIO, now: float) -> None:
    label = "dead letter" if len(letters) == 1 else "dead letters"
    print(f"{pair.kind} DLQ {pair.dlq_url} ({pair.where}): {len(letters)} {label}", file=out)
    for number, letter in enumerate(letters, 1):
        attempts = letter.attributes.get("AttemptCount") or "?"
        failed_at = letter.attributes.get("FailedAt") or _iso(letter.sent_at)
        print(
            f"{number:>3}. event {letter.event_id or '?'} from {letter.attributes.get('Source') or '?'}"
            f" · failed {failed_at} ({human_age(now - letter.sent_at)} ago) after {attempts} attempt(s)"
            f" · message {letter.message_id}",
            file=out,
        )
        print(f"     {letter.reason(SUMMARY_MESSAGE)}", file=out)


def cmd_list(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    pair = queues_for(args)
    letters = DeadLetterQueue(pair).letters(args.limit)
    now = time.time()
    if args.json:
        print(json.dumps([letter.summary(now) for letter in letters], indent=2), file=out)
    else:
        _print_letters(letters, pair, out, now)
    return 0


def _pretty_body(body: str) -> str:
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body


def cmd_show(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    pair = queues_for(args)
    found = DeadLetterQueue(pair).find(args.id)
    if not found:
        print(f"no dead letter with message id or event id {args.id!r} in the {pair.kind} DLQ", file=sys.stderr)
        return 1
    now = time.time()
    for index, letter in enumerate(found):
        if index:
            print("", file=out)
        print(f"message id   {letter.message_id}", file=out)
        print(f"event id     {letter.event_id}", file=out)
        print(f"in the DLQ   since {_iso(letter.sent_at)} ({human_age(now - letter.sent_at)})", file=out)
        print(f"reason       {letter.reason()}", file=out)
        print("attributes:", file=out)
        ordered = [n for n in REASON_ATTRIBUTES if n in letter.attributes]
        ordered += sorted(n for n in letter.attributes if n not in REASON_ATTRIBUTES)
        for name in ordered:
            print(f"  {name:<14} {letter.attributes[name]}", file=out)
        print("sqs attributes:", file=out)
        for name in sorted(letter.system_attributes):
            print(f"  {name:<34} {letter.system_attributes[name]}", file=out)
        print("body:", file=out)
        print(_pretty_body(letter.body), file=out)
    return 0


def _print_task(task: dict[str, Any], out: TextIO) -> None:
    started = int(task.get("StartedTimestamp") or 0) / 1000
    line = (
        f"{task.get('Status')}: moved {task.get('ApproximateNumberOfMessagesMoved', 0)}"
        f" of {task.get('ApproximateNumberOfMessagesToMove', '?')}, started {_iso(started) if started else '?'}"
    )
    if task.get("MaxNumberOfMessagesPerSecond"):
        line += f", at most {task['MaxNumberOfMessagesPerSecond']}/s"
    if task.get("FailureReason"):
        line += f" — {task['FailureReason']}"
    print(line, file=out, flush=True)


def cmd_redrive(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    pair = queues_for(args)
    dlq = DeadLetterQueue(pair)
    if args.status:
        tasks = dlq.tasks(10)
        if not tasks:
            print(f"no move tasks for the {pair.kind} DLQ", file=out)
        for task in tasks:
            _print_task(task, out)
        return 0
    if args.cancel:
        task = dlq.cancel()
        print("cancelled the running move task" if task else "no move task is running", file=out)
        return 0
    waiting = dlq.count()
    if waiting == 0:
        print(f"the {pair.kind} DLQ is empty: nothing to redrive", file=out)
        return 0
    started_ms = int(time.time() * 1000)
    handle = dlq.redrive(args.max_per_second)
    print(f"redriving {waiting} dead letter(s) from {pair.dlq_url} to {pair.queue_url} ({pair.where})", file=out)
    print(f"task {handle}", file=out, flush=True)
    if args.no_wait:
        print("not waiting; `keap-relay dlq redrive --status --kind ...` shows how it goes", file=out)
        return 0
    shown: list[Any] = []

    def progress(task: dict[str, Any]) -> None:
        key = (task.get("Status"), task.get("ApproximateNumberOfMessagesMoved"))
        if not shown or shown[-1] != key:
            shown.append(key)
            _print_task(task, out)

    try:
        final = dlq.wait(args.timeout, started_ms, progress)
    except TimeoutError as exc:
        print(f"{exc}; it goes on in SQS (see --status, or --cancel)", file=sys.stderr)
        return 1
    return 0 if final.get("Status") == "COMPLETED" else 1


def _confirm(prompt: str) -> bool:
    try:
        return input(prompt).strip().lower() in ("y", "yes")
    except EOFError:
        return False


def cmd_purge(args: argparse.Namespace, out: TextIO | None = None, confirm: Callable[[str], bool] = _confirm) -> int:
    out = out or sys.stdout
    pair = queues_for(args)
    dlq = DeadLetterQueue(pair)
    letters = dlq.letters()
    cutoff = None if args.older_than is None else time.time() - args.older_than
    chosen = [letter for letter in letters if cutoff is None or letter.sent_at <= cutoff]
    scope = "" if args.older_than is None else f" in it for more than {human_age(args.older_than)}"
    if not chosen:
        print(f"no dead letters{scope} in the {pair.kind} DLQ: nothing to purge", file=out)
        return 0
    prompt = f"delete {len(chosen)} of {len(letters)} dead letter(s){scope} from {pair.dlq_url} ({pair.where})? [y/N] "
    if not args.yes and not confirm(prompt):
        print("nothing deleted", file=out)
        return 1
    deleted = dlq.purge(args.older_than)
    print(f"deleted {deleted} dead letter(s) from the {pair.kind} DLQ", file=out)
    return 0


# ---------------------------------------------------------------------------------------------------- argparse

WHERE_HELP = (
    "Where: by default the local stack's moto (`keap-relay run`; its URLs are read from .local-stack/stack.json, "
    f"else {LOCAL_ENDPOINT} and the template's queue names). --stack NAME uses a deployed stack in AWS (its "
    "<Kind>QueueUrl/<Kind>DLQUrl outputs, your AWS credentials and region); --queue-url/--dlq-url name the "
    "queues directly (in AWS, unless --local or --endpoint-url is given)."
)


def _add_where(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kind",
        required=True,
        type=resolve_kind,
        choices=sorted(KINDS),
        help="which function's DLQ: forms, purchases or unsubscribes",
    )
    where = parser.add_argument_group("where (default: the local stack)")
    where.add_argument("--stack", metavar="NAME", help="a deployed keap-relay stack in AWS (CloudFormation outputs)")
    where.add_argument("--queue-url", metavar="URL", help="the kind's work queue URL (the redrive destination)")
    where.add_argument("--dlq-url", metavar="URL", help="the kind's dead-letter queue URL")
    where.add_argument("--local", action="store_true", help="the local stack's moto (the default)")
    where.add_argument("--endpoint-url", metavar="URL", help=f"a local SQS endpoint, e.g. {LOCAL_ENDPOINT}")
    where.add_argument("--region", help="AWS region (default: AWS_REGION / AWS_DEFAULT_REGION; locally us-east-1)")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)


def _add_list(parser: argparse.ArgumentParser) -> None:
    _add_where(parser)
    parser.add_argument("--json", action="store_true", help="one JSON array of the dead letters and their reasons")
    parser.add_argument("--limit", type=int, metavar="N", help="show at most N (the oldest)")


def _add_show(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="the SQS message id or the event id of the dead letter")
    _add_where(parser)


def _add_redrive(parser: argparse.ArgumentParser) -> None:
    _add_where(parser)
    parser.add_argument(
        "--max-per-second",
        type=int,
        metavar="N",
        help="move at most N messages a second (1-500; default: SQS chooses). Keep it near Keap's budget.",
    )
    parser.add_argument("--no-wait", action="store_true", help="start the move task and return")
    parser.add_argument(
        "--timeout", type=float, default=300, metavar="SECONDS", help="how long to wait for it (default %(default)s)"
    )
    parser.add_argument("--status", action="store_true", help="show the DLQ's recent move tasks; start none")
    parser.add_argument("--cancel", action="store_true", help="cancel the DLQ's running move task")


def _add_purge(parser: argparse.ArgumentParser) -> None:
    _add_where(parser)
    parser.add_argument(
        "--older-than",
        type=_duration_arg,
        metavar="AGE",
        help="only dead letters in the DLQ longer than AGE (7d, 12h, 30m, 45s)",
    )
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")


# action → (help, add arguments, run)
ACTIONS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "list": ("each dead letter with its reason, left in the queue", _add_list, cmd_list),
    "show": ("one dead letter in full: body and every attribute", _add_show, cmd_show),
    "redrive": ("move the dead letters back to the work queue (SQS StartMessageMoveTask)", _add_redrive, cmd_redrive),
    "purge": ("delete the dead letters (after confirmation), or only the old ones", _add_purge, cmd_purge),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `dlq` command's sub-commands (wired into cli.COMMANDS)."""
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, (help_text, add, run) in ACTIONS.items():
        sub = actions.add_parser(name, help=help_text, description=help_text, epilog=WHERE_HELP)
        add(sub)
        sub.set_defaults(dlq_run=run)


def run(args: argparse.Namespace) -> int:
    """Entry of `keap-relay dlq ...`: errors reaching SQS become one line on stderr and exit status 2."""
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

    try:
        return int(args.dlq_run(args))
    except EndpointConnectionError as exc:
        hint = "" if args.stack else " Is the local stack running (`keap-relay run`)? For AWS give --stack NAME."
        print(f"keap-relay dlq {args.action}: {exc}.{hint}", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError, LookupError) as exc:
        print(f"keap-relay dlq {args.action}: {exc}", file=sys.stderr)
        return 2
