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

if TYPE_CHECKING:  # the planner and runner are the worker path's: a webhook is answered without them
    from ..routing.runner import Checkpoints, SequenceRunner

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

    def _apply(
        self, event: dict[str, Any], checkpoints: Checkpoints | None, rerun_uncertain: bool, replay: Replay | None
    ) -> dict[str, Any]:
        from ..routing.plan import for_replay, plan

        routes = load_routes(self.settings.routes_file, self.settings.keap_api)  # loaded once per container
        planned = plan(event, routes) if replay is None else for_replay(plan(event, routes), replay.include)
        result = self.runner.run(planned, checkpoints, rerun_uncertain=rerun_uncertain)
        log.info(
            "applied %s event %s: contacts %s, %d steps",
            self.kind,
            event.get("id"),
            result.contact_ids,
            len(result.steps),
        )
        return result.to_dict()

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
        from aws_lambda_powertools.utilities.idempotency.exceptions import (
            IdempotencyAlreadyInProgressError,
            IdempotencyPersistenceLayerError,
        )

        from ..routing.runner import SequenceFailed

        ident = event if isinstance(event, dict) else {}
        where = {
            "kind": self.kind,
            "attempts": attempts,
            "source": str(ident.get("source") or ""),
            "event_id": str(ident.get("id") or ""),
            "replay": replay,
        }
        observe.correlate(where["event_id"], self.kind)

        def apply(valid: dict[str, Any], checkpoints: Checkpoints | None = None) -> dict[str, Any]:
            return self._apply(valid, checkpoints, rerun_uncertain, replay)

        try:
            valid = validate_event(event, self.kind)
            once = self.idempotency
            name = None if replay is None else replay.name
            result = apply(valid) if once is None else once.apply_once(valid, apply, context, name)
            observe.count("EventsApplied", self.kind)
            return result
        except EventInvalid as exc:
            raise EventFailed(Failure.permanent("EventInvalid", str(exc), "validate", **where)) from exc
        except (RoutesError, ConfigError) as exc:
            transient = bool(getattr(exc, "transient", False))
            failure = Failure(
                error_class=type(exc).__name__, message=str(exc), step="configure", transient=transient, **where
            )
            raise EventFailed(failure) from exc
        except SequenceFailed as exc:
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
            raise EventFailed(failure, exc.result, getattr(exc.cause, "retry_after", None)) from exc
        except IdempotencyAlreadyInProgressError as exc:
            # Another delivery of the same event is being applied right now: try again after it.
            message = "another delivery of this event is being applied"
            raise EventFailed(Failure.retryable("InProgress", message, "idempotency", **where)) from exc
        except IdempotencyPersistenceLayerError as exc:
            failure = Failure.retryable("IdempotencyStoreError", str(exc), "idempotency", **where)
            raise EventFailed(failure) from exc

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
