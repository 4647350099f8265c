"""One function's pipeline, built once per container: validate, plan and run an event once; hand each trigger on."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..events.canonical import EventInvalid, validate_event
from ..routing.routes import RoutesError, load_routes
from . import idempotency, observe, webhooks, worker
from .config import ConfigError, Settings
from .invocation import Invocation, trigger_of
from .queue import EventFailed, Failure, Replay
from .worker import Delivery

if TYPE_CHECKING:  # the planner and runner are the worker path's: a webhook is answered without them
    from ..routing.runner import SequenceFailed, SequenceRunner

log = logging.getLogger("keap_relay.pipeline")


# trigger -> the path that answers it: (pipeline, event, invocation) -> the invocation's result
PATHS: dict[str, Callable[[Pipeline, Any, Invocation], dict[str, Any]]] = {
    "sqs": worker.on_sqs,
    "http": webhooks.on_http,
    "eventbridge": worker.on_eventbridge,
    "direct": worker.on_direct,
}


class Pipeline:
    """Built once per container and shared by its invocations; everything heavy (client, routes, validators)
    on first use. What belongs to one invocation is passed to it (see invocation.Invocation)."""

    def __init__(self, kind: str, settings: Settings | None = None, runner: SequenceRunner | None = None) -> None:
        self.kind = kind
        self._settings = settings
        self._runner = runner
        self._idempotency: idempotency.Idempotency | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.from_env(self.kind)
        return self._settings

    @property
    def runner(self) -> SequenceRunner:
        if self._runner is None:
            from ..routing.runner import SequenceRunner

            settings = self.settings
            # The routes check: a rule the chosen API cannot run fails here, before any call, naming the rule.
            load_routes(settings.routes_file, settings.keap_api)
            shared = None
            if settings.keap_rate_limit and settings.idempotency_table:
                from .budget import SharedBudget

                shared = SharedBudget(settings.idempotency_table, settings.keap_rate_limit)
            port = settings.keap_port(shared)
            # Keap calls, 429s and the quota left, reported per invocation.
            observe.watch_keap(getattr(port, "client", None), self.kind)
            self._runner = SequenceRunner(port, settings.keap_concurrency)
        return self._runner

    @property
    def idempotency(self) -> idempotency.Idempotency | None:
        """Once-only application per event key, when IDEMPOTENCY_TABLE is set."""
        if self._idempotency is None and self.settings.idempotency_table:
            keep = idempotency.keep_seconds(self.settings.max_event_age_seconds)
            timeout = self.settings.function_timeout_seconds
            self._idempotency = idempotency.Idempotency(self.settings.idempotency_table, keep, timeout)
        return self._idempotency

    def process(
        self,
        event: Any,
        attempts: int = 1,
        *,
        context: Any = None,
        rerun_uncertain: bool = False,
        replay: Replay | None = None,
    ) -> dict[str, Any]:
        """Validate, plan and run one canonical event once; raise EventFailed with the reason on failure.

        A duplicate of an event already applied returns the first result and calls Keap zero times.
        `context` is the invocation's Lambda context; `rerun_uncertain` runs again the steps whose outcome
        was unknown (a person checked Keap and redrove the event); `replay` is the replay that sent the event
        (`keap-relay replay`): it runs the plan's replayed parts, once per replay name.
        """
        [outcome] = self.process_batch([Delivery(event, attempts, rerun_uncertain, replay)], context=context)
        if isinstance(outcome, EventFailed):
            raise outcome
        return outcome

    def process_batch(self, deliveries: list[Delivery], *, context: Any = None) -> list[dict[str, Any] | EventFailed]:
        """Apply the events of one batch together, each once: its result, or the EventFailed saying why not.

        Each event is validated and planned alone; the batch's keys are claimed and its checkpoints read at
        once, the plans run together (routing/batch.py: one Keap call per tag or sequence for all contacts,
        where the API can), then the outcomes are recorded at once. A second delivery of an event in the same
        batch is applied once: it gets its twin's result (or, if the twin failed, nothing: the twin carries
        the event on).
        """
        outcomes: list[dict[str, Any] | EventFailed | None] = [None] * len(deliveries)
        wheres = [self._where(d) for d in deliveries]
        valid: dict[int, dict[str, Any]] = {}
        twins: dict[int, int] = {}  # a second delivery in the batch -> the first
        first_of: dict[str, int] = {}
        for i, delivery in enumerate(deliveries):
            try:
                event = validate_event(delivery.event, self.kind)
            except EventInvalid as exc:
                outcomes[i] = EventFailed(Failure.permanent("EventInvalid", str(exc), "validate", **wheres[i]))
                continue
            key = idempotency.event_key(event, _name(deliveries[i].replay))
            if key in first_of:
                twins[i] = first_of[key]
                continue
            first_of[key] = i
            valid[i] = event
        if valid:
            try:
                self._apply(valid, deliveries, wheres, outcomes, context)
            except (RoutesError, ConfigError) as exc:
                transient = bool(getattr(exc, "transient", False))
                for i in valid:
                    failure = Failure(
                        error_class=type(exc).__name__,
                        message=str(exc),
                        step="configure",
                        transient=transient,
                        **wheres[i],
                    )
                    outcomes[i] = EventFailed(failure)
        for i, first in twins.items():
            twin = outcomes[first]
            outcomes[i] = twin if isinstance(twin, dict) else {"status": "duplicate", "event_id": wheres[i]["event_id"]}
        return [outcome if outcome is not None else {} for outcome in outcomes]

    def _apply(
        self,
        valid: dict[int, dict[str, Any]],
        deliveries: list[Delivery],
        wheres: list[dict[str, Any]],
        outcomes: list[Any],
        context: Any,
    ) -> None:
        """Claim, run and record the valid events of a batch; their outcomes go in `outcomes`."""
        from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

        from ..routing.batch import BatchItem, BatchRunner
        from ..routing.plan import plan
        from ..routing.runner import SequenceFailed

        routes = load_routes(self.settings.routes_file, self.settings.keap_api)  # loaded once per container
        runner = self.runner
        indexes = list(valid)
        plans = {i: _planned(plan(valid[i], routes), deliveries[i].replay) for i in indexes}
        once = self.idempotency
        claims = None
        if once is not None:
            booking = self._booking(runner, list(plans.values()))
            replays = [_name(deliveries[i].replay) for i in indexes]
            claims = once.claim([valid[i] for i in indexes], context, booking, replays)
        items: list[BatchItem] = []
        running: list[int] = []
        granted: list[Any] = []  # the claims of the running events, in their order
        for n, i in enumerate(indexes):
            claim = claims[n] if claims is not None else None
            if claim is not None and claim.result is not None:  # applied before: its first result, no Keap call
                outcomes[i] = claim.result
                observe.count("EventsApplied", self.kind)
            elif claim is not None and claim.error is not None:
                if isinstance(claim.error, IdempotencyAlreadyInProgressError):
                    # Another delivery of the same event is being applied right now: try again after it.
                    message = "another delivery of this event is being applied"
                    outcomes[i] = EventFailed(Failure.retryable("InProgress", message, "idempotency", **wheres[i]))
                else:
                    failure = Failure.retryable("IdempotencyStoreError", str(claim.error), "idempotency", **wheres[i])
                    outcomes[i] = EventFailed(failure)
            else:
                item = BatchItem(plans[i], rerun_uncertain=deliveries[i].rerun_uncertain)
                if claim is not None:
                    granted.append(claim)
                    if claim.checkpoints is not None:
                        item.checkpoints = claim.checkpoints
                items.append(item)
                running.append(i)
        if not items:
            return
        try:
            results = BatchRunner(runner).run(items)
        except Exception as exc:  # not a step's failure (a store error, a bug): each claim is let go again
            if once is not None and granted:
                once.finish(granted, [exc] * len(granted))
            raise
        ran = [(r.to_dict() if not isinstance(r, SequenceFailed) else r) for r in results]
        if once is not None and granted:
            try:
                once.finish(granted, ran)
            except Exception as exc:
                for i in running:
                    failure = Failure.retryable("IdempotencyStoreError", str(exc), "idempotency", **wheres[i])
                    outcomes[i] = EventFailed(failure)
                return
        for i, result in zip(running, ran, strict=True):
            if isinstance(result, SequenceFailed):
                outcomes[i] = self._failed(result, wheres[i])
                continue
            log.info(
                "applied %s event %s: contacts %s, %d steps",
                self.kind,
                result.get("event_id"),
                result.get("contact_ids"),
                len(result.get("steps") or ()),
            )
            observe.count("EventsApplied", self.kind)
            outcomes[i] = result

    @staticmethod
    def _booking(runner: SequenceRunner, plans: list[Any]) -> Callable[[], None] | None:
        """The Keap budget's booking of a batch's calls, to run alongside its claims (None: nothing to book)."""
        from ..routing.batch import expected_calls

        port = getattr(runner, "keap", None)
        if port is None or getattr(getattr(port, "client", None), "rate_limiter", None) is None:
            return None
        grouped = port.many_contacts() if len(plans) > 1 else {}
        return lambda: port.book_calls(expected_calls(plans, grouped))

    def _where(self, delivery: Delivery) -> dict[str, Any]:
        ident = delivery.event if isinstance(delivery.event, dict) else {}
        where = {
            "kind": self.kind,
            "attempts": delivery.attempts,
            "source": str(ident.get("source") or ""),
            "event_id": str(ident.get("id") or ""),
            "replay": delivery.replay,
        }
        observe.correlate(where["event_id"], self.kind)
        return where

    def _failed(self, exc: SequenceFailed, where: dict[str, Any]) -> EventFailed:
        """The EventFailed for a failed step: its dead-letter name, message and step, and whether to retry."""
        if exc.step.status == "uncertain":
            observe.count("StepOutcomeUnknown", self.kind)
            log.warning("event %s: %s", where["event_id"], exc.step.error)
        failure = Failure(
            error_class=exc.step.error_class or "Error",
            message=exc.step.error or "",
            step=f"{exc.step.key} ({exc.step.call})",
            transient=exc.transient,
            **where,
        )
        failed = EventFailed(failure, exc.result, getattr(exc.cause, "retry_after", None))
        failed.__cause__ = exc
        return failed

    def handle(self, event: Any, context: Any = None) -> dict[str, Any]:
        """The Lambda entry point: hand the event to its trigger's path, with this invocation's own state."""
        observe.logger()
        invocation = Invocation.start(context)
        trigger = trigger_of(event)
        started = time.monotonic()
        try:
            return PATHS[trigger](self, event, invocation)
        finally:
            # One function serves both paths: each path's time is a metric of its own.
            elapsed_ms = (time.monotonic() - started) * 1000
            observe.count(observe.DURATION_OF_PATH[trigger], self.kind, round(elapsed_ms, 1))
            observe.flush(self.kind)


def _name(replay: Replay | None) -> str | None:
    """The replay's name (part of its deliveries' keys), None for an ordinary delivery."""
    return None if replay is None else replay.name


def _planned(planned: Any, replay: Replay | None) -> Any:
    """An event's plan, filtered to the step families a replay includes (tags and fields by default)."""
    from ..routing.plan import for_replay

    return planned if replay is None else for_replay(planned, replay.include)


@functools.cache
def pipeline_for(kind: str) -> Pipeline:
    """The container's pipeline for a kind (one per container, as Lambda reuses it across invokes)."""
    return Pipeline(kind)


def lambda_handler_for(kind: str) -> Callable[[Any, Any], dict[str, Any]]:
    """A Lambda handler for one kind; functions/<kind>/app.py is just this."""

    def handler(event: Any, context: Any = None) -> dict[str, Any]:
        return pipeline_for(kind).handle(event, context)

    handler.__doc__ = f"Lambda handler for {kind} events (HTTP, SQS, EventBridge or direct)."
    return handler
