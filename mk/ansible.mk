# The playbooks and roles (ansible/), checked three ways:
#   make ansible-lint     ansible-lint, production profile, must be clean
#   make ansible-syntax   every playbook matches gild.toml (its roles, in
#                         order) and passes ansible-playbook --syntax-check
#   make chroot-test      debian13-base.yml applied for real in a Debian 13
#                         chroot, then images/debian13-base/tests/run.sh in
#                         it (tools/chroot-test.sh; needs root, else skips)
# The tools come from .venv (tools/requirements-ansible.txt); nothing is
# fetched from Ansible Galaxy. See docs/images-testing.md.

CHECKS += ansible-lint ansible-syntax chroot-test

.PHONY: ansible-lint ansible-syntax chroot-test

ANSIBLE_DIR := ansible
ANSIBLE_PLAYBOOKS := $(sort $(wildcard $(ANSIBLE_DIR)/playbooks/*.yml))
ANSIBLE_RUN_ENV := PATH="$(abspath $(VENV))/bin:$$PATH" \
	ANSIBLE_CONFIG="$(abspath $(ANSIBLE_DIR))/ansible.cfg" \
	ANSIBLE_NOCOLOR=1 ANSIBLE_LOCAL_TEMP="$(abspath target)/ansible-tmp"

ansible-lint: tools
	$(ANSIBLE_RUN_ENV) $(VENV)/bin/ansible-lint --offline --nocolor \
		-c $(ANSIBLE_DIR)/.ansible-lint --profile production $(ANSIBLE_DIR)/

# The playbooks against gild.toml: one per family, one play on `hosts: all`,
# exactly the family's roles in the catalog's order (become on Linux), each
# role with tasks/defaults/meta, and no playbook without a family.
define ANSIBLE_CATALOG_CHECK
import pathlib, sys, tomllib, yaml
families = tomllib.loads(pathlib.Path("gild.toml").read_text())["families"]
problems = []
for name, family in sorted(families.items()):
    path = pathlib.Path("ansible/playbooks") / f"{name}.yml"
    if not path.is_file():
        problems.append(f"{name}: {path} is missing")
        continue
    plays = yaml.safe_load(path.read_text()) or []
    if len(plays) != 1:
        problems.append(f"{path}: {len(plays)} plays, want 1")
        continue
    play = plays[0]
    roles = [r if isinstance(r, str) else r.get("role") for r in play.get("roles", [])]
    if roles != family["roles"]:
        problems.append(f"{path}: roles {roles}, gild.toml says {family['roles']}")
    if play.get("hosts") != "all":
        problems.append(f"{path}: hosts {play.get('hosts')!r}, want 'all'")
    if family["os"] == "linux" and play.get("become") is not True:
        problems.append(f"{path}: a Linux play needs become: true")
    for role in family["roles"]:
        for part in ("tasks", "defaults", "meta"):
            if not pathlib.Path(f"ansible/roles/{role}/{part}/main.yml").is_file():
                problems.append(f"{name}: ansible/roles/{role}/{part}/main.yml is missing")
for path in sorted(pathlib.Path("ansible/playbooks").glob("*.yml")):
    if path.stem not in families:
        problems.append(f"{path}: no family {path.stem} in gild.toml")
for problem in problems:
    print(f"ansible-syntax: {problem}", file=sys.stderr)
print(f"ansible-syntax: {len(families)} playbooks match gild.toml" if not problems else "")
sys.exit(1 if problems else 0)
endef
export ANSIBLE_CATALOG_CHECK

ansible-syntax: tools
	$(VENV)/bin/python -c "$$ANSIBLE_CATALOG_CHECK"
	@mkdir -p target/ansible-tmp
	@for playbook in $(ANSIBLE_PLAYBOOKS); do \
		echo "ansible-playbook --syntax-check $$playbook"; \
		$(ANSIBLE_RUN_ENV) $(VENV)/bin/ansible-playbook --syntax-check \
			-i 'syntax-check,' "$$playbook" || exit 1; \
	done

chroot-test: tools
	ANSIBLE_PLAYBOOK="$(abspath $(VENV))/bin/ansible-playbook" tools/chroot-test.sh
