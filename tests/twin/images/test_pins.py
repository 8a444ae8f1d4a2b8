"""tools/pins_check.py on the real tree and on broken copies of it.

Each broken copy removes one thing the bake needs (a pin, the pins file, the
template argument that passes it) and expects the check to name it, so a
check that passes everything cannot go unnoticed."""

import re
import shutil
from pathlib import Path

import pins_check
import pytest
import yaml


@pytest.fixture
def tree(root: Path, tmp_path: Path) -> Path:
    """A copy of the parts the check reads: ansible/ and images/."""
    for part in ("ansible", "images"):
        shutil.copytree(root / part, tmp_path / part)
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{path} no longer holds {old!r}: update this test"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_real_tree_passes(root: Path) -> None:
    problems, _ = pins_check.check(root)
    assert problems == []


def test_every_asserted_empty_default_is_in_the_pins_file(root: Path) -> None:
    """Independent of the checker: read each role's defaults and asserts."""
    pins = yaml.safe_load((root / "ansible/pins.yml").read_text(encoding="utf-8"))
    asserted = set()
    for defaults in (root / "ansible/roles").glob("*/defaults/main.yml"):
        empty = {
            k
            for k, v in (yaml.safe_load(defaults.read_text()) or {}).items()
            if v in ("", None)
        }
        tasks = "\n".join(
            p.read_text() for p in (defaults.parent.parent / "tasks").glob("*.yml")
        )
        asserted |= {
            name for name in empty if re.search(rf"\b{name}\b\s+is match", tasks)
        }
    assert asserted, "no role asserts a pin any more: this test needs updating"
    assert asserted <= set(pins), sorted(asserted - set(pins))


def test_pins_file_missing(tree: Path) -> None:
    (tree / "ansible/pins.yml").unlink()
    problems, _ = pins_check.check(tree)
    assert any("ansible/pins.yml is missing" in p for p in problems)
    assert any(
        "ssm_agent_version" in p and "no pins file provides it" in p for p in problems
    )


def test_pin_removed_from_the_file(tree: Path) -> None:
    _edit(tree / "ansible/pins.yml", 'dotnet_hosting_bundle_sha512: ""\n', "")
    problems, _ = pins_check.check(tree)
    assert [p for p in problems if "dotnet_hosting_bundle_sha512" in p], problems
    assert all("dotnet_hosting_bundle_sha512" in p for p in problems), problems


def test_template_does_not_pass_the_pins_file(tree: Path) -> None:
    _edit(
        tree / "images/windows-server/windows-server.pkr.hcl",
        '"--extra-vars", "@${abspath(local.repo_root)}/ansible/pins.yml",\n',
        "",
    )
    problems, _ = pins_check.check(tree)
    assert len(problems) == 1, problems
    assert (
        "images/windows-server" in problems[0]
        and "does not pass the pins file" in problems[0]
    )


def test_template_passes_the_file_without_the_flag(tree: Path) -> None:
    """The bare @file as an argument of its own is not read as extra vars."""
    _edit(
        tree / "images/debian13-base/debian13-base.pkr.hcl",
        '"--extra-vars", "@${abspath(local.repo_root)}/ansible/pins.yml",',
        '"-v", "@${abspath(local.repo_root)}/ansible/pins.yml",',
    )
    problems, _ = pins_check.check(tree)
    assert any("images/debian13-base" in p for p in problems), problems


def test_template_passes_a_missing_file(tree: Path) -> None:
    _edit(
        tree / "images/debian13-base/debian13-base.pkr.hcl",
        '"--extra-vars", "@${abspath(local.repo_root)}/ansible/pins.yml",',
        '"--extra-vars", "@${abspath(local.repo_root)}/ansible/pins.yml",\n'
        '      "-e", "@${abspath(local.repo_root)}/ansible/gone.yml",',
    )
    problems, _ = pins_check.check(tree)
    assert any("ansible/gone.yml, which does not exist" in p for p in problems), (
        problems
    )


def test_mandatory_filter_counts_as_a_pin(tree: Path) -> None:
    tasks = tree / "ansible/roles/baseline/tasks/main.yml"
    tasks.write_text(
        tasks.read_text()
        + "\n- name: Use a mandatory value\n  ansible.builtin.debug:\n"
        + '    msg: "{{ baseline_mirror_key | mandatory }}"\n'
    )
    problems, _ = pins_check.check(tree)
    assert any("baseline_mirror_key" in p and "mandatory" in p for p in problems), (
        problems
    )


def test_new_asserted_pin_without_an_entry(tree: Path) -> None:
    _edit(
        tree / "ansible/roles/cloudwatch-agent/defaults/main.yml",
        'cloudwatch_agent_deb_sha256: ""\n',
        'cloudwatch_agent_deb_sha256: ""\ncloudwatch_agent_sig_sha256: ""\n',
    )
    _edit(
        tree / "ansible/roles/cloudwatch-agent/tasks/main.yml",
        "          - cloudwatch_agent_deb_sha256 is match('^[0-9a-f]{64}$')\n",
        "          - cloudwatch_agent_deb_sha256 is match('^[0-9a-f]{64}$')\n"
        "          - cloudwatch_agent_sig_sha256 | length > 0\n",
    )
    problems, _ = pins_check.check(tree)
    assert [p for p in problems if "cloudwatch_agent_sig_sha256" in p], problems


def test_stale_pin_is_reported(tree: Path) -> None:
    pins = tree / "ansible/pins.yml"
    pins.write_text(pins.read_text() + 'ssm_agnet_version: "3.3.0.0"\n')
    problems, _ = pins_check.check(tree)
    assert any(
        "ssm_agnet_version" in p and "stale or misspelt" in p for p in problems
    ), problems


def test_unfilled_pins_are_listed_not_failed(tree: Path) -> None:
    _edit(
        tree / "ansible/pins.yml",
        'ssm_agent_version: ""',
        'ssm_agent_version: "3.3.1611.0"',
    )
    problems, unfilled = pins_check.check(tree)
    assert problems == []
    assert not any(u.startswith("ssm_agent_version ") for u in unfilled)
    assert any(u.startswith("ssm_agent_deb_sha256 ") for u in unfilled)


def test_cli_exit_codes(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert pins_check.main(["--root", str(tree)]) == 0
    (tree / "ansible/pins.yml").unlink()
    assert pins_check.main(["--root", str(tree)]) == 1
    assert "problem(s)" in capsys.readouterr().err
