"""Applying the events of one batch together: each event's own first call, then one call per target for all."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Future, wait
from dataclasses import dataclass, field, fields
from typing import Any

from ..keap.rest import outcome_done
from .plan import Call, Plan
from .runner import (
    HELD,
    ONCE_ONLY_OPS,
    Checkpoints,
    NoCheckpoints,
    RunResult,
    SequenceFailed,
    SequenceRunner,
    StepResult,
    already_held,
    completed_steps,
    failure_of,
    held_of,
    step_key,
)

STEP_FIELDS = tuple(f.name for f in fields(StepResult) if f.name != "key")
# HTTP statuses of a grouped call that say nothing about which contact is at fault: the key or the quota,
# the same for every contact. Any other 4xx for a group is split into one-contact calls.
_NOT_ABOUT_A_CONTACT = frozenset({401, 403, 429})


@dataclass
class BatchItem:
    """One event of a batch: its plan, where its steps are recorded, and whether uncertain steps run again."""

    plan: Plan
    checkpoints: Checkpoints = field(default_factory=NoCheckpoints)
    rerun_uncertain: bool = False


@dataclass
class _Event:
    """An event's state while its batch runs."""

    item: BatchItem
    done: dict[str, Any]
    result: RunResult
    deferred: dict[str, Any] = field(default_factory=dict)
    first: StepResult | None = None
    steps: dict[str, StepResult] = field(default_factory=dict)  # step key -> result, in plan order
    held: dict[int, Mapping[str, frozenset[int]]] = field(default_factory=dict)  # by its first call's answer


@dataclass(frozen=True)
class _Member:
    """One contact of one event in a grouped call."""

    event: _Event
    contact_id: int
    call: Call

    @property
    def key(self) -> str:
        return step_key(self.contact_id, self.call)


# What a grouped call's answer means for each of its contacts. Keap's answers are weak, so the reading is
# written down here, row by row (tests/unit/test_batch_outcomes.py pins it):
#   "done"      a 2xx whose outcome for the contact is a clear success, or that does not name it (a 2xx
#               without a body, as removeTags answers, means all applied): the step is done.
#   "alone"     any other outcome (FAILED, CONTACT_DOES_NOT_EXIST, a word Keap never documented): the contact
#               is called again alone, and that answer decides its step (keap.rest.outcome_error).
#   "split"     a 4xx for the whole group, when the group has more than one contact: one bad contact must
#               not fail the others, so each is called alone and its own answer decides.
#   "failed"    anything else (a 401/403/429, a 5xx, a lost answer, a 4xx for a group of one): every
#               contact's step failed with that error; transient ones are retried with their event.
ANSWER_ACTIONS: Mapping[str, str] = {"done": "done", "unclear": "alone", "group-4xx": "split", "error": "failed"}


def read_answer(outcome: str | None = None, error: BaseException | None = None, group_size: int = 1) -> str:
    """The row of ANSWER_ACTIONS that a contact's outcome (or the group's error) falls in."""
    if error is None:
        return "done" if outcome_done(outcome) else "unclear"
    status = getattr(error, "http_status", None)
    if group_size > 1 and status is not None and 400 <= status < 500 and status not in _NOT_ABOUT_A_CONTACT:
        return "group-4xx"
    return "error"


class BatchRunner:
    """Runs the plans of one batch against the port of a SequenceRunner (its pool, its step calls).

    First calls (upserts, lookups) are one per event; two events for one email run one after the other, so
    Keap's duplicate check sees the first contact before the second upsert. Follow-ups the API can apply to
    many contacts (port.many_contacts()) become one call per (operation, target) for all the batch's
    contacts; the rest (once-only goals and action sets, updates, opt-outs) stay one call per step, as in a
    run of one event. Each event's steps are its own: checkpointed under the same keys as a run of one, so a
    redelivery resumes after them alone or in another batch.
    """

    def __init__(self, runner: SequenceRunner) -> None:
        self.runner = runner

    @property
    def keap(self) -> Any:
        return self.runner.keap

    def run(self, items: list[BatchItem]) -> list[RunResult | SequenceFailed]:
        """Each item's RunResult, or the SequenceFailed naming its failed step, in the items' order."""
        if len(items) == 1:  # a batch of one is a run of one, exactly as before batching
            return [self._alone(items[0])]
        events = [self._start(item) for item in items]
        grouped = self.keap.many_contacts()
        self.keap.expect_calls(self._expected(events, grouped))
        try:
            self._first_calls(events)
            self._follow_ups([e for e in events if e.result.contact_ids], grouped)
        finally:
            for event in events:
                if event.deferred:
                    event.item.checkpoints.record_many(event.deferred)
        return [self._finish(event) for event in events]

    def _alone(self, item: BatchItem) -> RunResult | SequenceFailed:
        try:
            return self.runner.run(item.plan, item.checkpoints, rerun_uncertain=item.rerun_uncertain)
        except SequenceFailed as failed:
            return failed

    @staticmethod
    def _start(item: BatchItem) -> _Event:
        done = completed_steps(item.checkpoints, item.rerun_uncertain)
        plan = item.plan
        return _Event(item, done, RunResult(plan.kind, plan.event_id, "applied", rules=list(plan.rules)))

    @staticmethod
    def _expected(events: list[_Event], grouped: Mapping[str, Any]) -> int:
        resumed = sum(e.item.plan.first.op in e.done for e in events)
        return expected_calls([e.item.plan for e in events], grouped) - resumed

    # ------------------------------------------------------------------ first calls

    def _first_calls(self, events: list[_Event]) -> None:
        chains: dict[str, list[_Event]] = {}
        for event in events:
            chains.setdefault(_identity(event.item.plan.first), []).append(event)
        self._all([(self._chain, (chain,)) for chain in chains.values()])

    def _chain(self, chain: list[_Event]) -> None:
        for event in chain:
            plan = event.item.plan
            first = self.runner._call(
                plan.first, None, plan.first.op, event.done, event.item.checkpoints, event.deferred
            )
            event.first = first
            event.held = held_of(first)
            event.result.steps.append(first)
            if first.status != "failed":
                ids = first.result if isinstance(first.result, list) else [first.result]
                event.result.contact_ids = [int(i) for i in ids]
                if not event.result.contact_ids:
                    event.result.note = "no contact has this email; nothing to do"

    # ------------------------------------------------------------------ follow-ups

    def _follow_ups(self, events: list[_Event], grouped: Mapping[str, Any]) -> None:
        groups: dict[tuple[str, tuple[Any, ...]], list[_Member]] = {}
        singles: list[_Member] = []
        for event in events:
            for cid in event.result.contact_ids:
                for call in event.item.plan.follow_ups:
                    member = _Member(event, cid, call)
                    event.steps[member.key] = None  # type: ignore[assignment]  # keeps the plan's order
                    if (
                        member.key in event.done
                        or call.op in ONCE_ONLY_OPS
                        or call.op not in grouped
                        or already_held(call, event.held.get(cid, {}))  # skipped alone, so the group leaves it out
                    ):
                        singles.append(member)
                    else:
                        groups.setdefault((call.op, call.args), []).append(member)
        tasks: list[tuple[Callable[..., None], tuple[Any, ...]]] = [(self._single, (m,)) for m in singles]
        tasks += [(self._group, (grouped[op], members)) for (op, _), members in groups.items()]
        self._all(tasks)

    def _single(self, member: _Member) -> None:
        event = member.event
        step = self.runner._call(
            member.call,
            member.contact_id,
            member.key,
            event.done,
            event.item.checkpoints,
            event.deferred,
            event.held.get(member.contact_id),
        )
        event.steps[member.key] = step

    def _group(self, many: Callable[..., dict[int, str]], members: list[_Member]) -> None:
        """One call for every contact of the group; each member's step read from its contact's outcome."""
        call = members[0].call
        contact_ids = list(dict.fromkeys(m.contact_id for m in members))
        started = time.perf_counter()
        outcomes: dict[int, str] = {}
        error: BaseException | None = None
        try:
            outcomes = many(contact_ids, *call.args)
        except Exception as exc:  # read per contact below (split, or failed for all)
            error = exc
        ms = round((time.perf_counter() - started) * 1000, 1)
        alone: dict[int, list[_Member]] = {}
        for member in members:
            row = read_answer(outcomes.get(member.contact_id), error, len(contact_ids))
            action = ANSWER_ACTIONS[row]
            if action in ("alone", "split"):
                alone.setdefault(member.contact_id, []).append(member)
            else:
                self._grouped_step(member, outcomes.get(member.contact_id, "SUCCESS"), error, ms)
        for same_contact in alone.values():
            self._single(same_contact[0])  # the one-contact call; its answer decides
            for twin in same_contact[1:]:  # another event of the batch for the same contact: same answer
                self._copy(same_contact[0], twin)

    def _grouped_step(self, member: _Member, outcome: str, error: BaseException | None, ms: float) -> None:
        event, call = member.event, member.call
        step = StepResult(
            key=member.key,
            call=self.keap.call_names.get(call.op, call.op),
            args=[member.contact_id, *call.args],
            status="ok",
            contact_id=member.contact_id,
            ms=ms,
        )
        if error is None:
            step.result = outcome
            event.deferred[member.key] = outcome
        else:
            step.status = "failed"
            step.error_class, step.error, step.transient = failure_of(error)
            step._cause = error  # type: ignore[attr-defined]
        event.steps[member.key] = step

    @staticmethod
    def _copy(source: _Member, twin: _Member) -> None:
        done = source.event.steps[source.key]
        step = StepResult(**{name: getattr(done, name) for name in STEP_FIELDS}, key=twin.key)
        if hasattr(done, "_cause"):
            step._cause = done._cause  # type: ignore[attr-defined]
        if step.status in ("ok", HELD):
            twin.event.deferred[twin.key] = step.result
        twin.event.steps[twin.key] = step

    # ------------------------------------------------------------------ the rest

    def _all(self, tasks: list[tuple[Callable[..., None], tuple[Any, ...]]]) -> None:
        """Run tasks on the runner's pool (the calling thread makes the last one); wait for every one."""
        if not tasks:
            return
        pool = self.runner._executor()
        futures: list[Future[None]] = [pool.submit(fn, *args) for fn, args in tasks[:-1]]
        try:
            fn, args = tasks[-1]
            fn(*args)
        finally:
            wait(futures)
        for future in futures:
            future.result()

    @staticmethod
    def _finish(event: _Event) -> RunResult | SequenceFailed:
        result = event.result
        if event.first is not None and event.first.status == "failed":
            result.status = "failed"
            return SequenceFailed(event.first, event.first._cause, result)  # type: ignore[attr-defined]
        steps = list(event.steps.values())
        result.steps.extend(steps)
        failed = sorted((s for s in steps if s.status in ("failed", "uncertain")), key=lambda s: bool(s.transient))
        if failed:
            result.status = "failed"
            return SequenceFailed(failed[0], failed[0]._cause, result)  # type: ignore[attr-defined]
        return result


def expected_calls(plans: list[Plan], grouped: Collection[str]) -> int:
    """Keap calls a batch of these plans makes when applied together, for the shared budget to book at once
    (one contact an event assumed; `grouped`: the operations the API applies to many contacts a call)."""
    targets = {(c.op, c.args) for p in plans for c in p.follow_ups if c.op in grouped and c.op not in ONCE_ONLY_OPS}
    singles = sum(c.op not in grouped or c.op in ONCE_ONLY_OPS for p in plans for c in p.follow_ups)
    return len(plans) + len(targets) + singles


def _identity(first: Call) -> str:
    """Who an event's first call is about: its email, so two events for one address never run at once."""
    fields = first.args[0] if first.args and isinstance(first.args[0], dict) else {}
    email = fields.get("Email") if fields else (first.args[0] if first.args else "")
    return str(email or id(first)).strip().lower()
