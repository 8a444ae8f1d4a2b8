# gild: two commands on a fresh machine.
#   make demo   the whole pipeline offline, no AWS account
#   make test   every lint and test
# Both install what they need (pinned) into .venv on first use.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
# Every tools/requirements*.txt is installed into the one virtualenv.
REQUIREMENTS := $(sort $(wildcard tools/requirements*.txt))
# The stamp names the requirements' hash, so a changed pin reinstalls.
TOOLS_STAMP := $(VENV)/.tools-$(shell cat $(REQUIREMENTS) tools/moto_serial.py | sha256sum | cut -c1-16)
CARGO ?= cargo
CARGO_FLAGS := --locked

.PHONY: help tools fetch build test lint unit demo clean

# $(eval $(call sub_venv,P)): a virtualenv of its own at $(P_VENV), inside
# .venv, from the pinned $(P_REQUIREMENTS), for tools whose pins clash with
# the shared one's. Its stamp $(P_STAMP) names the requirements' hash, and it
# depends on the tools stamp because `make tools` rebuilds .venv from scratch.
define sub_venv
$(1)_STAMP := $$($(1)_VENV)/.stamp-$$(shell cat $$($(1)_REQUIREMENTS) | sha256sum | cut -c1-16)
$$($(1)_STAMP): $$($(1)_REQUIREMENTS) $$(TOOLS_STAMP)
	rm -rf $$($(1)_VENV)
	$$(PYTHON) -m venv $$($(1)_VENV)
	$$($(1)_VENV)/bin/pip install --quiet --disable-pip-version-check -r $$($(1)_REQUIREMENTS)
	touch $$@
endef

# Checks of the parts beside the Rust code (infra, images, playbooks) live in
# mk/*.mk; each adds its targets to CHECKS, which `make test` runs.
CHECKS :=
-include mk/*.mk

# The buildspecs run under the deployed stack's roles through the IAM gate
# (tests/twin/codebuild/test_gated.py): the stack and IAM twins' virtualenvs,
# whose stamps mk/stack.mk and mk/iam.mk define after mk/codebuild.mk is read.
codebuild-check: $(IAM_STAMP) $(STACK_STAMP)

help:
	@echo "make demo    run the whole pipeline locally against an emulator (no AWS account)"
	@echo "make test    format check, clippy -D warnings, every test"
	@echo "make tools   install the pinned Python tools (moto) into $(VENV)"
	@echo "make bench   cold start, memory, package size, patch day, per-hop figures (bench/results.json)"

tools: $(TOOLS_STAMP)

$(TOOLS_STAMP): $(REQUIREMENTS) tools/moto_serial.py
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(addprefix -r ,$(REQUIREMENTS))
	# moto behind a one-request-at-a-time wrapper: see tools/moto_serial.py.
	printf '#!%s\n' "$(abspath $(VENV))/bin/python" > $(VENV)/bin/gild-moto-server
	cat tools/moto_serial.py >> $(VENV)/bin/gild-moto-server
	chmod +x $(VENV)/bin/gild-moto-server
	touch $@

# Every platform's crates, before anything runs offline: `cargo build` fetches
# only the host's, while `cargo metadata --offline` (make sam-build) and
# cargo-lambda's cross builds need the whole lock file's. Always run: with a
# warm cargo home it is a no-op, and no stamp can go stale against an
# emptied one.
fetch:
	$(CARGO) fetch $(CARGO_FLAGS)

build: fetch
	$(CARGO) build $(CARGO_FLAGS) --workspace --bins

lint: fetch
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy $(CARGO_FLAGS) --workspace --all-targets -- -D warnings

# End-to-end tests run the function binaries, so they are built first; they
# deploy infra/template.yaml with the stack twin (.venv/stack), judge every
# call through the IAM gate (.venv/iam) and run the buildspecs with the
# pinned AWS CLI (.venv/awscli), so all three are installed first too.
unit: tools build $(STACK_STAMP) $(IAM_STAMP) $(CODEBUILD_STAMP)
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run $(CARGO_FLAGS) --workspace --no-fail-fast; \
	else \
		$(CARGO) test $(CARGO_FLAGS) --workspace --no-fail-fast; \
	fi

test: lint unit $(CHECKS)

demo: tools build $(STACK_STAMP) $(IAM_STAMP) $(CODEBUILD_STAMP)
	./target/debug/gild-demo

clean:
	rm -rf $(VENV) target
