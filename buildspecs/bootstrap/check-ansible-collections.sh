#!/usr/bin/env bash
# bake.yml, install phase: every collection the playbooks, roles and
# ansible.cfg use (GILD_ANSIBLE_COLLECTIONS, space-separated) is installed
# in the Ansible on PATH. The list is exactly what ansible/ references:
# tests/twin/codebuild/test_collections.py compares the two. This runs for
# real in the offline twin too, against the same pinned ansible.
set -euo pipefail
: "${GILD_ANSIBLE_COLLECTIONS:?}"
installed=$(ansible-galaxy collection list --format json 2>/dev/null \
  | python3 -c 'import json, sys; print("\n".join(sorted({n for c in json.load(sys.stdin).values() for n in c})))')
missing=""
for needed in $GILD_ANSIBLE_COLLECTIONS; do
  if grep -qxF "$needed" <<<"$installed"; then
    echo "collection $needed: installed"
  else
    missing="$missing $needed"
  fi
done
if [ -n "$missing" ]; then
  echo "gild bake: Ansible collections missing:$missing" >&2
  exit 1
fi
