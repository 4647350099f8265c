"""`keap-relay call`: one ContactService method over XML-RPC by hand, through the product's client and its retries.

The signatures below are Keap's ContactService document (../shared/reference/contactservice-api.txt), kept here
so the command works against real Keap without the emulator; tests/integration/test_call_cli.py checks that the
emulator's method table agrees with it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SERVICE = "ContactService"
# The Keap key's sustained calls per second when nothing says otherwise: the template's KeapRateLimit default
# (a personal access token or service account key). KEAP_RATE_LIMIT or KEAP_MAX_CALLS_PER_SECOND set it.
DEFAULT_KEY_RATE = 4.0


@dataclass(frozen=True)
class Method:
    """One ContactService method: its parameters after the key (name, kind) and whether it changes Keap."""

    params: tuple[tuple[str, str], ...]
    changes: bool

    def usage(self, name: str) -> str:
        return f"{name} " + " ".join(f"{pname}:{kind}" for pname, kind in self.params)


# method -> signature, in the document's order. Kinds: int, string, struct (a JSON object), int[] and
# string[] (comma lists on the command line).
METHODS: dict[str, Method] = {
    "ContactService.add": Method((("data", "struct"),), True),
    "ContactService.merge": Method((("contactId", "int"), ("duplicateContactId", "int")), True),
    "ContactService.addToCampaign": Method((("contactId", "int"), ("campaignId", "int")), True),
    "ContactService.addToGroup": Method((("contactId", "int"), ("groupId", "int")), True),
    "ContactService.getNextCampaignStep": Method((("contactId", "int"), ("followUpSequenceId", "int")), False),
    "ContactService.findByEmail": Method((("email", "string"), ("selectedFields", "string[]")), False),
    "ContactService.load": Method((("contactId", "int"), ("selectedFields", "string[]")), False),
    "ContactService.pauseCampaign": Method((("contactId", "int"), ("sequenceId", "int")), True),
    "ContactService.removeFromCampaign": Method((("contactId", "int"), ("followUpSequenceId", "int")), True),
    "ContactService.removeFromGroup": Method((("contactId", "int"), ("tagId", "int")), True),
    "ContactService.resumeCampaignForContact": Method((("contactId", "int"), ("seqId", "int")), True),
    "ContactService.rescheduleCampaignStep": Method((("contactIds", "int[]"), ("sequenceStepId", "int")), True),
    "ContactService.runActionSequence": Method((("contactId", "int"), ("actionSetId", "int")), True),
    "ContactService.addWithDupCheck": Method((("data", "struct"), ("dupCheckType", "string")), True),
    "ContactService.update": Method((("contactId", "int"), ("data", "struct")), True),
}


class CallError(Exception):
    """The call cannot be made as given (exit 2): an unknown method, a wrong argument, no key."""


def method_named(word: str) -> str:
    """`ContactService.addToGroup` or `addToGroup` -> the method's full name."""
    name = word if "." in word else f"{SERVICE}.{word}"
    if name not in METHODS:
        known = ", ".join(m.split(".", 1)[1] for m in METHODS)
        raise CallError(f"no ContactService method {word!r}; one of {known}")
    return name


def _int(text: Any, what: str) -> int:
    if isinstance(text, bool):
        raise CallError(f"{what} must be an integer id, not {text!r}")
    try:
        return int(str(text).strip())
    except ValueError:
        raise CallError(f"{what} must be an integer id, not {text!r}") from None


def _list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    return [part.strip() for part in str(value).split(",") if part.strip()]


def _struct(value: Any, what: str) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise CallError(f"{what} must be a JSON object: {exc}") from None
    if not isinstance(value, dict):
        raise CallError(f"{what} must be a JSON object of Keap field name to value")
    return value


# parameter kind -> (value from the command line or --json-args, parameter name) -> the value sent
CONVERT: dict[str, Callable[[Any, str], Any]] = {
    "int": _int,
    "string": lambda value, what: value if isinstance(value, str) else json.dumps(value),
    "struct": _struct,
    "int[]": lambda value, what: [_int(item, f"{what} item") for item in _list(value)],
    "string[]": lambda value, what: [str(item) for item in _list(value)],
}


def convert(name: str, raw: list[Any]) -> list[Any]:
    """The arguments of method `name`, converted by its signature; CallError when they do not fit it."""
    method = METHODS[name]
    if len(raw) != len(method.params):
        raise CallError(f"{name} takes {len(method.params)} argument(s), got {len(raw)}: {method.usage(name)}")
    return [CONVERT[kind](value, pname) for (pname, kind), value in zip(method.params, raw, strict=True)]


def client_from_env() -> Any:
    """The product's XML-RPC client as the functions build it (KEAP_URL, KEAP_API_KEY, ClientOptions), paced at the
    key's per-second limit."""
    from keap_relay.aws.config import ConfigError, Settings
    from keap_relay.keap.client import ContactService
    from keap_relay.keap.session import ClientOptions
    from keap_relay.keap.throttle import TokenBucket

    try:
        settings = Settings.from_env("form_submission")  # the kind does not matter to Keap's settings
        key = settings.keap_api_key()
    except ConfigError as exc:
        raise CallError(str(exc)) from None
    # Outside a deployed stack the key's shared budget (the stack's table) is out of reach: pace at its rate here.
    rate = settings.keap_rate_limit or settings.max_calls_per_second or DEFAULT_KEY_RATE
    return ContactService(settings.keap_url, key, options=ClientOptions(rate_limiter=TokenBucket(rate)))


def _described(name: str, args: list[Any]) -> str:
    return f"{name}({', '.join(json.dumps(arg, ensure_ascii=False) for arg in args)})"


def cmd_call(args: argparse.Namespace) -> int:
    from keap_relay.keap.errors import KeapError, KeapRequestError, KeapTransportError

    try:
        name = method_named(args.method)
        if args.json_args is not None and args.args:
            raise CallError("give the arguments as ARGS or as --json-args, not both")
        raw = args.args
        if args.json_args is not None:
            try:
                raw = json.loads(args.json_args)
            except ValueError as exc:
                raise CallError(f"--json-args is not JSON: {exc}") from None
            if not isinstance(raw, list):
                raise CallError("--json-args must be a JSON array of the arguments")
        values = convert(name, raw)
        if METHODS[name].changes and not args.yes:
            print(
                f"would call {_described(name, values)}: it changes Keap; add --yes to make the call", file=sys.stderr
            )
            return 1
        client = client_from_env()
    except CallError as exc:
        print(f"keap-relay call: {exc}", file=sys.stderr)
        return 2
    try:
        result = client.call(name, *values)
    except (KeapRequestError, KeapTransportError) as exc:  # nothing was answered: could not run
        print(f"keap-relay call: {exc.error_class}: {exc}", file=sys.stderr)
        return 2
    except KeapError as exc:  # Keap answered with a fault (or an error status): the call did not do it
        print(f"keap-relay call: {exc.error_class}: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`keap-relay call`'s arguments (an entry of keap_relay_ops.cli.COMMANDS)."""
    parser.add_argument("method", metavar="METHOD", help="e.g. ContactService.findByEmail (or findByEmail)")
    parser.add_argument(
        "args",
        nargs="*",
        metavar="ARGS",
        help="the method's arguments: ids as integers, lists as a,b,c, structs as JSON",
    )
    parser.add_argument(
        "--json-args", metavar="JSON", help='all the arguments as one JSON array, e.g. \'[7, {"City": "Oslo"}]\''
    )
    parser.add_argument(
        "--yes", action="store_true", help="make a call that changes Keap (without it: show it, exit 1)"
    )
    methods = "\n".join(
        f"  {method.usage(name)}{'  (changes Keap)' if method.changes else ''}" for name, method in METHODS.items()
    )
    parser.epilog = (
        f"Methods:\n{methods}\nKEAP_URL and KEAP_API_KEY as the functions read them; paced at the key's rate."
    )
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.set_defaults(handler=cmd_call)
