# The buildspecs, run with CodeBuild's semantics (issue 11, twin item c).
#   make codebuild-check   lint the twin's Python, then run bake.yml and
#                          test.yml through tools/codebuild_run.py against
#                          moto, with the real AWS CLI (pinned, v1) and the
#                          stand-ins of tests/twin/codebuild/standins/
# Offline: moto and the SSM proxy listen on 127.0.0.1 only.

CHECKS += codebuild-check

.PHONY: codebuild-tools codebuild-check

# awscli, python-hcl2, pytest and ruff in a venv of their own inside .venv
# (ignored by git, removed with .venv; rebuilt when .venv is, through the
# tools stamp). moto comes from .venv: the tests start .venv/bin/gild-moto-server.
CODEBUILD_VENV := $(VENV)/awscli
CODEBUILD_REQUIREMENTS := tests/twin/codebuild/requirements.txt
CODEBUILD_PY := tools/codebuild_run.py tools/codebuild_ssm_proxy.py tools/buildspec_check.py tools/twin_run_build.py \
	buildspecs/bootstrap/family.py buildspecs/bootstrap/bom.py tests/twin/codebuild tests/twin/codebuild/standins/bin/packer

$(eval $(call sub_venv,CODEBUILD))

codebuild-tools: $(CODEBUILD_STAMP)

# ruff runs from the repository root (first-party imports are judged from
# there). pytest's temp folders go under target/ so parallel helpers' runs
# do not meet.
codebuild-check: tools $(CODEBUILD_STAMP)
	$(CODEBUILD_VENV)/bin/ruff check $(CODEBUILD_PY)
	$(CODEBUILD_VENV)/bin/ruff format --check $(CODEBUILD_PY)
	$(CODEBUILD_VENV)/bin/python -m pytest -q -p no:cacheprovider \
		--basetemp=target/codebuild-twin tests/twin/codebuild
