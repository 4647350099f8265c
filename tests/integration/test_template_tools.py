"""The tools a deployment runs, run for real: cfn-lint and `sam validate --lint` on template.yaml, and
shared/Makefile's layer build (CPython 3.13 bytecode). Each runs a subprocess, so they live here, not in unit."""

import importlib.util
import json
import marshal
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


# ------------------------------------------------------------------------------------------ linters
def _tool(name: str) -> str | None:
    beside_python = Path(sys.executable).parent / name
    return str(beside_python) if beside_python.exists() else shutil.which(name)


def _offline_env(tmp_path: Path) -> dict[str, str]:
    """An environment in which the AWS tools can reach nothing but a closed loopback port."""
    app_dir = tmp_path / "sam-app"
    app_dir.mkdir()
    # SAM CLI asks PyPI for a newer version once a week; a fresh check time keeps it from trying.
    metadata = {"lastVersionCheck": time.time(), "telemetryEnabled": False}
    (app_dir / "metadata.json").write_text(json.dumps(metadata))
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY")}
    blackhole = "http://127.0.0.1:9"
    env.update(
        {
            "AWS_DEFAULT_REGION": "us-east-1",
            "SAM_CLI_TELEMETRY": "0",
            "__SAM_CLI_APP_DIR": str(app_dir),
            "HTTP_PROXY": blackhole,
            "HTTPS_PROXY": blackhole,
            "http_proxy": blackhole,
            "https_proxy": blackhole,
            "NO_PROXY": "",
            "no_proxy": "",
        }
    )
    return env


@pytest.mark.parametrize(
    ("tool", "args"),
    [("cfn-lint", [str(TEMPLATE)]), ("sam", ["validate", "--lint", "--template-file", str(TEMPLATE)])],
)
def test_the_template_passes_the_linter(tool, args, tmp_path):
    executable = _tool(tool)
    if executable is None:
        pytest.skip(f"{tool} is not installed")
    run = subprocess.run(
        [executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env=_offline_env(tmp_path)
    )
    assert run.returncode == 0, run.stdout + run.stderr


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
