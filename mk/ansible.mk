# The playbooks and roles (ansible/), checked four ways:
#   make ansible-lint          ansible-lint, production profile, must be clean
#   make ansible-syntax        every playbook matches gild.toml (one play on
#                              hosts: all, the family's roles in order, become
#                              on Linux, each role with tasks/defaults/meta, no
#                              playbook without a family:
#                              tools/ansible_catalog_check.py), then passes
#                              ansible-playbook --syntax-check
#   make ansible-catalog-test  ruff on that check, and its tests
#                              (tests/twin/ansible/)
#   make chroot-test           debian13-base.yml applied for real in a Debian 13
#                              chroot, then images/debian13-base/tests/run.sh in
#                              it (tools/chroot-test.sh; needs root, else
#                              skips, and fails instead under CI=true or CI=1)
# The tools come from .venv (tools/requirements-ansible.txt); nothing is
# fetched from Ansible Galaxy. The catalog check's tests run from
# .venv/images (mk/packer.mk). See docs/images-testing.md.

CHECKS += ansible-lint ansible-syntax ansible-catalog-test chroot-test

.PHONY: ansible-lint ansible-syntax ansible-catalog-test chroot-test

ANSIBLE_DIR := ansible
ANSIBLE_PLAYBOOKS := $(sort $(wildcard $(ANSIBLE_DIR)/playbooks/*.yml))
ANSIBLE_RUN_ENV := PATH="$(abspath $(VENV))/bin:$$PATH" \
	ANSIBLE_CONFIG="$(abspath $(ANSIBLE_DIR))/ansible.cfg" \
	ANSIBLE_NOCOLOR=1 ANSIBLE_LOCAL_TEMP="$(abspath target)/ansible-tmp"

ansible-lint: tools
	$(ANSIBLE_RUN_ENV) $(VENV)/bin/ansible-lint --offline --nocolor \
		-c $(ANSIBLE_DIR)/.ansible-lint --profile production $(ANSIBLE_DIR)/

ansible-syntax: tools
	$(VENV)/bin/python tools/ansible_catalog_check.py
	@mkdir -p target/ansible-tmp
	@for playbook in $(ANSIBLE_PLAYBOOKS); do \
		echo "ansible-playbook --syntax-check $$playbook"; \
		$(ANSIBLE_RUN_ENV) $(VENV)/bin/ansible-playbook --syntax-check \
			-i 'syntax-check,' "$$playbook" || exit 1; \
	done

# The catalog check's own tests (tests/twin/ansible: small made-up
# repositories, each broken one way, and the real tree) and ruff on its
# Python run from .venv/images (PyYAML, pytest, ruff; images-venv in
# mk/packer.mk), as the pins check's do. pytest's temp folders go under
# target/ so parallel runs elsewhere do not meet them.
ANSIBLE_PYTHON_FILES := tools/ansible_catalog_check.py tests/twin/ansible

ansible-catalog-test: images-venv
	$(IMAGES_VENV)/bin/ruff check $(ANSIBLE_PYTHON_FILES)
	$(IMAGES_VENV)/bin/ruff format --check $(ANSIBLE_PYTHON_FILES)
	$(IMAGES_VENV)/bin/python -m pytest -q -p no:cacheprovider \
		--basetemp=target/ansible-catalog-test tests/twin/ansible

chroot-test: tools
	ANSIBLE_PLAYBOOK="$(abspath $(VENV))/bin/ansible-playbook" tools/chroot-test.sh
