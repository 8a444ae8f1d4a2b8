# The SAM stack (infra/template.yaml): lint it, scan it, build it.
#   make infra-lint   cfn-lint, sam validate --lint, checkov: all must be clean
#   make sam-build    sam build (release, x86_64, offline) + zipped sizes
# Nothing here talks to AWS: a dummy region, no credentials, no network.

CHECKS += infra-lint sam-build

.PHONY: infra-lint sam-build

INFRA_TEMPLATE := infra/template.yaml
SAM_BUILD_DIR := target/sam/build
SAM_SIZES := target/sam-sizes.txt

# checkov 3.3.30 pins boto3==1.35.49 and aws-sam-cli 1.170.0 pins
# boto3==1.43.108: they cannot share .venv, so checkov gets a venv of its own
# inside it (.venv/checkov: ignored by git, removed with .venv). It depends
# on the tools stamp because `make tools` rebuilds .venv from scratch.
CHECKOV_VENV := $(VENV)/checkov
CHECKOV_REQUIREMENTS := infra/requirements-checkov.txt

# The tools from .venv first (sam, cfn-lint, cargo-lambda, python -m ziglang);
# us-east-1 only because the linters want a region; no credentials are read.
INFRA_ENV := PATH="$(abspath $(VENV))/bin:$$PATH" \
	AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 \
	AWS_EC2_METADATA_DISABLED=true SAM_CLI_TELEMETRY=0

$(eval $(call sub_venv,CHECKOV))

# checkov drops resources whose Condition is false under the parameters'
# defaults (the GitHub webhook, the secrets, slack-notify...), so it also
# scans a variant with every condition true (infra/condition_variant.py:
# the same template, only defaults changed). cfn-lint checks every branch.
INFRA_VARIANT := target/infra/template-all-conditions.json

infra-lint: tools $(CHECKOV_STAMP)
	$(INFRA_ENV) cfn-lint $(INFRA_TEMPLATE)
	$(INFRA_ENV) sam validate --lint -t $(INFRA_TEMPLATE)
	mkdir -p $(dir $(INFRA_VARIANT))
	$(VENV)/bin/python infra/condition_variant.py $(INFRA_TEMPLATE) $(INFRA_VARIANT)
	# --skip-download: no call to Prisma Cloud for guidelines.
	$(INFRA_ENV) $(CHECKOV_VENV)/bin/checkov -f $(INFRA_TEMPLATE) --framework cloudformation \
		--quiet --compact --skip-download
	$(INFRA_ENV) $(CHECKOV_VENV)/bin/checkov -f $(INFRA_VARIANT) --framework cloudformation \
		--quiet --compact --skip-download

# sam build runs `cargo lambda build --release --bin <bin>` in each function's
# package; cargo-lambda builds into the workspace's target/, so a warm build
# is incremental. SAM cannot pass --locked to cargo, hence the check first;
# CARGO_NET_OFFLINE keeps cargo from fetching anything.
sam-build: tools fetch
	$(CARGO) metadata $(CARGO_FLAGS) --offline --format-version 1 > /dev/null
	$(INFRA_ENV) CARGO_NET_OFFLINE=true sam build --config-file samconfig.toml
	$(VENV)/bin/python infra/bootstrap_sizes.py $(SAM_BUILD_DIR) $(SAM_SIZES)
