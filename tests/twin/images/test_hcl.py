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
"""

from __future__ import annotations

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


def test_every_template_belongs_to_a_family(root: Path) -> None:
    paths = {family["path"] for family in _families(root).values()}
    folders = [str(f.relative_to(root)) for f in packer_hcl.template_folders(root)]
    assert folders, "no images/**/*.pkr.hcl at all"
    assert [f for f in folders if f not in paths] == [], (
        "folders in no family of gild.toml are never built"
    )
    assert [p for p in paths if p not in folders] == [], "families without templates"


@pytest.mark.parametrize(
    "family", sorted(_families(Path(__file__).resolve().parents[3]))
)
def test_templates_hold_gilds_invariants(root: Path, family: str) -> None:
    spec = _families(root)[family]
    folder = packer_hcl.load_folder(root / spec["path"])
    assert folder.files, f"no *.pkr.hcl in {spec['path']}"
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
    shutil.copytree(root / spec["path"], copy)
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
