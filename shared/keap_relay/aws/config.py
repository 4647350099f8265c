"""Settings of one function container, read from the environment (and Secrets Manager in AWS) once."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from ..keap.defaults import DEFAULT_URL as DEFAULT_KEAP_URL
from ..routing.routes import KEAP_APIS, routes_path
from .archive import DEFAULT_KEEP_DAYS
from .observe import register_secret

SECRETS_MAX_AGE = 300  # seconds a fetched secret is reused (Powertools parameters cache)


class ConfigError(RuntimeError):
    """The function is misconfigured (a missing key, an unreadable secret); permanent until fixed."""

    transient = False


class SecretUnavailable(ConfigError):
    """A secret could not be read (not set yet, or Secrets Manager unreachable): events wait in the queue."""

    transient = True


@functools.cache
def _secrets_provider() -> Any:
    """The container's Secrets Manager provider (and its cache), its client made from boto3's default session.

    Powertools' own default provider makes its client from a session of its own, whose botocore loader reads
    the endpoint and model data again (~40 ms of a cold start); the SQS and DynamoDB clients share this one.
    """
    # Imported here: Powertools parameters pulls in boto3, which local inline runs may never need.
    import boto3
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    return SecretsProvider(boto3_client=boto3.client("secretsmanager"))


def _get_secret(arn: str) -> str:
    try:
        value = _secrets_provider().get(arn, max_age=SECRETS_MAX_AGE)
    except Exception as exc:  # the SDK's errors vary; the ARN is not secret, the value is
        raise SecretUnavailable(f"cannot read secret {arn}: {type(exc).__name__}") from None
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _keap_api(value: str) -> str:
    api = value.strip().lower()
    if api not in KEAP_APIS:
        raise ConfigError(f"KEAP_API must be one of {', '.join(KEAP_APIS)}, not {value!r}")
    return api


def _positive_or_none(value: str) -> float | None:
    rate = float(value)
    return rate if rate > 0 else None


def _at_least_one(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ConfigError(f"KEAP_CONCURRENCY must be at least 1, not {number}")
    return number


def _env(name: str, default: Any = None, parse: Callable[[str], Any] = str) -> Any:
    """A setting read from the environment variable `name` by `parse`; unset or empty is `default`."""
    return field(default=default, metadata={"env": name, "parse": parse})


@dataclass(repr=False)
class Settings:
    """Everything a function reads from its environment. Secrets are fetched on first use."""

    kind: str
    keap_url: str = _env("KEAP_URL", DEFAULT_KEAP_URL)
    # Which Keap API the functions drive: rest (v2, the default) or xmlrpc (ContactService). REST goes to
    # KEAP_REST_URL, else to the REST base on KEAP_URL's host (http://h/crm/xmlrpc/v1 -> http://h/crm).
    keap_api: str = _env("KEAP_API", KEAP_APIS[0], _keap_api)
    keap_rest_url: str | None = _env("KEAP_REST_URL")
    routes_file: str = field(default_factory=routes_path)  # ROUTES_FILE, read by routes_path
    queue_url: str | None = _env("QUEUE_URL")
    dlq_url: str | None = _env("DLQ_URL")
    max_receive_count: int = _env("MAX_RECEIVE_COUNT", 5, int)
    max_calls_per_second: float | None = _env("KEAP_MAX_CALLS_PER_SECOND", None, float)
    # Secrets: the value itself locally, the ARN of a Secrets Manager secret in AWS.
    keap_api_key_env: str | None = _env("KEAP_API_KEY")
    keap_api_key_secret_arn: str | None = _env("KEAP_API_KEY_SECRET_ARN")
    webhook_secrets_env: str | None = _env("WEBHOOK_SECRETS")
    webhook_secrets_arn: str | None = _env("WEBHOOK_SECRETS_ARN")
    idempotency_table: str | None = _env("IDEMPOTENCY_TABLE")
    # The Keap key's calls/second, shared by every container through the idempotency table.
    keap_rate_limit: float | None = _env("KEAP_RATE_LIMIT", None, _positive_or_none)
    # Follow-up calls in flight at once per container. Keap counts threads it is throttling (the legacy
    # fault names 4), so the default keeps to that; the rate limit paces the calls.
    keap_concurrency: int = _env("KEAP_CONCURRENCY", 4, _at_least_one)
    # A transient failure is re-queued with a growing delay (retry_base_seconds doubling, at most 15 min,
    # SQS's DelaySeconds limit) until the event is older than max_event_age_seconds; then it is dead-lettered.
    retry_base_seconds: float = _env("RETRY_BASE_SECONDS", 30.0, float)
    max_event_age_seconds: int = _env("MAX_EVENT_AGE_SECONDS", 4 * 86400, int)
    # Overrides the function's timeout, which is otherwise the time an invocation has left at its start.
    function_timeout_seconds: int | None = _env("FUNCTION_TIMEOUT_SECONDS", None, int)
    # The event archive (archive.py): its table (empty: off, ArchiveDays=0) and how many days it keeps an event.
    archive_table: str | None = _env("ARCHIVE_TABLE")
    archive_days: int = _env("ARCHIVE_DAYS", DEFAULT_KEEP_DAYS, int)

    @classmethod
    def from_env(cls, kind: str, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {"routes_file": env.get("ROUTES_FILE") or routes_path()}
        for setting in fields(cls):
            name = setting.metadata.get("env")
            if name and env.get(name):
                try:
                    values[setting.name] = setting.metadata["parse"](env[name])
                except ValueError as exc:
                    raise ConfigError(f"{name} must be a number: {exc}") from None
        return cls(kind=kind, **values)

    def __repr__(self) -> str:
        # Never the key or the webhook secrets; only whether they are configured.
        return (
            f"Settings(kind={self.kind!r}, keap_api={self.keap_api!r}, keap_url={self.keap_url!r}, "
            f"routes_file={self.routes_file!r}, "
            f"queue_url={self.queue_url!r}, dlq_url={self.dlq_url!r}, "
            f"max_receive_count={self.max_receive_count}, keap_key={'set' if self._has_key() else 'unset'})"
        )

    def _has_key(self) -> bool:
        return bool(self.keap_api_key_env or self.keap_api_key_secret_arn)

    def keap_api_key(self) -> str:
        """The Keap PAT / Service Account Key: KEAP_API_KEY locally, the secret in AWS."""
        if self.keap_api_key_env:
            register_secret(self.keap_api_key_env)
            return self.keap_api_key_env
        if self.keap_api_key_secret_arn:
            raw = _get_secret(self.keap_api_key_secret_arn).strip()
            # Accept the bare key or a JSON object holding it, as users store it either way.
            if raw.startswith("{"):
                try:
                    doc: Any = json.loads(raw)
                except ValueError:
                    raise ConfigError("the Keap key secret is neither a bare key nor JSON") from None
                raw = str(doc.get("api_key") or doc.get("KEAP_API_KEY") or "")
            if raw:
                register_secret(raw)
                return raw
        raise ConfigError("no Keap API key: set KEAP_API_KEY (locally) or KEAP_API_KEY_SECRET_ARN (in AWS)")

    def keap_port(self, rate_limiter: Any = None) -> Any:
        """The Keap port these settings name (API, URLs, key, per-container pace); `rate_limiter` is the
        stack's shared budget, when there is one. Built on the worker path and by the operator's commands."""
        from ..routing.keap_port import build_port

        return build_port(
            self.keap_api,
            url=self.keap_url,
            rest_url=self.keap_rest_url,
            api_key=self.keap_api_key(),
            max_calls_per_second=self.max_calls_per_second,
            rate_limiter=rate_limiter,
        )

    def webhook_secret(self, source: str) -> str | None:
        """The webhook secret of one source, or None when the source has none configured."""
        if self.webhook_secrets_env:
            raw = self.webhook_secrets_env
        elif self.webhook_secrets_arn:
            raw = _get_secret(self.webhook_secrets_arn)
        else:
            return None
        try:
            secrets = json.loads(raw)
        except ValueError:
            raise ConfigError("webhook secrets must be a JSON object of source -> secret") from None
        value = secrets.get(source) if isinstance(secrets, dict) else None
        register_secret(str(value) if value else None)
        return str(value) if value else None
