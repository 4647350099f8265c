"""Fault injection for the emulator: latency, 5xx, 429, drops, malformed bodies, Keap faults, outages."""

from __future__ import annotations

import random
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

# The emulator's two API surfaces over the one model.
SURFACES = frozenset({"xmlrpc", "rest"})

# Kinds drawn by chance, in the order their rates are stacked on one draw (so they exclude each other).
RATE_KINDS: dict[str, str] = {
    "5xx": "rate_5xx",
    "429": "rate_429",
    "drop": "rate_drop",
    "malformed": "rate_malformed",
    "fault": "rate_fault",
}

# Gateway pages as a proxy in front of a Java backend sends them: HTML, not XML-RPC.
HTML_BODIES: dict[int, bytes] = {
    502: b"<html><head><title>502 Bad Gateway</title></head>"
    b"<body><center><h1>502 Bad Gateway</h1></center></body></html>",
    503: b"<html><head><title>503 Service Temporarily Unavailable</title></head>"
    b"<body><center><h1>503 Service Temporarily Unavailable</h1></center></body></html>",
}
OUTAGE_BODY = (
    b"<html><head><title>503 Service Unavailable</title></head><body><h1>503 Service Unavailable</h1>"
    b"<p>The XML-RPC API is unavailable during a scheduled outage.</p></body></html>"
)


@dataclass
class FaultPlan:
    """What to inject; rates are chances per call (0..1) and must add up to at most 1."""

    latency_ms: int = 0
    rate_5xx: float = 0.0
    rate_429: float = 0.0
    rate_drop: float = 0.0
    drop_after_apply: bool = False
    rate_malformed: float = 0.0
    rate_fault: float = 0.0
    fault: tuple[int, str] = (4, "[DatabaseError]Error returning results")
    methods: set[str] | None = None
    outages: list[tuple[float, float]] = field(default_factory=list)
    seed: int | None = None
    # "xmlrpc" and/or "rest": the surfaces the plan (outages included) applies to; None means both. An
    # XML-RPC brownout is `FaultPlan(outages=[...], surfaces={"xmlrpc"})`.
    surfaces: set[str] | None = None

    def __post_init__(self) -> None:
        rates = [getattr(self, attr) for attr in RATE_KINDS.values()]
        if any(not isinstance(r, int | float) or r < 0 or r > 1 for r in rates):
            raise ValueError("every rate_* is a number between 0 and 1")
        if sum(rates) > 1 + 1e-9:
            raise ValueError("the rate_* values add up to more than 1")
        if not isinstance(self.latency_ms, int | float) or self.latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")
        code, string = self.fault
        if not isinstance(code, int) or not isinstance(string, str):
            raise ValueError("fault is [code, string]")
        self.fault = (code, string)
        if self.methods is not None:
            self.methods = set(self.methods)
        self.outages = [(float(start), float(end)) for start, end in self.outages]
        if any(end <= start for start, end in self.outages):
            raise ValueError("each outage is [start, end] with end after start (epoch seconds)")
        if self.surfaces is not None:
            self.surfaces = set(self.surfaces)
            if not self.surfaces <= SURFACES:
                raise ValueError(f"surfaces are among {sorted(SURFACES)}")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> FaultPlan:
        """Build a plan from JSON values (lists for `fault`, `methods`, `outages`); refuses unknown keys."""
        data = dict(data or {})
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown fault plan fields {sorted(unknown)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ValueError(str(exc)) from None

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready values."""
        out = asdict(self)
        out["fault"] = list(self.fault)
        out["methods"] = sorted(self.methods) if self.methods is not None else None
        out["outages"] = [list(o) for o in self.outages]
        out["surfaces"] = sorted(self.surfaces) if self.surfaces is not None else None
        return out


@dataclass(frozen=True)
class Injection:
    """The decision for one call: what to do instead of (or around) answering normally."""

    kind: str | None = None  # "outage" | "5xx" | "429" | "drop" | "malformed" | "fault" | None
    status: int | None = None  # the HTTP status of a 5xx
    latency_s: float = 0.0
    fault: tuple[int, str] | None = None  # the Keap fault to answer with, for kind "fault"
    after_apply: bool = False  # for kind "drop": apply the call to the model, then lose the answer


class FaultInjector:
    """Draws injections from a FaultPlan with its own seeded random.Random."""

    def __init__(self, plan: FaultPlan | None = None, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.set_plan(plan)

    @property
    def plan(self) -> FaultPlan:
        """The plan in effect."""
        return self._plan

    def set_plan(self, plan: FaultPlan | None) -> None:
        """Change the plan; the random generator restarts from the plan's seed."""
        with self._lock:
            self._plan = plan or FaultPlan()
            self._rng = random.Random(self._plan.seed)

    def reset(self) -> None:
        """Restart the random generator from the plan's seed."""
        self.set_plan(self._plan)

    def decide(self, method: str | None, surface: str = "xmlrpc") -> Injection:
        """What to inject for a call to `method` on `surface` (xmlrpc | rest) now."""
        with self._lock:
            plan = self._plan
            if plan.surfaces is not None and surface not in plan.surfaces:
                return Injection()
            now = self._clock()
            if any(start <= now < end for start, end in plan.outages):
                return Injection("outage", 503)
            if plan.methods is not None and method not in plan.methods:
                return Injection()
            latency = plan.latency_ms / 1000
            draw = self._rng.random()
            edge = 0.0
            for kind, attr in RATE_KINDS.items():
                edge += getattr(plan, attr)
                if draw < edge:
                    status = self._rng.choice((502, 503)) if kind == "5xx" else None
                    return Injection(
                        kind,
                        status,
                        latency,
                        fault=plan.fault if kind == "fault" else None,
                        after_apply=plan.drop_after_apply if kind == "drop" else False,
                    )
            return Injection(None, None, latency)


# ---------------------------------------------------------------- per-contact faults (REST many-contacts calls)


@dataclass
class ContactFault:
    """How the REST many-contacts calls (applyTags, removeTags, a sequence's addContacts / removeContacts)
    answer for one contact: an outcome word instead of its own (`FAILED`, or a word Keap never documented;
    the contact is then left unchanged unless `applied`), or an HTTP status for the whole call whenever it
    lists the contact (`status`, e.g. 400: nothing is applied). `in_groups_only`: a call naming the contact
    alone is answered normally. `times`: how many calls it is used for (None: every one)."""

    outcome: str | None = None
    status: int | None = None
    applied: bool = False
    in_groups_only: bool = False
    times: int | None = None


class ContactFaults:
    """The per-contact faults of one emulator, keyed by contact id (see contact_faults)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[int, ContactFault] = {}

    def set(self, contact_id: int, fault: ContactFault | None) -> None:
        """Give a contact a fault (None takes it away)."""
        with self._lock:
            if fault is None:
                self._faults.pop(contact_id, None)
            else:
                self._faults[contact_id] = fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def decide(self, contact_ids: list[int]) -> tuple[int | None, dict[int, ContactFault]]:
        """For one call listing `contact_ids`: the status refusing the whole call (or None), and the contacts
        whose outcome is replaced, each fault's use counted."""
        with self._lock:
            chosen = {
                cid: fault
                for cid in contact_ids
                if (fault := self._faults.get(cid)) is not None and not (fault.in_groups_only and len(contact_ids) == 1)
            }
            for cid, fault in chosen.items():
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        del self._faults[cid]
            status = next((f.status for f in chosen.values() if f.status is not None), None)
            return status, {cid: f for cid, f in chosen.items() if f.status is None}


_CONTACT_FAULTS: weakref.WeakKeyDictionary[Any, ContactFaults] = weakref.WeakKeyDictionary()
_CONTACT_FAULTS_LOCK = threading.Lock()


def contact_faults(model: Any) -> ContactFaults:
    """The per-contact faults of the emulator whose model is `model` (one set per model, made on first use)."""
    with _CONTACT_FAULTS_LOCK:
        return _CONTACT_FAULTS.setdefault(model, ContactFaults())


# ---------------------------------------------------------------- held answers: the crash window, opened on purpose


@dataclass
class HoldPlan:
    """Answers held back after Keap applied the call, so a caller can be ended before it hears of it.

    Of the calls to `methods` that Keap applies with no other injection, a `share` (at most `limit` in all;
    None: no limit) is answered only when released, or after `max_hold_s`. Separate from the FaultPlan, which
    fault runs re-draw every few seconds: a hold is armed by the run that will end the caller.
    """

    methods: frozenset[str]
    share: float = 1.0
    limit: int | None = None
    max_hold_s: float = 10.0
    seed: int | None = None

    def __post_init__(self) -> None:
        self.methods = frozenset(self.methods)
        if not 0 <= self.share <= 1:
            raise ValueError("share is a number between 0 and 1")
        if self.max_hold_s <= 0:
            raise ValueError("max_hold_s must be > 0")


@dataclass
class HeldAnswer:
    """One applied call whose answer waits; `release()` sends it (to whoever still listens)."""

    method: str
    surface: str
    params: Any  # the XML-RPC params (a tuple) or the REST JSON body
    at: float
    max_hold_s: float
    released: threading.Event = field(default_factory=threading.Event, repr=False)

    def release(self) -> None:
        self.released.set()

    def wait(self) -> float:
        """Block until released, or for the plan's longest hold; the seconds held."""
        started = time.monotonic()
        self.released.wait(self.max_hold_s)
        return round(time.monotonic() - started, 3)


class AnswerHolder:
    """Decides which applied calls are held (HoldPlan) and tells a listener; the caller then waits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plan: HoldPlan | None = None
        self._listener: Callable[[HeldAnswer], None] | None = None
        self._rng = random.Random()
        self._held = 0

    def set_plan(self, plan: HoldPlan | None, on_hold: Callable[[HeldAnswer], None] | None = None) -> None:
        """Arm (or with None, disarm) the holds; `on_hold` is called on the emulator's thread: keep it short."""
        with self._lock:
            self._plan, self._listener, self._held = plan, on_hold, 0
            self._rng = random.Random(plan.seed if plan else None)

    def hold(self, method: str | None, surface: str, params: Callable[[], Any], now: float) -> HeldAnswer | None:
        """Whether this applied call's answer is held; if so the listener has been told, and the caller waits."""
        with self._lock:
            plan = self._plan
            if plan is None or method not in plan.methods or (plan.limit is not None and self._held >= plan.limit):
                return None
            if self._rng.random() >= plan.share:
                return None
            self._held += 1
            listener = self._listener
        held = HeldAnswer(method, surface, params(), now, plan.max_hold_s)
        if listener is not None:
            listener(held)
        return held
