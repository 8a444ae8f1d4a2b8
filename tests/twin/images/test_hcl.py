"""gild's invariants on the Packer templates, read with a real HCL2 parser.

Packer itself (1.16) cannot run offline, so every ``images/**/*.pkr.hcl``
is parsed with python-hcl2 (tools/packer_hcl.py) and the parsed structure,
not the text, is held to what gild promises: private AMIs, encrypted with
the stack's key, IMDSv2 only, no inbound path to the builder but Session
Manager (Linux) or WinRM over HTTPS from the bake project (Windows), the
provenance tags the Lambdas rely on, the pins file handed to Ansible, the
plugins pinned exactly and alike, and a manifest for the buildspec.

``test_broken_template_is_rejected`` feeds broken copies of the real
templates to the same ``check_folder`` and expects each to be named, so no
check can silently pass everything.

A family is checked on its `template` folder (gild.toml, default its
`path`): one template may serve several families (issue 14).
"""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

import packer_hcl
import pytest
import yaml
from hcl_invariants import check_folder

BREAKAGES = yaml.safe_load((Path(__file__).parent / "breakages.yml").read_text())

# ---------------------------------------------------------------------------
# The real templates


def _families(root: Path) -> dict[str, dict]:
    with (root / "gild.toml").open("rb") as handle:
        return tomllib.load(handle)["families"]


def _template(spec: dict) -> str:
    """A family's template folder: `template`, default `path` (no `/` at the end)."""
    return spec.get("template", spec["path"]).rstrip("/")


def test_every_template_belongs_to_a_family(root: Path) -> None:
    templates = {_template(family) for family in _families(root).values()}
    folders = [str(f.relative_to(root)) for f in packer_hcl.template_folders(root)]
    assert folders, "no images/**/*.pkr.hcl at all"
    assert [f for f in folders if f not in templates] == [], (
        "folders in no family of gild.toml are never built"
    )
    assert [t for t in templates if t not in folders] == [], (
        "families without templates"
    )


def test_every_family_has_its_own_folder(root: Path) -> None:
    """`path` is the family's own folder (its tests): it exists, and holds
    no template unless it is the family's template."""
    for name, spec in _families(root).items():
        path = spec["path"].rstrip("/")
        assert (root / path).is_dir(), f"{name}: {path} is missing"
        if path != _template(spec):
            assert not list((root / path).glob("*.pkr.hcl")), (
                f"{name}: {path} holds a template, but the family is baked with {_template(spec)}"
            )


def test_every_template_declares_what_the_bake_passes(root: Path) -> None:
    """bake.yml passes these with -var (Packer refuses a -var a template
    does not declare): every template declares each, winrm_security_group_id
    only the Windows ones (the only ones it is passed to)."""
    bake = (root / "buildspecs/bake.yml").read_text(encoding="utf-8")
    passed = set(re.findall(r'-var "([a-z_]+)=', bake))
    assert {"family", "family_dir", "source_ami", "parent_family"} <= passed
    for name, spec in _families(root).items():
        folder = packer_hcl.load_folder(root / _template(spec))
        declared = {
            packer_hcl.label(variable)
            for block in folder.blocks("variable")
            for variable in block
        }
        wanted = passed - (
            {"winrm_security_group_id"} if spec["os"] == "linux" else set()
        )
        assert wanted <= declared, (name, wanted - declared)


@pytest.mark.parametrize(
    "family", sorted(_families(Path(__file__).resolve().parents[3]))
)
def test_templates_hold_gilds_invariants(root: Path, family: str) -> None:
    spec = _families(root)[family]
    folder = packer_hcl.load_folder(root / _template(spec))
    assert folder.files, f"no *.pkr.hcl in {_template(spec)}"
    assert check_folder(folder, family, spec["os"]) == []


def test_repo_root_is_two_levels_up(root: Path) -> None:
    """pins and playbook paths are `${local.repo_root}/...`: it must be the
    repository root whatever folder Packer runs from."""
    for path in packer_hcl.template_folders(root):
        assert (
            packer_hcl.load_folder(path).locals.get("repo_root")
            == '"${path.root}/../.."'
        ), path


def test_kms_key_has_no_default(root: Path) -> None:
    """A default key would quietly encrypt with another account's key."""
    for path in packer_hcl.template_folders(root):
        folder = packer_hcl.load_folder(path)
        variables = {
            packer_hcl.label(name): body
            for block in folder.blocks("variable")
            for name, body in block.items()
        }
        for name in (
            "kms_key_id",
            "subnet_id",
            "security_group_id",
            "instance_profile",
        ):
            assert name in variables and "default" not in variables[name], (path, name)


def test_plugins_and_packer_pinned_alike(root: Path) -> None:
    seen: dict[str, set] = {}
    for path in packer_hcl.template_folders(root):
        folder = packer_hcl.load_folder(path)
        for name, spec in folder.required_plugins().items():
            seen.setdefault(name, set()).add(spec.get("version"))
        for block in folder.blocks("packer"):
            seen.setdefault("packer", set()).add(
                packer_hcl.unquote(block.get("required_version"))
            )
    assert {k: v for k, v in seen.items() if len(v) != 1} == {}
    bake = yaml.safe_load((root / "buildspecs/bake.yml").read_text(encoding="utf-8"))
    version = bake["env"]["variables"]["PACKER_VERSION"]
    assert seen["packer"] == {f">= {version}"}, (
        "bake.yml's PACKER_VERSION must be the templates' minimum"
    )


# ---------------------------------------------------------------------------
# Each check can fail


@pytest.mark.parametrize("case", BREAKAGES, ids=[case["what"] for case in BREAKAGES])
def test_broken_template_is_rejected(root: Path, tmp_path: Path, case: dict) -> None:
    spec = _families(root)[case["family"]]
    copy = tmp_path / case["family"]
    shutil.copytree(root / _template(spec), copy)
    old = case["from"]
    holders = [p for p in sorted(copy.glob("*.pkr.hcl")) if old in p.read_text()]
    assert holders, f"no template holds {old!r}: update breakages.yml with the template"
    holders[0].write_text(holders[0].read_text().replace(old, case["to"], 1))
    problems = check_folder(packer_hcl.load_folder(copy), case["family"], spec["os"])
    assert any(case["expected"] in p for p in problems), problems


def test_empty_template_fails_on_every_count(tmp_path: Path) -> None:
    (tmp_path / "empty.pkr.hcl").write_text("")
    problems = check_folder(packer_hcl.load_folder(tmp_path), "debian13-base", "linux")
    for expected in (
        "no `amazon` entry",
        'no `source "amazon-ebs"` block',
        "no `build` block",
    ):
        assert any(expected in p for p in problems), (expected, problems)
