"""The sequence runner: the first call, then every follow-up at once (bounded), each step reported."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Protocol

from .plan import Call, Plan

if TYPE_CHECKING:  # the port pulls in the Keap clients, which the webhook path never needs
    from .keap_port import KeapPort

DEFAULT_CONCURRENCY = 4
# Port operations Keap would apply twice if repeated (an action set's actions, a goal's automation).
# Before one is called, an intent is recorded; its result replaces the intent once Keap answers. A step found
# with its intent alone (the function was killed or timed out while Keap had the call), or whose answer was
# lost, is `uncertain` and never repeated: the event goes to the DLQ for a person to check Keap, and only a
# redrive of it runs the step again.
ONCE_ONLY_OPS: frozenset[str] = frozenset({"run_action_set", "achieve_goal"})
UNCERTAIN = "outcome-unknown"
# An intent is an uncertain record written before the call: found on a redelivery, the call's outcome is unknown.
INTENT: dict[str, Any] = {UNCERTAIN: True, "intent": True}
# Replaces an intent when the call certainly never reached Keap (refused, throttled): a retry may run it.
NOT_RUN = "not-run"


# Follow-ups not called for a contact that, by its own upsert's answer, already holds what they would add:
# port operation -> what of the contact's it adds (a key of Upserted.held). Keap would answer ALREADY_APPLIED,
# and the call would spend quota for nothing. Only tags: no upsert answer names a contact's sequences.
SKIP_WHEN_HELD: Mapping[str, str] = {"apply_tag": "tags"}
# The status of a step skipped so, and what is checkpointed for it: a redelivery resumes it, as any done step.
HELD = "held"
HELD_RECORD: dict[str, Any] = {HELD: True}


@dataclass(frozen=True)
class Upserted:
    """A port's upsert answer: the contact's id, and what the API's answer says the contact already holds.

    `held`: kind ("tags") -> ids; a kind left out is unknown, and nothing of it is skipped. The runner also
    takes a plain id (the dry run's port, test doubles): then nothing is known either.
    """

    contact_id: int
    held: Mapping[str, frozenset[int]] = field(default_factory=dict)


def already_held(call: Call, held: Mapping[str, frozenset[int]]) -> bool:
    """Whether the follow-up `call` would add what its contact holds already, by the contact's upsert answer."""
    kind = SKIP_WHEN_HELD.get(call.op)
    return kind is not None and kind in held and int(call.args[0]) in held[kind]


def held_of(first: StepResult) -> dict[int, Mapping[str, frozenset[int]]]:
    """Contact id -> what it holds, as the first call's own answer told it (empty: not told, or resumed)."""
    return getattr(first, "_held", {})


# The error class of a once-only step whose answer was lost: it travels in dead letters (ErrorClass) for up to
# 14 days and decides whether a redrive may run the step again, so its value never changes.
OUTCOME_UNKNOWN = "OutcomeUnknown"


class OutcomeUnknown(Exception):
    """Keap's answer to a once-only step was lost: it may or may not have run. Permanent: a person decides."""

    transient = False


class Checkpoints(Protocol):
    """Where completed steps of one event are recorded, so a retry resumes after them."""

    def completed(self) -> dict[str, Any]: ...
    def record(self, key: str, result: Any) -> None: ...
    def record_many(self, results: dict[str, Any]) -> None: ...


class NoCheckpoints:
    """Every retry runs every step again (all steps in the default plans are safe to repeat but action sets)."""

    def completed(self) -> dict[str, Any]:
        return {}

    def record(self, key: str, result: Any) -> None:
        return None

    def record_many(self, results: dict[str, Any]) -> None:
        return None


@dataclass
class StepResult:
    """What one step called and what came back."""

    key: str
    call: str
    args: list[Any]
    # ok | failed | resumed (done by an earlier attempt) | uncertain (answer lost; not repeated)
    # | held (not called: the contact's upsert answer says it holds the tag already)
    status: str
    contact_id: int | None = None
    result: Any = None
    error_class: str | None = None
    error: str | None = None
    transient: bool | None = None
    ms: float | None = None


@dataclass
class RunResult:
    """The account of one event's run."""

    kind: str
    event_id: str
    status: str  # applied | failed
    contact_ids: list[int] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    steps: list[StepResult] = field(default_factory=list)
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        # Field by field: dataclasses.asdict deep-copies every step's args and result, which cost ~60 µs an
        # event for nothing (bench/bench_pipeline.py --profile); the lists are fresh, the values plain data.
        data = {name: getattr(self, name) for name in _RUN_FIELDS}
        data["contact_ids"], data["rules"] = list(self.contact_ids), list(self.rules)
        data["steps"] = [
            {**{name: getattr(s, name) for name in _STEP_FIELDS}, "args": list(s.args)} for s in self.steps
        ]
        return data


_RUN_FIELDS = tuple(f.name for f in fields(RunResult))
_STEP_FIELDS = tuple(f.name for f in fields(StepResult))


class SequenceFailed(Exception):
    """A step failed; carries the step, the cause and the partial result."""

    def __init__(self, step: StepResult, cause: BaseException, result: RunResult) -> None:
        self.step = step
        self.cause = cause
        self.result = result
        failed = [s for s in result.steps if s.status in ("failed", "uncertain")]
        # Retrying helps only if every failure was transient; one permanent failure will recur.
        self.transient = bool(failed) and all(s.transient for s in failed)
        super().__init__(f"step {step.key} ({step.call}) failed: {step.error_class}: {step.error}")


def _is_uncertain(result: Any) -> bool:
    return isinstance(result, dict) and result.get(UNCERTAIN) is True


def _not_run(result: Any) -> bool:
    return isinstance(result, dict) and result.get(NOT_RUN) is True


def step_key(contact_id: int, call: Call) -> str:
    """A follow-up's step key within its event (results, checkpoints): the same alone or in a batch."""
    return f"{contact_id}/{call.key}"


def completed_steps(checkpoints: Checkpoints, rerun_uncertain: bool = False) -> dict[str, Any]:
    """What an earlier attempt recorded as done: not-run intents dropped, uncertain ones too on a redrive."""
    done = {key: value for key, value in checkpoints.completed().items() if not _not_run(value)}
    if rerun_uncertain:
        done = {key: value for key, value in done.items() if not _is_uncertain(value)}
    return done


def failure_of(exc: BaseException) -> tuple[str, str, bool]:
    """(ErrorClass, message, transient). Keap errors that share a class carry their dead-letter name."""
    return getattr(exc, "error_class", None) or type(exc).__name__, str(exc), bool(getattr(exc, "transient", False))


class SequenceRunner:
    """Runs plans against a KeapPort; one runner (and its small thread pool) per container."""

    def __init__(self, keap: KeapPort, max_concurrency: int = DEFAULT_CONCURRENCY) -> None:
        self.keap = keap
        self.max_concurrency = max(1, max_concurrency)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="keap-step")
            return self._pool

    @staticmethod
    def _uncertain(step: StepResult, lost: str) -> StepResult:
        step.status, step.transient, step.error_class = "uncertain", False, OUTCOME_UNKNOWN
        step.error = (
            f"Keap's answer to {step.call} was lost ({lost}): it may or may not have run. Check the "
            "contact in Keap; redrive this event to run the step, purge it if the step ran"
        )
        step._cause = OutcomeUnknown(step.error)  # type: ignore[attr-defined]
        return step

    def _call(
        self,
        call: Call,
        contact_id: int | None,
        key: str,
        done: dict[str, Any],
        checkpoints: Checkpoints,
        deferred: dict[str, Any] | None = None,
        held: Mapping[str, frozenset[int]] | None = None,
    ) -> StepResult:
        """One step: resumed from `done`, skipped when its contact holds what it adds (`held`), else called."""
        name = self.keap.call_names.get(call.op, call.op)
        args = [contact_id, *call.args] if contact_id is not None else list(call.args)
        step = StepResult(key=key, call=name, args=args, status="ok", contact_id=contact_id)
        if key in done:
            step.result = done[key]
            if _is_uncertain(step.result):
                lost = step.result.get("error_class") or "the function ended before its answer was recorded"
                return self._uncertain(step, str(lost))
            step.status = "resumed"
            return step
        if held and already_held(call, held):
            step.status, step.result = HELD, dict(HELD_RECORD)
            if deferred is not None:
                deferred[key] = step.result
            else:
                checkpoints.record(key, step.result)
            return step
        once_only = call.op in ONCE_ONLY_OPS
        if once_only:
            # Recorded before Keap hears of it: a kill or timeout from here on leaves the intent, and a
            # redelivery finds it instead of calling again. A store error here raises: Keap is not called.
            checkpoints.record(key, dict(INTENT))
        started = time.perf_counter()
        try:
            answer = getattr(self.keap, call.op)(*args)
            if isinstance(answer, Upserted):
                # The id is the step's result (checkpointed, as a plain id always was); what the contact holds
                # stays with this run, so a thread running another event never reads it.
                answer, step._held = answer.contact_id, {answer.contact_id: answer.held}  # type: ignore[attr-defined]
            step.result = answer
        except Exception as exc:  # every failure is reported per step, then classified by the caller
            step.error_class, step.error, step.transient = failure_of(exc)
            step.ms = round((time.perf_counter() - started) * 1000, 1)
            if once_only and getattr(exc, "maybe_delivered", False):
                # Keap may have run it: a retry could run it twice, so it is recorded and left to a person.
                step.result = {UNCERTAIN: True, "error_class": step.error_class}
                checkpoints.record(key, step.result)
                return self._uncertain(step, step.error_class)
            if once_only:
                checkpoints.record(key, {NOT_RUN: True})  # it never reached Keap: a retry may run it
            step.status = "failed"
            step._cause = exc  # type: ignore[attr-defined]
            return step
        step.ms = round((time.perf_counter() - started) * 1000, 1)
        if deferred is not None and not once_only:
            deferred[key] = step.result  # safe to repeat: recorded with the others, in one write
        else:
            checkpoints.record(key, step.result)
        return step

    def run(self, plan: Plan, checkpoints: Checkpoints | None = None, rerun_uncertain: bool = False) -> RunResult:
        """Run a plan; return its result or raise SequenceFailed with the partial result.

        `rerun_uncertain` runs again the steps whose outcome was unknown (a person redrove the event).
        """
        checkpoints = checkpoints or NoCheckpoints()
        done = completed_steps(checkpoints, rerun_uncertain)
        result = RunResult(plan.kind, plan.event_id, "applied", rules=list(plan.rules))
        if plan.first.op not in done:  # most events touch one contact: the first call and its follow-ups
            self.keap.expect_calls(1 + len(plan.follow_ups))
        # Steps safe to repeat (the upsert or lookup, tags, sequences) are checkpointed together once the
        # follow-ups are done, in one write, not one each: a crash before that write only repeats harmless
        # calls (the upsert finds the contact it made). Once-only steps are written at once.
        deferred: dict[str, Any] = {}
        steps: list[StepResult] = []
        try:
            first = self._call(plan.first, None, plan.first.op, done, checkpoints, deferred)
            result.steps.append(first)
            if first.status == "failed":
                result.status = "failed"
                raise SequenceFailed(first, first._cause, result)  # type: ignore[attr-defined]
            ids = first.result if isinstance(first.result, list) else [first.result]
            result.contact_ids = [int(i) for i in ids]
            if not result.contact_ids:
                result.note = "no contact has this email; nothing to do"
                return result
            held = held_of(first)
            tasks = [(call, cid) for cid in result.contact_ids for call in plan.follow_ups]
            self.keap.expect_calls(
                sum(
                    step_key(cid, call) not in done and not already_held(call, held.get(cid, {})) for call, cid in tasks
                )
            )
            if len(tasks) == 1:
                call, cid = tasks[0]
                steps = [self._call(call, cid, step_key(cid, call), done, checkpoints, deferred, held.get(cid))]
            elif tasks:
                pool = self._executor()
                # The calling thread would only wait: when every follow-up fits within the bound, it makes the
                # last call itself, one thread hand-off less per event (bench/bench_pipeline.py measures it).
                inline = tasks[-1] if len(tasks) <= self.max_concurrency else None
                futures = [
                    pool.submit(self._call, call, cid, step_key(cid, call), done, checkpoints, deferred, held.get(cid))
                    for call, cid in (tasks[:-1] if inline else tasks)
                ]
                last: list[StepResult] = []
                try:
                    if inline:
                        call, cid = inline
                        last.append(
                            self._call(call, cid, step_key(cid, call), done, checkpoints, deferred, held.get(cid))
                        )
                finally:
                    wait(futures)  # never leave follow-ups running behind a result, even a failed one
                steps = [future.result() for future in futures] + last
        finally:
            if deferred:
                checkpoints.record_many(deferred)
        result.steps.extend(steps)
        # A permanent failure names the event's failure: it decides where the event goes (the DLQ).
        failed = sorted(
            (step for step in steps if step.status in ("failed", "uncertain")), key=lambda step: bool(step.transient)
        )
        if failed:
            result.status = "failed"
            raise SequenceFailed(failed[0], failed[0]._cause, result)  # type: ignore[attr-defined]
        return result
