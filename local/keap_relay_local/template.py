"""Reads template.yaml into the few facts the local stack deploys: functions, routes, queues, rules, tables."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ACCOUNT_ID = "123456789012"
STACK_NAME = "keap-relay-local"

# CloudFormation short-form tags → the long form the resolver understands.
_TAG_TO_FN = {
    "Ref": "Ref",
    "Condition": "Condition",
    "GetAtt": "Fn::GetAtt",
    "Sub": "Fn::Sub",
    "Join": "Fn::Join",
    "Select": "Fn::Select",
    "Split": "Fn::Split",
    "If": "Fn::If",
    "Equals": "Fn::Equals",
    "Not": "Fn::Not",
    "And": "Fn::And",
    "Or": "Fn::Or",
    "FindInMap": "Fn::FindInMap",
    "GetAZs": "Fn::GetAZs",
    "ImportValue": "Fn::ImportValue",
    "Base64": "Fn::Base64",
    "Cidr": "Fn::Cidr",
    "Transform": "Fn::Transform",
}


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns `!Ref x` style tags into `{"Ref": x}` dicts instead of failing."""


def _construct_cfn_tag(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = _TAG_TO_FN.get(tag_suffix, f"Fn::{tag_suffix}")
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if name == "Fn::GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_cfn_tag)


def load_template(path: Path) -> dict[str, Any]:
    """Parse a SAM/CloudFormation template, keeping intrinsic functions as plain dicts."""
    with open(path, encoding="utf-8") as fh:
        doc = yaml.load(fh, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass, only adds CFN tags
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
        pattern = _route_regex(self.path)
        found = pattern.fullmatch(path)
        return None if found is None else {k: v for k, v in found.groupdict().items()}


def _route_regex(path: str) -> re.Pattern[str]:
    parts = []
    for segment in path.strip("/").split("/"):
        greedy = re.fullmatch(r"\{(\w+)\+\}", segment)
        plain = re.fullmatch(r"\{(\w+)\}", segment)
        if greedy:
            parts.append(f"(?P<{greedy.group(1)}>.+)")
        elif plain:
            parts.append(f"(?P<{plain.group(1)}>[^/]+)")
        else:
            parts.append(re.escape(segment))
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


class _Resolver:
    """Evaluates intrinsic functions against parameter defaults and local physical names."""

    def __init__(self, doc: dict[str, Any], region: str) -> None:
        self.resources: dict[str, Any] = doc.get("Resources") or {}
        self.parameters = {k: (v or {}).get("Default") for k, v in (doc.get("Parameters") or {}).items()}
        self.mappings: dict[str, Any] = doc.get("Mappings") or {}
        self.conditions: dict[str, Any] = doc.get("Conditions") or {}
        self.pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": STACK_NAME,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
        }
        self.region = region

    # Physical names: the template's own name property when it has one, else the logical id.
    _NAME_PROPERTY = {
        "AWS::SQS::Queue": "QueueName",
        "AWS::DynamoDB::Table": "TableName",
        "AWS::Serverless::SimpleTable": "TableName",
        "AWS::Events::Rule": "Name",
        "AWS::Serverless::Function": "FunctionName",
    }
    _ARN_FORMAT = {
        "AWS::SQS::Queue": "arn:aws:sqs:{region}:{account}:{name}",
        "AWS::DynamoDB::Table": "arn:aws:dynamodb:{region}:{account}:table/{name}",
        "AWS::Serverless::SimpleTable": "arn:aws:dynamodb:{region}:{account}:table/{name}",
        "AWS::Events::Rule": "arn:aws:events:{region}:{account}:rule/{name}",
        "AWS::Serverless::Function": "arn:aws:lambda:{region}:{account}:function:{name}",
    }

    def physical_name(self, logical_id: str) -> str:
        resource = self.resources.get(logical_id) or {}
        prop = self._NAME_PROPERTY.get(resource.get("Type", ""))
        raw = (resource.get("Properties") or {}).get(prop) if prop else None
        name = self.resolve(raw) if raw is not None else None
        return str(name) if name else logical_id

    def arn(self, logical_id: str) -> str:
        kind = (self.resources.get(logical_id) or {}).get("Type", "")
        fmt = self._ARN_FORMAT.get(kind, "arn:aws:local:{region}:{account}:{name}")
        return fmt.format(region=self.region, account=ACCOUNT_ID, name=self.physical_name(logical_id))

    def _ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resources:
            return self.physical_name(name)
        raise ValueError(f"template: !Ref to unknown name {name!r}")

    def _get_att(self, logical_id: str, attr: str) -> Any:
        if attr == "Arn":
            return self.arn(logical_id)
        return self.physical_name(logical_id)

    def _sub(self, value: Any) -> str:
        text, variables = (value, {}) if isinstance(value, str) else (value[0], value[1])

        def replace(found: re.Match[str]) -> str:
            token = found.group(1)
            if token.startswith("!"):
                return "${" + token[1:] + "}"
            if token in variables:
                return str(self.resolve(variables[token]))
            if "." in token and token.split(".", 1)[0] in self.resources:
                return str(self._get_att(*token.split(".", 1)))
            return str(self._ref(token))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.conditions[name]))

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.resolve(item) for item in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, value),) = node.items()
            handler = self._FUNCTIONS.get(key)
            if handler is not None:
                return handler(self, value)
        return {k: self.resolve(v) for k, v in node.items()}

    _FUNCTIONS = {
        "Ref": lambda self, v: self._ref(v),
        "Fn::GetAtt": lambda self, v: self._get_att(*(v.split(".", 1) if isinstance(v, str) else v)),
        "Fn::Sub": lambda self, v: self._sub(v),
        "Fn::Join": lambda self, v: str(v[0]).join(str(x) for x in self.resolve(v[1])),
        "Fn::Select": lambda self, v: self.resolve(v[1])[int(self.resolve(v[0]))],
        "Fn::Split": lambda self, v: str(self.resolve(v[1])).split(v[0]),
        "Fn::FindInMap": lambda self, v: self.mappings[self.resolve(v[0])][self.resolve(v[1])][self.resolve(v[2])],
        "Fn::If": lambda self, v: self.resolve(v[1] if self.condition(v[0]) else v[2]),
        "Fn::Equals": lambda self, v: self.resolve(v[0]) == self.resolve(v[1]),
        "Fn::Not": lambda self, v: not self.resolve(v[0]),
        "Fn::And": lambda self, v: all(self.resolve(x) for x in v),
        "Fn::Or": lambda self, v: any(self.resolve(x) for x in v),
        "Condition": lambda self, v: self.condition(v),
        "Fn::Base64": lambda self, v: self.resolve(v),
    }

    def target(self, node: Any) -> str | None:
        """Logical id a reference points at (`!GetAtt Q.Arn`, `!Ref Q`, `!Sub ${Q.Arn}`), else None."""
        if isinstance(node, dict) and len(node) == 1:
            ((key, value),) = node.items()
            if key == "Ref" and value in self.resources:
                return value
            if key == "Fn::GetAtt":
                logical = value.split(".", 1)[0] if isinstance(value, str) else value[0]
                return logical if logical in self.resources else None
            if key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                names = [t.split(".", 1)[0] for t in re.findall(r"\$\{([^}!]+)\}", text)]
                hits = [n for n in names if n in self.resources]
                return hits[0] if len(hits) == 1 else None
        if isinstance(node, str):
            for logical in self.resources:
                if node in (self.arn(logical), self.physical_name(logical)):
                    return logical
        return None


def _references_resource(node: Any, resources: dict[str, Any]) -> bool:
    """Whether a value names one of the template's resources (a queue URL, a secret ARN ...)."""
    if isinstance(node, list):
        return any(_references_resource(item, resources) for item in node)
    if not isinstance(node, dict):
        return False
    for key, value in node.items():
        if key == "Ref" and value in resources:
            return True
        if key == "Fn::GetAtt":
            return True
        if key == "Fn::Sub":
            text = value if isinstance(value, str) else value[0]
            names = {t.split(".", 1)[0] for t in re.findall(r"\$\{([^}!]+)\}", text)}
            if names & set(resources):
                return True
        if _references_resource(value, resources):
            return True
    return False


def _merged_function_properties(doc: dict[str, Any], props: dict[str, Any]) -> dict[str, Any]:
    merged = dict(((doc.get("Globals") or {}).get("Function")) or {})
    for key, value in props.items():
        if key == "Environment":
            variables = dict((merged.get("Environment") or {}).get("Variables") or {})
            variables.update((value or {}).get("Variables") or {})
            merged["Environment"] = {"Variables": variables}
        else:
            merged[key] = value
    return merged


def _function_short_name(logical_id: str, code_uri: Any) -> str:
    if isinstance(code_uri, str) and code_uri.strip("/"):
        return Path(code_uri.rstrip("/")).name
    return re.sub(r"Function$", "", logical_id).lower()


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


def _queue_spec(resolver: _Resolver, logical_id: str, props: dict[str, Any]) -> QueueSpec:
    attributes: dict[str, str] = {}
    dlq = None
    max_receive = None
    for key, value in props.items():
        if key not in _SQS_ATTRIBUTES and key != "RedrivePolicy":
            continue
        if key == "RedrivePolicy":
            dlq = resolver.target(value.get("deadLetterTargetArn"))
            max_receive = int(resolver.resolve(value.get("maxReceiveCount", 10)))
            continue
        if key == "RedriveAllowPolicy":
            attributes[key] = json.dumps(resolver.resolve(value))
            continue
        resolved = resolver.resolve(value)
        if resolved is None:
            continue
        attributes[key] = str(resolved).lower() if isinstance(resolved, bool) else str(resolved)
    return QueueSpec(logical_id, resolver.physical_name(logical_id), attributes, dlq, max_receive)


def _table_spec(resolver: _Resolver, logical_id: str, kind: str, props: dict[str, Any]) -> TableSpec:
    props = resolver.resolve(props)
    if kind == "AWS::Serverless::SimpleTable":
        primary = props.get("PrimaryKey") or {"Name": "id", "Type": "String"}
        type_code = {"String": "S", "Number": "N", "Binary": "B"}[primary.get("Type", "String")]
        props = {
            "KeySchema": [{"AttributeName": primary["Name"], "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": primary["Name"], "AttributeType": type_code}],
        }
    keep = ("KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes", "TimeToLiveSpecification")
    table = {k: v for k, v in props.items() if k in keep}
    return TableSpec(logical_id, resolver.physical_name(logical_id), table)


def read_stack(template_path: Path, region: str = "us-east-1") -> StackSpec:
    """Everything the local stack deploys, read from template.yaml."""
    doc = load_template(template_path)
    resolver = _Resolver(doc, region)
    functions: dict[str, FunctionSpec] = {}
    queues: dict[str, QueueSpec] = {}
    rules: dict[str, RuleSpec] = {}
    tables: dict[str, TableSpec] = {}

    for logical_id, resource in resolver.resources.items():
        kind = (resource or {}).get("Type", "")
        cond = resource.get("Condition")
        if cond and not resolver.condition(cond):
            continue
        props = resource.get("Properties") or {}
        if kind == "AWS::SQS::Queue":
            queues[logical_id] = _queue_spec(resolver, logical_id, props)
        elif kind in ("AWS::DynamoDB::Table", "AWS::Serverless::SimpleTable"):
            tables[logical_id] = _table_spec(resolver, logical_id, kind, props)
        elif kind == "AWS::Events::Rule":
            targets = tuple(
                RuleTarget(
                    resolver.target(t.get("Arn")),
                    {k: resolver.resolve(v) for k, v in t.items() if k != "Arn"},
                )
                for t in props.get("Targets") or []
            )
            pattern = resolver.resolve(props.get("EventPattern") or {})
            rules[logical_id] = RuleSpec(
                logical_id,
                resolver.physical_name(logical_id),
                str(resolver.resolve(props.get("EventBusName", "default"))).rsplit("/", 1)[-1],
                pattern if isinstance(pattern, dict) else json.loads(pattern),
                str(resolver.resolve(props.get("State", "ENABLED"))),
                targets,
            )
        elif kind == "AWS::Serverless::Function":
            functions_spec = _function_spec(doc, resolver, logical_id, props)
            functions[functions_spec.name] = functions_spec
    return StackSpec(functions, queues, rules, tables)


def _function_spec(doc: dict[str, Any], resolver: _Resolver, logical_id: str, raw: dict[str, Any]) -> FunctionSpec:
    props = _merged_function_properties(doc, raw)
    code_uri = resolver.resolve(props.get("CodeUri", ""))
    name = _function_short_name(logical_id, code_uri)
    routes = []
    queue = None
    batch_size, window, report_failures = 10, 0, False
    for event in (props.get("Events") or {}).values():
        event_props = event.get("Properties") or {}
        if event.get("Type") == "HttpApi":
            method = str(resolver.resolve(event_props.get("Method", "ANY"))).upper()
            path = str(resolver.resolve(event_props.get("Path", "$default")))
            routes.append(
                HttpRoute("ANY" if method in ("ANY", "X-AMAZON-APIGATEWAY-ANY-METHOD") else method, path, name)
            )
        elif event.get("Type") == "SQS":
            queue = resolver.target(event_props.get("Queue"))
            batch_size = int(resolver.resolve(event_props.get("BatchSize", 10)))
            window = int(resolver.resolve(event_props.get("MaximumBatchingWindowInSeconds", 0)))
            response_types = resolver.resolve(event_props.get("FunctionResponseTypes") or [])
            report_failures = "ReportBatchItemFailures" in response_types
    # Values from parameters and literals carry over; ones naming resources (queue URLs, secret ARNs)
    # mean nothing locally, and the stack supplies its own for the variables the functions need.
    environment = {}
    for key, raw in ((props.get("Environment") or {}).get("Variables") or {}).items():
        if _references_resource(raw, resolver.resources):
            continue
        value = resolver.resolve(raw)
        if value is not None:
            environment[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return FunctionSpec(
        logical_id=logical_id,
        name=name,
        code_dir=str(code_uri or f"functions/{name}").rstrip("/"),
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
