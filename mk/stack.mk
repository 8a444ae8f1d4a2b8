# The SAM stack in the emulator (issue 11, twin item d; defects 1 and 2).
#   make stack-check   lint the stack twin, unit-test tests/twin/cfn.py, deploy
#                      infra/template.yaml into moto (SAM transform by the
#                      pinned aws-sam-translator), route the sample events by
#                      the template's own rules, check reserved concurrency
#                      against a 10 and a 1000 account quota, and redeploy
#                      after a delete that keeps the Retain resources
# Offline: moto on 127.0.0.1 at a free port, dummy credentials.
# GILD_TWIN_TEMPLATE=<path> checks another copy of the template instead.
# tools/twin_stack_deploy.py deploys into a moto server you run and writes
# stack.json (outputs, physical ids, rules and targets, what was stripped).

CHECKS += stack-check

.PHONY: stack-check

# aws-sam-translator, boto3, moto[server], PyYAML, pytest and ruff, pinned in
# tests/twin/stack/requirements.txt, in a virtualenv of their own (.venv/stack);
# the stamp names the requirements' hash and depends on the tools stamp
# because `make tools` rebuilds .venv from scratch.
STACK_VENV := $(VENV)/stack
STACK_REQUIREMENTS := tests/twin/stack/requirements.txt
STACK_PYTHON_FILES := tests/twin/__init__.py tests/twin/cfn.py tests/twin/stack tools/twin_stack_deploy.py

$(eval $(call sub_venv,STACK))

# Run from tests/ so `twin` is the package; -p no:cacheprovider and no
# bytecode: nothing written into the work tree.
stack-check: tools $(STACK_STAMP) $(IAM_STAMP)
	$(STACK_VENV)/bin/ruff check --isolated $(STACK_PYTHON_FILES)
	$(STACK_VENV)/bin/ruff format --isolated --check $(STACK_PYTHON_FILES)
	cd tests && PYTHONDONTWRITEBYTECODE=1 AWS_EC2_METADATA_DISABLED=true \
		$(abspath $(STACK_VENV))/bin/python -m pytest -q -p no:cacheprovider twin/stack
