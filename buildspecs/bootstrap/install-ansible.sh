#!/usr/bin/env bash
# bake.yml, install phase: the pinned Ansible (ANSIBLE_VERSION,
# ANSIBLE_CORE_VERSION, PYWINRM_VERSION) in its own virtualenv, on PATH
# through /usr/local/bin. Needs PyPI. The offline twin replaces this script
# and uses the same pins from tools/requirements-ansible.txt (.venv).
set -euo pipefail
: "${ANSIBLE_VERSION:?}" "${ANSIBLE_CORE_VERSION:?}" "${PYWINRM_VERSION:?}"
python3 -m venv /opt/gild/ansible
/opt/gild/ansible/bin/pip install --quiet --disable-pip-version-check \
  "ansible==${ANSIBLE_VERSION}" "ansible-core==${ANSIBLE_CORE_VERSION}" "pywinrm==${PYWINRM_VERSION}"
for tool in /opt/gild/ansible/bin/ansible*; do
  ln -sf "$tool" /usr/local/bin/
done
ansible-playbook --version
