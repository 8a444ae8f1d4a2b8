"""A role's defaults read no other role's default that the family's play
may lack.

Why: the defaults of a role are visible to the roles after it in the same
play, so ``"{{ other_role_var | default('') }}"`` works while both roles
share a play, and silently takes the fallback in a family that runs the role
without the other. win2022-iis is baked from win2022-core-dotnet's image and
runs only ``iis`` (gild.toml ``parent``); an iis default that read the
dotnet role's ``dotnet_hosting_bundle_path`` was always empty there, so the
Hosting Bundle repair that gives IIS the ASP.NET Core Module never ran, and
no syntax check or lint noticed.

So a variable that another role's defaults declare may be read with
``| default`` only when ansible/pins.yml provides it (every template passes
that file as extra vars, so every play has it) or, in every family that runs
the reading role, a role before it declares it."""

import re
import tomllib
from pathlib import Path

import yaml

# `name | default`, where name is not an attribute (`x.name | default`).
_DEFAULTED = re.compile(r"(?<![\w.])([A-Za-z_]\w*)\s*\|\s*default\b")


def _defaults(root: Path, role: str) -> dict:
    path = root / "ansible/roles" / role / "defaults/main.yml"
    if not path.is_file():
        return {}
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def missing_defaults(root: Path) -> list[str]:
    """One line per (family, role, variable) read from a role the play lacks."""
    families = tomllib.loads((root / "gild.toml").read_text(encoding="utf-8"))
    pins = set(yaml.safe_load((root / "ansible/pins.yml").read_text()) or {})
    declared = {
        role.name: set(_defaults(root, role.name))
        for role in sorted((root / "ansible/roles").iterdir())
        if role.is_dir()
    }
    problems = []
    for family, spec in sorted(families["families"].items()):
        roles = spec["roles"]
        for index, role in enumerate(roles):
            path = root / "ansible/roles" / role / "defaults/main.yml"
            text = path.read_text(encoding="utf-8") if path.is_file() else ""
            for name in sorted(set(_DEFAULTED.findall(text))):
                owners = sorted(r for r, names in declared.items() if name in names)
                if role in owners or not owners or name in pins:
                    continue
                if any(name in declared[r] for r in roles[:index]):
                    continue
                problems.append(
                    f"{family}: role {role}'s defaults read {name}, a default of "
                    f"role {', '.join(owners)}, which the play does not run before it"
                )
    return problems


def test_real_roles_read_only_what_their_play_defines(root: Path) -> None:
    assert missing_defaults(root) == []


def test_a_child_family_reading_its_parents_role_is_named(tmp_path: Path) -> None:
    """The parent runs dotnet then web; the child runs web alone. web reads a
    pinned variable of dotnet (fine in both) and an unpinned one (fine only
    in the parent)."""
    (tmp_path / "gild.toml").write_text(
        '[families.parent]\nroles = ["dotnet", "web"]\n'
        '[families.child]\nparent = "parent"\nroles = ["web"]\n',
        encoding="utf-8",
    )
    files = {
        "ansible/pins.yml": {"dotnet_url": ""},
        "ansible/roles/dotnet/defaults/main.yml": {
            "dotnet_url": "",
            "dotnet_path": "C:\\downloads\\dotnet.exe",
        },
        "ansible/roles/web/defaults/main.yml": {
            "web_url": "{{ dotnet_url | default('') }}",
            "web_path": "{{ dotnet_path | default('') }}",
            "web_region": "{{ gild_aws_region | default('') }}",
        },
    }
    for path, data in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(yaml.safe_dump(data), encoding="utf-8")
    message = (
        "child: role web's defaults read dotnet_path, a default of role dotnet, "
        "which the play does not run before it"
    )
    assert missing_defaults(tmp_path) == [message]
