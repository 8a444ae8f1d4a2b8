# IAM as AWS evaluates it (issue 11, twin items a and b).
#   make iam-check   lint the IAM twin, test the evaluator against AWS's
#                    documented answers, and evaluate the bake and test roles
#                    of infra/template.yaml against every API call Packer,
#                    the session-manager-plugin, the buildspecs and CodeBuild
#                    make (tests/fixtures/packer-amazon-calls.json)
# Offline: no AWS call, no credentials. GILD_IAM_TEMPLATE=<path> checks
# another copy of the template (a proposed fix) instead.

CHECKS += iam-check

.PHONY: iam-check

# The evaluator (principalmapper) and the test runner get a virtualenv of
# their own inside .venv (.venv/iam), pinned in tests/twin/iam/requirements.txt;
# its stamp names the requirements' hash, and it depends on the tools stamp
# because `make tools` rebuilds .venv from scratch.
IAM_VENV := $(VENV)/iam
IAM_REQUIREMENTS := tests/twin/iam/requirements.txt

$(eval $(call sub_venv,IAM))

# -p no:cacheprovider: nothing written into the work tree.
iam-check: tools $(IAM_STAMP)
	$(IAM_VENV)/bin/ruff check --isolated tests/twin/iam
	$(IAM_VENV)/bin/ruff format --isolated --check tests/twin/iam
	$(IAM_VENV)/bin/python -m pytest -q -p no:cacheprovider --rootdir=tests/twin/iam tests/twin/iam
