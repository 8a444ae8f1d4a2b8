"""Every version/checksum pin a role insists on is provided, and every
Packer template passes the file that provides it.

Why: the agent and .NET roles refuse to install an unpinned release (an
``assert`` on a variable whose role default is empty, or ``| mandatory``).
Before issue 11 nothing passed those variables, so every real bake stopped
at the first such assert, and no offline test noticed. This check fails:

- when a role asserts on (or marks ``| mandatory``) a variable whose default
  is empty and no pins file provides it;
- when a template's ansible provisioner does not pass ``ansible/pins.yml``
  with ``--extra-vars @...`` (or passes a pins file that does not exist);
- when a pins file names a variable no role declares (a stale or misspelt
  pin would silently not apply).

A pin may still be *empty* in the file (values that cannot be verified
offline are left for the operator, see docs/deploy.md); the roles then stop
the bake naming it. This check lists those as "to fill before the first
bake" without failing.

Usage: python tools/pins_check.py [--root DIR]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
# packer_hcl is the sibling module, found through the sys.path entry above.
import packer_hcl

PINS_FILE = "ansible/pins.yml"
_MANDATORY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\|\s*mandatory\b")
_ASSERT_MODULES = {"assert", "ansible.builtin.assert", "ansible.legacy.assert"}
_NESTED = ("block", "rescue", "always")


def _load_yaml(path: Path):
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _tasks(items):
    """Every task, inside blocks too."""
    for item in items or []:
        if not isinstance(item, dict):
            continue
        yield item
        for key in _NESTED:
            yield from _tasks(item.get(key))


def _assert_text(task: dict) -> str:
    """The ``that`` conditions of an assert task, as one text."""
    for module in _ASSERT_MODULES:
        if module in task and isinstance(task[module], dict):
            that = task[module].get("that", [])
            return "\n".join(that if isinstance(that, list) else [str(that)])
    return ""


def _is_empty(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def role_requirements(role: Path) -> tuple[dict[str, str], set[str]]:
    """(pins the role insists on -> why, every variable its defaults declare)."""
    defaults_file = role / "defaults" / "main.yml"
    defaults = (_load_yaml(defaults_file) or {}) if defaults_file.is_file() else {}
    empty = {name for name, value in defaults.items() if _is_empty(value)}
    required: dict[str, str] = {}
    for tasks_file in sorted((role / "tasks").glob("*.yml")):
        for task in _tasks(_load_yaml(tasks_file)):
            text = _assert_text(task)
            for name in sorted(empty):
                if re.search(rf"\b{re.escape(name)}\b", text):
                    where = f"{tasks_file.relative_to(role.parent.parent.parent)}"
                    required.setdefault(
                        name, f"asserted in {where} ({task.get('name', '?')})"
                    )
    for path in sorted(role.rglob("*")):
        if path.is_file() and path.suffix in {".yml", ".yaml", ".j2"}:
            for name in _MANDATORY.findall(path.read_text(encoding="utf-8")):
                rel = path.relative_to(role.parent.parent.parent)
                required.setdefault(name, f"`| mandatory` in {rel}")
    return required, set(defaults)


def template_pins(root: Path, problems: list[str]) -> set[str]:
    """The pins files the templates pass; a template passing none is a problem."""
    passed: set[str] = set()
    folders = packer_hcl.template_folders(root)
    if not folders:
        problems.append("no images/**/*.pkr.hcl found")
    for folder_path in folders:
        folder = packer_hcl.load_folder(folder_path)
        problems.extend(folder.errors)
        where = folder_path.relative_to(root)
        provisioners = folder.provisioners("ansible")
        if not provisioners and not folder.errors:
            problems.append(f"{where}: no ansible provisioner")
        for _, body in provisioners:
            files = [
                packer_hcl.repo_relative(f) or f
                for f in packer_hcl.extra_vars_files(body.get("extra_arguments", []))
            ]
            if PINS_FILE not in files:
                problems.append(
                    f'{where}: the ansible provisioner does not pass the pins file: add "--extra-vars", '
                    f'"@${{abspath(local.repo_root)}}/{PINS_FILE}" to its extra_arguments (got {files or "no @file"})'
                )
            for file in files:
                if not (root / file).is_file():
                    problems.append(
                        f"{where}: passes --extra-vars @{file}, which does not exist"
                    )
            passed.update(files)
    return passed


def check(root: Path) -> tuple[list[str], list[str]]:
    """(problems, pins still empty)."""
    problems: list[str] = []
    passed = template_pins(root, problems)
    pins_files = sorted(passed | {PINS_FILE})
    provided: dict[str, tuple[str, object]] = {}
    for file in pins_files:
        path = root / file
        if not path.is_file():
            problems.append(
                f"{file} is missing: the roles' version and checksum pins have no home"
            )
            continue
        data = _load_yaml(path) or {}
        if not isinstance(data, dict):
            problems.append(f"{file}: must be a YAML mapping of variable: value")
            continue
        for name, value in data.items():
            provided[name] = (file, value)

    declared: set[str] = set()
    roles = sorted(p for p in (root / "ansible" / "roles").iterdir() if p.is_dir())
    for role in roles:
        required, names = role_requirements(role)
        declared |= names
        for name, why in sorted(required.items()):
            if name not in provided:
                problems.append(
                    f"role {role.name}: {name} ({why}) defaults to empty and no pins file provides it: "
                    f"add it to {PINS_FILE} with a comment saying where its value comes from"
                )
    for name, (file, _) in sorted(provided.items()):
        if name not in declared:
            problems.append(
                f"{file}: {name} is declared by no role's defaults (stale or misspelt pin)"
            )
    unfilled = sorted(
        f"{name} ({file})"
        for name, (file, value) in provided.items()
        if _is_empty(value)
    )
    return problems, unfilled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root", type=Path, default=Path(__file__).resolve().parent.parent
    )
    args = parser.parse_args(argv)
    problems, unfilled = check(args.root.resolve())
    for problem in problems:
        print(f"pins-check: {problem}", file=sys.stderr)
    if problems:
        print(f"pins-check: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(
        f"pins-check: every asserted pin is provided and every template passes {PINS_FILE}"
    )
    if unfilled:
        print(
            f"pins-check: {len(unfilled)} pin(s) still empty, to fill before the first bake (docs/deploy.md):"
        )
        for name in unfilled:
            print(f"  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
