"""Fault-injection run: thousands of events through the local stack under Keap faults, an outage and kills.

Run: .venv/bin/python bench/fault_run.py --events 2000 --seed 7 [--api xmlrpc|rest] [--json out.json]

Everything is real but Keap: the three functions as processes, the template's queues and DLQs in moto, the
routes of the chosen API (XML-RPC: the shipped routes in their XML-RPC form, action sets 21/31; REST v2:
config/routes.yaml, goals 41/42), plus one rule that names a sequence Keap lacks, webhooks through the
gateway, some events through EventBridge and straight into the queues. Keap is the emulator, which injects
transient failures (5xx, 429, dropped connections before and after applying the call, garbled answers,
answers slower than the client's read timeout), a share of permanent faults and an outage window; one thread
kills function processes while they work on a batch, another kills them inside the once-only window (Keap
has applied an action set or goal and holds its answer back). Afterwards the outcome of every event is read
from the emulator's own records (contacts, tags, sequence starts, action-set and goal runs, call log) and
the queues, never from the pipeline's account of itself. See docs/fault-injection.md.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import logging
import queue
import random
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

from keap_emulator import FaultPlan
from keap_emulator.faults import HeldAnswer, HoldPlan
from keap_relay.events.kinds import FOLDERS, by_name
from keap_relay.keap.client import SAFE_TO_REPEAT
from keap_relay.keap.errors import error_from_http
from keap_relay.keap.rest import REST_SAFE_TO_REPEAT
from keap_relay.keap.session import ClientOptions
from keap_relay.routing.keap_port import ContactServicePort, RestPort
from keap_relay.routing.plan import plan as plan_event
from keap_relay.routing.routes import load_routes
from keap_relay.routing.runner import ONCE_ONLY_OPS
from keap_relay_local.stack import LocalStack, peek_queue
from keap_relay_ops.dlq import DeadLetter

ROOT = common.ROOT
RETIRED_FORM = "retired-form"  # routed to sequence 99, which the emulator's world lacks: a permanent fault
UNKNOWN_SEQUENCE = 99
PERMANENT_FAULT = (5, "[RecordNotFound]Record not found (injected)")
# An answer slower than the client's own read timeout (its default, as the functions build it).
READ_TIMEOUT_S = ClientOptions().read_timeout
SLOW_ANSWER_MS = int(READ_TIMEOUT_S * 1000) + 1_500


@dataclass(frozen=True)
class Api:
    """What differs between the two Keap APIs for the run: the routes, the call names, the stale rule."""

    routes: Path
    call_names: dict[str, str]  # plan op -> Keap method, as the port names it (and the emulator logs it)
    safe_to_repeat: frozenset[str]  # what the client repeats once it may have reached Keap
    retired_rule: dict[str, Any]  # the rule keys that send a form to sequence 99
    # Whether an injected Keap fault is a permanent failure: on REST v2 it is an HTTP 500, which is transient
    # there, so the REST run's permanent failures all come from the retired form's rule.
    injected_faults_permanent: bool
    # Port call name -> the name the emulator logs it by, where they differ (REST v2 is logged by verb and path:
    # an upsert is POST /contacts with a duplicate_option, which the emulator names as the create it shares).
    logged_as: dict[str, str] = field(default_factory=dict)

    def logged(self, op: str) -> str:
        """The emulator's name for the call a plan op makes."""
        name = self.call_names[op]
        return self.logged_as.get(name, name)

    @property
    def once_only(self) -> frozenset[str]:
        """The methods the pipeline runs at most once (the client never repeats them once they may have
        reached Keap, so an unanswered call leaves its outcome unknown: the reading-back relies on that)."""
        names = frozenset(self.call_names[op] for op in ONCE_ONLY_OPS) - {RestPort.call_names["run_action_set"]}
        repeated = names & self.safe_to_repeat
        assert not repeated, f"the client now repeats {repeated}: revisit _unanswered_once_only_calls"
        return names


APIS: dict[str, Api] = {
    # The shipped routes in their XML-RPC form (campaigns: [11], action_sets: [21] and [31]), kept for the tests
    # of the XML-RPC path; config/routes.yaml runs goals on XML-RPC too, but the run exercises action sets there.
    "xmlrpc": Api(
        ROOT / "tests" / "fixtures" / "routes-xmlrpc.yaml",
        ContactServicePort.call_names,
        SAFE_TO_REPEAT,
        {"campaigns": [UNKNOWN_SEQUENCE]},
        injected_faults_permanent=True,
    ),
    "rest": Api(
        ROOT / "config" / "routes.yaml",
        RestPort.call_names,
        REST_SAFE_TO_REPEAT,
        {"sequences": [{"campaign": 5, "sequence": UNKNOWN_SEQUENCE}]},
        injected_faults_permanent=False,
        logged_as={"rest.upsertContact": "rest.createContact"},
    ),
}
# Once-only methods -> the contact id in the request the emulator holds (XML-RPC params, the API key first;
# the REST v2 JSON body).
HELD_CONTACT: dict[str, Callable[[Any], int]] = {
    "ContactService.runActionSequence": lambda params: int(params[1]),
    "FunnelService.achieveGoal": lambda params: int(params[3]),
    "rest.achieveGoal": lambda body: int(body["contact_id"]),
}
# How long the emulator holds a once-only answer at most: long enough for a kill and the new process (a
# restart takes a second or two on a busy machine), shorter than the client's read timeout.
MAX_HOLD_S = min(15.0, READ_TIMEOUT_S - 2)
# The runner's words for an intent found alone on a redelivery (the process ended with the call in flight).
FUNCTION_ENDED = "function ended before its answer was recorded"
STARTED = {"started", "restarted", "resumed"}  # sequence_starts outcomes that are a start; already_active is not
EMULATOR_TZ = ZoneInfo("America/New_York")  # the emulator writes Keap's app-local wall time


@dataclass
class RunConfig:
    """What to send and what to break. Shares are of events; rates are per Keap call."""

    events: int = 2000
    seed: int = 7
    api: str = "xmlrpc"  # xmlrpc | rest
    kinds: dict[str, float] = field(
        default_factory=lambda: {"form_submission": 0.45, "purchase": 0.35, "unsubscribe": 0.20}
    )
    channels: dict[str, float] = field(default_factory=lambda: {"http": 0.80, "eventbridge": 0.12, "sqs": 0.08})
    duplicate_share: float = 0.30  # events delivered twice or more
    third_copy_share: float = 0.25  # of those, delivered three times
    concurrent_share: float = 0.35  # of the extra copies, sent at the same moment as the first
    later_copy_seconds: tuple[float, float] = (1.0, 45.0)  # when the other extra copies come
    transient: dict[str, float] = field(
        default_factory=lambda: {"rate_5xx": 0.07, "rate_429": 0.05, "rate_drop": 0.06, "rate_malformed": 0.02}
    )
    permanent_share: float = 0.01  # events meant to end in the DLQ: half routed to sequence 99, half by fault
    outage_seconds: float = 60.0
    outage_at: float = 0.35  # where in the sending window the outage starts
    slow_windows: int = 2  # short windows in which Keap answers after the client's read timeout
    slow_window_seconds: float = 0.5
    phase_seconds: float = 4.0  # the fault plan is re-drawn this often (drops before/after apply alternate)
    kill_every: float = 6.0  # mean seconds between kills of a function mid-batch (0: none)
    kill_window: float = 1.0  # kills happen in this share of the sending window (from its start)
    window_kills: int | None = None  # kills inside the once-only window (None: one per 100 events)
    window_timeouts: int = 0  # of those, ended by the function's timeout (needs a function timeout < read timeout)
    send_rate: float = 25.0  # deliveries a second
    senders: int = 6
    visibility_timeout: int = 2
    function_timeout: float | None = None  # None: the template's
    # None: 900 s per 2,000 events (900 at least). The local stack's moto scans a whole queue on each call, so
    # the pipeline slows as a backlog grows: a 10,000-event run drains for far longer than five 2,000-event ones.
    drain_timeout: float | None = None
    http_attempts: int = 40  # a webhook sender retries a refused delivery this often, 0.5 s apart
    # Sending pauses while the work queues hold more visible messages than this (0: never). The local stack's
    # moto scans a whole queue on every call, so a backlog of many thousands slows the pipeline to a crawl; a
    # 2,000-event run stays below it, a 10,000-event one is held to it.
    max_backlog: int = 3000


# RunConfig fields whose default None means "derived from the others", and their type on the command line.
DERIVED: dict[str, type] = {"window_kills": int, "drain_timeout": float}
# The RunConfig fields the command line sets (--events, --kill-every, ...), and what to say of them.
OPTIONS = {
    "events": None,
    "seed": None,
    "outage_seconds": None,
    "kill_every": "mean seconds between kills",
    "window_kills": "kills inside the once-only window: Keap applied an action set (goal) and holds its answer; "
    "the waiting function is SIGKILLed (default: one per 100 events)",
    "window_timeouts": "of the window kills, how many are left to the function's own timeout instead of a "
    "SIGKILL (needs --function-timeout at least 3 s below the Keap client's read timeout)",
    "send_rate": "deliveries a second",
    "slow_windows": None,
    "duplicate_share": None,
    "permanent_share": None,
    "later_copy_seconds": None,
    "drain_timeout": "seconds to wait for the queues to drain after sending (default: 900 per 2,000 events)",
    "max_backlog": "sending pauses while the work queues hold more messages than this (0: never)",
}


@dataclass
class Delivery:
    at: float  # seconds after the start of sending
    event: dict[str, Any]
    channel: str
    copy: int  # 0: the first delivery


@dataclass
class Kill:
    at: float
    function: str
    mid_batch: bool


@dataclass
class WindowKill:
    """A kill while Keap held the answer to a once-only call it had applied."""

    at: float
    function: str
    method: str
    contact: int
    event_id: str | None
    how: str = "SIGKILL"  # or "timeout": the function's own timeout ended the process
    outcome: str = ""  # filled in when reading back


@dataclass
class Report:
    """The figures of one run."""

    config: dict[str, Any]
    wall_seconds: float = 0.0
    drained: bool = True
    events: int = 0
    deliveries: dict[str, int] = field(default_factory=dict)
    applied_once: int = 0
    applied_with_stale_dlq_entry: int = 0
    dead_lettered: int = 0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)
    dlq_entries: int = 0
    dlq_entries_without_permanent_reason: int = 0
    still_queued: int = 0
    lost: int = 0  # not applied (an expected effect missing), not in the DLQ, not queued
    lost_to_unknown_outcomes: int = 0  # of which: only action sets missing, after an unanswered call
    lost_details: list[dict[str, Any]] = field(default_factory=list)
    duplicate_effects: int = 0
    duplicates_in_crash_windows: int = 0
    duplicates_after_lost_answers: int = 0
    duplicates_unexplained: int = 0
    duplicate_details: list[dict[str, Any]] = field(default_factory=list)
    kills: int = 0
    kills_mid_batch: int = 0
    api: str = "xmlrpc"
    kills_in_window: int = 0  # functions ended while Keap held the answer to a once-only call it had applied
    timeouts_in_window: int = 0  # of which by the function's own timeout (the rest: SIGKILL)
    window_kills_planned: int = 0
    window_kills_missed: int = 0  # armed holds no once-only call came for before sending ended (no kill made)
    window_kill_outcomes: dict[str, int] = field(default_factory=dict)
    window_kill_details: list[dict[str, Any]] = field(default_factory=list)
    duplicate_once_only_effects: int = 0  # action sets run / goals achieved twice for a contact
    dlq_entry_classes: dict[str, int] = field(default_factory=dict)  # permanent reason / OutcomeUnknown (why)
    dead_letter_classes: dict[str, int] = field(default_factory=dict)  # the same, per dead-lettered event
    dlq_entries_not_permanent_or_unknown: int = 0
    # each such entry: its event, reason attributes, SQS receive count, and whether the event was applied anyway
    dlq_entries_not_permanent_or_unknown_details: list[dict[str, Any]] = field(default_factory=list)
    calls_made: int = 0
    calls_injected: dict[str, int] = field(default_factory=dict)
    calls_clean: int = 0
    calls_minimum: int = 0
    calls_by_method: dict[str, dict[str, int]] = field(default_factory=dict)
    webhooks_never_accepted: int = 0
    transient_share_outside_outage: float = 0.0
    sender_retries: int = 0
    sending_paused_seconds: float = 0.0  # producers held back: senders behind, or the work queues over --max-backlog

    @property
    def clean_ratio(self) -> float:
        return self.calls_clean / self.calls_minimum if self.calls_minimum else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "clean_ratio": round(self.clean_ratio, 3)}


# ---------------------------------------------------------------------------------------------------- the workload


def _routes_with_retired_form(directory: Path, api: Api) -> Path:
    """The API's routes plus one rule that names a sequence Keap does not have (a user's stale route)."""
    doc = yaml.safe_load(api.routes.read_text(encoding="utf-8"))
    doc["forms"].insert(0, {"name": "retired form", "match": {"form": RETIRED_FORM}, **api.retired_rule})
    path = directory / "routes.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def _event(kind: str, number: int, email: str, rng: random.Random, permanent: bool) -> dict[str, Any]:
    event: dict[str, Any] = {
        "kind": kind,
        "source": "generic",
        "id": f"fault-{number:05d}-{rng.getrandbits(32):08x}",
        "occurred_at": "2026-11-26T10:00:00Z",
        "contact": {"email": email, "first_name": "Fault", "last_name": f"Run{number}"},
    }
    if kind == "form_submission":
        form = RETIRED_FORM if permanent else rng.choice(["lT4Z3j", "lT4Z3j", "contact-us"])
        event["form"] = {"id": form, "name": "Webinar sign-up" if form == "lT4Z3j" else "Contact us"}
    elif kind == "purchase":
        sku, total = rng.choice([("COURSE-101", "49.00"), ("COURSE-101", "149.00"), ("BOOK-7", "120.00")])
        item = {"sku": sku, "product_id": "7", "name": sku, "quantity": 1, "unit_price": total}
        event["order"] = {"id": f"o{number}", "total": total, "currency": "USD", "items": [item]}
    else:
        event["unsubscribe"] = {"reason": "fault run", "list_id": ""}
    return event


def build_workload(cfg: RunConfig) -> tuple[list[dict[str, Any]], list[Delivery], list[str]]:
    """The unique events, their deliveries in time order, and the emails to create before (unsubscribers)."""
    rng = random.Random(cfg.seed)
    kinds = rng.choices(list(cfg.kinds), weights=list(cfg.kinds.values()), k=cfg.events)
    forms = [i for i, k in enumerate(kinds) if k == "form_submission"]
    # Half the permanent failures are the retired form's, half injected faults (all the retired form's on REST).
    retired = cfg.permanent_share / 2 if APIS[cfg.api].injected_faults_permanent else cfg.permanent_share
    routed_to_99 = set(rng.sample(forms, min(len(forms), round(cfg.events * retired))))
    events, seeded = [], []
    for number, kind in enumerate(kinds):
        email = f"fault-{cfg.seed}-{number:05d}@example.com"
        if kind == "unsubscribe":
            seeded.append(email)
        events.append(_event(kind, number, email, rng, number in routed_to_99))

    copies_per_event = 1 + cfg.duplicate_share * (1 + cfg.third_copy_share)
    spacing = copies_per_event / cfg.send_rate
    channels = list(cfg.channels)
    deliveries = []
    for number, event in enumerate(events):
        start = number * spacing
        deliveries.append(Delivery(start, event, rng.choices(channels, list(cfg.channels.values()))[0], 0))
        if rng.random() >= cfg.duplicate_share:
            continue
        extra = 2 if rng.random() < cfg.third_copy_share else 1
        for copy in range(1, extra + 1):
            at = start if rng.random() < cfg.concurrent_share else start + rng.uniform(*cfg.later_copy_seconds)
            deliveries.append(Delivery(at, event, rng.choices(channels, list(cfg.channels.values()))[0], copy))
    deliveries.sort(key=lambda d: d.at)
    return events, deliveries, seeded


def seed_unsubscribers(emulator: Any, emails: list[str]) -> None:
    """Contacts that unsubscribe events will find: tagged 100/101 and in sequence 11, made straight in Keap."""
    model = emulator.model
    for email in emails:
        contact = model.add({"Email": email, "FirstName": "Leaving"})
        for tag in (100, 101):
            model.add_to_group(contact, tag)
        model.add_to_campaign(contact, 11)


# ---------------------------------------------------------------------------------------------------- senders


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    try:
        conn.request("POST", parts.path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


class Sender:
    """Delivers events the three ways producers do; a refused webhook is re-sent, as senders do."""

    def __init__(self, stack: LocalStack, cfg: RunConfig) -> None:
        self.stack = stack
        self.cfg = cfg
        self.retries = 0
        self.failed: list[str] = []
        self.by_channel: Counter[str] = Counter()
        self._lock = threading.Lock()

    def deliver(self, delivery: Delivery) -> None:
        folder = by_name(delivery.event["kind"]).folder
        getattr(self, f"_{delivery.channel}")(folder, delivery.event)
        with self._lock:
            self.by_channel[delivery.channel] += 1

    def _http(self, kind: str, event: dict[str, Any]) -> None:
        body, headers = common.signed_webhook(event)
        for attempt in range(self.cfg.http_attempts):
            try:
                status = _post(self.stack.webhook_url(kind), body, headers)
            except OSError:
                status = 0
            if status in (200, 202):
                return
            with self._lock:
                self.retries += 1
            time.sleep(0.5 + 0.1 * attempt)
        with self._lock:
            self.failed.append(event["id"])

    def _eventbridge(self, kind: str, event: dict[str, Any]) -> None:
        self.stack.put_event(kind, event)

    def _sqs(self, kind: str, event: dict[str, Any]) -> None:
        self.stack.sqs.send_message(QueueUrl=self.stack.queue_url(kind), MessageBody=json.dumps(event))


# ---------------------------------------------------------------------------------------------------- chaos


class FaultSchedule(threading.Thread):
    """Re-draws the emulator's fault plan every phase; opens the outage and the slow-answer windows."""

    def __init__(self, stack: LocalStack, cfg: RunConfig, start: float, send_window: float) -> None:
        super().__init__(name="fault-schedule", daemon=True)
        self.stack = stack
        self.cfg = cfg
        self.start_at = start
        self.stop = threading.Event()
        rng = random.Random(cfg.seed + 1)
        outage_start = start + cfg.outage_at * send_window
        self.outage = (outage_start, outage_start + cfg.outage_seconds) if cfg.outage_seconds > 0 else None
        self.slow = sorted(
            (at, at + cfg.slow_window_seconds)
            for at in (start + rng.uniform(0.1, 0.9) * send_window for _ in range(cfg.slow_windows))
        )
        self.plans = 0  # each plan set gets its own seed: set_faults restarts the draws from it
        mean_calls = 4.5  # Keap calls of an average event (forms 3-5, purchases 3-5, unsubscribes 6)
        permanent = APIS[cfg.api].injected_faults_permanent
        self.permanent_rate = cfg.permanent_share / 2 / mean_calls if permanent else 0.0

    def plan_for(self, phase: int, now: float) -> FaultPlan:
        slow = any(a <= now < b for a, b in self.slow)
        return FaultPlan(
            latency_ms=SLOW_ANSWER_MS if slow else 0,
            drop_after_apply=phase % 2 == 1,
            rate_fault=self.permanent_rate,
            fault=PERMANENT_FAULT,
            outages=[self.outage] if self.outage else [],
            seed=self.cfg.seed * 100_000 + self.plans,
            **self.cfg.transient,
        )

    def run(self) -> None:
        phase = 0
        while not self.stop.is_set():
            now = time.time()
            self.plans += 1
            self.stack.emulator.set_faults(self.plan_for(phase, now))
            edges = [b for a, b in self.slow if a <= now < b] + [a for a, _ in self.slow if a > now]
            next_phase = now + self.cfg.phase_seconds
            wake = min([next_phase, *edges])
            if wake >= next_phase:
                phase += 1
            self.stop.wait(max(0.01, wake - time.time()))

    def halt(self) -> None:
        self.stop.set()
        self.join()
        self.stack.emulator.set_faults(None)


class Killer(threading.Thread):
    """Kills a random function's process while its poller has a batch in flight."""

    def __init__(
        self, stack: LocalStack, cfg: RunConfig, start: float, send_window: float, kill_lock: threading.Lock
    ) -> None:
        super().__init__(name="killer", daemon=True)
        self.stack = stack
        self.kill_lock = kill_lock  # one kill at a time, this thread's or the window killer's
        self.cfg = cfg
        self.until = start + cfg.kill_window * send_window
        self.stop = threading.Event()
        self.kills: list[Kill] = []
        self.rng = random.Random(cfg.seed + 2)

    def run(self) -> None:
        if self.cfg.kill_every <= 0:
            return
        while not self.stop.wait(self.rng.expovariate(1 / self.cfg.kill_every)) and time.time() < self.until:
            function = self.rng.choice(FOLDERS)
            deadline = time.monotonic() + 3
            while not self.stack.poller_busy(function) and time.monotonic() < deadline and not self.stop.is_set():
                time.sleep(0.01)
            busy = self.stack.poller_busy(function)
            time.sleep(self.rng.uniform(0, 0.08))  # somewhere in the batch, not at its first instant
            with self.kill_lock:
                at = time.time()
                self.stack.kill_function(function)
            self.kills.append(Kill(at, function, busy))

    def halt(self) -> None:
        self.stop.set()
        self.join()


class WindowKiller(threading.Thread):
    """Ends functions inside the once-only window, on purpose. At each of its times (spread over the kill
    window) it arms the emulator to hold the answer of the next once-only call Keap applies. The function
    waiting for that answer is SIGKILLed (and restarted), or left to its own timeout (which ends the process,
    as Lambda does), and only then is the answer let go, to a dead connection. The redelivered event must find
    the step's intent and never run it again."""

    def __init__(
        self,
        stack: LocalStack,
        cfg: RunConfig,
        start: float,
        send_window: float,
        function_of: Callable[[int], tuple[str | None, str | None]],
        kill_lock: threading.Lock,
    ) -> None:
        super().__init__(name="window-killer", daemon=True)
        self.stack = stack
        self.function_of = function_of  # contact id -> (function, event id)
        self.kill_lock = kill_lock
        self.once_only = APIS[cfg.api].once_only
        self.stop = threading.Event()
        self.kills: list[WindowKill] = []
        self.missed = 0
        self.held: queue.Queue[HeldAnswer] = queue.Queue()
        rng = random.Random(cfg.seed + 3)
        count = window_kills(cfg)
        span = cfg.kill_window * send_window
        self.times = [start + (i + rng.uniform(0.2, 0.8)) * span / count for i in range(count)] if count else []
        # Which of them are left to the function's timeout rather than SIGKILLed: the last ones, as a timeout
        # holds this thread for as long as the function's timeout.
        self.timeouts = set(range(count - min(count, cfg.window_timeouts), count))
        # A timed-out function ends within its timeout of the hold; the answer waits a little longer.
        self.longest_hold = (cfg.function_timeout or 0) + 3 if self.timeouts else MAX_HOLD_S
        self.until = start + span

    def run(self) -> None:
        gap = (self.until - self.times[0]) / len(self.times) / 2 if self.times else 0.0
        last = 0.0
        for n, at in enumerate(self.times):
            # A kill is never closer than half the planned spacing to the one before (an outage or a timeout
            # may have delayed that one): the pipeline gets to run between kills.
            if self.stop.wait(max(0.0, at - time.time(), last + gap - time.time())):
                return
            held = self._next_held()
            if held is None:
                self.missed += 1
                continue
            try:
                contact = HELD_CONTACT[held.method](held.params)
                function, event_id = self.function_of(contact)
                if function is None:
                    self.missed += 1
                    continue
                how = "timeout" if n in self.timeouts else "SIGKILL"
                ended_at = self._end(function, how)
                if ended_at is None:
                    self.missed += 1
                    continue
                self.kills.append(WindowKill(ended_at, function, held.method, contact, event_id, how))
                last = ended_at
            finally:
                held.release()  # to a dead connection: the process that asked is gone

    def _next_held(self) -> HeldAnswer | None:
        """Arm a hold for one once-only call and wait for it; disarmed after. It stays armed until a once-only
        call comes (none does during the outage), or sending ends (None)."""
        self.stack.emulator.hold_answers(HoldPlan(self.once_only, limit=1, max_hold_s=self.longest_hold), self.held.put)
        try:
            while not self.stop.is_set():
                try:
                    return self.held.get(timeout=0.25)
                except queue.Empty:
                    continue
            return None
        finally:
            self.stack.emulator.hold_answers(None)
            while not self.held.empty():  # held between the last look and the disarming: answered at once
                self.held.get_nowait().release()

    def _end(self, function: str, how: str) -> float | None:
        """SIGKILL the function, or wait for its own timeout to end it; when it ended (None: it did not)."""
        if how == "SIGKILL":
            with self.kill_lock:
                ended_at = time.time()
                self.stack.kill_function(function)
            return ended_at
        host = self.stack.function_host(function)
        pid = host.pid
        deadline = time.monotonic() + self.longest_hold
        while time.monotonic() < deadline:
            if not host.alive or host.pid != pid:
                return time.time()
            time.sleep(0.05)
        return None

    def halt(self) -> None:
        self.stop.set()
        self.join()
        self.stack.emulator.hold_answers(None)


def _wait_for_backlog(stack: LocalStack, limit: int) -> None:
    """Hold the producers while the work queues hold more than `limit` visible messages."""
    while sum(stack.queue_counts(function)["Visible"] for function in FOLDERS) > limit:
        time.sleep(1.0)


def drain_timeout(cfg: RunConfig) -> float:
    """How long the run waits for the queues to drain after sending."""
    return cfg.drain_timeout if cfg.drain_timeout is not None else max(900.0, cfg.events * 0.45)


def window_kills(cfg: RunConfig) -> int:
    """How many kills the run places inside the once-only window."""
    return cfg.events // 100 if cfg.window_kills is None else cfg.window_kills


def check_config(cfg: RunConfig) -> None:
    """Refuse what the run cannot do (ValueError): a timeout lands in the window only if the function's
    timeout comes before the client's read timeout would give up on the held answer."""
    if cfg.api not in APIS:
        raise ValueError(f"api is one of {sorted(APIS)}")
    if cfg.window_timeouts > window_kills(cfg):
        raise ValueError("window_timeouts is a share of window_kills: at most as many")
    if cfg.window_timeouts and not (cfg.function_timeout and cfg.function_timeout + 3 < READ_TIMEOUT_S):
        raise ValueError(
            f"window timeouts need a function timeout at least 3 s below the client's read timeout "
            f"({READ_TIMEOUT_S:g} s): give --function-timeout"
        )


# ---------------------------------------------------------------------------------------------------- reading back


def _epoch(local: str) -> float:
    return datetime.fromisoformat(local).replace(tzinfo=EMULATOR_TZ).timestamp()


def _expected(event: dict[str, Any], routes: Any, api: Api) -> dict[str, Any]:
    """What one clean application of the event does in Keap, from the same routes the functions read."""
    planned = plan_event(event, routes)
    ops: dict[str, list[Any]] = defaultdict(list)
    for call in planned.follow_ups:
        # A goal is known by (integration, call name); everything else by its first argument.
        ops[call.op].append(tuple(call.args) if call.op == "achieve_goal" else call.args[0] if call.args else None)
    return {
        "calls": 1 + len(planned.follow_ups),
        "methods": Counter(api.logged(c.op) for c in (planned.first, *planned.follow_ups)),
        "tags": set(ops["apply_tag"]),
        "removed_tags": set(ops["remove_tag"]),
        "sequences": set(ops["start_sequence"]),
        "stopped": set(ops["stop_sequence"]),
        "action_sets": set(ops["run_action_set"]),
        "goals": set(ops["achieve_goal"]),
    }


def _missing(model: Any, event: dict[str, Any], want: dict[str, Any], starts: Any, runs: Any, goals: Any) -> list[str]:
    """The effects of one clean application that Keap does not show for this event (empty: applied)."""
    ids = model.find_ids_by_email(event["contact"]["email"])
    if len(ids) != 1:
        return [f"{len(ids)} contacts instead of 1"]
    contact = ids[0]
    tags = model.contact_tags(contact)
    enrolments = {e["sequence_id"]: e["state"] for e in model.enrolments(contact)}
    return [
        *(f"tag {t}" for t in sorted(want["tags"] - tags)),
        *(f"tag {t} not removed" for t in sorted(want["removed_tags"] & tags)),
        *(f"sequence {s} not started" for s in sorted(want["sequences"]) if not starts.get((contact, s))),
        *(f"sequence {s} not stopped" for s in sorted(want["stopped"]) if enrolments.get(s) != "removed"),
        *(f"action set {a} not run" for a in sorted(want["action_sets"]) if not runs.get((contact, a))),
        *(f"goal {i}/{c} not achieved" for i, c in sorted(want["goals"]) if not goals.get((contact, i, c))),
    ]


def _unanswered_once_only_calls(
    model: Any, event: dict[str, Any], calls: list[dict[str, Any]], first_sent: float, once_only: frozenset[str]
) -> list[str]:
    """Once-only calls (runActionSequence, a goal) between the event's first delivery and its last effect that Keap did
    not apply but whose failure says "may have been delivered" (a 502, a connection dropped before the answer):
    the pipeline records such a step as outcome-unknown and never repeats it."""
    ids = model.find_ids_by_email(event["contact"]["email"])
    times = [_epoch(row["at"]) for cid in ids for row in model.tag_applications(cid)]
    high = max(times, default=first_sent) + 3
    return [
        c["injected"] if c["injected"] != "5xx" else str(c["http_status"])
        for c in calls
        if c["method"] in once_only
        and not c["applied"]
        and first_sent - 1 <= c["at"] <= high
        and (c["injected"] == "drop" or maybe_delivered(c["http_status"]))
    ]


def _read_dead_letters(stack: LocalStack) -> list[DeadLetter]:
    letters = []
    for function in FOLDERS:
        for raw in peek_queue(stack.sqs, stack.dlq_url(function)):
            letters.append(DeadLetter(raw["message_id"], raw["body"], raw["attributes"], raw["system_attributes"]))
    return letters


def maybe_delivered(status: int | None) -> bool:
    """Whether the client reads an HTTP status as "Keap may have acted" (a 502 does; a 503 says it did not)."""
    return bool(status and status >= 400 and error_from_http(status, b"").maybe_delivered)


# Injections after which Keap has applied the call but the client has no answer it can read.
LOST_ANSWERS = {"drop", "malformed"}
# A checkpoint is written within milliseconds of Keap's answer; the emulator stamps effects to the second.
CRASH_WINDOW = (-0.5, 2.0)  # a kill this long before/after the first effect's stamp could fall in between
ANSWER_WINDOW = (-1.0, 1.5)  # a call this long before/after the stamp could be the one that applied it


def _explain(dup: dict[str, Any], kills: list[Kill], calls: list[dict[str, Any]]) -> dict[str, Any]:
    """Why an effect happened twice: a kill right after the first effect (between Keap's answer and the
    checkpoint: a crash window), or the answer to the first call lost after Keap applied it (a dropped
    connection, a garbled body, an answer slower than the read timeout): the event is retried as a transient
    failure and repeats the step."""
    first = dup["times"][0]
    window = [k for k in kills if k.function == dup["function"] and CRASH_WINDOW[0] <= k.at - first <= CRASH_WINDOW[1]]
    lost = [
        c
        for c in calls
        if c["method"] == dup["method"]
        and c["applied"]
        and ANSWER_WINDOW[0] <= c["at"] - first <= ANSWER_WINDOW[1]
        and (c["injected"] in LOST_ANSWERS or c.get("slow"))
    ]
    dup["kills_that_could_have_caused_it"] = len(window)
    dup["lost_answers_that_could_have_caused_it"] = len(lost)
    dup["lost_answer_kinds"] = sorted({"slow" if c.get("slow") else c["injected"] for c in lost})
    dup["cause"] = "crash window" if window else "lost answer after apply" if lost else "unexplained"
    return dup


# Effects that count as duplicates when Keap shows them twice for one contact -> the plan op that makes them.
DUPLICATE_EFFECTS = {
    "sequence started twice": "start_sequence",
    "action set run twice": "run_action_set",
    "goal achieved twice": "achieve_goal",
}
ONCE_ONLY_EFFECTS = frozenset(what for what, op in DUPLICATE_EFFECTS.items() if op in ONCE_ONLY_OPS)


def _effects(model: Any, baseline: dict[str, int]) -> dict[str, dict[tuple[Any, ...], list[float]]]:
    """When each effect happened since the run began, per (contact, thing): sequence starts (a start, not
    `already_active`), action-set runs, goals achieved (by integration and call name)."""
    tables: dict[str, dict[tuple[Any, ...], list[float]]] = {what: defaultdict(list) for what in DUPLICATE_EFFECTS}
    for row in model.sequence_starts():
        if row["seq"] > baseline["starts"] and row["outcome"] in STARTED:
            tables["sequence started twice"][(row["contact_id"], row["sequence_id"])].append(_epoch(row["at"]))
    for row in model.action_set_runs():
        if row["seq"] > baseline["runs"]:
            tables["action set run twice"][(row["contact_id"], row["action_set_id"])].append(_epoch(row["at"]))
    for row in model.goal_runs():
        if row["seq"] > baseline["goals"]:
            key = (row["contact_id"], row["integration"], row["call_name"])
            tables["goal achieved twice"][key].append(_epoch(row["at"]))
    return tables


def _baseline(model: Any) -> dict[str, int]:
    """The last row of each effect table before the run (the seeded contacts' own rows stay out)."""
    return {
        "starts": max((r["seq"] for r in model.sequence_starts()), default=0),
        "runs": max((r["seq"] for r in model.action_set_runs()), default=0),
        "goals": max((r["seq"] for r in model.goal_runs()), default=0),
    }


def _duplicates(
    tables: dict[str, dict[tuple[Any, ...], list[float]]], owners: dict[int, dict[str, Any]], api: Api
) -> list[dict[str, Any]]:
    """Sequences started twice, action sets run twice and goals achieved twice for one contact (tags applied
    twice do not count)."""
    out = []
    for what, op in DUPLICATE_EFFECTS.items():
        for key, times in tables[what].items():
            if len(times) > 1:
                contact, thing = key[0], key[1:] if len(key) > 2 else key[1]
                event = owners.get(contact, {})
                out.append(
                    {
                        "effect": what,
                        "contact": contact,
                        "id": thing,
                        "times": sorted(times),
                        "method": api.logged(op),
                        "event_id": event.get("id"),
                        "function": by_name(event["kind"]).folder if event else "?",
                        "extra": len(times) - 1,
                    }
                )
    return out


# ---------------------------------------------------------------------------------------------------- the run


def run(cfg: RunConfig, log: Any = print) -> Report:
    """Start a stack, send the workload under faults, drain, and read back what happened."""
    check_config(cfg)
    report = Report(config={k: v for k, v in asdict(cfg).items()}, api=cfg.api)
    api = APIS[cfg.api]
    wall = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fault-run-") as tmp:
        routes_file = _routes_with_retired_form(Path(tmp), api)
        routes = load_routes(str(routes_file))
        events, deliveries, seeded = build_workload(cfg)
        report.events = len(events)
        by_email = {event["contact"]["email"]: event for event in events}
        with LocalStack(
            routes_file=routes_file,
            visibility_timeout=cfg.visibility_timeout,
            function_timeout=cfg.function_timeout,
            # The API is pinned: the run counts its calls and effects by the API's own names.
            function_env={"POWERTOOLS_LOG_LEVEL": "WARNING", "KEAP_API": cfg.api},
        ) as stack:
            model = stack.emulator.model
            seed_unsubscribers(stack.emulator, seeded)
            baseline = _baseline(model)

            def function_of(contact: int) -> tuple[str | None, str | None]:
                event = by_email.get((model.get_contact(contact) or {}).get("Email", ""))
                return (by_name(event["kind"]).folder, event["id"]) if event else (None, None)

            log(f"stack up; {len(events)} events, {len(deliveries)} deliveries, {len(seeded)} contacts seeded")
            send_window = max(d.at for d in deliveries)
            start = time.time()
            faults = FaultSchedule(stack, cfg, start, send_window)
            kill_lock = threading.Lock()
            killer = Killer(stack, cfg, start, send_window, kill_lock)
            window_killer = WindowKiller(stack, cfg, start, send_window, function_of, kill_lock)
            faults.start()
            killer.start()
            window_killer.start()
            sender = Sender(stack, cfg)
            paused, next_look = 0.0, 0.0
            with ThreadPoolExecutor(cfg.senders, thread_name_prefix="sender") as pool:
                pending: deque[Future[None]] = deque()
                for delivery in deliveries:
                    if cfg.max_backlog:
                        # Deliveries waiting for a sender are no backlog the queues show: when the senders fall
                        # behind, the schedule waits for them (and moves on by as much), then for the queues.
                        held_from = time.time()
                        while len(pending) >= 2 * cfg.senders:
                            pending.popleft().result()
                        if time.time() >= next_look:
                            _wait_for_backlog(stack, cfg.max_backlog)
                            next_look = time.time() + 1
                        paused += time.time() - held_from
                    wait = start + paused + delivery.at - time.time()
                    if wait > 0:
                        time.sleep(wait)
                    pending.append(pool.submit(sender.deliver, delivery))
                for future in pending:
                    future.result()
            report.sending_paused_seconds = round(paused, 1)
            log(f"sent in {time.time() - start:.0f} s; waiting for the queues to drain")
            killer.halt()
            window_killer.halt()
            if faults.outage and time.time() < faults.outage[1]:
                time.sleep(faults.outage[1] - time.time())
            try:
                stack.wait_drained(drain_timeout(cfg))
            except TimeoutError as exc:
                report.drained = False
                log(f"not drained: {exc}")
            faults.halt()
            log(f"drained {time.time() - start:.0f} s after the first delivery; reading back")

            calls = stack.emulator.calls()
            for call in calls:
                call["slow"] = any(a <= call["at"] < b for a, b in faults.slow)
            letters = _read_dead_letters(stack)
            queued = {
                json.loads(m["body"]).get("id")
                for function in FOLDERS
                for m in peek_queue(stack.sqs, stack.queue_url(function))
            }
            owners = {}
            for event in events:
                for contact in model.find_ids_by_email(event["contact"]["email"]):
                    owners[contact] = event
            tables = _effects(model, baseline)
            duplicates = _duplicates(tables, owners, api)
            first_sent = {}
            for delivery in deliveries:
                first_sent.setdefault(delivery.event["id"], start + delivery.at)
            _account(report, events, routes, api, model, tables, letters, queued, calls, first_sent)
            in_window = [Kill(k.at, k.function, True) for k in window_killer.kills]
            report.duplicate_details = [_explain(d, killer.kills + in_window, calls) for d in duplicates]
            report.kills = len(killer.kills)
            report.kills_mid_batch = sum(1 for k in killer.kills if k.mid_batch)
            report.kills_in_window = len(window_killer.kills)
            report.timeouts_in_window = sum(1 for k in window_killer.kills if k.how == "timeout")
            report.window_kills_missed = window_killer.missed
            report.window_kills_planned = len(window_killer.times)
            _window_outcomes(report, window_killer.kills, tables, letters)
            _count_calls(report, calls, faults)
            report.deliveries = {
                **dict(sender.by_channel),
                "total": len(deliveries),
                "duplicates": sum(1 for d in deliveries if d.copy),
            }
            report.sender_retries = sender.retries
            report.webhooks_never_accepted = len(sender.failed)
    for dup in report.duplicate_details:
        key = {
            "crash window": "duplicates_in_crash_windows",
            "lost answer after apply": "duplicates_after_lost_answers",
        }.get(dup["cause"], "duplicates_unexplained")
        setattr(report, key, getattr(report, key) + dup["extra"])
        report.duplicate_effects += dup["extra"]
        report.duplicate_once_only_effects += dup["extra"] if dup["effect"] in ONCE_ONLY_EFFECTS else 0
    report.wall_seconds = round(time.monotonic() - wall, 1)
    return report


def _account(
    report: Report,
    events: list[dict[str, Any]],
    routes: Any,
    api: Api,
    model: Any,
    tables: dict[str, dict[tuple[Any, ...], list[float]]],
    letters: list[DeadLetter],
    queued: set[str],
    calls: list[dict[str, Any]],
    first_sent: dict[str, float],
) -> None:
    by_event: dict[str, list[DeadLetter]] = defaultdict(list)
    entry_classes: Counter[str] = Counter()
    for letter in letters:
        by_event[letter.event_id].append(letter)
        if not letter.permanent or not letter.attributes.get("ErrorClass"):
            report.dlq_entries_without_permanent_reason += 1
        entry_classes[_letter_class(letter)] += 1
    report.dlq_entries = len(letters)
    report.dlq_entry_classes = dict(entry_classes)
    report.dlq_entries_not_permanent_or_unknown = entry_classes[NEITHER]
    starts, runs = tables["sequence started twice"], tables["action set run twice"]
    goals = tables["goal achieved twice"]
    reasons: Counter[str] = Counter()
    classes: Counter[str] = Counter()
    applied: set[str] = set()
    for event in events:
        want = _expected(event, routes, api)
        report.calls_minimum += want["calls"]
        for method, count in want["methods"].items():
            row = report.calls_by_method.setdefault(method, {"minimum": 0, "clean": 0, "injected": 0})
            row["minimum"] += count
        missing = _missing(model, event, want, starts, runs, goals)
        if not missing:
            applied.add(event["id"])
            report.applied_once += 1
            report.applied_with_stale_dlq_entry += bool(by_event.get(event["id"]))
        elif by_event.get(event["id"]):
            report.dead_lettered += 1
            reasons[str(by_event[event["id"]][0].attributes.get("ErrorClass"))] += 1
            classes[_letter_class(by_event[event["id"]][0])] += 1
        elif event["id"] in queued:
            report.still_queued += 1
        else:
            report.lost += 1
            evidence = _unanswered_once_only_calls(model, event, calls, first_sent[event["id"]], api.once_only)
            only_action_sets = all(m.startswith(("action set", "goal")) for m in missing)
            if only_action_sets and evidence:
                report.lost_to_unknown_outcomes += 1
            report.lost_details.append(
                {
                    "event_id": event["id"],
                    "kind": event["kind"],
                    "missing": missing,
                    "unanswered_once_only_calls": evidence,
                    "cause": "outcome-unknown step never run" if only_action_sets and evidence else "unexplained",
                }
            )
    report.dead_letter_reasons = dict(reasons)
    report.dead_letter_classes = dict(classes)
    with_a_reason = {letter.event_id for letter in letters if _letter_class(letter) != NEITHER}
    report.dlq_entries_not_permanent_or_unknown_details = [
        {
            "event_id": letter.event_id,
            "attributes": dict(letter.attributes),
            # No reason attributes and a receive count at the queue's maxReceiveCount: SQS moved it, not the worker.
            "receive_count": letter.system_attributes.get("ApproximateReceiveCount"),
            "first_received": letter.system_attributes.get("ApproximateFirstReceiveTimestamp"),
            "sent": letter.system_attributes.get("SentTimestamp"),
            "event_applied": letter.event_id in applied,
            "event_dead_lettered_with_a_reason_too": letter.event_id in with_a_reason,
        }
        for letter in letters
        if _letter_class(letter) == NEITHER
    ]


# How a dead letter is judged: a permanent reason, OutcomeUnknown (a person decides), or neither (a failure).
PERMANENT = "permanent reason"
UNKNOWN_ENDED = "OutcomeUnknown: the function ended with the call in flight"
UNKNOWN_LOST = "OutcomeUnknown: the answer was lost"
NEITHER = "neither permanent nor OutcomeUnknown"


def _letter_class(letter: DeadLetter) -> str:
    if letter.outcome_unknown:
        return UNKNOWN_ENDED if FUNCTION_ENDED in str(letter.attributes.get("ErrorMessage", "")) else UNKNOWN_LOST
    return PERMANENT if letter.permanent and letter.attributes.get("ErrorClass") else NEITHER


def _window_outcomes(
    report: Report,
    kills: list[WindowKill],
    tables: dict[str, dict[tuple[Any, ...], list[float]]],
    letters: list[DeadLetter],
) -> None:
    """What became of each event killed in the once-only window: the step ran once (Keap applied it before the
    kill) and the event waits in the DLQ as OutcomeUnknown, or not."""
    unknown = {letter.event_id for letter in letters if _letter_class(letter) == UNKNOWN_ENDED}
    outcomes: Counter[str] = Counter()
    for kill in kills:
        runs = sum(
            len(times) for what in ONCE_ONLY_EFFECTS for key, times in tables[what].items() if key[0] == kill.contact
        )
        kill.outcome = f"{kill.how}: once-only step run {runs} time(s), " + (
            "dead-lettered OutcomeUnknown" if kill.event_id in unknown else "no OutcomeUnknown dead letter"
        )
        outcomes[kill.outcome] += 1
    report.window_kill_outcomes = dict(outcomes)
    report.window_kill_details = [asdict(kill) for kill in kills]


def _count_calls(report: Report, calls: list[dict[str, Any]], faults: FaultSchedule) -> None:
    injected: Counter[str] = Counter()
    outside_outage = transient_outside = 0
    for call in calls:
        kind = "slow answer (read timeout)" if call["slow"] else call["injected"]
        if kind:
            injected[kind] += 1
        in_outage = call["injected"] == "outage"
        if not in_outage:
            outside_outage += 1
            transient_outside += bool(kind and kind != "fault")
    for call in calls:
        row = report.calls_by_method.setdefault(call["method"], {"minimum": 0, "clean": 0, "injected": 0})
        row["injected" if call["injected"] or call["slow"] else "clean"] += 1
    report.calls_made = len(calls)
    report.calls_injected = dict(injected)
    report.calls_clean = sum(1 for c in calls if not c["injected"] and not c["slow"])
    report.transient_share_outside_outage = round(transient_outside / max(1, outside_outage), 3)


# ---------------------------------------------------------------------------------------------------- printing


def render(report: Report) -> str:
    """The figures, as the table in docs/fault-injection.md."""
    return common.render("fault-run.md.j2", r=report, met=meets_targets(report)).rstrip("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = RunConfig()
    for name, help in OPTIONS.items():
        value = getattr(defaults, name)
        nargs = len(value) if isinstance(value, tuple) else None
        kind = DERIVED.get(name) or type(value[0] if nargs else value)
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, nargs=nargs, default=value, help=help)
    parser.add_argument(
        "--api",
        choices=sorted(APIS),
        default=defaults.api,
        help="the Keap API the functions drive: xmlrpc (action sets 21/31) or rest (REST v2, goals 41/42)",
    )
    parser.add_argument("--function-timeout", type=float, default=None, help="seconds (default: the template's)")
    parser.add_argument("--json", type=Path, help="write the report as JSON here")
    parser.add_argument("--render", type=Path, metavar="JSON", help="print a report saved with --json; run nothing")
    args = parser.parse_args(argv)
    if importlib.util.find_spec("jinja2") is None:  # fail now, not after a run of several minutes
        parser.error("the report is rendered with jinja2: `make bench` installs it (pip install -e '.[bench]')")
    if args.render:
        saved = json.loads(args.render.read_text(encoding="utf-8"))
        report = Report(**{f.name: saved[f.name] for f in fields(Report) if f.name in saved})
        print(render(report))
        return 0 if meets_targets(report) else 1
    cfg = RunConfig(
        **{name: tuple(v) if isinstance(v, list) else v for name, v in vars(args).items() if name in OPTIONS},
        function_timeout=args.function_timeout,
        api=args.api,
    )
    try:
        check_config(cfg)
    except ValueError as exc:
        parser.error(str(exc))
    # Killed invocations and refused webhooks are the point of the run; their warnings would drown the report.
    logging.getLogger("keap_relay_local").setLevel(logging.ERROR)
    report = run(cfg, log=lambda line: print(line, file=sys.stderr, flush=True))
    if args.json:  # first: the figures of a long run are kept even if the table cannot be rendered
        args.json.write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")
    print(render(report))
    return 0 if meets_targets(report) else 1


def meets_targets(report: Report) -> bool:
    """The issue's targets: nothing lost, no duplicate effect (kills in the once-only window included), every
    dead letter with a permanent reason or OutcomeUnknown, and calls outside injected failures within 10 % of
    the minimum."""
    return (
        report.drained
        and report.lost == 0
        and report.duplicate_effects == 0
        and report.dlq_entries_without_permanent_reason == 0
        and report.dlq_entries_not_permanent_or_unknown == 0
        and report.clean_ratio <= 1.1
    )


if __name__ == "__main__":
    sys.exit(main())
