"""The stack's dashboard and alarms chart what the functions emit: the widget JSON is rendered (its Fn::Sub
resolved) and every metric in it is checked against keap_relay.aws.observe.METRICS and the code that emits."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest

from keap_relay.aws import observe
from keap_relay.events.kinds import KINDS
from keap_relay_local.template import _Resolver, load_template

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "shared" / "keap_relay"
SEARCH = re.compile(r"SEARCH\('\{([^}]*)\}\s+MetricName=\"(\w+)\"\s+service=\"(\w+)\"'")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


@pytest.fixture(scope="module")
def resolver(template) -> _Resolver:
    return _Resolver(template, "us-east-1")


@pytest.fixture(scope="module")
def widgets(template, resolver) -> list[dict[str, Any]]:
    (dashboard,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    body = resolver.resolve(dashboard["Properties"]["DashboardBody"])
    return json.loads(body)["widgets"]


def namespace(template, resolver) -> str:
    """The functions' metrics namespace, resolved for the stack: KeapRelay/<stack name>."""
    ns = resolver.resolve(template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"])
    assert ns == f"KeapRelay/{resolver.resolve({'Ref': 'AWS::StackName'})}"
    return ns


def charted(widgets) -> list[tuple[str, str, dict[str, str], dict[str, Any]]]:
    """(namespace, name, dimensions, options) of every metric line of every widget, SEARCH lines included."""
    lines = []
    for widget in widgets:
        for row in widget["properties"].get("metrics", []):
            if isinstance(row[0], dict):
                found = SEARCH.search(row[0]["expression"])
                if found:
                    ns, *dims = found.group(1).split(",")
                    ns = ns.strip('"')  # quoted: the per-stack namespace holds a '/' and the stack name's '-'
                    lines.append((ns, found.group(2), {"service": found.group(3), **dict.fromkeys(dims[1:])}, {}))
                continue
            *head, options = row if isinstance(row[-1], dict) else (*row, {})
            ns, name, *dims = head
            lines.append((ns, name, dict(zip(dims[::2], dims[1::2], strict=True)), options))
    return lines


def emitted_names() -> set[str]:
    """Every metric name the code passes to observe's emitters (count, _single) or names as a path's duration."""
    names = set(observe.DURATION_OF_PATH.values())
    for path in SHARED.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if called in ("count", "_single") and isinstance(first, ast.Constant) and isinstance(first.value, str):
                names.add(first.value)
    return names


# ------------------------------------------------------------------------------------------ the metric table
def test_every_metric_the_code_emits_is_in_the_table_and_every_table_entry_is_emitted():
    assert emitted_names() == set(observe.METRICS)


def test_the_dashboard_body_renders_to_json_with_widgets_on_the_24_column_grid(widgets):
    assert widgets
    cells = set()
    for widget in widgets:
        assert widget["x"] >= 0 and widget["x"] + widget["width"] <= 24
        columns = range(widget["x"], widget["x"] + widget["width"])
        mine = {(x, y) for x in columns for y in range(widget["y"], widget["y"] + widget["height"])}
        assert not cells & mine, f"widget {widget['properties'].get('title')} overlaps another"
        cells |= mine


# ------------------------------------------------------------------------------------------ the dashboard
def test_every_custom_metric_on_the_dashboard_is_one_the_functions_emit_with_its_dimensions(
    template, widgets, resolver
):
    ours = [line for line in charted(widgets) if not line[0].startswith("AWS/")]
    assert ours
    for ns, name, dims, _ in ours:
        assert ns == namespace(template, resolver)
        metric = observe.METRICS[name]
        assert tuple(dims) == metric.dimensions, name
        if metric.stack_level:
            assert dims["service"] == observe.STACK_SERVICE, name
        else:
            assert dims["service"] in {kind.name for kind in KINDS}, name


def test_each_kind_charts_every_per_kind_metric_and_the_stack_charts_the_quota(widgets):
    ours = [line for line in charted(widgets) if not line[0].startswith("AWS/")]
    for kind in KINDS:
        shown = {name for _, name, dims, _ in ours if dims["service"] == kind.name}
        assert shown == {m.name for m in observe.METRICS.values() if not m.stack_level}, kind.name
    stack = {name for _, name, dims, _ in ours if dims["service"] == observe.STACK_SERVICE}
    assert stack == {m.name for m in observe.METRICS.values() if m.stack_level}


def test_each_kind_charts_its_own_queue_depths_dlq_and_function_errors(widgets, resolver):
    aws = [line for line in charted(widgets) if line[0].startswith("AWS/")]
    for kind in KINDS:
        queue, dlq = resolver.physical_name(kind.queue), resolver.physical_name(kind.dlq)
        function = resolver.physical_name(kind.function)
        sqs = {(name, dims["QueueName"]) for ns, name, dims, _ in aws if ns == "AWS/SQS"}
        depth = ("Visible", "Delayed", "NotVisible")
        assert {(f"ApproximateNumberOfMessages{d}", queue) for d in depth} <= sqs
        assert ("ApproximateNumberOfMessagesVisible", dlq) in sqs
        lam = {name for ns, name, dims, _ in aws if ns == "AWS/Lambda" and dims == {"FunctionName": function}}
        assert "Errors" in lam


def test_the_429_share_is_computed_from_the_calls_on_the_same_widget(widgets):
    for widget in widgets:
        rows = widget["properties"].get("metrics", [])
        ids = {row[-1].get("id") for row in rows if isinstance(row[-1], dict) and "id" in row[-1]}
        for row in rows:
            if isinstance(row[0], dict) and "SEARCH" not in row[0]["expression"]:
                assert set(re.findall(r"[a-z]\w*", row[0]["expression"])) <= ids


def test_the_alarm_widget_lists_every_alarm_of_the_stack(template, widgets, resolver):
    (alarm_widget,) = [w for w in widgets if w["type"] == "alarm"]
    alarms = [k for k, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert sorted(alarm_widget["properties"]["alarms"]) == sorted(resolver._get_att(a, "Arn") for a in alarms)


def test_the_dashboard_url_is_an_output(template):
    url = template["Outputs"]["DashboardUrl"]["Value"]["Fn::Sub"]
    assert "console.aws.amazon.com/cloudwatch/" in url and url.endswith("#dashboards/dashboard/${Dashboard}")


# ------------------------------------------------------------------------------------------ alarms
def alarms_on(template, name: str) -> dict[str, dict[str, Any]]:
    return {
        k: r["Properties"]
        for k, r in template["Resources"].items()
        if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"]["MetricName"] == name
    }


def test_each_kind_alarms_on_its_oldest_events_age_at_the_parameters_threshold(template, resolver):
    parameter = template["Parameters"]["EventAgeAlarmSeconds"]
    assert parameter["Default"] == 3600 and parameter["Description"]
    alarms = alarms_on(template, "EventAge")
    assert {a["Dimensions"][0]["Value"] for a in alarms.values()} == {kind.name for kind in KINDS}
    for p in alarms.values():
        assert resolver.resolve(p["Namespace"]) == namespace(template, resolver)
        assert [d["Name"] for d in p["Dimensions"]] == list(observe.METRICS["EventAge"].dimensions)
        assert (p["Statistic"], p["ComparisonOperator"]) == ("Maximum", "GreaterThanThreshold")
        assert p["Threshold"] == {"Ref": "EventAgeAlarmSeconds"}
        assert p["TreatMissingData"] == "notBreaching"  # an idle kind sends no age
        assert p["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_the_quota_alarm_watches_the_one_stack_level_series_at_ten_percent(template, resolver):
    (p,) = alarms_on(template, "KeapQuotaLeftPercent").values()
    assert observe.METRICS["KeapQuotaLeftPercent"].stack_level
    assert resolver.resolve(p["Namespace"]) == namespace(template, resolver)
    assert p["Dimensions"] == [{"Name": "service", "Value": observe.STACK_SERVICE}]
    assert (p["Statistic"], p["ComparisonOperator"], p["Threshold"]) == ("Minimum", "LessThanOrEqualToThreshold", 10)
    assert p["TreatMissingData"] == "notBreaching"  # idle, or an API that sends no quota headers
    assert p["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_the_alarm_topic_is_never_given_the_aws_managed_key_cloudwatch_cannot_use(template):
    topic = template["Resources"]["AlarmTopic"]["Properties"]
    assert "alias/aws/sns" not in json.dumps(topic)
    assert template["Parameters"]["AlarmTopicKmsKeyId"]["Default"] == ""


# ------------------------------------------------------------------------------------------ checkov skips
def test_every_checkov_skip_names_its_check_and_says_why(template):
    skips = [
        (name, skip)
        for name, resource in template["Resources"].items()
        for skip in ((resource.get("Metadata") or {}).get("checkov") or {}).get("skip", [])
    ]
    assert skips
    for name, skip in skips:
        assert re.fullmatch(r"CKV_AWS_\d+", skip["id"]), name
        assert len(skip["comment"]) > 20, name
