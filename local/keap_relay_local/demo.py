"""`demo`: every sample webhook and bus event through the stack, then what Keap holds for each, as a table."""

from __future__ import annotations

import base64
import functools
import http.client
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlencode, urlsplit

from keap_relay.aws.http import parse_request
from keap_relay.events.sources import sign_request, source_spec

from .stack import peek_queue, resolve_kind

# Function folders whose samples go in the second round: an unsubscribe acts on contacts the forms
# and purchases of the first round created, so those must be in Keap first.
LATER_KINDS = frozenset({"unsubscribes"})

# Headers API Gateway sets itself; a vendor's request does not carry them.
_GATEWAY_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "x-forwarded-for",
        "x-forwarded-port",
        "x-forwarded-proto",
        "x-amzn-trace-id",
    }
)


@dataclass
class Sample:
    path: Path
    kind: str  # function folder: forms, purchases, unsubscribes
    trigger: str  # http | eventbridge
    event: dict[str, Any]

    @functools.cached_property
    def canonical(self) -> dict[str, Any]:
        """The (first) canonical event the function builds from the sample: the bus event's detail, or what
        the source's adapter reads from the webhook; {} when there is none (a URL check, an ignored body)."""
        if self.trigger == "eventbridge":
            detail = self.event.get("detail")
            return detail if isinstance(detail, dict) else {}
        spec = source_spec(self.source)
        if spec is None:
            return {}
        request = parse_request(self.event)
        try:
            events = spec.module.parse(request.headers, request.body)
        except Exception:  # the sample is sent anyway: the function's answer says what is wrong with it
            return {}
        first = events[0] if isinstance(events, list) and events else None
        return first if isinstance(first, dict) else {}

    @property
    def source(self) -> str:
        if self.trigger == "http":
            return str((self.event.get("pathParameters") or {}).get("source") or self.event["rawPath"].rsplit("/")[-1])
        return str(self.canonical.get("source") or self.event.get("source") or "")

    @property
    def email(self) -> str:
        """The contact's email as the canonical event has it (trimmed, domain lower-cased): what Keap gets."""
        contact = self.canonical.get("contact")
        return str(contact.get("email") or "") if isinstance(contact, dict) else ""

    @property
    def event_id(self) -> str:
        return str(self.canonical.get("id") or "")

    def body(self) -> bytes:
        raw = self.event.get("body") or ""
        return base64.b64decode(raw) if self.event.get("isBase64Encoded") else str(raw).encode()


def load_samples(root: Path) -> list[Sample]:
    """events/<fn>/http-*.json and events/<fn>/eventbridge.json, first-round kinds first."""
    samples = []
    for path in sorted(root.glob("events/*/*.json")):
        trigger = "http" if path.name.startswith("http-") else "eventbridge" if path.stem == "eventbridge" else None
        if trigger:
            samples.append(Sample(path, path.parent.name, trigger, json.loads(path.read_text(encoding="utf-8"))))
    return sorted(samples, key=lambda s: s.kind in LATER_KINDS)


@dataclass
class Outcome:
    sample: Sample
    delivery: str = ""  # HTTP status, or the EventBridge event id
    rejected: str | None = None
    contact_ids: list[int] = field(default_factory=list)
    tags: list[int] = field(default_factory=list)
    sequences: list[str] = field(default_factory=list)
    action_sets: list[str] = field(default_factory=list)
    goals: list[str] = field(default_factory=list)
    dead_letter: str | None = None
    status: str = ""
    applied: bool = False


def send_http(gateway_url: str, sample: Sample, secrets: dict[str, str]) -> tuple[int, bytes]:
    """POST (or GET) the sample to the gateway as its vendor would send it."""
    event = sample.event
    body = sample.body()
    headers = {k: v for k, v in (event.get("headers") or {}).items() if k.lower() not in _GATEWAY_HEADERS}
    query = dict(parse_qsl(event.get("rawQueryString") or "", keep_blank_values=True))
    method = event.get("requestContext", {}).get("http", {}).get("method", "POST")
    if sample.source in secrets and source_spec(sample.source) is not None:
        # Signed now, the vendor's way, with the stack's secrets: signatures with timestamps (Stripe,
        # Webflow, Mailgun) expire, so the stored ones cannot be replayed as they are.
        signed = sign_request(sample.source, body, secrets[sample.source])
        if method == "POST":
            body = signed.body
            headers.update(signed.headers)
        query.update(signed.query)
    target = event["rawPath"] + (f"?{urlencode(query)}" if query else "")
    parts = urlsplit(gateway_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=60)
    try:
        conn.request(method, target, body=body if body or method != "GET" else None, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def put_sample_event(events: Any, sample: Sample) -> str:
    """PutEvents with the sample's source, detail-type and detail; returns the event id or an error."""
    event = sample.event
    response = events.put_events(
        Entries=[
            {
                "Source": event.get("source", ""),
                "DetailType": event.get("detail-type", ""),
                "Detail": json.dumps(event.get("detail", {})),
                "EventBusName": "default",
            }
        ]
    )
    entry = response["Entries"][0]
    return str(entry.get("EventId") or entry.get("ErrorMessage") or "failed")


def describe_contacts(snapshot: dict[str, Any], email: str) -> dict[str, Any]:
    """What Keap (the emulator's snapshot) holds for one address."""
    needle = email.lower()
    contacts = [
        c
        for c in snapshot.get("contacts", [])
        if needle and needle in {str(c.get(f) or "").lower() for f in ("Email", "EmailAddress2", "EmailAddress3")}
    ]
    ids = [int(c["Id"]) for c in contacts]
    runs: dict[int, int] = {}
    for run in snapshot.get("action_set_runs", []):
        if run.get("contact_id") in ids:
            runs[run["action_set_id"]] = runs.get(run["action_set_id"], 0) + 1
    # Goals are what REST v2 (the default API) runs where XML-RPC routes ran action sets.
    goals: dict[str, int] = {}
    for run in snapshot.get("goal_runs", []):
        if run.get("contact_id") in ids:
            name = f"{run['integration']}/{run['call_name']}"
            goals[name] = goals.get(name, 0) + 1
    return {
        "ids": ids,
        "tags": sorted({t for c in contacts for t in c.get("tags", [])}),
        "sequences": [
            f"{e['sequence_id']}:{e['state']}" for e in snapshot.get("enrolments", []) if e.get("contact_id") in ids
        ],
        "action_sets": [f"{a}x{n}" for a, n in sorted(runs.items())],
        "goals": [g if n == 1 else f"{g} x{n}" for g, n in sorted(goals.items())],
    }


def _dead_letter_reason(letters: list[dict[str, Any]], sample: Sample) -> str | None:
    for letter in letters:
        attrs = letter.get("attributes") or {}
        same_id = sample.event_id and attrs.get("EventId") == sample.event_id
        if same_id or (sample.email and sample.email in letter.get("body", "")):
            reason = attrs.get("ErrorMessage") or "no reason attached (moved by the queue's redrive)"
            return f"{attrs.get('ErrorClass', 'DLQ')}: {reason}"
    return None


def settle(outcome: Outcome, snapshot: dict[str, Any] | None, letters: list[dict[str, Any]]) -> None:
    """Fill in what Keap holds and the verdict for one sample."""
    sample = outcome.sample
    if outcome.rejected:
        outcome.status = outcome.rejected
        return
    if snapshot is not None and sample.email:
        held = describe_contacts(snapshot, sample.email)
        outcome.contact_ids, outcome.tags = held["ids"], held["tags"]
        outcome.sequences, outcome.action_sets = held["sequences"], held["action_sets"]
        outcome.goals = held["goals"]
    outcome.dead_letter = _dead_letter_reason(letters, sample)
    if outcome.dead_letter:
        outcome.status = f"in DLQ: {outcome.dead_letter}"
    elif not sample.email:
        outcome.status, outcome.applied = f"answered (HTTP {outcome.delivery})", True
    elif snapshot is None:
        outcome.status, outcome.applied = "accepted (Keap state not readable here)", True
    elif outcome.contact_ids:
        outcome.status, outcome.applied = "applied", True
    elif sample.kind in LATER_KINDS:
        outcome.status, outcome.applied = "applied (no such contact in Keap)", True
    else:
        outcome.status = "not applied: no contact in Keap"


def run_demo(
    samples: list[Sample],
    *,
    gateway_url: str,
    events: Any,
    sqs: Any,
    dlq_urls: dict[str, str],
    secrets: dict[str, str],
    drain: Callable[[], None],
    snapshot: Callable[[], dict[str, Any]] | None,
    out: TextIO,
) -> list[Outcome]:
    """Send the samples in two rounds, read back Keap and the DLQs after each, print the table."""
    outcomes: list[Outcome] = []
    rounds = [[s for s in samples if s.kind not in LATER_KINDS], [s for s in samples if s.kind in LATER_KINDS]]
    for batch in rounds:
        if not batch:
            continue
        sent = []
        for sample in batch:
            outcome = Outcome(sample)
            if sample.trigger == "http":
                status, body = send_http(gateway_url, sample, secrets)
                outcome.delivery = str(status)
                if status >= 400:
                    outcome.rejected = f"rejected: HTTP {status} {body.decode('utf-8', 'replace')[:80]}"
            elif events is None:
                outcome.rejected = "skipped: no EventBridge (moto) to put it on"
            else:
                outcome.delivery = put_sample_event(events, sample)
            sent.append(outcome)
        drain()
        state = snapshot() if snapshot else None
        letters = {kind: peek_queue(sqs, url) for kind, url in dlq_urls.items()} if sqs else {}
        for outcome in sent:
            settle(outcome, state, letters.get(resolve_kind(outcome.sample.kind), []))
        outcomes.extend(sent)
    print_table(outcomes, out)
    return outcomes


_COLUMNS = (
    ("sample", lambda o: f"{o.sample.kind}/{o.sample.path.stem}"),
    ("source", lambda o: o.sample.source),
    ("email", lambda o: o.sample.email or "-"),
    ("contact", lambda o: ",".join(map(str, o.contact_ids)) or "-"),
    ("tags", lambda o: ",".join(map(str, o.tags)) or "-"),
    ("sequences", lambda o: ",".join(o.sequences) or "-"),
    ("action sets", lambda o: ",".join(o.action_sets) or "-"),
    ("goals", lambda o: ",".join(o.goals) or "-"),
    ("status", lambda o: o.status),
)


def print_table(outcomes: list[Outcome], out: TextIO) -> None:
    rows = [[title for title, _ in _COLUMNS]] + [[cell(o) for _, cell in _COLUMNS] for o in outcomes]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS) - 1)]
    for n, row in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1], file=out)
        if n == 0:
            print("  ".join("-" * w for w in widths) + "  " + "-" * 6, file=out)


def wait_queues_empty(sqs: Any, queue_urls: list[str], timeout: float = 60, quiet_checks: int = 3) -> None:
    """For a stack in another process: wait until the queues read empty several times in a row."""
    deadline = time.monotonic() + timeout
    quiet = 0
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    while quiet < quiet_checks:
        counts = [
            sum(int(v) for v in sqs.get_queue_attributes(QueueUrl=u, AttributeNames=names)["Attributes"].values())
            for u in queue_urls
        ]
        quiet = quiet + 1 if not any(counts) else 0
        if time.monotonic() > deadline:
            raise TimeoutError(f"queues not empty after {timeout} s")
        time.sleep(0.3)
