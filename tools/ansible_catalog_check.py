"""Every Ansible playbook matches the image catalog, gild.toml.

Why: gild.toml is what decides which families a push rebuilds (a change
under ``ansible/roles/<r>/`` rebuilds the families that list role r), while
the bake applies ``ansible/playbooks/<family>.yml``. If the two disagree, a
role change rebuilds the wrong images, or an image gets roles the catalog
does not name. ``ansible-playbook --syntax-check`` sees none of this, so
``make ansible-syntax`` runs this check first. For each family of gild.toml
it fails when:

- ``ansible/playbooks/<family>.yml`` is missing;
- the playbook does not hold exactly one play;
- the play's roles are not exactly the family's roles, in the catalog's
  order (a role may be a name or a mapping with a ``role`` key);
- the play is not on ``hosts: all`` (Packer's inventory holds the one
  instance being baked);
- the family is Linux and the play lacks ``become: true`` (Packer connects
  as an unprivileged user);
- one of the family's roles lacks ``tasks/main.yml``, ``defaults/main.yml``
  or ``meta/main.yml`` under ``ansible/roles/<role>/``;

and when a playbook in ``ansible/playbooks/`` names no family.

Problems go to stderr, one a line, prefixed ``ansible-syntax:``; the exit
status is 1 if there is any, else 0. Needs tomllib (Python 3.11+) and PyYAML.

Usage: python tools/ansible_catalog_check.py [--root DIR]  (default: .)
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

import yaml

PLAYBOOKS = "ansible/playbooks"
ROLES = "ansible/roles"
ROLE_PARTS = ("tasks", "defaults", "meta")


def check(root: Path) -> tuple[list[str], int]:
    """(problems, number of families in gild.toml), for the tree at root.

    Paths in the problems are relative to root."""
    text = (root / "gild.toml").read_text(encoding="utf-8")
    families = tomllib.loads(text)["families"]
    problems = []
    for name, family in sorted(families.items()):
        path = f"{PLAYBOOKS}/{name}.yml"
        if not (root / path).is_file():
            problems.append(f"{name}: {path} is missing")
            continue
        plays = yaml.safe_load((root / path).read_text(encoding="utf-8")) or []
        if len(plays) != 1:
            problems.append(f"{path}: {len(plays)} plays, want 1")
            continue
        play = plays[0]
        roles = [
            r if isinstance(r, str) else r.get("role") for r in play.get("roles", [])
        ]
        if roles != family["roles"]:
            problems.append(f"{path}: roles {roles}, gild.toml says {family['roles']}")
        if play.get("hosts") != "all":
            problems.append(f"{path}: hosts {play.get('hosts')!r}, want 'all'")
        if family["os"] == "linux" and play.get("become") is not True:
            problems.append(f"{path}: a Linux play needs become: true")
        for role in family["roles"]:
            for part in ROLE_PARTS:
                part_path = f"{ROLES}/{role}/{part}/main.yml"
                if not (root / part_path).is_file():
                    problems.append(f"{name}: {part_path} is missing")
    for path in sorted((root / PLAYBOOKS).glob("*.yml")):
        if path.stem not in families:
            problems.append(
                f"{path.relative_to(root)}: no family {path.stem} in gild.toml"
            )
    return problems, len(families)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root",
        type=Path,
        default=Path.cwd(),
        help="the repository root (default: the current directory)",
    )
    args = parser.parse_args(argv)
    problems, families = check(args.root)
    for problem in problems:
        print(f"ansible-syntax: {problem}", file=sys.stderr)
    print(
        f"ansible-syntax: {families} playbooks match gild.toml" if not problems else ""
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
