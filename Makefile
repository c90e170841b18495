# The two commands a new user runs are `make demo` and `make test`.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint docs unit dev-cluster dev-cluster-down k8s-tools node-tools browser-tools images bench bench-scale crds clean

$(STAMP): pyproject.toml
	@echo "==> creating $(VENV) and installing stepwise with its test tools"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[all]' --group test --group lint --group docs --group bench
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

k8s-tools:
	bash scripts/k8s-tools.sh

# The test node (needs root): containerd & co. from apt, then the images built here.
node-tools:
	bash scripts/node-tools.sh

# The dashboard's browser tests: headless Chromium and chromedriver from apt (needs root).
browser-tools:
	bash scripts/browser-tools.sh

images: $(STAMP) node-tools
	bash scripts/images.sh >/dev/null

lint: $(STAMP)
	$(BIN)/ruff check stepwise harness tests bench examples scripts
	$(BIN)/ruff format --check stepwise harness tests bench examples scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

test: $(STAMP) k8s-tools images browser-tools
	bash scripts/ensure-postgres.sh
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory docs
	$(BIN)/pytest

# The docs site (API reference from the docstrings) in site/; a warning fails the build.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --quiet

unit: $(STAMP)
	$(BIN)/pytest -m "not postgres and not kube and not slow"

dev-cluster: $(STAMP) k8s-tools images
	$(BIN)/python scripts/dev_cluster.py up

dev-cluster-down: $(STAMP)
	$(BIN)/python scripts/dev_cluster.py down

crds: $(STAMP)
	$(BIN)/stepwise crds

bench: $(STAMP) k8s-tools
	bash scripts/ensure-postgres.sh
	$(BIN)/python -m bench

# How cost grows (docs/performance.md): about 8 minutes at load 8-20 plus the 5,000-WorkflowRun case.
bench-scale: $(STAMP) k8s-tools
	bash scripts/ensure-postgres.sh
	$(BIN)/python -m bench --only scale

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache stepwise.db* site
