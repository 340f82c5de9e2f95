# contact-journeys — the two commands a newcomer needs: `make run` and `make test`.
# Everything is installed by these targets; tools are cached outside the checkout
# (~/.cache/contact-journeys, or $CONTACT_JOURNEYS_CACHE) and reused.

SHELL := /bin/bash
CACHE ?= $(or $(CONTACT_JOURNEYS_CACHE),$(if $(XDG_CACHE_HOME),$(XDG_CACHE_HOME)/contact-journeys,$(HOME)/.cache/contact-journeys))
UV_VERSION := 0.9.30
UV ?= $(or $(shell command -v uv 2>/dev/null),$(CACHE)/uv-$(UV_VERSION)/bin/uv)
export UV_PYTHON_DOWNLOADS := never
VENV := .venv
PYTHON := $(VENV)/bin/python

.PHONY: run cluster test cluster-test faults bench bench-cluster lint tools cluster-tools setup clean help

help:
	@echo "make run    start Temporal (UI on :8233), the worker and the demo journeys"
	@echo "make test   install everything needed and run the test suite"
	@echo "make cluster       a Temporal cluster on PostgreSQL, two workers, the gateway and the demo"
	@echo "make cluster-test  the tests on that cluster (CI runs them after make test)"
	@echo "make lint   ruff and mypy"
	@echo "make faults only the fault-injection tests (make test runs them too)"
	@echo "make bench  benchmarks against a peer and a bare-Temporal baseline (bench/results/)"
	@echo "make bench-cluster the same benchmarks on the local cluster on PostgreSQL"

$(CACHE)/uv-$(UV_VERSION)/bin/uv:
	python3 -m venv $(CACHE)/uv-$(UV_VERSION)
	$(CACHE)/uv-$(UV_VERSION)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	@touch $@

setup: $(VENV)/.synced

tools: setup
	$(PYTHON) -m starter.dev.toolchain

cluster-tools: tools
	$(PYTHON) -m starter.dev.toolchain --cluster

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: tools lint
	$(VENV)/bin/pytest

cluster-test: cluster-tools
	$(VENV)/bin/pytest -m cluster tests/cluster

faults: tools
	$(VENV)/bin/pytest tests/faults

bench: tools
	$(PYTHON) -m bench

bench-cluster: cluster-tools
	$(PYTHON) -m bench --cluster

run: tools
	$(VENV)/bin/journeys dev

cluster: cluster-tools
	$(VENV)/bin/journeys cluster

clean:
	rm -rf .data $(VENV) .pytest_cache .mypy_cache .ruff_cache
