"""The layer's requirements and the project's runtime dependencies stay the same pins; layers stay apart.
(The layer build itself runs in tests/integration/test_template_tools.py.)"""

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_layer_requirements_match_pyproject_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = (ROOT / "shared" / "requirements.txt").read_text().splitlines()
    layer = [pin for pin in (line.split("#")[0].strip() for line in lines) if pin]
    assert sorted(project) == sorted(layer)
    assert all("==" in pin for pin in layer)


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                package = path.relative_to(ROOT / "shared").parent.parts
                parts = list(package[: len(package) - (node.level - 1)])
                yield ".".join([*parts, *(node.module.split(".") if node.module else [])])
            else:
                yield node.module or ""
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


# layer -> layers it must never import (imports point down: aws -> routing -> events / keap)
FORBIDDEN = {
    "keap": ("keap_relay.events", "keap_relay.routing", "keap_relay.aws", "boto3", "aws_lambda_powertools"),
    "events": ("keap_relay.keap", "keap_relay.routing", "keap_relay.aws", "boto3"),
    "routing": ("keap_relay.aws", "boto3", "aws_lambda_powertools"),
}


def test_imports_point_down_the_layers_and_never_into_local_or_ops():
    for path in (ROOT / "shared" / "keap_relay").rglob("*.py"):
        layer = path.relative_to(ROOT / "shared" / "keap_relay").parts[0]
        for name in _imports(path):
            assert not name.startswith(("keap_emulator", "keap_relay_local", "keap_relay_ops")), (
                f"{path} imports {name}"
            )
            for banned in FORBIDDEN.get(layer, ()):
                assert not name.startswith(banned), f"{path} ({layer}) imports {name}"


def test_functions_are_wiring_only():
    for app in (ROOT / "functions").glob("*/app.py"):
        code = [line for line in app.read_text().splitlines() if line.strip() and not line.startswith(('"""', "#"))]
        assert len(code) <= 3, f"{app} should only build the handler"
