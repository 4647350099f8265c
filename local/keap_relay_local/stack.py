"""The whole pipeline on one machine: emulator (or real Keap), moto, function processes, pollers, gateway."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from keap_relay.events.kinds import kind_named
from keap_relay.keap.defaults import DEFAULT_URL

from .defaults import DEFAULT_VISIBILITY_TIMEOUT, DEFAULT_WEBHOOK_SECRETS, EMULATOR_API_KEY, ROOT
from .fnhost import FunctionHost, wait_all_ready
from .gateway import Gateway
from .moto_sqs_move import install as install_message_move_tasks
from .poller import PollerStats, QueuePoller
from .resources import FAKE_CREDENTIALS, Deployed, MotoServer, client, provision
from .runtime import local_function_name
from .template import StackSpec, read_stack

log = logging.getLogger("keap_relay_local.stack")

# Function variables the local stack sets differently from the template when Keap is the emulator.
# The template's per-container call budget protects a real key's quota; against the emulator it would
# only slow every local run down (the emulator's QuotaPlan is where throttling is exercised).
EMULATOR_ENV_OVERRIDES = {"KEAP_MAX_CALLS_PER_SECOND": "", "KEAP_RATE_LIMIT": ""}

# Set in every function process, as Lambda and `sam local` do; AWS_SAM_LOCAL also turns Powertools'
# tracer off, since there is no X-Ray daemon here.
LAMBDA_RUNTIME_ENV = {
    # Transient failures are re-queued after 1 s, 2 s, 4 s ... locally (30 s, 60 s ... in AWS), as the
    # short visibility timeout above keeps local retries quick.
    "RETRY_BASE_SECONDS": "1",
    "AWS_SAM_LOCAL": "true",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
}


def resolve_kind(kind: str) -> str:
    """The function a kind is called by (`forms`, `form_submission`, `form` → `forms`); other names as given."""
    try:
        return kind_named(kind).folder
    except KeyError:  # a function of another template (the tests' stand-in stack)
        return kind


class LocalStack:
    """Everything between a webhook and Keap, on 127.0.0.1. Use as a context manager."""

    def __init__(
        self,
        gateway_port: int = 0,
        emulator_port: int = 0,
        moto_port: int = 0,
        routes_file: str | Path = "config/routes.yaml",
        keap_url: str | None = None,
        keap_api_key: str | None = None,
        visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT,
        *,
        webhook_secrets: dict[str, str] | None = None,
        root: str | Path | None = None,
        template: str | Path | None = None,
        region: str = "us-east-1",
        function_env: dict[str, str] | None = None,
        emulator_db: str = ":memory:",
        function_timeout: float | None = None,
        parameters: dict[str, str] | None = None,
    ) -> None:
        """Keap is an emulator started with the stack, unless `keap_url` or `keap_api_key` is given:
        then the functions use that Keap (real Keap's URL by default; the emulator's key by default,
        for an emulator already running elsewhere). `parameters` replace template parameters' defaults
        (e.g. {"ArchiveDays": "0"}). The environment is read only by `from_env`."""
        self.root = Path(root).resolve() if root else ROOT
        self.template_path = Path(template) if template else self.root / "template.yaml"
        self.routes_file = self._absolute(routes_file)
        self._routes_digest = _digest(self.routes_file)  # what the functions run: see redeploy_edited_routes
        self.region = region
        self.visibility_timeout = visibility_timeout
        self._ports = {"gateway": gateway_port, "emulator": emulator_port, "moto": moto_port}
        self._keap_url = keap_url
        self._keap_api_key = keap_api_key
        self._webhook_secrets = dict(webhook_secrets or DEFAULT_WEBHOOK_SECRETS)
        self._function_env = dict(function_env or {})
        self._emulator_db = emulator_db
        # Replaces every function's Timeout locally (as visibility_timeout replaces the queues'): an idempotency
        # record left "in progress" by a killed invocation expires after it, so tests that kill need not wait 30 s.
        self._function_timeout = function_timeout
        self.spec: StackSpec = read_stack(self.template_path, region, parameters)
        self.emulator: Any = None
        self.moto: MotoServer | None = None
        self.deployed = Deployed()
        self.sqs: Any = None
        self.events: Any = None
        self.gateway: Gateway | None = None
        self._hosts: dict[str, FunctionHost] = {}
        self._pollers: dict[str, QueuePoller] = {}

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **kwargs: Any) -> LocalStack:
        """A stack configured the way the CLI documents: KEAP_API_KEY and/or KEAP_URL mean a Keap the
        stack does not start (real Keap by default), WEBHOOK_SECRETS (a JSON object) replaces the local
        webhook secrets, KEAP_API (and KEAP_REST_URL) replace the template's API (rest by default; the
        emulator serves both). Tests construct LocalStack directly, so a developer's key never reaches them."""
        env = os.environ if environ is None else environ
        chosen = {name: env[name] for name in ("KEAP_API", "KEAP_REST_URL") if env.get(name)}
        if chosen:
            kwargs["function_env"] = {**chosen, **(kwargs.get("function_env") or {})}
        if env.get("KEAP_API_KEY"):
            kwargs.setdefault("keap_api_key", env["KEAP_API_KEY"])
        if env.get("KEAP_URL"):
            kwargs.setdefault("keap_url", env["KEAP_URL"])
        if env.get("WEBHOOK_SECRETS"):
            secrets = json.loads(env["WEBHOOK_SECRETS"])
            if not isinstance(secrets, dict):
                raise ValueError("WEBHOOK_SECRETS must be a JSON object of source -> secret")
            kwargs.setdefault("webhook_secrets", {str(k): str(v) for k, v in secrets.items()})
        return cls(**kwargs)

    def __repr__(self) -> str:
        keap = "external Keap" if self.external_keap else "emulator"
        return f"LocalStack(gateway={self.gateway_url if self.gateway else None}, keap={keap})"

    def _absolute(self, path: str | Path) -> Path:
        path = Path(path)
        return path if path.is_absolute() else self.root / path

    # ---------------------------------------------------------------- lifecycle

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        if not self.external_keap:
            from keap_emulator import EmulatorServer

            self.emulator = EmulatorServer(
                port=self._ports["emulator"], db=self._emulator_db, api_key=EMULATOR_API_KEY
            ).start()
        self.moto = MotoServer(self._ports["moto"])
        install_message_move_tasks()  # DLQ redrive (StartMessageMoveTask), which moto lacks
        self.moto.start()
        self.deployed = provision(self.spec, self.moto.url, self.region, self.visibility_timeout)
        self.sqs = client("sqs", self.moto.url, self.region)
        self.events = client("events", self.moto.url, self.region)

        for name, fn in self.spec.functions.items():
            self._hosts[name] = FunctionHost(
                name,
                root=self.root,
                env=self.function_environment(name),
                code_dir=fn.code_dir,
                handler=fn.handler,
                timeout=self._function_timeout or fn.timeout,
                memory=fn.memory,
                region=self.region,
            )
        wait_all_ready(list(self._hosts.values()))

        for name, fn in self.spec.functions.items():
            if fn.queue is None:
                continue
            # The batching window is capped below the shortened visibility timeout: a message received
            # early in the window must not become visible (and be received again) before the invoke.
            poller = QueuePoller(
                name,
                sqs=client("sqs", self.moto.url, self.region),
                queue_url=self.deployed.queue_urls[fn.queue],
                queue_arn=self.deployed.queue_arns[fn.queue],
                invoke=self.invoke,
                region=self.region,
                batch_size=fn.batch_size,
                batching_window=min(fn.batching_window, self.visibility_timeout / 2),
                report_item_failures=fn.report_batch_item_failures,
            )
            poller.start()
            self._pollers[name] = poller

        self.gateway = Gateway(self.spec.routes, self.invoke, port=self._ports["gateway"])
        self.gateway.start()
        log.info("local stack up: gateway %s, moto %s", self.gateway_url, self.moto_url)

    def stop(self) -> None:
        """Stop everything this stack started, in reverse order; safe to call twice."""
        if self.gateway is not None:
            self.gateway.stop()
            self.gateway = None
        for poller in self._pollers.values():
            poller.signal_stop()  # signal all first: each long poll then ends within a second, together
        for poller in self._pollers.values():
            poller.stop()
        self._pollers.clear()
        for host in self._hosts.values():
            host.signal_stop()
        for host in self._hosts.values():
            host.stop()
        self._hosts.clear()
        if self.moto is not None:
            self.moto.stop()
            self.moto = None
        if self.emulator is not None:
            self.emulator.stop()
            # the model stays readable for assertions made after the stack stopped

    # ---------------------------------------------------------------- configuration of the functions

    @property
    def external_keap(self) -> bool:
        """Whether the functions talk to a Keap this stack did not start (real Keap, or another emulator)."""
        return self._keap_url is not None or self._keap_api_key is not None

    @property
    def keap_url(self) -> str:
        if self.external_keap:
            return self._keap_url or DEFAULT_URL
        if self.emulator is None:
            raise RuntimeError("the stack is not started")
        return str(self.emulator.url)

    @property
    def keap_api(self) -> str | None:
        """The Keap API the functions drive: KEAP_API from function_env, else the template's (rest by default)."""
        declared = (fn.environment.get("KEAP_API") for fn in self.spec.functions.values())
        return self._function_env.get("KEAP_API") or next((api for api in declared if api), None)

    def function_environment(self, function: str) -> dict[str, str]:
        """The environment a function process gets: the template's values, then the local wiring."""
        assert self.moto is not None
        # A replaced timeout is the function's timeout for the code too (it paces a batch by it).
        timeout = {"FUNCTION_TIMEOUT_SECONDS": str(int(self._function_timeout))} if self._function_timeout else {}
        return function_environment(
            self.spec,
            function,
            self.deployed,
            moto_url=self.moto.url,
            region=self.region,
            keap_url=self.keap_url,
            keap_api_key=self._keap_api_key,
            routes_file=self.routes_file,
            webhook_secrets=self._webhook_secrets,
            extra={**timeout, **self._function_env},
        )

    def redeploy_edited_routes(self) -> str | None:
        """Deploy the routes file again if it was edited since the functions started (`keap-relay run` asks
        every second, as `sam sync --watch` would): the functions restart with it, keeping the queues, tables,
        archive and emulator. A file the routes check refuses is not deployed; the running routes stay.
        Returns what happened, or None when the file is unchanged."""
        from keap_relay.routing.routes import KEAP_APIS, RoutesError, read_routes

        digest = _digest(self.routes_file)
        if digest == self._routes_digest:
            return None
        self._routes_digest = digest
        try:
            read_routes(str(self.routes_file), self.keap_api or KEAP_APIS[0])
        except RoutesError as exc:
            return f"routes not deployed (the running functions keep the routes they have): {exc}"
        self.reconfigure()
        return f"routes deployed: the functions restarted with {self.routes_file}"

    def reconfigure(self, routes_file: str | Path | None = None, function_env: dict[str, str] | None = None) -> None:
        """Deploy new settings: every function process restarts with the new environment."""
        if routes_file is not None:
            self.routes_file = self._absolute(routes_file)
        self._routes_digest = _digest(self.routes_file)
        if function_env is not None:
            self._function_env = dict(function_env)
        for name, host in self._hosts.items():
            host.stop()
            self._hosts[name] = FunctionHost(
                name,
                root=self.root,
                env=self.function_environment(name),
                code_dir=self.spec.functions[name].code_dir,
                handler=self.spec.functions[name].handler,
                timeout=host.timeout,
                memory=self.spec.functions[name].memory,
                region=self.region,
            )
        wait_all_ready(list(self._hosts.values()))

    # ---------------------------------------------------------------- what tests and the CLI use

    @property
    def webhook_secrets(self) -> dict[str, str]:
        """The secrets the functions verify webhooks with (a copy; never logged)."""
        return dict(self._webhook_secrets)

    @property
    def kinds(self) -> list[str]:
        return list(self.spec.functions)

    @property
    def gateway_url(self) -> str:
        if self.gateway is None:
            raise RuntimeError("the stack is not started")
        return self.gateway.url

    @property
    def moto_url(self) -> str:
        if self.moto is None:
            raise RuntimeError("the stack is not started")
        return self.moto.url

    def webhook_url(self, kind: str, source: str = "generic") -> str:
        route = next(r for r in self.spec.functions[resolve_kind(kind)].routes if r.method in ("POST", "ANY"))
        return self.gateway_url + route.path.replace("{source}", source)

    def queue_url(self, kind: str) -> str:
        return self.deployed.queue_urls[self.spec.work_queue(resolve_kind(kind)).logical_id]

    def dlq_url(self, kind: str) -> str:
        dlq = self.spec.dead_letter_queue(resolve_kind(kind))
        if dlq is None:
            raise KeyError(f"{kind}: the work queue has no dead-letter queue in the template")
        return self.deployed.queue_urls[dlq.logical_id]

    def function_host(self, kind: str) -> FunctionHost:
        """The process handle of one function (start, kill, restart, invoke)."""
        return self._hosts[resolve_kind(kind)]

    def function_pid(self, kind: str) -> int | None:
        return self._hosts[resolve_kind(kind)].pid

    def poller_stats(self, kind: str) -> PollerStats:
        return self._pollers[resolve_kind(kind)].stats

    def poller_busy(self, kind: str) -> bool:
        """Whether the kind's poller has a batch in flight (received and not yet settled): a kill now is mid-batch."""
        return self._pollers[resolve_kind(kind)].busy

    def invoke(self, kind: str, event: Any) -> Any:
        """Invoke a function directly (like `aws lambda invoke`); raises FunctionError on failure."""
        return self._hosts[resolve_kind(kind)].invoke(event)

    def kill_function(self, kind: str) -> int | None:
        """Kill the function's process mid-whatever (SIGKILL) and start a fresh one; returns its pid."""
        host = self._hosts[resolve_kind(kind)]
        host.kill()
        host.restart()
        return host.pid

    def put_event(self, kind: str, canonical_event: dict[str, Any]) -> str:
        """PutEvents on the bus with the source and detail-type the kind's rule matches; returns the id."""
        name = resolve_kind(kind)
        rules = self.spec.rules_for(name)
        if not rules:
            raise KeyError(f"{kind}: no EventBridge rule targets its queue in the template")
        pattern = rules[0].event_pattern
        entry = {
            "Source": _first_literal(pattern.get("source")) or "keap-relay.local",
            "DetailType": _first_literal(pattern.get("detail-type")) or str(canonical_event.get("kind", name)),
            "Detail": json.dumps(canonical_event),
            "EventBusName": rules[0].event_bus,
        }
        response = self.events.put_events(Entries=[entry])
        if response.get("FailedEntryCount"):
            raise RuntimeError(f"PutEvents failed: {response['Entries']}")
        return str(response["Entries"][0]["EventId"])

    def queue_counts(self, kind: str) -> dict[str, int]:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url(kind),
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return {k.replace("ApproximateNumberOfMessages", "") or "Visible": int(v) for k, v in attributes.items()}

    def wait_drained(self, timeout: float = 30) -> None:
        """Wait until every work queue is empty and no batch is in flight; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            counts = {kind: self.queue_counts(kind) for kind in self._pollers}
            busy = [kind for kind, poller in self._pollers.items() if poller.busy]
            if not busy and not any(any(c.values()) for c in counts.values()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"queues not drained after {timeout} s: {counts}, busy: {busy}")
            time.sleep(0.1)

    def dead_letters(self, kind: str) -> list[dict[str, Any]]:
        """Messages in the kind's DLQ, read without deleting them: body and message attributes."""
        return peek_queue(self.sqs, self.dlq_url(kind))


def function_environment(
    spec: StackSpec,
    function: str,
    deployed: Deployed,
    *,
    moto_url: str,
    region: str,
    keap_url: str,
    keap_api_key: str | None,
    routes_file: Path,
    webhook_secrets: dict[str, str],
    extra: dict[str, str] | None = None,
    with_queue: bool = True,
) -> dict[str, str]:
    """A function's variables: the template's, then the env-var contract wired to local parts.

    `keap_api_key` None means the emulator. Without `with_queue` QUEUE_URL is left out, so the
    function processes HTTP events inline instead of enqueuing them.
    """
    fn = spec.functions[function]
    env = dict(fn.environment)
    if keap_api_key is None:
        env.update(EMULATOR_ENV_OVERRIDES)
    env.update(LAMBDA_RUNTIME_ENV)
    env.update(FAKE_CREDENTIALS)
    env.update(
        {
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
            "AWS_ENDPOINT_URL": moto_url,
            "AWS_LAMBDA_FUNCTION_NAME": local_function_name(function),
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory),
            "KEAP_URL": keap_url,
            "KEAP_API_KEY": keap_api_key or EMULATOR_API_KEY,
            "ROUTES_FILE": str(routes_file),
            "WEBHOOK_SECRETS": json.dumps(webhook_secrets),
        }
    )
    env.pop("QUEUE_URL", None)
    if fn.queue is not None:
        queue = spec.queues[fn.queue]
        if with_queue:
            env["QUEUE_URL"] = deployed.queue_urls[fn.queue]
        if queue.dlq is not None:
            env["DLQ_URL"] = deployed.queue_urls[queue.dlq]
            env["MAX_RECEIVE_COUNT"] = str(queue.max_receive_count)
    table = spec.idempotency_table()
    if table is not None:
        env["IDEMPOTENCY_TABLE"] = deployed.table_names[table.logical_id]
    archive = spec.archive_table()
    env["ARCHIVE_TABLE"] = deployed.table_names[archive.logical_id] if archive is not None else ""
    # Names the template gave that point at AWS resources have no local meaning.
    for name in ("KEAP_API_KEY_SECRET_ARN", "WEBHOOK_SECRETS_ARN"):
        env.pop(name, None)
    env.update(extra or {})
    return env


def _first_literal(values: Any) -> str | None:
    if isinstance(values, list):
        for value in values:
            if isinstance(value, str):
                return value
    return values if isinstance(values, str) else None


def _attribute_value(value: dict[str, Any]) -> Any:
    for key in ("StringValue", "BinaryValue", "StringListValues", "BinaryListValues"):
        if key in value:
            return value[key]
    return None


def peek_queue(sqs: Any, queue_url: str, hold_seconds: int = 30) -> list[dict[str, Any]]:
    """Every message on a queue, leaving them there: receive them all (hidden meanwhile), then
    make them visible again."""
    seen: dict[str, dict[str, Any]] = {}
    receipts: list[str] = []
    while True:
        messages = (
            sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                VisibilityTimeout=hold_seconds,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["All"],
            ).get("Messages")
            or []
        )
        if not messages:
            break
        for message in messages:
            receipts.append(message["ReceiptHandle"])
            seen.setdefault(
                message["MessageId"],
                {
                    "message_id": message["MessageId"],
                    "body": message.get("Body", ""),
                    "attributes": {k: _attribute_value(v) for k, v in (message.get("MessageAttributes") or {}).items()},
                    "system_attributes": dict(message.get("Attributes") or {}),
                },
            )
    for start in range(0, len(receipts), 10):
        sqs.change_message_visibility_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": 0}
                for i, r in enumerate(receipts[start : start + 10])
            ],
        )
    return list(seen.values())


def _digest(path: Path) -> str | None:
    """The routes file's content hash (None when it cannot be read): an edit, not a touch, redeploys."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
