# jobsight — the two commands a user needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help run test lint bench generate screenshots constraints system-tools install clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 14

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install jobsight with its dev extra

system-tools: ## install the system packages the tests and the demo need (as root)
	bash .ci/system-tools

run: install system-tools ## bring up the demo stack on embedded defaults; Ctrl-C stops it
	$(VENV)/bin/jobsight dev

lint: install ## ruff; the strict type check and the complexity check (tests/support/typecheck.py)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m tests.support.typecheck --tree
	$(VENV)/bin/mypy
	$(PY) -m tests.support.typecheck --complexity

test: install system-tools lint ## lint, then the whole test suite against real services
	$(VENV)/bin/pytest

bench: install system-tools ## run the benchmarks; results land in bench/results/*.json
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev,bench]'
	cd bench/node && npm install --no-audit --no-fund --silent
	for v in v11 v12; do (cd tests/pgboss/$$v && npm ci --no-audit --no-fund --silent); done
	command -v wrk >/dev/null || apt-get install -y -qq wrk
	$(PY) -m bench.queue_throughput --durable
	$(PY) -m bench.queue_throughput
	$(PY) -m bench.temporal_throughput
	$(PY) -m bench.poll_cost
	$(PY) -m bench.endpoints
	$(PY) -m bench.pgboss_count
	$(PY) -m bench.gate_power
	$(PY) -m bench.console
	$(PY) -m bench.sidecar_memory  # an hour of the demo's load

clean: ## remove the virtualenv and the build leftovers
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache

generate: install ## regenerate the committed generated files (metrics reference, ...)
	$(VENV)/bin/jobsight generate

screenshots: install system-tools ## refresh docs/console/*.png from the console's browser test
	CONSOLE_SCREENSHOTS=docs/console $(VENV)/bin/pytest -q tests/console/test_browser.py

constraints: ## re-resolve every dependency afresh and pin it in constraints.txt (then test, commit)
	bash .ci/constraints
