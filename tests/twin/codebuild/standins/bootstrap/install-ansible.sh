#!/usr/bin/env bash
# Offline twin stand-in for buildspecs/bootstrap/install-ansible.sh, which
# pip-installs the pinned Ansible into /opt/gild/ansible. The twin uses the
# Ansible that `make tools` installed from tools/requirements-ansible.txt
# (the same pins: tests/tests/images.rs checks they agree) and checks here
# that the one on PATH is the version bake.yml pins.
set -euo pipefail
: "${ANSIBLE_CORE_VERSION:?}"
version=$(ansible-playbook --version | sed -n '1s/.*core \([0-9.]*\).*/\1/p')
if [ "$version" != "$ANSIBLE_CORE_VERSION" ]; then
  echo "stand-in: ansible-core on PATH is '$version', bake.yml pins $ANSIBLE_CORE_VERSION" >&2
  exit 1
fi
echo "stand-in: Ansible not pip-installed (offline); ansible-core $version from $(command -v ansible-playbook)"
