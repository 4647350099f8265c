"""`keap-relay explain`: a dry run of one event file — the canonical event, the rules it matches, the Keap calls.

The event is read by the functions' own code (the webhook adapters and ingest, the canonical schema), planned by
`routing.plan.plan` and walked by the real `SequenceRunner` against a port that records instead of calling Keap,
so what is printed follows the product when it changes. `--live` adds read-only look-ups (the contact, its tags,
its place in each sequence, the names Keap gives the ids); nothing here can write to Keap.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keap_relay.aws import http
from keap_relay.aws.config import ConfigError, Settings
from keap_relay.aws.invocation import is_eventbridge_event, trigger_of
from keap_relay.aws.observe import redact
from keap_relay.events.canonical import EventInvalid, validate_event
from keap_relay.events.errors import WebhookRejected
from keap_relay.events.kinds import FOLDERS, Kind, by_name, kind_named
from keap_relay.keap.errors import KeapError, KeapRequestError, KeapTransportError
from keap_relay.routing.keap_port import ContactServicePort, RestPort
from keap_relay.routing.plan import Plan, contact_fields, plan
from keap_relay.routing.routes import RoutesError, load_routes
from keap_relay.routing.runner import RunResult, SequenceRunner

NEW_CONTACT = 0  # the id the dry run gives a contact Keap does not have yet (Keap's ids start at 1)
SEQUENCE_OPS = ("start_sequence", "stop_sequence", "pause_sequence")
CALL_NAMES: dict[str, dict[str, str]] = {"xmlrpc": ContactServicePort.call_names, "rest": RestPort.call_names}


class ExplainError(Exception):
    """Why an event cannot be explained; `status` is the exit status (1: the event is refused, 2: cannot run)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _refused(message: str) -> ExplainError:
    return ExplainError(message, 1)


def _cannot(message: str) -> ExplainError:
    return ExplainError(message, 2)


# ---------------------------------------------------------------------------------------------------- reading


@dataclass
class Delivery:
    """What an event file delivers to one function: its canonical events, and how they were read."""

    kind: Kind
    trigger: str  # http | sqs | eventbridge | direct, as the pipeline names its paths
    events: list[dict[str, Any]]
    signature: str | None = None  # for a webhook: verified with which secret, or why not
    reply: dict[str, Any] | None = None  # a webhook answered without an event (a URL check, an ignored delivery)
    source: str | None = None


def read_file(path: str) -> Any:
    """The JSON document in `path` (- for stdin); ExplainError(2) when it cannot be read."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _cannot(f"{path}: cannot read it: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise _cannot(f"{path}: not JSON: {exc}") from None


def _kind_of_word(word: str, where: str) -> Kind:
    try:
        return kind_named(word)
    except KeyError:
        raise _refused(f"{where} names no function ({word!r}); one of {', '.join(FOLDERS)}") from None


def _unwrap(event: Any) -> Any:
    # An EventBridge envelope kept in a queue or a dead letter: the worker applies its detail.
    return event["detail"] if is_eventbridge_event(event) else event


def _sqs_events(doc: dict[str, Any]) -> list[Any]:
    events = []
    for number, record in enumerate(doc["Records"], 1):
        try:
            events.append(_unwrap(json.loads(record.get("body") or "")))
        except ValueError:
            raise _refused(f"SQS record {number}: its body is not JSON (the worker dead-letters it)") from None
    return events


def _event_kind(events: list[Any]) -> Kind | None:
    kinds = {event.get("kind") for event in events if isinstance(event, dict)}
    if len(kinds) != 1:
        return None
    try:
        return by_name(str(kinds.pop()))
    except KeyError:
        return None


def _choose(found: Kind | None, wanted: str | None, what: str) -> Kind:
    """The function that serves the event: --function when given (it must agree with the event), else the event's."""
    if wanted is None:
        if found is None:
            raise _cannot(f"cannot tell which function {what} is for; give --function {{{','.join(FOLDERS)}}}")
        return found
    chosen = kind_named(wanted)
    if found is not None and found != chosen:
        raise _refused(f"{what} is for the {found.folder} function, not {chosen.folder}")
    return chosen


def _secret_in_use(settings: Settings) -> str | None:
    if settings.webhook_secrets_env:
        return "WEBHOOK_SECRETS"
    if settings.webhook_secrets_arn:
        return "WEBHOOK_SECRETS_ARN"
    return None


UNVERIFIED_SECRET = "keap-relay-explain-unverified"  # noqa: S105 (not a secret) signs a request afresh when no secret is configured


def _key_pair_secret() -> str:
    """A throwaway P-256 private key (PKCS#8, base64 DER): the secret of a vendor that signs with a key pair."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return base64.b64encode(der).decode()


def _signed_afresh(request: http.Request) -> tuple[http.Request, str]:
    """The request re-signed the way its vendor signs (as events/sign.py does), and the throwaway secret used."""
    from dataclasses import replace

    from keap_relay.events.sources import adapter, sign_request

    if adapter(request.source) is None:
        return request, UNVERIFIED_SECRET  # ingest refuses the unknown source, as the function would
    posted = request.method == "POST"
    secret = UNVERIFIED_SECRET
    try:
        signed = sign_request(request.source, request.body if posted else b"", secret)
    except (
        ValueError,
        WebhookRejected,
    ):  # a vendor that signs with a private key and verifies with its public key (SendGrid)
        secret = _key_pair_secret()
        signed = sign_request(request.source, request.body if posted else b"", secret)
    headers = {**request.headers, **{k.lower(): v for k, v in signed.headers.items() if k.lower() != "content-type"}}
    body = signed.body if posted else request.body
    return replace(request, headers=headers, query={**request.query, **signed.query}, body=body), secret


def _webhook(doc: dict[str, Any], wanted: str | None, settings_for: Callable[[str], Settings]) -> Delivery:
    """A webhook as API Gateway delivers it, read by the ingest path (verified when a secret is configured)."""
    from keap_relay.aws import ingest

    try:
        request = http.parse_request(doc)
    except WebhookRejected as exc:
        raise _refused(f"the function would answer {exc.status} {exc.error}: {exc.detail}") from None
    folder = request.path.strip("/").split("/", 1)[0]
    found = _kind_of_word(folder, f"the webhook's path {request.path!r}") if folder else None
    kind = _choose(found, wanted, f"the webhook to {request.path or '(no path)'}")
    settings = settings_for(kind.name)
    via = _secret_in_use(settings)
    secret_for: Callable[[str], str | None] = settings.webhook_secret
    if via is not None:
        signature = f"verified with the {request.source!r} secret of {via}"
    else:
        # No secret configured (the function would refuse every request). The request is signed afresh with a
        # throwaway secret, as events/sign.py signs the samples, so that ingest reads it the whole way it would.
        signature = (
            "not verified: no webhook secret is configured (WEBHOOK_SECRETS, a JSON object source -> secret, "
            "as the functions have it; the samples in events/ are signed with events/local-secrets.json)"
        )
        request, throwaway = _signed_afresh(request)
        secret_for = lambda source: throwaway  # noqa: E731
    try:
        accepted = ingest.accept(request, kind.name, secret_for)
    except WebhookRejected as exc:
        raise _refused(f"the function would answer {exc.status} {exc.error}: {exc.detail}") from None
    except ConfigError as exc:
        raise _cannot(str(exc)) from None
    reply = accepted.reply
    if reply is None and not accepted.events:
        reply = {"status": "ignored", "detail": f"no {kind.name} event in this {request.source} delivery"}
    return Delivery(kind, "http", list(accepted.events), signature, reply, request.source)


def read_delivery(doc: Any, wanted: str | None, settings_for: Callable[[str], Settings]) -> Delivery:
    """The canonical events a function of the chosen kind would apply from `doc`, each validated as it would be."""
    trigger = trigger_of(doc)
    if trigger == "http":
        delivery = _webhook(doc, wanted, settings_for)
    elif trigger == "eventbridge":
        found = _kind_of_word(str(doc.get("detail-type")), "the EventBridge detail-type")
        kind = _choose(found, wanted, "the EventBridge event")
        delivery = Delivery(kind, trigger, [doc["detail"]])
    else:
        events = _sqs_events(doc) if trigger == "sqs" else [doc]
        what = "the SQS batch" if trigger == "sqs" else "the event"
        delivery = Delivery(_choose(_event_kind(events), wanted, what), trigger, events)
    for number, event in enumerate(delivery.events, 1):
        where = f"event {number} of {len(delivery.events)}: " if len(delivery.events) > 1 else ""
        try:
            validate_event(event, delivery.kind.name)
        except EventInvalid as exc:
            raise _refused(f"{where}the function would refuse it (EventInvalid): {exc}") from None
    return delivery


# ---------------------------------------------------------------------------------------------------- the dry run


class DryRunPort:
    """A KeapPort that calls nothing: the runner walks the plan through it, and it answers with what `--live`
    found (the contact's ids) or with NEW_CONTACT, so the runner makes the follow-ups it would make."""

    def __init__(self, api: str, contact_ids: list[int] | None) -> None:
        self.call_names = CALL_NAMES[api]
        self.contact_ids = contact_ids  # None: not looked up

    def expect_calls(self, calls: int) -> None:
        return None

    def upsert_contact(self, fields: dict[str, Any], dup_check: str) -> int:
        return self.contact_ids[0] if self.contact_ids else NEW_CONTACT

    def find_contacts(self, email: str) -> list[int]:
        return [NEW_CONTACT] if self.contact_ids is None else list(self.contact_ids)

    def __getattr__(self, op: str) -> Callable[..., None]:
        if op in self.call_names:
            return lambda *args: None
        raise AttributeError(op)


def dry_run(the_plan: Plan, api: str, concurrency: int, contact_ids: list[int] | None) -> RunResult:
    """The steps the runner would take for this plan, in its order, against a port that calls nothing."""
    return SequenceRunner(DryRunPort(api, contact_ids), concurrency).run(the_plan)  # type: ignore[arg-type]


def _op_of(key: str) -> str:
    # A step's key is `op` (the first call) or `<contact>/op:args` (Call.key, placed by the runner).
    return key.rsplit("/", 1)[-1].split(":", 1)[0]


# ---------------------------------------------------------------------------------------------------- --live


@dataclass
class Contact:
    """What Keap holds about the event's contact, read with read-only calls."""

    email: str
    ids: list[int]
    tags: dict[int, set[int]] = field(default_factory=dict)
    steps: dict[int, dict[int, int | None]] = field(default_factory=dict)  # contact -> sequence -> next step

    def as_json(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "existing": bool(self.ids),
            "ids": self.ids,
            "tags": {str(cid): sorted(tags) for cid, tags in self.tags.items()},
            "sequences": {
                str(cid): {str(seq): ("unknown" if step is None else step) for seq, step in seqs.items()}
                for cid, seqs in self.steps.items()
            },
        }


def _sequences_of(the_plan: Plan) -> list[int]:
    return list(dict.fromkeys(int(call.args[0]) for call in the_plan.follow_ups if call.op in SEQUENCE_OPS))


def look_up(client: Any, api: str, email: str, the_plan: Plan) -> Contact:
    """The contacts with this email, their tags and (XML-RPC) their next step in each referenced sequence."""
    if api == "xmlrpc":
        found = client.find_by_email(email, ["Id", "Groups"])
        contact = Contact(email, sorted(int(row["Id"]) for row in found))
        for row in found:
            groups = str(row.get("Groups") or "")
            contact.tags[int(row["Id"])] = {int(tag) for tag in groups.split(",") if tag.strip().isdigit()}
        for cid in contact.ids:
            contact.steps[cid] = {seq: client.get_next_campaign_step(cid, seq) for seq in _sequences_of(the_plan)}
        return contact
    contact = Contact(email, client.find_contact_ids(email))
    for cid in contact.ids:
        contact.tags[cid] = {int(tag) for tag in client.get_contact(cid, ["tag_ids"]).get("tag_ids") or []}
        contact.steps[cid] = dict.fromkeys(_sequences_of(the_plan))  # REST v2 does not say: "unknown"
    return contact


def _already(op: str, args: list[Any], contact: Contact | None) -> bool | None:
    """Whether Keap already holds what the step would do (None: unknown, or it does not apply)."""
    if contact is None or not args:
        return None
    cid = args[0]
    if op == "upsert_contact":
        return bool(contact.ids)
    tags, steps = contact.tags.get(cid, set()), contact.steps.get(cid, {})
    if op in ("apply_tag", "remove_tag"):
        return (args[1] in tags) == (op == "apply_tag")
    if op in ("start_sequence", "stop_sequence"):
        step = 0 if cid == NEW_CONTACT else steps.get(args[1])
        return None if step is None else (step > 0) == (op == "start_sequence")
    return None


class Names:
    """The names the app gives the ids a plan names, from the catalog's listings (none without --live)."""

    def __init__(self, catalog: Any = None) -> None:
        self.catalog = catalog

    def _listing(self, read: Callable[[], dict[int, str]]) -> dict[int, str]:
        from .catalog import CatalogUnsupported

        try:
            return read()
        except CatalogUnsupported:
            return {}

    def of(self, op: str, args: list[Any]) -> str | None:
        catalog = self.catalog
        if catalog is None or len(args) < 2:
            return None
        thing = args[1]
        if op in ("apply_tag", "remove_tag"):
            return self._listing(catalog.tags).get(thing)
        if op in SEQUENCE_OPS:
            if len(args) > 2 and args[2] is not None:  # a v2 sequence, known within its campaign
                return self._listing(lambda: catalog.sequences(args[2])).get(thing)
            return self._listing(catalog.legacy_sequences).get(thing)
        if op == "run_action_set":
            return self._listing(catalog.action_sets).get(thing)
        return None


def _catalog(api: str) -> Any:
    """The Catalog of the app the functions talk to (its listings name the ids)."""
    from .catalog import Catalog, CatalogError

    try:
        return Catalog.from_env(api)
    except CatalogError as exc:
        raise _cannot(f"cannot read the Keap app's listings: {exc}") from None


# ---------------------------------------------------------------------------------------------------- explain


def _masked(value: Any, show_pii: bool) -> Any:
    """`value` with email addresses masked as the functions' logs mask them (unless --show-pii)."""
    if show_pii:
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _masked(item, show_pii) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(item, show_pii) for item in value]
    return value


def explain_event(
    event: dict[str, Any],
    routes: Any,
    settings: Settings,
    *,
    client: Any = None,
    names: Names | None = None,
    show_pii: bool = False,
    planned: Plan | None = None,
) -> dict[str, Any]:
    """One event explained, as `--json` prints it: the event, the rules, the calls (and the contact, live).

    `planned` is the event's plan when the caller changed it (a replay runs part of it); else it is made here.
    """
    api = settings.keap_api
    the_plan = planned or plan(event, routes)
    contact = None
    if client is not None:
        contact = look_up(client, api, str(contact_fields(event).get("Email") or ""), the_plan)
    run = dry_run(the_plan, api, settings.keap_concurrency, None if contact is None else contact.ids)
    notes = [run.note] if run.note else []
    dup_check = the_plan.first.args[1] if the_plan.first.op == "upsert_contact" else "Email"
    if contact is not None and the_plan.first.op == "upsert_contact" and (dup_check != "Email" or len(contact.ids) > 1):
        # The look-up is by email; Keap's duplicate check decides which contact (if any) the upsert updates.
        notes.append(f"contacts were looked up by email; Keap matches by {dup_check} and updates one contact at most")
    names = names or Names()
    calls = []
    for number, step in enumerate(run.steps):
        op, args = _op_of(step.key), list(step.args)
        if number and args and args[0] == NEW_CONTACT:
            args[0] = None  # a follow-up's contact, known only once the first call answers
        calls.append(
            {
                "step": 1 if number == 0 else 2,
                "op": op,
                "method": step.call,
                "args": args,
                "name": names.of(op, step.args),
                "already": _already(op, step.args, contact),
            }
        )
    return _masked(
        {
            "event": event,
            "rules": list(the_plan.rules),
            "calls": calls,
            "contact": None if contact is None else contact.as_json(),
            "note": "; ".join(notes) or None,
        },
        show_pii,
    )


def explain(args: argparse.Namespace) -> dict[str, Any]:
    """The whole account of one event file; ExplainError says why there is none."""
    doc = read_file(args.event_file)
    settings_cache: dict[str, Settings] = {}

    def settings_for(kind: str) -> Settings:
        if kind not in settings_cache:
            try:
                settings_cache[kind] = Settings.from_env(kind)
            except ConfigError as exc:
                raise _cannot(str(exc)) from None
        return settings_cache[kind]

    delivery = read_delivery(doc, args.function, settings_for)
    settings = settings_for(delivery.kind.name)
    routes_file = args.routes or settings.routes_file
    try:
        routes = load_routes(routes_file, settings.keap_api)
    except RoutesError as exc:
        raise _cannot(str(exc)) from None
    client, names = None, Names()
    if args.live and delivery.events:
        client = _live_client(settings)
        names = Names(_catalog(settings.keap_api))
    from .catalog import CatalogError

    try:
        explained = [
            explain_event(event, routes, settings, client=client, names=names, show_pii=args.show_pii)
            for event in delivery.events
        ]
    except CatalogError as exc:
        raise _cannot(f"cannot read the Keap app's listings: {exc}") from None
    except KeapRequestError as exc:
        raise _cannot(f"cannot look it up: {exc}") from None
    except KeapTransportError as exc:
        raise _cannot(f"Keap is unreachable: {exc}") from None
    except KeapError as exc:
        raise _cannot(f"Keap refused a look-up: {exc.error_class}: {exc}") from None
    report: dict[str, Any] = {
        "file": args.event_file,
        "function": delivery.kind.folder,
        "trigger": delivery.trigger,
        "signature": delivery.signature,
        "api": settings.keap_api,
        "routes": routes_file,
        "live": bool(client),
        "reply": delivery.reply,
    }
    if len(explained) == 1:
        report.update(explained[0])
    elif not explained:  # answered without an event: nothing reaches Keap
        report.update(event=None, rules=[], calls=[], contact=None, note=None)
    else:
        report["events"] = explained
    return report


def _live_client(settings: Settings) -> Any:
    """The product's client for the API the functions use (same URL, key and options); only its reads are used."""
    try:
        port = settings.keap_port()
    except (ConfigError, KeapError) as exc:
        raise _cannot(str(exc)) from None
    return port.client


# ---------------------------------------------------------------------------------------------------- output


def _arg_text(arg: Any) -> str:
    if arg is None:
        return "<contact>"
    return json.dumps(arg, ensure_ascii=False, default=str)


def _yes_no(value: bool | None) -> str:
    return "" if value is None else ("yes" if value else "no")


def _print_event(explained: dict[str, Any], live: bool) -> list[Any]:
    from rich import box
    from rich.json import JSON
    from rich.table import Table

    event = explained["event"]
    parts: list[Any] = [
        f"event {event.get('id')} ({event.get('kind')} from {event.get('source')}):",
        JSON.from_data(event),
    ]
    rules = explained["rules"]
    parts.append("rules matched: " + (", ".join(rules) if rules else "none (only the first call is made)"))
    contact = explained.get("contact")
    if contact is not None:
        if contact["existing"]:
            held = "; ".join(
                f"{cid}: tags {', '.join(map(str, tags)) or 'none'}" for cid, tags in contact["tags"].items()
            )
            parts.append(f"contact {contact['email']}: existing, id {', '.join(map(str, contact['ids']))} ({held})")
            for cid, seqs in contact["sequences"].items():
                for seq, step in seqs.items():
                    where = (
                        "unknown (REST v2 does not say)"
                        if step == "unknown"
                        else (f"in it, next step {step}" if step else "not in it (or finished)")
                    )
                    parts.append(f"  contact {cid} in sequence {seq}: {where}")
        else:
            parts.append(f"contact {contact['email']}: no contact has this email")
    table = Table("#", "call", "args", *(["name", "already"] if live else []), box=box.SIMPLE)
    for call in explained["calls"]:
        row = [str(call["step"]), call["method"], ", ".join(_arg_text(a) for a in call["args"])]
        table.add_row(*row, *([call["name"] or "", _yes_no(call["already"])] if live else []))
    parts.append(table)
    if len(explained["calls"]) > 2:
        parts.append("step 2 starts once step 1 has answered; its calls are made at once (KEAP_CONCURRENCY at a time)")
    if explained.get("note"):
        parts.append(explained["note"])
    return parts


def print_report(report: dict[str, Any]) -> None:
    from .output import show

    live = report["live"]
    head = [
        f"{report['file']}: {report['trigger']} delivery to the {report['function']} function",
        *([f"signature: {report['signature']}"] if report["signature"] else []),
        f"Keap API: {report['api']} (KEAP_API); routes: {report['routes']}"
        + ("" if live else "; offline (--live looks the contact and the names up)"),
    ]
    if report.get("reply") is not None:
        head.append(f"the function would answer 200 {json.dumps(report['reply'])} and make no Keap call")
    explained = report.get("events") or ([report] if report.get("event") else [])
    body: list[Any] = []
    for item in explained:
        body += ["", *_print_event(item, live)]
    show(*head, *body)


# ---------------------------------------------------------------------------------------------------- argparse


def cmd_explain(args: argparse.Namespace) -> int:
    try:
        report = explain(args)
    except ExplainError as exc:
        print(f"keap-relay explain: {exc}", file=sys.stderr)
        return exc.status
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    else:
        print_report(report)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`keap-relay explain`'s arguments (an entry of keap_relay_ops.cli.COMMANDS)."""
    parser.add_argument(
        "event_file",
        metavar="EVENT_FILE",
        help="a webhook (API Gateway v2), SQS or EventBridge envelope, or canonical event, as in events/ (- for stdin)",
    )
    kinds = "{" + ",".join(FOLDERS) + "}"
    which = "the function it goes to (default: from the webhook's path or the event's kind)"
    parser.add_argument("--function", type=_function, metavar=kinds, help=which)
    parser.add_argument(
        "--routes", metavar="FILE", help="the routes file (default: ROUTES_FILE, else config/routes.yaml)"
    )
    live = (
        "also read Keap (KEAP_URL, KEAP_API_KEY, KEAP_API as the functions): the contact, its tags and sequences, "
        "the ids' names; never writes"
    )
    parser.add_argument("--live", action="store_true", help=live)
    parser.add_argument(
        "--json", action="store_true", help="one JSON object: event, rules, calls (method, args, name, already)"
    )
    parser.add_argument(
        "--show-pii", action="store_true", help="show email addresses (masked as in the logs by default)"
    )
    parser.set_defaults(handler=cmd_explain)


def _function(word: str) -> str:
    try:
        return kind_named(word).folder
    except KeyError as exc:
        raise argparse.ArgumentTypeError(exc.args[0]) from None
