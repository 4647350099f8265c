"""template.yaml, samconfig.toml and events/ keep the promises of the deployment: wiring, limits, IAM."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest

from keap_relay.aws.archive import EMAIL_INDEX
from keap_relay.events.kinds import KINDS as KIND_TABLE
from keap_relay.events.sources import generic
from keap_relay.keap.defaults import DEFAULT_URL
from keap_relay.routing.routes import KEAP_APIS
from keap_relay_local.defaults import LOCAL_WEBHOOK_SECRET
from keap_relay_local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
EVENTS = ROOT / "events"

# kind folder -> (logical-id prefix, canonical kind), from the one kinds table the template must follow
KINDS = {kind.folder: (kind.prefix, kind.name) for kind in KIND_TABLE}
EXPECTED_ROUTES = {
    ("POST", "/forms/{source}", "FormsFunction"),
    ("POST", "/purchases/{source}", "PurchasesFunction"),
    ("POST", "/unsubscribes/{source}", "UnsubscribesFunction"),
    ("GET", "/unsubscribes/{source}", "UnsubscribesFunction"),
}
ENV_CONTRACT = {
    "KEAP_URL",
    "KEAP_API_KEY_SECRET_ARN",
    "WEBHOOK_SECRETS_ARN",
    "ROUTES_FILE",
    "QUEUE_URL",
    "DLQ_URL",
    "MAX_RECEIVE_COUNT",
    "KEAP_MAX_CALLS_PER_SECOND",
    "IDEMPOTENCY_TABLE",
    "ARCHIVE_TABLE",
    "ARCHIVE_DAYS",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "LOG_LEVEL",
}


# ------------------------------------------------------------------------------------------ loading
@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    # The local stack's reader: the same long forms (`{"Ref": x}`, `{"Fn::GetAtt": [a, b]}`) the tests expect.
    return load_template(TEMPLATE)


def ref(name: str) -> dict[str, str]:
    return {"Ref": name}


def arn(name: str) -> dict[str, list[str]]:
    return {"Fn::GetAtt": [name, "Arn"]}


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def props(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return template["Resources"][logical_id]["Properties"]


def function(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    """A function's properties as SAM deploys them: Globals merged in (environment maps merge)."""
    merged = dict(template.get("Globals", {}).get("Function", {}))
    own = props(template, logical_id)
    for key, value in own.items():
        if key == "Environment":
            variables = dict(merged.get("Environment", {}).get("Variables", {}))
            variables.update(value["Variables"])
            merged["Environment"] = {"Variables": variables}
        else:
            merged[key] = value
    return merged


def default(template: dict[str, Any], parameter: str) -> Any:
    return template["Parameters"][parameter]["Default"]


def statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    """A role's statements; one granted only under a condition (`!If [C, statement, !Ref AWS::NoValue]`) as
    its statement, the condition under "IfCondition"."""
    found = []
    for policy in props(template, role).get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in statement:
                condition, granted, otherwise = statement["Fn::If"]
                assert otherwise == ref("AWS::NoValue")
                statement = {**granted, "IfCondition": condition}
            found.append(statement)
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def signature(body: str, secret: str) -> str:
    """The generic source's `x-relay-signature` for a body, made by its adapter."""
    return generic.sign(body.encode(), secret)["x-relay-signature"]


# ------------------------------------------------------------------------------------------ functions
def test_three_functions_run_python313_on_arm64_with_the_shared_and_routes_layers(template):
    functions = resources(template, "AWS::Serverless::Function")
    assert set(functions) == {f"{prefix}Function" for prefix, _ in KINDS.values()}
    for folder, (prefix, _) in KINDS.items():
        fn = function(template, f"{prefix}Function")
        assert fn["CodeUri"] == f"functions/{folder}/"
        assert fn["Handler"] == "app.handler"
        assert fn["Runtime"] == "python3.13"
        assert fn["Architectures"] == ["arm64"]
        assert fn["Timeout"] == 30
        assert fn["MemorySize"] == ref("FunctionMemorySize")
        assert fn["Layers"] == [ref("SharedLayer"), ref("RoutesLayer")]
    assert default(template, "FunctionMemorySize") == 256


def test_shared_layer_is_built_by_sam_for_arm64_from_shared(template):
    layer = template["Resources"]["SharedLayer"]
    assert layer["Properties"]["ContentUri"] == "shared/"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert (ROOT / "shared" / "requirements.txt").is_file()
    # shared/Makefile builds it (test_packaging checks what that target does), so that it ships bytecode;
    # SAM builds layers for x86_64 unless BuildArchitecture says otherwise, which --use-container builds follow.
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    # SAM runs `make build-<LogicalId>` with the Makefile at the top of ContentUri.
    makefile = (ROOT / "shared" / "Makefile").read_text(encoding="utf-8")
    assert any(line.startswith("build-SharedLayer:") for line in makefile.splitlines())


def test_routes_file_ships_in_a_layer_where_routes_file_points(template):
    layer = props(template, "RoutesLayer")
    assert layer["ContentUri"] == "config/"
    # A layer's content is unpacked under /opt, so config/routes.yaml lands at /opt/routes.yaml.
    for prefix, _ in KINDS.values():
        env = function(template, f"{prefix}Function")["Environment"]["Variables"]
        assert env["ROUTES_FILE"] == "/opt/routes.yaml"


def test_every_function_gets_the_configuration_contract(template):
    service_names = set()
    for prefix, _ in KINDS.values():
        env = function(template, f"{prefix}Function")["Environment"]["Variables"]
        assert env.keys() >= ENV_CONTRACT
        assert env["QUEUE_URL"] == ref(f"{prefix}Queue")
        assert env["DLQ_URL"] == ref(f"{prefix}DLQ")
        assert env["MAX_RECEIVE_COUNT"] == ref("MaxReceiveCount")
        assert env["KEAP_RATE_LIMIT"] == ref("KeapRateLimit")
        assert env["MAX_EVENT_AGE_SECONDS"] == ref("MaxEventAgeSeconds")
        assert env["KEAP_URL"] == ref("KeapUrl")
        assert env["KEAP_API_KEY_SECRET_ARN"] == ref("KeapApiKeySecret")
        assert env["WEBHOOK_SECRETS_ARN"] == ref("WebhookSecretsSecret")
        assert env["IDEMPOTENCY_TABLE"] == ref("IdempotencyTable")
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == {"Fn::Sub": "KeapRelay/${AWS::StackName}"}  # one per stack
        assert env["LOG_LEVEL"] == ref("LogLevel")
        # Declared for `sam local invoke --env-vars`, but never holding a value in the template.
        assert env["KEAP_API_KEY"] == "" and env["WEBHOOK_SECRETS"] == ""
        service_names.add(env["POWERTOOLS_SERVICE_NAME"])
    assert len(service_names) == len(KINDS)
    assert default(template, "KeapUrl") == DEFAULT_URL


def test_keap_api_is_a_parameter_passed_to_every_function(template):
    parameter = template["Parameters"]["KeapApi"]
    # REST v2 by default, as the functions default (Keap retires XML-RPC); the allowed values never change.
    assert parameter["AllowedValues"] == ["xmlrpc", "rest"] and parameter["Default"] == "rest" == KEAP_APIS[0]
    # Empty by default: a real REST host in the template would reach the local stack's functions too.
    assert default(template, "KeapRestUrl") == ""
    for prefix, _ in KINDS.values():
        env = function(template, f"{prefix}Function")["Environment"]["Variables"]
        assert env["KEAP_API"] == ref("KeapApi")
        assert env["KEAP_REST_URL"] == ref("KeapRestUrl")


# ------------------------------------------------------------------------------------------ HTTP API
def test_http_api_routes_each_kind_to_its_function_with_payload_v2(template):
    assert "HttpApi" in resources(template, "AWS::Serverless::HttpApi")
    routes = set()
    for logical_id in resources(template, "AWS::Serverless::Function"):
        for event in props(template, logical_id)["Events"].values():
            if event["Type"] == "HttpApi":
                p = event["Properties"]
                assert p["ApiId"] == ref("HttpApi")
                assert p["PayloadFormatVersion"] == "2.0"
                routes.add((p["Method"], p["Path"], logical_id))
    assert routes == EXPECTED_ROUTES


def test_access_logs_never_record_the_path_or_query(template):
    api = props(template, "HttpApi")
    log_format = api["AccessLogSettings"]["Format"]
    json.loads(log_format)  # CloudWatch Logs Insights needs it to stay JSON
    assert "$context.path" not in log_format and "querystring" not in log_format.lower()
    assert "$context.routeKey" in log_format


# ------------------------------------------------------------------------------------------ queues
def test_work_queues_redrive_to_their_dlq_after_max_receive_count(template):
    parameter = template["Parameters"]["MaxReceiveCount"]
    assert parameter["Default"] >= 5 and parameter["MinValue"] >= 5
    assert parameter["Default"] == 8
    for prefix, _ in KINDS.values():
        redrive = props(template, f"{prefix}Queue")["RedrivePolicy"]
        assert redrive == {
            "deadLetterTargetArn": arn(f"{prefix}DLQ"),
            "maxReceiveCount": ref("MaxReceiveCount"),
        }
        assert "RedrivePolicy" not in props(template, f"{prefix}DLQ")


def test_visibility_timeout_is_at_least_six_function_timeouts(template):
    for prefix, _ in KINDS.values():
        timeout = function(template, f"{prefix}Function")["Timeout"]
        assert props(template, f"{prefix}Queue")["VisibilityTimeout"] >= 6 * timeout


def test_queues_and_dlqs_keep_messages_fourteen_days_encrypted(template):
    queues = resources(template, "AWS::SQS::Queue")
    assert set(queues) == {f"{prefix}{suffix}" for prefix, _ in KINDS.values() for suffix in ("Queue", "DLQ")}
    for logical_id in queues:
        p = props(template, logical_id)
        assert p["MessageRetentionPeriod"] == 1209600
        assert p["SqsManagedSseEnabled"] is True


def test_sqs_event_sources_report_partial_failures_with_bounded_concurrency(template):
    # One parameter, the key's rate, sets the workers' concurrency (at least 2, as Lambda requires).
    profiles = template["Mappings"]["RateProfiles"]
    assert set(profiles) == set(template["Parameters"]["KeapRateLimit"]["AllowedValues"])
    assert all(p["WorkerConcurrency"] >= 2 for p in profiles.values())
    for prefix, _ in KINDS.values():
        sqs = [e["Properties"] for e in props(template, f"{prefix}Function")["Events"].values() if e["Type"] == "SQS"]
        assert len(sqs) == 1
        source = sqs[0]
        assert source["Queue"] == arn(f"{prefix}Queue")
        assert source["BatchSize"] == ref("BatchSize") and 1 <= default(template, "BatchSize") <= 10
        window = "MaximumBatchingWindowInSeconds"
        assert source[window] == ref(window) and 0 <= default(template, window) <= 5
        assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert source["ScalingConfig"] == {
            "MaximumConcurrency": {"Fn::FindInMap": ["RateProfiles", ref("KeapRateLimit"), "WorkerConcurrency"]}
        }


# ------------------------------------------------------------------------------------------ EventBridge
def test_an_eventbridge_rule_per_kind_feeds_its_queue_with_dlq_and_retries(template):
    for prefix, kind in KINDS.values():
        rule = props(template, f"{prefix}Rule")
        assert rule["EventBusName"] == ref("EventBusName")
        assert rule["EventPattern"] == {"source": [ref("EventSource")], "detail-type": [kind]}
        (target,) = rule["Targets"]
        assert target["Arn"] == arn(f"{prefix}Queue")
        assert target["DeadLetterConfig"] == {"Arn": arn(f"{prefix}DLQ")}
        assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
        assert 60 <= target["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 86400
        # Workers read canonical events from their queue, not EventBridge envelopes.
        assert target["InputPath"] == "$.detail"
    assert not default(template, "EventSource").startswith("aws.")


def test_only_the_kinds_rule_may_send_to_its_queue_and_dlq(template):
    policies = resources(template, "AWS::SQS::QueuePolicy")
    by_queue = {}
    for logical_id in policies:
        p = props(template, logical_id)
        for queue in p["Queues"]:
            by_queue[queue["Ref"]] = p["PolicyDocument"]["Statement"]
    for prefix, _ in KINDS.values():
        for queue in (f"{prefix}Queue", f"{prefix}DLQ"):
            (statement,) = by_queue[queue]
            assert statement["Effect"] == "Allow"
            assert statement["Principal"] == {"Service": "events.amazonaws.com"}
            assert statement["Action"] == "sqs:SendMessage"
            assert statement["Resource"] == arn(queue)
            assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": arn(f"{prefix}Rule")}}


# ------------------------------------------------------------------------------------------ secrets & IAM
def test_secrets_are_created_empty_and_handed_to_functions_by_arn(template):
    secrets = resources(template, "AWS::SecretsManager::Secret")
    assert set(secrets) == {"KeapApiKeySecret", "WebhookSecretsSecret"}
    for secret in secrets.values():
        # A value in the template would be in CloudFormation's hands and overwrite the user's on update.
        assert not {"SecretString", "GenerateSecretString"} & secret["Properties"].keys()


def test_each_function_has_its_own_role_so_sam_attaches_no_broad_managed_policies(template):
    for prefix, _ in KINDS.values():
        fn = props(template, f"{prefix}Function")
        assert fn["Role"] == arn(f"{prefix}FunctionRole")
        assert "Policies" not in fn
        role = props(template, f"{prefix}FunctionRole")
        (managed,) = role["ManagedPolicyArns"]
        assert managed["Fn::If"][0] == "TracingActive"
        assert managed["Fn::If"][2] == ref("AWS::NoValue")


def test_function_roles_reach_only_their_own_queues_secrets_and_table(template):
    for prefix, _ in KINDS.values():
        own_queues = [arn(f"{prefix}Queue"), arn(f"{prefix}DLQ")]
        granted: dict[str, list[Any]] = {}
        for statement in statements(template, f"{prefix}FunctionRole"):
            assert statement["Effect"] == "Allow"
            for action in as_list(statement["Action"]):
                assert "*" not in action
                granted.setdefault(action, []).extend(as_list(statement["Resource"]))
            for resource in as_list(statement["Resource"]):
                assert resource != "*" and not (isinstance(resource, str) and "*" in resource)
        assert granted["sqs:SendMessage"] == own_queues
        for action in (
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:ChangeMessageVisibility",
            "sqs:GetQueueAttributes",
        ):
            assert granted[action] == [arn(f"{prefix}Queue")]
        assert granted["secretsmanager:GetSecretValue"] == [
            ref("KeapApiKeySecret"),
            ref("WebhookSecretsSecret"),
        ]
        dynamodb = {a for a in granted if a.startswith("dynamodb:")}
        idempotency = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
        archive = {"dynamodb:BatchWriteItem", "dynamodb:PutItem"}  # writes only: listing and erasing are ops'
        assert dynamodb == idempotency | archive
        for action in dynamodb:
            tables = [arn("IdempotencyTable")] * (action in idempotency) + [arn("ArchiveTable")] * (action in archive)
            assert granted[action] == tables
        [archive_grant] = [s for s in statements(template, f"{prefix}FunctionRole") if s.get("Sid") == "Archive"]
        assert archive_grant["IfCondition"] == "ArchiveOn"
        services = {a.split(":")[0] for a in granted}
        assert services == {"logs", "sqs", "secretsmanager", "dynamodb"}


def test_archive_table_exists_only_while_archive_days_is_not_0_encrypted_expiring_and_indexed_by_email(template):
    assert template["Parameters"]["ArchiveDays"]["Default"] == 30
    assert template["Conditions"]["ArchiveOn"] == {"Fn::Not": [{"Fn::Equals": [ref("ArchiveDays"), "0"]}]}
    resource = template["Resources"]["ArchiveTable"]
    assert resource["Condition"] == "ArchiveOn"
    assert template["Outputs"]["ArchiveTableName"]["Condition"] == "ArchiveOn"
    table = resource["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSESpecification"] == {"SSEEnabled": True}
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires", "Enabled": True}
    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    [by_email] = table["GlobalSecondaryIndexes"]
    assert by_email["IndexName"] == EMAIL_INDEX  # the index archive.forget queries
    assert by_email["KeySchema"] == [{"AttributeName": "email", "KeyType": "HASH"}]
    assert by_email["Projection"] == {"ProjectionType": "KEYS_ONLY"}  # erasure needs the keys only
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["ARCHIVE_TABLE"] == {"Fn::If": ["ArchiveOn", ref("ArchiveTable"), ""]}
    assert env["ARCHIVE_DAYS"] == ref("ArchiveDays")


def test_idempotency_table_matches_powertools_layout(template):
    table = props(template, "IdempotencyTable")
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSESpecification"] == {"SSEEnabled": True}


# ------------------------------------------------------------------------------------------ alarms & outputs
def test_every_dlq_alarms_to_the_topic_as_soon_as_a_message_waits(template):
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    watched = {}
    for alarm in alarms.values():
        p = alarm["Properties"]
        if p["Namespace"] != "AWS/SQS":
            continue  # the events-waiting and quota alarms: tests/unit/test_dashboard.py
        assert (p["Namespace"], p["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
        assert (p["ComparisonOperator"], p["Threshold"]) == ("GreaterThanThreshold", 0)
        assert p["AlarmActions"] == [ref("AlarmTopic")]
        (dimension,) = p["Dimensions"]
        assert dimension["Name"] == "QueueName"
        watched[dimension["Value"]["Fn::GetAtt"][0]] = p
    assert set(watched) == {f"{prefix}DLQ" for prefix, _ in KINDS.values()}


def test_alarm_email_is_subscribed_only_when_given(template):
    assert default(template, "AlarmEmail") == ""
    assert template["Conditions"]["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": [ref("AlarmEmail"), ""]}]}
    (subscription,) = resources(template, "AWS::SNS::Subscription").values()
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"]["TopicArn"] == ref("AlarmTopic")
    assert subscription["Properties"]["Endpoint"] == ref("AlarmEmail")


def test_outputs_give_urls_queues_secrets_and_topic(template):
    outputs = {k: v["Value"] for k, v in template["Outputs"].items()}
    for folder, (prefix, _) in KINDS.items():
        url = outputs[f"{prefix}WebhookUrl"]["Fn::Sub"]
        assert url.startswith("https://${HttpApi}.execute-api.") and url.endswith(f"/{folder}/{{source}}")
        assert outputs[f"{prefix}QueueUrl"] == ref(f"{prefix}Queue")
        assert outputs[f"{prefix}DLQUrl"] == ref(f"{prefix}DLQ")
    assert outputs["ApiUrl"]["Fn::Sub"].startswith("https://${HttpApi}.execute-api.")
    assert outputs["KeapApiKeySecretArn"] == ref("KeapApiKeySecret")
    assert outputs["WebhookSecretsSecretArn"] == ref("WebhookSecretsSecret")
    assert outputs["AlarmTopicArn"] == ref("AlarmTopic")


def test_samconfig_deploys_the_stack_with_the_templates_defaults(template):
    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))["default"]
    assert config["global"]["parameters"]["stack_name"] == "keap-relay"
    deploy = config["deploy"]["parameters"]
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert deploy["resolve_s3"] is True and deploy["confirm_changeset"] is True
    overrides = dict(item.split("=", 1) for item in deploy["parameter_overrides"])
    assert overrides.keys() <= template["Parameters"].keys()
    for name, value in overrides.items():
        # What samconfig passes must not drift from the template's own default.
        assert value.strip('"') == str(default(template, name)), name


# ------------------------------------------------------------------------------------------ events/
def _samples() -> list[tuple[str, Path, dict[str, Any]]]:
    return [
        (folder, path, json.loads(path.read_text(encoding="utf-8")))
        for folder in KINDS
        for path in sorted((EVENTS / folder).glob("*.json"))
    ]


def _canonical_events(sample: dict[str, Any]) -> list[dict[str, Any]]:
    """The canonical events a sample carries, whatever trigger it is shaped as."""
    if "Records" in sample:
        return [json.loads(record["body"]) for record in sample["Records"]]
    if "requestContext" in sample:
        # Vendor samples carry the vendor's own shape; test_ingest_sources checks what they map to.
        generic = sample.get("pathParameters", {}).get("source") == "generic"
        return [json.loads(sample["body"])] if generic and sample.get("body") else []
    if "detail-type" in sample:
        return [sample["detail"]]
    return [sample]


def test_each_function_has_a_sample_for_each_trigger():
    for folder in KINDS:
        names = {p.name for p in (EVENTS / folder).glob("*.json")}
        assert names >= {"http-generic.json", "sqs.json", "eventbridge.json", "bare.json"}


def test_http_samples_are_payload_v2_and_carry_a_valid_signature():
    signed = 0
    for folder, path, sample in _samples():
        if "requestContext" not in sample:
            continue
        assert sample["version"] == "2.0", path
        assert sample["isBase64Encoded"] is False, path
        method = sample["requestContext"]["http"]["method"]
        source = sample["pathParameters"]["source"]
        assert sample["routeKey"] == sample["requestContext"]["routeKey"] == f"{method} /{folder}/{{source}}"
        assert sample["rawPath"] == sample["requestContext"]["http"]["path"] == f"/{folder}/{source}"
        if method != "POST" or source != "generic":
            continue  # vendor signatures: test_ingest_sources::test_stored_samples_carry_true_signatures_and_tokens
        body = sample["body"]
        expected = signature(body, LOCAL_WEBHOOK_SECRET)
        assert sample["headers"]["x-relay-signature"] == expected, f"{path}: run python events/sign.py {path}"
        assert sample["headers"]["content-length"] == str(len(body.encode())), path
        assert sample["headers"]["content-type"] == "application/json"
        signed += 1
    assert signed == len(KINDS)


def test_sqs_samples_are_batches_with_receive_counts_and_true_checksums():
    for folder, path, sample in _samples():
        if "Records" not in sample:
            continue
        assert len(sample["Records"]) == 2, path
        for record in sample["Records"]:
            assert record["eventSource"] == "aws:sqs"
            assert int(record["attributes"]["ApproximateReceiveCount"]) >= 1
            checksum = hashlib.md5(record["body"].encode(), usedforsecurity=False).hexdigest()
            assert record["md5OfBody"] == checksum, path
            assert f"{KINDS[folder][0]}Queue" in record["eventSourceARN"]


def test_eventbridge_samples_match_their_rule(template):
    for folder, path, sample in _samples():
        if "detail-type" in sample:
            assert sample["detail-type"] == KINDS[folder][1], path
            assert sample["source"] == default(template, "EventSource"), path


def test_every_canonical_sample_is_well_formed_and_ids_are_unique():
    seen: dict[str, Path] = {}
    count = 0
    for folder, path, sample in _samples():
        for event in _canonical_events(sample):
            assert event["kind"] == KINDS[folder][1], path
            assert event["source"] and event["id"], path
            assert event["contact"]["email"].endswith("@example.com"), path
            assert event["id"] not in seen, f"{event['id']} in both {seen.get(event['id'])} and {path}"
            seen[event["id"]] = path
            count += 1
    assert count == 5 * len(KINDS)


def test_every_canonical_sample_passes_the_event_schemas():
    canonical = pytest.importorskip("keap_relay.events.canonical")
    for folder, _path, sample in _samples():
        for event in _canonical_events(sample):
            canonical.validate_event(event, KINDS[folder][1])  # raises EventInvalid naming the field


# ------------------------------------------------------------------------------------------ events/sign.py
@pytest.fixture(scope="module")
def sign() -> Any:
    spec = importlib.util.spec_from_file_location("events_sign", EVENTS / "sign.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sign_re_signs_an_edited_http_sample(sign, tmp_path, monkeypatch):
    monkeypatch.delenv("WEBHOOK_SECRETS", raising=False)
    sample = json.loads((EVENTS / "forms" / "http-generic.json").read_text(encoding="utf-8"))
    edited = json.loads(sample["body"]) | {"id": "frm-edited"}
    sample["body"] = edited  # an object body is serialised for the user
    path = tmp_path / "http.json"
    path.write_text(json.dumps(sample), encoding="utf-8")

    assert sign.refresh(path) is True

    result = json.loads(path.read_text(encoding="utf-8"))
    assert json.loads(result["body"]) == edited
    assert result["headers"]["x-relay-signature"] == signature(result["body"], LOCAL_WEBHOOK_SECRET)
    assert result["headers"]["content-length"] == str(len(result["body"].encode()))


def test_sign_uses_the_sources_secret_from_webhook_secrets(sign, tmp_path, monkeypatch):
    monkeypatch.setenv("WEBHOOK_SECRETS", json.dumps({"generic": "s3cret-for-generic"}))
    path = tmp_path / "http.json"
    shutil.copy(EVENTS / "purchases" / "http-generic.json", path)

    sign.refresh(path)

    result = json.loads(path.read_text(encoding="utf-8"))
    assert result["headers"]["x-relay-signature"] == signature(result["body"], "s3cret-for-generic")


def test_sign_refreshes_sqs_checksums_and_leaves_other_samples_alone(sign, tmp_path):
    sqs = json.loads((EVENTS / "unsubscribes" / "sqs.json").read_text(encoding="utf-8"))
    sqs["Records"][0]["body"] = {
        "kind": "unsubscribe",
        "source": "generic",
        "id": "x",
        "contact": {"email": "x@example.com"},
    }
    path = tmp_path / "sqs.json"
    path.write_text(json.dumps(sqs), encoding="utf-8")
    bare = tmp_path / "bare.json"
    shutil.copy(EVENTS / "unsubscribes" / "bare.json", bare)
    before = bare.read_bytes()

    assert sign.refresh(path) is True
    assert sign.refresh(bare) is False

    record = json.loads(path.read_text(encoding="utf-8"))["Records"][0]
    assert isinstance(record["body"], str)
    assert record["md5OfBody"] == hashlib.md5(record["body"].encode(), usedforsecurity=False).hexdigest()
    assert bare.read_bytes() == before
