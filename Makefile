# keap-relay developer commands. Every target sets up .venv itself on first use.
# The two a new user needs: `make run` (local stack) and `make test` (whole suite).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: help setup run test test-fast lint scan demo invoke bench validate build clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s '	'

$(STAMP): pyproject.toml shared/requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "keap-relay needs Python 3.11+ (found " + sys.version.split()[0] + "); set PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,ops]'
	@touch $(STAMP)

setup: $(STAMP)  ## create .venv with the runtime and dev dependencies

run: $(STAMP)  ## start the local stack (emulator, moto, gateway, functions) on embedded defaults
	$(BIN)/keap-relay run

test: $(STAMP)  ## lint and run the whole test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

test-fast: $(STAMP)  ## lint and run everything but the end-to-end tests (under a minute)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest tests/unit tests/integration

lint: $(STAMP)  ## ruff (check and format), the routes check (offline), cfn-lint, sam validate --lint and checkov (scan)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/keap-relay routes check --routes config/routes.yaml
	$(BIN)/cfn-lint template.yaml
	$(BIN)/sam validate --lint
	$(MAKE) --no-print-directory scan

# checkov pins dependencies that conflict with aws-sam-cli's, so it lives in a venv of its own.
SCAN_VENV     := .venv-scan
CHECKOV_PIN   := checkov==3.3.30
SCAN_STAMP    := $(SCAN_VENV)/.installed-$(CHECKOV_PIN)
$(SCAN_STAMP):
	@test -x $(SCAN_VENV)/bin/python || $(PYTHON) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SCAN_VENV)/bin/python -m pip install --quiet '$(CHECKOV_PIN)'
	@touch $(SCAN_STAMP)

scan: $(SCAN_STAMP)  ## checkov on template.yaml (own venv .venv-scan); skips carry their reason next to the resource
	$(SCAN_VENV)/bin/checkov --file template.yaml --framework cloudformation --compact --quiet --skip-download

demo: $(STAMP)  ## send every sample webhook through the local stack and show what Keap (the emulator) holds
	$(BIN)/keap-relay demo

FN ?= forms
EVENT ?= events/$(FN)/bare.json
invoke: $(STAMP)  ## run one event through one function without Docker: make invoke FN=forms EVENT=events/forms/bare.json
	$(BIN)/keap-relay invoke --function $(FN) --event $(EVENT)

BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,ops,bench]'
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)  ## run the benchmarks and write docs/benchmarks*.md (installs the bench extra)
	$(BIN)/python bench/run_all.py $(if $(QUICK),--quick)

validate: lint  ## alias of lint

# sam build of the python3.13 runtime needs python3.13 on PATH; pyenv users get it through PYENV_VERSION.
build: $(STAMP)  ## sam build (needs python3.13 on PATH)
	PYENV_VERSION=$${PYENV_VERSION:-3.13.0:3.11.7} $(BIN)/sam build

clean:  ## remove the venv and build output
	rm -rf $(VENV) $(SCAN_VENV) .aws-sam .pytest_cache .ruff_cache .hypothesis
