"""XML-RPC request -> ContactServiceModel call -> response rendered in Keap's wire style."""

from __future__ import annotations

import base64
import logging
import re
import xmlrpc.client
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from xml.parsers.expat import ExpatError

from keap_emulator.exceptions import LIBRARY, KeapFault
from keap_emulator.listings import data_query
from keap_emulator.model import ContactServiceModel

XML_CONTENT_TYPE = "text/xml;charset=UTF-8"

_log = logging.getLogger("keap_emulator")

_PROLOG = '<?xml version="1.0" encoding="UTF-8"?>'
_PARSE = "Failed to parse XML-RPC request: "

# Keap's parser knows no nil (facts §4); the Apache extension's namespaced form is refused too.
_NIL = re.compile(rb"<(?:[\w.-]+:)?nil\s*/?>")
# Entity expansion is a classic XML bomb; Keap's Xerces is set to refuse any DOCTYPE.
_DOCTYPE = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)
# Characters XML 1.0 cannot carry even escaped; they are dropped rather than sent as broken XML.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


# ---------------------------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class ParsedCall:
    """A request body as understood: method and params, or the fault Keap would answer instead."""

    method: str | None
    params: tuple[Any, ...] = ()
    fault: KeapFault | None = None


def parse_request(body: bytes) -> ParsedCall:
    """Parse a methodCall with the standard library, after Keap's own refusals."""
    if not body.strip():
        return ParsedCall(None, fault=KeapFault(LIBRARY, _PARSE + "Premature end of file."))
    if _DOCTYPE.search(body):
        return ParsedCall(
            None,
            fault=KeapFault(
                LIBRARY,
                _PARSE + 'DOCTYPE is disallowed when the feature "http://apache.org/xml/features/'
                'disallow-doctype-decl" set to true.',
            ),
        )
    method = _sniff_method(body)
    if _NIL.search(body):
        return ParsedCall(method, fault=KeapFault(LIBRARY, _PARSE + "Unknown type: nil"))
    try:
        params, name = xmlrpc.client.loads(body, use_builtin_types=True)
    except (ExpatError, xmlrpc.client.ResponseError, ValueError, TypeError, IndexError) as exc:
        return ParsedCall(method, fault=KeapFault(LIBRARY, _PARSE + _short(exc)))
    if not name:
        return ParsedCall(None, fault=KeapFault(LIBRARY, _PARSE + "Missing methodName"))
    return ParsedCall(name, tuple(params))


def _sniff_method(body: bytes) -> str | None:
    found = re.search(rb"<methodName>\s*([\w.]+)\s*</methodName>", body)
    return found.group(1).decode("ascii") if found else None


def _short(exc: Exception) -> str:
    # Never echo request content back: a client may have put its real key in the first param.
    return type(exc).__name__ if isinstance(exc, TypeError | IndexError) else str(exc).split("\n")[0][:200]


# ---------------------------------------------------------------------------------------------- rendering


def _escape(text: str) -> str:
    text = _NOT_XML.sub("", text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _dump_str(value: str) -> str:
    return f"<value>{_escape(value)}</value>"


def _dump_bool(value: bool) -> str:
    return f"<value><boolean>{int(value)}</boolean></value>"


def _dump_int(value: int) -> str:
    tag = "i4" if -(2**31) <= value < 2**31 else "i8"
    return f"<value><{tag}>{value}</{tag}></value>"


def _dump_double(value: float) -> str:
    return f"<value><double>{value!r}</double></value>"


def _dump_datetime(value: datetime) -> str:
    return f"<value><dateTime.iso8601>{value.strftime('%Y%m%dT%H:%M:%S')}</dateTime.iso8601></value>"


def _dump_bytes(value: bytes) -> str:
    return f"<value><base64>{base64.b64encode(value).decode('ascii')}</base64></value>"


def _dump_struct(value: dict[str, Any]) -> str:
    # Keap leaves out members that have no value (facts §4) rather than sending nil or empty.
    members = "".join(
        f"<member><name>{_escape(str(k))}</name>{dump_value(v)}</member>"
        for k, v in value.items()
        if v is not None and v != ""
    )
    return f"<value><struct>{members}</struct></value>"


def _dump_array(value: list[Any] | tuple[Any, ...]) -> str:
    return f"<value><array><data>{''.join(dump_value(v) for v in value)}</data></array></value>"


# Python type -> renderer, looked up by exact type so that bool is not taken for int.
_DUMPERS: dict[type, Callable[[Any], str]] = {
    str: _dump_str,
    bool: _dump_bool,
    int: _dump_int,
    float: _dump_double,
    datetime: _dump_datetime,
    bytes: _dump_bytes,
    dict: _dump_struct,
    list: _dump_array,
    tuple: _dump_array,
}


def dump_value(value: Any) -> str:
    """One `<value>` in Keap's style: untyped strings, `<i4>`, `<boolean>`, no nil."""
    dumper = _DUMPERS.get(type(value))
    if dumper is None:
        raise TypeError(f"cannot render {type(value).__name__} as XML-RPC")
    return dumper(value)


def render_response(value: Any) -> bytes:
    """A methodResponse carrying one value."""
    return (f"{_PROLOG}<methodResponse><params><param>{dump_value(value)}</param></params></methodResponse>").encode()


def render_fault(code: int, string: str) -> bytes:
    """A methodResponse carrying a fault struct (faultCode `<i4>`, faultString untyped)."""
    body = _dump_struct({"faultCode": code, "faultString": string})
    return f"{_PROLOG}<methodResponse><fault>{body}</fault></methodResponse>".encode()


# ---------------------------------------------------------------------------------------------- methods


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# Parameter kind -> (check, Java type as Keap's signature names it).
_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "string": (lambda v: isinstance(v, str), "String"),
    "int": (_is_int, "int"),
    "struct": (lambda v: isinstance(v, dict), "Map"),
    "int[]": (lambda v: isinstance(v, list) and all(_is_int(x) for x in v), "int[]"),
    "string[]": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "String[]"),
}

# What a Java server would call each decoded Python type, for parameter faults.
_JAVA_NAMES: dict[type, str] = {
    str: "java.lang.String",
    int: "java.lang.Integer",
    bool: "java.lang.Boolean",
    float: "java.lang.Double",
    datetime: "java.util.Date",
    bytes: "[B",
    dict: "java.util.HashMap",
    list: "[Ljava.lang.Object;",
}


@dataclass(frozen=True)
class MethodSpec:
    """One ContactService method: its parameters after the key, and the model call."""

    params: tuple[tuple[str, str], ...]
    call: Callable[..., Any]
    optional: tuple[tuple[str, str], ...] = ()

    def signature(self, name: str) -> str:
        required = ", ".join(f"{_KINDS[k][1]} {n}" for n, k in (("privateKey", "string"), *self.params))
        optional = "".join(f" [, {_KINDS[k][1]} {n}]" for n, k in self.optional)
        return f"{name}({required}{optional})"


M = ContactServiceModel
METHODS: dict[str, MethodSpec] = {
    "ContactService.add": MethodSpec((("data", "struct"),), M.add),
    "ContactService.addWithDupCheck": MethodSpec(
        (("data", "struct"), ("dupCheckType", "string")), M.add_with_dup_check
    ),
    "ContactService.update": MethodSpec((("contactId", "int"), ("data", "struct")), M.update),
    "ContactService.load": MethodSpec((("contactId", "int"), ("selectedFields", "string[]")), M.load),
    "ContactService.findByEmail": MethodSpec((("email", "string"), ("selectedFields", "string[]")), M.find_by_email),
    "ContactService.merge": MethodSpec((("contactId", "int"), ("duplicateContactId", "int")), M.merge),
    "ContactService.addToGroup": MethodSpec((("contactId", "int"), ("groupId", "int")), M.add_to_group),
    "ContactService.removeFromGroup": MethodSpec((("contactId", "int"), ("tagId", "int")), M.remove_from_group),
    "ContactService.addToCampaign": MethodSpec((("contactId", "int"), ("campaignId", "int")), M.add_to_campaign),
    "ContactService.pauseCampaign": MethodSpec((("contactId", "int"), ("sequenceId", "int")), M.pause_campaign),
    "ContactService.resumeCampaignForContact": MethodSpec(
        (("contactId", "int"), ("seqId", "int")), M.resume_campaign_for_contact
    ),
    "ContactService.removeFromCampaign": MethodSpec(
        (("contactId", "int"), ("followUpSequenceId", "int")), M.remove_from_campaign
    ),
    "ContactService.getNextCampaignStep": MethodSpec(
        (("contactId", "int"), ("followUpSequenceId", "int")), M.get_next_campaign_step
    ),
    "ContactService.rescheduleCampaignStep": MethodSpec(
        (("contactIds", "int[]"), ("sequenceStepId", "int")), M.reschedule_campaign_step
    ),
    # The Ruby gem sends an optional third struct of runtime parameters (facts §6).
    "ContactService.runActionSequence": MethodSpec(
        (("contactId", "int"), ("actionSetId", "int")), M.run_action_sequence, (("params", "struct"),)
    ),
    # Beyond ContactService, the two calls keap-relay makes for goals and unsubscribes (facts §6).
    "FunnelService.achieveGoal": MethodSpec(
        (("integration", "string"), ("callName", "string"), ("contactId", "int")), M.achieve_goal
    ),
    "APIEmailService.optOut": MethodSpec((("email", "string"), ("reason", "string")), M.opt_out),
    # Read-only listings of what the app holds (tags, sequences, action sets, custom fields; facts §9).
    "DataService.query": MethodSpec(
        (
            ("table", "string"),
            ("limit", "int"),
            ("page", "int"),
            ("queryData", "struct"),
            ("selectedFields", "string[]"),
        ),
        data_query,
    ),
}
del M


def _check_params(name: str, spec: MethodSpec, params: tuple[Any, ...]) -> tuple[Any, ...]:
    expected = (("privateKey", "string"), *spec.params)
    allowed = (len(expected), len(expected) + len(spec.optional))
    ok = allowed[0] <= len(params) <= allowed[1] and all(
        _KINDS[kind][0](value) for (_, kind), value in zip((*expected, *spec.optional), params, strict=False)
    )
    if not ok:
        got = ", ".join(_JAVA_NAMES.get(type(v), type(v).__name__) for v in params)
        raise KeapFault.of(12, f"Invalid parameters for {spec.signature(name)}: got ({got})")
    return params[1:]  # the first is the key placeholder; the real key travels in a header


@dataclass(frozen=True)
class RpcResult:
    """A rendered answer and what the call did."""

    body: bytes
    fault_code: int | None
    applied: bool


class ContactServiceResponses:
    """Turns parsed calls into model calls and renders the answers."""

    def __init__(self, model: ContactServiceModel) -> None:
        self.model = model

    def dispatch(self, call: ParsedCall) -> RpcResult:
        """Answer a parsed call: the method's value, or the fault Keap would send."""
        try:
            if call.fault is not None:
                raise call.fault
            spec = METHODS.get(call.method or "")
            if spec is None:
                raise KeapFault(LIBRARY, f"No such handler: {call.method}")
            args = _check_params(call.method or "", spec, call.params)
            value = spec.call(self.model, *args)
        except KeapFault as fault:
            return RpcResult(render_fault(fault.code, fault.string), fault.code, applied=False)
        except Exception:
            # A bug of the emulator, not a behaviour of Keap: answer as Keap's catch-all would and say so.
            _log.exception("unexpected error in %s", call.method)
            return RpcResult(render_fault(3, "[UnexpectedError]Unexpected error"), 3, applied=False)
        return RpcResult(render_response(value), None, applied=True)
