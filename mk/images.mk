# Images as code: the CodeBuild buildspecs.
#
# `make buildspec-check` (part of `make test`) reads every buildspecs/*.yml
# as CodeBuild would: well-formed YAML, `version: 0.2`, `phases` with only
# CodeBuild's phase names, each phase's `commands`/`finally` a list of
# strings that bash can parse (`bash -n`), `on-failure` ABORT or CONTINUE,
# exported variables that are names, and `reports` with a file format.
# The program is tools/buildspec_check.py (linted by mk/codebuild.mk).
# Running the buildspecs is mk/codebuild.mk's job (tests/twin/codebuild/).
# The Packer templates themselves are checked by `cargo test` (the policy in tests/src/image_policy, run by tests/tests/images.rs).
# PyYAML comes with the tools virtualenv (moto[server] depends on it).

CHECKS += buildspec-check

.PHONY: buildspec-check

buildspec-check: tools
	$(VENV)/bin/python tools/buildspec_check.py $(wildcard buildspecs/*.yml)
