"""Reads template.yaml into the few facts the local stack deploys: functions, routes, queues, rules, tables.

cfn-lint's decoder reads the template (short-form tags such as `!GetAtt Q.Arn` become `{"Fn::GetAtt":
["Q", "Arn"]}`); what is left here is the resolution the local stack needs: parameter defaults, pseudo
parameters, resources' names and ARNs, and the intrinsic functions a resource of the kinds above uses.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACCOUNT_ID = "123456789012"
STACK_NAME = "keap-relay-local"
_SUB_TOKEN = re.compile(r"\$\{([^}]+)\}")


def load_template(path: Path) -> dict[str, Any]:
    """Parse a SAM/CloudFormation template, keeping intrinsic functions as plain (long-form) dicts."""
    from cfnlint.decode import decode  # a half-second import: only when a template is read

    doc, errors = decode(str(path))
    if errors:
        raise ValueError(f"{path}: {errors[0].message}")
    if not isinstance(doc, dict) or not isinstance(doc.get("Resources"), dict):
        raise ValueError(f"{path}: not a CloudFormation template (no Resources mapping)")
    return doc


@dataclass(frozen=True)
class HttpRoute:
    """One HttpApi event: `POST /forms/{source}` → function `forms`."""

    method: str  # upper case, or ANY
    path: str  # `/forms/{source}`, `/{proxy+}`, or `$default`
    function: str

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Path parameters when this route takes the request, else None."""
        if self.method not in ("ANY", method.upper()):
            return None
        if self.path == "$default":
            return {}
        found = _route_regex(self.path).fullmatch(path)
        return None if found is None else found.groupdict()


def _route_regex(path: str) -> re.Pattern[str]:
    parts = []
    for segment in path.strip("/").split("/"):
        param = re.fullmatch(r"\{(\w+)(\+?)\}", segment)
        if param is None:
            parts.append(re.escape(segment))
        else:  # {name+} is greedy (several segments), {name} one segment
            parts.append(f"(?P<{param.group(1)}>{'.+' if param.group(2) else '[^/]+'})")
    return re.compile("/" + "/".join(parts))


@dataclass(frozen=True)
class QueueSpec:
    logical_id: str
    name: str
    attributes: dict[str, str]  # SQS CreateQueue attributes as the template gives them
    dlq: str | None  # logical id of the redrive target
    max_receive_count: int | None


@dataclass(frozen=True)
class RuleTarget:
    queue: str | None  # logical id when the target is one of the template's queues
    properties: dict[str, Any]  # Id, InputPath, InputTransformer, SqsParameters ...


@dataclass(frozen=True)
class RuleSpec:
    logical_id: str
    name: str
    event_bus: str
    event_pattern: dict[str, Any]
    state: str
    targets: tuple[RuleTarget, ...]


@dataclass(frozen=True)
class TableSpec:
    logical_id: str
    name: str
    properties: dict[str, Any]  # CreateTable arguments


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str  # short name: the folder under functions/ (`forms`)
    code_dir: str  # relative to the repo root
    handler: str  # `app.handler`
    timeout: int
    memory: int
    environment: dict[str, str]  # literal values only; references are resolved locally by the stack
    queue: str | None  # logical id of the SQS event source
    batch_size: int
    batching_window: int
    report_batch_item_failures: bool
    routes: tuple[HttpRoute, ...] = field(default=())


@dataclass(frozen=True)
class StackSpec:
    functions: dict[str, FunctionSpec]
    queues: dict[str, QueueSpec]
    rules: dict[str, RuleSpec]
    tables: dict[str, TableSpec]

    @property
    def routes(self) -> list[HttpRoute]:
        return [route for fn in self.functions.values() for route in fn.routes]

    def work_queue(self, function: str) -> QueueSpec:
        spec = self.functions[function]
        if spec.queue is None:
            raise KeyError(f"function {function!r} has no SQS event source in the template")
        return self.queues[spec.queue]

    def dead_letter_queue(self, function: str) -> QueueSpec | None:
        dlq = self.work_queue(function).dlq
        return None if dlq is None else self.queues[dlq]

    def rules_for(self, function: str) -> list[RuleSpec]:
        queue = self.functions[function].queue
        return [r for r in self.rules.values() if any(t.queue == queue for t in r.targets)]

    def idempotency_table(self) -> TableSpec | None:
        if not self.tables:
            return None
        named = [t for t in self.tables.values() if "idempot" in t.logical_id.lower()]
        return (named or list(self.tables.values()))[0]

    def archive_table(self) -> TableSpec | None:
        """The event archive's table; None when the template (at its parameters) creates none (ArchiveDays=0)."""
        return next((t for t in self.tables.values() if "archive" in t.logical_id.lower()), None)


# Resource type → (the property that names it, its ARN after "arn:aws:"); without the property, the
# logical id is the name.
_NAMES = {
    "AWS::SQS::Queue": ("QueueName", "sqs:{region}:{account}:{name}"),
    "AWS::DynamoDB::Table": ("TableName", "dynamodb:{region}:{account}:table/{name}"),
    "AWS::Events::Rule": ("Name", "events:{region}:{account}:rule/{name}"),
    "AWS::Serverless::Function": ("FunctionName", "lambda:{region}:{account}:function:{name}"),
}


def _as_parameter(value: Any) -> Any:
    """A parameter's value as CloudFormation passes it: a string (None, an absent default, stays None)."""
    return None if value is None else str(value)


class _Resolver:
    """Evaluates intrinsic functions against parameter defaults and local physical names."""

    def __init__(self, doc: dict[str, Any], region: str, parameters: dict[str, str] | None = None) -> None:
        self.doc = doc
        self.resources: dict[str, Any] = doc["Resources"]
        self.region = region
        declared = doc.get("Parameters") or {}
        unknown = sorted(set(parameters or {}) - set(declared))
        if unknown:
            raise ValueError(f"template: no parameter {', '.join(unknown)}")
        self.values: dict[str, Any] = {
            "AWS::Region": region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": STACK_NAME,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
            # CloudFormation hands every parameter value to the template as a string (a Number's too), so a
            # condition such as `!Equals [!Ref ArchiveDays, "0"]` sees "0" whether the default or an override.
            **{k: _as_parameter((v or {}).get("Default")) for k, v in declared.items()},
            **{k: _as_parameter(v) for k, v in (parameters or {}).items()},
        }

    def physical_name(self, logical_id: str) -> str:
        resource = self.resources.get(logical_id) or {}
        prop = _NAMES.get(resource.get("Type", ""), ("",))[0]
        raw = (resource.get("Properties") or {}).get(prop)
        return str(self.resolve(raw) or logical_id)

    def _get_att(self, logical_id: str, attr: str = "Arn") -> str:
        if attr != "Arn":
            return self.physical_name(logical_id)
        arn = _NAMES.get(self.resources.get(logical_id, {}).get("Type", ""), ("", "local:{region}:{account}:{name}"))
        return "arn:aws:" + arn[1].format(region=self.region, account=ACCOUNT_ID, name=self.physical_name(logical_id))

    def _ref(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        if name in self.resources:
            return self.physical_name(name)
        raise ValueError(f"template: !Ref to unknown name {name!r}")

    def _sub(self, value: Any) -> str:
        text, variables = (value, {}) if isinstance(value, str) else value

        def replace(found: re.Match[str]) -> str:
            token = found.group(1)
            if token.startswith("!"):
                return "${" + token[1:] + "}"
            if token in variables:
                return str(self.resolve(variables[token]))
            if "." in token and token.split(".", 1)[0] in self.resources:
                return self._get_att(*token.split(".", 1))
            return str(self._ref(token))

        return _SUB_TOKEN.sub(replace, text)

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.doc["Conditions"][name]))

    _FUNCTIONS = {
        "Ref": lambda self, v: self._ref(v),
        "Fn::GetAtt": lambda self, v: self._get_att(*(v.split(".", 1) if isinstance(v, str) else v)),
        "Fn::Sub": lambda self, v: self._sub(v),
        "Fn::Join": lambda self, v: str(v[0]).join(str(x) for x in self.resolve(v[1])),
        "Fn::FindInMap": lambda self, v: self.doc["Mappings"][self.resolve(v[0])][self.resolve(v[1])][
            self.resolve(v[2])
        ],
        "Fn::If": lambda self, v: self.resolve(v[1] if self.condition(v[0]) else v[2]),
        "Fn::Equals": lambda self, v: self.resolve(v[0]) == self.resolve(v[1]),
        "Fn::Not": lambda self, v: not self.resolve(v[0]),
        "Condition": lambda self, v: self.condition(v),
    }

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.resolve(item) for item in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, value),) = node.items()
            if key in self._FUNCTIONS:
                return self._FUNCTIONS[key](self, value)
        return {k: self.resolve(v) for k, v in node.items()}

    def named(self, node: Any) -> set[str]:
        """The template's resources a value names: `!Ref Q`, `!GetAtt Q.Arn`, `${Q}` in a `!Sub`."""
        if isinstance(node, list):
            return set().union(*(self.named(item) for item in node))
        if not isinstance(node, dict):
            return set()
        found: set[str] = set()
        for key, value in node.items():
            if key == "Ref":
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value.split(".", 1)[0] if isinstance(value, str) else value[0])
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                found |= {t.split(".", 1)[0] for t in _SUB_TOKEN.findall(text) if not t.startswith("!")}
            else:
                found |= self.named(value)
        return found & self.resources.keys()

    def target(self, node: Any) -> str | None:
        """The one resource a reference points at (`!GetAtt Q.Arn`, `!Ref Q`, `!Sub ${Q.Arn}`), else None."""
        names = self.named(node)
        return names.pop() if len(names) == 1 else None


# Queue properties that mean the same to moto as to SQS; KMS keys and tags have no local meaning.
_SQS_ATTRIBUTES = frozenset(
    {
        "DelaySeconds",
        "MaximumMessageSize",
        "MessageRetentionPeriod",
        "ReceiveMessageWaitTimeSeconds",
        "VisibilityTimeout",
        "FifoQueue",
        "ContentBasedDeduplication",
        "DeduplicationScope",
        "FifoThroughputLimit",
        "RedriveAllowPolicy",
    }
)


def _text(value: Any) -> str:
    """An SQS attribute or environment value as text (booleans as CloudFormation writes them)."""
    if isinstance(value, bool):
        return str(value).lower()
    return json.dumps(value) if isinstance(value, dict) else str(value)


def _queue_spec(resolver: _Resolver, logical_id: str, props: dict[str, Any]) -> QueueSpec:
    attributes = {k: resolver.resolve(v) for k, v in props.items() if k in _SQS_ATTRIBUTES}
    redrive = props.get("RedrivePolicy") or {}
    return QueueSpec(
        logical_id,
        resolver.physical_name(logical_id),
        {k: _text(v) for k, v in attributes.items() if v is not None},
        resolver.target(redrive.get("deadLetterTargetArn")),
        int(resolver.resolve(redrive.get("maxReceiveCount", 10))) if redrive else None,
    )


def _table_spec(resolver: _Resolver, logical_id: str, props: dict[str, Any]) -> TableSpec:
    keep = ("KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes", "TimeToLiveSpecification")
    table = {k: v for k, v in resolver.resolve(props).items() if k in keep}
    return TableSpec(logical_id, resolver.physical_name(logical_id), table)


def _rule_spec(resolver: _Resolver, logical_id: str, props: dict[str, Any]) -> RuleSpec:
    targets = tuple(
        RuleTarget(resolver.target(t.get("Arn")), {k: resolver.resolve(v) for k, v in t.items() if k != "Arn"})
        for t in props.get("Targets") or []
    )
    pattern = resolver.resolve(props.get("EventPattern") or {})
    return RuleSpec(
        logical_id,
        resolver.physical_name(logical_id),
        str(resolver.resolve(props.get("EventBusName", "default"))).rsplit("/", 1)[-1],
        pattern if isinstance(pattern, dict) else json.loads(pattern),
        str(resolver.resolve(props.get("State", "ENABLED"))),
        targets,
    )


def _function_spec(resolver: _Resolver, logical_id: str, own: dict[str, Any]) -> FunctionSpec:
    props = dict((resolver.doc.get("Globals") or {}).get("Function") or {})
    variables = dict((props.get("Environment") or {}).get("Variables") or {})
    variables.update((own.get("Environment") or {}).get("Variables") or {})  # SAM merges the two maps
    props.update(own)
    code_uri = str(resolver.resolve(props.get("CodeUri")) or "").rstrip("/")
    name = Path(code_uri).name if code_uri else re.sub(r"Function$", "", logical_id).lower()
    routes = []
    queue, batch_size, window, report_failures = None, 10, 0, False
    for event in (props.get("Events") or {}).values():
        event_props = resolver.resolve(event.get("Properties") or {})
        if event.get("Type") == "HttpApi":
            method = str(event_props.get("Method", "ANY")).upper()
            method = "ANY" if method == "X-AMAZON-APIGATEWAY-ANY-METHOD" else method
            routes.append(HttpRoute(method, str(event_props.get("Path", "$default")), name))
        elif event.get("Type") == "SQS":
            queue = resolver.target((event.get("Properties") or {}).get("Queue"))
            batch_size = int(event_props.get("BatchSize", 10))
            window = int(event_props.get("MaximumBatchingWindowInSeconds", 0))
            report_failures = "ReportBatchItemFailures" in (event_props.get("FunctionResponseTypes") or [])
    # Values from parameters and literals carry over; ones naming resources (queue URLs, secret ARNs)
    # mean nothing locally, and the stack supplies its own for the variables the functions need.
    environment = {
        key: _text(value)
        for key, raw in variables.items()
        if not resolver.named(raw) and (value := resolver.resolve(raw)) is not None
    }
    return FunctionSpec(
        logical_id=logical_id,
        name=name,
        code_dir=code_uri or f"functions/{name}",
        handler=str(resolver.resolve(props.get("Handler", "app.handler"))),
        timeout=int(resolver.resolve(props.get("Timeout", 3))),
        memory=int(resolver.resolve(props.get("MemorySize", 128))),
        environment=environment,
        queue=queue,
        batch_size=batch_size,
        batching_window=window,
        report_batch_item_failures=report_failures,
        routes=tuple(routes),
    )


def read_stack(template_path: Path, region: str = "us-east-1", parameters: dict[str, str] | None = None) -> StackSpec:
    """Everything the local stack deploys, read from template.yaml at its parameters' defaults, or at the values
    `parameters` gives (as `sam deploy --parameter-overrides` would; a condition such as ArchiveOn follows)."""
    resolver = _Resolver(load_template(template_path), region, parameters)
    spec = StackSpec({}, {}, {}, {})
    for logical_id, resource in resolver.resources.items():
        kind = resource.get("Type", "")
        if resource.get("Condition") and not resolver.condition(resource["Condition"]):
            continue
        props = resource.get("Properties") or {}
        if kind == "AWS::SQS::Queue":
            spec.queues[logical_id] = _queue_spec(resolver, logical_id, props)
        elif kind == "AWS::DynamoDB::Table":
            spec.tables[logical_id] = _table_spec(resolver, logical_id, props)
        elif kind == "AWS::Events::Rule":
            spec.rules[logical_id] = _rule_spec(resolver, logical_id, props)
        elif kind == "AWS::Serverless::Function":
            function = _function_spec(resolver, logical_id, props)
            spec.functions[function.name] = function
    return spec
