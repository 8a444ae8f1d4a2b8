"""Defect 10 (bake.yml part): the collection check lists what ansible/ uses.

bake.yml used to check community.windows, which nothing uses, and not
microsoft.iis or ansible.posix, which are used. A collection reference is a
fully qualified name `namespace.collection.item` in a playbook, role, task
file or ansible.cfg whose `namespace.collection` is a collection of the
pinned Ansible (.venv, tools/requirements-ansible.txt): that way a YAML
value like `conf.all.rp_filter` is not mistaken for one. ansible.builtin
is part of ansible-core and always present.
"""

import json
import os
import re
import subprocess

import yaml
from cbtwin import REPO, SHARED_BIN

FQCN = re.compile(r"\b([a-z0-9_]+)\.([a-z0-9_]+)\.([a-z0-9_]+)\b")


def installed_collections():
    """namespace.collection of every collection the pinned Ansible ships."""
    out = subprocess.run(
        [str(SHARED_BIN / "ansible-galaxy"), "collection", "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
    )
    return {name for group in json.loads(out.stdout).values() for name in group}


def used_collections():
    """The collections ansible/ refers to, with where."""
    known = installed_collections()
    used = {}
    files = sorted((REPO / "ansible").rglob("*.yml")) + [
        REPO / "ansible" / "ansible.cfg"
    ]
    for path in files:
        for match in FQCN.finditer(path.read_text(encoding="utf-8")):
            collection = f"{match.group(1)}.{match.group(2)}"
            if collection in known and collection != "ansible.builtin":
                used.setdefault(collection, set()).add(str(path.relative_to(REPO)))
    return used


def checked_collections():
    """GILD_ANSIBLE_COLLECTIONS in bake.yml, which check-ansible-collections.sh checks."""
    spec = yaml.safe_load(
        (REPO / "buildspecs" / "bake.yml").read_text(encoding="utf-8")
    )
    return set(spec["env"]["variables"]["GILD_ANSIBLE_COLLECTIONS"].split())


def test_bake_checks_exactly_the_collections_ansible_uses():
    """Same set both ways; the message says where each is used."""
    used = used_collections()
    assert "ansible.posix" in used  # ansible.cfg's profile_tasks callback
    assert checked_collections() == set(used), used


def test_install_phase_runs_the_check():
    """bake.yml's install phase runs the script that reads the list."""
    spec = yaml.safe_load(
        (REPO / "buildspecs" / "bake.yml").read_text(encoding="utf-8")
    )
    commands = spec["phases"]["install"]["commands"]
    assert "bash buildspecs/bootstrap/check-ansible-collections.sh" in commands


def test_check_fails_for_a_missing_collection():
    """The check itself can fail: a collection the Ansible lacks."""
    env = {
        **os.environ,
        "PATH": f"{SHARED_BIN}{os.pathsep}{os.environ['PATH']}",
        "GILD_ANSIBLE_COLLECTIONS": "ansible.posix gild.nonexistent",
    }
    done = subprocess.run(
        ["bash", str(REPO / "buildspecs/bootstrap/check-ansible-collections.sh")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "gild.nonexistent" in done.stderr
    assert "collection ansible.posix: installed" in done.stdout
