"""The layer's requirements and the project's runtime dependencies stay the same pins; layers stay apart; the
layer build ships CPython 3.13 bytecode."""

import ast
import importlib.util
import json
import marshal
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

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


# ------------------------------------------------------------------------------------------ the layer build
# `sam build` runs shared/Makefile's build-SharedLayer in a copy of shared/ (template.yaml: BuildMethod makefile).
# These run that target for real, with a stand-in for python3.13 whose pip records its arguments instead of
# downloading, so no network and no sam build: what is checked is what the target leaves in ARTIFACTS_DIR.
STUB_PYTHON = """#!{python}
import json, os, sys
from pathlib import Path

args = sys.argv[1:]
if args[0] == "-c":
    sys.exit(0)  # the version check: this stand-in plays CPython 3.13
if args[:2] == ["-m", "pip"]:
    Path(os.environ["STUB_PIP_ARGS"]).write_text(json.dumps(args))
    target = Path(args[args.index("--target") + 1])
    (target / "bin").mkdir(parents=True)
    (target / "bin" / "jsonschema").write_text("console script")
    (target / "xmltodict.py").write_text("VALUE = 1\\n")  # a dependency: compiled like keap_relay
    sys.exit(0)
os.execv(sys.executable, [sys.executable, *args])
"""


def _make_layer(tmp_path, python):
    source = tmp_path / "scratch"
    shutil.copytree(ROOT / "shared", source, ignore=shutil.ignore_patterns("__pycache__"))
    # A stale pyc of a developer's checkout must not reach the layer (it would be another Python's).
    (source / "keap_relay" / "__pycache__").mkdir()
    (source / "keap_relay" / "__pycache__" / "stale.cpython-313.pyc").write_bytes(b"stale")
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "PYTHON313")}
    env["STUB_PIP_ARGS"] = str(tmp_path / "pip-args.json")
    run = subprocess.run(
        [shutil.which("make"), "build-SharedLayer", f"ARTIFACTS_DIR={artifacts}", f"PYTHON313={python}"],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return run, artifacts / "python"


needs_make = pytest.mark.skipif(not (shutil.which("make") and shutil.which("tar")), reason="needs make and tar")


@needs_make
def test_layer_build_ships_unchecked_hash_bytecode_for_every_module(tmp_path):
    stub = tmp_path / "python3.13"
    stub.write_text(STUB_PYTHON.format(python=sys.executable))
    stub.chmod(0o755)

    run, layer = _make_layer(tmp_path, stub)

    assert run.returncode == 0, run.stdout + run.stderr
    pip = json.loads((tmp_path / "pip-args.json").read_text())
    assert pip[pip.index("--target") + 1] == str(layer)
    assert pip[pip.index("-r") + 1] == "requirements.txt"
    assert pip[pip.index("--python-version") + 1] == "3.13"
    assert "--only-binary=:all:" in pip
    platforms = [pip[i + 1] for i, arg in enumerate(pip) if arg == "--platform"]
    assert platforms and all(p.startswith("manylinux") and p.endswith("_aarch64") for p in platforms)
    assert "--no-compile" in pip  # pip's pycs would be timestamp-checked against the zip's mtimes

    shipped = {p.relative_to(layer / "keap_relay") for p in (layer / "keap_relay").rglob("*") if p.is_file()}
    source = {p.relative_to(ROOT / "shared" / "keap_relay") for p in (ROOT / "shared" / "keap_relay").rglob("*")}
    assert {p for p in shipped if "__pycache__" not in p.parts} == {
        p for p in source if "__pycache__" not in p.parts and (ROOT / "shared" / "keap_relay" / p).is_file()
    }
    assert not (layer / "keap_relay" / "__pycache__" / "stale.cpython-313.pyc").exists()
    assert not (layer / "bin").exists() and not list(layer.rglob("Makefile"))

    modules = list(layer.rglob("*.py"))
    assert layer / "xmltodict.py" in modules and layer / "keap_relay" / "aws" / "pipeline.py" in modules
    for module in modules:
        pyc = Path(importlib.util.cache_from_source(str(module)))
        header = pyc.read_bytes()[:16]
        # PEP 552 flags 0b01: hash-based and unchecked, so Lambda never stats or re-reads the source.
        assert int.from_bytes(header[4:8], "little") == 0b01, module
        code = marshal.loads(pyc.read_bytes()[16:])
        assert code.co_filename == "/opt/python/" + module.relative_to(layer).as_posix()


@needs_make
@pytest.mark.skipif(sys.version_info[:2] == (3, 13), reason="needs an interpreter that is not 3.13")
def test_layer_build_refuses_an_interpreter_that_is_not_python313(tmp_path):
    run, layer = _make_layer(tmp_path, sys.executable)

    assert run.returncode != 0
    assert "3.13" in run.stderr
    assert not layer.exists()
